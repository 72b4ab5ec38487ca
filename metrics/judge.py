"""``judge``: what a fixed, pre-trained classifier (the dataset's judge) sees in swapped and sampled decodes.

Three protocols, each with its own keys (``protocols`` option, default all three):

* **swap** (DiViD sec. 4.2.2): over the dataset's fixed, seeded list of test pairs ``(a, b)``
  (:meth:`EvalContext.pairs`), decode ``(s_a, d_b)``; a static head is right when it recovers
  ``a``'s label, a dynamic head when it recovers ``b``'s. Keys ``swap/static`` (every static head
  right), ``swap/dynamic`` (every dynamic head right), ``swap/joint`` (all heads) and
  ``swap/acc_<head>``; intervals are bootstrapped over pairs.
* **sample** (C-DSVAE / DBSE / SPYL): *fixed dynamic*: keep each test clip's dynamics, draw the
  static code from the method's prior; *fixed static*: keep the static code, draw the dynamics from
  the prior. Per head ``sample/<mode>/acc_<head>`` against the test clip's labels (the kept factor's
  heads should be right, the resampled factor's heads near chance), and on the primary dynamic head
  (the first dynamic label, the action on Sprites) ``sample/<mode>/is``, ``h_yx``, ``h_y``. Every
  value is the mean over ``niter`` repeats with fresh prior draws; intervals are bootstrapped over
  test clips (each carrying its ``niter`` draws). In fixed-dynamic mode IS and the entropies use
  the subset balanced on the ground-truth label of the kept dynamic factor; in fixed-static mode
  the generated dynamic class comes from the prior, no ground truth describes it, and all clips
  are used (the reference balanced on the input's action here too, a label unrelated to the
  samples). Methods without a prior get "not applicable" for this protocol only.

* **recon**: decode each test clip's own factors, ``decode(encode(x))``, and score it against its
  own labels: ``recon/static``, ``recon/dynamic``, ``recon/joint``, ``recon/acc_<head>``. It is what
  a swap could reach if the factors were perfectly disentangled, so it splits a low swap score into
  *rendering* (the decoder cannot draw the attribute even from the clip's own codes) and
  *disentanglement* (it can, but a swapped code does not carry it). Measured on the committed
  synthetic-sprites models (``benchmarks/swap_bounds.py``): DiViD's static code holds bottom and skin
  (linear probe 0.99 / 0.91), yet its reconstructions get them right 0.51 / 0.61 of the time
  (``recon/static`` 0.26 against a swap of 0.19); the VidTwin-style model reconstructs them (0.83) and
  swaps at 0.03.

Every row names the judge (``judge-<key>@<weights>``); ``ceiling/<key>`` is the judge's own accuracy on
the real test clips for the same heads (the best any method can score), ``chance/<key>`` the
accuracy of the best input-independent guess (majority label, or majority label tuple for group
keys). The judge is the one shipped with seqbench for the dataset when there is one, else trained
once per dataset and cached (:mod:`seqbench.judges`); ``judge.weights=FILE|DIGEST`` pins another
(:mod:`seqbench.judge_files`).

**Judge sensitivity.** ``judge.ensemble=K`` also scores the same decodes with ``K - 1`` further judges
trained with seeds ``1..K-1`` and reports, for every judge-based key, ``judge_spread/<key>``: the
largest minus the smallest value across the ``K`` judges (the pinned judge's value stays the
row's value). A difference between two methods smaller than the spread is within judge noise.

**Decodes are cached** as ``uint8`` arrays in the model's cache folder (``decodes/``), keyed on the
protocol, the pairs or prior draws and the run seed (the sampler settings are part of the model's
key), so scoring with another judge, an ensemble member or a changed judge protocol costs no
decoding; the arrays can be inspected with numpy. Judges read the quantised clips, as they read
the dataset's own uint8 frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqbench.errors import ConfigError, NotApplicable
from seqbench.hookspecs import hookimpl
from seqbench.metric import EvalContext, EvalData, Metric, Requirements
from seqbench.types import DataSpec, MetricOutput, MetricValue

from ._common import decode_batches, encode_split, majority_frequency, with_ci, with_ci_fn

PROTOCOLS = ("swap", "sample", "recon")
MODES = ("fixed_dynamic", "fixed_static")
DEFAULTS: dict[str, Any] = {"protocols": "swap,sample,recon", "niter": 3, "n_pairs": None, "weights": "", "ensemble": 1}
SPREAD = "judge_spread/"


class JudgeAccuracy(Metric):
    name = "judge"
    version = "2"  # 2: judges read uint8-quantised decodes (cached); shipped judges by default; ensembles
    description = "judge accuracy on swapped (DiViD) and prior-sampled (C-DSVAE) decodes, with the judge ceiling"
    outputs = (
        MetricOutput("swap/static", True, "swapped decodes whose static heads all match the static donor",
                     chance_key="chance/swap/static"),
        MetricOutput("swap/dynamic", True, "swapped decodes whose dynamic heads all match the dynamics donor",
                     chance_key="chance/swap/dynamic"),
        MetricOutput("swap/joint", True, "swapped decodes with every head right", chance_key="chance/swap/joint"),
        MetricOutput("swap/acc_", True, "per head: swap/acc_<head>; for a <type>-<direction> head (Sprites' "
                     "motion) also swap/acc_<head>_type and _direction"),
        MetricOutput("swap/", False, "swap/<head>_direction_from_static: swapped decodes facing the static "
                     "donor's way (the direction read from s; chance: donors facing the same way)", headline=False),
        MetricOutput("sample/fixed_static/", False, "sample/fixed_static/<head>_direction_from_static: with "
                     "dynamics from the prior, decodes still facing the clip's own way", headline=False),
        MetricOutput("sample/fixed_dynamic/acc_", True,
                     "per head; higher is better for dynamic heads (kept), lower for static heads (resampled)"),
        MetricOutput("sample/fixed_static/acc_", True,
                     "per head; higher is better for static heads (kept), lower for dynamic heads (resampled)"),
        MetricOutput("sample/fixed_dynamic/is", True, "inception score of the primary dynamic head"),
        MetricOutput("sample/fixed_dynamic/h_yx", False, "H(y|x) of the primary dynamic head", headline=False),
        MetricOutput("sample/fixed_dynamic/h_y", True, "H(y) of the primary dynamic head", headline=False),
        MetricOutput("sample/fixed_static/is", True, "inception score of the primary dynamic head",
                     headline=False),
        MetricOutput("sample/fixed_static/h_yx", False, "H(y|x) of the primary dynamic head", headline=False),
        MetricOutput("sample/fixed_static/h_y", True, "H(y) of the primary dynamic head", headline=False),
        MetricOutput("recon/static", True, "reconstructions decode(encode(x)) whose static heads are all right: "
                     "what a swap could reach (rendering, not disentanglement)", chance_key="chance/recon/static",
                     headline=False),
        MetricOutput("recon/dynamic", True, "reconstructions whose dynamic heads are all right",
                     chance_key="chance/recon/dynamic", headline=False),
        MetricOutput("recon/joint", True, "reconstructions with every head right", chance_key="chance/recon/joint",
                     headline=False),
        MetricOutput("recon/acc_", True, "per head: recon/acc_<head>", headline=False),
        MetricOutput(SPREAD, False, "judge_spread/<key>: max - min of <key> across the judge ensemble (judge.ensemble)",
                     headline=False),
    )
    requires = Requirements(decode=True, labels=("static", "dynamic"), modality=("video",))
    option_defaults = DEFAULTS
    option_prefixes = ("judge_",)

    def __init__(self, **options: Any):
        super().__init__(**options)
        self._kinds: dict[str, str] = {}

    def applicable(self, method, spec: DataSpec) -> str | None:
        from seqbench.judges import judge_unavailable_reason

        return super().applicable(method, spec) or judge_unavailable_reason(spec)

    def output(self, key: str) -> MetricOutput:
        """Direction of per-head sample keys: the resampled factor's heads are better near chance (lower)."""
        for mode, kept in (("sample/fixed_dynamic/acc_", "dynamic"), ("sample/fixed_static/acc_", "static")):
            if key.startswith(mode):
                kind = self._kinds.get(key[len(mode):])
                return MetricOutput(key, kind is None or kind == kept)
        return super().output(key)

    def _options(self) -> tuple[dict[str, Any], dict[str, Any]]:
        opts = self.resolved_options()
        protocols = [p.strip() for p in str(opts["protocols"]).split(",") if p.strip()]
        bad = [p for p in protocols if p not in PROTOCOLS]
        if bad or not protocols:
            raise ConfigError(f"metric option judge.protocols={opts['protocols']!r}: choose from {', '.join(PROTOCOLS)}")
        opts["protocols"] = protocols
        if int(opts["niter"]) < 1:
            raise ConfigError(f"metric option judge.niter={opts['niter']}: must be at least 1")
        if int(opts["ensemble"]) < 1:
            raise ConfigError(f"metric option judge.ensemble={opts['ensemble']}: must be at least 1 (the pinned judge)")
        opts["weights"] = str(opts["weights"] or "") or None
        judge_overrides = {k[len("judge_"):]: v for k, v in opts.items() if k.startswith("judge_")}
        return opts, judge_overrides

    def check_options(self) -> None:
        from seqbench.judges import JudgeConfig

        _, judge_overrides = self._options()
        JudgeConfig().with_overrides(judge_overrides)

    def evaluate(self, method, data: EvalData, ctx: EvalContext) -> dict[str, MetricValue]:
        import dataclasses

        from seqbench.judges import judge_config_for

        opts, judge_overrides = self._options()
        spec = data.spec
        self._kinds = {label.name: label.kind for label in spec.labels}
        config = judge_config_for(spec, judge_overrides, ctx.profile)
        judges = [ctx.judge(data, config, opts["weights"])]
        for member in range(1, int(opts["ensemble"])):  # ensemble members: the recipe with seeds 1..K-1, trained
            judges.append(ctx.judge(data, dataclasses.replace(config, seed=config.seed + member), "train"))
        codes = encode_split(method, data.test, ctx.batch_size, ctx.device)
        decodes = _Decodes(method, data, ctx)
        per_judge: list[dict[str, MetricValue]] = [{} for _ in judges]
        if "swap" in opts["protocols"]:
            for out, judge in zip(per_judge, judges):
                out.update(self._swap(data, ctx, judge, codes, opts["n_pairs"], decodes))
        if "recon" in opts["protocols"]:
            for out, judge in zip(per_judge, judges):
                out.update(self._recon(data, ctx, judge, codes, decodes))
        if "sample" in opts["protocols"]:
            if method.can_sample():
                for out, judge in zip(per_judge, judges):
                    out.update(self._sample(method, data, ctx, judge, codes, int(opts["niter"]), decodes))
            elif opts["protocols"] == ["sample"]:
                raise NotApplicable(f"{method.name} has no prior to sample from (judge sample protocol)")
            else:
                ctx.skip("sample/*", f"{method.name} has no prior to sample from (judge sample protocol)")
        out = per_judge[0]
        if len(judges) > 1:
            names = ", ".join(j.name for j in judges)
            for key, value in list(out.items()):
                if key.startswith(("ceiling/", "chance/")):
                    continue
                values = [member[key].value for member in per_judge]
                out[SPREAD + key] = MetricValue(float(max(values) - min(values)), n=len(values),
                                                backend=f"ensemble of {len(judges)}: {names}")
        return out

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _judge_probs(judge, clips: np.ndarray, data: EvalData, ctx: EvalContext) -> dict[str, torch.Tensor]:
        """Softmax outputs of every judge head on cached uint8 decodes ``[N, T, C, H, W]``."""
        parts: list[dict[str, torch.Tensor]] = []
        for start in range(0, len(clips), ctx.batch_size):
            x_hat = from_uint8(clips[start:start + ctx.batch_size], data.spec.value_range)
            with torch.no_grad():
                logits = judge(x_hat.to(ctx.device))
            parts.append({k: torch.softmax(v.double(), dim=1).cpu() for k, v in logits.items()})
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    # -- swap protocol ---------------------------------------------------------------------
    def _swap(self, data: EvalData, ctx: EvalContext, judge, codes, n_pairs, decodes: "_Decodes") -> dict[str, MetricValue]:
        from seqbench.functional import compound_label_parts, swap_accuracies

        spec = data.spec
        pairs = ctx.pairs(spec, len(data.test), None if n_pairs is None else int(n_pairs))
        a, b = torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])
        clips = decodes.get("swap", pairs, lambda: (codes.static[a], codes.dynamic[b], ctx.generator(1)))
        probs = self._judge_probs(judge, clips, data, ctx)
        labels = {k: np.asarray(v) for k, v in data.test.labels.items()}
        statics, dynamics = [l.name for l in spec.static_labels], [l.name for l in spec.dynamic_labels]
        targets_s = {h: labels[h][pairs[:, 0]] for h in statics}
        targets_d = {h: labels[h][pairs[:, 1]] for h in dynamics}
        result = swap_accuracies({h: probs[h].numpy() for h in statics}, {h: probs[h].numpy() for h in dynamics},
                                 targets_s, targets_d)
        out: dict[str, MetricValue] = {}
        backend = judge.name
        seed = ctx.seed
        for group in ("static", "dynamic", "joint"):
            out[f"swap/{group}"] = with_ci(result.per_item[group], seed, backend)
            out[f"ceiling/swap/{group}"] = MetricValue(judge.ceiling[group], backend=backend)
        all_targets = {**targets_s, **targets_d}
        out["chance/swap/static"] = MetricValue(majority_frequency(*targets_s.values()), backend=backend)
        out["chance/swap/dynamic"] = MetricValue(majority_frequency(*targets_d.values()), backend=backend)
        out["chance/swap/joint"] = MetricValue(majority_frequency(*all_targets.values()), backend=backend)
        for h in statics + dynamics:
            out[f"swap/acc_{h}"] = with_ci(result.per_item[f"head/{h}"], seed, backend)
            out[f"ceiling/swap/acc_{h}"] = MetricValue(judge.ceiling[h], backend=backend)
            out[f"chance/swap/acc_{h}"] = MetricValue(majority_frequency(all_targets[h]), backend=backend)
        for label in spec.dynamic_labels:  # a <type>-<direction> head: which part the decodes carry
            parts = compound_label_parts(label.class_names)
            if parts is None:
                continue
            kind, direction = parts
            pred = probs[label.name].numpy().argmax(1)
            donor_s, donor_d = labels[label.name][pairs[:, 0]], labels[label.name][pairs[:, 1]]
            for part, index in (("type", kind), ("direction", direction)):
                key = f"swap/acc_{label.name}_{part}"
                out[key] = with_ci((index[pred] == index[donor_d]).astype(np.float64), seed, backend)
                out[f"chance/{key}"] = MetricValue(majority_frequency(index[donor_d]), backend=backend)
            key = f"swap/{label.name}_direction_from_static"
            out[key] = with_ci((direction[pred] == direction[donor_s]).astype(np.float64), seed, backend)
            # the rate at which the two donors face the same way: the level without any leak
            out[f"chance/{key}"] = MetricValue(float(np.mean(direction[donor_s] == direction[donor_d])),
                                               backend=backend)
        return out

    # -- recon protocol --------------------------------------------------------------------
    def _recon(self, data: EvalData, ctx: EvalContext, judge, codes, decodes: "_Decodes") -> dict[str, MetricValue]:
        """The swap protocol with both donors the same clip: every head against the clip's own labels."""
        from seqbench.functional import swap_accuracies

        spec = data.spec
        items = np.arange(len(data.test))
        clips = decodes.get("recon", items, lambda: (codes.static, codes.dynamic, ctx.generator(2)))
        probs = self._judge_probs(judge, clips, data, ctx)
        labels = {k: np.asarray(v) for k, v in data.test.labels.items()}
        statics, dynamics = [l.name for l in spec.static_labels], [l.name for l in spec.dynamic_labels]
        result = swap_accuracies({h: probs[h].numpy() for h in statics}, {h: probs[h].numpy() for h in dynamics},
                                 {h: labels[h] for h in statics}, {h: labels[h] for h in dynamics})
        backend, seed = judge.name, ctx.seed
        groups = {"static": statics, "dynamic": dynamics, "joint": statics + dynamics}
        out: dict[str, MetricValue] = {}
        for group, heads in groups.items():
            if group not in result.per_item:
                continue
            out[f"recon/{group}"] = with_ci(result.per_item[group], seed, backend)
            out[f"ceiling/recon/{group}"] = MetricValue(judge.ceiling[group], backend=backend)
            out[f"chance/recon/{group}"] = MetricValue(majority_frequency(*(labels[h] for h in heads)),
                                                       backend=backend)
        for h in statics + dynamics:
            out[f"recon/acc_{h}"] = with_ci(result.per_item[f"head/{h}"], seed, backend)
            out[f"ceiling/recon/acc_{h}"] = MetricValue(judge.ceiling[h], backend=backend)
            out[f"chance/recon/acc_{h}"] = MetricValue(majority_frequency(labels[h]), backend=backend)
        return out

    # -- sample protocol -------------------------------------------------------------------
    def _sample(self, method, data: EvalData, ctx: EvalContext, judge, codes, niter: int,
                decodes: "_Decodes") -> dict[str, MetricValue]:
        from seqbench.functional import class_balanced_indices, compound_label_parts, resampled_judge_scores

        spec = data.spec
        n, frames = len(data.test), codes.dynamic.shape[1]
        labels = {k: np.asarray(v) for k, v in data.test.labels.items()}
        primary = spec.dynamic_labels[0].name
        backend, seed = judge.name, ctx.seed
        out: dict[str, MetricValue] = {}
        # <type>-<direction> heads (Sprites' motion): class index -> (type index, direction index)
        compound = {label.name: parts for label in spec.dynamic_labels
                    if (parts := compound_label_parts(label.class_names)) is not None}
        for m, mode in enumerate(MODES):
            hits = {label.name: np.zeros((niter, n)) for label in spec.labels}
            part_hits = {(name, part): np.zeros((niter, n)) for name in compound for part in (0, 1)}
            primary_probs = []
            for r in range(niter):
                def factors(r: int = r, mode: str = mode, m: int = m):
                    gen = ctx.generator(100 + 10 * r + m)
                    if mode == "fixed_dynamic":
                        return _sample_in_batches(method, n, frames, "static", ctx.batch_size, gen), codes.dynamic, gen
                    return codes.static, _sample_in_batches(method, n, frames, "dynamic", ctx.batch_size, gen), gen

                clips = decodes.get(f"sample-{mode}-{r}", np.arange(n), factors)
                probs = self._judge_probs(judge, clips, data, ctx)
                for name in hits:
                    hits[name][r] = probs[name].argmax(1).numpy() == labels[name]
                for (name, part), part_hit in part_hits.items():
                    index = compound[name][part]
                    part_hit[r] = index[probs[name].argmax(1).numpy()] == index[labels[name]]
                primary_probs.append(probs[primary].numpy())
            kept = "dynamic" if mode == "fixed_dynamic" else "static"
            for label in spec.labels:
                key = f"sample/{mode}/acc_{label.name}"
                out[key] = with_ci(hits[label.name].mean(axis=0), seed, backend)
                out[f"chance/{key}"] = MetricValue(majority_frequency(labels[label.name]), backend=backend)
                if label.kind == kept:
                    out[f"ceiling/{key}"] = MetricValue(judge.ceiling[label.name], backend=backend)
            for (name, part), values in part_hits.items():
                # fixed dynamics: are the type and the direction kept? Fixed static with new dynamics: a
                # direction that still matches the clip's own comes from the static code
                if mode == "fixed_dynamic":
                    key = f"sample/{mode}/acc_{name}_{('type', 'direction')[part]}"
                elif part == 1:
                    key = f"sample/{mode}/{name}_direction_from_static"
                else:
                    continue
                out[key] = with_ci(values.mean(axis=0), seed, backend)
                index = compound[name][part]
                out[f"chance/{key}"] = MetricValue(majority_frequency(index[labels[name]]), backend=backend)
            if mode == "fixed_dynamic":
                subset = class_balanced_indices(labels[primary])
            else:
                subset = np.arange(n)
            p = np.stack(primary_probs)[:, subset]  # [R, M, C]

            def statistic(idx: np.ndarray, p: np.ndarray = p) -> dict[str, np.ndarray]:
                scores = [resampled_judge_scores(p[r], idx) for r in range(len(p))]
                return {k: np.mean([s[k] for s in scores], axis=0) for k in scores[0]}

            point = statistic(np.arange(p.shape[1])[None])
            for short, name in (("is", "inception_score"), ("h_yx", "conditional_entropy"),
                                ("h_y", "marginal_entropy")):
                out[f"sample/{mode}/{short}"] = with_ci_fn(float(point[name][0]), p.shape[1],
                                                           lambda idx, name=name: statistic(idx)[name], seed, backend)
        return out


def to_uint8(x: torch.Tensor, value_range: tuple[float, float]) -> np.ndarray:
    """Clips in ``value_range`` -> ``uint8`` (256 levels over the range, as the datasets store frames)."""
    lo, hi = map(float, value_range)
    return torch.round((x.float().clamp(lo, hi) - lo) / (hi - lo) * 255).to(torch.uint8).numpy()


def from_uint8(clips: np.ndarray, value_range: tuple[float, float]) -> torch.Tensor:
    lo, hi = map(float, value_range)
    return torch.from_numpy(np.ascontiguousarray(clips)).float() / 255 * (hi - lo) + lo


class _Decodes:
    """The judge's decodes of one model, computed once and kept as ``uint8`` under ``<model dir>/decodes/``.

    Keyed on the protocol entry, the evaluated test items (fingerprint and subset), the pairs or
    items decoded and the run seed; the model's own cache key covers its weights and sampler settings.
    Without a model folder (a metric called outside the runner) decodes are kept in memory only.
    """

    def __init__(self, method, data: EvalData, ctx: EvalContext):
        from seqbench.judges import split_hash

        self.method, self.data, self.ctx = method, data, ctx
        self.folder: Path | None = Path(ctx.model_dir) / "decodes" if ctx.model_dir is not None else None
        self.test_hash = split_hash(data.test)
        self._memory: dict[str, np.ndarray] = {}

    def get(self, name: str, items: np.ndarray, factors) -> np.ndarray:
        """``[N, T, C, H, W]`` uint8 decodes of ``factors() -> (static, dynamic, generator)`` for ``items``."""
        from seqbench.utils import content_hash

        key = content_hash([name, self.data.spec.fingerprint, self.test_hash, np.asarray(items).tolist(),
                            self.ctx.seed, self.ctx.limit], length=20)
        if key in self._memory:
            return self._memory[key]
        path = self.folder / f"judge-{name}-{key}.npy" if self.folder is not None else None
        if path is not None and path.exists():
            try:
                clips = np.load(path, allow_pickle=False)
                self._memory[key] = clips
                return clips
            except (OSError, ValueError):
                path.unlink(missing_ok=True)  # a torn write: decode again
        static, dynamic, generator = factors()
        spec = self.data.spec
        batch = self.ctx.decode_batch_size(dynamic.shape[1])
        parts = [to_uint8(x, spec.value_range) for x in
                 decode_batches(self.method, static, dynamic, batch, self.ctx.device, generator, spec.value_range)]
        clips = np.concatenate(parts)
        if path is not None:
            import os

            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as handle:
                np.save(handle, clips)
            os.replace(tmp, path)
        self._memory[key] = clips
        return clips


def _sample_in_batches(method, n: int, frames: int, which: str, batch_size: int,
                       generator: torch.Generator) -> torch.Tensor:
    """``n`` prior draws in batches of ``batch_size`` from one generator (same draws for every run)."""
    parts = [method.sample(min(batch_size, n - start), frames, which, generator=generator).detach().float().cpu()
             for start in range(0, n, batch_size)]
    return torch.cat(parts)


@hookimpl
def seqbench_add_metrics():
    return [JudgeAccuracy]
