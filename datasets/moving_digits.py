"""``moving-digits``: handwritten digits moving on a black canvas, from scikit-learn's bundled digits.

No download: ``sklearn.datasets.load_digits()`` ships 1797 8x8 digits (16 grey levels) inside the
wheel. Each digit image is enlarged (nearest neighbour, to half the canvas) and moves over
``frames`` frames along one of 10 trajectories: the 8 compass directions in a straight line, or a
circle clockwise / anticlockwise. Static labels: ``digit`` (10) - and the image itself is the
identity; dynamic label: ``motion`` (10). Every image is shown with ``motions_per_digit``
different motions (seeded), so static and dynamic factors can be swapped within one identity.

Images are split 80/20 by a seeded permutation (``seed``): no image appears in both splits, every
digit class is in both. Canvas ``size`` 32 (digit 16 px, 2 px per frame) or 64 (digit 32 px, 4 px
per frame); 8 frames; 1 channel; values in [0, 1]. Keypoints: the centre of the digit's box in
every frame (``centre``). Deterministic from the options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from seqbench.dataset_lifecycle import GeneratedDataset, as_int
from seqbench.errors import ConfigError
from seqbench.hookspecs import hookimpl
from seqbench.media import ClipCacheWriter, require
from seqbench.types import LabelSpec


MOTIONS: tuple[str, ...] = ("north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west",
                            "circle-cw", "circle-ccw")
DIRECTIONS = np.array([(0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1)])  # (dx, dy), y down
SIZES = (32, 64)
TEST_FRACTION = 0.2


def trajectories(motion: np.ndarray, frames: int, free: int, rng: np.random.Generator) -> np.ndarray:
    """Top-left positions ``[N, frames, 2]`` (x, y) inside ``[0, free]`` for each motion index.

    Straight motions move ``free / 8`` px per frame from a random start that keeps the path on
    the canvas; circles have radius ``free * 3 / 8`` around the centre and a random phase.
    """
    n = len(motion)
    t = np.arange(frames)
    step = max(1, free // 8)
    out = np.zeros((n, frames, 2), dtype=np.int64)
    line = motion < 8
    direction = DIRECTIONS[np.minimum(motion, 7)]  # [N, 2]
    travel = step * (frames - 1)
    if travel > free:
        raise ConfigError(f"moving-digits: {frames} frames at {step} px per frame leave the canvas")
    lo = np.where(direction < 0, travel, 0)
    hi = np.where(direction > 0, free - travel, free)
    start = lo + np.floor(rng.random((n, 2)) * (hi - lo + 1)).astype(np.int64)
    out[line] = start[line, None, :] + direction[line, None, :] * step * t[None, :, None]
    circle = ~line
    radius = free * 3 / 8
    phase = rng.random(n) * 2 * np.pi
    sign = np.where(motion == 8, 1.0, -1.0)  # clockwise on screen (y down) is increasing angle
    angle = phase[:, None] + sign[:, None] * 2 * np.pi * t[None, :] / frames
    centre = free / 2
    circ = np.stack([centre + radius * np.cos(angle), centre + radius * np.sin(angle)], axis=-1)
    out[circle] = np.rint(circ[circle]).astype(np.int64)
    return out


def render(images: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """Clips ``[N, T, 1, size, size]`` uint8: image ``[N, d, d]`` pasted at each position (vectorised)."""
    n, frames, _ = positions.shape
    d = images.shape[-1]
    canvas = np.zeros((n, frames, size, size), dtype=np.uint8)
    rows = positions[:, :, 1, None] + np.arange(d)  # [N, T, d]
    cols = positions[:, :, 0, None] + np.arange(d)
    canvas[np.arange(n)[:, None, None, None], np.arange(frames)[None, :, None, None],
           rows[:, :, :, None], cols[:, :, None, :]] = images[:, None]
    return canvas[:, :, None]


class MovingDigits(GeneratedDataset):
    """scikit-learn digits moving along 10 trajectories: digit (static) x motion (dynamic)."""

    name = "moving-digits"
    version = "1"
    family = "digits"
    description = ("scikit-learn's 1797 handwritten digits moving on a canvas: digit (static, 10), motion "
                   "(dynamic: 8 directions + 2 circles), 8 frames, 32x32 or 64x64, no download")
    defaults: ClassVar[dict[str, Any]] = {"size": 32, "frames": 8, "motions_per_digit": 3, "seed": 0}
    settings_keys = ("size", "frames", "motions_per_digit", "seed")
    identity_label = "image"

    def validate(self, options: dict[str, Any]) -> dict[str, Any]:
        out = dict(options)
        n = self.name
        out["size"] = as_int(out["size"], "size", n)
        if out["size"] not in SIZES:
            raise ConfigError(f"dataset {n!r}: size={out['size']} is not available; use 32 (default) or 64")
        out["frames"] = as_int(out["frames"], "frames", n, 2)
        if out["frames"] > 9:
            raise ConfigError(f"dataset {n!r}: frames={out['frames']}: at most 9 (straight paths must stay on the canvas)")
        out["motions_per_digit"] = as_int(out["motions_per_digit"], "motions_per_digit", n, 1)
        if out["motions_per_digit"] > len(MOTIONS):
            raise ConfigError(f"dataset {n!r}: motions_per_digit={out['motions_per_digit']}: at most {len(MOTIONS)}")
        out["seed"] = as_int(out["seed"], "seed", n, 0)
        return out

    def generate(self, target: Path) -> Path:
        datasets = require("sklearn.datasets", "scikit-learn")
        o = self.options
        digits = datasets.load_digits()
        images, classes = digits.images, digits.target.astype(np.int64)  # [1797, 8, 8] in 0..16
        zoom = o["size"] // 16
        big = np.rint(np.kron(images, np.ones((zoom, zoom))) * 255.0 / 16.0).astype(np.uint8)
        rng = np.random.default_rng([o["seed"], 77])
        order = rng.permutation(len(images))
        n_test = int(round(len(images) * TEST_FRACTION))
        split_of = np.zeros(len(images), dtype=bool)
        split_of[order[:n_test]] = True  # True = test
        k = o["motions_per_digit"]
        motions = np.argsort(rng.random((len(images), len(MOTIONS))), axis=1)[:, :k]  # k distinct motions per image
        image = np.repeat(np.arange(len(images)), k)
        motion = motions.reshape(-1)
        positions = trajectories(motion, o["frames"], o["size"] - big.shape[-1], rng)
        clips = render(big[image], positions, o["size"])
        centres = (positions + big.shape[-1] / 2.0).astype(np.float32)[:, :, None, :]  # [N, T, 1, (x, y)]
        is_test = split_of[image]
        labels = (LabelSpec("digit", 10, "static", tuple(str(i) for i in range(10))),
                  LabelSpec("motion", len(MOTIONS), "dynamic", MOTIONS))
        rows = {"train": int((~is_test).sum()), "test": int(is_test.sum())}
        with ClipCacheWriter(target, rows, clips.shape[1:], np.uint8) as writer:
            for split, mask in (("train", ~is_test), ("test", is_test)):
                writer.add(split, clips[mask], labels=np.stack([classes[image], motion], axis=1)[mask],
                           identity=image[mask], ids=(image * len(MOTIONS) + motion)[mask],
                           keypoints=centres[mask])
            meta = self.base_meta(labels, [str(i) for i in range(len(images))])
            meta.update({"value_range": [0.0, 1.0], "keypoint_names": ["centre"],
                         "keypoint_convention": "x, y in pixels of the digit box centre; pixel (i, j) spans "
                                                "[j, j+1) x [i, i+1)",
                         "split_rule": f"by image: seeded permutation, {n_test} of {len(images)} images test"})
            return writer.finish(meta)


@hookimpl
def seqbench_add_datasets() -> list[type[GeneratedDataset]]:
    return [MovingDigits]
