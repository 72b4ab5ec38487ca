"""The embedded moving-digits set: shapes, labels, trajectories, split, determinism, learnability."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from seqbench.errors import ConfigError

from seqbench.datasets.moving_digits import DIRECTIONS, MOTIONS, MovingDigits, render, trajectories


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return MovingDigits(root=tmp_path_factory.mktemp("digits"))


def test_shapes_labels_split_and_spec(digits):
    train, test = digits.split("train"), digits.split("test")
    assert train.x.shape[1:] == (8, 1, 32, 32) and train.x.dtype == np.uint8
    assert len(train) + len(test) == 1797 * 3 and len(test) == 359 * 3
    assert not set(train.identity) & set(test.identity)  # images never cross splits
    assert set(train.labels["digit"]) == set(test.labels["digit"]) == set(range(10))
    counts = np.bincount(train.labels["motion"], minlength=10)
    assert counts.min() > 0.8 * counts.mean()
    for image in np.unique(train.identity)[:50]:  # three distinct motions, one digit per image
        rows = train.identity == image
        assert len(set(train.labels["motion"][rows])) == 3 and len(set(train.labels["digit"][rows])) == 1
    spec = digits.spec
    assert MovingDigits.embedded
    assert (spec.frames, spec.channels, spec.height) == (8, 1, 32) and spec.identity_label == "image"
    assert spec.has_keypoints and spec.keypoint_names == ("centre",)
    assert spec.label("motion").class_names == MOTIONS and spec.label("digit").kind == "static"


def test_keypoints_follow_the_digit_and_trajectories_match_their_label(digits):
    train = digits.split("train")
    x = np.asarray(train.x[:300, :, 0], dtype=float)
    ys, xs = np.mgrid[0:32, 0:32]
    mass = x.sum(axis=(2, 3))
    centre = np.stack([(x * xs).sum(axis=(2, 3)) / mass, (x * ys).sum(axis=(2, 3)) / mass], axis=-1)
    assert np.abs(centre - (train.keypoints[:300, :, 0] - 0.5)).max() < 6  # ink centre near the box centre
    steps = np.diff(train.keypoints[:, :, 0], axis=1)  # [N, 7, 2]
    line = train.labels["motion"] < 8
    expected = DIRECTIONS[train.labels["motion"][line]] * 2
    assert np.array_equal(steps[line], np.repeat(expected[:, None], 7, axis=1))
    kp = train.keypoints[~line, :, 0]
    radius = np.linalg.norm(kp - 16.0, axis=-1)
    assert np.abs(radius - 6).max() <= 1.0  # circles of radius 6 around the canvas centre
    assert train.keypoints.min() >= 8 and train.keypoints.max() <= 24  # the 16 px digit stays on the canvas


def test_render_and_trajectories_directly():
    rng = np.random.default_rng(0)
    pos = trajectories(np.arange(10), 8, 16, rng)
    assert pos.min() >= 0 and pos.max() <= 16
    clip = render(np.full((10, 16, 16), 200, np.uint8), pos, 32)
    assert clip.shape == (10, 8, 1, 32, 32) and (clip > 0).sum(axis=(2, 3, 4)).min() == 256


def test_deterministic_and_learnable(digits, tmp_path):
    again = MovingDigits(root=tmp_path / "again")
    assert again.spec.fingerprint == digits.spec.fingerprint
    assert MovingDigits(root=tmp_path / "other", seed=1).spec.fingerprint != digits.spec.fingerprint
    from sklearn.linear_model import RidgeClassifier

    train, test = digits.split("train"), digits.split("test")

    def aligned(split, n):  # the digit cut out of frame 0 at its keypoint
        x = np.asarray(split.x[:n, 0, 0], dtype=np.float64) / 255.0
        top_left = (split.keypoints[:n, 0, 0] - 8).astype(int)
        return np.stack([x[i, y:y + 16, x0:x0 + 16] for i, (x0, y) in enumerate(top_left)]).reshape(n, -1)

    probe = RidgeClassifier(alpha=1.0, solver="svd").fit(aligned(train, 3000), train.labels["digit"][:3000])
    assert probe.score(aligned(test, 600), test.labels["digit"][:600]) > 0.85

    def ink_path(split, n):  # centre of mass of every frame, from the pixels alone
        x = np.asarray(split.x[:n, :, 0], dtype=np.float64)
        ys, xs = np.mgrid[0:32, 0:32]
        mass = x.sum(axis=(2, 3))
        return np.concatenate([(x * xs).sum(axis=(2, 3)) / mass, (x * ys).sum(axis=(2, 3)) / mass], axis=1)

    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(3).fit(ink_path(train, 3000), train.labels["motion"][:3000])
    assert knn.score(ink_path(test, 600), test.labels["motion"][:600]) > 0.9


def test_options_are_checked():
    with pytest.raises(ConfigError, match="size"):
        MovingDigits(size=48)
    with pytest.raises(ConfigError, match="frames"):
        MovingDigits(frames=12)
    with pytest.raises(ConfigError, match="no option"):
        MovingDigits(colour=True)
    big = MovingDigits(size=64, motions_per_digit=1)
    assert big.options["size"] == 64
