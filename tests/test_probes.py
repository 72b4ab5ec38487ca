"""Learning curves: the probe set at validation points, the plateau summary, and the leaderboard's marks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqbench.data import carve_validation
from seqbench.probes import PLATEAU_THRESHOLD, curves_from_history, summarise_curve, summarise_history
from seqbench.trainer import CHECKPOINT, Trainer


def test_a_flat_curve_has_converged_and_a_rising_one_has_not():
    steps = list(range(0, 1001, 50))
    flat = summarise_curve("swap/mean", steps, [0.8 - 0.7 * np.exp(-s / 60) for s in steps])
    assert flat.converged is True and abs(flat.change) < 1e-3
    rising = summarise_curve("swap/mean", steps, [0.1 + 0.0006 * s for s in steps])
    # over the last quarter (250 steps) the line rises by 0.15 to 0.7: a relative change of 0.15 / 0.7
    assert rising.converged is False
    assert rising.change == pytest.approx(0.15 / 0.7, rel=1e-6)
    assert rising.final == pytest.approx(0.7)
    # 90 % of the way from 0.1 to 0.7 is 0.64, first reached at step 900
    assert rising.step_90 == 900
    assert rising.threshold == PLATEAU_THRESHOLD


def test_a_falling_error_curve_reports_its_change_and_time_to_90_percent():
    steps = [0, 100, 200, 300, 400]
    summary = summarise_curve("mse", steps, [1.0, 0.2, 0.11, 0.1, 0.1], times=[0.0, 1.0, 2.0, 3.0, 4.0])
    assert summary.points == 2  # steps 300 and 400 are in the last quarter: too few to tell
    assert summary.converged is None and summary.change is None
    assert summary.step_90 == 200 and summary.time_90 == 2.0  # 1.0 -> 0.1: 0.19 is 90 % of the way


def test_history_entries_become_curves_and_the_judge_swap_is_the_headline():
    history = [{"step": 10, "loss": 1.0}]
    for step in range(0, 401, 50):
        history.append({"step": step, "curve/mse": 0.1, "curve/swap/mean": 0.5, "curve/train_s": step / 10})
    curves = curves_from_history(history)
    assert set(curves) == {"mse", "swap/mean"}
    assert curves["mse"][2][-1] == 40.0
    summary = summarise_history(history)
    assert summary["key"] == "swap/mean" and summary["converged"] is True
    assert summary["time_90"] == 0.0 and set(summary["changes"]) == {"mse", "swap/mean"}
    assert summarise_history([{"step": 1, "loss": 1.0}]) is None


def _setup(**overrides):
    import seqbench_toy

    adapter = seqbench_toy.ToyBars()
    config = seqbench_toy.ToyConfig.for_profile("smoke").with_overrides(overrides)
    train, val = carve_validation(adapter.split("train"), 0.25, seed=0)
    torch.manual_seed(0)
    return seqbench_toy.ToyAE(config, adapter.spec), train, val


def _mse_probe(val):
    x = val.clips(np.arange(len(val)))

    def probe(method):
        assert not method.training  # probes see the model in eval mode
        return {"mse": float(((method.reconstruct(x) - x) ** 2).mean()), "noise": float(torch.rand(()))}

    return probe


def test_probes_run_at_every_validation_point_and_never_change_training(toy_plugin, tmp_path):
    method, train, val = _setup(steps=12, checkpoint_every=4, val_every=4)
    plain = Trainer(method, train, val, device=torch.device("cpu"), seed=0, workdir=tmp_path / "plain",
                    progress=False).fit()
    plain_weights = {k: v.clone() for k, v in method.state_dict().items()}
    method, train, val = _setup(steps=12, checkpoint_every=4, val_every=4)
    probed = Trainer(method, train, val, device=torch.device("cpu"), seed=0, workdir=tmp_path / "probed",
                     progress=False, probe=_mse_probe(val)).fit()
    for key, value in plain_weights.items():  # probes draw random numbers: the training RNG is untouched
        torch.testing.assert_close(method.state_dict()[key], value, rtol=0, atol=0)
    assert plain.best_step == probed.best_step
    curve = [(e["step"], e["curve/mse"]) for e in probed.history if "curve/mse" in e]
    assert [s for s, _ in curve] == [0, 4, 8, 12]  # the untrained model, then every validation point
    assert curve[-1][1] < curve[0][1]
    times = [e["curve/train_s"] for e in probed.history if "curve/train_s" in e]
    assert times[0] == 0.0 and times == sorted(times)
    assert probed.probe_s > 0 and not any(k.startswith("curve/") for e in plain.history for k in e)


def test_a_resumed_run_keeps_the_curve_of_the_steps_before_the_restart(toy_plugin, tmp_path):
    method, train, val = _setup(steps=8, checkpoint_every=4, val_every=4)
    Trainer(method, train, val, device=torch.device("cpu"), seed=0, workdir=tmp_path, progress=False,
            probe=_mse_probe(val)).fit()
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert [e["step"] for e in state["history"] if "curve/mse" in e] == [0, 4, 8]
    method, train, val = _setup(steps=12, checkpoint_every=4, val_every=4)
    result = Trainer(method, train, val, device=torch.device("cpu"), seed=0, workdir=tmp_path, progress=False,
                     probe=_mse_probe(val)).fit()
    assert result.resumed_from == 8
    steps = [e["step"] for e in result.history if "curve/mse" in e]
    assert steps == [0, 4, 8, 12]  # no second step-0 probe, nothing lost before the restart
    times = [e["curve/train_s"] for e in result.history if "curve/train_s" in e]
    assert times == sorted(times)


def _rows(converged):
    rows = []
    for method, flag in converged.items():
        for seed in (0, 1):
            rows.append({"run_id": "r", "timestamp": "2026-12-03T00:00:00+00:00", "dataset": "d", "method": method,
                         "seed": seed, "metric": "mse", "key": "mse", "value": 0.1 + seed / 100,
                         "higher_is_better": False, "status": "ok", "profile": "quick", "eval_clips": 64,
                         "metric_version": "1", "method_version": "1", "dataset_fingerprint": "f",
                         "seqbench_version": "0", "converged": flag if seed == 0 else True})
    return rows


def test_the_leaderboard_marks_models_that_were_not_on_their_plateau():
    from seqbench.leaderboard import results_frame, render_dataset

    text = render_dataset(results_frame(_rows({"flat": True, "rising": False, "unknown": None})), "d")
    lines = {line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")}
    assert {"flat (2 seeds)", "rising (2 seeds) †", "unknown (2 seeds) ?"} <= lines
    assert "† a seed's model was not on its plateau" in text and "? a seed's model has no learning curve" in text
    text = render_dataset(results_frame(_rows({"flat": True})), "d")
    assert "†" not in text and "no learning curve" not in text


def test_a_seed_knocked_off_its_plateau_by_a_loss_spike_is_marked_unstable_not_undertrained():
    from seqbench.leaderboard import results_frame, render_dataset

    rows = _rows({"spiked": False, "rising": False, "spiked-but-flat": True, "unfilled": False})
    for row in rows:  # seed 0 is the flagged one (see _rows); "unfilled" rows predate the column
        if row["method"] != "unfilled":
            row["late_loss_spikes"] = {"spiked": 1, "rising": 0, "spiked-but-flat": 2}[row["method"]] * (row["seed"] == 0)
    text = render_dataset(results_frame(rows), "d")
    lines = {line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")}
    assert {"spiked (2 seeds) §", "rising (2 seeds) †", "spiked-but-flat (2 seeds)", "unfilled (2 seeds) †"} <= lines
    assert "§ a seed's model was not on its plateau because training was unstable" in text


def test_a_plateau_reached_as_the_learning_rate_decays_is_marked_apart():
    from seqbench.config import MethodConfig
    from seqbench.leaderboard import results_frame, render_dataset
    from seqbench.probes import DECAYED_LR_SCALE, late_lr_scale

    assert late_lr_scale(MethodConfig(scheduler="constant", warmup_steps=0), 1000) == pytest.approx(1.0)
    # cosine to 0: the mean of 0.5 (1 + cos(pi p)) over p in [0.75, 1] is 0.5 - sin(pi / 4) / (pi / 2) ~ 0.05
    cosine = late_lr_scale(MethodConfig(scheduler="cosine", warmup_steps=0), 4000)
    assert cosine == pytest.approx(0.5 - np.sin(np.pi / 4) / (np.pi / 2), abs=2e-3) and cosine < DECAYED_LR_SCALE
    rows = _rows({"decayed": True, "constant": True, "rising": False})
    for row in rows:
        row["plateau_lr_scale"] = {"decayed": cosine, "constant": 1.0, "rising": cosine}[row["method"]]
    text = render_dataset(results_frame(rows), "d")
    lines = {line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")}
    assert {"decayed (2 seeds) ‡", "constant (2 seeds)", "rising (2 seeds) †"} <= lines
    assert "‡ on a plateau reached while the learning rate decayed" in text
    # rows written before the column existed carry no mark
    text = render_dataset(results_frame(_rows({"flat": True})), "d")
    assert "‡" not in text


def test_a_run_logs_curves_and_writes_the_plateau_summary_beside_the_model(toy_plugin, tmp_path, monkeypatch):
    import json
    import shutil

    from seqbench.runner import RunOptions, Runner

    monkeypatch.setenv("SEQBENCH_CACHE", str(tmp_path / "cache"))
    options = RunOptions(methods=["toyae"], metrics=["mse"], datasets=["toy-bars"], profile="smoke",
                         output=tmp_path / "out", progress=False, visuals=False, probes=["mse"],
                         plugins=[],
                         overrides={"toyae": {"steps": 24, "val_every": 4}})
    run = Runner(options).run()
    meta = json.loads(next((tmp_path / "cache" / "models").rglob("meta.json")).read_text())
    assert meta["curve"]["key"] == "mse" and meta["curve"]["points"] == 2  # steps 20 and 24 (>= 18)
    history = json.loads(next((tmp_path / "cache" / "models").rglob("history.json")).read_text())
    assert [e["step"] for e in history if "curve/mse" in e] == [0, 4, 8, 12, 16, 20, 24]
    rows = [json.loads(line) for line in (run.output / "results.jsonl").read_text().splitlines()]
    assert rows and all(r["plateau_probe"] == "mse" and r["converged"] is None for r in rows)
    from seqbench.config import MethodConfig
    from seqbench.probes import late_lr_scale

    schedule = MethodConfig(scheduler=meta["config"]["scheduler"], warmup_steps=meta["config"]["warmup_steps"])
    assert all(r["plateau_lr_scale"] == pytest.approx(late_lr_scale(schedule, 24)) for r in rows)
    assert all(r["late_loss_spikes"] == 0 for r in rows)
    # a model trained before summaries carried late_loss_spikes gets it from its history.json
    meta_path = next((tmp_path / "cache" / "models").rglob("meta.json"))
    meta["curve"].pop("late_loss_spikes")
    meta_path.write_text(json.dumps(meta))
    shutil.rmtree(tmp_path / "cache" / "cells")  # evaluated afresh: rows of cached cells keep their old values
    options.output = tmp_path / "again"
    again = Runner(options).run()
    rows = [json.loads(line) for line in (again.output / "results.jsonl").read_text().splitlines()]
    assert rows and all(r["late_loss_spikes"] == 0 for r in rows)


def test_a_compound_type_direction_label_splits_into_its_parts():
    from seqbench.functional import compound_label_parts

    names = tuple(f"{a}-{d}" for a in ("walk", "spellcast", "slash") for d in ("front", "left", "right"))
    kind, direction = compound_label_parts(names)
    assert kind.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and direction.tolist() == [0, 1, 2] * 3
    assert compound_label_parts(("left", "right")) is None
    assert compound_label_parts(("walk-front", "walk-left", "slash-front")) is None  # not a full grid
    assert compound_label_parts(("a-b-c", "a-b-d")) is None


def test_the_probe_clips_are_a_seeded_draw_across_identities_not_the_first_clips(toy_plugin):
    import dataclasses

    import seqbench_toy

    from seqbench.probes import ProbeSet

    adapter = seqbench_toy.ToyBars()
    data = adapter.split("train")
    val = dataclasses.replace(data, identity=np.arange(len(data)) // 4)  # stored grouped: 4 clips per identity
    probe = ProbeSet({}, adapter.spec, data, val, device=torch.device("cpu"), seed=0, profile="smoke")
    again = ProbeSet({}, adapter.spec, data, val, device=torch.device("cpu"), seed=3, profile="smoke")
    n = len(probe.data.test)
    assert n == 32 < len(val)  # the smoke profile's probe clips
    assert list(probe.data.test.ids) == list(again.data.test.ids)  # fixed per dataset, whatever the seed
    first = len(np.unique(val.identity[:n]))  # the first 32 of 48 clips: 8 of the 12 identities
    assert first == 8 and probe.items["identities"] == 12
    assert probe.items == {"selection": "seeded", "clips": n, "identities": len(np.unique(probe.data.test.identity))}


def test_rows_written_before_the_lr_scale_column_get_it_from_their_models_schedule(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from seqbench.config import MethodConfig
    from seqbench.probes import late_lr_scale
    from seqbench.runner.row import ResultRow

    columns = ResultRow.columns()[:ResultRow.columns().index("plateau_lr_scale")]  # a row of an older schema
    rows_dir, curves = tmp_path / "results" / "run1", tmp_path / "curves"
    rows_dir.mkdir(parents=True), curves.mkdir()
    rows = [dict.fromkeys(columns) | {"method": "m", "seed": 0, "model_key": key, "key": "mse"}
            for key in ("abcdef1234567890", "ffffffff00000000")]
    (rows_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    history = [{"step": s, "curve/mse": 0.1 + 1 / (1 + s)} for s in range(0, 4001, 250)]
    meta = {"method": "m", "seed": 0, "steps": 4000, "config": {"scheduler": "cosine", "warmup_steps": 200},
            "curve": {"key": "mse"}}
    (curves / "m-seed0-abcdef12.json").write_text(json.dumps({"meta": meta, "history": history}))
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "learning_curves.py"
    done = subprocess.run([sys.executable, str(script), "--from", str(curves), "--rows", str(tmp_path / "results"),
                           "--fill-lr-scale"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "filled in 1 row(s)" in done.stdout
    filled = [json.loads(line) for line in (rows_dir / "results.jsonl").read_text().splitlines()]
    schema = ResultRow.columns()
    assert [tuple(r) for r in filled] == [schema[: schema.index("plateau_lr_scale") + 1]] * 2
    expected = late_lr_scale(MethodConfig(scheduler="cosine", warmup_steps=200), 4000)
    assert filled[0]["plateau_lr_scale"] == pytest.approx(expected) and filled[1]["plateau_lr_scale"] is None
    # then late_loss_spikes from the exported history (no training loss logged there: no spike)
    done = subprocess.run([sys.executable, str(script), "--from", str(curves), "--rows", str(tmp_path / "results"),
                           "--fill-loss-spikes"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    refilled = [json.loads(line) for line in (rows_dir / "results.jsonl").read_text().splitlines()]
    assert "filled in 1 row(s)" in done.stdout and [tuple(r) for r in refilled] == [schema] * 2
    assert refilled[0]["late_loss_spikes"] == 0 and refilled[1]["late_loss_spikes"] is None
    assert refilled[0]["plateau_lr_scale"] == pytest.approx(expected)


def test_loss_spikes_find_an_optimiser_instability_not_noise_or_early_descent():
    from seqbench.probes import loss_spikes

    rng = np.random.default_rng(0)
    steps = range(0, 4000, 25)
    # fast early descent (not a spike), small noise, then one instability at step 3000 that decays over 3 logs
    loss = {s: 100.0 * np.exp(-s / 150) + 20.0 + rng.normal(0, 0.4) for s in steps}
    loss[3000], loss[3025], loss[3050] = 45.0, 52.0, 30.0
    history = [{"step": s, "loss": v} for s, v in loss.items()]
    spikes = loss_spikes(history)
    assert [s for s, _ in spikes] == [3000]  # the three high logs are one event
    assert spikes[0][1] == pytest.approx(52.0 / 20.0, rel=0.05)  # its largest ratio
    assert loss_spikes([{"step": s, "loss": 20.0 + rng.normal(0, 0.4)} for s in steps]) == []
    assert loss_spikes(history[:5]) == []  # too short to have a running median
    summary = summarise_history(history + [{"step": 4000, "curve/mse": 0.1}])
    assert summary["loss_spikes"] == [[3000, pytest.approx(2.6, rel=0.05)]]


def test_spike_term_names_the_part_of_the_objective_that_blew_up():
    from seqbench.probes import loss_spikes, spike_term

    rng = np.random.default_rng(1)
    history = []
    for step in range(0, 4000, 25):
        recon, kl_d, nce = 30.0 + rng.normal(0, 0.5), 4.0 + rng.normal(0, 0.1), 2.5
        if step == 3000:  # the dynamic KL jumps 10x, the reconstruction follows 1.5x (C-DSVAE's spikes)
            recon, kl_d = 45.0, 40.0
        history.append({"step": step, "loss": recon + kl_d + nce, "recon": recon, "kl_d": kl_d, "nce": nce,
                        "lr": 2e-3})
    history.append({"step": 3000, "val_loss": 80.0})  # other logs at the same step are not training logs
    (step, _), = loss_spikes(history)
    term, ratio = spike_term(history, step)
    assert (step, term) == (3000, "kl_d") and ratio == pytest.approx(10.0, rel=0.05)
    assert spike_term(history, 3010) is None  # no log at that step
    assert spike_term([{"step": 0, "loss": 1.0}, {"step": 25, "loss": 3.0}], 25) is None  # no terms logged
