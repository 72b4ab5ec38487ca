"""Figures of a run: learning curves per method overlaid, and the headline metrics with their 95% intervals.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global backend
state), written as PNG beside the markdown leaderboard and logged to the parent MLflow run.

* :func:`learning_curves` - one panel per logged series: the probe curves (``curve/...``: judge swap,
  MSE, leakage on validation clips), the training loss, ``val_loss`` and every ``usage/...`` diagnostic the trainer recorded (``history.json`` beside each cached model), one
  colour per method, one line style per seed.
* :func:`leaderboard_figure` - one panel per headline column of the leaderboard: per method the
  mean over seeds (dot), each seed's value (small marks) and the mean bootstrap 95% interval
  (bar), as ``seqbench leaderboard --ci`` shows them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .log import logger

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["learning_curves", "leaderboard_figure", "load_history", "has_probe_curves", "curve_keys",
           "write_dataset_figures", "swap_grids_figure", "cached_swap_grids", "exported_grid", "exported_grid_path"]

MAX_USAGE_PANELS = 6  # factor-usage diagnostics beyond these are left out of the figure (they stay in MLflow)
LINE_STYLES = ("-", "--", ":", "-.")


def curve_label(method: str, seed: int, model_key: str) -> str:
    """``<method>-seed<k>-<key8>``: how an exported learning curve is named (one place for the convention)."""
    return f"{method}-seed{int(seed)}-{str(model_key)[:8]}"


def exported_history(folder: Path, method: str, seed: int, model_key: str) -> list[dict[str, float]] | None:
    """A model's training history from an exported curve file ``folder/<method>-seed<k>-<key8>.json``
    (``benchmarks/learning_curves.py --export``), or ``None``: the committed copy of what the cache held,
    so a leaderboard's curve figure is redrawn from the repository after the cache is gone."""
    path = Path(folder) / f"{curve_label(method, seed, model_key)}.json"
    if not path.exists():
        return None
    try:
        history = json.loads(path.read_text()).get("history")
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        logger.warning(f"learning curves: {path} is unreadable ({exc}); that model's curve is left out")
        return None
    return history if isinstance(history, list) else None


def load_history(model_dir: Path) -> list[dict[str, float]] | None:
    """The training history beside a cached model (``history.json``), or ``None`` if it has none."""
    from .runner import HISTORY_FILE

    path = Path(model_dir) / HISTORY_FILE
    if not path.exists():
        return None
    try:
        history = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        logger.warning(f"learning curves: {path} is unreadable ({exc}); that model's curve is left out")
        return None
    return history if isinstance(history, list) else None


def has_probe_curves(history: list[dict[str, float]] | None) -> bool:
    """Whether a training history holds learning-curve points (``curve/...``): one trained with ``--probes
    none`` (e.g. only to draw its swap grid again) has the loss alone, and must not hide an exported curve."""
    return bool(history) and any(key.startswith("curve/") for entry in history for key in entry)


#: The probe curves (seqbench.probes) drawn first, when present: what the leaderboard reports, over training.
PROBE_PANELS = ("curve/swap/mean", "curve/swap/static", "curve/swap/dynamic", "curve/mse", "curve/leak/s_to_d",
                "curve/leak/d_to_s")


def curve_keys(histories: dict[str, list[dict[str, float]]]) -> list[str]:
    """The panels: the probe curves (``curve/...``), training ``loss``, ``val_loss``, then the ``usage/...``
    keys (at most ``MAX_USAGE_PANELS``)."""
    present = {key for history in histories.values() for entry in history for key in entry}
    usage = sorted(key for key in present if key.startswith("usage/"))[:MAX_USAGE_PANELS]
    return ([key for key in PROBE_PANELS if key in present] + [key for key in ("loss", "val_loss") if key in present]
            + usage)


def _save(figure: Any, path: Path, *, dpi: int) -> None:
    """Write ``figure`` as a palette PNG: a committed figure stays small (a few hundred kB) and a
    256-colour adaptive palette is lossless for these plots and pixel-art frames to the eye."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=dpi, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def _method_of(label: str) -> str:
    return label.split("/", 1)[0]


def _grid(panels: int, columns: int = 3) -> tuple[int, int]:
    columns = max(1, min(columns, panels))
    return math.ceil(panels / columns), columns


def learning_curves(histories: dict[str, list[dict[str, float]]], path: Path | str, *, title: str = "") -> Path:
    """Overlay the curves of ``histories`` (``{"method/seed0": [{"step": 4, "loss": ...}, ...]}``) as a PNG."""
    from matplotlib.figure import Figure

    keys = curve_keys(histories)
    if not keys:
        raise ValueError("no training history holds loss, val_loss or usage/... values to plot")
    methods = sorted({_method_of(label) for label in histories})
    colours = {method: f"C{k % 10}" for k, method in enumerate(methods)}
    rows, columns = _grid(len(keys))
    figure = Figure(figsize=(4.2 * columns, 3.0 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        for k, (label, history) in enumerate(sorted(histories.items())):
            points = [(entry["step"], entry[key]) for entry in history
                      if key in entry and entry[key] is not None and math.isfinite(entry[key])]
            if not points:
                continue
            steps, values = zip(*points)
            seed_rank = sorted(l for l in histories if _method_of(l) == _method_of(label)).index(label)
            ax.plot(steps, values, color=colours[_method_of(label)], linestyle=LINE_STYLES[seed_rank % 4],
                    marker="." if len(points) < 20 else None, label=label)
        ax.set_title("train loss" if key == "loss" else key, fontsize=10)
        ax.set_xlabel("step")
        if key in ("loss", "val_loss", "curve/mse") and all(v > 0 for line in ax.get_lines() for v in line.get_ydata()):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize=8)
    if title:
        figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(figure, path, dpi=100)
    return path


def leaderboard_figure(frame: "pd.DataFrame", dataset: str, path: Path | str, *,
                       headlines: dict[str, set[str]] | None = None, profile: str | None = None) -> Path | None:
    """The leaderboard's headline columns as dot plots with 95% intervals; ``None`` if nothing is comparable."""
    from matplotlib.figure import Figure

    from .leaderboard import CEILING, CHANCE, _column_name, results_frame, select_rows

    data = select_rows(results_frame(frame), dataset, profile)
    if data.empty:
        return None
    data = data[~(data["key"].str.startswith(CHANCE) | data["key"].str.startswith(CEILING))]
    if headlines is not None:
        data = data[[key in headlines.get(metric, {key}) for metric, key in zip(data["metric"], data["key"])]]
    if data.empty:
        return None
    data = data.assign(column=[_column_name(k, b if isinstance(b, str) else None)
                               for k, b in zip(data["key"], data["backend"])])
    columns = list(dict.fromkeys(data["column"]))
    methods = sorted(data["method"].unique())
    rows, ncols = _grid(len(columns), 4)
    figure = Figure(figsize=(3.6 * ncols, 0.5 + (0.45 * len(methods) + 1.0) * rows), layout="constrained")
    axes = figure.subplots(rows, ncols, squeeze=False).ravel()
    for ax, column in zip(axes, columns):
        subset = data[data["column"] == column]
        higher = bool(subset["higher_is_better"].iloc[0])
        for y, method in enumerate(methods):
            own = subset[subset["method"] == method]
            if own.empty:
                continue
            values = own["value"].astype(float)
            low, high = own["ci_low"].astype(float).mean(), own["ci_high"].astype(float).mean()
            colour = f"C{y % 10}"
            if not (math.isnan(low) or math.isnan(high)):
                ax.plot([low, high], [y, y], color=colour, linewidth=3, alpha=0.45, solid_capstyle="butt")
            ax.plot(values, [y] * len(values), "|", color=colour, markersize=9)
            ax.plot([values.mean()], [y], "o", color=colour)
        ax.set_yticks(range(len(methods)), methods)
        ax.set_ylim(-0.6, len(methods) - 0.4)
        ax.invert_yaxis()
        ax.set_title(f"{column} {'↑' if higher else '↓'}", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    figure.suptitle(f"{dataset}: mean over seeds (dot), seeds (|), mean bootstrap 95% interval (bar)", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(figure, path, dpi=100)
    return path


def swap_grids_figure(grids: dict[str, np.ndarray], path: Path | str, *, title: str = "") -> Path:
    """Each method's swap grid (:func:`seqbench.visuals.swap_grid` on the same fixed clips) side by side."""
    from matplotlib.figure import Figure

    if not grids:
        raise ValueError("no swap grid to draw")
    names = sorted(grids)
    height, width = next(iter(grids.values())).shape[:2]
    # one grid per row: a video grid is a strip of whole clips (frames side by side), far wider than tall;
    # a spectrogram grid is taller than wide, so its width shrinks to keep each grid ~4 inches tall
    grid_width = max(6.0, min(11.0, 4.0 * width / height))
    figure = Figure(figsize=(grid_width, len(names) * (grid_width * height / width + 0.3) + 0.5),
                    layout="constrained")
    axes = figure.subplots(len(names), 1, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        ax.imshow(grids[name], interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(names):]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(figure, path, dpi=110)
    return path


def exported_grid_path(folder: Path | str, method: str, seed: int, model_key: str) -> Path:
    """``folder/<method>-seed<k>-<key8>.png``: where a model's swap grid is exported (named like its curve)."""
    return Path(folder) / f"{curve_label(method, seed, model_key)}.png"


def exported_grid(path: Path | str) -> np.ndarray | None:
    """The swap grid exported at ``path``, or ``None`` when there is none (an unreadable file is a warning)."""
    from PIL import Image

    path = Path(path)
    if not path.exists():
        return None
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as exc:
        logger.warning(f"swap grids: {path} is unreadable ({exc}); export it again from a cache holding the model")
        return None


def cached_swap_grids(frame: "pd.DataFrame", dataset: str, *, profile: str | None = None,
                      plugins: list[str] | None = None,
                      dataset_options: dict[str, dict[str, Any]] | None = None,
                      grids_dir: Path | str | None = None) -> dict[str, np.ndarray]:
    """Per method of the leaderboard, the swap grid of the cached model (the one the rows name) of its lowest
    seed whose model this cache holds - or, with ``grids_dir``, whose grid is exported there.

    With ``grids_dir`` (``seqbench leaderboard --grids DIR``, the dataset's folder of it) every grid drawn
    from a cached model is also written there (:func:`exported_grid_path`, keyed by the model the rows
    name), and a seed whose model the cache no longer holds is read from its exported grid: the committed
    copy of what a cache drew, so a board's swap figure is regenerable from the repository alone, as its
    curve figure is from the exported curves.

    Drawn on the run's fixed visual clips (:func:`seqbench.visuals.visual_inputs`), so every method
    swaps the same clips. The weights are those the rows name: when this code builds another
    ``model_key`` only because the method's source changed (same config hash and method version - a
    refactor never bumps the version), the rows' model is drawn with a note; a method whose model is
    not in this cache, or whose config or version differ, is left out with a warning.
    """
    from .leaderboard import results_frame, select_rows
    from .runner import RunOptions, Runner
    from .visuals import render_pictures, save_png

    rows = select_rows(results_frame(frame), dataset, profile)
    grids: dict[str, np.ndarray] = {}
    if rows.empty:
        return grids
    runner = None
    for method, own in rows.groupby("method"):
        profile_used = str(own["profile"].iloc[0])
        if runner is None or runner.options.profile != profile_used:
            runner = Runner(RunOptions(methods=[], datasets=[dataset], profile=profile_used, progress=False,
                                       plugins=list(plugins or []), dataset_options=dict(dataset_options or {})))
        import torch

        model, unavailable, export = None, [], None
        for seed in sorted(int(s) for s in own["seed"].unique()):
            named = str(own.loc[own["seed"] == seed, "model_key"].iloc[0])
            export = exported_grid_path(grids_dir, method, seed, named) if grids_dir is not None else None
            try:
                unit, note = runner.unit_for_rows(dataset, method, own, seed)
                model = runner.load_cached_model(unit, torch.device("cpu"))
            except Exception as exc:
                unit, note, model = None, "", None
                unavailable.append(f"seed {seed}: {type(exc).__name__}: {exc}")
            if model is not None:
                logger.info(f"{dataset}/{method}: swap grid of seed {seed}" + (f", {note}" if note else ""))
                break
            if unit is not None:
                unavailable.append(f"seed {seed}: model {unit.model_key} is not in this cache")
            grid = exported_grid(export) if export is not None else None
            if grid is not None:
                logger.info(f"{dataset}/{method}: swap grid of seed {seed} from {export} (the model is not cached)")
                grids[method] = grid
                break
        if method in grids:
            continue
        if model is None:
            logger.warning(f"{dataset}/{method}: no swap grid: " + "; ".join(unavailable)
                           + ("" if grids_dir is None else f"; no exported grid in {grids_dir}"))
            continue
        images, missing = render_pictures(model, runner.visual_inputs(dataset), ("swaps",))
        if "swaps" in images:
            grids[method] = images["swaps"]
            if export is not None:
                # a lossless PNG of the uint8 grid: reading it back gives the same pixels
                logger.info(f"{dataset}/{method}: exported its swap grid to {save_png(images['swaps'], export)}")
        else:
            logger.warning(f"{dataset}/{method}: no swap grid: {missing.get('swaps')}")
    return grids


def write_dataset_figures(frame: "pd.DataFrame", directory: Path | str, *, datasets: list[str] | None = None,
                          headlines: dict[str, set[str]] | None = None, profile: str | None = None,
                          swaps: bool = False, plugins: list[str] | None = None,
                          dataset_options: dict[str, dict[str, Any]] | None = None,
                          curves: Path | str | None = None, grids: Path | str | None = None) -> list[Path]:
    """``<dataset>-metrics.png``, ``<dataset>-curves.png`` and (``swaps``) ``<dataset>-swaps.png`` for each
    dataset of ``frame`` into ``directory``.

    The curves come from the ``history.json`` beside each cached model the leaderboard's rows name
    (their ``model_key``), else - or when the cached one has no probe curves - from the exported copy under
    ``curves/<dataset>/`` (:func:`exported_history`);
    models trained before histories were kept have no curve. A swap grid needs the cached model, else (with
    ``grids``) its exported copy under ``grids/<dataset>/`` (:func:`cached_swap_grids`, which also exports
    every grid it draws there with :func:`seqbench.visuals.save_png`); the figure's title names the methods
    it leaves out. A figure that cannot be drawn is a warning.
    """
    from .leaderboard import results_frame, select_rows
    from .runner import cached_model_dir

    frame = results_frame(frame)
    written: list[Path] = []
    for dataset in datasets or sorted(frame["dataset"].dropna().unique()):
        try:
            path = leaderboard_figure(frame, dataset, Path(directory) / f"{dataset}-metrics.png",
                                      headlines=headlines, profile=profile)
        except Exception as exc:  # a figure is never worth the leaderboard
            logger.warning(f"{dataset}: metrics figure not drawn: {type(exc).__name__}: {exc}")
            path = None
        if path:
            written.append(path)
        histories: dict[str, list[dict[str, Any]]] = {}
        try:
            rows = select_rows(frame, dataset, profile)
        except Exception:
            rows = frame.iloc[0:0]
        for (method, seed, key), _ in rows.groupby(["method", "seed", "model_key"]):
            history = load_history(cached_model_dir(method, key))
            if curves is not None and not has_probe_curves(history):  # e.g. retrained with --probes none
                history = exported_history(Path(curves) / dataset, method, seed, key) or history
            if history:
                histories[f"{method}/seed{int(seed)}"] = history
        if swaps:
            try:
                drawn = cached_swap_grids(frame, dataset, profile=profile, plugins=plugins,
                                          dataset_options=dataset_options,
                                          grids_dir=None if grids is None else Path(grids) / dataset)
                left_out = sorted(set(rows["method"].unique()) - set(drawn))
                if drawn:
                    written.append(swap_grids_figure(drawn, Path(directory) / f"{dataset}-swaps.png", title=(
                        f"{dataset}: swaps on the same test clips\nrow: static donor, column: dynamics donor, "
                        "real clips on the margins"
                        + (f"\nnot drawn (model neither in the cache that drew this nor exported): "
                           f"{', '.join(left_out)}"
                           if left_out else ""))))
            except Exception as exc:
                logger.warning(f"{dataset}: swap grids not drawn: {type(exc).__name__}: {exc}")
        if not histories:
            continue
        try:
            written.append(learning_curves(histories, Path(directory) / f"{dataset}-curves.png",
                                           title=f"{dataset}: learning curves"))
        except Exception as exc:
            logger.warning(f"{dataset}: learning curves not drawn: {type(exc).__name__}: {exc}")
    return written
