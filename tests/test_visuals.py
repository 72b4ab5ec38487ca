"""The rendering layer: known clips land as known tiles at known positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqbench.visuals import GAP, fixed_clip_indices, layout_swap_grid, save_png, swap_grid, to_uint8

T, H, W = 3, 4, 5


def solid(value: int) -> np.ndarray:
    """A clip ``[T, H, W, 3]`` whose frame t is filled with ``value + t``."""
    return np.stack([np.full((H, W, 3), value + t, np.uint8) for t in range(T)])


def test_swap_grid_layout_puts_every_tile_where_it_belongs():
    static = np.stack([solid(10), solid(20)])  # n = 2 static donors
    dynamic = np.stack([solid(100), solid(110), solid(120)])  # m = 3 dynamic donors
    swaps = np.stack([np.stack([solid(200 + 10 * i + j) for j in range(3)]) for i in range(2)])
    image = layout_swap_grid(static, dynamic, swaps)
    strip_w = T * W
    assert image.shape == (3 * H + 2 * GAP, W + 3 * (strip_w + GAP), 3)

    def tile(row: int, col: int, frame: int) -> np.ndarray:
        top = row * (H + GAP)
        left = 0 if col == 0 else W + GAP + (col - 1) * (strip_w + GAP) + frame * W
        return image[top:top + H, left:left + W]

    assert (tile(0, 0, 0) == 255).all()  # empty corner
    for j in range(3):
        for t in range(T):
            assert (tile(0, j + 1, t) == 100 + 10 * j + t).all()  # top margin: the dynamic donors' strips
    for i in range(2):
        assert (tile(i + 1, 0, 0) == 10 * (i + 1)).all()  # left margin: the static donor's first frame
        for j in range(3):
            for t in range(T):
                assert (tile(i + 1, j + 1, t) == 200 + 10 * i + j + t).all()
    assert (image[H:H + GAP] == 255).all()  # separators


class _Echo(torch.nn.Module):
    """A 'method' whose decode paints static code s and dynamic code d_t into the frame: s in channel 0,
    d_t in channel 1, so a grid's tiles say which codes were decoded."""

    device = torch.device("cpu")

    def encode(self, x):
        from seqbench.types import Factors

        return Factors(static=x[:, 0, 0, 0, 0][:, None], dynamic=x[:, :, 1, 0, 0][..., None])

    def decode(self, factors, *, generator=None):
        b, t = factors.dynamic.shape[:2]
        out = torch.zeros(b, t, 3, H, W)
        out[:, :, 0] = factors.static[:, 0, None, None, None]
        out[:, :, 1] = factors.dynamic[..., 0, None, None]
        return out


def test_swap_grid_decodes_static_of_the_row_and_dynamics_of_the_column():
    def clip(s: float, d0: float) -> torch.Tensor:
        x = torch.zeros(T, 3, H, W)
        x[:, 0] = s
        x[:, 1] = (d0 + torch.arange(T, dtype=torch.float32) / 10)[:, None, None]
        return x

    static = torch.stack([clip(0.2, 0.0), clip(0.4, 0.0)])
    dynamic = torch.stack([clip(0.0, 0.1), clip(0.0, 0.5)])
    image = swap_grid(_Echo(), static, dynamic, (0.0, 1.0))
    left = W + GAP
    for i, s in enumerate((0.2, 0.4)):
        for j, d0 in enumerate((0.1, 0.5)):
            for t in range(T):
                top = (i + 1) * (H + GAP)
                x0 = left + j * (T * W + GAP) + t * W
                pixel = image[top, x0]
                assert abs(int(pixel[0]) - s * 255) <= 1 and abs(int(pixel[1]) - (d0 + t / 10) * 255) <= 1


def test_fixed_clips_are_the_same_for_every_call_and_png_round_trips(tmp_path):
    assert (fixed_clip_indices(100, 6) == fixed_clip_indices(100, 6)).all()
    with pytest.raises(ValueError, match="test split has 5"):
        fixed_clip_indices(5, 6)
    image = to_uint8(torch.rand(2, 3, 8, 8), (0.0, 1.0))
    from PIL import Image

    path = save_png(image[0], tmp_path / "a.png", scale=2)
    assert np.asarray(Image.open(path)).shape == (16, 16, 3)


# -- unconditional swaps, PCA traversals, audio panels, zero-shot --------------------------------

class _NoisyEcho(_Echo):
    """``_Echo`` with a prior and a decode that adds noise from the generator: a traversal that
    decoded with another generator state than the plain reconstruction would show it."""

    name = "noisy-echo"

    @staticmethod
    def can_sample() -> bool:
        return True

    def sample(self, n, frames, which, *, generator=None):
        if which == "static":
            return torch.full((n, 1), 0.8) - 0.2 * torch.arange(n, dtype=torch.float32)[:, None]
        return (0.3 + 0.1 * torch.arange(n, dtype=torch.float32))[:, None, None].expand(n, frames, 1).clone()

    def decode(self, factors, *, generator=None):
        out = super().decode(factors)
        return out + 0.01 * torch.randn(out.shape, generator=generator)


def _clip(s: float, d0: float) -> torch.Tensor:
    x = torch.zeros(T, 3, H, W)
    x[:, 0] = s
    x[:, 1] = (d0 + torch.arange(T, dtype=torch.float32) / 10)[:, None, None]
    return x


def test_unconditional_swaps_draw_one_code_per_row_and_freeze_the_columns_factor():
    from seqbench.visuals import unconditional_swaps

    clips = torch.stack([_clip(0.2, 0.1), _clip(0.4, 0.5)])
    method = _Echo()
    method.decode = lambda factors, *, generator=None: _Echo.decode(method, factors)  # noise-free decode
    method.sample, method.can_sample = _NoisyEcho.sample.__get__(method), lambda: True
    for which in ("static", "dynamic"):
        image = unconditional_swaps(method, clips, (0.0, 1.0), which=which, count=2)
        assert image.shape == (3 * H + 2 * GAP, 2 * T * W + GAP, 3)
        for k in range(2):  # row k + 1: the k-th code from the prior
            for j, (s, d0) in enumerate(((0.2, 0.1), (0.4, 0.5))):
                for t in range(T):
                    pixel = image[(k + 1) * (H + GAP), j * (T * W + GAP) + t * W].astype(int)
                    if which == "static":  # new appearance per row, the column's motion
                        expected = ((0.8 - 0.2 * k) * 255, (d0 + t / 10) * 255)
                    else:  # the column's appearance, new motion per row (constant over time here)
                        expected = (s * 255, (0.3 + 0.1 * k) * 255)
                    assert abs(pixel[0] - expected[0]) <= 1 and abs(pixel[1] - expected[1]) <= 1


def test_unconditional_swaps_refuse_a_method_without_a_prior():
    from seqbench.errors import NotApplicable
    from seqbench.visuals import unconditional_swaps

    method = _Echo()
    method.can_sample = lambda: False
    with pytest.raises(NotApplicable, match="no sample"):
        unconditional_swaps(method, torch.stack([_clip(0.2, 0.1)]), (0.0, 1.0), which="static")


def test_pca_shift_moves_standardised_codes_by_alpha_sqrt_eigenvalue():
    from seqbench.visuals import fit_pca

    rng = torch.Generator().manual_seed(0)
    codes = torch.randn(500, 3, generator=rng) * torch.tensor([5.0, 1.0, 0.1]) + torch.tensor([1.0, -2.0, 3.0])
    codes[:, 1] += 0.5 * codes[:, 0]
    basis = fit_pca(codes)
    assert (basis.variances[:-1] >= basis.variances[1:]).all()
    z = lambda c: (c - basis.mean) / basis.scale  # noqa: E731 - DiffSDA Eq. 9's standardisation
    for component in range(3):
        moved = basis.shift(codes[:4], component, 1.5)
        delta = z(moved) - z(codes[:4])
        expected = 1.5 * basis.variances[component].sqrt() * basis.components[component]
        assert torch.allclose(delta, expected.expand_as(delta), atol=1e-4)
    assert torch.equal(basis.shift(codes[:4], 0, 0.0), codes[:4])


@pytest.mark.parametrize("which", ["static", "dynamic"])
def test_pca_traversal_at_alpha_zero_is_the_plain_reconstruction(which):
    """Bit for bit, for a decoder that draws noise from the generator and for a real (untrained) DBSE."""
    from seqbench.plugins import load_plugins
    from seqbench.types import DataSpec
    from seqbench.visuals import collect_codes, fit_pca, pca_traversal, reconstruction_rows, traverse

    clips = torch.stack([_clip(0.2, 0.1), _clip(0.4, 0.5), _clip(0.7, 0.3)])
    toy = _NoisyEcho()
    spec = DataSpec(name="toy", modality="video", frames=8, channels=3, height=32, width=32, family="sprites")
    dbse_cls = load_plugins().methods.get("dbse")
    torch.manual_seed(0)
    dbse = dbse_cls(dbse_cls.Config.for_profile("smoke", "sprites"), spec).eval()
    video = torch.rand(6, 8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for method, x in ((toy, clips), (dbse, video)):
        basis = fit_pca(collect_codes(method, x, which))
        decoded = traverse(method, x, basis, which=which, component=0, alphas=(-2.0, 0.0, 2.0), seed=3)
        with torch.no_grad():
            plain = method.decode(method.encode(x), generator=torch.Generator().manual_seed(3))
        assert torch.equal(decoded[1], plain)
        assert not torch.equal(decoded[0], plain)  # the traversal does move the decode
    # In the picture: row (clip i, component c) = input strip, then alphas; the alpha-0 column is the reconstruction.
    image = pca_traversal(toy, clips[:2], fit_pca(collect_codes(toy, clips, which)), (0.0, 1.0), which=which,
                          components=1, alphas=(-1.0, 0.0, 1.0), seed=5)
    recon = reconstruction_rows(toy, clips[:2], (0.0, 1.0), seed=5)
    strip_w = T * W
    for i in range(2):
        traversed = image[i * (H + GAP):i * (H + GAP) + H, 2 * (strip_w + GAP):2 * (strip_w + GAP) + strip_w]
        real = image[i * (H + GAP):i * (H + GAP) + H, :strip_w]
        row = (2 * i + 1) * (H + GAP)
        assert (traversed == recon[row:row + H, :strip_w]).all()
        assert (real == to_uint8(clips[i], (0.0, 1.0)).transpose(1, 0, 2, 3).reshape(H, -1, 3)).all()


def test_spectrogram_panel_puts_bin_zero_at_the_bottom_and_time_left_to_right():
    from seqbench.visuals import AUDIO_STEP_PX, spectrogram

    frames, bins = 5, 7
    clip = torch.zeros(frames, bins, 1, 1)
    for t in range(frames):
        for f in range(bins):
            clip[t, f] = (10 * t + f) / 255
    panel = spectrogram(clip, (0.0, 1.0))
    assert panel.shape == (bins, frames * AUDIO_STEP_PX, 3)
    for t in range(frames):
        for f in range(bins):
            tile = panel[bins - 1 - f, t * AUDIO_STEP_PX:(t + 1) * AUDIO_STEP_PX]
            assert (tile == 10 * t + f).all()


def test_audio_swap_grid_uses_whole_spectrograms_on_the_margins():
    from seqbench.visuals import AUDIO_STEP_PX, swap_grid

    class AudioEcho(torch.nn.Module):
        device = torch.device("cpu")

        def encode(self, x):
            from seqbench.types import Factors

            return Factors(static=x[:, 0, 0, 0], dynamic=x[:, :, 1, 0])

        def decode(self, factors, *, generator=None):
            b, t = factors.dynamic.shape[:2]
            out = torch.zeros(b, t, 4, 1, 1)
            out[:, :, 0] = factors.static[:, None, :, None]
            out[:, :, 1] = factors.dynamic[..., None]
            return out

    def clip(s, d):
        x = torch.zeros(3, 4, 1, 1)
        x[:, 0], x[:, 1] = s, d
        return x

    static, dynamic = torch.stack([clip(0.2, 0.0), clip(0.6, 0.0)]), torch.stack([clip(0.0, 0.4)])
    image = swap_grid(AudioEcho(), static, dynamic, (0.0, 1.0), modality="audio")
    panel_w = 3 * AUDIO_STEP_PX
    assert image.shape == (3 * 4 + 2 * GAP, 2 * panel_w + GAP, 3)
    for i, s in enumerate((0.2, 0.6)):
        top = (i + 1) * (4 + GAP)
        assert abs(int(image[top + 3, 0, 0]) - s * 255) <= 1  # left margin: donor's bin 0 (bottom row)
        cell = image[top:top + 4, panel_w + GAP:]
        assert abs(int(cell[3, 0, 0]) - s * 255) <= 1 and abs(int(cell[2, 0, 0]) - 0.4 * 255) <= 1


def test_zero_shot_inputs_convert_grey_to_rgb_and_value_range_and_refuse_other_shapes():
    from seqbench.types import DataSpec
    from seqbench.visuals import adapt_clips, zero_shot_reason

    model = DataSpec(name="rgb", modality="video", frames=4, channels=3, height=8, width=8, value_range=(-1.0, 1.0))
    grey = DataSpec(name="grey", modality="video", frames=4, channels=1, height=8, width=8)
    assert zero_shot_reason(model, grey) is None
    x = torch.full((2, 4, 1, 8, 8), 0.75)
    adapted = adapt_clips(x, grey, model)
    assert adapted.shape == (2, 4, 3, 8, 8) and torch.allclose(adapted, torch.full_like(adapted, 0.5))
    small = DataSpec(name="small", modality="video", frames=4, channels=3, height=4, width=4)
    speech = DataSpec(name="speech", modality="audio", frames=4, channels=3, height=1, width=1)
    assert "4x4" in zero_shot_reason(model, small) and "audio" in zero_shot_reason(model, speech)
    with pytest.raises(ValueError, match="small"):
        adapt_clips(torch.zeros(1, 4, 3, 4, 4), small, model)


def test_render_pictures_isolates_each_picture(tmp_path):
    from PIL import Image

    from seqbench.types import DataSpec
    from seqbench.visuals import VisualInputs, render_pictures, write_pictures

    spec = DataSpec(name="toy", modality="video", frames=T, channels=3, height=H, width=W)
    clips = torch.stack([_clip(0.1 * k, 0.05 * k) for k in range(4)])
    inputs = VisualInputs(spec, clips, clips, {})
    images, missing = render_pictures(_NoisyEcho(), inputs)
    assert set(images) == {"recon", "swaps", "samples-static", "samples-dynamic", "traversal-static",
                           "traversal-dynamic"}
    assert missing["zeroshot"].startswith("not applicable")
    plain = _Echo()
    plain.can_sample = lambda: False
    images, missing = render_pictures(plain, inputs, ("recon", "samples"))
    assert set(images) == {"recon"} and "no sample" in missing["samples-static"]

    def broken(factors, *, generator=None):
        raise RuntimeError("decoder exploded")

    plain.decode = broken
    images, missing = render_pictures(plain, inputs, ("recon", "swaps"))
    assert images == {} and missing == {"recon": "RuntimeError: decoder exploded", "swaps": "RuntimeError: decoder exploded"}
    images, _ = render_pictures(_NoisyEcho(), inputs, ("swaps",))
    (path,) = write_pictures(images, tmp_path, spec)
    assert path.name == "swaps.png"
    assert np.asarray(Image.open(path)).shape[0] == images["swaps"].shape[0] * (64 // H)
