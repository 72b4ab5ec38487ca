"""Transformer pieces (patches, T5 relative bias, blocks, Q-Former, code prior) and grouped quantizers."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from seqbench.nn.diffusion import DDPMSchedule
from seqbench.nn.quantize import GumbelQuantizer, VectorQuantizer
from seqbench.nn.transformer import (CausalCodePrior, PatchEmbed, PatchHead, QFormer, SpaceTimeTransformer, Transformer,
                                     patchify, relative_position_bucket, unpatchify)

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: make the shared helpers importable
from _vae_contract import one_thread  # noqa: E402,F401 - autouse: one intra-op thread on a busy machine


def test_patchify_round_trip_and_patch_modules():
    x = torch.randn(2, 3, 8, 12)
    tokens = patchify(x, 4)
    assert tokens.shape == (2, 2, 3, 48)
    assert torch.equal(tokens[0, 1, 2, :16].reshape(4, 4), x[0, 0, 4:8, 8:12])  # channel-major inside a patch
    assert torch.equal(unpatchify(tokens, 4), x)
    assert PatchEmbed(3, 4, 10)(x).shape == (2, 2, 3, 10)
    assert PatchHead(10, 3, 4)(torch.randn(2, 2, 3, 10)).shape == x.shape
    with pytest.raises(ValueError, match="patches"):
        patchify(x, 5)


def test_relative_position_buckets_follow_t5():
    rel = torch.arange(-6, 7)
    both = relative_position_bucket(rel, bidirectional=True, num_buckets=8, max_distance=16)
    # 4 buckets per sign: exact for distances 0, 1, then logarithmic; positive offsets shifted by 4
    assert both[6] == 0 and both[5] == 1 and both[7] == 5 and both[8] == 6
    assert both.max() <= 7 and (both[7:] >= 4).all() and (both[:7] < 4).all()
    past = relative_position_bucket(rel, bidirectional=False, num_buckets=8, max_distance=16)
    assert (past[6:] == 0).all() and past[0] > past[5] > 0  # the future shares bucket 0 (it is masked anyway)
    far = relative_position_bucket(torch.tensor([-1000]), bidirectional=False, num_buckets=8, max_distance=16)
    assert far.item() == 7


def test_transformer_causality_and_shapes():
    torch.manual_seed(0)
    model = Transformer(16, 2, 2, relative_bias=True, causal=True).eval()
    x = torch.randn(2, 5, 16)
    y = model(x)
    x2 = x.clone()
    x2[:, 3:] = torch.randn(2, 2, 16)
    assert y.shape == x.shape and torch.allclose(model(x2)[:, :3], y[:, :3], atol=1e-5)
    full = Transformer(16, 1, 2, relative_bias=True, norm="layer").eval()
    assert not torch.allclose(full(x2)[:, :3], full(x)[:, :3])


@pytest.mark.parametrize("attention", ["joint", "divided"])
def test_space_time_transformer_mixes_time_and_space(attention):
    torch.manual_seed(0)
    model = SpaceTimeTransformer(8, 1, 2, attention=attention).eval()
    x = torch.randn(1, 3, 2, 2, 8)
    y = model(x)
    x2 = x.clone()
    x2[0, 2, 1, 1] = torch.randn(8)  # a later frame, another position
    assert y.shape == x.shape and not torch.allclose(model(x2)[0, 0, 0, 0], y[0, 0, 0, 0])


def test_qformer_summarises_any_number_of_tokens():
    q = QFormer(8, 3, depth=2, num_heads=2, context_dim=6)
    assert q(torch.randn(4, 7, 6)).shape == (4, 3, 8) and q(torch.randn(4, 2, 6)).shape == (4, 3, 8)


def test_code_prior_learns_a_deterministic_sequence_and_samples():
    torch.manual_seed(0)
    prior = CausalCodePrior(4, 2, dim=16, depth=1, num_heads=2)
    codes = torch.tensor([[[0, 1], [1, 2], [2, 3], [3, 0]]]).expand(8, -1, -1)
    opt = torch.optim.Adam(prior.parameters(), 1e-2)
    first = prior.loss(codes).item()
    for _ in range(60):
        loss = prior.loss(codes)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first
    draw = prior.sample(3, 4, generator=torch.Generator().manual_seed(0), temperature=0.5)
    assert draw.shape == (3, 4, 2) and torch.equal(draw, codes[:3])
    assert prior.sample(2, 6).shape == (2, 6, 2)  # longer than trained: relative positions


def test_grouped_vector_quantizer_bits_and_lookup():
    vq = VectorQuantizer(8, 3, channel_dim=-1, groups=4).eval()  # eval: no EMA update between quantise and lookup
    assert vq.bits == 4 * 3.0
    z = torch.randn(2, 5, 12)
    out = vq(z)
    assert out.quantized.shape == z.shape and out.indices.shape == (2, 5, 4)
    assert torch.allclose(vq.lookup(out.indices), out.quantized, atol=1e-6)
    assert 1.0 <= float(out.perplexity) <= 8.0
    gumbel = GumbelQuantizer(12, 16, 2, groups=3, channel_dim=-1).eval()
    assert gumbel.bits == 12.0
    g = gumbel(z)
    assert g.indices.shape == (2, 5, 3) and torch.allclose(gumbel.lookup(g.indices), g.quantized)
    assert math.isclose(VectorQuantizer(2, 4).bits, 1.0)


def test_dead_codes_restart_at_batch_vectors():
    torch.manual_seed(0)
    vq = VectorQuantizer(6, 2, channel_dim=-1, dead_threshold=0.5)
    vq.codebook.add_(100.0)  # every code far from the data: one takes all, the rest die
    vq.embed_sum.copy_(vq.codebook)
    z = torch.randn(64, 2)
    for _ in range(80):
        vq(z)
    assert (vq.codebook.abs() < 10).all() and float(vq(z).perplexity) > 3
    plain = VectorQuantizer(6, 2, channel_dim=-1)
    plain.codebook.add_(100.0)
    plain.embed_sum.copy_(plain.codebook)
    for _ in range(80):
        plain(z)
    assert float(plain(z).perplexity) < 1.5  # without restarts the collapse stays


def test_v_prediction_helpers_invert_each_other():
    schedule = DDPMSchedule.linear(50)
    x0, noise, t = torch.randn(3, 2), torch.randn(3, 2), torch.tensor([0, 20, 49])
    x_t = schedule.q_sample(x0, t, noise)
    v = schedule.v_target(x0, t, noise)
    assert torch.allclose(schedule.eps_from_v(x_t, t, v), noise, atol=1e-5)
