"""``celebv-hq``: CelebV-HQ face videos with appearance, action and emotion labels (Zhu et al., ECCV 2022).

Reads ``celebvhq_info.json`` (``meta_info.appearance_mapping`` / ``action_mapping``; ``clips`` keyed
``<ytid>_<k>`` with ``ytb_id``, ``duration``, ``bbox`` and ``attributes.{appearance, action,
emotion}``) and the clips ``<clip_id>.mp4`` found anywhere under the source folder (the download
script's processed, already cropped clips). Clips listed in the json but not downloaded are
counted, not an error (YouTube videos disappear).

Labels (option ``labels``, default ``emotion,appearance,action``):

* ``emotion`` (dynamic): neutral, happy, sad, anger, fear, surprise, contempt, disgust (names in
  the json are matched case-insensitively, with their adjective forms). Clips whose emotion
  changes (``sep_flag``) get the emotion that lasts longest;
* ``app_<name>`` (static, binary) for every appearance attribute of the mapping;
* ``act_<name>`` (dynamic, binary) for every action of the mapping.

Identity: the YouTube video (one speaker per video in practice). No official split: videos are
split by a seeded hash of ``ytb_id`` (``test_fraction``, default 0.1), so clips of one video stay
together. ``crop=bbox`` crops the json box first (for unprocessed downloads); default ``center``.
Clips: 15 frames 2 apart from a seeded start, 64 px.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from seqbench.dataset_lifecycle import Item, Scan, as_list, slug
from seqbench.errors import ConfigError
from seqbench.hookspecs import hookimpl
from seqbench.media import Box, LayoutError, SkipLog, center_square, square_around, stable_bucket
from seqbench.types import LabelSpec
from seqbench.video_clip_dataset import VideoClipDataset


EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "anger", "fear", "surprise", "contempt", "disgust")
_EMOTION_ALIASES = {"neutral": 0, "happy": 1, "happiness": 1, "sad": 2, "sadness": 2, "anger": 3, "angry": 3,
                    "fear": 4, "fearful": 4, "surprise": 5, "surprised": 5, "contempt": 6, "disgust": 7,
                    "disgusted": 7}
LABEL_GROUPS: tuple[str, ...] = ("emotion", "appearance", "action")
INFO_FILE = "celebvhq_info.json"


def _names(mapping: Any, what: str, path: Path) -> list[str]:
    """Attribute names of a mapping given as a list of names or a {name: index} / {index: name} dict."""
    if isinstance(mapping, list):
        return [str(n) for n in mapping]
    if isinstance(mapping, dict):
        pairs = [(int(v), str(k)) if isinstance(v, (int, str)) and str(v).isdigit() else (int(k), str(v))
                 for k, v in mapping.items()]
        return [name for _, name in sorted(pairs)]
    raise LayoutError(f"dataset 'celebv-hq': {path}: meta_info.{what} must be a list or dict of names")


def _binary(values: Any, names: list[str], clip: str, what: str) -> list[int]:
    """0/1 per attribute from a binary vector, a list of indices or a list of names."""
    values = list(values or [])
    if len(values) == len(names) and all(v in (0, 1, True, False) for v in values):
        return [int(v) for v in values]
    out = [0] * len(names)
    lookup = {n.lower(): i for i, n in enumerate(names)}
    for v in values:
        index = lookup.get(str(v).lower()) if isinstance(v, str) else int(v)
        if index is None or not 0 <= index < len(names):
            raise LayoutError(f"dataset 'celebv-hq': clip {clip}: {what} value {v!r} is not in the mapping "
                              f"({len(names)} entries)")
        out[index] = 1
    return out


def emotion_label(emotion: Any, clip: str) -> int:
    """Emotion class of a clip; with ``sep_flag`` the emotion of the longest segment."""
    def lookup(name: Any) -> int:
        index = _EMOTION_ALIASES.get(str(name).strip().lower())
        if index is None:
            raise LayoutError(f"dataset 'celebv-hq': clip {clip}: unknown emotion {name!r}; known: {', '.join(EMOTIONS)}")
        return index

    if isinstance(emotion, dict):
        labels = emotion.get("labels")
        if not emotion.get("sep_flag") or isinstance(labels, str):
            return lookup(labels[0] if isinstance(labels, list) else labels)
        durations = np.zeros(len(EMOTIONS))
        for segment in labels or []:
            if isinstance(segment, dict):
                name = next((v for v in segment.values() if isinstance(v, str)), None)
                times = [float(v) for v in segment.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
            elif isinstance(segment, (list, tuple)):
                name = next((v for v in segment if isinstance(v, str)), None)
                times = [float(v) for v in segment if isinstance(v, (int, float)) and not isinstance(v, bool)]
            else:
                name, times = segment, []
            durations[lookup(name)] += (max(times) - min(times)) if len(times) >= 2 else 1.0
        if not durations.any():
            raise LayoutError(f"dataset 'celebv-hq': clip {clip}: emotion has sep_flag but no segments")
        return int(durations.argmax())
    return lookup(emotion)


class CelebVHQ(VideoClipDataset):
    """CelebV-HQ: appearance attributes (static), actions and emotion (dynamic)."""

    name = "celebv-hq"
    version = "1"
    family = "faces"
    description = "CelebV-HQ face clips: 40 appearance attributes (static), 35 actions + 8 emotions (dynamic)"
    layout_help = f"{INFO_FILE} and the clips <clip_id>.mp4 (anywhere below the folder)"
    defaults: ClassVar[dict[str, Any]] = {**VideoClipDataset.common_defaults, "frames": 15, "stride": 2,
                                          "labels": "emotion,appearance,action", "crop": "center",
                                          "test_fraction": 0.1}
    settings_keys = VideoClipDataset.settings_keys + ("labels", "crop", "test_fraction")
    identity_label = "video"

    def validate(self, options: dict[str, Any]) -> dict[str, Any]:
        out = super().validate(options)
        groups = as_list(out["labels"])
        unknown = sorted(set(groups) - set(LABEL_GROUPS))
        if unknown or not groups:
            raise ConfigError(f"dataset {self.name!r}: labels={out['labels']!r}: choose from {', '.join(LABEL_GROUPS)} "
                              f"(comma-separated)")
        out["labels"] = ",".join(g for g in LABEL_GROUPS if g in groups)
        if out["crop"] not in ("center", "bbox"):
            raise ConfigError(f"dataset {self.name!r}: crop={out['crop']!r}: use center (processed clips) or bbox")
        return out

    def crop_box(self, item: Item, frames: np.ndarray, skips: SkipLog) -> Box | None:
        height, width = frames.shape[1:3]
        box = item.info.get("bbox")
        if self.options["crop"] == "bbox" and box:
            top, left = box["top"] * height, box["left"] * width
            h, w = (box["bottom"] - box["top"]) * height, (box["right"] - box["left"]) * width
            return square_around((int(top), int(left), max(1, int(h)), max(1, int(w))), height, width)
        return center_square(height, width)

    def scan(self, source: Path) -> Scan:
        info_path = source / INFO_FILE
        if not info_path.is_file():
            found = sorted(source.rglob(INFO_FILE))
            if not found:
                raise LayoutError(f"dataset {self.name!r}: {INFO_FILE} not found in {source} (or below); expected "
                                  f"{self.layout_help}")
            info_path = found[0]
        try:
            info = json.loads(info_path.read_text())
            meta_info, clips = info["meta_info"], info["clips"]
        except (ValueError, KeyError, TypeError) as exc:
            raise LayoutError(f"dataset {self.name!r}: {info_path} is not the CelebV-HQ info file "
                              f"({type(exc).__name__}: {exc}); it needs meta_info and clips") from None
        groups = self.options["labels"].split(",")
        appearance = _names(meta_info.get("appearance_mapping", []), "appearance_mapping", info_path)
        actions = _names(meta_info.get("action_mapping", []), "action_mapping", info_path)
        videos = {p.stem: p for p in source.rglob("*.mp4")}
        present = [c for c in sorted(clips) if c in videos]
        if not present:
            raise LayoutError(f"dataset {self.name!r}: none of the {len(clips)} clips of {info_path} is under {source} "
                              f"as <clip_id>.mp4 (e.g. {next(iter(clips), '?')}.mp4); expected {self.layout_help}")
        ytids = sorted({clips[c].get("ytb_id", c.rsplit("_", 1)[0]) for c in present})
        index = {y: i for i, y in enumerate(ytids)}
        fraction, seed = self.options["test_fraction"], self.options["seed"]
        items = []
        for clip in present:
            entry = clips[clip]
            attributes = entry.get("attributes", {})
            labels: dict[str, int] = {}
            if "emotion" in groups:
                labels["emotion"] = emotion_label(attributes.get("emotion"), clip)
            if "appearance" in groups:
                labels.update({f"app_{slug(n)}": v for n, v in
                               zip(appearance, _binary(attributes.get("appearance"), appearance, clip, "appearance"))})
            if "action" in groups:
                labels.update({f"act_{slug(n)}": v for n, v in
                               zip(actions, _binary(attributes.get("action"), actions, clip, "action"))})
            ytid = entry.get("ytb_id", clip.rsplit("_", 1)[0])
            items.append(Item(path=videos[clip], split="test" if stable_bucket(ytid, seed) < fraction else "train",
                              key=videos[clip].relative_to(source).as_posix(), labels=labels, identity=index[ytid],
                              info={"bbox": entry.get("bbox")}))
        specs: tuple[LabelSpec, ...] = ()
        if "emotion" in groups:
            specs += (LabelSpec("emotion", len(EMOTIONS), "dynamic", EMOTIONS),)
        if "appearance" in groups:
            specs += tuple(LabelSpec(f"app_{slug(n)}", 2, "static", ("no", "yes")) for n in appearance)
        if "action" in groups:
            specs += tuple(LabelSpec(f"act_{slug(n)}", 2, "dynamic", ("no", "yes")) for n in actions)
        return Scan(items, specs, ytids, {"missing_clips": len(clips) - len(present), "listed_clips": len(clips),
                                          "info_file": str(info_path),
                                          "split_rule": f"by ytb_id, seeded hash, test fraction {fraction}"})


@hookimpl
def seqbench_add_datasets() -> list[type[VideoClipDataset]]:
    return [CelebVHQ]
