"""``utd-mhad``: the UTD Multimodal Human Action Dataset, RGB videos (Chen et al., ICIP 2015).

Reads ``a{A}_s{S}_t{T}_color.avi`` files (27 actions x 8 subjects x 4 trials; 861 usable) anywhere
under the source folder (the download unpacks them into ``RGB/``). Static label: the subject;
dynamic label: the action. The common protocol splits by subject: train {1, 2, 3, 5}, test
{4, 6, 7, 8} (option ``train_subjects``), so test subjects are never seen in training - subject
classifiers trained on train do not transfer to test (``DataSpec.extra['disjoint_static']``).

Clips: 10 frames spread uniformly over each video (``sampling=uniform``, as DiViD's 10-frame
clips cover the whole action), the central square crop of the 640x480 frames, 64 px.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from seqbench.dataset_lifecycle import Item, Scan, as_list
from seqbench.errors import ConfigError
from seqbench.hookspecs import hookimpl
from seqbench.media import LayoutError
from seqbench.types import LabelSpec
from seqbench.video_clip_dataset import VideoClipDataset


ACTIONS: tuple[str, ...] = (
    "swipe_left", "swipe_right", "wave", "clap", "throw", "arm_cross", "basketball_shoot", "draw_x",
    "draw_circle_cw", "draw_circle_ccw", "draw_triangle", "bowling", "boxing", "baseball_swing", "tennis_swing",
    "arm_curl", "tennis_serve", "push", "knock", "catch", "pickup_throw", "jog", "walk", "sit_to_stand",
    "stand_to_sit", "lunge", "squat")
SUBJECTS = 8
PATTERN = re.compile(r"^a(\d+)_s(\d+)_t(\d+)_color\.avi$", re.IGNORECASE)


class UTDMHAD(VideoClipDataset):
    """UTD-MHAD RGB: subject (static) x action (dynamic), subject-disjoint split."""

    name = "utd-mhad"
    version = "1"
    family = "bodies"
    description = "UTD-MHAD RGB action videos: 27 actions (dynamic) x 8 subjects (static), subject split 1235/4678"
    layout_help = "the UTD-MHAD RGB videos a{1-27}_s{1-8}_t{1-4}_color.avi (searched recursively, e.g. RGB/)"
    defaults: ClassVar[dict[str, Any]] = {**VideoClipDataset.common_defaults, "frames": 10, "sampling": "uniform",
                                          "train_subjects": "1,2,3,5"}
    settings_keys = VideoClipDataset.settings_keys + ("train_subjects",)
    identity_label = "subject"

    def validate(self, options: dict[str, Any]) -> dict[str, Any]:
        out = super().validate(options)
        try:
            subjects = sorted({int(s) for s in as_list(out["train_subjects"])})
        except ValueError:
            subjects = []
        if not subjects or not set(subjects) < set(range(1, SUBJECTS + 1)):
            raise ConfigError(f"dataset {self.name!r}: train_subjects={out['train_subjects']!r} must be a comma-"
                              f"separated proper subset of 1..{SUBJECTS}, e.g. 1,2,3,5 (the common split)")
        out["train_subjects"] = ",".join(map(str, subjects))
        return out

    def spec_extra(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {"disjoint_static": ["subject"], "actions": ACTIONS}

    def scan(self, source: Path) -> Scan:
        train = {int(s) for s in self.options["train_subjects"].split(",")}
        items, malformed = [], []
        candidates = sorted(p for p in source.rglob("*") if p.name.lower().endswith("_color.avi"))
        for path in candidates:
            match = PATTERN.match(path.name)
            action, subject, trial = (int(g) for g in match.groups()) if match else (0, 0, 0)
            if not match or not (1 <= action <= len(ACTIONS) and 1 <= subject <= SUBJECTS and trial >= 1):
                malformed.append((str(path), f"name does not match a{{1-{len(ACTIONS)}}}_s{{1-{SUBJECTS}}}_t{{N}}"
                                             f"_color.avi; ignored"))
                continue
            items.append(Item(path=path, split="train" if subject in train else "test",
                              key=path.relative_to(source).as_posix(),
                              labels={"subject": subject - 1, "action": action - 1}, identity=subject - 1,
                              info={"trial": trial}))
        if not items:
            others = sorted(p.name for p in source.rglob("*") if p.is_file())[:3]
            raise LayoutError(f"dataset {self.name!r}: no file named like a1_s1_t1_color.avi under {source} "
                              f"(searched recursively). Expected {self.layout_help}"
                              + (f"; found other files such as {', '.join(others)}" if others else "; the folder is empty"))
        labels = (LabelSpec("subject", SUBJECTS, "static", tuple(f"s{i}" for i in range(1, SUBJECTS + 1))),
                  LabelSpec("action", len(ACTIONS), "dynamic", ACTIONS))
        return Scan(items, labels, [f"s{i}" for i in range(1, SUBJECTS + 1)],
                    {"malformed": malformed,
                     "split_rule": f"by subject: train {sorted(train)}, test the others"})


@hookimpl
def seqbench_add_datasets() -> list[type[VideoClipDataset]]:
    return [UTDMHAD]
