"""Learning curves and the leaderboard figure: drawn from real histories and result rows, written
beside the leaderboard, logged to the parent MLflow run, and drawn again by ``seqbench leaderboard --figures``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seqbench.cli import main

TOY = ["--methods", "toyae", "--metrics", "toy-mean", "--dataset", "toy-bars", "--profile", "smoke", "--no-progress"]
C0, C1 = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)  # matplotlib's first two cycle colours: method 1, method 2


def _has_colour(path, colour) -> bool:
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)
    return bool((np.abs(pixels - np.array(colour)).sum(1) < 12).any())


def test_learning_curves_panel_per_series_and_a_colour_per_method(tmp_path):
    from seqbench.plots import MAX_USAGE_PANELS, curve_keys, learning_curves

    def history(scale):
        train = [{"step": s, "loss": scale / s, "lr": 1e-3} for s in (1, 2, 3, 4)]
        val = [{"step": s, "val_loss": scale / s, **{f"usage/u{k}": 0.1 * k for k in range(8)}} for s in (2, 4)]
        return train + val

    histories = {"a/seed0": history(1.0), "a/seed1": history(2.0), "b/seed0": history(3.0)}
    keys = curve_keys(histories)
    assert keys[:2] == ["loss", "val_loss"] and len(keys) == 2 + MAX_USAGE_PANELS
    path = learning_curves(histories, tmp_path / "curves.png", title="toy")
    image = Image.open(path)
    assert image.format == "PNG" and image.size == (1260, 900)  # 3 x 3 panels of 4.2 x 3.0 in at 100 dpi
    assert _has_colour(path, C0) and _has_colour(path, C1)
    with pytest.raises(ValueError, match="no training history"):
        learning_curves({"a/seed0": [{"step": 1, "lr": 1e-3}]}, tmp_path / "none.png")


def test_leaderboard_figure_draws_headline_columns_and_nothing_for_limited_runs(tmp_path):
    import pandas as pd

    from seqbench.plots import leaderboard_figure

    def row(method, seed, key, value, **extra):
        return {"dataset": "d", "method": method, "seed": seed, "metric": "m", "key": key, "value": value,
                "higher_is_better": True, "ci_low": value - 0.1, "ci_high": value + 0.1, "status": "ok",
                "timestamp": "2026-01-01T00:00:00", "profile": "smoke", "metric_version": "1", "method_version": "1",
                "seqbench_version": "0.1.0", "dataset_fingerprint": "f", "limit": None, **extra}

    rows = [row(m, s, k, v + s / 10) for m, v in (("a", 0.5), ("b", 0.7)) for s in (0, 1)
            for k in ("head", "detail/x", "chance/head")]
    frame = pd.DataFrame(rows)
    path = leaderboard_figure(frame, "d", tmp_path / "m.png", headlines={"m": {"head"}})
    assert Image.open(path).size == (360, 240)  # one headline panel: 3.6 in wide, 2 methods tall, at 100 dpi
    assert _has_colour(path, C0) and _has_colour(path, C1)
    assert Image.open(leaderboard_figure(frame, "d", tmp_path / "all.png")).size == (720, 240)  # head + detail/x
    limited = pd.DataFrame([row("a", 0, "head", 0.5, limit=8)])
    assert leaderboard_figure(limited, "d", tmp_path / "none.png") is None


def test_a_run_writes_both_figures_beside_the_leaderboard_and_logs_them_to_the_parent_run(toy_plugin, cache_dir,
                                                                                            tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    out_dir = tmp_path / "out"
    assert main(["run", *TOY, "--seeds", "0,1", "-o", str(out_dir)]) == 0
    boards = out_dir / "leaderboards"
    assert sorted(p.name for p in boards.iterdir()) == ["toy-bars-curves.png", "toy-bars-metrics.png", "toy-bars.md"]
    for path in boards.glob("*.png"):
        assert Image.open(path).format == "PNG"
    client = MlflowClient(tracking_uri=f"sqlite:///{out_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("seqbench")
    (parent,) = client.search_runs([experiment.experiment_id], filter_string="tags.`seqbench.run_id` != ''")
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert logged == {"figures/toy-bars-curves.png", "figures/toy-bars-metrics.png"}
    # seqbench leaderboard --figures draws the same figures from the results and the cached histories.
    figures = tmp_path / "figures"
    capsys.readouterr()
    assert main(["leaderboard", "--from", str(out_dir), "--figures", str(figures)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# toy-bars") and f"wrote {figures / 'toy-bars-curves.png'}" in captured.err
    for name in ("toy-bars-curves.png", "toy-bars-metrics.png"):
        again, first = (np.asarray(Image.open(d / name)) for d in (figures, boards))
        assert again.shape == first.shape
    # -o BOARD.md with --figures: the board embeds every figure drawn, swap grids of the cached models included,
    # linked relative to the board, and drawing again writes the same markdown
    board = tmp_path / "board.md"
    assert main(["leaderboard", "--from", str(out_dir), "--figures", str(figures), "-o", str(board)]) == 0
    text = board.read_text()
    assert Image.open(figures / "toy-bars-swaps.png").format == "PNG"
    links = [line for line in text.splitlines() if line.startswith("![")]
    assert [line.rsplit("(", 1)[1] for line in links] == [
        "figures/toy-bars-swaps.png)", "figures/toy-bars-metrics.png)", "figures/toy-bars-curves.png)"]
    assert main(["leaderboard", "--from", str(out_dir), "--figures", str(figures), "-o", str(board)]) == 0
    assert board.read_text() == text


def test_the_swap_figure_shows_each_methods_grid_under_its_name(tmp_path):
    from seqbench.plots import swap_grids_figure

    grids = {"b": np.full((40, 200, 3), 255, np.uint8), "a": np.zeros((40, 200, 3), np.uint8)}
    image = np.asarray(Image.open(swap_grids_figure(grids, tmp_path / "s.png", title="t")).convert("L"))
    height = image.shape[0]
    # "a" (black) is drawn above "b" (white): sorted by name, one grid per row
    top, bottom = image[: height // 2], image[height // 2:]
    assert (top < 10).sum() > 5000 and (bottom < 10).sum() < (top < 10).sum() / 5
    with pytest.raises(ValueError):
        swap_grids_figure({}, tmp_path / "none.png")


def test_a_swap_grid_is_drawn_from_the_weights_the_rows_name(toy_plugin, cache_dir, tmp_path, capsys):
    """After a refactor of a method's source (same config and version, another code digest, so another
    model key) or a change of the profile's budget, the board still shows the grid of the model that made
    its numbers; rows whose config no cached model stores get no grid."""
    import json
    import shutil

    from seqbench.plots import cached_swap_grids
    from seqbench.results import load_results
    from seqbench.utils import content_hash

    out = tmp_path / "out"
    assert main(["run", *TOY, "--seeds", "0", "-o", str(out), "--no-visuals"]) == 0
    rows_path = out / "results.jsonl"
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    built = rows[0]["model_key"]
    models = cache_dir / "models" / "toyae"
    grids = cached_swap_grids(load_results(rows_path), "toy-bars", profile="smoke")
    assert set(grids) == {"toyae"}
    # the rows name another key with this config and version: its weights are drawn
    shutil.move(models / built, models / "trained-by-an-older-source")
    for row in rows:
        row["model_key"] = "trained-by-an-older-source"
    rows_path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    again = cached_swap_grids(load_results(rows_path), "toy-bars", profile="smoke")
    assert np.array_equal(again["toyae"], grids["toyae"])
    # a model trained before an option was added (its stored config lacks it; the option is at its
    # default here): drawn; a model of another config of this version (a budget changed since): drawn
    # in the architecture its stored config describes, and the note names the difference
    meta_path = models / "trained-by-an-older-source" / "meta.json"
    meta = json.loads(meta_path.read_text())
    older = {k: v for k, v in meta["config"].items() if k != "val_fraction"}
    meta_path.write_text(json.dumps(dict(meta, config=older)))
    for row in rows:
        row["config_hash"] = content_hash(older)
    rows_path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    capsys.readouterr()
    added = cached_swap_grids(load_results(rows_path), "toy-bars", profile="smoke")
    assert np.array_equal(added["toyae"], grids["toyae"]) and "options val_fraction were added" in capsys.readouterr().err
    meta_path.write_text(json.dumps(dict(meta, config={**meta["config"], "val_fraction": 0.5})))
    for row in rows:
        row["config_hash"] = content_hash({**meta["config"], "val_fraction": 0.5})
    rows_path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    capsys.readouterr()
    other = cached_swap_grids(load_results(rows_path), "toy-bars", profile="smoke")
    assert np.array_equal(other["toyae"], grids["toyae"])
    assert "another config of this method version: val_fraction=0.5" in capsys.readouterr().err
    meta_path.write_text(json.dumps(meta))
    # another config: not this code's model, no grid
    for row in rows:
        row["config_hash"] = "another-config"
    rows_path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    capsys.readouterr()
    assert cached_swap_grids(load_results(rows_path), "toy-bars", profile="smoke") == {}
    assert "of another config or method version" in capsys.readouterr().err


def test_a_swap_grid_falls_back_to_the_lowest_seed_whose_model_is_cached(toy_plugin, cache_dir, tmp_path, capsys):
    """A board whose seed-0 model left the cache still shows the method, from its next cached seed, and says so."""
    import json
    import shutil

    from seqbench.plots import cached_swap_grids
    from seqbench.results import load_results

    out = tmp_path / "out"
    assert main(["run", *TOY, "--seeds", "0,1", "-o", str(out), "--no-visuals"]) == 0
    rows_path = out / "results.jsonl"
    keys = {row["seed"]: row["model_key"] for row in map(json.loads, rows_path.read_text().splitlines())}
    assert keys[0] != keys[1]
    both = cached_swap_grids(load_results(rows_path), "toy-bars", profile="smoke")
    shutil.rmtree(cache_dir / "models" / "toyae" / keys[0])
    capsys.readouterr()
    fallback = cached_swap_grids(load_results(rows_path), "toy-bars", profile="smoke")
    assert set(fallback) == {"toyae"} and not np.array_equal(fallback["toyae"], both["toyae"])
    assert "toy-bars/toyae: swap grid of seed 1" in capsys.readouterr().err
    shutil.rmtree(cache_dir / "models" / "toyae" / keys[1])
    assert cached_swap_grids(load_results(rows_path), "toy-bars", profile="smoke") == {}
    err = capsys.readouterr().err
    assert f"seed 0: model {keys[0]} is not in this cache; seed 1: model {keys[1]} is not in this cache" in err


def test_the_curve_figure_is_redrawn_from_exported_curves_once_the_cache_is_gone(toy_plugin, cache_dir, tmp_path,
                                                                                    capsys):
    """``seqbench leaderboard --figures DIR --curves CURVES`` draws the learning curves of models the cache no
    longer holds from their exported copies (``CURVES/<dataset>/<method>-seed<k>-<key8>.json``), so a committed
    board's curve figure is regenerable from the repository alone; without ``--curves`` there is none to draw."""
    import json
    import shutil

    out_dir = tmp_path / "out"
    assert main(["run", *TOY, "--seeds", "0", "-o", str(out_dir)]) == 0
    exported = tmp_path / "curves" / "toy-bars"
    exported.mkdir(parents=True)
    (model_dir,) = [p.parent for p in (cache_dir / "models").glob("toyae/*/history.json")]
    history = json.loads((model_dir / "history.json").read_text())
    (exported / f"toyae-seed0-{model_dir.name[:8]}.json").write_text(json.dumps({"meta": {}, "history": history}))
    shutil.rmtree(cache_dir / "models")
    bare, with_curves = tmp_path / "bare", tmp_path / "with-curves"
    assert main(["leaderboard", "--from", str(out_dir), "--figures", str(bare)]) == 0
    assert not (bare / "toy-bars-curves.png").exists()
    assert main(["leaderboard", "--from", str(out_dir), "--figures", str(with_curves),
                 "--curves", str(tmp_path / "curves")]) == 0
    redrawn, first = (np.asarray(Image.open(d / "toy-bars-curves.png"))
                      for d in (with_curves, out_dir / "leaderboards"))
    assert redrawn.shape == first.shape and _has_colour(with_curves / "toy-bars-curves.png", C0)
    # the model trained again without probes (only to draw its swap grid) is cached with its loss alone: that
    # history must not hide the exported curve
    from seqbench.plots import has_probe_curves

    assert main(["run", *TOY, "--seeds", "0", "-o", str(tmp_path / "again"), "--probes", "none", "--no-visuals",
                 "--retrain"]) == 0
    assert not has_probe_curves(json.loads((model_dir / "history.json").read_text()))
    again = tmp_path / "again-figures"
    assert main(["leaderboard", "--from", str(out_dir), "--figures", str(again),
                 "--curves", str(tmp_path / "curves")]) == 0
    assert np.array_equal(np.asarray(Image.open(again / "toy-bars-curves.png")), redrawn)


def test_the_swap_figure_is_redrawn_from_exported_grids_once_the_cache_is_gone(toy_plugin, cache_dir, tmp_path,
                                                                                 capsys):
    """``seqbench leaderboard --figures DIR --grids GRIDS`` exports every swap grid it draws from a cached model
    (``GRIDS/<dataset>/<method>-seed<k>-<key8>.png``, pixel for pixel) and draws a model the cache no longer holds
    from that copy - the lowest seed with either - so a committed board's swap figure is regenerable from the
    repository alone; without ``--grids`` a method whose models left the cache is left out and named."""
    import json
    import shutil

    from seqbench.plots import cached_swap_grids
    from seqbench.results import load_results

    out_dir = tmp_path / "out"
    assert main(["run", *TOY, "--seeds", "0,1", "-o", str(out_dir), "--no-visuals"]) == 0
    rows_path = out_dir / "results.jsonl"
    keys = {row["seed"]: row["model_key"] for row in map(json.loads, rows_path.read_text().splitlines())}
    drawn = cached_swap_grids(load_results(rows_path), "toy-bars", profile="smoke")
    grids = tmp_path / "grids"
    first = tmp_path / "first"
    assert main(["leaderboard", "--from", str(out_dir), "--figures", str(first), "--grids", str(grids)]) == 0
    # only the grid the figure used (the lowest seed's) is exported, and it is the model's grid exactly
    (exported,) = sorted((grids / "toy-bars").iterdir())
    assert exported.name == f"toyae-seed0-{keys[0][:8]}.png"
    assert np.array_equal(np.asarray(Image.open(exported)), drawn["toyae"])
    shutil.rmtree(cache_dir / "models" / "toyae" / keys[0])
    # seed 0's model is gone: its exported grid wins over seed 1's cached model (the lowest seed with either)
    capsys.readouterr()
    again = cached_swap_grids(load_results(rows_path), "toy-bars", profile="smoke", grids_dir=grids / "toy-bars")
    assert np.array_equal(again["toyae"], drawn["toyae"])
    assert f"swap grid of seed 0 from {exported}" in capsys.readouterr().err
    shutil.rmtree(cache_dir / "models")
    bare, redrawn = tmp_path / "bare", tmp_path / "redrawn"
    assert main(["leaderboard", "--from", str(out_dir), "--figures", str(bare)]) == 0
    assert not (bare / "toy-bars-swaps.png").exists()
    assert main(["leaderboard", "--from", str(out_dir), "--figures", str(redrawn), "--grids", str(grids)]) == 0
    assert np.array_equal(np.asarray(Image.open(redrawn / "toy-bars-swaps.png")),
                          np.asarray(Image.open(first / "toy-bars-swaps.png")))
    # an unreadable export is a warning that says how to mend it, never a lost board
    exported.write_bytes(b"not a png")
    capsys.readouterr()
    assert cached_swap_grids(load_results(rows_path), "toy-bars", profile="smoke", grids_dir=grids / "toy-bars") == {}
    err = capsys.readouterr().err
    assert f"{exported} is unreadable" in err and "export it again" in err


def test_rows_made_on_other_data_name_the_option_to_pass(toy_plugin, cache_dir, tmp_path, capsys):
    """A board redrawn without the ``--data-option`` its runs were made with (e.g. ``sprites.size=32``) builds
    models of another shape: the figure leaves the method out with a warning that names the option, instead of
    a state-dict size mismatch."""
    from seqbench.plots import cached_swap_grids
    from seqbench.results import load_results

    out_dir = tmp_path / "out"
    assert main(["run", *TOY, "--seeds", "0", "-o", str(out_dir), "--no-visuals"]) == 0
    rows = load_results(out_dir / "results.jsonl")
    assert "toyae" in cached_swap_grids(rows, "toy-bars", profile="smoke")
    rows["dataset_fingerprint"] = "made-on-other-data"
    capsys.readouterr()
    assert cached_swap_grids(rows, "toy-bars", profile="smoke") == {}
    err = capsys.readouterr().err
    assert "fingerprint made-on-other-data" in err and "pass the --data-option the run was made with" in err
