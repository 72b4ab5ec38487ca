"""Summarise a learning-rate screen (``cdsvae_lr_screen.sh``): per run, its plateau test and loss spikes.

    python benchmarks/device/summarise_screen.py DIR        # DIR: the unpacked screen.tgz

Per run: dataset, seed, lr, the last trained step, the headline probe's final value and last-quarter change,
``converged``, every training-loss spike (:func:`seqbench.probes.loss_spikes`) with the loss term that grew most
at it, and the final judge swap accuracies where evaluation finished. A run cut before its end has no
meta.json; it is matched to its job by the training losses its log printed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

JOB_NAME = re.compile(r"^(?P<dataset>syn|spr)-lr(?P<lr>.+)-s(?P<seed>\d+)$")  # the screen script's job names
DATASETS = {"syn": "synthetic-sprites", "spr": "sprites"}
LOG_LINE = re.compile(r"\] (?P<dataset>[\w-]+)/(?P<method>[\w-]+)/seed(?P<seed>\d+): training: step (?P<step>\d+)/\d+, loss (?P<loss>[\d.e+-]+)")


def _job_of(history: list[dict], logs: dict[str, list[tuple[int, float]]]) -> str | None:
    """The job whose log printed this history's training losses (to 3 significant digits)."""
    losses = {int(e["step"]): float(e["loss"]) for e in history if "loss" in e}
    for job, printed in logs.items():
        common = [(s, v) for s, v in printed if s in losses]
        if common and all(abs(losses[s] - v) <= 0.0051 * max(abs(v), 1.0) for s, v in common[:5]):
            return job
    return None


def main(root: Path) -> None:
    here = Path(__file__).resolve()
    sys.path[:0] = [str(here.parents[2]), str(here.parents[1])]  # seqbench, and the curves benchmark beside
    from learning_curves import format_spikes

    from seqbench.probes import summarise_history

    logs = {}
    for log in sorted(root.glob("*.log")):
        printed = [(int(m["step"]), float(m["loss"])) for m in LOG_LINE.finditer(log.read_text())]
        if printed:
            logs[log.stem] = printed
    print("| job | dataset | seed | lr | last step | headline final | last-quarter change | converged | loss spikes (step:ratio(term)) | swap static / dynamic |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for folder in sorted(root.glob("models/cdsvae-*")):
        path = folder / "history.json"
        path = path if path.exists() else folder / "history.partial.json"
        if not path.exists():
            continue
        history = json.loads(path.read_text())
        job = _job_of(history, logs)
        if job is None or history[-1]["step"] < 1000:
            continue  # the smoke runs
        summary = summarise_history(history)
        spikes = format_spikes(history, summary["loss_spikes"])
        swap = ""
        results = root / job / "results.jsonl"
        if results.exists():
            rows = {r["key"]: r["value"] for r in map(json.loads, results.read_text().splitlines()) if r["status"] == "ok"}
            if "swap/static" in rows:
                swap = f"{rows['swap/static']:.3f} / {rows['swap/dynamic']:.3f}"
        name = JOB_NAME.match(job)
        if name is None:
            continue
        dataset, seed, lr = DATASETS[name["dataset"]], name["seed"], name["lr"]
        cut = "" if path.name == "history.json" else " (cut)"
        print(f"| {job} | {dataset} | {seed} | {lr} | {history[-1]['step']}{cut} | {summary['final']:.3f} | "
              f"{summary['change']:+.1%} | {summary['converged']} | {spikes} | {swap} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
