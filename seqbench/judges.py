"""Judges and other trained evaluation models: trained once per dataset, cached, reused by every method.

A *judge* is a fixed classifier of a dataset's ground-truth labels; judge-based metrics decode
swapped or sampled factors and ask the judge what it sees. So that every method is scored by the
same judge, it is trained on the dataset's train split only (model selection on a validation part
carved from train, never on test), cached on disk under a key of everything that determines it
(dataset fingerprint, the train items, the judge config and version), and its own accuracy on the
real test clips is reported beside every judge-based number as the *judge ceiling*.

Architecture (C-DSVAE's Sprites judge, ``classifier_Sprite_all``): every frame goes through the
DCGAN frame encoder (conv 4x4 stride 2 + BatchNorm + LeakyReLU 0.2 stages, then a 4x4 conv to
``g_dim`` with BatchNorm and Tanh), a bidirectional LSTM runs over the frames, the clip feature is
``[forward output at the last step, backward output at the first step]`` and every label has its
own head ``Linear(2h, head_hidden) - ReLU - Linear(num_classes)``. Frame count, frame size and heads
follow the dataset's :class:`~seqbench.types.DataSpec`. Only the width is configurable: the
reference's 64-128-256-512 channels cost ~30 CPU minutes per epoch of Sprites, and a 16-32-64-128
encoder reaches the same >= 99 % per head in minutes (see ``docs/metrics.md``).

The generic parts live where the other evaluation models find them: the cache in
:mod:`seqbench.model_store`, the fitting loop in :func:`seqbench.trainer.fit_model`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import declared_options, did_you_mean, parse_options
from .data import SplitData
from .errors import ConfigError, NotApplicable
from .model_store import announce, cached_model, cached_model_label, state_digest
from .trainer import FitConfig, fit_model
from .types import DataSpec
from .utils import cache_root, content_hash, predict_in_batches, to_unit_range

__all__ = ["Judge", "JudgeConfig", "TrainedJudge", "judge_config_for", "judge_unavailable_reason", "load_judge"]

JUDGE_VERSION = "2"  # 2: initial weights seeded by the key (cached_model), recipe fields augment/label_smoothing


# ------------------------------------------------------------------------------------- judge

@dataclass(frozen=True)
class JudgeConfig:
    """Width of the judge network and its training (reference recipe: Adam 1e-3, betas (0.5, 0.999), batch 32)."""

    base_channels: int = 64
    g_dim: int = 128
    hidden: int = 256
    head_hidden: int = 256
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 32
    max_steps: int = 20_000
    val_every: int = 250
    target_val_accuracy: float = 0.998  # stop once every head reaches it on validation
    val_fraction: float = 0.1
    seed: int = 0
    # Robustness to generated clips (docs/metrics.md, "Judges robust to generated clips"): the probability
    # of each decoder artefact (blur, colour noise, 1-px shift; seqbench.nn.decoder_artefacts) per training
    # clip, and label smoothing of the cross-entropy.
    augment: float = 0.0
    label_smoothing: float = 0.0

    def fit_config(self) -> FitConfig:
        return FitConfig(lr=self.lr, betas=tuple(self.betas), batch_size=self.batch_size, max_steps=self.max_steps,
                         val_every=self.val_every, target=self.target_val_accuracy,
                         val_fraction=self.val_fraction, seed=self.seed)

    def with_overrides(self, overrides: dict[str, Any]) -> "JudgeConfig":
        """A copy with ``overrides`` (``--metric-option judge.judge_KEY=VALUE``), typed by the field types.

        Typed values (``judge_lr=0.003`` once the command line read it as a number) are checked and kept
        as given, so the judge's cache key does not change with how a value was written.
        """
        changes = parse_options(
            overrides, declared_options(JudgeConfig), where="judge.judge_", flag="--metric-option", keep_native=True,
            unknown=lambda key, valid: (f"--metric-option judge.judge_{key}: the judge has no option {key!r}."
                                        f"{did_you_mean(key, valid)} The valid judge options (judge.judge_KEY): "
                                        f"{', '.join(valid)}"))
        return dataclasses.replace(self, **changes)


#: Per dataset family: a narrower encoder where the reference width is needlessly slow on CPU.
JUDGE_PRESETS: dict[str, dict[str, Any]] = {
    # augment / label_smoothing: the recipe whose judges disagree least on generated swaps (largest
    # spread of 3 judges over 3 methods 0.027, baseline 0.084; docs/judge-recipes.md), >= 99% on real clips
    "sprites": dict(base_channels=16, g_dim=128, hidden=128, head_hidden=128, batch_size=32, max_steps=3000,
                    val_every=100, target_val_accuracy=0.998, augment=1.0, label_smoothing=0.2),
    # moving-digits: the same narrow recipe. The reference width (64-128-256-512, up to 20000 steps) was
    # estimated at 4 h of CPU; one grey channel and 10 + 4 classes need far less (docs/metrics.md, "Shipped").
    "digits": dict(base_channels=16, g_dim=128, hidden=128, head_hidden=128, batch_size=32, max_steps=3000,
                   val_every=100, target_val_accuracy=0.998, augment=1.0, label_smoothing=0.2),
}


#: The ``smoke`` profile's judge: the wiring in seconds, not a judge to report (rows say which profile made them).
SMOKE_JUDGE: dict[str, Any] = dict(base_channels=4, g_dim=16, hidden=16, head_hidden=16, lr=3e-3, batch_size=16,
                                   max_steps=60, val_every=20, target_val_accuracy=0.9)


def judge_config_for(spec: DataSpec, overrides: dict[str, Any] | None = None, profile: str = "quick") -> JudgeConfig:
    """The judge config for ``spec``'s family (or the tiny smoke judge), with user overrides
    (``--metric-option judge.judge_lr=...``)."""
    config = JudgeConfig(**(SMOKE_JUDGE if profile == "smoke" else JUDGE_PRESETS.get(spec.family, {})))
    return config.with_overrides(overrides or {})


class Judge(nn.Module):
    """Per-frame DCGAN encoder + BiLSTM + one classification head per label (see the module docstring)."""

    def __init__(self, spec: DataSpec, config: JudgeConfig):
        super().__init__()
        from .nn import DCGAN_SIZES, DCGANFrameEncoder

        reason = judge_unavailable_reason(spec)
        if reason:
            raise NotApplicable(reason)
        if spec.height not in DCGAN_SIZES:  # pragma: no cover - checked by judge_unavailable_reason
            raise NotApplicable(f"no judge for {spec.height}px frames")
        self.spec, self.config = spec, config
        self.encoder = DCGANFrameEncoder(spec.channels, spec.height, config.g_dim, base=config.base_channels)
        self.rnn = nn.LSTM(config.g_dim, config.hidden, batch_first=True, bidirectional=True)
        self.heads = nn.ModuleDict({
            label.name: nn.Sequential(nn.Linear(2 * config.hidden, config.head_hidden), nn.ReLU(inplace=True),
                                      nn.Linear(config.head_hidden, label.num_classes))
            for label in spec.labels})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Clip features ``[B, 2h]``: forward state after the last frame, backward state after the first."""
        g = self.encoder(to_unit_range(x.float(), self.spec.value_range))
        out, _ = self.rnn(g)
        h = self.config.hidden
        return torch.cat([out[:, -1, :h], out[:, 0, h:]], dim=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per label for clips ``[B, T, C, H, W]`` in the dataset's value range."""
        feats = self.features(x)
        return {name: head(feats) for name, head in self.heads.items()}


def judge_unavailable_reason(spec: DataSpec) -> str | None:
    """Why no judge can be trained for ``spec`` (``None`` when one can)."""
    from .nn import DCGAN_SIZES

    if spec.modality != "video":
        return f"judges classify video clips; {spec.name} is {spec.modality}"
    if not spec.labels:
        return f"{spec.name} has no labels to train a judge on"
    if spec.height != spec.width or spec.height not in DCGAN_SIZES:
        return (f"the judge's DCGAN encoder needs square frames of {', '.join(map(str, DCGAN_SIZES))} px; "
                f"{spec.name} has {spec.height}x{spec.width}")
    return None


def judge_accuracies(judge: Judge, data: SplitData, batch_size: int, device: torch.device) -> dict[str, float]:
    """Accuracy per head on ``data``, plus ``static`` / ``dynamic`` / ``joint`` (every head of the group right)."""
    logits = predict_in_batches(judge, data.clips, len(data), batch_size, device)
    hits = {name: (logits[name].argmax(1).numpy() == np.asarray(data.labels[name])) for name in logits}
    out = {name: float(h.mean()) for name, h in hits.items()}
    spec = judge.spec
    for group, labels in (("static", spec.static_labels), ("dynamic", spec.dynamic_labels), ("joint", spec.labels)):
        if labels:
            out[group] = float(np.logical_and.reduce([hits[label.name] for label in labels]).mean())
    return out


@dataclass
class TrainedJudge:
    """A judge and what was measured about it: ``ceiling`` holds its test accuracy per head and group."""

    model: Judge
    meta: dict[str, Any]

    @property
    def ceiling(self) -> dict[str, float]:
        return self.meta["test_accuracy"]

    @property
    def name(self) -> str:
        """``judge-<key>@<weights>`` (:func:`cached_model_label`)."""
        return cached_model_label("judge", self.meta)

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model(x)


def load_judge(spec: DataSpec, train: SplitData, test: SplitData, *, device: torch.device | None = None,
               config: JudgeConfig | None = None, batch_size: int = 256, log: bool = True,
               weights: str | None = None) -> TrainedJudge:
    """The judge of ``spec``: pinned by ``weights``, shipped with seqbench, cached, or trained now and cached.

    ``weights`` is a judge file or a weights digest (prefix) of a shipped or cached judge
    (:mod:`seqbench.judge_files`); ``"train"`` skips the shipped judge. Otherwise the judge shipped for
    this key is used when there is one, else the cached one, else one is trained on ``train`` (minutes).
    The key holds the dataset fingerprint, the exact train items, the label layout, the config
    and :data:`JUDGE_VERSION`. Its test accuracy (the ceiling) is computed once, at training time,
    on the full ``test`` split and stored with it (re-measured for another test selection).
    """
    from . import judge_files

    reason = judge_unavailable_reason(spec)
    if reason:
        raise NotApplicable(reason)
    device = device or torch.device("cpu")
    config = config or judge_config_for(spec)
    key = judge_key(spec, train, config)
    test_hash = split_hash(test)
    logger = announce if log else None
    pinned = None
    if weights and weights != "train":
        pinned = _pinned_judge(weights, spec)
    elif weights is None:
        shipped = judge_files.find_judge_file(key_digest=content_hash(key, length=20))
        pinned = judge_files.judge_from_file(shipped, spec) if shipped else None
    if pinned is not None:
        model, meta = pinned.model, pinned.meta
    else:
        ce = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

        def loss_fn(model: Judge, batch: Any) -> torch.Tensor:
            x = batch.x
            if config.augment > 0:
                from .nn.augment import decoder_artefacts

                lo, hi = map(float, spec.value_range)
                x = decoder_artefacts(to_unit_range(x.float(), spec.value_range).cpu(), probability=config.augment)
                x = (x * (hi - lo) + lo).to(batch.x.device)
            logits = model(x)
            return sum(ce(logits[name], batch.labels[name]) for name in logits)

        def score_fn(model: Judge, split: SplitData) -> float:
            return min(v for k, v in judge_accuracies(model, split, batch_size, device).items() if k in model.heads)

        def train_judge(model: nn.Module) -> dict[str, Any]:
            fit = fit_model(model, loss_fn, score_fn, train, config.fit_config(), device, desc=f"judge {spec.name}",
                            log=logger)
            model.eval()
            with torch.no_grad():
                test_acc = judge_accuracies(model, test, batch_size, device)  # type: ignore[arg-type]
            if logger:
                logger(f"judge {spec.name}: trained {fit.steps} steps in {fit.wall_s:.0f}s; test accuracy "
                       + ", ".join(f"{k} {v:.4f}" for k, v in test_acc.items()))
            return {"fit": fit.as_dict(), "test_accuracy": test_acc, "test_items": test_hash, "device": str(device),
                    "torch": torch.__version__, "threads": torch.get_num_threads(), "pid": os.getpid()}

        model, meta = cached_model("judges", key, lambda: Judge(spec, config), train_judge, log=logger)
    model = model.to(device).eval()
    if meta.get("test_items") != test_hash:  # another test selection (e.g. --limit): measure the ceiling on it
        with torch.no_grad():
            meta = dict(meta, test_accuracy=judge_accuracies(model, test, batch_size, device),  # type: ignore[arg-type]
                        test_items=test_hash)
    return TrainedJudge(model, meta)  # type: ignore[arg-type]


def _pinned_judge(weights: str, spec: DataSpec) -> TrainedJudge:
    """The judge named by ``judge.weights``: a file path, or the digest (prefix) of a shipped or cached judge."""
    from . import judge_files

    path = Path(weights).expanduser()
    if path.suffix == ".pt" or os.sep in weights or path.exists():
        return judge_files.judge_from_file(path, spec)
    if len(weights) < 6 or any(c not in "0123456789abcdef" for c in weights.lower()):
        raise ConfigError(f"judge.weights={weights!r}: give a judge file (.judge.pt) or at least 6 hex digits of a "
                          f"judge's weights digest (`seqbench judges list`), or 'train'")
    shipped = judge_files.find_judge_file(weights=weights.lower())
    if shipped is not None:
        return judge_files.judge_from_file(shipped, spec)
    for meta_path in sorted((cache_root() / "judges").glob("*/meta.json")):
        meta = json.loads(meta_path.read_text())
        if str(meta.get("weights", "")).startswith(weights.lower()):
            state = torch.load(meta_path.parent / "model.pt", map_location="cpu", weights_only=True)
            if state_digest(state) != meta["weights"]:
                raise judge_files.JudgeFileError(f"cached judge {meta_path.parent}: weights do not match their digest "
                                                 f"{meta['weights']}; delete the folder and import or train it again")
            key = meta.get("key", {})
            card = {**meta, "fingerprint": key.get("fingerprint"), "dataset": key.get("dataset"),
                    "config": key.get("config", {})}
            return judge_files.trained_from_state(state, card, spec, str(meta_path.parent))
    raise ConfigError(f"judge.weights={weights}: no shipped or cached judge has weights starting with {weights}; "
                      f"`seqbench judges list` shows them, `seqbench judges import FILE` adds one")


def split_hash(split: SplitData) -> str:
    """Content hash of a split's item ids and labels (which items, with which targets)."""
    return content_hash([np.asarray(split.ids).tolist(),
                         {k: np.asarray(v).tolist() for k, v in sorted(split.labels.items())}])


def judge_key(spec: DataSpec, train: SplitData, config: JudgeConfig) -> dict[str, Any]:
    """Everything that determines a judge's weights: the data (fingerprint, train items), labels, config, version.

    The test split is not part of it: the ceiling is measured on whatever test split is scored
    (stored for the full split at training time, re-measured for another selection).
    """
    return {"kind": "judge", "version": JUDGE_VERSION, "dataset": spec.name, "fingerprint": spec.fingerprint,
            "shape": [spec.frames, spec.channels, spec.height, spec.width], "value_range": list(spec.value_range),
            "labels": [[label.name, label.num_classes, label.kind] for label in spec.labels],
            "train_items": content_hash(np.asarray(train.ids).tolist()), "config": dataclasses.asdict(config)}
