"""The shared machinery of ``aed`` and ``akd``: per-frame backend measurements of real and generated clips.

Both metrics (DiffSDA app. D) compare a *reference* clip with a *generated* one frame by frame,
through an evaluation backend (identity embeddings for AED, keypoints for AKD):

* ``recon``: reference ``x``, generated ``decode(encode(x))``, over every test clip;
* ``swap``: over the dataset's fixed, seeded pairs ``(a, b)`` (:meth:`EvalContext.pairs`), the
  reference is ``a`` and the generated clip keeps the factor the backend measures from ``a``:
  AED decodes ``(s_a, d_b)`` ("static frozen": is ``a``'s identity kept under ``b``'s motion?),
  AKD decodes ``(s_b, d_a)`` ("dynamics frozen": is ``a``'s motion kept on ``b``'s appearance?).

A frame enters the average only when the backend succeeded on *both* the reference and the
generated frame (:mod:`seqbench.functional.distances`); the fraction of frames left out is the
``<variant>_failure`` key, so a method that makes faces undetectable cannot look better for it.
``chance/<metric>/<variant>`` is the same distance between the real clips ``a`` and ``b`` of the
pairs (what a method that ignores the reference would score). Intervals: bootstrap over clips or
pairs of the ratio (sum of frame distances / number of valid frames).

The backend is chosen by dataset family (``FAMILY_DEFAULTS``), or with the ``backend`` option;
``backend_<opt>`` options go to the backend's constructor. An unavailable backend (library or
weights missing) makes the cell "not applicable" with the install command, never a crash.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np
import torch

from seqbench.backend import Backend, Embeddings, Keypoints
from seqbench.errors import ConfigError, NotApplicable
from seqbench.metric import EvalContext, EvalData, Metric, Requirements
from seqbench.types import DataSpec, Factors, MetricOutput, MetricValue

from ._common import decode_batches, encode_split

FAMILY_DEFAULTS: dict[str, dict[str, str]] = {
    "akd": {"sprites": "sprites-keypoints", "faces": "dlib-landmarks", "bodies": "mediapipe-pose"},
    "aed": {"sprites": "sprites-identity", "faces": "dlib-identity"},
}
VARIANTS = ("recon", "swap")


def distance_outputs(name: str, measure: str, swap: str, excluded: str, unit: str = "") -> tuple[MetricOutput, ...]:
    """The keys :meth:`FrameDistanceMetric.evaluate` writes, ``<name>/<variant>`` and its failure rate,
    declared once next to the code that writes them (both metrics share the layout).

    ``measure`` names the distance, ``swap`` the swapped decode, ``excluded`` why a frame is left out.
    """
    suffix = f" ({unit})" if unit else ""
    described = {"recon": f"{measure}, reconstruction{suffix}", "swap": f"{measure}, {swap}{suffix}"}
    distances = tuple(MetricOutput(f"{name}/{variant}", False, described[variant], chance_key=f"chance/{name}/{variant}")
                      for variant in VARIANTS)
    failures = tuple(MetricOutput(f"{name}/{variant}_failure", False, f"fraction of frames excluded ({excluded})",
                                  headline=False) for variant in VARIANTS)
    return distances + failures


class FrameDistanceMetric(Metric):
    """Base of ``aed`` and ``akd`` (see the module docstring); subclasses set the kinds and the distance."""

    kinds: ClassVar[tuple[str, ...]] = ()
    requires = Requirements(decode=True, modality=("video",))
    option_defaults: ClassVar[dict[str, Any]] = {"backend": None, "variants": "recon,swap", "n_pairs": None}
    option_prefixes = ("backend_",)

    def check_options(self) -> None:
        opts = self.resolved_options()
        self._variants(opts)
        self._check_backend_options(opts)

    def _check_backend_options(self, opts: dict[str, Any]) -> None:
        """``backend_KEY`` options are ones the backend declares (the chosen one, or a family default)."""
        from seqbench.config import parse_options

        given = {k[len("backend_"):]: v for k, v in opts.items() if k.startswith("backend_")}
        if not given:
            return
        registry = self.backends
        names = [opts["backend"]] if opts["backend"] else list(dict.fromkeys(FAMILY_DEFAULTS[self.name].values()))
        declarations = [registry.get(name).declared_options() for name in names]
        if any(declared is None for declared in declarations):
            return
        accepted = {key: kind for declared in reversed(declarations) for key, kind in declared.items()}
        backends = opts["backend"] or f"the default backends ({', '.join(names)})"
        parse_options(given, accepted, where=f"{self.name}.backend_", flag="--metric-option", keep_native=True,
                      unknown=lambda key, valid: f"metric option {self.name}.backend_{key} does not exist: "
                                                 f"{backends} take(s) no option {key!r}; valid options: "
                                                 f"{', '.join(f'backend_{v}' for v in valid)}")

    def _variants(self, opts: dict[str, Any]) -> list[str]:
        variants = [v.strip() for v in str(opts["variants"]).split(",") if v.strip()]
        if not variants or any(v not in VARIANTS for v in variants):
            raise ConfigError(f"metric option {self.name}.variants={opts['variants']!r}: choose from recon, swap")
        return variants

    def applicable(self, method, spec: DataSpec) -> str | None:
        reason = super().applicable(method, spec)
        if reason is None and self.options.get("backend") is None and spec.family not in FAMILY_DEFAULTS[self.name]:
            known = ", ".join(f"{fam}: {name}" for fam, name in FAMILY_DEFAULTS[self.name].items())
            reason = (f"{self.name} has no default backend for the {spec.family!r} dataset family ({known}); "
                      f"choose one with the metric option {self.name}.backend=NAME")
        return reason

    # -- backend -----------------------------------------------------------------------------
    def backend(self, data: EvalData, ctx: EvalContext, opts: dict[str, Any]) -> Backend:
        spec = data.spec
        name = opts["backend"] or FAMILY_DEFAULTS[self.name].get(spec.family)
        if name is None:
            raise NotApplicable(f"{self.name}: no backend for the {spec.family!r} family; set {self.name}.backend")
        cls = ctx.backends.get(name)
        if cls.kind not in self.kinds:
            raise ConfigError(f"metric option {self.name}.backend={name!r} is a {cls.kind!r} backend; {self.name} "
                              f"needs a {' or '.join(self.kinds)} backend")
        backend = cls(**{k[len("backend_"):]: v for k, v in opts.items() if k.startswith("backend_")})
        reason = backend.unavailable_reason()
        if reason:
            raise NotApplicable(f"backend {name} is unavailable: {reason}")
        backend.setup(data, ctx)
        return backend

    def measure(self, backend: Backend, clips: torch.Tensor, spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
        """Backend output for clips ``[B, T, C, H, W]`` -> values ``[B, T, ...]`` and validity ``[B, T(, K)]``."""
        from seqbench.utils import to_unit_range

        b, t = clips.shape[:2]
        frames = to_unit_range(clips.float().cpu(), spec.value_range).clamp(0, 1).reshape(b * t, *clips.shape[2:])
        out = backend(frames)
        if isinstance(out, Keypoints):
            return out.points.reshape(b, t, *out.points.shape[1:]), out.valid.reshape(b, t, -1)
        if isinstance(out, Embeddings):
            return out.vectors.reshape(b, t, -1), out.valid.reshape(b, t)
        raise TypeError(f"backend {backend.name} returned {type(out).__name__}, not Keypoints or Embeddings")

    @abc.abstractmethod
    def distance(self, ref: tuple[np.ndarray, np.ndarray], gen: tuple[np.ndarray, np.ndarray],
                 opts: dict[str, Any]) -> Any:
        """The :class:`~seqbench.functional.FrameDistance` between measured references and generations."""

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, method, data: EvalData, ctx: EvalContext) -> dict[str, MetricValue]:
        opts = self.resolved_options()
        variants = self._variants(opts)
        spec = data.spec
        backend = self.backend(data, ctx, opts)
        label = backend.label
        n = len(data.test)
        real = self._measure_split(backend, data, ctx)
        codes = encode_split(method, data.test, ctx.batch_size, ctx.device)
        out: dict[str, MetricValue] = {}
        pairs = ctx.pairs(spec, n, None if opts["n_pairs"] is None else int(opts["n_pairs"]))
        a, b = pairs[:, 0], pairs[:, 1]
        chance = self.distance(_take(real, a), _take(real, b), opts)
        for variant in variants:
            if variant == "recon":
                static, dynamic, ref_index = codes.static, codes.dynamic, np.arange(n)
            else:
                static, dynamic = self.swap_codes(codes, torch.from_numpy(a), torch.from_numpy(b))
                ref_index = a
            gen = self._measure_decodes(backend, method, static, dynamic, data, ctx)
            result = self.distance(_take(real, ref_index), gen, opts)
            out.update(self._values(f"{self.name}/{variant}", result, ctx.seed, label, data.spec.frames))
            out[f"chance/{self.name}/{variant}"] = MetricValue(chance.value, n=len(pairs), backend=label)
        return out

    @abc.abstractmethod
    def swap_codes(self, codes: Factors, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(static, dynamic)`` codes to decode for the pairs ``(a, b)`` (reference ``a``)."""

    def _measure_split(self, backend: Backend, data: EvalData, ctx: EvalContext) -> tuple[np.ndarray, np.ndarray]:
        parts = [self.measure(backend, data.test.clips(np.arange(s, min(len(data.test), s + ctx.batch_size))), data.spec)
                 for s in range(0, len(data.test), ctx.batch_size)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _measure_decodes(self, backend, method, static, dynamic, data: EvalData, ctx: EvalContext):
        parts = [self.measure(backend, x_hat, data.spec)
                 for x_hat in decode_batches(method, static, dynamic, ctx.decode_batch_size(dynamic.shape[1]),
                                             ctx.device, ctx.generator(2), data.spec.value_range)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    @staticmethod
    def _values(prefix: str, result, seed: int, label: str, frames: int) -> dict[str, MetricValue]:
        from seqbench.functional import bootstrap_ci

        n_items = len(result.item_count)
        if result.n_valid:
            low, high = bootstrap_ci(result.item_sum, denominators=result.item_count, seed=seed)
        else:
            low = high = None
        failed = 1.0 - result.item_count / frames
        f_low, f_high = bootstrap_ci(failed, seed=seed)
        return {prefix: MetricValue(result.value, n=n_items, ci_low=low, ci_high=high, backend=label),
                f"{prefix}_failure": MetricValue(result.failure_rate, n=n_items, ci_low=f_low, ci_high=f_high,
                                                 backend=label)}


def _take(measured: tuple[np.ndarray, np.ndarray], index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return measured[0][index], measured[1][index]
