"""``mse``: reconstruction quality on the test split (MSE, PSNR, SSIM) in the dataset's value range.

``mse/frame<t>`` is the MSE of frame ``t`` alone (mean over test clips of the frame's per-pixel
squared error), so a method whose reconstructions drift along the sequence shows it; the clip MSE
is their mean. Each test clip is encoded and decoded (``decode(encode(x))``, with the run's fixed generator for
stochastic decoders): the error of what the *factors* carry, the path every swap and sample takes.
``--metric-option mse.path=reconstruct`` scores the method's own reconstruction path (``Method.reconstruct``)
instead; it differs only for methods whose reconstruction uses more than the factors (DiffSDA
inverts the clip to its noise ``x_T`` by the ODE, and ``x_T`` carries appearance), so its rows are a
separate cell and say which path they measured in the option. Per-clip values are averaged; the 95% interval is a percentile bootstrap
over clips. The chance row is the MSE of predicting every clip as the train split's mean clip.
PSNR of a perfect reconstruction is +inf; clips are clamped at 100 dB so the mean stays finite.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqbench.errors import ConfigError
from seqbench.hookspecs import hookimpl
from seqbench.metric import EvalContext, EvalData, Metric, Requirements
from seqbench.types import MetricOutput, MetricValue

DEFAULTS = {"path": "codes"}  # codes: decode(encode(x)) | reconstruct: Method.reconstruct(x)
PATHS = ("codes", "reconstruct")
PSNR_CAP_DB = 100.0


class ReconstructionError(Metric):
    name = "mse"
    version = "2"
    description = "reconstruction MSE / PSNR / SSIM on the test split, and MSE per frame index"
    outputs = (
        MetricOutput("mse", higher_is_better=False, description="mean squared error per pixel", chance_key="chance/mse"),
        MetricOutput("psnr", higher_is_better=True, description="peak signal-to-noise ratio (dB)"),
        MetricOutput("ssim", higher_is_better=True, description="structural similarity (video, >= 11 px)"),
        MetricOutput("mse/frame", higher_is_better=False,
                     description="mse/frame<t>: MSE of frame t only (how reconstruction degrades along the sequence)"),
    )
    requires = Requirements(decode=True)
    option_defaults = DEFAULTS

    def check_options(self) -> None:
        self._options()

    def _options(self) -> dict[str, Any]:
        opts = self.resolved_options()
        if opts["path"] not in PATHS:
            raise ConfigError(f"metric option mse.path={opts['path']!r}: expected one of {', '.join(PATHS)} "
                              "(e.g. --metric-option mse.path=reconstruct)")
        return opts

    def evaluate(self, method, data: EvalData, ctx: EvalContext) -> dict[str, MetricValue]:
        import torch

        from seqbench.functional import bootstrap_ci, mse, psnr, ssim

        opts = self._options()
        lo, hi = data.spec.value_range
        use_ssim = data.spec.modality == "video" and min(data.spec.height, data.spec.width) >= 11
        generator = ctx.generator()
        errors, psnrs, ssims, per_frame = [], [], [], []
        for batch in data.test.iter_batches(ctx.decode_batch_size(data.spec.frames)):
            x = batch.x.to(ctx.device)
            with torch.no_grad():
                if opts["path"] == "reconstruct":
                    x_hat = method.reconstruct(x, generator=generator)
                else:
                    x_hat = method.decode(method.encode(x), generator=generator)
                x_hat = x_hat.float().clamp(lo, hi)
            x_np, x_hat_np = x.cpu().numpy(), x_hat.cpu().numpy()
            errors.append(mse(x_np, x_hat_np))
            b, t = x_np.shape[:2]
            per_frame.append(mse(x_np.reshape(b * t, -1), x_hat_np.reshape(b * t, -1)).reshape(b, t))
            psnrs.append(psnr(x_np, x_hat_np, data_range=hi - lo, max_db=PSNR_CAP_DB))
            if use_ssim:
                ssims.append(ssim(x_np, x_hat_np, data_range=hi - lo))
        out = {}
        for key, parts in (("mse", errors), ("psnr", psnrs), ("ssim", ssims)):
            if parts:
                values = np.concatenate(parts)
                low, high = bootstrap_ci(values, seed=ctx.seed)
                out[key] = MetricValue(float(values.mean()), n=len(values), ci_low=low, ci_high=high)
        frames = np.concatenate(per_frame)
        for t in range(frames.shape[1]):
            low, high = bootstrap_ci(frames[:, t], seed=ctx.seed)
            out[f"mse/frame{t}"] = MetricValue(float(frames[:, t].mean()), n=len(frames), ci_low=low, ci_high=high)
        out["chance/mse"] = MetricValue(self._mean_clip_mse(data), n=len(data.test))
        return out

    @staticmethod
    def _mean_clip_mse(data: EvalData) -> float:
        """MSE of the constant predictor "the train split's mean clip" (a floor any model must beat)."""
        total, count = None, 0
        for batch in data.train.iter_batches(512):
            s = batch.x.double().sum(0)
            total = s if total is None else total + s
            count += len(batch.x)
        mean = (total / max(1, count)).float()
        sq, n = 0.0, 0
        for batch in data.test.iter_batches(512):
            sq += float(((batch.x - mean) ** 2).mean(dim=tuple(range(1, batch.x.dim()))).sum())
            n += len(batch.x)
        return sq / max(1, n)


@hookimpl
def seqbench_add_metrics():
    return [ReconstructionError]
