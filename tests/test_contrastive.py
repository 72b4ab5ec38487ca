"""InfoNCE, the MWS mutual-information estimator, KL-farthest negatives and the clip augmentations, on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from seqbench.nn.augment import colour_distort, random_resized_crop, shuffle_frames, spectral_offset
from seqbench.nn.contrastive import info_nce, kl_farthest, mws_mutual_information, pairwise_log_density

torch.set_num_threads(1)

LOG_2PI = math.log(2 * math.pi)


def test_info_nce_with_explicit_negatives_matches_the_formula():
    anchor = torch.tensor([[1.0, 0.0]])
    positive = torch.tensor([[2.0, 0.0]])  # cosine 1
    negatives = torch.tensor([[[0.0, 3.0], [-1.0, 0.0]]])  # cosines 0 and -1
    # -log(e^{1/0.5} / (e^{1/0.5} + e^{0} + e^{-1/0.5}))
    expected = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-2)))
    assert info_nce(anchor, positive, negatives, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)
    shared = info_nce(anchor, positive, negatives[0], temperature=0.5)  # [K, D] negatives shared by all anchors
    assert shared.item() == pytest.approx(expected, rel=1e-6)
    # dot product instead of cosine: similarities 2, 0, -1 at temperature 1
    dot = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-1)))
    assert info_nce(anchor, positive, negatives, temperature=1.0, cosine=False).item() == pytest.approx(dot, rel=1e-6)


def test_info_nce_in_batch_is_symmetric_nt_xent():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # each code: its pair at cosine 1, the other two codes at cosine 0 (itself excluded)
    expected = -math.log(math.e / (math.e + 2))
    assert info_nce(a, a.clone(), temperature=1.0).item() == pytest.approx(expected, rel=1e-6)
    # a code [B, T, D] is compared as one flattened vector
    seq = torch.randn(3, 4, 2)
    assert info_nce(seq, seq * 2).item() == pytest.approx(info_nce(seq.flatten(1), seq.flatten(1) * 2).item())
    with pytest.raises(ValueError, match="temperature"):
        info_nce(a, a, temperature=0.0)


def test_pairwise_log_density_is_the_gaussian_log_density_matrix():
    z = torch.tensor([[0.0], [1.0]])
    mean = torch.tensor([[0.0], [2.0]])
    logvar = torch.tensor([[0.0], [math.log(4.0)]])
    got = pairwise_log_density(z, mean, logvar)
    # [i, j] = log N(z_i; mean_j, var_j)
    expected = [[-0.5 * LOG_2PI, -0.5 * (LOG_2PI + math.log(4.0) + 4.0 / 4.0)],
                [-0.5 * (LOG_2PI + 1.0), -0.5 * (LOG_2PI + math.log(4.0) + 1.0 / 4.0)]]
    assert torch.allclose(got, torch.tensor(expected), atol=1e-6)


def _log_n(x: float, m: float) -> float:
    return -0.5 * (LOG_2PI + (x - m) ** 2)  # unit variance


def test_mws_mutual_information_matches_a_hand_computation():
    s = torch.tensor([[0.0], [1.0]])
    d = torch.tensor([[0.0], [2.0]])
    zeros = torch.zeros(2, 1)
    n = 100
    total = 0.0
    for i in range(2):
        a = [_log_n(s[i, 0].item(), s[j, 0].item()) for j in range(2)]
        b = [_log_n(d[i, 0].item(), d[j, 0].item()) for j in range(2)]
        lse = lambda v: math.log(sum(math.exp(x) for x in v))  # noqa: E731
        total += lse([x + y for x, y in zip(a, b)]) - lse(a) - lse(b) + math.log(2 * n)
    expected = total / 2
    got = mws_mutual_information(s, s, zeros, d, d, zeros, dataset_size=n)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert mws_mutual_information(s, s, zeros, d, d, zeros, dataset_size=n, clamp=False).item() == pytest.approx(expected)


def test_mws_is_log_n_when_the_static_code_says_nothing_about_the_clip():
    """Identical static posteriors: q(s, d) factorises inside the batch and only the log N offset is left."""
    torch.manual_seed(0)
    s = torch.randn(5, 3)
    s_mean, s_logvar = torch.zeros(5, 3), torch.zeros(5, 3)
    d_mean, d_logvar = torch.randn(5, 4, 2), torch.randn(5, 4, 2) * 0.1
    d = d_mean + 0.1 * torch.randn(5, 4, 2)
    got = mws_mutual_information(s, s_mean, s_logvar, d, d_mean, d_logvar, dataset_size=50, clamp=False)
    assert got.item() == pytest.approx(math.log(50), rel=1e-5)


def test_mws_averages_frames_and_clamps_each_estimate():
    torch.manual_seed(1)
    s, s_mean, s_logvar = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3) * 0.3
    d, d_mean, d_logvar = torch.randn(4, 5, 2), torch.randn(4, 5, 2), torch.randn(4, 5, 2) * 0.3
    whole = mws_mutual_information(s, s_mean, s_logvar, d, d_mean, d_logvar, dataset_size=1, clamp=False)
    frames = [mws_mutual_information(s, s_mean, s_logvar, d[:, t], d_mean[:, t], d_logvar[:, t], dataset_size=1,
                                     clamp=False) for t in range(5)]
    assert whole.item() == pytest.approx(sum(f.item() for f in frames) / 5, rel=1e-5)
    clamped = mws_mutual_information(s, s_mean, s_logvar, d, d_mean, d_logvar, dataset_size=1)
    assert clamped >= 0 and clamped >= whole
    with pytest.raises(ValueError, match="dataset_size"):
        mws_mutual_information(s, s_mean, s_logvar, d, d_mean, d_logvar, dataset_size=0)


def test_kl_farthest_picks_the_largest_kl():
    mean, logvar = torch.zeros(2, 1), torch.zeros(2, 1)
    mean[1] = 2.0
    bank = torch.tensor([[0.0], [3.0], [-1.0], [2.0]])
    # KL(N(m, 1) || N(b, 1)) = (m - b)^2 / 2: anchor 0 -> 0, 4.5, 0.5, 2; anchor 2 -> 2, 0.5, 4.5, 0
    picked = kl_farthest(mean, logvar, bank, torch.zeros(4, 1), k=2)
    assert picked.tolist() == [[1, 3], [2, 0]]
    with pytest.raises(ValueError, match="bank"):
        kl_farthest(mean, logvar, bank, torch.zeros(4, 1), k=5)


# -- augmentations -------------------------------------------------------------------------
def _clips(n: int = 3, frames: int = 5, size: int = 8) -> torch.Tensor:
    """A random static background per clip with a bright square moving one pixel per frame."""
    g = torch.Generator().manual_seed(0)
    x = (0.2 + 0.6 * torch.rand(n, 1, 3, size, size, generator=g)).repeat(1, frames, 1, 1, 1)
    for t in range(frames):
        x[:, t, :, 2:4, t:t + 2] = 0.95
    return x


def _motion_mask(x: torch.Tensor) -> torch.Tensor:
    return (x[:, 1:] - x[:, :-1]).abs().amax(dim=2) > 0


def test_shuffle_frames_keeps_the_multiset_of_frames():
    x = _clips()
    out = shuffle_frames(x, torch.Generator().manual_seed(0))
    flat = lambda v: v.flatten(2).sort(dim=1).values  # noqa: E731 - frames as a sorted multiset per clip
    assert torch.equal(flat(out), flat(x))
    assert not torch.equal(out, x)
    assert torch.equal(out, shuffle_frames(x, torch.Generator().manual_seed(0)))


def test_crop_is_identical_on_every_frame_and_full_scale_is_identity():
    x = _clips()
    assert torch.allclose(random_resized_crop(x, (1.0, 1.0)), x, atol=1e-5)
    still = x[:, :1].repeat(1, 4, 1, 1, 1)
    out = random_resized_crop(still, (0.5, 0.7), torch.Generator().manual_seed(0))
    assert out.shape == still.shape and torch.allclose(out, out[:, :1].expand_as(out))
    assert not torch.allclose(out, still)
    with pytest.raises(ValueError, match="scale"):
        random_resized_crop(x, (0.0, 1.0))


@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-1.0, 1.0)])
def test_colour_distortion_keeps_the_motion_mask_and_the_range(value_range):
    lo, hi = value_range
    x = _clips() * (hi - lo) + lo
    out = colour_distort(x, value_range, generator=torch.Generator().manual_seed(0))
    assert torch.equal(_motion_mask(out), _motion_mask(x))  # the same pixels move, nothing else does
    assert out.min() >= lo and out.max() <= hi
    assert (out - x).abs().amax(dim=(1, 2, 3, 4)).min() > 1e-3  # every clip's colours changed
    with pytest.raises(ValueError, match="mix"):
        colour_distort(x, value_range, mix=0.5)


def test_spectral_offset_keeps_every_frame_difference():
    x = torch.randn(4, 6, 10, 1, 1)
    out = spectral_offset(x, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, 1:] - out[:, :-1], x[:, 1:] - x[:, :-1], atol=1e-5)
    offset = (out - x)[:, 0, :, 0, 0]
    assert (offset.abs().amax(dim=1) > 0).all()
    assert torch.allclose(offset[:, 1:] - offset[:, :-1], (offset[:, 1:] - offset[:, :-1])[:, :1].expand(-1, 9),
                          atol=1e-5)  # gain + a linear tilt over the bins
