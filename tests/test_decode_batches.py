"""Evaluation decodes in frame-bounded batches (EvalContext.decode_frames) for speed; that is only
allowed because no method's decodes depend on how the clips are split into batches."""

from __future__ import annotations

import pytest
import torch

from seqbench.metric import EvalContext
from seqbench.metrics._common import decode_batches
from seqbench.plugins import load_plugins
from seqbench.types import DataSpec

VIDEO = DataSpec("tiny", "video", 4, 3, 32, 32, fingerprint="tiny-video")
AUDIO = DataSpec("tiny-audio", "audio", 5, 12, 1, 1, value_range=(-float("inf"), float("inf")),
                 fingerprint="tiny-audio")
PLUGINS = load_plugins()


def test_decode_batches_are_bounded_by_frames_not_clips():
    ctx = EvalContext(device=torch.device("cpu"), batch_size=64)
    assert ctx.decode_batch_size(8) == 16
    assert ctx.decode_batch_size(1) == 64  # never more clips than the encode batch
    assert ctx.decode_batch_size(500) == 1
    assert EvalContext(device=torch.device("cpu"), decode_frames=256).decode_batch_size(8) == 32


# every registered method, on each modality it models
CASES = [pytest.param(name, spec, id=f"{name}-{spec.modality}") for name in sorted(PLUGINS.methods.names())
         for spec in (VIDEO, AUDIO) if spec.modality in PLUGINS.methods.get(name).modalities]


def test_every_method_and_both_modalities_are_covered():
    assert {p.values[1].modality for p in CASES} == {"video", "audio"} and len(CASES) >= len(PLUGINS.methods.names())


@pytest.mark.parametrize("name, spec", CASES)
def test_a_methods_decodes_do_not_depend_on_the_batch_split(name, spec):
    cls = PLUGINS.methods.get(name)
    torch.manual_seed(0)
    method = cls(cls.Config.for_profile("smoke", spec.family, spec.name), spec).eval()
    x = torch.rand(6, spec.frames, spec.channels, spec.height, spec.width, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        codes = method.encode(x)

    def decoded(batch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return torch.cat(list(decode_batches(method, codes.static, codes.dynamic, batch, torch.device("cpu"),
                                             generator, spec.value_range)))

    whole = decoded(6)
    # the same noise for every clip (a different draw differs by O(1)); multi-threaded matrix products may
    # round differently per batch size, so equality is up to float rounding
    torch.testing.assert_close(decoded(2), whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(decoded(4), whole, rtol=1e-5, atol=1e-5)  # uneven split: 4 + 2


def test_per_item_noise_does_not_depend_on_how_many_items_share_the_draw():
    from seqbench.nn import randn

    def drawn(splits: list[int]) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return torch.cat([randn((n, 5, 12), generator=generator, per_item=True) for n in splits])

    assert torch.equal(drawn([4]), drawn([1, 3]))
    whole = torch.randn(4, 5, 12, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    split = torch.cat([torch.randn(2, 5, 12, generator=generator) for _ in range(2)])
    assert not torch.equal(whole, split)  # why per_item exists: 120 values are not a multiple of 16
    sixteen = torch.Generator().manual_seed(0)
    assert torch.equal(randn((4, 16), generator=sixteen, per_item=True),
                       torch.randn(4, 16, generator=torch.Generator().manual_seed(0)))
