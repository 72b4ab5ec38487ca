"""``voxceleb`` and ``taichi``: talking heads and Tai-Chi videos in the First Order Motion Model layout.

Both read ``<source>/{train,test}/`` holding videos (``.mp4``, ``.gif``, ``.mov``...) or frame
folders (``0000000.png``...; a frame folder keeps the ``.mp4`` suffix in its name), 256x256, as
the FOMM preprocessing writes them. The identity is the part of the name before the first ``#``:
the VoxCeleb person id (``id10001#ytid#000001#000100.mp4``) or the TaiChi YouTube id
(``ytid#start#end.mp4``). The FOMM split separates identities, so there are no static labels that
transfer from train to test; the identity is kept for validation carving and identity metrics.

``voxceleb`` also reads DiffSDA's VoxCeleb1 face crops,
``unzippedIntervalFaces/data/<Celebrity_Name>/1.6/<ytid>/<n>/*.jpg`` (one clip per ``<n>``
folder, identity = celebrity); that layout has no split, so clips are split by a seeded hash of
the YouTube id (``test_fraction``), keeping celebrities in both splits.

Clips: 10 frames 2 apart from a seeded start, 256 px (``size`` resizes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from seqbench.dataset_lifecycle import Item, Scan
from seqbench.hookspecs import hookimpl
from seqbench.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, LayoutError, stable_bucket
from seqbench.video_clip_dataset import VideoClipDataset


def identity_of(name: str) -> str:
    """Person / video id of a FOMM clip name: the part before the first ``#`` (without suffix)."""
    stem = name.split("#", 1)[0]
    return stem.rsplit(".", 1)[0] if "#" not in name and "." in stem else stem


def find_split(source: Path, split: str) -> Path | None:
    for child in source.iterdir():
        if child.is_dir() and child.name.lower() == split:
            return child
    return None


class FOMMDataset(VideoClipDataset):
    """Base of the First-Order-Motion-Model layouts: ``train/`` and ``test/`` of videos or frame folders."""

    defaults: ClassVar[dict[str, Any]] = {**VideoClipDataset.common_defaults, "size": 256, "frames": 10,
                                          "stride": 2}

    def spec_extra(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {"identities_shared_by_splits": meta.get("scan", {}).get("shared_identities", 0)}

    def entries(self, folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
        """Videos and frame folders in a split folder, and the entries that are neither."""
        usable, malformed = [], []
        for entry in sorted(folder.iterdir()):
            if entry.is_dir():
                if any(p.suffix.lower() in IMAGE_SUFFIXES for p in entry.iterdir()):
                    usable.append(entry)
                else:
                    malformed.append((str(entry), "frame folder without images; ignored"))
            elif entry.suffix.lower() in VIDEO_SUFFIXES:
                usable.append(entry)
            else:
                malformed.append((str(entry), f"not a video ({', '.join(VIDEO_SUFFIXES)}) or frame folder; ignored"))
        return usable, malformed

    def scan(self, source: Path) -> Scan:
        found: list[tuple[Path, str, str]] = []
        malformed: list[tuple[str, str]] = []
        for split in ("train", "test"):
            folder = find_split(source, split)
            if folder is None:
                raise LayoutError(f"dataset {self.name!r}: {source} has no {split}/ folder; expected {self.layout_help}")
            usable, bad = self.entries(folder)
            malformed += bad
            found += [(entry, split, identity_of(entry.name)) for entry in usable]
        return self._scan_result(source, found, malformed, "the source's train/ and test/ folders (FOMM)")

    def _scan_result(self, source: Path, found: list[tuple[Path, str, str]], malformed: list[tuple[str, str]],
                     rule: str) -> Scan:
        names = sorted({identity for _, _, identity in found})
        index = {n: i for i, n in enumerate(names)}
        items = [Item(path=p, split=split, key=p.relative_to(source).as_posix(), labels={}, identity=index[ident])
                 for p, split, ident in found]
        shared = len({i for _, s, i in found if s == "train"} & {i for _, s, i in found if s == "test"})
        return Scan(items, (), names, {"malformed": malformed, "split_rule": rule, "shared_identities": shared})


class VoxCeleb(FOMMDataset):
    """VoxCeleb talking heads (FOMM crops, or DiffSDA's VoxCeleb1 interval faces)."""

    name = "voxceleb"
    version = "1"
    family = "faces"
    description = "VoxCeleb talking heads, FOMM layout (train/ test/ mp4 or frame folders) or DiffSDA face crops, 256 px"
    layout_help = ("train/ and test/ with <person_id>#<ytid>#<start>#<end>.mp4 files or frame folders (FOMM), or "
                   "unzippedIntervalFaces/data/<Celebrity_Name>/1.6/<ytid>/<n>/*.jpg (DiffSDA)")
    defaults: ClassVar[dict[str, Any]] = {**FOMMDataset.defaults, "test_fraction": 0.1}
    settings_keys = FOMMDataset.settings_keys + ("test_fraction",)

    def scan(self, source: Path) -> Scan:
        interval = next((p for p in (source / "unzippedIntervalFaces" / "data", source / "data", source)
                         if p.is_dir() and any(c.is_dir() and (c / "1.6").is_dir() for c in p.iterdir())), None)
        if interval is None or find_split(source, "train") is not None:
            return super().scan(source)
        fraction, seed = self.options["test_fraction"], self.options["seed"]
        found, malformed = [], []
        for celebrity in sorted(c for c in interval.iterdir() if (c / "1.6").is_dir()):
            for video in sorted(p for p in (celebrity / "1.6").iterdir() if p.is_dir()):
                split = "test" if stable_bucket(video.name, seed) < fraction else "train"
                for clip in sorted(p for p in video.iterdir() if p.is_dir()):
                    if any(f.suffix.lower() in IMAGE_SUFFIXES for f in clip.iterdir()):
                        found.append((clip, split, celebrity.name))
                    else:
                        malformed.append((str(clip), "clip folder without images; ignored"))
        if not found:
            raise LayoutError(f"dataset {self.name!r}: no clip folders under {interval}; expected {self.layout_help}")
        return self._scan_result(source, found, malformed,
                                 f"DiffSDA crops: by YouTube id, seeded hash, test fraction {fraction}")


class TaiChi(FOMMDataset):
    """TaiChi-HD (FOMM): Tai-Chi performances, identity = YouTube video."""

    name = "taichi"
    version = "1"
    family = "bodies"
    description = "TaiChi-HD (FOMM layout: train/ test/ mp4 or frame folders), 256 px, identity = YouTube video"
    layout_help = "train/ and test/ with <ytid>#<start>#<end>.mp4 files or frame folders of 0000000.png (FOMM)"


@hookimpl
def seqbench_add_datasets() -> list[type[VideoClipDataset]]:
    return [VoxCeleb, TaiChi]
