"""One options mechanism: every plugin kind's options are typed by one parser and checked in ``plan()``.

The acceptance of issue 18: a bad metric, dataset, judge or backend option of ``seqbench run`` is a
usage error (exit 2) that names the flag and lists the valid keys, before anything trains.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from seqbench.cli import build_parser, main
from seqbench.config import (PROFILE_REGISTRY, PROFILES, Scalar, coerce, declared_options, get_profile,
                             parse_options, run_settings)
from seqbench.errors import ConfigError
from seqbench.judges import JudgeConfig


@pytest.mark.parametrize("args, message", [
    # the acceptance command: the default methods, dataset and profile
    (["--metrics", "mse", "--metric-option", "mse.bogus=3"],
     "metric option mse.bogus does not exist; valid options: path"),
    (["--metrics", "mse", "--data-option", "synthetic-sprites.bogus=3"],
     "dataset 'synthetic-sprites' has no option(s) ['bogus']; its options are size"),
    (["--metrics", "mse", "--data-option", "synthetic-sprites.size=abc"], "size='abc' must be an integer"),
    (["--metrics", "mse", "--data-option", "synthetic-sprite.size=32"],
     "--data-option synthetic-sprite.…: unknown dataset 'synthetic-sprite'. Did you mean 'synthetic-sprites'?"),
    (["--metrics", "mse", "--data-option", "moving-digits.size=32"],
     "--data-option moving-digits.…: dataset 'moving-digits' is not part of this run (--dataset synthetic-sprites)"),
    (["--metrics", "judge", "--metric-option", "judge.judge_lr=abc"],
     "--metric-option judge.judge_lr='abc': expected a float"),
    (["--metrics", "judge", "--metric-option", "judge.judge_learning_rate=1"],
     "--metric-option judge.judge_learning_rate: the judge has no option 'learning_rate'. The valid judge options "
     "(judge.judge_KEY): augment, base_channels"),
    (["--metrics", "akd", "--metric-option", "akd.backend_bogus=1"],
     "metric option akd.backend_bogus does not exist: the default backends"),
    (["--metrics", "akd", "--metric-option", "akd.backend=sprites-keypoints",
      "--metric-option", "akd.backend_max_steps=x"],
     "--metric-option akd.backend_max_steps='x': expected int"),
    # the second dataset's option and a --set typo are refused before the first dataset is generated
    (["--metrics", "mse", "--dataset", "synthetic-sprites,moving-digits", "--data-option", "moving-digits.size=abc"],
     "dataset 'moving-digits': size='abc' must be an integer"),
    (["--metrics", "mse", "--dataset", "synthetic-sprites,moving-digits", "--set", "dbse.lrr=1"],
     "--set dbse.lrr: DBSEConfig has no setting 'lrr'. Did you mean lr?"),
    (["--metrics", "mse", "--set", "cdsvae.lr=1"], "--set cdsvae.…: method 'cdsvae' is not part of this run"),
])
def test_a_bad_option_of_any_plugin_is_a_usage_error_before_anything_trains(cache_dir, tmp_path, capsys, args,
                                                                           message):
    out = tmp_path / "out"
    code = main(["run", *args, "-o", str(out), "--no-progress", "-p", "no:mlflow_plugin"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and err.startswith("seqbench: error: ") and "Traceback" not in err
    assert not (cache_dir / "models").exists() and not out.exists()  # refused before any work
    assert not (cache_dir / "datasets").exists()  # ... and before any data was generated


def test_a_config_file_option_is_checked_like_the_flag(cache_dir, tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('metrics = ["mse"]\n[metric_options.mse]\nbogus = 3\n')
    code = main(["run", "--config", str(config), "-o", str(tmp_path / "out"), "-p", "no:mlflow_plugin"])
    assert code == 2 and "metric option mse.bogus does not exist; valid options: path" in capsys.readouterr().err


def test_run_settings_merge_the_command_line_over_the_config_file(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('methods = "dbse"\nseeds = "0,1"\ndataset = "moving-digits"\noutput = "elsewhere"\n'
                      'plugins = ["no:a"]\n[set.dbse]\nlr = 1e-3\n[metric_options.judge]\nniter = 4\n')
    settings = run_settings({"methods": None, "seeds": [2], "overrides": ["dbse.steps=5"], "plugins": ["no:b"],
                             "metric_options": ["judge.niter=5", "mse.path=codes"], "dataset_options": []}, config)
    assert settings["methods"] == ["dbse"] and settings["seeds"] == [2] and settings["datasets"] == ["moving-digits"]
    assert settings["output"] == Path("elsewhere") and settings["plugins"] == ["no:a", "no:b"]
    assert settings["overrides"] == {"dbse": {"lr": 1e-3, "steps": "5"}}
    assert settings["metric_options"] == {"judge": {"niter": 5}, "mse": {"path": "codes"}}
    with pytest.raises(ConfigError, match="--metric-option needs METRIC.KEY=VALUE"):
        run_settings({"metric_options": ["niter=5"]})
    config.write_text("nosuch = 1\n")
    with pytest.raises(ConfigError, match=r"unknown keys nosuch; valid keys: .*metric_options"):
        run_settings({}, config)


def test_one_coercion_for_every_kind():
    assert coerce("1e-3", float, "lr") == 1e-3 and coerce("0.5,0.9", tuple[float, float], "betas") == (0.5, 0.9)
    assert coerce("none", float | None, "clip") is None and coerce("yes", bool, "amp") is True
    assert [coerce(text, Scalar, "k") for text in ("3", "0.5", "true", "abc")] == [3, 0.5, True, "abc"]
    with pytest.raises(ConfigError, match=r"--data-option size='big': expected int"):
        coerce("big", int, "size", "--data-option")
    declared = declared_options({"niter": 1, "scale": 1.0, "weights": None})
    assert declared == {"niter": int, "scale": float, "weights": Scalar}
    parsed = parse_options({"niter": "4", "scale": 2, "judge_lr": "0.1"}, declared, where="m.", flag="--metric-option",
                           unknown=lambda key, valid: f"no {key}; valid: {', '.join(valid)}", prefixes=("judge_",),
                           keep_native=True)
    assert parsed == {"niter": 4, "scale": 2, "judge_lr": 0.1}  # typed values kept as given (cache keys)
    with pytest.raises(ConfigError, match="no bogus; valid: niter, scale, weights, judge_"):
        parse_options({"bogus": 1}, declared, where="m.", flag="--metric-option", prefixes=("judge_",),
                      unknown=lambda key, valid: f"no {key}; valid: {', '.join(valid)}")


def test_judge_options_are_typed_by_the_judge_config():
    config = JudgeConfig().with_overrides({"lr": "0.003", "betas": "0.5,0.9", "max_steps": 100, "augment": 1})
    assert config.lr == 0.003 and config.betas == (0.5, 0.9) and config.max_steps == 100
    assert config.augment == 1 and dataclasses.asdict(config)["augment"] == 1  # kept as given: same judge key
    with pytest.raises(ConfigError, match="judge_max_steps='many': expected int"):
        JudgeConfig().with_overrides({"max_steps": "many"})


def test_backends_declare_their_options():
    from seqbench.plugins import load_plugins

    backends = load_plugins().backends
    sprites = backends.get("sprites-keypoints").declared_options()
    assert sprites["min_foreground"] is float and sprites["max_steps"] is int  # constructor + SpritesNetConfig
    assert backends.get("dlib-landmarks").declared_options()["upsample_to"] is int


def test_the_profile_registry_is_the_one_source():
    parser = build_parser()
    run = next(a for a in parser._subparsers._group_actions[0].choices["run"]._actions if a.dest == "profile")
    assert tuple(run.choices) == PROFILES == tuple(PROFILE_REGISTRY)
    assert get_profile("quick").eval_clips == 512 and get_profile("smoke").eval_clips == 64
    assert get_profile("paper").eval_clips is None
    with pytest.raises(ConfigError, match="choose one of smoke, quick, paper"):
        get_profile("fast")


def test_a_dataset_profile_overrides_its_family_for_that_dataset_only():
    """``dataset_profiles`` (per profile and dataset name) apply after the family's: C-DSVAE trains
    12000 steps on the real Sprites, 8000 on synthetic-sprites (same family), and ``--set`` still wins;
    DBSE trains 6000 on video and 3000 on synthetic-speech."""
    from seqbench.plugins import load_plugins
    from seqbench.runner.plan import resolve_config

    methods = load_plugins().methods
    cdsvae, dbse = methods.get("cdsvae"), methods.get("dbse")
    assert cdsvae.Config.for_profile("quick", "sprites", "sprites").steps == 12000
    assert cdsvae.Config.for_profile("quick", "sprites", "synthetic-sprites").steps == 8000
    assert cdsvae.Config.for_profile("quick", "sprites").steps == 8000
    assert dbse.Config.for_profile("quick", "speech", "synthetic-speech").steps == 3000
    assert dbse.Config.for_profile("quick", "sprites", "synthetic-sprites").steps == 6000
    from seqbench.types import DataSpec

    spec = DataSpec(name="synthetic-sprites", modality="video", frames=8, channels=3, height=32, width=32,
                    family="sprites")
    assert resolve_config(cdsvae, "quick", spec, {}).steps == 8000
    real = dataclasses.replace(spec, name="sprites")
    assert resolve_config(cdsvae, "quick", real, {}).steps == 12000
    assert resolve_config(cdsvae, "quick", real, {"cdsvae": {"steps": "4000"}}).steps == 4000
