"""Configuration: profiles, method config dataclasses, and the one options mechanism.

Every plugin kind declares typed options: a method its ``Config`` dataclass, a metric its
``option_defaults``, a dataset adapter its ``defaults``, a backend its constructor (plus an options
dataclass), a judge :class:`~seqbench.judges.JudgeConfig`. :func:`parse_options` checks given options
against such a declaration and :func:`coerce` is the one parser of values (``--set``,
``--metric-option``, ``--data-option`` strings and ``--config`` TOML values alike).
:func:`run_settings` merges the command line with a ``--config`` file, in one place.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from .errors import ConfigError


@dataclass(frozen=True)
class Profile:
    """A run profile: how big and how long everything is. The CLI, the runner and the metrics read this registry."""

    name: str
    description: str
    #: Test clips every metric scores by default (a fixed subset seeded by the dataset fingerprint);
    #: ``None`` = the whole test split.
    eval_clips: int | None
    #: The metrics the trainer runs at every validation point for learning curves (seqbench.probes),
    #: and how many validation clips they read.
    probes: tuple[str, ...] = ("mse", "leak", "judge")
    probe_clips: int = 256


#: The profiles, in the order ``--profile`` lists them. Decoding every test clip several times is
#: what dominates a CPU evaluation of the diffusion methods, so ``quick`` scores a fixed 512-clip
#: subset of the test split (the same clips for every method), ``smoke`` 64 clips (the wiring in
#: seconds: the judge's sample protocol alone decodes the scored clips 7 times), ``paper`` the whole
#: split. Leaderboards refuse to mix sizes.
PROFILE_REGISTRY: dict[str, Profile] = {profile.name: profile for profile in (
    Profile("smoke", "the wiring in seconds (tests); numbers not to report", eval_clips=64, probes=("mse",),
            probe_clips=32),
    Profile("quick", "the CPU protocol: 32 px, steps chosen from learning curves", eval_clips=512),
    Profile("paper", "the papers' hyper-parameters (for GPUs)", eval_clips=None),
)}
PROFILES = tuple(PROFILE_REGISTRY)
#: The profile of a run that names none: the CPU protocol.
DEFAULT_PROFILE = "quick"
#: What ``seqbench run`` with no arguments runs (the main job: docs/protocol.md), here without torch so
#: the command line's help can name it.
DEFAULT_METHODS: tuple[str, ...] = ("dbse", "vidtwin")
DEFAULT_METRICS: tuple[str, ...] = ("judge", "leak", "mse")
DEFAULT_DATASET = "synthetic-sprites"
DEFAULT_OUTPUT = "seqbench-results"


def get_profile(name: str) -> Profile:
    """The profile called ``name``; an unknown name lists the profiles."""
    if name not in PROFILE_REGISTRY:
        raise ConfigError(f"--profile {name!r} is not a profile; choose one of {', '.join(PROFILES)}")
    return PROFILE_REGISTRY[name]


OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("constant", "cosine")


@dataclass
class MethodConfig:
    """Base of every method's config: the training settings the framework's trainer reads.

    Subclasses add their architecture fields and declare profiles:
    ``profiles = {"smoke": {...}, "quick": {...}, "paper": {...}}`` holds overrides per profile,
    ``family_profiles = {("paper", "sprites"): {...}}`` overrides per (profile, dataset family), and
    ``dataset_profiles = {("quick", "sprites"): {...}}`` per (profile, dataset name), applied last: the
    budget one dataset's learning curves asked for (the real Sprites against its synthetic stand-in,
    which share a family).
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
    dataset_profiles: ClassVar[dict[tuple[str, str], dict[str, Any]]] = {}

    @classmethod
    def for_profile(cls, profile: str, family: str = "generic", dataset: str | None = None) -> "MethodConfig":
        get_profile(profile)
        values: dict[str, Any] = {}
        values.update(cls.profiles.get(profile, {}))
        values.update(cls.family_profiles.get((profile, family), {}))
        if dataset is not None:
            values.update(cls.dataset_profiles.get((profile, dataset), {}))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def with_overrides(self, overrides: dict[str, Any], *, owner: str = "") -> "MethodConfig":
        """Return a copy with ``overrides`` applied; values are parsed to the field type (:func:`coerce`)."""
        name = type(self).__name__
        changes = parse_options(
            overrides, declared_options(type(self)), where=owner, flag="--set",
            unknown=lambda key, valid: (f"--set {owner}{key}: {name} has no setting {key!r}."
                                        f"{did_you_mean(key, valid, quote=False)} Valid keys: {', '.join(valid)}"))
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


class Scalar:
    """The type of a value nothing declares (a ``--data-option``, a judge's ``judge_*`` option): an int,
    a float, ``true``/``false``, or else the text itself."""


#: How each type is named in an error message.
TYPE_WORDS = {int: "int (a whole number, e.g. 3)", float: "a float (a number, e.g. 0.5 or 1e-3)",
              bool: "a boolean (true/false)", str: "text"}


def coerce(raw: Any, annotation: Any, where: str, flag: str = "--set") -> Any:
    """The one parser of option values: ``raw`` (a command-line string or a TOML value) as ``annotation``.

    Unions try their members in order (``none``/``null`` is ``None`` where allowed), tuples take
    ``a,b`` or a list, :class:`Scalar` takes whatever the text looks like. A value that does not fit
    is a :class:`ConfigError` naming the flag, the key and the expected type.
    """
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        if raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(raw, arg, where, flag)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{flag} {where}: cannot parse {raw!r}")
    if annotation is Any:
        return raw
    if annotation is Scalar:
        if not isinstance(raw, str):
            return raw
        for cast in (int, float):
            try:
                return cast(raw)
            except ValueError:
                pass
        return {"true": True, "false": False}.get(raw.lower(), raw)
    if origin is tuple:
        items = raw if isinstance(raw, (list, tuple)) else [p for p in str(raw).strip("()[] ").split(",") if p.strip()]
        elem = args[0] if args else Any
        return tuple(coerce(item.strip() if isinstance(item, str) else item, elem, where, flag) for item in items)
    if annotation is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{flag} {where}={raw!r}: expected {TYPE_WORDS[bool]}")
    if annotation in (int, float):
        if isinstance(raw, bool):
            raise ConfigError(f"{flag} {where}={raw!r}: expected {TYPE_WORDS[annotation]}")
        try:
            value = annotation(float(raw)) if annotation is int and isinstance(raw, str) and "e" in raw.lower() else annotation(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{flag} {where}={raw!r}: expected {TYPE_WORDS[annotation]}") from None
        return value
    if annotation is str:
        return str(raw)
    return raw


def did_you_mean(key: str, valid: list[str], *, quote: bool = True) -> str:
    """`` Did you mean a, b?`` for the valid keys close to ``key`` (empty when none is)."""
    close = difflib.get_close_matches(key, valid, n=3)
    return f" Did you mean {', '.join(repr(c) if quote else c for c in close)}?" if close else ""


def parse_options(given: Mapping[str, Any], declared: Mapping[str, Any], *, where: str, flag: str,
                  unknown: Callable[[str, list[str]], str], prefixes: tuple[str, ...] = (),
                  keep_native: bool = False) -> dict[str, Any]:
    """The one options mechanism of every plugin kind: ``given`` checked against ``declared``.

    ``declared`` maps each key to its type (:func:`declared_options`); keys starting with one of
    ``prefixes`` belong to a sub-component and are parsed as :class:`Scalar`. An unknown key raises
    ``unknown(key, valid keys)``. Strings are parsed by :func:`coerce`; with ``keep_native`` a value
    that is already typed (TOML, Python) is only checked and kept as given, so options hashed into
    cache keys keep the form they had.
    """
    valid = [*sorted(declared), *(p + "*" for p in prefixes)]
    out = {}
    for key, raw in given.items():
        if key in declared:
            annotation = declared[key]
        elif prefixes and key.startswith(prefixes):
            annotation = Scalar
        else:
            raise ConfigError(unknown(key, valid))
        value = coerce(raw, annotation, f"{where}{key}", flag)
        out[key] = raw if keep_native and not isinstance(raw, str) else value
    return out


def declared_options(declaration: Any) -> dict[str, Any]:
    """``{key: type}`` of an options declaration: a dataclass, a dict of defaults, or a constructor.

    A default's type is the key's type (``None``: :class:`Scalar`); a constructor's named
    parameters count (annotated or defaulted), ``self`` and ``**options`` do not.
    """
    if dataclasses.is_dataclass(declaration):
        hints = typing.get_type_hints(declaration if isinstance(declaration, type) else type(declaration))
        return {f.name: hints.get(f.name, Any) for f in fields(declaration)}
    if isinstance(declaration, Mapping):
        return {key: Scalar if default is None else type(default) for key, default in declaration.items()}
    try:
        hints = typing.get_type_hints(declaration)
    except (NameError, TypeError):  # an annotation only a type checker can resolve: the defaults' types
        hints = {}
    out = {}
    for name, parameter in inspect.signature(declaration).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        default = parameter.default
        out[name] = hints.get(name, Scalar if default in (None, parameter.empty) else type(default))
    return out


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


def parse_key_values(items: list[str], *, flag: str = "--data-option") -> dict[str, Any]:
    """Unscoped ``["size=32", "strict=true"]`` -> ``{"size": 32, "strict": True}`` (values as :class:`Scalar`)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = coerce(value.strip(), Scalar, key.strip(), flag)
    return out


def parse_scoped_values(items: list[str], *, flag: str) -> dict[str, dict[str, Any]]:
    """``--data-option`` / ``--metric-option`` items as ``{name: {key: value}}``, values as :class:`Scalar`.

    They stay in this form (what the user wrote, as a number or text) because cell keys hash them;
    each plugin's own declaration types them when the runner checks them.
    """
    return {scope: {key: coerce(value, Scalar, f"{scope}.{key}", flag) for key, value in values.items()}
            for scope, values in parse_set_options(items, flag=flag).items()}


#: Types of the top-level ``--config`` TOML keys (RunOptions fields): how a value is coerced, or refused.
TOML_KINDS = {"methods": "names", "metrics": "names", "datasets": "names", "plugins": "names", "seeds": "ints",
              "profile": "str", "device": "str", "output": "str", "limit": "int", "eval_clips": "int"}
#: ``--config`` tables of scoped options -> (the RunOptions field, the flag that gives the same on the command line).
TOML_TABLES = {"set": ("overrides", "--set"), "data_options": ("dataset_options", "--data-option"),
               "metric_options": ("metric_options", "--metric-option")}


def run_settings(cli: Mapping[str, Any], config_file: Path | None = None) -> dict[str, Any]:
    """The run's settings, merged in one place: the command line over a ``--config`` TOML file.

    ``cli`` holds RunOptions field names with what the command line gave (``None`` or ``[]``: not
    given); the scoped flags (``overrides``, ``dataset_options``, ``metric_options``) as their raw
    ``NAME.KEY=VALUE`` items. Returns the RunOptions keyword arguments that either source sets; a
    wrong TOML key or value type is a :class:`ConfigError` naming the file and the key.
    """
    file_cfg: dict[str, Any] = load_toml_config(config_file) if config_file else {}
    known = {*TOML_KINDS, "dataset", *TOML_TABLES}
    unknown = sorted(set(file_cfg) - known)
    if unknown:
        raise ConfigError(f"--config {config_file}: unknown keys {', '.join(unknown)}; valid keys: "
                          f"{', '.join(sorted(known))}")
    if "dataset" in file_cfg and "datasets" not in file_cfg:
        file_cfg["datasets"] = file_cfg.pop("dataset")
    settings: dict[str, Any] = {}
    for key in TOML_KINDS:
        if key == "plugins":
            continue
        if cli.get(key) not in (None, []):
            settings[key] = cli[key]
        elif key in file_cfg:
            settings[key] = _toml_value(config_file, key, file_cfg[key])
    if "output" in settings:
        settings["output"] = Path(settings["output"])
    plugins = [*(_toml_value(config_file, "plugins", file_cfg["plugins"]) if "plugins" in file_cfg else []),
               *(cli.get("plugins") or [])]
    if plugins:
        settings["plugins"] = plugins
    for table, (field_name, flag) in TOML_TABLES.items():
        merged = _toml_tables(config_file, file_cfg, table)
        given = (parse_set_options(cli.get(field_name) or []) if flag == "--set"
                 else parse_scoped_values(cli.get(field_name) or [], flag=flag))
        for scope, values in given.items():
            merged.setdefault(scope, {}).update(values)
        if flag != "--set" and "*" in merged:
            raise ConfigError(f"{flag} needs {FLAG_FORMS[flag].removeprefix('expected ')}")
        settings[field_name] = merged
    return settings


def _toml_value(path: Path | None, key: str, value: Any) -> Any:
    """A ``--config`` value in the type the run needs: ``seeds = "0,1"`` is ``[0, 1]``; a wrong type names the key."""
    kind = TOML_KINDS.get(key, "any")

    def refuse(expected: str) -> ConfigError:
        return ConfigError(f"--config {path}: {key} = {value!r} should be {expected}")

    if kind in ("names", "ints"):
        items = ([p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str)
                 else value if isinstance(value, list) else [value])
        if kind == "names":
            if not all(isinstance(item, str) for item in items):
                raise refuse('a list of names, e.g. ["a", "b"], or "a,b"')
            return [item.strip() for item in items]
        try:
            if any(isinstance(item, (bool, float)) for item in items):
                raise ValueError
            return [int(item) for item in items]
        except (TypeError, ValueError):
            raise refuse('a list of integers, e.g. [0, 1, 2], or "0,1,2"') from None
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse("an integer")
        return value
    if kind == "str" and not isinstance(value, str):
        raise refuse("a string")
    return value


def _toml_tables(path: Path | None, file_cfg: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    """``[set.NAME]`` / ``[metric_options.NAME]`` / ``[data_options.NAME]`` tables of a ``--config`` file."""
    tables = file_cfg.get(key) or {}
    if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
        raise ConfigError(f"--config {path}: {key} should hold tables, e.g. [{key}.NAME] with KEY = VALUE lines")
    return {scope: dict(values) for scope, values in tables.items()}


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
