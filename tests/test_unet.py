"""The shared diffusion toolkit: U-Net conditioning routes, attention, quantizers, VQ autoencoder, priors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seqbench.data import SplitData
from seqbench.nn import (CrossAttention, GumbelQuantizer, LatentDiffusionPrior, MLPDenoiser, SpatialTransformer,
                         RunningStandardizer, TimestepEmbedding, TokenSelfAttention, UNet, UNetEncoder, VectorQuantizer, VQAEConfig,
                         VQAutoencoder, codebook_perplexity, load_or_train_vqae, orthogonality_loss,
                         sinusoidal_embedding)
from seqbench.nn.attention import group_norm
from seqbench.nn.vqae import train_vqae, vqae_key
from seqbench.utils import content_hash

TINY = dict(base=8, channel_mult=(1, 2), num_res_blocks=1, num_heads=2)


def _perturb_outputs(net: torch.nn.Module) -> None:
    """Zero-initialised output layers make a fresh net constant; give them weights to test wiring."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def test_group_norm_adapts_to_narrow_widths():
    assert group_norm(64).num_groups == 32
    assert group_norm(24).num_groups == 24
    assert group_norm(48).num_groups == 24


def test_sinusoidal_embedding_shapes_and_values():
    emb = sinusoidal_embedding(torch.tensor([0.0, 1.0]), 7)
    assert emb.shape == (2, 7)
    assert torch.allclose(emb[0, :3], torch.ones(3)) and torch.all(emb[:, -1] == 0)
    assert TimestepEmbedding(16, 32)(torch.arange(5)).shape == (5, 32)


@pytest.mark.parametrize("patch", [1, 2])
def test_unet_adagn_route_uses_the_conditioning_vector(patch):
    torch.manual_seed(0)
    net = UNet(3, 3, attn_levels=(1,), cond_dim=6, patch_size=patch, **TINY)
    _perturb_outputs(net)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([0.1, -0.3])
    out_a = net(x, t, cond=torch.zeros(2, 6))
    out_b = net(x, t, cond=torch.ones(2, 6))
    assert out_a.shape == x.shape
    assert not torch.allclose(out_a, out_b)
    with pytest.raises(ValueError, match="cond="):
        net(x, t)


def test_unet_is_zero_at_initialisation_and_checks_sizes():
    net = UNet(3, 3, attn_levels=(), **TINY)
    assert torch.all(net(torch.randn(1, 3, 8, 8), torch.tensor([3])) == 0)
    with pytest.raises(ValueError, match="divisible"):
        net(torch.randn(1, 3, 9, 9), torch.tensor([3]))
    with pytest.raises(ValueError, match="attention levels"):
        UNet(3, 3, attn_levels=(5,), **TINY)


def test_unet_cross_attention_route_routes_context_per_item():
    torch.manual_seed(0)
    net = UNet(3, 3, attn_levels=(1,), context_dim=5, **TINY)
    _perturb_outputs(net)
    assert any(isinstance(m, SpatialTransformer) for m in net.modules())
    x, t = torch.randn(1, 3, 8, 8).expand(2, -1, -1, -1), torch.tensor([10, 10])
    context = torch.randn(2, 2, 5)
    out = net(x, t, context=context)
    assert not torch.allclose(out[0], out[1])  # same input, different tokens -> different outputs
    same = net(x, t, context=context[:1].expand(2, -1, -1))
    assert torch.allclose(same[0], same[1], atol=1e-6)


def test_unet_encoder_shapes_fold_time():
    enc = UNetEncoder(3, 1, base=8, channel_mult=(1, 2, 2), num_res_blocks=1, attn_levels=(2,), flatten=True)
    assert enc.output_shape(16, 16) == (1, 4, 4)
    assert enc(torch.randn(2, 5, 3, 16, 16)).shape == (2, 5, 16)
    enc2 = UNetEncoder(3, 3, base=8, channel_mult=(1, 2), num_res_blocks=1, patch_size=2, middle=False)
    assert enc2(torch.randn(4, 3, 16, 16)).shape == (4, 3, 4, 4)


def test_attention_blocks():
    attn = CrossAttention(8, context_dim=4, num_heads=2)
    assert attn(torch.randn(3, 10, 8), torch.randn(3, 2, 4)).shape == (3, 10, 8)
    tok = TokenSelfAttention(8, num_heads=4)
    out = tok(torch.randn(2, 6, 8))
    assert out.shape == (2, 6, 8)
    assert torch.allclose(out.mean(-1), torch.zeros(2, 6), atol=1e-5)  # post-LayerNorm


def test_mlp_denoiser_with_and_without_condition():
    net = MLPDenoiser(6, hidden=16, depth=3, cond_dim=4)
    _perturb_outputs(net)
    x = torch.randn(5, 6, 1, 1)
    out = net(x, torch.rand(5), cond=torch.randn(5, 4))
    assert out.shape == x.shape
    assert MLPDenoiser(6, 3, hidden=16, depth=2)(torch.randn(5, 6), torch.rand(5)).shape == (5, 3)


def test_orthogonality_loss():
    s = torch.tensor([[1.0, 0.0]])
    assert orthogonality_loss(s, torch.tensor([[[0.0, 2.0], [0.0, -1.0]]])) == 0
    assert torch.isclose(orthogonality_loss(s, torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])), torch.tensor(0.5))
    with pytest.raises(ValueError):
        orthogonality_loss(torch.ones(1, 2), torch.ones(1, 3, 4))


def test_codebook_perplexity():
    ppl, usage = codebook_perplexity(torch.tensor([0, 1, 2, 3]), 8)
    assert torch.isclose(ppl, torch.tensor(4.0)) and torch.isclose(usage.sum(), torch.tensor(1.0))
    ppl, _ = codebook_perplexity(torch.zeros(10, dtype=torch.long), 8)
    assert torch.isclose(ppl, torch.tensor(1.0))


@pytest.mark.parametrize("ema", [True, False])
def test_vector_quantizer_straight_through_and_codebook_learning(ema):
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 2, ema=ema, decay=0.5, channel_dim=-1)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    opt = torch.optim.SGD(vq.parameters(), lr=0.5) if not ema else None
    for _ in range(60):
        z = centres[torch.randint(0, 4, (64,))] + 0.05 * torch.randn(64, 2)
        z.requires_grad_(True)
        out = vq(z)
        out.quantized.sum().backward()
        assert torch.allclose(z.grad, torch.ones_like(z))  # straight-through gradient
        if opt:
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    vq.eval()
    out = vq(centres)
    assert out.indices.unique().numel() >= 3
    assert out.perplexity > 2.5
    assert (out.quantized - centres).abs().max() < 0.5


def test_gumbel_quantizer_groups():
    gq = GumbelQuantizer(6, num_codes=5, code_dim=3, groups=2, channel_dim=1)
    out = gq(torch.randn(2, 6, 4, 4))
    assert out.quantized.shape == (2, 6, 4, 4) and out.indices.shape == (2, 4, 4, 2)
    out.quantized.sum().backward()
    assert gq.codebook.grad is not None and out.loss >= 0
    gq.eval()
    assert gq(torch.randn(2, 6, 4, 4)).quantized.shape == (2, 6, 4, 4)


def test_vqae_roundtrip_shapes_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQBENCH_CACHE", str(tmp_path))
    cfg = VQAEConfig(factor=4, base=8, num_codes=16, steps=3, batch_size=4)
    model = VQAutoencoder(3, cfg)
    z = model.encode(torch.randn(2, 3, 16, 16))
    assert z.shape == (2, 4, 4, 4) and model.decode(z).shape == (2, 3, 16, 16)
    split = SplitData(x=(np.random.default_rng(0).random((6, 2, 3, 16, 16)) * 255).astype(np.uint8), labels={})
    first = load_or_train_vqae(split, "fp", cfg)
    folder = tmp_path / "vqae" / content_hash(vqae_key("fp", 3, cfg), length=20)  # the model store's layout
    assert (folder / "model.pt").exists() and json.loads((folder / "meta.json").read_text())["steps"] == 3
    second = load_or_train_vqae(split, "fp", cfg)  # loaded, not retrained
    uncached = train_vqae(split, cfg)  # the same weights: the initial draw and the batches follow cfg.seed only
    for (k, a), b, c in zip(first.state_dict().items(), second.state_dict().values(), uncached.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu()) and torch.equal(a.cpu(), c.cpu()), k
    assert content_hash(vqae_key("other", 3, cfg), length=20) != folder.name


def test_running_standardizer_tracks_statistics():
    norm = RunningStandardizer(2, momentum=0.5)
    data = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    out = norm(data)  # first batch sets the statistics
    assert torch.allclose(out.mean(0), torch.zeros(2), atol=1e-6)
    assert torch.allclose(norm.inverse(out), data, atol=1e-4)
    norm.eval()
    norm(data + 100)
    assert torch.allclose(norm.mean, torch.tensor([2.0, 20.0]))  # frozen in eval mode


def test_latent_prior_learns_the_code_scale_and_is_reproducible():
    torch.manual_seed(0)
    prior = LatentDiffusionPrior(3, hidden=32, depth=2, sample_steps=10)  # DiffSDA's schedule
    opt = torch.optim.Adam(prior.parameters(), lr=3e-3)
    mean, std = torch.tensor([5.0, -3.0, 0.5]), torch.tensor([2.0, 0.5, 1.0])
    losses = []
    for _ in range(60):
        loss = prior.loss(mean + std * torch.randn(128, 3))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    prior.eval()
    samples = prior.sample(512, generator=torch.Generator().manual_seed(0))
    assert ((samples.mean(0) - mean).abs() < std).all()  # within one std of the codes' own scale
    assert ((samples.std(0) / std).log().abs() < np.log(2)).all()
    assert torch.equal(samples, prior.sample(512, generator=torch.Generator().manual_seed(0)))
