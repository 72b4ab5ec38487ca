"""The framework's training loop: exact resume, NaN guard, validation-based model selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqbench.data import carve_validation
from seqbench.errors import TrainingDivergedError
from seqbench.trainer import BEST, CHECKPOINT, Trainer, batch_indices, total_steps


def _setup(toy_plugin, **overrides):
    import seqbench_toy

    adapter = seqbench_toy.ToyBars()
    config = seqbench_toy.ToyConfig.for_profile("smoke").with_overrides(overrides)
    train, val = carve_validation(adapter.split("train"), 0.25, seed=0)
    torch.manual_seed(0)
    method = seqbench_toy.ToyAE(config, adapter.spec)
    return method, train, val


def _fit(method, train, val, workdir, seed=0):
    return Trainer(method, train, val, device=torch.device("cpu"), seed=seed, workdir=workdir, progress=False).fit()


def test_batch_order_is_a_pure_function_of_seed_and_step():
    a = [batch_indices(50, 8, 3, s) for s in range(14)]
    b = [batch_indices(50, 8, 3, s) for s in range(14)]
    assert all((x == y).all() for x, y in zip(a, b))
    epoch0 = np.concatenate(a[:6])
    assert len(np.unique(epoch0)) == 48  # one epoch visits distinct clips, last partial batch dropped
    assert not (batch_indices(50, 8, 4, 0) == a[0]).all()


def test_epochs_convert_to_steps():
    from seqbench.config import MethodConfig

    assert total_steps(MethodConfig(epochs=2, batch_size=10), 95) == 18


def test_resume_is_exact(toy_plugin, tmp_path):
    method, train, val = _setup(toy_plugin, steps=12, checkpoint_every=4, val_every=4)
    _fit(method, train, val, tmp_path / "straight")
    straight = {k: v.clone() for k, v in method.state_dict().items()}

    # Interrupted run: train 8 steps (checkpoint at 8), then a fresh process resumes to 12.
    method2, _, _ = _setup(toy_plugin, steps=8, checkpoint_every=4, val_every=4)
    _fit(method2, train, val, tmp_path / "resumed")
    state = torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=True)
    assert state["step"] == 8
    method3, _, _ = _setup(toy_plugin, steps=12, checkpoint_every=4, val_every=4)
    trainer = Trainer(method3, train, val, device=torch.device("cpu"), seed=0, workdir=tmp_path / "resumed",
                      progress=False)
    result = trainer.fit()
    assert result.resumed_from == 8
    for key, value in straight.items():
        torch.testing.assert_close(method3.state_dict()[key], value, rtol=0, atol=0)


def test_nan_guard_stops_with_actionable_error(toy_plugin, tmp_path):
    method, train, val = _setup(toy_plugin, lr=1e30, steps=50)
    with torch.no_grad():
        for p in method.parameters():
            p.fill_(1e30)
    with pytest.raises(TrainingDivergedError, match=r"toyae.lr=.*grad_clip"):
        _fit(method, train, val, tmp_path / "nan")


def test_model_selection_uses_validation_not_last_step(toy_plugin, tmp_path):
    method, train, val = _setup(toy_plugin, steps=12, val_every=4, checkpoint_every=4)
    trainer = Trainer(method, train, val, device=torch.device("cpu"), seed=0, workdir=tmp_path / "sel",
                      progress=False)
    result = trainer.fit()
    assert result.best_step in (4, 8, 12)
    best = torch.load(tmp_path / "sel" / BEST, weights_only=True)
    for key, value in best.items():
        torch.testing.assert_close(method.state_dict()[key], value)
    assert result.best_val == pytest.approx(trainer.validate(), rel=1e-5)


def test_validation_split_is_carved_by_identity(toy_plugin):
    import seqbench_toy

    data = seqbench_toy.ToyBars().split("train")
    train, val = carve_validation(data, 0.25, seed=0)
    assert len(train) + len(val) == len(data) and len(val) == 12
    assert not set(train.identity) & set(val.identity)


def _toy_data(n=40):
    from seqbench.data import SplitData

    rng = np.random.default_rng(0)
    return SplitData(x=rng.random((n, 2, 1, 4, 4), dtype=np.float32), labels={"y": rng.integers(0, 2, n)},
                     identity=np.arange(n))


def _toy_fit(score_fn, caller_seed: int, **config):
    """A linear classifier fitted by :func:`fit_model` with the caller's RNG at ``caller_seed``; dropout
    makes every step draw from the RNG, so any leak between the caller's stream and the fit shows."""
    from seqbench.trainer import FitConfig, fit_model

    torch.manual_seed(123)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(32, 2))
    ce = torch.nn.CrossEntropyLoss()
    torch.manual_seed(caller_seed)
    result = fit_model(model, lambda m, batch: ce(m(batch.x), batch.labels["y"]), score_fn, _toy_data(),
                       FitConfig(max_steps=12, val_every=4, batch_size=8, **config), torch.device("cpu"))
    return model, result, torch.rand(3)


def test_evaluation_models_train_through_the_trainer_and_leave_the_callers_rng_alone():
    """Judges, learned backends and the VQ autoencoder train with :func:`fit_model`, which runs the
    Trainer (NaN guard, batch order, selection) seeded from its own config inside a fork of the RNG:
    the weights do not depend on what ran before, and the caller's stream is not advanced."""
    def accuracy(m, split):
        return float((m(torch.from_numpy(np.asarray(split.x))).argmax(1).numpy() == np.asarray(split.labels["y"])).mean())
    a, result_a, after_a = _toy_fit(accuracy, caller_seed=1)
    b, result_b, _ = _toy_fit(accuracy, caller_seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    torch.manual_seed(1)
    assert torch.equal(after_a, torch.rand(3))  # the caller's stream is where it was
    assert result_a.steps == 12 and result_a.val_items == 4 and result_a.train_items == 36
    assert result_a.best_val == result_b.best_val and np.isfinite(result_a.final_loss)
    # without a score: no validation split, the last weights are kept
    _, result_c, _ = _toy_fit(None, caller_seed=1)
    assert result_c.val_items == 0 and result_c.train_items == 40 and result_c.steps == 12


def test_an_evaluation_model_that_diverges_stops_with_the_step():
    from seqbench.trainer import FitConfig, fit_model

    model = torch.nn.Linear(32, 1)
    with pytest.raises(TrainingDivergedError, match=r"probe: loss is nan at step 0.*Lower its learning rate"):
        fit_model(model, lambda m, batch: m(batch.x.flatten(1)).mean() * float("nan"), lambda m, s: 0.0, _toy_data(),
                  FitConfig(max_steps=4, val_every=2, batch_size=8), torch.device("cpu"), desc="probe")


def test_diagnostics_see_a_fixed_draw_of_validation_clips_in_drawn_order(toy_plugin, tmp_path):
    """Splits are stored grouped by identity and the factor-usage diagnostic pairs each clip with its
    batch neighbour, so the diagnostic clips are drawn across the split (unsorted), not the first ones."""
    from seqbench.trainer import DIAGNOSTIC_CLIPS, _Supervised, diagnostic_items

    drawn = diagnostic_items(900)
    assert len(drawn) == DIAGNOSTIC_CLIPS == len(set(drawn.tolist())) and list(drawn) == list(diagnostic_items(900))
    grouped = np.arange(900) // 9  # 9 clips per identity, stored in order
    assert np.mean(grouped[drawn] == np.roll(grouped[drawn], 1)) < 0.1  # the first 64: 0.88
    method, train, val = _setup(toy_plugin, steps=4, val_every=4)
    seen = []
    method.validation_diagnostics = lambda batch: seen.append(batch.x.clone()) or {"probe": 1.0}
    trainer = Trainer(method, train, val, device=torch.device("cpu"), seed=0, workdir=tmp_path, progress=False)
    assert trainer.diagnostics() == {"usage/probe": 1.0}
    assert torch.equal(seen[0], val.batch(diagnostic_items(len(val))).x)
    assert not torch.equal(seen[0], val.batch(np.arange(len(val))).x)
    assert _Supervised.validation_diagnostics is None  # evaluation models: no diagnostic batch at all
