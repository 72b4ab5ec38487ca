"""Real video datasets on tiny fixtures in their real layouts (videos written with PyAV, jpg/png with Pillow).

Frame ``t`` of every fixture has brightness ``base + step * t``, so tests can read back which
frames a clip sampled; codecs are lossy, so comparisons allow a few grey levels.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")

from seqbench.errors import ConfigError, DataNotFoundError
from seqbench.media import (ClipCacheWriter, CorruptMediaError, LayoutError, clip_indices, count_frames, crop_resize,
                            ordered_map, read_frame_folder, read_video, write_frames, write_video)
from seqbench.prepared_folder import folder_complete

from seqbench.datasets.celebvhq import CelebVHQ, emotion_label
from seqbench.datasets.fomm import TaiChi, VoxCeleb, identity_of
from seqbench.datasets.mead import MEAD
from seqbench.datasets.mug import MUG
from seqbench.datasets.utd_mhad import UTDMHAD


def ramp(n: int, height: int = 32, width: int = 32, base: int = 20, step: int = 10, tint: int = 0) -> np.ndarray:
    """Frames whose brightness encodes the frame index (plus a per-item tint in the red channel)."""
    values = (base + step * np.arange(n)).clip(0, 255).astype(np.uint8)
    frames = np.broadcast_to(values[:, None, None, None], (n, height, width, 3)).copy()
    frames[..., 0] = tint
    return frames


def frame_numbers(clip: np.ndarray, base: int = 20, step: int = 10) -> np.ndarray:
    """Recover frame indices from a uint8 clip [T, 3, H, W] made by :func:`ramp`."""
    return np.rint((clip[:, 1].mean(axis=(1, 2)) - base) / step).astype(int)


# -- media helpers ----------------------------------------------------------------------------

def test_clip_indices_window_uniform_and_padding():
    idx, padded = clip_indices(40, 15, stride=2, mode="window", rng=np.random.default_rng(0))
    assert idx.shape == (1, 15) and not padded and np.all(np.diff(idx) == 2) and idx.max() < 40
    idx, _ = clip_indices(16, 15, stride=2, mode="window")  # too short for stride 2: stride 1
    assert np.array_equal(idx[0], np.arange(15))
    idx, _ = clip_indices(100, 10, mode="uniform")
    assert np.array_equal(idx[0], np.arange(5, 100, 10))
    idx, padded = clip_indices(3, 5, mode="window")
    assert padded and np.array_equal(idx[0], [0, 1, 2, 2, 2])
    two, _ = clip_indices(100, 4, mode="uniform", clips=2)
    assert two.shape == (2, 4) and not np.array_equal(two[0], two[1])


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mov", ".gif"])
def test_video_round_trip_and_frame_selection(tmp_path, suffix):
    path = write_video(tmp_path / f"v{suffix}", ramp(12))
    assert count_frames(path) == 12
    frames = read_video(path, [1, 5, 5, 11])
    assert frames.shape == (4, 32, 32, 3)
    assert np.abs(frames[..., 1].mean(axis=(1, 2)) - [30, 70, 70, 130]).max() < 6
    assert read_video(path).shape[0] == 12


def test_truncated_and_empty_files_raise_with_the_path(tmp_path):
    path = write_video(tmp_path / "clip.mp4", ramp(12))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptMediaError, match="clip.mp4"):
        read_video(path, [0])
    (tmp_path / "empty.avi").write_bytes(b"")
    with pytest.raises(CorruptMediaError, match="empty.avi"):
        count_frames(tmp_path / "empty.avi")
    folder = write_frames(tmp_path / "frames", ramp(3), "{:02d}.jpg")
    (folder / "01.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CorruptMediaError, match="01.jpg"):
        read_frame_folder(folder)


def test_crop_resize_is_exact_at_native_size_and_vectorised():
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    out = crop_resize(frames, 32, (4, 9, 32, 32))
    assert out.shape == (3, 3, 32, 32) and np.array_equal(out, frames[:, 4:36, 9:41].transpose(0, 3, 1, 2))
    assert crop_resize(frames, 16).shape == (3, 3, 16, 16)


def test_cache_writer_is_atomic_and_compacts(tmp_path):
    target = tmp_path / "prepared"
    with ClipCacheWriter(target, {"train": 4, "test": 2}, (2, 1, 2, 2)) as writer:
        writer.add("train", np.ones((3, 2, 1, 2, 2), np.uint8), labels=np.zeros((3, 1), np.int64))
        writer.add("test", np.zeros((2, 2, 1, 2, 2), np.uint8), labels=np.zeros((2, 1), np.int64))
        writer.finish({"name": "t"})
    meta = json.loads((target / "meta.json").read_text())
    assert meta["clips"] == {"train": 3, "test": 2} and np.load(target / "x_train.npy").shape == (3, 2, 1, 2, 2)
    with pytest.raises(RuntimeError):
        with ClipCacheWriter(target, {"train": 1}, (1,)) as writer:
            writer.add("train", np.ones((1, 1), np.uint8))
            raise RuntimeError("decoding failed half-way")
    assert json.loads((target / "meta.json").read_text()) == meta and folder_complete(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


def test_ordered_map_keeps_order_and_returns_errors():
    def work(i):
        if i == 3:
            raise CorruptMediaError(f"f{i}", "bad")
        return i * i
    results = list(ordered_map(work, list(range(7)), workers=3))
    assert [r for _, r in results if not isinstance(r, Exception)] == [0, 1, 4, 16, 25, 36]
    assert isinstance(results[3][1], CorruptMediaError)


# -- UTD-MHAD -----------------------------------------------------------------------------------

@pytest.fixture
def mhad(tmp_path) -> Path:
    source = tmp_path / "UTD-MHAD"
    for action in (1, 27):
        for subject in range(1, 9):
            write_video(source / "RGB" / f"a{action}_s{subject}_t1_color.avi", ramp(20, 24, 32, tint=10 * subject))
    write_video(source / "RGB" / "a30_s1_t1_color.avi", ramp(4))  # action out of range: ignored, reported
    return source


def test_utd_mhad_subject_split_labels_and_uniform_sampling(mhad, tmp_path):
    adapter = UTDMHAD(root=tmp_path / "data", size=16)
    adapter.prepare(mhad)
    train, test = adapter.split("train"), adapter.split("test")
    assert train.x.shape == (8, 10, 3, 16, 16) and test.x.shape == (8, 10, 3, 16, 16)
    assert set(train.identity) == {0, 1, 2, 4} and set(test.identity) == {3, 5, 6, 7}
    assert set(train.labels["action"]) == {0, 26} and np.array_equal(train.labels["subject"], train.identity)
    assert np.array_equal(frame_numbers(np.asarray(train.x[0])), np.arange(1, 20, 2))  # 10 of 20, spread evenly
    spec = adapter.spec
    assert spec.family == "bodies" and spec.identity_label == "subject" and spec.label("action").num_classes == 27
    assert spec.label("action").class_names[0] == "swipe_left" and spec.extra["disjoint_static"] == ["subject"]
    assert adapter.info()["train_identities"] == 4
    assert any("a30_s1_t1_color.avi" in p for p in adapter.verify())


def test_truncated_video_is_skipped_with_a_count_or_fatal_when_strict(mhad, tmp_path, caplog):
    bad = mhad / "RGB" / "a1_s4_t1_color.avi"
    bad.write_bytes(bad.read_bytes()[:600])
    with caplog.at_level(logging.WARNING):
        adapter = UTDMHAD(root=tmp_path / "data", size=16)
        adapter.prepare(mhad)
    meta = adapter.meta()
    assert [s["path"] for s in meta["skipped"]] == [str(bad)]
    assert adapter.info()["skipped_files"] == 1 and len(adapter.split("test")) == 7
    assert "1 unreadable file(s) skipped" in caplog.text and "a1_s4_t1_color.avi" in caplog.text
    assert any(str(bad) in p for p in adapter.verify())
    before = (adapter.prepared_dir / "meta.json").read_text()
    with pytest.raises(CorruptMediaError, match=r"a1_s4_t1_color.avi.*strict"):
        UTDMHAD(root=tmp_path / "data", size=16, strict=True).prepare(mhad)
    assert (adapter.prepared_dir / "meta.json").read_text() == before  # the earlier preparation survives


def test_missing_root_wrong_layout_unprepared_and_prepare_on_first_use(mhad, tmp_path):
    with pytest.raises(DataNotFoundError, match=r"nowhere does not exist.*seqbench data prepare utd-mhad --source DIR"):
        UTDMHAD(root=tmp_path / "data").prepare(tmp_path / "nowhere")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "clip.mp4").write_bytes(b"")
    with pytest.raises(LayoutError, match=r"a1_s1_t1_color.avi.*found other files such as clip.mp4"):
        UTDMHAD(root=tmp_path / "data").prepare(tmp_path / "other")
    with pytest.raises(DataNotFoundError, match=r"not prepared: looked for .*data.*--data-option size=16"):
        UTDMHAD(root=tmp_path / "data", size=16).split("train")
    lazy = UTDMHAD(root=tmp_path / "data", size=16, source=str(mhad))
    assert len(lazy.split("train")) == 8  # prepared on first use
    with pytest.raises(ConfigError, match="train_subjects"):
        UTDMHAD(train_subjects="1,9")
    with pytest.raises(ConfigError, match="no option"):
        UTDMHAD(colour=True)


# -- MUG ------------------------------------------------------------------------------------------

def test_mug_diffsda_layout_subjects_and_strided_clips(tmp_path):
    source = tmp_path / "mug"
    for split, clips in (("train", [("user014_take000_01", 0), ("user002_take001_02", 2), ("user014_take003_01", 5)]),
                         ("test", [("user031_take000_03", 2)])):
        for name, label in clips:
            write_frames(source / f"mug_pre2_{split}" / str(label) / name, ramp(40, 24, 24, base=10, step=6), "{:02d}.jpg")
    adapter = MUG(root=tmp_path / "data", size=16, frames=15, stride=2)
    adapter.prepare(source)
    train, test = adapter.split("train"), adapter.split("test")
    assert train.x.shape == (3, 15, 3, 16, 16) and len(test) == 1
    assert adapter.spec.label("subject").class_names == ("user002", "user014", "user031")
    keys = list(train.extra["key"])
    by_key = dict(zip(keys, train.labels["subject"]))
    assert by_key["mug_pre2_train/0/user014_take000_01"] == 1 and by_key["mug_pre2_train/2/user002_take001_02"] == 0
    assert dict(zip(keys, train.labels["expression"]))["mug_pre2_train/5/user014_take003_01"] == 5
    steps = np.diff(frame_numbers(np.asarray(train.x[0]), base=10, step=6))
    assert np.all(steps == 2)
    assert adapter.spec.family == "faces" and adapter.spec.label("expression").class_names[2] == "happiness"
    sym = MUG(root=tmp_path / "data", size=16, symmetric=True, source=str(source))
    assert sym.spec.value_range == (-1.0, 1.0) and float(sym.split("train").clips([0]).min()) < 0


def test_mug_variant_without_split_folders(tmp_path):
    source = tmp_path / "mug"
    for i in range(12):
        write_frames(source / ("anger", "surprise")[i % 2] / f"user{i % 3:03d}_sess1_take{i:03d}_01",
                     ramp(16, 20, 20), "{:02d}.jpg", start=1)
    adapter = MUG(root=tmp_path / "data", size=16, test_fraction=0.3)
    adapter.prepare(source)
    train, test = adapter.split("train"), adapter.split("test")
    assert len(train) + len(test) == 12 and len(test) > 0 and len(train) > 0
    assert set(train.labels["expression"]) | set(test.labels["expression"]) == {0, 5}
    numbers = frame_numbers(np.asarray(train.x[0]))
    assert np.all(np.diff(numbers) == 1) and numbers[0] in (0, 1)  # 16 frames: stride falls to 1
    with pytest.raises(LayoutError, match="Label folders must be named 0..5"):
        (tmp_path / "bad" / "happy-ish" / "clip").mkdir(parents=True)
        MUG(root=tmp_path / "data").prepare(tmp_path / "bad")


# -- MEAD -----------------------------------------------------------------------------------------

def face_video(n: int = 8) -> np.ndarray:
    from skimage import data

    face = data.astronaut()[::2, ::2]  # 256 x 256, the face is a ~47 px box near (33, 89)
    canvas = np.zeros((n, 288, 352, 3), np.uint8)
    for t in range(n):
        canvas[t, 16:272, 40 + t:296 + t] = face
    return canvas


def test_mead_layout_views_and_face_crops(tmp_path):
    pytest.importorskip("cv2")
    pytest.importorskip("skimage")
    source = tmp_path / "MEAD"
    for actor in ("M003", "W009"):
        for emotion, level in (("angry", 1), ("neutral", 1), ("happy", 3)):
            write_video(source / actor / "video" / "front" / emotion / f"level_{level}" / "001.mp4",
                        face_video(), fps=30)
    write_video(source / "M003" / "video" / "left_30" / "angry" / "level_1" / "001.mp4", ramp(8))
    write_video(source / "M003" / "video" / "front" / "sleepy" / "level_1" / "001.mp4", ramp(8))
    adapter = MEAD(root=tmp_path / "data", size=32, frames=4, test_fraction=0.4)
    adapter.prepare(source)
    train, test = adapter.split("train"), adapter.split("test")
    assert len(train) + len(test) == 6 and len(test) > 0 and train.x.shape[1:] == (4, 3, 32, 32)
    spec = adapter.spec
    assert spec.label("actor").class_names == ("M003", "W009") and spec.label("emotion").num_classes == 8
    assert [l.name for l in spec.labels] == ["actor", "emotion", "level"]
    assert set(train.labels["level"]) | set(test.labels["level"]) == {0, 2}
    assert adapter.meta()["notes"] == []  # a face was found in every clip
    centre = crop_resize(face_video()[:1], 32)[0]
    assert np.abs(np.asarray(train.x[0, 0], dtype=int) - centre).mean() > 10  # a face crop, not the centre square
    assert any("sleepy" in p for p in adapter.verify())
    both = MEAD(root=tmp_path / "data", size=32, frames=4, views="front,left_30")
    both.prepare(source)
    assert both.spec.label("view").class_names == ("front", "left_30")
    notes = both.meta()["notes"]
    assert len(notes) == 1 and "left_30" in notes[0]["path"] and "no face" in notes[0]["note"]
    with pytest.raises(ConfigError, match="views"):
        MEAD(views="back")


# -- VoxCeleb / TaiChi (FOMM) -------------------------------------------------------------------

def test_voxceleb_fomm_layout_videos_and_frame_folders(tmp_path):
    source = tmp_path / "vox"
    write_video(source / "train" / "id10001#abc#000001#000030.mp4", ramp(14, 64, 64))
    write_video(source / "train" / "id10002#xyz#000010#000040.mp4", ramp(14, 64, 64))
    write_frames(source / "train" / "id10001#def#000005#000020.mp4", ramp(12, 64, 64), "{:07d}.png")
    write_video(source / "test" / "id10009#qqq#000001#000030.mp4", ramp(14, 64, 64))
    (source / "test" / "notes.txt").write_text("x")
    adapter = VoxCeleb(root=tmp_path / "data", size=32)
    adapter.prepare(source)
    train, test = adapter.split("train"), adapter.split("test")
    assert train.x.shape == (3, 10, 3, 32, 32) and len(test) == 1
    assert adapter.meta()["identities"] == ["id10001", "id10002", "id10009"]
    assert list(train.identity) == [0, 0, 1] and list(test.identity) == [2]
    assert np.all(np.diff(frame_numbers(np.asarray(train.x[1]))) == 1)  # 10 frames, stride 2 shrinks to 1 for 12
    assert adapter.spec.labels == () and adapter.spec.identity_label == "identity" and adapter.spec.family == "faces"
    assert adapter.spec.extra["identities_shared_by_splits"] == 0
    full = VoxCeleb(root=tmp_path / "data", size=64, frames=2)
    full.prepare(source)
    assert full.split("train").x.shape == (3, 2, 3, 64, 64)  # square 64 px frames: no resampling
    assert any("notes.txt" in p for p in full.verify())
    assert identity_of("id10001#abc#1#2.mp4") == "id10001" and identity_of("plain.mp4") == "plain"


def test_voxceleb_diffsda_crops_and_taichi(tmp_path):
    source = tmp_path / "vox1"
    for celeb in ("A_B", "C_D"):
        for yt in ("yt1", "yt2", "yt3"):
            write_frames(source / "unzippedIntervalFaces" / "data" / celeb / "1.6" / f"{celeb}{yt}" / "1",
                         ramp(6, 16, 16), "{:02d}.jpg")
    adapter = VoxCeleb(root=tmp_path / "data", size=16, frames=4, test_fraction=0.5)
    adapter.prepare(source)
    assert len(adapter.split("train")) + len(adapter.split("test")) == 6
    assert adapter.meta()["identities"] == ["A_B", "C_D"]
    with pytest.raises(LayoutError, match="no test/ folder"):
        (tmp_path / "tc" / "train").mkdir(parents=True)
        TaiChi(root=tmp_path / "data").prepare(tmp_path / "tc")
    taichi = tmp_path / "taichi"
    write_video(taichi / "train" / "yt1#0001#0040.mp4", ramp(6, 24, 32))
    write_video(taichi / "test" / "yt2#0001#0040.mp4", ramp(6, 24, 32))
    t = TaiChi(root=tmp_path / "data", size=16, frames=3)
    t.prepare(taichi)
    assert t.spec.family == "bodies" and t.meta()["identities"] == ["yt1", "yt2"]


# -- CelebV-HQ ------------------------------------------------------------------------------------

def test_celebvhq_labels_missing_clips_and_split(tmp_path):
    source = tmp_path / "celebv"
    info = {"meta_info": {"appearance_mapping": ["Blurry", "Male", "Young"], "action_mapping": ["talk", "smile"]},
            "clips": {}}
    for i, (yt, emotion) in enumerate([("aaa", {"sep_flag": False, "labels": "happy"}),
                                       ("bbb", {"sep_flag": True, "labels": [{"emotion": "neutral", "start": 0.0, "end": 1.0},
                                                                             {"emotion": "surprise", "start": 1.0, "end": 4.0}]}),
                                       ("ccc", {"sep_flag": False, "labels": "sadness"}),
                                       ("ddd", {"sep_flag": False, "labels": "neutral"})]):
        clip = f"{yt}_{i}"
        info["clips"][clip] = {"ytb_id": yt, "duration": {"start_sec": 0, "end_sec": 4},
                               "bbox": {"top": 0.1, "bottom": 0.9, "left": 0.2, "right": 0.8},
                               "attributes": {"appearance": [1, i % 2, 0], "action": [0, 1], "emotion": emotion}}
        if yt != "ddd":  # not downloaded
            write_video(source / "processed" / f"{clip}.mp4", ramp(20, 24, 24))
    (source / "celebvhq_info.json").write_text(json.dumps(info))
    with pytest.raises(LayoutError, match=r"no test items among the 3.*test_fraction"):
        CelebVHQ(root=tmp_path / "data", size=16, test_fraction=0.0).prepare(source)
    adapter = CelebVHQ(root=tmp_path / "data", size=16, test_fraction=0.5, seed=1)
    adapter.prepare(source)
    assert len(adapter.split("train")) + len(adapter.split("test")) == 3
    assert adapter.meta()["scan"]["missing_clips"] == 1
    spec = adapter.spec
    assert [l.name for l in spec.labels] == ["emotion", "app_blurry", "app_male", "app_young", "act_talk", "act_smile"]
    assert spec.label("app_male").kind == "static" and spec.label("act_smile").kind == "dynamic"
    labels = {}
    for split in ("train", "test"):
        data = adapter.split(split)
        for i, key in enumerate(data.extra["key"]):
            labels[Path(key).stem] = {name: int(values[i]) for name, values in data.labels.items()}
    assert labels["aaa_0"]["emotion"] == 1 and labels["bbb_1"]["emotion"] == 5 and labels["ccc_2"]["emotion"] == 2
    assert labels["bbb_1"]["app_male"] == 1 and labels["aaa_0"]["app_male"] == 0 and labels["aaa_0"]["act_smile"] == 1
    only = CelebVHQ(root=tmp_path / "data", size=16, labels="emotion", crop="bbox", test_fraction=0.5, seed=1)
    only.prepare(source)
    assert [l.name for l in only.spec.labels] == ["emotion"]
    assert len(only.split("train")) + len(only.split("test")) == 3
    with pytest.raises(LayoutError, match="unknown emotion 'bored'"):
        emotion_label("bored", "x_1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="celebvhq_info.json not found"):
        CelebVHQ(root=tmp_path / "data").prepare(tmp_path / "empty")


def test_cli_prepare_info_verify_report_paths(mhad, tmp_path, monkeypatch, capsys):
    from seqbench.cli import main

    monkeypatch.setenv("SEQBENCH_DATA", str(tmp_path / "data"))
    bad = mhad / "RGB" / "a27_s8_t1_color.avi"
    bad.write_bytes(b"")
    assert main(["data", "prepare", "utd-mhad", "--source", str(mhad), "--data-option", "size=16"]) == 0
    assert "prepared utd-mhad at" in capsys.readouterr().out
    assert main(["data", "info", "utd-mhad", "--data-option", "size=16"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["train_clips"] == 8 and info["test_clips"] == 7 and info["skipped_files"] == 1
    assert info["shape"] == [10, 3, 16, 16] and info["fingerprint"]
    assert main(["data", "verify", "utd-mhad", "--data-option", "size=16"]) == 1
    out = capsys.readouterr()
    assert str(bad) in out.out and "2 problem(s) in utd-mhad" in out.err  # the bad file once (skipped and re-read), a30 misnamed
    assert sum(line.startswith(str(bad)) for line in out.out.splitlines()) == 1
    assert main(["data", "info", "mead"]) == 2
    assert "seqbench data prepare mead --source DIR" in capsys.readouterr().err
