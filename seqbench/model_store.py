"""The store of trained evaluation models: trained once under a key of everything that determines them.

Judges (:mod:`seqbench.judges`), the learned backends (:mod:`seqbench.backends.sprites_learned`) and
the VQ autoencoder of the latent diffusion members (:mod:`seqbench.nn.vqae`) are cached by
:func:`cached_model` under ``<cache>/<kind>/<hash(key)>/``; the methods' models by the runner
(:class:`seqbench.runner.ModelStore`, ``<cache>/models/<method>/<model_key>/``, beside their resumable
checkpoints and learning curves). Both keep a model the one way :class:`StoredModel` does:
``model.pt`` (loaded with ``weights_only=True``; an unreadable file is set aside and the model
retrained) and ``meta.json`` (what training reported and a digest of the weights themselves),
written atomically under a lock, so two processes never train the same model twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .log import configure_logging, logger
from .utils import atomic_torch_save, atomic_write_text, cache_root, content_hash, file_lock, quarantine

__all__ = ["StoredModel", "announce", "cached_model", "cached_model_label", "state_digest", "weights_digest"]


def announce(message: str) -> None:
    """One progress line through seqbench's log handler, also outside a run (benchmark scripts)."""
    configure_logging()
    logger.info(message)


class StoredModel:
    """One stored model: ``folder/model.pt`` + ``folder/meta.json``, guarded by the lock file ``lock``."""

    WEIGHTS, META = "model.pt", "meta.json"

    def __init__(self, folder: Path, lock: Path):
        self.folder, self.lock_path = Path(folder), Path(lock)
        self.weights, self.meta_path = self.folder / self.WEIGHTS, self.folder / self.META

    def lock(self, on_wait: Callable[[], None] | None = None):
        """Hold the lock while loading or training; ``on_wait()`` runs once if another process holds it."""
        return file_lock(self.lock_path, on_wait=on_wait)

    def exists(self) -> bool:
        return self.weights.exists()

    def load_state(self) -> dict[str, torch.Tensor] | None:
        """The stored weights, or ``None`` when there are none or the file is unreadable (then set aside)."""
        if not self.weights.exists():
            return None
        try:
            return torch.load(self.weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or corrupt: set it aside, the caller trains again
            quarantine(self.weights, exc)
            return None

    def read_meta(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def publish(self, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
        """Write the weights, then the meta with their digest (``meta["weights"]``), each atomically."""
        meta = dict(meta, weights=state_digest(state))
        atomic_torch_save(state, self.weights)
        atomic_write_text(self.meta_path, json.dumps(meta, indent=2, default=str))
        return meta


def cached_model(kind: str, key: dict[str, Any], build: Callable[[], nn.Module],
                 train: Callable[[nn.Module], dict[str, Any]], *, root: Path | None = None,
                 log: Callable[[str], None] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A model trained once and cached under ``<cache>/<kind>/<hash(key)>/`` (a :class:`StoredModel`).

    ``key`` must hold everything that determines the trained weights (data fingerprint, config,
    code version): a different key is a different model, the same key is never retrained.
    ``build()`` returns a fresh untrained model; ``train(model)`` trains it in place and returns
    metadata (accuracies, timings) that is stored and returned with it. The model is returned on
    the CPU in eval mode. ``meta["weights"]`` is a digest of the weights themselves: the key cannot
    identify them, since training on another machine or thread count gives other weights.
    """
    digest = content_hash(key, length=20)
    base = (root if root is not None else cache_root()) / kind
    stored = StoredModel(base / digest, base / f".{digest}.lock")
    def waiting() -> None:
        (log or logger.info)(f"waiting for {stored.lock_path}: another process is training this {kind} model; "
                             "it will be reused")

    with stored.lock(waiting), torch.random.fork_rng(devices=[]):
        # The initial weights come from a generator seeded by the key, not from whatever the process
        # drew before: a judge trained after a method had trained in the same process and one trained
        # in a fresh process (the method loaded from the cache) had different weights (measured:
        # smoke judge digests 43082d8c vs 853b579a), and disagreed on swaps.
        torch.manual_seed(int(digest[:8], 16))
        model = build()
        state, meta = stored.load_state(), stored.read_meta()
        if state is not None and meta is not None:
            try:
                model.load_state_dict(state)
            except Exception as exc:  # weights of another shape under this key: set aside, train again
                quarantine(stored.weights, exc)
                model = build()
            else:
                meta.setdefault("weights", weights_digest(model))  # caches written before the digest was stored
                meta["cached"] = True
                return model.cpu().eval(), meta
        if log:
            log(f"training {kind} model {digest} (cached under {stored.folder})")
        meta = dict(train(model), key=key, digest=digest)
        model = model.cpu().eval()
        meta = stored.publish(model.state_dict(), meta)
        meta["cached"] = False
        return model, meta


def weights_digest(model: nn.Module, length: int = 16) -> str:
    """SHA-256 of a model's parameters and buffers (names, dtypes, shapes and bytes), hex."""
    return state_digest(model.state_dict(), length)


def state_digest(state: dict[str, torch.Tensor], length: int = 16) -> str:
    """:func:`weights_digest` of a state dict (a judge file's weights are checked without building the model)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:length]


def cached_model_label(prefix: str, meta: dict[str, Any]) -> str:
    """``<prefix>-<key>@<weights>`` for a :func:`cached_model`'s meta: the backend name its rows carry.

    Leaderboards show the key and refuse to mix two weights under it, because copies of one recipe
    retrained elsewhere disagree on generated clips (docs/findings.md).
    """
    digest, weights = meta.get("digest", ""), meta.get("weights", "")
    label = f"{prefix}-{digest[:8]}" if digest else prefix
    return f"{label}@{weights[:8]}" if weights else label
