"""Planning a run: the cells of (dataset x method x seed x metric), with every option checked first.

Nothing here trains or writes: :class:`Planner` resolves names ("did you mean"), validates every
option of every selected plugin, and computes the content-addressed keys of models and cells, so
a usage error is refused before any data is prepared or anything trains.
"""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

from .. import __version__
from ..config import PROFILE_REGISTRY, MethodConfig, get_profile
from ..errors import ConfigError
from ..plugins import Plugins, code_digest
from ..probes import default_probes
from ..run_types import Cell, ModelUnit, RunOptions
from ..types import DataSpec
from ..utils import content_hash


class Plan(NamedTuple):
    """What a run will do: the models to train or reuse, their cells, and the cells that cannot apply."""

    units: list[ModelUnit]
    cells: list[Cell]
    skipped: list[dict[str, Any]]  # {"unit", "metric", "reason"}: a method that does not support the dataset


def _resolve_names(kind: str, names: list[str], plugins: Plugins) -> list[str]:
    registry = plugins.registry(kind)
    resolved = []
    for name in names:
        registry.get(name)  # raises UnknownNameError with suggestions
        if name not in resolved:
            resolved.append(name)
    return resolved


def resolve_config(method_cls, profile: str, spec: DataSpec, overrides: dict[str, dict[str, Any]]) -> MethodConfig:
    """The method's profile config for this dataset (family, then name), with ``--set`` overrides applied."""
    config = apply_overrides(method_cls.Config.for_profile(profile, spec.family, spec.name), method_cls.name,
                             overrides)
    config.check(owner=f"{method_cls.name}.")
    return config


def apply_overrides(config: MethodConfig, method: str, overrides: dict[str, dict[str, Any]]) -> MethodConfig:
    """``config`` with the ``--set KEY=VALUE`` (every method) and ``--set METHOD.KEY=VALUE`` overrides."""
    for scope in ("*", method):
        if overrides.get(scope):
            config = config.with_overrides(overrides[scope], owner=f"{method}." if scope != "*" else "")
    return config


def model_key(method_cls, config: MethodConfig, spec: DataSpec, seed: int) -> str:
    """Everything that determines a trained model, hashed (cf. lm-eval #4063: key on all of it).

    The method's own source (:func:`~seqbench.plugins.code_digest`) is part of it, so edited code
    trains a new model even when ``version`` was not bumped.
    """
    return content_hash({"method": method_cls.name, "method_version": method_cls.version, "config": config.to_dict(),
                         "dataset": spec.name, "fingerprint": spec.fingerprint, "seed": seed,
                         "seqbench": __version__, "code": code_digest(method_cls)}, length=20)


def make_unit(method_cls, config: MethodConfig, spec: DataSpec, dataset: str, seed: int) -> ModelUnit:
    """The (dataset, method, seed) model with its cache key."""
    return ModelUnit(dataset, method_cls.name, seed, config, spec, method_cls.version,
                     model_key(method_cls, config, spec, seed), content_hash(config.to_dict()))


class Planner:
    """Resolves a run's options into a :class:`Plan`; owns the dataset adapters the run reads."""

    def __init__(self, options: RunOptions, plugins: Plugins):
        self.options = options
        self.plugins = plugins
        self._adapters: dict[str, Any] = {}

    @property
    def eval_clips(self) -> int | None:
        """Test clips per evaluation: the option, else the profile's default; ``None`` = the whole split."""
        value = self.options.eval_clips
        if value is None:
            profile = PROFILE_REGISTRY.get(self.options.profile)
            value = profile.eval_clips if profile else None
        if value is not None and value < 0:
            raise ConfigError(f"--eval-clips {value}: give a positive number of test clips, or 0 for all of them")
        return value or None

    def adapter(self, name: str):
        """The dataset's adapter with this run's ``--data-option`` values (one per dataset and run)."""
        if name not in self._adapters:
            cls = self.plugins.datasets.get(name)
            self._adapters[name] = cls(**self.options.dataset_options.get(name, {}))
        return self._adapters[name]

    def plan(self) -> Plan:
        """Every cell of the run with its keys; raises :class:`ConfigError` (exit 2) before anything trains."""
        opts = self.options
        get_profile(opts.profile)
        if not opts.seeds:
            raise ConfigError("--seeds is empty; give at least one seed, e.g. --seeds 0,1,2")
        repeated = sorted({seed for seed in opts.seeds if opts.seeds.count(seed) > 1})
        if repeated:
            raise ConfigError(f"--seeds {','.join(map(str, opts.seeds))}: seed(s) {', '.join(map(str, repeated))} "
                              f"given twice; each seed is one model, list it once")
        methods = _resolve_names("method", opts.methods, self.plugins)
        metrics = _resolve_names("metric", opts.metrics, self.plugins)
        datasets = _resolve_names("dataset", opts.datasets, self.plugins)
        self.check_metric_options(metrics)
        self.check_option_scopes("--data-option", "dataset", "--dataset", opts.dataset_options, datasets)
        if opts.probes is None:
            opts.probes = default_probes(opts.profile)
        opts.probes = _resolve_names("metric", opts.probes, self.plugins)  # --probes: metric names
        self.check_option_scopes("--set", "method", "--methods", opts.overrides, [*methods, "*"])
        # Every option's key and type before any data is prepared: --set (ranges depend on the dataset
        # family's profile, checked below) and each dataset's --data-option (its adapter refuses them).
        for method in methods:
            apply_overrides(self.plugins.methods.get(method).Config.for_profile(opts.profile), method, opts.overrides)
        for dataset in datasets:
            self.adapter(dataset)
        units, cells, skipped = [], [], []
        for dataset in datasets:
            spec = self.adapter(dataset).spec
            for method in methods:
                cls = self.plugins.methods.get(method)
                config = resolve_config(cls, opts.profile, spec, opts.overrides)
                reason = cls.supports(spec)
                for seed in opts.seeds:
                    unit = make_unit(cls, config, spec, dataset, seed)
                    key = unit.model_key
                    if reason:
                        skipped += [dict(unit=unit, metric=m, reason=reason) for m in metrics]
                        continue
                    units.append(unit)
                    for metric in metrics:
                        mcls = self.plugins.metrics.get(metric)
                        cell_key = content_hash({"model": key, "metric": metric, "metric_version": mcls.version,
                                                 "metric_code": code_digest(mcls),
                                                 "limit": opts.limit,
                                                 **({"eval_clips": self.eval_clips}
                                                    if self.eval_clips else {}),
                                                 **({"options": opts.metric_options[metric]}
                                                    if opts.metric_options.get(metric) else {})}, length=20)
                        cells.append(Cell(unit, metric, mcls.version, cell_key))
        return Plan(units, cells, skipped)

    def unit(self, dataset: str, method: str, seed: int) -> ModelUnit:
        """One model of this runner's options (profile, ``--set``, dataset options), as ``plan`` builds it."""
        cls = self.plugins.methods.get(method)
        spec = self.adapter(self.plugins.datasets.get(dataset).name).spec
        reason = cls.supports(spec)
        if reason:
            raise ConfigError(f"{method} on {dataset}: {reason}")
        return make_unit(cls, resolve_config(cls, self.options.profile, spec, self.options.overrides), spec, dataset,
                         seed)

    def metric(self, name: str):
        """The metric ``name`` with this run's ``--metric-option`` values and the run's plugins."""
        return self.plugins.metrics.get(name)(**self.options.metric_options.get(name, {})).use_plugins(self.plugins)

    def check_metric_options(self, metrics: list[str]) -> None:
        """Every ``--metric-option`` names a metric of this run and a key (and value) it accepts; the
        metric checks its own options and those of its sub-components (judge, backend)."""
        self.check_option_scopes("--metric-option", "metric", "--metrics", self.options.metric_options, metrics)
        for name in metrics:
            metric = self.metric(name)
            try:
                metric.check_options()
            except ConfigError as exc:
                message = str(exc)
                raise ConfigError(message if message.startswith(("metric option", "--metric-option")) else
                                  f"--metric-option {name}.…: {message}") from None

    def check_option_scopes(self, flag: str, kind: str, selecting_flag: str, options: dict[str, Any],
                            selected: list[str]) -> None:
        """Every ``flag NAME.KEY=VALUE`` names a ``kind`` plugin of this run (a typo would be ignored).

        ``selected`` may hold ``*`` (``--set KEY=VALUE``: every method)."""
        names = [name for name in selected if name != "*"]
        listing = ", ".join(names)
        for scope in options:
            if scope in selected:
                continue
            if scope in self.plugins.registry(kind):
                raise ConfigError(f"{flag} {scope}.…: {kind} {scope!r} is not part of this run "
                                  f"({selecting_flag} {listing}); add it to {selecting_flag} or drop the option")
            close = difflib.get_close_matches(scope, names, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"{flag} {scope}.…: unknown {kind} {scope!r}.{hint} This run's {kind}s: {listing}")
