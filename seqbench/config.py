"""Configuration: method config dataclasses, profiles, ``--set`` overrides and TOML files."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from .errors import ConfigError

PROFILES = ("smoke", "quick", "paper")
OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("constant", "cosine")


@dataclass
class MethodConfig:
    """Base of every method's config: the training settings the framework's trainer reads.

    Subclasses add their architecture fields and declare profiles:
    ``profiles = {"smoke": {...}, "quick": {...}, "paper": {...}}`` holds overrides per profile,
    ``family_profiles = {("paper", "sprites"): {...}}`` overrides per (profile, dataset family).
    """

    # optimisation
    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    batch_size: int = 32
    steps: int = 1000
    epochs: float | None = None  # when set, overrides `steps` (steps = epochs * train size / batch)
    scheduler: str = "constant"  # constant | cosine
    warmup_steps: int = 0
    grad_clip: float | None = None
    ema_decay: float | None = None
    amp: bool = False  # mixed precision, used on CUDA only
    # bookkeeping
    checkpoint_every: int = 200
    val_every: int = 200
    val_fraction: float = 0.1
    log_every: int = 20

    profiles: ClassVar[dict[str, dict[str, Any]]] = {}
    family_profiles: ClassVar[dict[tuple[str, str], dict[str, Any]]] = {}

    @classmethod
    def for_profile(cls, profile: str, family: str = "generic") -> "MethodConfig":
        if profile not in PROFILES:
            raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        values: dict[str, Any] = {}
        values.update(cls.profiles.get(profile, {}))
        values.update(cls.family_profiles.get((profile, family), {}))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def with_overrides(self, overrides: dict[str, Any], *, owner: str = "") -> "MethodConfig":
        """Return a copy with ``overrides`` applied; values given as strings are parsed to the field type."""
        names = {f.name: f for f in fields(self)}
        hints = typing.get_type_hints(type(self))
        changes = {}
        for key, raw in overrides.items():
            if key not in names:
                close = difflib.get_close_matches(key, names, n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise ConfigError(f"--set {owner}{key}: {type(self).__name__} has no setting {key!r}.{hint} "
                                  f"Valid keys: {', '.join(sorted(names))}")
            changes[key] = coerce(raw, hints.get(key, Any), f"{owner}{key}")
        return dataclasses.replace(self, **changes)

    def check(self, *, owner: str = "") -> None:
        """Refuse settings the trainer cannot use, naming the ``--set`` key, before anything trains."""
        limits: list[tuple[str, Callable[[Any], bool], str]] = [
            ("steps", lambda v: v >= 1, "at least 1"),
            ("batch_size", lambda v: v >= 1, "at least 1"),
            ("lr", lambda v: v > 0, "positive"),
            ("weight_decay", lambda v: v >= 0, "0 or more"),
            ("epochs", lambda v: v is None or v > 0, "positive (or none)"),
            ("warmup_steps", lambda v: v >= 0, "0 or more"),
            ("grad_clip", lambda v: v is None or v > 0, "positive (or none)"),
            ("ema_decay", lambda v: v is None or 0 < v < 1, "between 0 and 1 (or none)"),
            ("checkpoint_every", lambda v: v >= 1, "at least 1"),
            ("val_every", lambda v: v >= 1, "at least 1"),
            ("log_every", lambda v: v >= 1, "at least 1"),
            ("val_fraction", lambda v: 0 <= v < 1, "in [0, 1)"),
            ("optimizer", lambda v: str(v).lower() in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
            ("scheduler", lambda v: v in SCHEDULERS, f"one of {', '.join(SCHEDULERS)}"),
        ]
        for name, valid, expected in limits:
            value = getattr(self, name)
            if not valid(value):
                raise ConfigError(f"--set {owner}{name}={value!r}: {name} must be {expected}")


def coerce(raw: Any, annotation: Any, where: str) -> Any:
    """Parse a ``--set`` string (or TOML value) into ``annotation``; error names the key and the type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(raw, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"--set {where}: cannot parse {raw!r}")
    if annotation is Any:
        return raw
    if origin is tuple:
        items = raw if isinstance(raw, (list, tuple)) else [p for p in str(raw).strip("()[] ").split(",") if p.strip()]
        elem = args[0] if args else Any
        return tuple(coerce(item.strip() if isinstance(item, str) else item, elem, where) for item in items)
    if annotation is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"--set {where}={raw!r}: expected a boolean (true/false)")
    if annotation in (int, float):
        if isinstance(raw, bool):
            raise ConfigError(f"--set {where}={raw!r}: expected {annotation.__name__}")
        try:
            value = annotation(float(raw)) if annotation is int and isinstance(raw, str) and "e" in raw.lower() else annotation(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"--set {where}={raw!r}: expected {annotation.__name__}, e.g. {where}=3") from None
        return value
    if annotation is str:
        return str(raw)
    return raw


def parse_set_options(items: list[str], *, flag: str = "--set") -> dict[str, dict[str, str]]:
    """``["dbse.lr=1e-3", "steps=10"]`` -> ``{"dbse": {"lr": "1e-3"}, "*": {"steps": "10"}}``.

    ``flag`` names the option the items came from, so a malformed one blames the right flag.
    """
    out: dict[str, dict[str, str]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{flag} {item!r}: {FLAG_FORMS.get(flag, FLAG_FORMS['--set'])}")
        key, value = item.split("=", 1)
        scope, _, name = key.strip().rpartition(".")
        out.setdefault(scope or "*", {})[name] = value.strip()
    return out


#: What each scoped ``KEY=VALUE`` flag expects, for its error message.
FLAG_FORMS = {
    "--set": "expected METHOD.KEY=VALUE (or KEY=VALUE for every method), e.g. --set dbse.lr=1e-3",
    "--metric-option": "expected METRIC.KEY=VALUE, e.g. --metric-option judge.niter=5",
    "--data-option": "expected DATASET.KEY=VALUE, e.g. --data-option synthetic-sprites.size=32",
}


def load_toml_config(path: Path) -> dict[str, Any]:
    """Read a ``--config`` TOML file: top-level run options plus ``[set.METHOD]`` tables."""
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: file not found")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: invalid TOML ({exc})") from None
