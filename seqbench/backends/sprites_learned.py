"""Synthetic sprites: a keypoint regressor and an identity embedder learned from the dataset's ground truth.

Face and pose detectors do not work on cartoon sprites, so AED/AKD on the embedded default
dataset use one small per-frame network trained on the dataset's own train split (validation
carved from train) and cached like the judges (:func:`seqbench.model_store.cached_model`):

* a DCGAN frame encoder (frames resized to ``input_size``) with a keypoint head regressing the
  ground-truth joints (L1 on coordinates / frame size) and one classification head per static
  label (cross-entropy);
* **keypoints** (``sprites-keypoints``): the regressed joints in input pixels;
* **identity** (``sprites-identity``): the concatenated softmax outputs of the static-label heads.
  The Euclidean distance between two embeddings is ~0 for the same character and ~sqrt(2 k) for
  characters differing in k attributes, so AED reads "how many attributes changed", on test
  characters never seen in training (identities are split train/test; attributes are not).

Validation score (selection and early stop): the lowest per-frame attribute accuracy minus the
mean keypoint error as a fraction of the frame size. A frame is *not detected* (excluded from
AED/AKD, counted in the failure rate) when less than ``min_foreground`` of its pixels are
foreground (any channel above 0.1): a blank decode has no character to measure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..hookspecs import hookimpl
from . import Backend, Embeddings, Keypoints

MODEL_VERSION = "2"  # 2: initial weights seeded by the cache key (seqbench.model_store.cached_model)


@dataclass(frozen=True)
class SpritesNetConfig:
    input_size: int = 32
    base_channels: int = 16
    feat_dim: int = 128
    lr: float = 1e-3
    batch_size: int = 16  # clips (x frames)
    max_steps: int = 3000
    val_every: int = 100
    target: float = 0.99
    val_fraction: float = 0.1
    seed: int = 0


class SpritesFrameNet(nn.Module):
    """Per-frame encoder with a keypoint head (normalised coordinates) and static-label heads."""

    def __init__(self, channels: int, num_keypoints: int, static_classes: dict[str, int], config: SpritesNetConfig):
        super().__init__()
        from ..nn import DCGANFrameEncoder

        self.config, self.num_keypoints = config, num_keypoints
        self.encoder = DCGANFrameEncoder(channels, config.input_size, config.feat_dim, base=config.base_channels)
        self.keypoints = nn.Sequential(nn.Linear(config.feat_dim, 256), nn.ReLU(inplace=True),
                                       nn.Linear(256, num_keypoints * 2))
        self.heads = nn.ModuleDict({name: nn.Linear(config.feat_dim, n) for name, n in static_classes.items()})

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Frames ``[N, C, H, W]`` in [0, 1] -> (keypoints ``[N, K, 2]`` as fractions of W/H, logits per label)."""
        size = self.config.input_size
        x = frames.float()
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="area")
        h = self.encoder(x)
        return self.keypoints(h).view(-1, self.num_keypoints, 2), {k: head(h) for k, head in self.heads.items()}


def foreground_valid(frames: torch.Tensor, min_foreground: float) -> np.ndarray:
    """``[N]``: frames where at least ``min_foreground`` of the pixels have a channel above 0.1."""
    fg = (frames.float().amax(dim=1) > 0.1).float().mean(dim=(1, 2))
    return (fg >= min_foreground).cpu().numpy()


def load_sprites_net(data: Any, device: torch.device, config: SpritesNetConfig | None = None,
                     log: bool = True) -> tuple[SpritesFrameNet, dict[str, Any]]:
    """The cached network for ``data`` (an :class:`~seqbench.metric.EvalData`), trained now if missing."""
    from ..data import SplitData
    from ..model_store import announce, cached_model
    from ..trainer import fit_model
    from ..utils import content_hash, to_unit_range

    config = config or SpritesNetConfig()
    spec, train = data.spec, data.train
    if train.keypoints is None or not spec.static_labels:
        raise ValueError(f"{spec.name}: the learned sprites backends need ground-truth keypoints and static labels")
    static = {label.name: label.num_classes for label in spec.static_labels}
    k = train.keypoints.shape[2]
    size = np.array([spec.width, spec.height], dtype=np.float32)
    key = {"kind": "sprites-net", "version": MODEL_VERSION, "dataset": spec.name, "fingerprint": spec.fingerprint,
           "train_items": content_hash(np.asarray(train.ids).tolist()), "config": dataclasses.asdict(config),
           "static": static, "keypoints": k}

    def frames_and_targets(split: SplitData, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, dict]:
        clips = to_unit_range(split.clips(index), spec.value_range)
        n, t = clips.shape[:2]
        kp = torch.from_numpy(np.asarray(split.keypoints[index], dtype=np.float32) / size).reshape(n * t, k, 2)
        labels = {name: torch.as_tensor(np.repeat(np.asarray(split.labels[name])[index], t)) for name in static}
        return clips.reshape(n * t, *clips.shape[2:]), kp, labels

    def loss_fn(model: SpritesFrameNet, batch: tuple[torch.Tensor, torch.Tensor, dict]) -> torch.Tensor:
        frames, kp, labels = batch
        dev = next(model.parameters()).device
        pred_kp, logits = model(frames.to(dev))
        loss = 10.0 * F.l1_loss(pred_kp, kp.to(dev))
        return loss + sum(F.cross_entropy(logits[name], labels[name].to(dev)) for name in logits)

    def score_fn(model: SpritesFrameNet, split: SplitData) -> float:
        index = np.arange(len(split))
        dev = next(model.parameters()).device
        errors, hits = [], {name: [] for name in static}
        for start in range(0, len(index), 64):
            frames, kp, labels = frames_and_targets(split, index[start:start + 64])
            pred_kp, logits = model(frames.to(dev))
            errors.append(((pred_kp.cpu() - kp).abs() * torch.from_numpy(size)).mean().item() * len(frames))
            for name in static:
                hits[name].append((logits[name].argmax(1).cpu() == labels[name]).float().numpy())
        n_frames = sum(len(h) for h in hits[next(iter(static))])
        err_px = sum(errors) / n_frames
        return min(float(np.concatenate(h).mean()) for h in hits.values()) - err_px / float(size.max())

    def train_model(model: nn.Module) -> dict[str, Any]:
        fit = fit_model(model, loss_fn, score_fn, train, _fit_config(config), device, desc=f"sprites-net {spec.name}",
                        log=announce if log else None, make_batch=frames_and_targets)
        model.eval()
        with torch.no_grad():
            test_score = score_fn(model, data.test)  # type: ignore[arg-type]
        return {"fit": fit.as_dict(), "test_score": test_score}

    model, meta = cached_model("backends", key, lambda: SpritesFrameNet(spec.channels, k, static, config), train_model,
                               log=announce if log else None)
    return model.to(device).eval(), meta  # type: ignore[return-value]


def _fit_config(config: SpritesNetConfig):
    from ..trainer import FitConfig

    return FitConfig(lr=config.lr, batch_size=config.batch_size, max_steps=config.max_steps,
                     val_every=config.val_every, target=config.target, val_fraction=config.val_fraction,
                     seed=config.seed)


#: The ``smoke`` profile's network (seconds of training: checks the wiring, not a backend to report with).
SMOKE_NET = dict(base_channels=4, feat_dim=16, max_steps=60, val_every=20, target=0.5)


class _SpritesBackend(Backend):
    families: ClassVar[tuple[str, ...]] = ("sprites",)
    comparable_to_papers: ClassVar[bool] = False
    options_dataclass: ClassVar[type | None] = SpritesNetConfig

    def __init__(self, min_foreground: float = 0.01, **options: Any):
        super().__init__(min_foreground=min_foreground, **options)
        self.min_foreground = float(min_foreground)
        self.config = SpritesNetConfig(**options)
        self.explicit_config = bool(options)  # the user sized it: smoke runs keep their choice
        self.model: SpritesFrameNet | None = None
        self.meta: dict[str, Any] = {}
        self.device = torch.device("cpu")

    def setup(self, data: Any, ctx: Any) -> None:
        if data.train.keypoints is None:
            raise ValueError(f"{self.name} needs a dataset with ground-truth keypoints; {data.spec.name} has none")
        self.device = ctx.device
        if getattr(ctx, "profile", "quick") == "smoke" and not self.explicit_config:
            self.config = SpritesNetConfig(**SMOKE_NET)
        self.model, self.meta = ctx.memo(f"sprites-net:{data.spec.fingerprint}:{self.config}",
                                         lambda: load_sprites_net(data, ctx.device, self.config))

    @property
    def label(self) -> str:
        """``<name>-<key>@<weights>`` (:func:`seqbench.model_store.cached_model_label`)."""
        from ..model_store import cached_model_label

        return cached_model_label(self.name, self.meta)

    def _run(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], np.ndarray]:
        if self.model is None:
            raise RuntimeError(f"{self.name}: call setup(data, ctx) before using the backend")
        frames = torch.as_tensor(frames).float()
        with torch.no_grad():
            kp, logits = self.model(frames.to(self.device))
        return kp.cpu(), {k: v.cpu() for k, v in logits.items()}, foreground_valid(frames, self.min_foreground)


class SpritesKeypoints(_SpritesBackend):
    name: ClassVar[str] = "sprites-keypoints"
    kind: ClassVar[str] = "keypoints"
    description: ClassVar[str] = "keypoint regressor trained on the synthetic sprites' ground-truth joints (cached)"

    def __call__(self, frames: torch.Tensor) -> Keypoints:
        kp, _, valid = self._run(frames)
        scale = torch.tensor([frames.shape[-1], frames.shape[-2]], dtype=torch.float32)
        points = (kp * scale).double().numpy()
        return Keypoints(points, np.repeat(valid[:, None], points.shape[1], axis=1))


class SpritesIdentity(_SpritesBackend):
    name: ClassVar[str] = "sprites-identity"
    kind: ClassVar[str] = "identity"
    description: ClassVar[str] = "attribute-probability identity embedding trained on the synthetic sprites (cached)"

    def __call__(self, frames: torch.Tensor) -> Embeddings:
        _, logits, valid = self._run(frames)
        vectors = torch.cat([torch.softmax(logits[k].double(), dim=1) for k in sorted(logits)], dim=1)
        return Embeddings(vectors.numpy(), valid)


@hookimpl
def seqbench_add_backends() -> list[type[Backend]]:
    return [SpritesKeypoints, SpritesIdentity]
