"""The built-in pictures of every trained model, as an ordinary plugin on ``seqbench_render_visuals``.

Reconstructions, the conditional swap grid, unconditional swaps (methods with ``sample()``),
static and dynamic PCA traversals and zero-shot swaps onto the run's other compatible datasets,
all on the fixed clips of :func:`seqbench.visuals.visual_inputs`, written as PNGs. A picture that
does not apply (no prior to sample) is a log line; one that fails is a warning naming the picture.
Block it with ``-p no:visuals_plugin`` (or ``seqbench run --no-visuals``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from seqbench.hookspecs import hookimpl
from seqbench.log import logger


@hookimpl
def seqbench_render_visuals(run, unit, method, inputs, directory: Path) -> list[Path]:
    from seqbench.visuals import PICTURES, render_pictures, write_pictures

    # Zero-shot swaps only when the run has another dataset of the same shape (else nothing to say).
    what = tuple(name for name in PICTURES if name != "zeroshot" or inputs.zero_shot)
    images, missing = render_pictures(method, inputs, what)
    for name, reason in missing.items():
        level = logging.INFO if reason.startswith("not applicable") else logging.WARNING
        logger.log(level, f"{unit.label}: picture {name} not rendered ({reason})")
    return write_pictures(images, directory, inputs.spec)
