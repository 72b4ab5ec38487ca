"""Pinned judges: one file per judge (weights + card), imported into the cache, shipped for embedded datasets.

A judge is identified by the digest of its weights (:func:`seqbench.model_store.weights_digest`), not by
its recipe: four judges trained under one cache key (same config and data, another thread count or
stopping step) disagreed by up to 0.12 on a method's swaps (docs/findings.md). So a leaderboard is
only regenerable with *the same weights*, and seqbench moves them around as files:

* ``seqbench judges export`` writes ``{"format", "card", "weights"}`` with :func:`torch.save`; the
  *card* holds the dataset fingerprint, the judge's cache key and config, the train/validation
  split, per-head test accuracy and confusion matrices, and the versions that made it.
* ``seqbench judges import FILE`` verifies the file and installs it in the cache under its key, so
  runs anywhere use exactly those weights. ``--metric-option judge.weights=FILE|DIGEST`` selects a
  judge explicitly (``train`` ignores the shipped judge and trains or reuses a cached one).
* The embedded datasets' judges ship inside the package (:data:`SHIPPED_DIR`) and are the default
  whenever their key matches the run's (same dataset fingerprint, train items, config and version).

Files are loaded with ``weights_only=True``; a file whose weights do not hash to its card's digest,
or whose dataset fingerprint is not the run's, is refused with a message that says what to do.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

    from .data import SplitData
    from .judges import TrainedJudge
    from .types import DataSpec

__all__ = ["FORMAT", "SHIPPED_DIR", "JudgeFileError", "judge_card", "export_judge", "read_judge_file",
           "judge_from_file", "trained_from_state", "install_judge", "shipped_judge_files", "find_judge_file", "list_judges"]

FORMAT = "seqbench-judge/1"
SHIPPED_DIR = Path(__file__).with_name("shipped_judges")
SUFFIX = ".judge.pt"


class JudgeFileError(ConfigError):
    """A judge file that cannot be used (unreadable, corrupted, or for another dataset)."""


def judge_card(trained: "TrainedJudge", spec: "DataSpec", test: "SplitData", *, batch_size: int = 256,
               dataset_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a reader needs to trust a judge file: data, split, recipe, accuracy and confusion per head."""
    import dataclasses

    import numpy as np
    import torch

    from . import __version__
    from .utils import predict_in_batches

    model = trained.model
    with torch.no_grad():
        logits = predict_in_batches(model, test.clips, len(test), batch_size, torch.device("cpu"))
    confusion = {}
    for label in spec.labels:
        truth = np.asarray(test.labels[label.name])
        guess = logits[label.name].argmax(1).numpy()
        matrix = np.zeros((label.num_classes, label.num_classes), dtype=np.int64)
        np.add.at(matrix, (truth, guess), 1)
        confusion[label.name] = matrix.tolist()
    meta = trained.meta
    key = meta.get("key", {})
    return {
        "format": FORMAT, "dataset": spec.name, "dataset_options": dataset_options or {},
        "fingerprint": spec.fingerprint, "shape": [spec.frames, spec.channels, spec.height, spec.width],
        "value_range": list(spec.value_range),
        "labels": [[label.name, label.num_classes, label.kind] for label in spec.labels],
        "config": dataclasses.asdict(model.config), "key": key, "digest": meta.get("digest", ""),
        "weights": meta["weights"],
        "split": {"train_items": key.get("train_items"), "val_fraction": model.config.val_fraction,
                  "split_seed": model.config.seed, **{k: v for k, v in meta.get("fit", {}).items()
                                                      if k in ("train_items", "val_items")}},
        "fit": meta.get("fit", {}), "test_accuracy": meta["test_accuracy"], "test_items": meta.get("test_items"),
        "test_clips": len(test), "confusion": confusion,
        "made_with": {"seqbench": __version__, "torch": meta.get("torch", torch.__version__),
                      "threads": meta.get("threads"), "device": meta.get("device")},
    }


def export_judge(trained: "TrainedJudge", card: dict[str, Any], path: Path | str) -> Path:
    """Write the judge and its card to one file (atomic), and the card beside it as ``.json``."""
    import torch

    path = Path(path)
    if not path.name.endswith(SUFFIX):
        path = path.with_name(path.name + SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    card = plain(card)  # weights_only loading accepts plain containers and numbers only
    payload = {"format": FORMAT, "card": card,
               "weights": {k: v.detach().cpu().contiguous() for k, v in trained.model.state_dict().items()}}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    path.with_name(path.name[: -len(SUFFIX)] + ".card.json").write_text(json.dumps(card, indent=1) + "\n")
    return path


def plain(value: Any) -> Any:
    """``value`` as JSON-native containers and scalars (numpy numbers become Python numbers)."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def read_judge_file(path: Path | str) -> tuple[dict[str, "torch.Tensor"], dict[str, Any]]:
    """``(weights, card)`` of a judge file, after checking that the weights hash to the card's digest."""
    import torch

    from .model_store import state_digest

    path = Path(path)
    if not path.is_file():
        raise JudgeFileError(f"judge file {path} does not exist; list the available judges with `seqbench judges list`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle of arbitrary objects, not a torch file at all
        raise JudgeFileError(f"{path} is not a readable seqbench judge file ({_first_line(exc)}); copy it again or "
                             f"re-export it with `seqbench judges export`") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or not isinstance(payload.get("card"), dict) \
            or not isinstance(payload.get("weights"), dict):
        raise JudgeFileError(f"{path} is not a seqbench judge file (expected format {FORMAT!r}); export judges with "
                             f"`seqbench judges export`")
    weights, card = payload["weights"], payload["card"]
    digest = state_digest(weights)
    if digest != card.get("weights"):
        raise JudgeFileError(f"{path}: its weights hash to {digest}, but its card says {card.get('weights')}: the file "
                             f"is corrupted or was edited; copy it again or re-export it")
    return weights, card


def judge_from_file(path: Path | str, spec: "DataSpec") -> "TrainedJudge":
    """A :class:`~seqbench.judges.TrainedJudge` from a verified file, refused for another dataset."""
    weights, card = read_judge_file(path)
    return trained_from_state(weights, card, spec, str(path))


def trained_from_state(weights: dict[str, Any], card: dict[str, Any], spec: "DataSpec",
                       source: str) -> "TrainedJudge":
    """A judge from verified weights and its card (a file's, or a cached judge's meta), for ``spec`` only."""
    from .judges import Judge, JudgeConfig, TrainedJudge

    if card.get("fingerprint") != spec.fingerprint:
        raise JudgeFileError(
            f"{source} judges {card.get('dataset')!r} {card.get('dataset_options') or ''} (fingerprint "
            f"{str(card.get('fingerprint'))[:16]}), but this run's {spec.name!r} has fingerprint {spec.fingerprint[:16]}: "
            f"use a judge made for this dataset (`seqbench judges list`) or train one "
            f"(`seqbench judges train --dataset {spec.name}`)")
    config = card["config"]
    config = JudgeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    model = Judge(spec, config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise JudgeFileError(f"{source}: the weights do not fit a judge for {spec.name} ({_first_line(exc)})") from None
    meta = {"digest": card.get("digest", ""), "weights": card["weights"], "key": card.get("key", {}),
            "test_accuracy": card["test_accuracy"], "test_items": card.get("test_items"), "fit": card.get("fit", {}),
            "source": source}
    return TrainedJudge(model.eval(), meta)


def install_judge(path: Path | str, root: Path | None = None) -> Path:
    """Copy a verified judge file into the cache under its key, where runs with that key find it.

    A different judge already cached under the key is moved aside (``model.pt.replaced-<time>``).
    """
    from .utils import atomic_torch_save, atomic_write_text, cache_root

    weights, card = read_judge_file(path)
    if not card.get("digest"):
        raise JudgeFileError(f"{path}: its card has no cache key digest, so no run would find it; re-export it")
    folder = (root if root is not None else cache_root()) / "judges" / card["digest"]
    folder.mkdir(parents=True, exist_ok=True)
    model_path, meta_path = folder / "model.pt", folder / "meta.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("weights") != card["weights"] and model_path.exists():
            stamp = time.strftime("%Y%m%d-%H%M%S")
            shutil.move(str(model_path), str(folder / f"model.pt.replaced-{stamp}"))
    atomic_torch_save(weights, model_path)
    meta = {"fit": card.get("fit", {}), "test_accuracy": card["test_accuracy"], "test_items": card.get("test_items"),
            "key": card.get("key", {}), "digest": card["digest"], "weights": card["weights"],
            "imported_from": str(Path(path).resolve()), "card": card}
    atomic_write_text(meta_path, json.dumps(meta, indent=2, default=str))
    return folder


def shipped_judge_files() -> list[Path]:
    """The judge files inside the package, sorted."""
    return sorted(SHIPPED_DIR.glob(f"*{SUFFIX}")) if SHIPPED_DIR.is_dir() else []


def _card_of(path: Path) -> dict[str, Any]:
    """A shipped file's card from its ``.card.json`` sidecar (no weights loaded)."""
    sidecar = path.with_name(path.name[: -len(SUFFIX)] + ".card.json")
    return json.loads(sidecar.read_text()) if sidecar.exists() else read_judge_file(path)[1]


def find_judge_file(*, key_digest: str | None = None, weights: str | None = None) -> Path | None:
    """A shipped judge whose cache key digest equals ``key_digest`` or whose weights digest starts with ``weights``."""
    for path in shipped_judge_files():
        card = _card_of(path)
        if key_digest and card.get("digest") == key_digest:
            return path
        if weights and str(card.get("weights", "")).startswith(weights):
            return path
    return None


def list_judges(root: Path | None = None) -> list[dict[str, Any]]:
    """Shipped and cached judges: where, dataset, key and weights digests, test accuracy."""
    from .utils import cache_root

    rows = []
    for path in shipped_judge_files():
        card = _card_of(path)
        rows.append({"where": "shipped", "path": str(path), "dataset": card.get("dataset"),
                     "options": card.get("dataset_options", {}), "key": card.get("digest", "")[:8],
                     "weights": card.get("weights", "")[:8], "joint": card.get("test_accuracy", {}).get("joint")})
    folder = (root if root is not None else cache_root()) / "judges"
    for meta_path in sorted(folder.glob("*/meta.json")) if folder.is_dir() else []:
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        key = meta.get("key", {})
        rows.append({"where": "imported" if meta.get("imported_from") else "cache", "path": str(meta_path.parent),
                     "dataset": key.get("dataset"), "options": {}, "key": meta.get("digest", "")[:8],
                     "weights": meta.get("weights", "")[:8], "joint": meta.get("test_accuracy", {}).get("joint")})
    return rows
