"""VidTwin-style VAE on tiny shapes: latent layout, compression rate, losses, overfit, prior, real runner."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from seqbench.cli import main
from seqbench.errors import ConfigError
from seqbench.method import Batch
from seqbench.methods.vidtwin import VidTwin, VidTwinConfig, image_gradient_loss
from seqbench.types import DataSpec, Factors

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: make the shared helpers importable
from _vae_contract import clips, every_profile, one_thread, seeded_model, video  # noqa: E402,F401 - one_thread: autouse, one intra-op thread

TINY = dict(patch_size=4, dim=8, enc_depth=1, dec_depth=1, heads=2, mlp_mult=2, structure_queries=1,
            structure_channels=3, dynamics_channels=2)


SPEC = video(16)  # 4 frames of 3 x 16 x 16


def build(**overrides) -> VidTwin:
    return seeded_model(VidTwin, TINY, SPEC, **overrides)


def test_profiles_and_config_errors():
    profiles = every_profile(VidTwinConfig)
    paper = profiles["paper"]
    assert (paper.dim, paper.enc_depth, paper.structure_queries, paper.kl_weight) == (768, 16, 16, 1e-3)
    VidTwin(profiles["smoke"], DataSpec("s", "video", 8, 3, 64, 64))
    with pytest.raises(ConfigError, match="patch_size=5"):
        build(patch_size=5)
    with pytest.raises(ConfigError, match="structure_down=3"):
        build(structure_down=3)
    with pytest.raises(ConfigError, match="rec_loss"):
        VidTwinConfig(rec_loss="lpips")


@pytest.mark.parametrize("queries,attention", [(1, "joint"), (3, "divided")])
def test_latent_layout_compression_and_swap(queries, attention):
    model = build(structure_queries=queries, attention=attention).eval()
    # 16 px / patch 4 = 4x4 grid; structure downsampled by 2 -> Q x 3 x 2 x 2; dynamics (2 + 2) x 2 per frame
    assert model.structure_shape == (queries, 3, 2, 2) and model.dynamic_dim == 8
    assert model.compression_rate == pytest.approx((queries * 12 + 4 * 8) / (4 * 3 * 16 * 16))
    assert model.train_statistics()["compression_rate"] == model.compression_rate
    factors = model.encode(clips(SPEC, 2))
    assert factors.static.shape == (2, queries * 12) and factors.dynamic.shape == (2, 4, 8)
    out = model.decode(factors)
    assert out.shape == (2, 4, 3, 16, 16) and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, model.decode(factors))  # deterministic decoder
    swapped = model.decode(Factors(factors.static.flip(0), factors.dynamic))
    assert swapped.shape == out.shape and not torch.allclose(swapped, out)


def test_dynamic_code_is_per_frame():
    """Changing one frame changes that frame's dynamic code (the code is computed per frame, not per clip)."""
    model = build(attention="divided").eval()
    x = clips(SPEC, 2)
    y = x.clone()
    y[:, 2] = torch.rand_like(y[:, 2])
    a, b = model.encode(x).dynamic, model.encode(y).dynamic
    assert not torch.allclose(a[:, 2], b[:, 2])


def test_losses_overfit_and_kl_weight():
    model = build()
    x = clips(SPEC, 2)
    losses = model.losses(x, generator=torch.Generator().manual_seed(0))
    expected = (losses["rec"] + 0.05 * losses["grad"] + 1e-3 * (losses["kl_structure"] + losses["kl_dynamics"]))
    assert torch.isclose(losses["loss"], expected)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    first = losses["rec"].item()
    for step in range(25):
        loss = model.training_step(Batch(x, {}, torch.arange(2)))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model.losses(x, generator=torch.Generator().manual_seed(0))["rec"].item() < 0.8 * first


def test_image_gradient_loss_sees_edges_not_offsets():
    x = torch.rand(2, 3, 8, 8)
    assert image_gradient_loss(torch.full_like(x, 0.3)) == 0  # a constant offset has no gradient error
    assert image_gradient_loss(torch.rand(2, 3, 8, 8) - x) > 0


def test_samples_from_the_kl_prior():
    model = build().eval()
    gen = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    static = model.sample(3, 5, "static", generator=gen())
    dynamic = model.sample(3, 5, "dynamic", generator=gen())
    assert static.shape == (3, 12) and dynamic.shape == (3, 5, 8)
    assert torch.equal(static, model.sample(3, 5, "static", generator=gen()))
    assert model.decode(Factors(static, dynamic)).shape == (3, 5, 3, 16, 16)  # any clip length decodes
    assert VidTwin.can_sample()


def test_smoke_run_through_the_runner(toy_plugin, cache_dir, tmp_path):
    """The real runner on the toy plugin's 8x8 clips; compression rate reaches MLflow."""
    from mlflow.tracking import MlflowClient

    from seqbench.results import load_results

    out = tmp_path / "out"
    assert main(["run", "--methods", "vidtwin", "--metrics", "mse,size", "--dataset", "toy-bars", "--profile", "smoke",
                 "--no-progress", "--set", "vidtwin.patch_size=2", "-o", str(out)]) == 0
    frame = load_results(out)
    assert (frame[frame["metric"] == "mse"]["status"] == "ok").all() and "mse" in set(frame["key"])
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("seqbench")
    child = [r for r in client.search_runs([experiment.experiment_id]) if "mse/mse" in r.data.metrics][0]
    rate = client.get_metric_history(child.info.run_id, "train/compression_rate")
    # toy-bars: 4 frames 1x8x8; grid 4x4 -> structure 1x4x2x2, dynamics (2+2)x4 per frame
    assert rate[-1].value == pytest.approx((16 + 4 * 16) / (4 * 64))
    # ... and the `size` metric puts the same figure beside the metrics (computed from encode's shapes)
    size = frame[frame["metric"] == "size"].set_index("key")
    assert size.loc["compression", "value"] == pytest.approx(rate[-1].value)
    assert size.loc["bits_per_frame", "status"] == "not_applicable"
