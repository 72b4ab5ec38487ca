"""DiViD on tiny shapes: encoder structure, shared noise, losses, DDIM/DDPM decoding, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqbench.config import PROFILES
from seqbench.data import SplitData, carve_validation
from seqbench.errors import ConfigError
from seqbench.method import Batch
from seqbench.methods.divid import DiViD, DiViDConfig
from seqbench.trainer import Trainer
from seqbench.types import DataSpec, Factors

TINY = dict(token_dim=8, enc_base=8, enc_mult=(1, 2), enc_res_blocks=1, static_hidden=16, lstm_hidden=4,
            dyn_heads=2, base=8, channel_mult=(1, 2), num_res_blocks=1, attn_levels=(1,), num_heads=2,
            diffusion_steps=20, sampler_steps=4, batch_size=4, steps=4, lr=1e-3, val_every=2,
            checkpoint_every=2, log_every=2)


def spec16(frames: int = 4) -> DataSpec:
    return DataSpec("tiny", "video", frames, 3, 16, 16, fingerprint="tiny-video")


def clips(n: int = 2, frames: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, frames, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def build(**overrides) -> DiViD:
    torch.manual_seed(0)
    return DiViD(DiViDConfig(**{**TINY, **overrides}), spec16())


def test_profiles_resolve_and_validate():
    for profile in PROFILES:
        DiViDConfig.for_profile(profile, "bodies")
    paper = DiViDConfig.for_profile("paper")
    assert (paper.token_dim, paper.static_hidden, paper.enc_base, paper.base, paper.dyn_heads) == (256, 1024, 128, 128, 8)
    assert paper.attn_levels == (1, 2, 3) and paper.diffusion_steps == 1000
    DiViD(DiViDConfig.for_profile("smoke"), DataSpec("s", "video", 8, 3, 64, 64))
    with pytest.raises(ConfigError, match="sampler"):
        DiViDConfig(sampler="euler")
    assert DiViD.supports(DataSpec("a", "audio", 4, 10, 1, 1)) is not None


def test_static_token_reads_only_the_first_frame_and_dynamics_only_residuals():
    model = build().eval()
    x = clips()
    s, d = model.tokens(x)
    assert s.shape == (2, 8) and d.shape == (2, 4, 8)
    later = x.clone()
    later[:, 1:] = torch.rand_like(later[:, 1:])
    assert torch.allclose(model.tokens(later)[0], s)  # frames 2..T do not touch s
    still = x[:, :1].expand(-1, 4, -1, -1, -1)  # a still clip has zero residuals ...
    other_still = clips(2, 1, seed=9).expand(-1, 4, -1, -1, -1)
    assert torch.allclose(model.tokens(still)[1], model.tokens(other_still)[1], atol=1e-6)  # ... whatever it shows


def test_context_is_static_plus_own_dynamic_token():
    s, d = torch.randn(2, 8), torch.randn(2, 3, 8)
    ctx = build().context(s, d)
    assert ctx.shape == (6, 2, 8)
    assert torch.equal(ctx[4, 0], s[1]) and torch.equal(ctx[4, 1], d[1, 1])


def test_a_dynamic_bottleneck_narrows_the_code_and_adds_noise_only_in_training():
    """``dynamic_dim`` / ``dynamic_noise``: the dynamic code is 3 wide (the context still gets token_dim),
    and training draws noise on it while encoding stays deterministic."""
    model = build(dynamic_dim=3, dynamic_noise=0.5)
    x = clips()
    s, d = model.tokens(x)
    assert s.shape == (2, 8) and d.shape == (2, 4, 3) and model.context(s, d).shape == (8, 2, 8)
    assert torch.equal(model.encode(x).dynamic, model.encode(x).dynamic)
    model.train()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    noisy = model.losses(x, generator=g())["eps_mse"]
    quiet = build(dynamic_dim=3, dynamic_noise=0.0)
    quiet.load_state_dict(model.state_dict())
    quiet.train()
    assert not torch.equal(noisy, quiet.losses(x, generator=g())["eps_mse"])
    model.eval(), quiet.eval()  # validation: no noise, the same losses as the noise-free model
    assert torch.equal(model.losses(x, generator=g())["eps_mse"], quiet.losses(x, generator=g())["eps_mse"])


def test_training_noise_is_shared_across_frames():
    model = build()
    seen = []
    original = model.schedule.q_sample

    def spy(x0, t, noise):
        seen.append((t.clone(), noise.clone()))
        return original(x0, t, noise)

    model.schedule.q_sample = spy
    losses = model.training_step(Batch(clips(), {}, torch.arange(2)))
    assert set(losses) == {"loss", "eps_mse", "ortho"} and torch.isfinite(losses["loss"])
    t, noise = seen[0]
    noise = noise.reshape(2, 4, 3, 16, 16)
    assert torch.equal(noise[:, 0], noise[:, 3]) and not torch.equal(noise[0, 0], noise[1, 0])
    assert torch.equal(t.reshape(2, 4)[:, 0], t.reshape(2, 4)[:, 3])
    model2 = build(shared_noise=False)
    model2.schedule.q_sample = spy
    model2.training_step(Batch(clips(), {}, torch.arange(2)))
    unshared = seen[-1][1].reshape(2, 4, 3, 16, 16)
    assert not torch.equal(unshared[:, 0], unshared[:, 3])


def test_loss_includes_weighted_orthogonality_and_trains_the_encoder():
    model = build(ortho_weight=2.0, loss_frames=2)
    losses = model.training_step(Batch(clips(), {}, torch.arange(2)))
    assert torch.isclose(losses["loss"], losses["eps_mse"] + 2.0 * losses["ortho"])
    losses["loss"].backward()
    assert model.static_encoder[0].weight.grad.abs().sum() > 0  # through the orthogonality term from step 0


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_decode_is_deterministic_under_a_generator_and_in_range(sampler):
    model = build(sampler=sampler).eval()
    factors = model.encode(clips())
    a = model.decode(factors, generator=torch.Generator().manual_seed(3))
    b = model.decode(factors, generator=torch.Generator().manual_seed(3))
    c = model.decode(factors, generator=torch.Generator().manual_seed(4))
    assert a.shape == (2, 4, 3, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1  # x0 clipping keeps decodes in the value range
    assert model.nfe == (20 if sampler == "ddpm" else 4)
    swapped = model.decode(Factors(factors.static, factors.dynamic.flip(0)), generator=torch.Generator())
    assert swapped.shape == a.shape


def test_decode_shares_the_start_noise_across_frames():
    """With an untrained (zero-output) U-Net, DDIM maps x_T deterministically, so frames of one clip match."""
    model = build().eval()
    out = model.decode(model.encode(clips()), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, 0], out[:, 3]) and not torch.allclose(out[0, 0], out[1, 0])


def test_trainer_fit(tmp_path):
    rng = np.random.default_rng(0)
    data = SplitData(x=(rng.random((12, 4, 3, 16, 16)) * 255).astype(np.uint8), labels={}, identity=np.arange(12))
    train, val = carve_validation(data, 0.25)
    model = build(loss_frames=2)
    result = Trainer(model, train, val, device=torch.device("cpu"), seed=0, workdir=tmp_path, progress=False).fit()
    assert result.steps == 4 and result.best_val is not None
    assert not DiViD.can_sample()


def test_v_prediction_converts_to_the_true_noise():
    """An oracle network that outputs the true v must give the true eps to the samplers, and zero loss."""
    model = build(prediction="v", loss_frames=None, ortho_weight=0.0)
    x0 = torch.rand(3, 3, 16, 16) * 2 - 1
    noise = torch.randn(3, 3, 16, 16)
    t = torch.tensor([0, 10, 19])
    x_t = model.schedule.q_sample(x0, t, noise)
    abar = model.schedule.at(model.schedule.alphas_cumprod, t, x0)
    v = abar.sqrt() * noise - (1 - abar).sqrt() * x0

    class Oracle(torch.nn.Module):
        def forward(self, x, steps, context=None):
            return v

    model.unet = Oracle()
    assert torch.allclose(model.eps(x_t, t, None), noise, atol=1e-4)


def test_a_content_free_dynamic_path_trains_d_to_ignore_colours_and_s_to_ignore_left_and_right():
    """``colour_invariance`` adds the distance between the dynamic codes of a clip and of its colour-
    distorted copy (and it falls when trained on alone); ``static_flip`` = 1 makes the static encoder
    read the mirrored first frame in training, never at evaluation."""
    model = build(colour_invariance=1.0, static_flip=1.0)
    x = clips()
    model.train()
    out = model.losses(x, generator=torch.Generator().manual_seed(0))
    assert out["colour_invariance"] > 0 and torch.isfinite(out["loss"])
    x0 = model.to_model_space(x)
    flip_only = build(static_flip=1.0)
    flip_only.train()
    s_flipped, _ = flip_only.tokens(x0, x0[:, 0].flip(-1))
    s_train, _, _ = flip_only._training_tokens(x0, torch.Generator().manual_seed(0))
    assert torch.allclose(s_train, s_flipped, atol=1e-5)
    model.eval()
    assert "colour_invariance" not in model.losses(x, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(model.encode(x).static, model.encode(x.flip(-1)).static)
    # the invariance term alone pulls the two codes together
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for step in range(30):
        _, _, inv = model._training_tokens(x0, torch.Generator().manual_seed(step % 2))
        first = first if first is not None else float(inv)
        opt.zero_grad()
        inv.backward()
        opt.step()
    assert float(inv) < 0.5 * first


def test_a_pooled_static_encoder_gives_a_static_token_blind_to_layout_and_facing():
    """``static_encoder="pooled"`` reads the first frame through pixel-wise features averaged over the
    frame: the static token is unchanged by mirroring or shuffling the first frame's pixels (the
    paper's MLP on the flattened embedding is not), it still depends on the colours, and it trains."""
    model = build(static_encoder="pooled")
    model.eval()
    x = clips()
    s = model.encode(x).static
    perm = torch.randperm(x.shape[-1] * x.shape[-2], generator=torch.Generator().manual_seed(0))
    shuffled = x.clone()
    shuffled[:, 0] = x[:, 0].flatten(-2)[..., perm].reshape(x[:, 0].shape)
    assert torch.allclose(model.encode(x.flip(-1)).static, s, atol=1e-5)
    assert torch.allclose(model.encode(shuffled).static, s, atol=1e-5)
    assert not torch.allclose(model.encode(1 - x).static, s, atol=1e-3)
    assert not torch.allclose(build().eval().encode(x.flip(-1)).static, build().eval().encode(x).static, atol=1e-3)
    model.train()
    out = model.losses(x, generator=torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert model.static_pool.body[0].weight.grad.abs().sum() > 0
    # a 3x3 kernel sees local shape (here: brightness rising to the right), so it tells a frame from its
    # mirror, unless static_mirror pools both
    ramp = torch.linspace(-1, 1, 16).expand(2, 3, 16, 16).contiguous()
    wide = build(static_encoder="pooled", static_kernel=3).static_pool
    gap = (wide(ramp.flip(-1)) - wide(ramp)).abs().max()
    assert gap > 0.05 * wide(ramp).abs().max()
    mirrored = build(static_encoder="pooled", static_kernel=3, static_mirror=True)
    assert torch.allclose(mirrored.static_pool(ramp.flip(-1)), mirrored.static_pool(ramp), atol=1e-6)
    assert torch.allclose(mirrored.eval().encode(x.flip(-1)).static, mirrored.encode(x).static, atol=1e-5)


def test_a_row_pooled_static_encoder_keeps_heights_but_not_left_and_right():
    """``static_encoder="rows"`` averages the per-pixel features over each row: the static token is
    unchanged by mirroring the first frame or by shuffling pixels within a row, but, unlike the
    frame-wide mean, it changes when the same colours move to other rows (hair above vs below the top)."""
    model = build(static_encoder="rows").eval()
    x = clips()
    s = model.encode(x).static
    assert model.static_pool.out_dim == model.config.static_width * x.shape[-2]
    assert torch.allclose(model.encode(x.flip(-1)).static, s, atol=1e-5)
    within_rows = x.clone()
    within_rows[:, 0] = x[:, 0][..., torch.randperm(x.shape[-1], generator=torch.Generator().manual_seed(1))]
    assert torch.allclose(model.encode(within_rows).static, s, atol=1e-5)
    upside_down = x.clone()
    upside_down[:, 0] = x[:, 0].flip(-2)
    assert not torch.allclose(model.encode(upside_down).static, s, atol=1e-3)
    frame_wide = build(static_encoder="pooled").eval()
    assert torch.allclose(frame_wide.encode(upside_down).static, frame_wide.encode(x).static, atol=1e-5)
    model.train()
    model.losses(x, generator=torch.Generator().manual_seed(0))["loss"].backward()
    assert model.static_pool.body[0].weight.grad.abs().sum() > 0
    # static_reduce="max": which colours occur in each row, not how many pixels have them - a row whose
    # coloured run is widened (a figure facing the viewer, not sideways) gives the same token
    maxed = build(static_encoder="rows", static_reduce="max").eval()
    narrow = torch.zeros(1, 3, 16, 16)
    narrow[:, 0, 4:12, 7:9] = 1.0  # a red bar two pixels wide
    wide = narrow.clone()
    wide[:, 0, 4:12, 5:11] = 1.0  # the same bar, six pixels wide
    assert torch.allclose(maxed.static_pool(wide), maxed.static_pool(narrow), atol=1e-6)
    assert not torch.allclose(model.static_pool(wide), model.static_pool(narrow), atol=1e-3)
    lower = torch.zeros_like(narrow)
    lower[:, 0, 8:16, 7:9] = 1.0  # the same bar, lower in the frame
    assert not torch.allclose(maxed.static_pool(lower), maxed.static_pool(narrow), atol=1e-3)
    maxed.train()
    maxed.losses(x, generator=torch.Generator().manual_seed(0))["loss"].backward()
    assert maxed.static_pool.body[0].weight.grad.abs().sum() > 0


def test_divid_refuses_an_unknown_static_encoder():
    with pytest.raises(ConfigError, match="static_encoder"):
        DiViDConfig(static_encoder="pool")
    with pytest.raises(ConfigError, match="static_kernel"):
        DiViDConfig(static_kernel=2)
    with pytest.raises(ConfigError, match="static_reduce"):
        DiViDConfig(static_reduce="median")
