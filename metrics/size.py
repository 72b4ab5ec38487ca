"""``size``: how large a model is and how much its factors compress a clip.

Reported beside the quality metrics because the comparisons depend on it: a factor that is a
tenth of the clip's size cannot leak what a factor the size of the clip can, and the VidTwin paper
quotes its compression rate as a headline figure.

* ``params_M``: parameters of the method (every module it owns, trained or frozen), in millions.
* ``compression``: values in the factors of one clip over values in the clip,
  ``(|s| + T |d_t|) / (T C H W)`` - VidTwin's "latent size / input size".
* ``static_dim`` and ``dynamic_dim`` (per frame), read from ``encode`` of test clips.
* ``bits_per_frame``: for methods whose dynamic factor is quantized and that declare their bitrate
  (a ``bits_per_frame`` attribute, e.g. BCD's ``groups x log2(codebook size)``).

Deterministic and cheap (one encoded batch); the values do not depend on the seed.
"""

from __future__ import annotations

import numpy as np

from seqbench.hookspecs import hookimpl
from seqbench.metric import EvalContext, EvalData, Metric
from seqbench.types import MetricOutput, MetricValue


class ModelSize(Metric):
    name = "size"
    version = "1"
    description = "parameters, factor sizes and compression rate (factor values / clip values), bitrate"
    outputs = (
        MetricOutput("params_M", higher_is_better=False, description="parameters (millions)"),
        MetricOutput("compression", higher_is_better=False,
                     description="factor values per clip / input values per clip (VidTwin's compression rate)"),
        MetricOutput("bits_per_frame", higher_is_better=False,
                     description="bitrate of a quantized dynamic factor (methods that declare one)"),
        MetricOutput("static_dim", higher_is_better=False, description="static factor size", headline=False),
        MetricOutput("dynamic_dim", higher_is_better=False, description="dynamic factor size per frame",
                     headline=False),
    )

    def evaluate(self, method, data: EvalData, ctx: EvalContext) -> dict[str, MetricValue]:
        import torch

        test = data.test
        x = test.clips(np.arange(min(len(test), ctx.batch_size, 8))).to(ctx.device)
        with torch.no_grad():
            factors = method.encode(x)
        clips, frames = x.shape[:2]
        static_dim = factors.static[0].numel()
        dynamic_dim = factors.dynamic[0, 0].numel()
        if factors.dynamic.shape[1] != frames:
            raise ValueError(f"{getattr(method, 'name', type(method).__name__)}.encode returned "
                             f"{factors.dynamic.shape[1]} dynamic steps for {frames}-frame clips")
        clip_values = x[0].numel()
        out = {
            "params_M": MetricValue(sum(p.numel() for p in method.parameters()) / 1e6, n=1),
            "compression": MetricValue((static_dim + frames * dynamic_dim) / clip_values, n=clips),
            "static_dim": MetricValue(float(static_dim), n=clips),
            "dynamic_dim": MetricValue(float(dynamic_dim), n=clips),
        }
        bits = getattr(method, "bits_per_frame", None)
        if bits is not None:
            out["bits_per_frame"] = MetricValue(float(bits), n=1)
        else:
            ctx.not_applicable["bits_per_frame"] = "the method does not quantize its dynamic factor"
        return out


@hookimpl
def seqbench_add_metrics():
    return [ModelSize]
