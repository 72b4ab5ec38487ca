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
