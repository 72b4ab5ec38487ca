"""Pictures in a real run: written per model on the shared fixed clips, logged to MLflow, drawn on
demand by ``seqbench show`` from the cached model, and never the cause of a failed run."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seqbench.cli import main
from seqbench.visuals import GAP

TOY = ["--methods", "toyae", "--metrics", "toy-mean", "--dataset", "toy-bars", "--profile", "smoke", "--no-progress"]
SCALE = 8  # toy-bars frames are 8x8: upscaled to 64 px
PICTURES = {"recon.png", "swaps.png", "traversal-static.png", "traversal-dynamic.png"}


def _pictures(out_dir, seed=0):
    (run_dir,) = sorted((out_dir / "runs").iterdir())[-1:]
    return run_dir / "visuals" / "toy-bars" / "toyae" / f"seed{seed}"


def test_a_run_draws_every_model_and_logs_the_pictures_with_its_nested_run(toy_plugin, cache_dir, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    out_dir = tmp_path / "out"
    assert main(["run", *TOY, "--seeds", "0,1", "-o", str(out_dir)]) == 0
    err = capsys.readouterr().err
    for seed in (0, 1):
        directory = _pictures(out_dir, seed)
        assert {p.name for p in directory.iterdir()} == PICTURES
        recon = np.asarray(Image.open(directory / "recon.png"))
        # 4 fixed clips, input above reconstruction: 8 strips of 4 frames of 8 x 8, 2-px gaps, upscaled
        assert recon.shape == ((8 * 8 + 7 * GAP) * SCALE, 4 * 8 * SCALE, 3)
    assert "picture samples-static not rendered (not applicable: toyae has no sample()" in err
    assert "zeroshot" not in err  # one dataset in the run: no zero-shot inputs, nothing to say
    # Both seeds drew the same fixed clips: the input rows of their reconstructions are identical.
    first, second = (np.asarray(Image.open(_pictures(out_dir, s) / "recon.png")) for s in (0, 1))
    assert (first[:8 * SCALE] == second[:8 * SCALE]).all()
    client = MlflowClient(tracking_uri=f"sqlite:///{out_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("seqbench")
    children = client.search_runs([experiment.experiment_id], filter_string="tags.`seqbench.method` = 'toyae'")
    assert len(children) == 2
    for child in children:
        # at the artifact root: the only files MLflow's run-comparison page puts side by side
        logged = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert logged == PICTURES


def test_cached_cells_still_get_pictures_and_no_visuals_turns_them_off(toy_plugin, cache_dir, tmp_path):
    out_dir = tmp_path / "out"
    assert main(["run", *TOY, "-o", str(tmp_path / "first"), "-p", "no:mlflow_plugin"]) == 0
    assert main(["run", *TOY, "-o", str(out_dir), "-p", "no:mlflow_plugin"]) == 0  # every cell cached
    assert {p.name for p in _pictures(out_dir).iterdir()} == PICTURES
    assert main(["run", *TOY, "-o", str(tmp_path / "off"), "-p", "no:mlflow_plugin", "--no-visuals"]) == 0
    assert not list((tmp_path / "off").glob("runs/*/visuals"))


BROKEN = '''
from seqbench import hookimpl


@hookimpl
def seqbench_render_visuals(unit, directory):
    raise RuntimeError("the picture plugin exploded")
'''


def test_a_failing_picture_plugin_is_a_warning_and_the_run_goes_on(toy_plugin, cache_dir, tmp_path, monkeypatch,
                                                                      capsys):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "broken_pictures.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    out_dir = tmp_path / "out"
    assert main(["run", *TOY, "-o", str(out_dir), "-p", "broken_pictures", "-p", "no:mlflow_plugin"]) == 0
    err = capsys.readouterr().err
    assert "pictures of plugin broken_pictures failed: RuntimeError: the picture plugin exploded" in err
    assert {p.name for p in _pictures(out_dir).iterdir()} == PICTURES  # the built-in pictures are still there


def test_show_draws_the_cached_model_and_names_the_command_when_there_is_none(toy_plugin, cache_dir, tmp_path, capsys):
    shown = tmp_path / "shown"
    assert main(["show", "--method", "toyae", "--dataset", "toy-bars", "--profile", "smoke", "--what", "swaps",
                 "-o", str(shown)]) == 2
    err = capsys.readouterr().err
    assert ("no trained toy-bars/toyae/seed0 model for the smoke profile" in err and
            "train it first with `seqbench run --methods toyae --dataset toy-bars --profile smoke --seeds 0`" in err)
    assert not shown.exists()
    out_dir = tmp_path / "out"
    assert main(["run", *TOY, "-o", str(out_dir), "-p", "no:mlflow_plugin"]) == 0
    capsys.readouterr()
    assert main(["show", "--method", "toyae", "--dataset", "toy-bars", "--profile", "smoke", "--what", "swaps,samples",
                 "-o", str(shown)]) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "samples-static: not applicable" in captured.err
    assert "training" not in captured.err
    # Exactly the picture the run drew: the same fixed clips, the same model.
    assert (np.asarray(Image.open(shown / "swaps.png")) == np.asarray(Image.open(_pictures(out_dir) / "swaps.png"))).all()
    assert main(["show", "--method", "toyae", "--dataset", "toy-bars", "--profile", "smoke", "--what", "zeroshot"]) == 2
    assert "--what zeroshot needs --on DATASET" in capsys.readouterr().err
    assert main(["show", "--method", "toyae", "--dataset", "toy-bars", "--profile", "smoke", "--what", "zeroshot",
                 "--on", "moving-digits"]) == 2
    assert "--on moving-digits: a toy-bars model cannot encode it" in capsys.readouterr().err
    assert main(["show", "--method", "toyae", "--dataset", "toy-bars", "--what", "swapz"]) == 2
    assert "--what swapz: choose from recon, swaps, samples, traversal, zeroshot or all" in capsys.readouterr().err
