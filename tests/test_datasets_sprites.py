"""The real Sprites adapter: composition from LPC sheets, the split, the value range, the legacy formats.

Composition is always tested on tiny synthetic sheets in the LPC grid layout (832 px wide, 64x64
cells, RGBA with partial alpha), and on the real sheets when ``../shared/data/lpc-sprites`` (or
``$SEQBENCH_LPC_SHEETS``) exists. The reference here is written independently from the notes:
full-sheet composites cropped cell by cell.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seqbench.errors import ConfigError, DataNotFoundError
from seqbench.media import CorruptMediaError, LayoutError

from seqbench.datasets import sprites as sp

REPO = Path(__file__).resolve().parents[1]
REAL_SHEETS = Path(os.environ.get("SEQBENCH_LPC_SHEETS", REPO.parent / "shared" / "data" / "lpc-sprites"))

# Frame selection as written in notes/datasets.md, cell index = row * 13 + col.
NOTES_CELLS = {
    "spellcard": ({"left": 13, "front": 26, "right": 39}, lambda o: [o[0], o[1], o[2], o[3], o[4], o[5], o[4], o[6]]),
    "walk": ({"left": 118, "front": 131, "right": 144}, lambda o: [o[7]] + o[:7]),
    "slash": ({"left": 169, "front": 182, "right": 195}, lambda o: o[:6] + [o[4], o[0]]),
}


def expected_cells() -> np.ndarray:
    out = []
    for action in ("walk", "spellcard", "slash"):
        for direction in ("front", "left", "right"):
            first, frames = NOTES_CELLS[action]
            out.append(frames([first[direction] + k for k in range(8)]))
    return np.array(out)


def make_sheets(folder: Path) -> Path:
    """Synthetic layer sheets: per layer and file, coloured blocks with partial alpha in every cell."""
    rng = np.random.default_rng(0)
    layers = [(name, i) for name in ("body", "bottomwear", "topwear", "hair") for i in range(7)] + [("shoes", 0), ("shoes", 1)]
    yy, xx = np.mgrid[0:64, 0:64]
    for n, (name, i) in enumerate(layers):
        colour = rng.integers(0, 256, 3)
        alpha = (255, 230, 128, 40)[n % 4]
        band = {"body": (8, 56), "bottomwear": (36, 56), "topwear": (20, 40), "hair": (4, 18), "shoes": (52, 62)}[name]
        cell = np.zeros((64, 64, 4), dtype=np.uint8)
        mask = (yy >= band[0]) & (yy < band[1]) & (np.abs(xx - 32) < 10 + i)
        cell[mask] = [*colour, alpha]
        sheet = np.tile(cell, (21, 13, 1))
        sheet[::64, :, :3] = (7 * n) % 256  # row markers so cells differ between rows
        sheet[::64, :, 3] = 255 if n % 2 else 0
        cols = np.arange(832) // 64
        sheet[:, :, 0] = np.where(sheet[:, :, 3] > 0, (sheet[:, :, 0].astype(int) + 9 * cols[None]) % 256, 0)
        (folder / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet, "RGBA").save(folder / name / f"{i}.png")
    return folder


def reference_frames(sheets: Path, character: int) -> np.ndarray:
    """[9, 8, 3, 64, 64]: full-sheet composite over opaque black, then crop the notes' cells."""
    body, bottom, top, hair = character // 216, character // 36 % 6, character // 6 % 6, character % 6
    canvas = Image.new("RGBA", Image.open(sheets / "body" / "0.png").size, "black")
    for path in (f"body/{body}.png", f"bottomwear/{bottom}.png", f"topwear/{top}.png", f"hair/{hair}.png", "shoes/1.png"):
        canvas = Image.alpha_composite(canvas, Image.open(sheets / path).convert("RGBA"))
    cells = expected_cells()
    out = np.zeros((9, 8, 64, 64, 3), dtype=np.uint8)
    for m in range(9):
        for f in range(8):
            row, col = divmod(int(cells[m, f]), 13)
            out[m, f] = np.asarray(canvas.crop((col * 64, row * 64, col * 64 + 64, row * 64 + 64)))[..., :3]
    return out.transpose(0, 1, 4, 2, 3)


@pytest.fixture(scope="module")
def sheets(tmp_path_factory) -> Path:
    return make_sheets(tmp_path_factory.mktemp("lpc"))


def test_frame_table_and_labels_follow_the_notes():
    assert np.array_equal(sp.motion_cells(), expected_cells())
    assert sp.MOTION_NAMES[0] == "walk-front" and sp.MOTION_NAMES[4] == "spellcard-left" and sp.MOTION_NAMES[8] == "slash-right"
    c = np.arange(1296)
    assert np.array_equal(sp.attributes_of(c), np.stack([c // 216, c // 36 % 6, c // 6 % 6, c % 6], 1))
    assert np.array_equal(sp.character_of(sp.attributes_of(c)), c)


def test_split_is_numpy_legacy_seed_423():
    np.random.seed(423)
    expected = np.random.permutation(1296)
    assert np.array_equal(sp.split_permutation(), expected)
    rank = sp.character_rank()
    assert (rank[expected[:1000]] < 1000).all() and (rank[expected[1000:]] >= 1000).all()


def test_uint8_storage_gives_exactly_k_over_256():
    from seqbench.data import SplitData

    k = np.arange(256, dtype=np.uint8).reshape(1, 1, 1, 16, 16)
    data = SplitData(x=k, labels={}, value_range=(0.0, 255.0 / 256.0))
    assert torch.equal(data.clips([0]), torch.from_numpy(k.astype(np.float32) / 256.0))


def test_compose_matches_full_sheet_reference_on_synthetic_sheets(sheets):
    characters = [0, 7, 215, 1000, 1295]
    composed = dict(sp.compose(sheets, characters))
    assert sorted(composed) == characters
    for c in characters:
        assert composed[c].shape == (9, 8, 3, 64, 64) and composed[c].dtype == np.uint8
        assert np.array_equal(composed[c], reference_frames(sheets, c)), c


@pytest.mark.skipif(not (REAL_SHEETS / "body" / "0.png").is_file(), reason=f"LPC sheets not at {REAL_SHEETS}")
def test_compose_matches_reference_on_real_lpc_sheets():
    characters = [0, 43, 777, 1295]
    composed = dict(sp.compose(REAL_SHEETS, characters))
    for c in characters:
        assert np.array_equal(composed[c], reference_frames(REAL_SHEETS, c)), c
    assert composed[0].reshape(-1).max() > 0


#: sha256 of the prepared arrays of the full dataset composed from the LPC sheets (seqbench 0.1, adapter v1)
FULL_SHA256 = {"x_train.npy": "7c00f9ee9f4eabf02aef725bb3e2fa680366abe1e17228cf45892fd9fe1d7335",
               "x_test.npy": "1693b94cc7e3e0eb554c8ebdc7f8c03fd3797b6a021b2523082358028db313b0",
               "labels_train.npy": "5e514bf6d6d6d292b4a56bc5c3dc0afc24a8afd42b50dfde1e621c9fddbe3815",
               "labels_test.npy": "b0e93e30c2f1c18423d6c785ad437a432c48f006558d9523b09dfc839bf13462"}


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SEQBENCH_FULL_SPRITES") or not (REAL_SHEETS / "body" / "0.png").is_file(),
                    reason="set SEQBENCH_FULL_SPRITES=1 (and have the LPC sheets) to compose all 11664 clips (1.1 GB)")
def test_full_dataset_from_real_sheets_has_the_recorded_checksums(tmp_path):
    adapter = sp.Sprites(root=tmp_path)
    adapter.prepare(REAL_SHEETS)
    meta = adapter.meta()
    assert {k: meta["sha256"][k] for k in FULL_SHA256} == FULL_SHA256
    info = adapter.info()
    assert info["train_clips"] == 9000 and info["test_clips"] == 2664
    assert set(info["train_labels"]["motion"].values()) == {1000} and adapter.verify() == []


def _legacy(x: np.ndarray) -> np.ndarray:
    """uint8 [N, 8, 3, 64, 64] -> the community's float32 [N, 8, 64, 64, 3] RGB / 256."""
    return (x.transpose(0, 1, 3, 4, 2).astype(np.float32) / 256.0)


def write_legacy_formats(data: dict, folder: Path) -> dict[str, Path]:
    """The three existing on-disk formats, built from prepared arrays (shuffled where the community shuffles)."""
    paths = {"npy": folder / "gen", "pkl": folder / "cdsvae", "flat": folder / "flat"}
    npy = paths["npy"] / "npy"
    npy.mkdir(parents=True)
    eye6, eye9 = np.eye(6, dtype=np.float32), np.eye(9, dtype=np.float32)
    for split, d in data.items():
        attrs, motion = d.labels_table[:, :4], d.labels_table[:, 4]
        for m, name in enumerate(sp.MOTION_NAMES):
            action, direction = name.split("-")
            rows = np.flatnonzero(motion == m)[::-1]  # any order: the adapter reorders
            np.save(npy / f"{action}_{direction}_frames_{split}.npy", _legacy(d.x[rows]))
            one_hot = np.repeat(eye6[attrs[rows]][:, None], 8, axis=1)  # (N, 8, 4, 6)
            np.save(npy / f"{action}_{direction}_attributes_{split}.npy", one_hot)
            # the generator's bug: directions of the test split saved under the _train name
            np.save(npy / f"{action}_{direction}_directions_train.npy", np.zeros((len(rows), 8, 3), np.float32))
    shuffled = {s: np.random.default_rng(0).permutation(len(d.x)) for s, d in data.items()}
    pkl = {}
    for split, d in data.items():
        order = shuffled[split]
        pkl[f"X_{split}"] = _legacy(d.x[order])
        pkl[f"A_{split}"] = d.labels_table[order, :4]
        pkl[f"D_{split}"] = d.labels_table[order, 4]
        pkl[f"c_augs_{split}"] = np.zeros((len(order), 1, 8, 4, 4, 3), np.float32)
    paths["pkl"].mkdir()
    with open(paths["pkl"] / "data.pkl", "wb") as fh:
        pickle.dump(pkl, fh)
    paths["flat"].mkdir()
    for split, d in data.items():
        order = shuffled[split][::-1]
        np.save(paths["flat"] / f"sprites_X_{split}.npy", _legacy(d.x[order]))
        np.save(paths["flat"] / f"sprites_A_{split}.npy", np.repeat(eye6[d.labels_table[order, :4]][:, None], 8, 1))
        np.save(paths["flat"] / f"sprites_D_{split}.npy", np.repeat(eye9[d.labels_table[order, 4]][:, None], 8, 1))
    return paths


class _Arrays:
    def __init__(self, x, labels_table):
        self.x, self.labels_table = x, labels_table


def test_prepare_subset_from_sheets_then_legacy_formats_are_identical(sheets, tmp_path):
    adapter = sp.Sprites(root=tmp_path / "from-sheets", subset=10)
    path = adapter.prepare(sheets)
    assert path.name == "v1-subset10"
    train, test = adapter.split("train"), adapter.split("test")
    assert train.x.shape == (90, 8, 3, 64, 64) and test.x.shape == (27, 8, 3, 64, 64)  # 10 and ceil(2.96) characters
    perm = sp.split_permutation()
    assert np.array_equal(train.identity[:10], perm[:10]) and np.array_equal(test.identity[:3], perm[1000:1003])
    assert np.array_equal(train.labels["motion"], np.repeat(np.arange(9), 10))
    assert np.array_equal(train.labels["hair"], train.identity % 6)
    assert np.array_equal(train.labels["body"], train.identity // 216)
    first = dict(sp.compose(sheets, [int(perm[0])]))[int(perm[0])]
    assert np.array_equal(np.asarray(train.x[np.arange(9) * 10]), first)  # row m*10 = motion m of rank 0
    spec = adapter.spec
    assert spec.value_range == (0.0, 255 / 256) and spec.family == "sprites" and spec.identity_label == "character"
    assert [l.name for l in spec.static_labels] == ["body", "bottom", "top", "hair"]
    assert spec.label("motion").num_classes == 9 and spec.label("top").class_names[5] == "white-tie"
    info = adapter.info()
    assert info["train_clips"] == 90 and info["test_clips"] == 27 and info["source_format"] == "sheets"
    assert adapter.verify() == []

    data = {s: _Arrays(np.asarray(adapter.split(s).x),
                       np.stack([adapter.split(s).labels[n] for n in ("body", "bottom", "top", "hair", "motion")], 1))
            for s in ("train", "test")}
    for fmt, source in write_legacy_formats(data, tmp_path / "legacy").items():
        other = sp.Sprites(root=tmp_path / f"from-{fmt}")
        other.prepare(source)
        assert other.meta()["format"] == fmt
        for split in ("train", "test"):
            assert np.array_equal(np.asarray(other.split(split).x), data[split].x), (fmt, split)
            for name in ("body", "bottom", "top", "hair", "motion"):
                assert np.array_equal(other.split(split).labels[name], adapter.split(split).labels[name]), (fmt, name)
        assert other.spec.fingerprint == adapter.spec.fingerprint, fmt
        assert other.meta()["value_scale"] == 256


def test_size_32_box_averages_the_same_prepared_arrays(sheets, tmp_path):
    full = sp.Sprites(root=tmp_path, subset=2)
    full.prepare(sheets)
    small = sp.Sprites(root=tmp_path, subset=2, size="32")  # the command line gives text
    assert small.prepared_dir == full.prepared_dir  # one preparation serves both sizes
    big, x = np.asarray(full.split("train").x), np.asarray(small.split("train").x)
    assert x.shape == (18, 8, 3, 32, 32) and x.dtype == np.uint8
    block = big[3, 5, :, 10:12, 20:22].astype(int)  # clip 3, frame 5 -> pixel (5, 10) of the 32 px frame
    assert np.array_equal(x[3, 5, :, 5, 10], (block.sum(axis=(1, 2)) + 2) // 4)
    assert np.abs(x.astype(float).mean() - big.astype(float).mean()) < 0.5  # averaging keeps the brightness
    assert small.spec.height == small.spec.width == 32 and small.spec.fingerprint != full.spec.fingerprint
    assert small.spec.value_range == full.spec.value_range and small.options["size"] == 32
    assert np.array_equal(small.split("test").labels["motion"], full.split("test").labels["motion"])
    assert small.verify() == []
    with pytest.raises(ConfigError, match=r"size=48 is not available; use size=64.*or size=32"):
        sp.Sprites(root=tmp_path, size=48)


def test_missing_source_wrong_layout_and_unprepared(tmp_path):
    adapter = sp.Sprites(root=tmp_path / "prepared")
    with pytest.raises(DataNotFoundError, match=r"does not exist.*seqbench data prepare sprites --source DIR"):
        adapter.prepare(tmp_path / "nowhere")
    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "readme.txt").write_text("x")
    with pytest.raises(LayoutError, match=r"none of the Sprites layouts.*body/ bottomwear/.*readme.txt"):
        adapter.prepare(tmp_path / "wrong")
    with pytest.raises(DataNotFoundError, match=r"not prepared: looked for .*prepared/v1/meta.json.*seqbench data prepare"):
        adapter.split("train")
    with pytest.raises(ConfigError, match="format"):
        sp.Sprites(format="zip")
    with pytest.raises(ConfigError, match="no option"):
        sp.Sprites(frames=16)


def test_corrupt_sheet_is_named_and_previous_preparation_survives(sheets, tmp_path):
    root = tmp_path / "prepared"
    good = sp.Sprites(root=root, subset=2)
    good.prepare(sheets)
    before = (root / "v1-subset2" / "meta.json").read_text()
    broken = tmp_path / "broken"
    make_sheets(broken)
    (broken / "hair" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(CorruptMediaError, match=r"hair/3.png"):
        sp.Sprites(root=root).prepare(broken)  # the full set needs hair/3.png
    with pytest.raises(CorruptMediaError, match=r"hair/3.png"):
        sp.Sprites(root=root, subset=1000).prepare(broken)
    assert (root / "v1-subset2" / "meta.json").read_text() == before
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporaries left behind


def test_pickle_that_runs_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "data.pkl").write_bytes(pickle.dumps({"X_train": Evil()}))
    with pytest.raises(CorruptMediaError, match="refusing to load"):
        sp.Sprites(root=tmp_path / "p").prepare(tmp_path)
