"""``mead``: MEAD, Multi-view Emotional Audio-visual Dataset (Wang et al., ECCV 2020), video only.

Reads ``<actor>/video/<view>/<emotion>/level_<n>/<NNN>.mp4`` (actors ``M003``, ``W009``...; the
part archives unpack to this layout, possibly below further folders). Views: down, front,
left_30, left_60, right_30, right_60, top; option ``views`` (default ``front``; ``all`` or a comma
list). Labels: ``emotion`` (dynamic, 8: angry, contempt, disgusted, fear, happy, neutral, sad,
surprised), ``level`` (dynamic, intensity 1-3; neutral exists only at level 1), ``actor``
(static), and ``view`` (static) when more than one view is kept. Identity = actor.

MEAD has no official split. Sentences are split by a seeded hash of actor/emotion/level/number
(``test_fraction``, default 0.2), identical for every view, so every actor is in both splits.

Clips (DiViD uses 15-frame clips of Haar-cascade face crops): 15 frames 2 apart from a seeded
start; the face box is the largest OpenCV frontal-face detection on the clip's middle frame,
enlarged ``face_scale`` times to a square (the central square when no face is found, counted in
``meta.json`` notes), then resized to 64 px.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from seqbench.dataset_lifecycle import Item, Scan, as_bool, as_float, as_list
from seqbench.errors import ConfigError
from seqbench.hookspecs import hookimpl
from seqbench.media import Box, LayoutError, SkipLog, center_square, detect_face, square_around, stable_bucket
from seqbench.types import LabelSpec
from seqbench.video_clip_dataset import VideoClipDataset


EMOTIONS: tuple[str, ...] = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")
VIEWS: tuple[str, ...] = ("down", "front", "left_30", "left_60", "right_30", "right_60", "top")
ACTOR = re.compile(r"^[MW]\d{3}$")
LEVEL = re.compile(r"^level_([123])$")


class MEAD(VideoClipDataset):
    """MEAD talking faces: actor (static) x emotion and intensity (dynamic), face crops."""

    name = "mead"
    version = "1"
    family = "faces"
    description = "MEAD emotional talking faces: 8 emotions x 3 levels (dynamic), actors (static), Haar face crops"
    layout_help = "<actor e.g. M003>/video/<view>/<emotion>/level_<1-3>/<NNN>.mp4"
    defaults: ClassVar[dict[str, Any]] = {**VideoClipDataset.common_defaults, "frames": 15, "stride": 2,
                                          "views": "front", "face_crop": True, "face_scale": 1.4,
                                          "test_fraction": 0.2}
    settings_keys = VideoClipDataset.settings_keys + ("views", "face_crop", "face_scale", "test_fraction")
    identity_label = "actor"

    def validate(self, options: dict[str, Any]) -> dict[str, Any]:
        out = super().validate(options)
        views = VIEWS if str(out["views"]).strip().lower() == "all" else tuple(as_list(out["views"]))
        unknown = sorted(set(views) - set(VIEWS))
        if unknown or not views:
            raise ConfigError(f"dataset {self.name!r}: views={out['views']!r}: unknown view(s) {', '.join(unknown)}; "
                              f"choose from {', '.join(VIEWS)} (comma-separated) or all")
        out["views"] = ",".join(v for v in VIEWS if v in views)
        out["face_crop"] = as_bool(out["face_crop"], "face_crop", self.name)
        out["face_scale"] = as_float(out["face_scale"], "face_scale", self.name, 1.0, 4.0)
        return out

    def crop_box(self, item: Item, frames: np.ndarray, skips: SkipLog) -> Box | None:
        height, width = frames.shape[1:3]
        if not self.options["face_crop"]:
            return center_square(height, width)
        face = detect_face(frames[len(frames) // 2])
        if face is None:
            skips.note(item.path, "no face detected: central square used")
            return center_square(height, width)
        return square_around(face, height, width, self.options["face_scale"])

    def scan(self, source: Path) -> Scan:
        views = self.options["views"].split(",")
        found, malformed = [], []
        for path in sorted(source.rglob("*.mp4")):
            parts = path.relative_to(source).parts
            if len(parts) < 6:
                malformed.append((str(path), f"not at {self.layout_help}; ignored"))
                continue
            actor, video, view, emotion, level, _ = parts[-6:]
            level_match = LEVEL.match(level)
            if not (ACTOR.match(actor) and video == "video" and view in VIEWS and emotion in EMOTIONS and level_match):
                malformed.append((str(path), f"path does not match {self.layout_help} (actor [MW]NNN, view in "
                                             f"{VIEWS}, emotion in {EMOTIONS}); ignored"))
                continue
            if view in views:
                found.append((path, actor, view, emotion, int(level_match.group(1)), path.stem))
        if not found:
            raise LayoutError(f"dataset {self.name!r}: no videos at {self.layout_help} with view in {views} under "
                              f"{source}" + (f" ({len(malformed)} .mp4 files elsewhere, e.g. {malformed[0][0]})"
                                             if malformed else ""))
        actors = sorted({f[1] for f in found})
        actor_index = {a: i for i, a in enumerate(actors)}
        fraction, seed = self.options["test_fraction"], self.options["seed"]
        items = []
        for path, actor, view, emotion, level, number in found:
            sentence = f"{actor}/{emotion}/{level}/{number}"
            labels = {"actor": actor_index[actor], "emotion": EMOTIONS.index(emotion), "level": level - 1}
            if len(views) > 1:
                labels["view"] = views.index(view)
            items.append(Item(path=path, split="test" if stable_bucket(sentence, seed) < fraction else "train",
                              key=path.relative_to(source).as_posix(), labels=labels, identity=actor_index[actor]))
        labels = (LabelSpec("actor", len(actors), "static", tuple(actors)),
                  LabelSpec("emotion", len(EMOTIONS), "dynamic", EMOTIONS),
                  LabelSpec("level", 3, "dynamic", ("level_1", "level_2", "level_3")))
        if len(views) > 1:
            labels += (LabelSpec("view", len(views), "static", tuple(views)),)
        return Scan(items, labels, actors,
                    {"malformed": malformed,
                     "split_rule": f"by sentence (actor/emotion/level/number), seeded hash, test fraction {fraction}"})


@hookimpl
def seqbench_add_datasets() -> list[type[VideoClipDataset]]:
    return [MEAD]
