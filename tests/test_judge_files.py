"""Pinned judges: export/import across machines (caches), refusal of corrupted or foreign files, the
judge ensemble's spread, decodes cached once per model, and the shipped judges' cards."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seqbench import judge_files
from seqbench.judges import Judge, load_judge
from seqbench.model_store import weights_digest
from seqbench.metric import EvalContext, EvalData
from seqbench.plugins import load_plugins

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: shared toys live in test_judges
from test_judges import BARS_SPEC, TINY_JUDGE, TINY_JUDGE_OPTIONS, Oracle, make_bars  # noqa: E402


def _train_and_export(cache: Path, monkeypatch, path: Path) -> tuple[Path, dict]:
    monkeypatch.setenv("SEQBENCH_CACHE", str(cache))
    train, test = make_bars(120, 0), make_bars(60, 1)
    trained = load_judge(BARS_SPEC, train, test, config=TINY_JUDGE, log=False, weights="train")
    card = judge_files.judge_card(trained, BARS_SPEC, test)
    return judge_files.export_judge(trained, card, path), card


def test_a_judge_exported_on_one_machine_is_used_on_another(tmp_path, monkeypatch):
    exported, card = _train_and_export(tmp_path / "machine-a", monkeypatch, tmp_path / "bars")
    assert exported.name == "bars.judge.pt" and (tmp_path / "bars.card.json").exists()
    assert card["test_accuracy"]["joint"] > 0.9 and set(card["confusion"]) == {"colour", "direction"}
    assert sum(map(sum, card["confusion"]["colour"])) == 60
    # Machine B: an empty cache. By file ...
    monkeypatch.setenv("SEQBENCH_CACHE", str(tmp_path / "machine-b"))
    train, test = make_bars(120, 0), make_bars(60, 1)
    pinned = load_judge(BARS_SPEC, train, test, config=TINY_JUDGE, log=False, weights=str(exported))
    assert pinned.meta["weights"] == card["weights"] and weights_digest(pinned.model) == card["weights"]
    assert not (tmp_path / "machine-b" / "judges").exists()  # nothing was trained
    # ... and imported: a plain run with the same key now finds exactly these weights in the cache.
    judge_files.install_judge(exported)
    again = load_judge(BARS_SPEC, train, test, config=TINY_JUDGE, log=False)
    assert again.meta["weights"] == card["weights"] and again.name == pinned.name
    metric = load_plugins().metrics.get("judge")(**{**TINY_JUDGE_OPTIONS, "protocols": "swap",
                                                   "weights": card["weights"][:8]})
    out = metric.evaluate(Oracle(), EvalData(BARS_SPEC, train, test), EvalContext(device=torch.device("cpu")))
    assert out["swap/joint"].backend.endswith("@" + card["weights"][:8])  # the digest is in the rows


def test_corrupted_and_foreign_judge_files_are_refused_with_a_message(tmp_path, monkeypatch):
    exported, card = _train_and_export(tmp_path / "cache", monkeypatch, tmp_path / "bars")
    truncated = tmp_path / "truncated.judge.pt"
    truncated.write_bytes(exported.read_bytes()[:1000])
    with pytest.raises(judge_files.JudgeFileError, match="not a readable seqbench judge file"):
        judge_files.read_judge_file(truncated)
    # A weight changed after export: the digest check catches it.
    payload = torch.load(exported, weights_only=True)
    name = next(iter(payload["weights"]))
    payload["weights"][name] = payload["weights"][name] + 1
    edited = tmp_path / "edited.judge.pt"
    torch.save(payload, edited)
    with pytest.raises(judge_files.JudgeFileError, match="corrupted or was edited"):
        judge_files.read_judge_file(edited)
    foreign = dataclasses.replace(BARS_SPEC, fingerprint="another-dataset")
    with pytest.raises(judge_files.JudgeFileError, match="use a judge made for this dataset"):
        judge_files.judge_from_file(exported, foreign)
    # Through the CLI: exit 2, one line, no traceback.
    done = subprocess.run([sys.executable, "-m", "seqbench", "judges", "import", str(truncated)],
                          capture_output=True, text=True, env={**__import__("os").environ,
                                                                "SEQBENCH_CACHE": str(tmp_path / "c")})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and str(truncated) in done.stderr


def test_ensemble_reports_the_spread_and_decodes_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQBENCH_CACHE", str(tmp_path / "cache"))
    train, test = make_bars(120, 0), make_bars(60, 1)
    decoded: list[int] = []

    class Counting(Oracle):
        def decode(self, factors, *, generator=None):
            decoded.append(len(factors.static))
            return super().decode(factors, generator=generator)

    def run(options: dict) -> dict:
        metric = load_plugins().metrics.get("judge")(**{**TINY_JUDGE_OPTIONS, "niter": 1, **options})
        ctx = EvalContext(device=torch.device("cpu"), batch_size=32, model_dir=tmp_path / "model")
        return metric.evaluate(Counting(ignore_static=True), EvalData(BARS_SPEC, train, test), ctx)

    single = run({})
    first_decodes = sum(decoded)
    assert first_decodes == 60 * 4  # swap pairs, reconstructions and two sample modes, once each
    files = sorted((tmp_path / "model" / "decodes").glob("judge-*.npy"))
    assert len(files) == 4 and np.load(files[0]).dtype == np.uint8
    ensemble = run({"ensemble": 3})
    assert sum(decoded) == first_decodes  # three judges scored the cached decodes: no decoding at all
    assert ensemble["swap/joint"].value == single["swap/joint"].value  # the pinned judge's value
    spread = ensemble["judge_spread/swap/static"]
    assert 0.0 <= spread.value <= 1.0 and "ensemble of 3" in spread.backend
    assert not any(k.startswith("judge_spread/ceiling") for k in ensemble)


@pytest.mark.parametrize("path", judge_files.shipped_judge_files(), ids=lambda p: p.name)
def test_shipped_judges_match_their_cards(path):
    """Every committed judge file verifies (weights digest = card) and its sidecar card equals the inner card."""
    weights, card = judge_files.read_judge_file(path)
    sidecar = json.loads(path.with_name(path.name[: -len(".judge.pt")] + ".card.json").read_text())
    assert sidecar == json.loads(json.dumps(card))
    assert card["test_accuracy"]["joint"] >= 0.99
    assert path.stat().st_size < 5e6


def test_smoke_profile_judge_is_sized_to_seconds(tmp_path, monkeypatch):
    """``--profile smoke`` runs get a tiny judge (at most 60 steps), not the quick judge's 3000."""
    from seqbench.judges import judge_config_for

    monkeypatch.setenv("SEQBENCH_CACHE", str(tmp_path))
    smoke, quick = judge_config_for(BARS_SPEC, profile="smoke"), judge_config_for(BARS_SPEC)
    assert smoke.max_steps == 60 and smoke.max_steps < quick.max_steps
    trained = load_judge(BARS_SPEC, make_bars(120, 0), make_bars(60, 1), config=smoke, log=False)
    assert trained.meta["fit"]["steps"] <= 60
    assert sum(p.numel() for p in trained.model.parameters()) < 0.1 * sum(
        p.numel() for p in Judge(BARS_SPEC, quick).parameters())


def test_a_judge_does_not_depend_on_what_the_process_drew_before(tmp_path, monkeypatch):
    """Same key, same weights: whether the process trained a method first (consuming the global RNG) or not."""
    digests = []
    for cache, draws in (("fresh", 0), ("after-a-method", 12345)):
        monkeypatch.setenv("SEQBENCH_CACHE", str(tmp_path / cache))
        torch.manual_seed(7)
        torch.rand(draws)
        digests.append(load_judge(BARS_SPEC, make_bars(120, 0), make_bars(60, 1), config=TINY_JUDGE,
                                  log=False).meta["weights"])
    assert digests[0] == digests[1]


@pytest.mark.parametrize("path", judge_files.shipped_judge_files(), ids=lambda p: p.name)
def test_the_default_judge_is_the_shipped_one(path, tmp_path, monkeypatch):
    """A run on an embedded dataset scores with the committed judge: same weights digest as its card,
    and nothing is trained (an empty cache stays without judges)."""
    from seqbench.config import MethodConfig
    from seqbench.data import carve_validation

    from seqbench.errors import DataNotFoundError
    from seqbench.utils import data_root

    card = json.loads(path.with_name(path.name[: -len(".judge.pt")] + ".card.json").read_text())
    monkeypatch.setenv("SEQBENCH_DATA", str(data_root()))  # a prepared real dataset stays where it was prepared
    monkeypatch.setenv("SEQBENCH_CACHE", str(tmp_path))
    adapter = load_plugins().datasets.get(card["dataset"])(**card["dataset_options"])
    try:
        spec = adapter.spec
    except DataNotFoundError:  # a real dataset's judge (Sprites): only where its data was prepared
        pytest.skip(f"{card['dataset']} is not prepared here (seqbench data prepare {card['dataset']} --source DIR)")
    assert spec.fingerprint == card["fingerprint"]
    train, _ = carve_validation(adapter.split("train"), MethodConfig().val_fraction, seed=0)
    judge = load_judge(adapter.spec, train, adapter.split("test"), log=False)
    assert judge.meta["weights"] == card["weights"] == weights_digest(judge.model)
    assert judge.name == f"judge-{card['digest'][:8]}@{card['weights'][:8]}"
    assert not (tmp_path / "judges").exists()
