"""Markdown leaderboards from long-format results, one per dataset, with provenance.

Rows are methods, columns are metric keys with an arrow for the better direction, cells are
mean +/- std over seeds with the best in bold. Keys a metric emits as ``chance/<key>`` and
``ceiling/<key>`` become the chance and judge-ceiling rows. Results made with ``--limit`` are
left out, and mixing metric, method, dataset or seqbench versions (or profiles) is refused:
such numbers are not comparable (cf. mteb #5228).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SeqbenchError
from .results import OK, REPORTED
from .utils import atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

CHANCE, CEILING = "chance/", "ceiling/"


class MixedVersionsError(SeqbenchError):
    pass


def results_frame(rows: "list[dict[str, Any]] | pd.DataFrame") -> "pd.DataFrame":
    """Result rows (dicts, or a frame from :func:`~seqbench.results.load_results`) as a frame with every
    column a leaderboard reads, missing ones empty; a frame given is copied, never changed."""
    import pandas as pd

    from .results import COLUMNS

    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    return frame


def natural_key(text: str) -> list:
    """Sort key that orders embedded numbers by value: ``frame2`` before ``frame10``."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def format_value(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-3 or magnitude >= 1e5):
        return f"{value:.3e}"
    return f"{value:.4g}" if magnitude >= 1 else f"{value:.4f}"


def _column_name(key: str, backend: str | None) -> str:
    return f"{key} [{_backend_model(backend)}]" if backend else key


def select_rows(frame: "pd.DataFrame", dataset: str, profile: str | None = None) -> "pd.DataFrame":
    """Comparable rows of ``dataset``: ok status, no ``--limit``, newest per (method, seed, metric key)."""
    data = frame[(frame["dataset"] == dataset) & (frame["status"] == OK)]
    data = data[data["limit"].isna()]
    if profile:
        data = data[data["profile"] == profile]
    if data.empty:
        return data
    data = data.sort_values("timestamp").drop_duplicates(["method", "seed", "metric", "key", "backend"], keep="last")
    checks = [("profile", ["dataset"]), ("dataset_fingerprint", ["dataset"]), ("eval_clips", ["dataset"]),
              ("seqbench_version", ["dataset"]),
              ("metric_version", ["metric"]), ("method_version", ["method"])]
    for column, by in checks:
        groups = data.groupby(by)[column].nunique(dropna=False)
        mixed = groups[groups > 1]
        if len(mixed):
            name = mixed.index[0]
            values = sorted(map(str, data[data[by[0]] == name][column].unique()))
            hint = {"profile": " Pass --profile to pick one.",
                    "eval_clips": " Re-run with the same --eval-clips, or point --from at one setting's results."}.get(
                column, " Re-run the older results with the current version, or point --from at one version's results.")
            raise MixedVersionsError(f"refusing to mix {column} values {', '.join(values)} for {by[0]} {name!r} "
                                     f"in the {dataset} leaderboard: the numbers are not comparable.{hint}")
    backends = data["backend"].dropna()
    backends = backends[backends.map(lambda b: isinstance(b, str))]
    weights = backends.groupby(backends.map(_backend_model)).unique()
    for model, names in weights.items():
        if len(names) > 1:
            raise MixedVersionsError(
                f"refusing to mix evaluation models {', '.join(sorted(names))} in the {dataset} leaderboard: the same "
                f"{model} key with different weights (trained on another machine or thread count, or before weights "
                "were recorded) scores generated clips differently (docs/findings.md). Evaluate every method with one "
                "copy of the model (share SEQBENCH_CACHE), or point --from at one model's results.")
    return data


def _backend_model(backend: str) -> str:
    """``judge-ba3c03e2@1f2e3d4c`` -> ``judge-ba3c03e2``: the model's key without its weights digest."""
    return backend.split("@", 1)[0]


def headline_keys(plugins: Any) -> dict[str, set[str]]:
    """Metric name -> the keys its declaration marks ``headline`` (the summary table's columns)."""
    keys: dict[str, set[str]] = {}
    for name in plugins.metrics.names():
        metric = plugins.metrics.get(name)
        keys[name] = {out.key for out in getattr(metric, "outputs", ()) if getattr(out, "headline", True)}
    return keys


# A detail table wider than this is split by the keys' parent path (swap/..., sample/fixed_static/...).
_MAX_DETAIL_COLUMNS = 10


def _table(scores: "pd.DataFrame", extras: "pd.DataFrame", columns: list[str], methods: list[str],
           *, labels: dict[str, str] | None = None, show_ci: bool = False) -> str:
    """Methods x ``columns`` as a pipe table: mean ± std over seeds, best in bold, ceiling/chance rows."""
    from tabulate import tabulate

    labels = labels or {}
    direction = {c: bool(scores[scores["column"] == c]["higher_is_better"].iloc[0]) for c in columns}
    subset = scores[scores["column"].isin(columns)]
    stats = subset.groupby(["method", "column"])["value"].agg(["mean", "std", "count"])
    ci = subset.groupby(["method", "column"])[["ci_low", "ci_high"]].mean()
    best = {}
    for column in columns:
        means = {m: stats.loc[(m, column), "mean"] for m in methods if (m, column) in stats.index}
        finite = {m: v for m, v in means.items() if v is not None and not math.isnan(v)}
        if finite:
            best[column] = (max if direction[column] else min)(finite.values())
    table = []
    for method in methods:
        seeds = scores[scores["method"] == method]["seed"].nunique()
        line = [f"{method} ({seeds} seed{'s' if seeds != 1 else ''}){plateau_mark(scores, method)}"]
        for column in columns:
            if (method, column) not in stats.index:
                line.append("-")
                continue
            mean, std, count = stats.loc[(method, column)]
            text = format_value(mean)
            if count > 1 and not math.isnan(std):
                text += f" ± {format_value(std)}"
            if count < seeds:  # e.g. a key a newer metric version added: say how many seeds it averages
                text += f" ({int(count)} of {seeds} seeds)"
            if show_ci and (method, column) in ci.index and not math.isnan(ci.loc[(method, column), "ci_low"] or math.nan):
                text += f" [{format_value(ci.loc[(method, column), 'ci_low'])}, {format_value(ci.loc[(method, column), 'ci_high'])}]"
            if column in best and mean == best[column] and len(methods) > 1:
                text = f"**{text}**"
            line.append(text)
        table.append(line)
    for prefix, label in ((CEILING, "judge ceiling"), (CHANCE, "chance")):
        rows = extras[extras["key"].str.startswith(prefix)]
        if rows.empty:
            continue
        values = rows.assign(target=[_column_name(k[len(prefix):], b if isinstance(b, str) else None)
                                     for k, b in zip(rows["key"], rows["backend"])]).groupby("target")["value"].mean()
        if any(c in values.index for c in columns):
            table.append([f"*{label}*"] + [f"*{format_value(values[c])}*" if c in values.index else "" for c in columns])
    headers = ["method"] + [f"{labels.get(c, c)} {'↑' if direction[c] else '↓'}" for c in columns]
    return tabulate(table, headers=headers, tablefmt="pipe", disable_numparse=True)


NOT_CONVERGED_MARK = "†"
UNSTABLE_MARK = "§"
NO_CURVE_MARK = "?"
DECAYED_LR_MARK = "‡"


def plateau_mark(scores: "pd.DataFrame", method: str) -> str:
    """`` †`` when a seed's model was not on its plateau, `` §`` when every such seed's training loss spiked
    in its last quarter (unstable, not still learning: :func:`seqbench.probes.late_loss_spikes`), `` ?``
    when a seed has no learning curve, `` ‡`` when every seed is on a plateau but one reached it while its
    learning rate decayed to near zero (:data:`seqbench.probes.DECAYED_LR_SCALE`), else ``""``."""
    from .probes import DECAYED_LR_SCALE

    if "converged" not in scores:
        return f" {NO_CURVE_MARK}"
    rows = scores[scores["method"] == method]
    flags = rows.groupby("seed")["converged"].first()
    off = [seed for seed, flag in flags.items() if flag is not None and flag == flag and (flag is False or flag == 0)]
    if off:
        spikes = rows.groupby("seed")["late_loss_spikes"].first() if "late_loss_spikes" in rows else {}
        unstable = all((count := spikes.get(seed)) is not None and count == count and count > 0 for seed in off)
        return f" {UNSTABLE_MARK if unstable else NOT_CONVERGED_MARK}"
    if any(flag is None or flag != flag for flag in flags):
        return f" {NO_CURVE_MARK}"
    if "plateau_lr_scale" in rows:
        scales = rows.groupby("seed")["plateau_lr_scale"].first()
        if any(scale == scale and scale is not None and scale < DECAYED_LR_SCALE for scale in scales):
            return f" {DECAYED_LR_MARK}"
    return ""


def _plateau_note(scores: "pd.DataFrame") -> str:
    """The footnote explaining the marks :func:`plateau_mark` put on this board's rows."""
    from .probes import PLATEAU_THRESHOLD

    marks = {plateau_mark(scores, m).strip() for m in scores["method"].unique()} - {""}
    notes = []
    if NOT_CONVERGED_MARK in marks:
        notes.append(f"{NOT_CONVERGED_MARK} a seed's model was not on its plateau: its headline learning curve "
                     f"(judge swap mean, else MSE) changed by {PLATEAU_THRESHOLD:.0%} or more over the last quarter "
                     "of training (seqbench.probes)")
    if UNSTABLE_MARK in marks:
        notes.append(f"{UNSTABLE_MARK} a seed's model was not on its plateau because training was unstable: its "
                     "training loss spiked in the last quarter (seqbench.probes.loss_spikes) and knocked the learning "
                     "curve down, so more steps of the same schedule are not the fix")
    if DECAYED_LR_MARK in marks:
        from .probes import DECAYED_LR_SCALE

        notes.append(f"{DECAYED_LR_MARK} on a plateau reached while the learning rate decayed (the last quarter "
                     f"ran below {DECAYED_LR_SCALE:.0%} of the peak rate on average): the flat curve may be the "
                     "schedule's end rather than the model's plateau; a longer schedule is the test (docs/protocol.md)")
    if NO_CURVE_MARK in marks:
        notes.append(f"{NO_CURVE_MARK} a seed's model has no learning curve to tell whether it had converged "
                     "(fewer than 3 validation points in the last quarter of training, --probes none, or trained before "
                     "probes existed)")
    return "; ".join(notes) + "." if notes else ""


#: The figures a leaderboard embeds when they exist (``seqbench leaderboard --figures DIR``), in this order.
FIGURES = (("swaps", "Swap grids: each method's lowest seed whose model is cached or whose grid was exported "
                    "(seqbench leaderboard --grids), on the same fixed test clips"),
           ("metrics", "Headline metrics: mean over seeds, each seed, and the mean bootstrap 95% interval"),
           ("curves", "Learning curves: the probes on validation clips over training"))


def figure_links(dataset: str, figures_dir: Path | None, board_dir: Path | None) -> list[tuple[str, str]]:
    """``(caption, relative path)`` of ``<figures_dir>/<dataset>-<name>.png`` files that exist."""
    import os

    if figures_dir is None:
        return []
    links = []
    for name, caption in FIGURES:
        path = Path(figures_dir) / f"{dataset}-{name}.png"
        if path.exists():
            links.append((caption, Path(os.path.relpath(path, board_dir or Path.cwd())).as_posix()))
    return links


def render_dataset(frame: "pd.DataFrame", dataset: str, *, metric_order: list[str] | None = None,
                   show_ci: bool = False, profile: str | None = None,
                   headlines: dict[str, set[str]] | None = None,
                   figures: list[tuple[str, str]] | None = None) -> str:
    """One dataset's leaderboard as markdown (tabulate ``pipe`` format) with a provenance footer.

    With ``headlines`` (see :func:`headline_keys`) a summary table holds each metric's headline
    keys and every other key (per head, per frame, failure rates) goes into the metric's own detail
    section, so no table grows beyond a screen; without it, one table holds every key.
    """
    data = select_rows(frame, dataset, profile)
    reported = reported_section(frame, dataset)
    if data.empty:
        return "\n\n".join(p for p in (f"# {dataset}", "No comparable results (runs made with --limit are left out).",
                                        reported) if p) + "\n"
    data = data.assign(column=[_column_name(k, b if isinstance(b, str) else None)
                               for k, b in zip(data["key"], data["backend"])])
    special = data["key"].str.startswith(CHANCE) | data["key"].str.startswith(CEILING)
    scores, extras = data[~special], data[special]
    metric_rank = {m: i for i, m in enumerate(metric_order or [])}
    metric_of = dict(zip(scores["column"], scores["metric"]))
    key_of = dict(zip(scores["column"], scores["key"]))
    backend_of = dict(zip(scores["column"], scores["backend"]))
    columns = sorted(metric_of, key=lambda c: (metric_rank.get(metric_of[c], 99), metric_of[c], natural_key(c)))
    methods = sorted(scores["method"].unique())
    note = _plateau_note(scores)
    if headlines is None:
        body = _table(scores, extras, columns, methods, show_ci=show_ci) + (f"\n\n{note}" if note else "")
        body += f"\n\n{reported}" if reported else ""
        return f"# {dataset}\n\n{body}\n\n{_footer(data)}\n"
    summary = [c for c in columns if key_of[c] in headlines.get(metric_of[c], {key_of[c]})]
    parts = [f"# {dataset}", _table(scores, extras, summary, methods, show_ci=show_ci) if summary else "", note,
             reported]
    for caption, link in figures or []:
        parts.append(f"![{caption}]({link})\n\n*{caption}.*")
    details = [c for c in columns if c not in summary]
    for metric in dict.fromkeys(metric_of[c] for c in details):
        own = [c for c in details if metric_of[c] == metric]
        groups: dict[str, list[str]] = {"": own}
        if len(own) > _MAX_DETAIL_COLUMNS:
            groups = {}
            for c in own:
                groups.setdefault(key_of[c].rpartition("/")[0], []).append(c)
        for group, group_columns in groups.items():
            backends = sorted({_backend_model(b) for b in (backend_of[c] for c in group_columns) if isinstance(b, str)})
            title = f"## {metric}" + (f": {group}" if group else "") + (f" [{', '.join(backends)}]" if backends else "")
            labels = {c: key_of[c][len(group) + 1:] if group else key_of[c] for c in group_columns}
            parts += [title, _table(scores, extras, group_columns, methods, labels=labels, show_ci=show_ci)]
    parts.append(_footer(data))
    return "\n\n".join(p for p in parts if p) + "\n"


REPORTED_TITLE = "## Reported by the papers (*paper-reported*: not measured by seqbench, not ranked)"


def reported_section(frame: "pd.DataFrame", dataset: str) -> str:
    """The reference rows (``paper-reported.jsonl``, status ``reported``) of ``dataset`` as their own
    section: each figure as its paper prints it, with the protocol and the citation, never ranked."""
    from tabulate import tabulate

    rows = frame[(frame["dataset"] == dataset) & (frame["status"] == REPORTED)]
    if rows.empty:
        return ""
    table = [[f"*{r.method}*", r.key, f"{format_value(r.value)} {'↑' if r.higher_is_better else '↓'}", r.protocol,
              r.source] for r in rows.itertuples()]
    intro = ("Each method's own figures as its paper prints them (percentages as printed), under the paper's "
             "protocol, frame size, training length and judge. The rows above are measured by seqbench under its "
             "own protocol and judge, so a difference between the two says how far that setting is from the "
             "paper's, not which method is better.")
    return f"{REPORTED_TITLE}\n\n{intro}\n\n" + tabulate(
        table, headers=["method", "figure", "value", "protocol", "source"], tablefmt="pipe", disable_numparse=True)


def _footer(data: "pd.DataFrame") -> str:
    def values(column: str) -> str:
        return ", ".join(sorted({str(v) for v in data[column].dropna().unique()})) or "-"

    seeds = ", ".join(str(s) for s in sorted(data["seed"].dropna().unique()))
    dates = sorted(data["timestamp"].dropna())
    span = f"{dates[0][:10]} .. {dates[-1][:10]}" if dates else "-"
    versions = "; ".join(f"{m} v{v}" for m, v in sorted(data.groupby("metric")["metric_version"].first().items()))
    clips = sorted({int(v) for v in data["eval_clips"].dropna().unique()})
    weighed = sorted({b for b in data["backend"].dropna().unique() if isinstance(b, str) and "@" in b})
    subset = (f", test clips: a fixed seeded subset of {clips[0]}" if clips else ", test clips: the whole split")
    distributions = sorted({str(v) for column in ("method_distribution", "metric_distribution") if column in data
                            for v in data[column].dropna().unique()})
    return ("<sub>Provenance: seqbench " + values("seqbench_version") + ", git sha " + values("git_sha") +
            ", profile " + values("profile") + ", seeds " + seeds + ", dates " + span + ", device " +
            values("device") + ", dataset fingerprint " + values("dataset_fingerprint") + subset + ", metric versions " +
            versions + (", evaluation model weights " + ", ".join(weighed) if weighed else "") +
            (", plugin distributions " + ", ".join(distributions) if distributions else "") + ", runs " +
            values("run_id") + ". Mean ± std over seeds; best in bold; "
            "runs made with --limit are excluded.</sub>")


def write_leaderboards(rows, directory: Path, *, datasets: list[str] | None = None, plugins=None,
                       show_ci: bool = False, profile: str | None = None, figures_dir: Path | None = None) -> list[Path]:
    """Render every dataset present in ``rows`` into ``directory/<dataset>.md``; returns the paths.

    ``plugins`` (the loaded registry) supplies each metric's headline keys for the summary table.
    """
    frame = results_frame(rows)
    written = []
    metric_order = list(dict.fromkeys(frame["metric"].dropna()))
    headlines = headline_keys(plugins) if plugins is not None else None
    for dataset in datasets or sorted(frame["dataset"].dropna().unique()):
        text = render_dataset(frame, dataset, metric_order=metric_order, show_ci=show_ci, profile=profile,
                              headlines=headlines, figures=figure_links(dataset, figures_dir, Path(directory)))
        path = Path(directory) / f"{dataset}.md"
        atomic_write_text(path, text)
        written.append(path)
    return written
