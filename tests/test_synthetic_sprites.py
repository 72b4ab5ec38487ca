"""The embedded ``synthetic-sprites`` dataset: determinism, layout, labels, keypoints, cache, learnability.

Everything runs on the 32 px option (the full set generates in about two seconds) inside a
temporary ``SEQBENCH_CACHE``, so the user's cache is never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from seqbench import plugins
from seqbench.errors import ConfigError
from seqbench.datasets import _render
from seqbench.datasets import synthetic_sprites as ss
from seqbench.datasets.synthetic_sprites import SyntheticSprites, attributes_of, split_identities

SIZE = 32


@pytest.fixture(scope="module")
def sprites(tmp_path_factory) -> SyntheticSprites:
    """One generated 32 px set shared by the module (generation is the expensive part)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEQBENCH_CACHE", str(tmp_path_factory.mktemp("sprites-cache")))
        data = SyntheticSprites(size=SIZE)
        data.prepare()
        data.split("train"), data.split("test")
        yield data


@pytest.fixture(scope="module")
def by_clip(sprites) -> dict[tuple[int, int], tuple[str, int]]:
    """(identity, motion) -> (split, row), across both splits."""
    out = {}
    for split in ("train", "test"):
        data = sprites.split(split)
        for row, (c, m) in enumerate(zip(data.identity, data.labels["action"])):
            out[int(c), int(m)] = (split, row)
    return out


def frames_of(sprites, by_clip, identity: int, motion: int) -> np.ndarray:
    split, row = by_clip[identity, motion]
    return np.asarray(sprites.split(split).x[row])


# -- options ------------------------------------------------------------------------------

@pytest.mark.parametrize("options, needle", [({"size": 48}, "size=64"), ({"size": "big"}, "integer"),
                                             ({"seed": -1}, ">= 0"), ({"sise": 32}, "size"),
                                             ({"size": 32.5}, "integer")])
def test_bad_options_say_what_is_valid(options, needle):
    with pytest.raises(ConfigError, match=needle):
        SyntheticSprites(**options)


def test_options_accept_cli_strings(cache_dir):
    data = SyntheticSprites(size="32", seed="3")
    assert (data.size, data.seed) == (32, 3)
    assert data.cache_dir == cache_dir / "datasets" / "synthetic-sprites" / "v1-s32-seed3"
    assert not data.cache_dir.exists()  # constructing an adapter generates nothing


def test_prepare_rejects_a_source(cache_dir):
    with pytest.raises(ConfigError, match="without --source"):
        SyntheticSprites(size=SIZE).prepare(Path("/somewhere"))
    with pytest.raises(ConfigError, match="'train' and 'test'"):
        SyntheticSprites(size=SIZE).load_split("val")


# -- spec and layout ----------------------------------------------------------------------

def test_spec_describes_the_data(sprites):
    spec = sprites.spec
    assert (spec.name, spec.modality, spec.family) == ("synthetic-sprites", "video", "sprites")
    assert (spec.frames, spec.channels, spec.height, spec.width) == (8, 3, SIZE, SIZE)
    assert spec.value_range == (0.0, 1.0)
    assert [label.name for label in spec.static_labels] == ["skin", "top", "bottom", "hair"]
    assert all(label.num_classes == 6 and len(set(label.class_names)) == 6 for label in spec.static_labels)
    action = spec.label("action")
    assert (action.kind, action.num_classes) == ("dynamic", 9)
    assert action.class_names[:4] == ("walk-front", "walk-left", "walk-right", "spellcast-front")
    assert spec.has_identity and spec.identity_label == "identity"
    assert spec.has_keypoints and len(spec.keypoint_names) == 14 and spec.keypoint_names[0] == "head"
    meta = json.loads((sprites.cache_dir / "meta.json").read_text())
    assert spec.fingerprint == meta["fingerprint"] and len(spec.fingerprint) == 16
    assert spec.adapter_version == SyntheticSprites.version == "1"
    assert SyntheticSprites.embedded and SyntheticSprites.description


def test_shapes_dtypes_and_value_range(sprites):
    for split, n in (("train", 9000), ("test", 2664)):
        data = sprites.split(split)
        assert len(data) == n
        assert data.x.shape == (n, 8, 3, SIZE, SIZE) and data.x.dtype == np.uint8
        assert isinstance(data.x, np.memmap)  # loaded lazily, not copied into memory
        assert data.keypoints.shape == (n, 8, 14, 2) and data.keypoints.dtype == np.float32
        assert set(data.labels) == {"skin", "top", "bottom", "hair", "action"}
        assert all(v.dtype.kind == "i" and v.shape == (n,) for v in data.labels.values())
        clips = data.clips(np.arange(0, n, 97))
        assert clips.shape[1:] == (8, 3, SIZE, SIZE)
        assert float(clips.min()) == 0.0 and 0.9 < float(clips.max()) <= 1.0


def test_split_by_identity_like_the_real_sprites(sprites):
    train, test = sprites.split("train"), sprites.split("test")
    train_ids, test_ids = np.unique(train.identity), np.unique(test.identity)
    assert (len(train_ids), len(test_ids)) == (1000, 296)
    assert not set(train_ids) & set(test_ids)
    assert sorted(set(train_ids) | set(test_ids)) == list(range(1296))
    for data in (train, test):  # every identity has each of the 9 motions exactly once
        pairs = data.identity * 9 + data.labels["action"]
        assert len(np.unique(pairs)) == len(data)
        assert (np.unique(data.identity, return_counts=True)[1] == 9).all()
    assert len(np.intersect1d(train.ids, test.ids)) == 0
    assert np.array_equal(train_ids, split_identities(0)["train"])
    assert not np.array_equal(split_identities(1)["train"], split_identities(0)["train"])


def test_labels_are_the_identity_digits(sprites):
    for split in ("train", "test"):
        data = sprites.split(split)
        c = data.identity
        assert np.array_equal(data.labels["skin"], c // 216)
        assert np.array_equal(data.labels["bottom"], c // 36 % 6)
        assert np.array_equal(data.labels["top"], c // 6 % 6)
        assert np.array_equal(data.labels["hair"], c % 6)
        decoded = attributes_of(c)
        assert all(np.array_equal(decoded[k], data.labels[k]) for k in decoded)


def test_labels_are_balanced(sprites):
    train, test = sprites.split("train"), sprites.split("test")
    assert np.array_equal(np.bincount(train.labels["action"]), np.full(9, 1000))
    assert np.array_equal(np.bincount(test.labels["action"]), np.full(9, 296))
    for name in ("skin", "top", "bottom", "hair"):
        total = np.bincount(train.labels[name], minlength=6) + np.bincount(test.labels[name], minlength=6)
        assert np.array_equal(total, np.full(6, 216 * 9))
        share = np.bincount(train.labels[name], minlength=6) / len(train)
        assert share.min() > 0.12 and share.max() < 0.22  # a random split stays near 1/6 each


# -- pixels -------------------------------------------------------------------------------

def test_background_is_black_and_characters_stay_inside(sprites):
    for split in ("train", "test"):
        x = sprites.split(split).x
        for border in (x[..., :2, :], x[..., -2:, :], x[..., :, :2], x[..., :, -2:]):
            assert int(border.max()) == 0
        sample = np.asarray(x[::50])
        assert (sample.max(axis=2) == 0).mean() > 0.6  # mostly background


def test_keypoints_are_on_the_drawn_character(sprites):
    for split in ("train", "test"):
        data = sprites.split(split)
        kp = data.keypoints
        assert kp.min() >= 0 and kp.max() < SIZE
        rows = np.arange(0, len(data), 7)
        x = np.asarray(data.x[rows])
        k = kp[rows]
        i, j = np.floor(k[..., 1]).astype(int), np.floor(k[..., 0]).astype(int)
        n, t = np.arange(len(rows))[:, None, None], np.arange(8)[None, :, None]
        assert x[n, t, :, i, j].sum(-1).min() > 0  # every joint lands on a painted pixel
        motion = data.labels["action"]
        assert np.array_equal(kp, _render.render_coverage(SIZE)[1][motion])


def test_keypoints_follow_the_motion(sprites):
    kp = sprites.split("train").keypoints
    action = sprites.split("train").labels["action"]
    table = np.stack([kp[np.flatnonzero(action == m)[0]] for m in range(9)])  # [9, T, K, 2]
    names = list(_render.KEYPOINT_NAMES)
    for m in range(9):
        assert np.abs(np.diff(table[m], axis=0)).max() > 0.5  # joints move between frames
    walk_left, walk_right = table[1, :, names.index("neck"), 0], table[2, :, names.index("neck"), 0]
    assert walk_left[-1] < walk_left[0] - 2 and walk_right[-1] > walk_right[0] + 2
    hands = [names.index("l_hand"), names.index("r_hand")]
    spell = table[3][:, hands, 1]
    assert spell.min(axis=0).max() < table[3][0, names.index("neck"), 1]  # both hands rise above the neck
    slash_hand = table[6][:, names.index("r_hand")]
    assert np.ptp(slash_hand[:, 1]) > 6 and np.ptp(slash_hand[:, 0]) > 4  # an arc, not a line


def test_frames_and_motions_differ(sprites, by_clip):
    for identity in (0, 777, 1295):
        clips = np.stack([frames_of(sprites, by_clip, identity, m) for m in range(9)]).astype(np.int16)
        for m in range(9):
            assert all(np.abs(clips[m, t + 1] - clips[m, t]).sum() > 0 for t in range(7))
        flat = clips.reshape(9, -1)
        distance = np.abs(flat[:, None] - flat[None]).sum(-1)
        assert (distance + np.eye(9, dtype=int) > 0).all()  # the 9 motions are pairwise different


def test_every_attribute_changes_the_picture(sprites, by_clip):
    base = 2 * 216 + 3 * 36 + 1 * 6 + 4
    for step in (216, 36, 6, 1):  # skin, bottom, top, hair
        other = base + step
        for motion in (0, 4, 8):
            a, b = frames_of(sprites, by_clip, base, motion), frames_of(sprites, by_clip, other, motion)
            assert np.abs(a.astype(np.int16) - b).sum() > 0


def test_colours_are_exact(sprites):
    """A pixel deep inside the torso is exactly the palette colour of the character's top."""
    data = sprites.split("train")
    names = list(_render.KEYPOINT_NAMES)
    corners = [names.index(n) for n in ("l_shoulder", "r_shoulder", "l_hip", "r_hip")]
    palette = np.array([rgb for _, rgb in ss.PALETTES["top"]])
    for row in np.flatnonzero(data.labels["action"] == 3)[:20]:  # spellcast from the front
        centre = data.keypoints[row, 0, corners].mean(0)
        pixel = np.asarray(data.x[row, 0, :, int(centre[1]), int(centre[0])])
        assert np.array_equal(pixel, palette[data.labels["top"][row]])


# -- determinism and cache ----------------------------------------------------------------

def _digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for split in ("train", "test"):
        for kind in ("x", "labels", "identity", "keypoints"):
            digest.update(np.load(directory / f"{kind}_{split}.npy", mmap_mode="r").tobytes())
    return digest.hexdigest()


def test_generation_is_deterministic_and_fingerprinted(sprites, cache_dir):
    meta = json.loads((sprites.cache_dir / "meta.json").read_text())
    assert _digest(sprites.cache_dir) == meta["data_sha256"]
    again = SyntheticSprites(size=SIZE)
    assert again.cache_dir.is_relative_to(cache_dir) and again.cache_dir != sprites.cache_dir
    assert again.spec.fingerprint == sprites.spec.fingerprint
    for split in ("train", "test"):
        assert np.array_equal(again.split(split).x, sprites.split(split).x)
        assert np.array_equal(again.split(split).keypoints, sprites.split(split).keypoints)
    assert not list(again.cache_dir.parent.glob(".*tmp-*"))  # the temporary folder was renamed away


def test_second_load_reuses_the_cache(sprites, monkeypatch):
    x_file = sprites.cache_dir / "x_train.npy"
    before = x_file.stat().st_mtime_ns

    def no_generation(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(ss, "generate", no_generation)
    fresh = SyntheticSprites(size=SIZE)
    assert fresh.prepare() == sprites.cache_dir
    assert len(fresh.split("train")) == 9000 and fresh.spec.fingerprint == sprites.spec.fingerprint
    assert x_file.stat().st_mtime_ns == before


def test_concurrent_winner_is_kept(cache_dir, monkeypatch):
    """If another process finished first, our rename fails and we use its complete cache."""
    adapter = SyntheticSprites(size=SIZE)
    target = adapter.cache_dir

    def racing_generate(directory, size, seed):
        for folder, who in ((target, "winner"), (directory, "loser")):
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / "x_train.npy", np.zeros(1))
            (folder / "meta.json").write_text(json.dumps({"files": ["x_train.npy"], "who": who}))
        return {}

    monkeypatch.setattr(ss, "generate", racing_generate)
    assert adapter.prepare() == target
    assert json.loads((target / "meta.json").read_text())["who"] == "winner"
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # our temporary folder is gone


def test_incomplete_cache_is_regenerated(cache_dir, monkeypatch):
    adapter = SyntheticSprites(size=SIZE)
    adapter.cache_dir.mkdir(parents=True)
    (adapter.cache_dir / "meta.json").write_text(json.dumps({"files": ["x_train.npy"]}))  # file missing
    calls = []

    def fake_generate(directory, size, seed):
        calls.append((size, seed))
        np.save(directory / "x_train.npy", np.zeros(1))
        (directory / "meta.json").write_text(json.dumps({"files": ["x_train.npy"]}))
        return {}

    monkeypatch.setattr(ss, "generate", fake_generate)
    assert adapter.prepare() == adapter.cache_dir and calls == [(SIZE, 0)]
    assert (adapter.cache_dir / "x_train.npy").is_file()
    assert len(os.listdir(adapter.cache_dir.parent)) == 1


def test_registered_as_a_builtin_plugin():
    loaded = plugins.load_plugins(autoload=False)
    assert "synthetic-sprites" in loaded.datasets
    assert loaded.datasets.get("synthetic-sprites") is SyntheticSprites
    assert loaded.datasets.origin("synthetic-sprites") == "builtin seqbench.datasets.synthetic_sprites"


def test_info_counts(sprites):
    info = sprites.info()
    assert info["train_clips"] == 9000 and info["test_clips"] == 2664
    assert info["train_identities"] == 1000 and info["test_identities"] == 296
    assert info["shape"] == [8, 3, SIZE, SIZE]


# -- learnability -------------------------------------------------------------------------

def test_a_linear_probe_learns_every_factor_on_unseen_identities(sprites):
    """Logistic regression on crude features reaches > 95 % on test identities for every label.

    Static attributes: the clip's time-averaged colours on a 16 x 16 grid. Action: the
    silhouette per frame on an 8 x 8 grid plus its frame-to-frame differences (the only way
    to tell e.g. the order of a motion's frames).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    train, test = sprites.split("train"), sprites.split("test")
    rows_train = np.sort(rng.choice(len(train), 1500, replace=False))
    rows_test = np.sort(rng.choice(len(test), 800, replace=False))

    def features(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float32) / 255.0
        n = len(x)
        colours = x.mean(1).reshape(n, 3, 16, 2, 16, 2).mean((3, 5)).reshape(n, -1)
        shape = (x.max(2) > 0).astype(np.float32).reshape(n, 8, 8, 4, 8, 4).mean((3, 5)).reshape(n, 8, -1)
        motion = np.concatenate([shape.reshape(n, -1), np.diff(shape, axis=1).reshape(n, -1)], axis=1)
        return colours, motion

    static_train, motion_train = features(train.x[rows_train])
    static_test, motion_test = features(test.x[rows_test])
    for name in ("skin", "top", "bottom", "hair", "action"):
        a, b = (motion_train, motion_test) if name == "action" else (static_train, static_test)
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        probe.fit(a, train.labels[name][rows_train])
        accuracy = float((probe.predict(b) == test.labels[name][rows_test]).mean())
        assert accuracy > 0.95, f"{name}: {accuracy:.3f}"


@pytest.mark.slow
def test_full_size_set(cache_dir):
    data = SyntheticSprites(size=64)
    train = data.split("train")
    assert train.x.shape == (9000, 8, 3, 64, 64) and data.spec.height == 64
    assert int(np.asarray(train.x[::100, :, :, :2]).max()) == 0
    assert train.keypoints.max() < 64 and train.keypoints.max() > 40
    assert np.array_equal(train.keypoints[:9], 2 * _render.render_coverage(32)[1][train.labels["action"][:9]])
