"""The engine on objects: ``fit`` below the config boundary, ``EarlyStopping``, the epoch body
that stacked pretraining shares."""

import json
import math

import numpy as np
import pytest
from _configs import SMALL
from _trees import host_leaves

import aejax
from aejax.assemble import assemble, train
from aejax.errors import ConfigError
from aejax.train import EarlyStopping, LoopSettings, fit, pretrain
from aejax.train import epoch as epoch_mod


def test_early_stopping_stops_after_patience_bad_epochs():
    stopper = EarlyStopping(patience=2, min_delta=0.5)
    # 10 -> 9 improves; 8.7 and 8.6 are within min_delta of 9: two bad epochs, stop.
    assert [stopper.update(v) for v in (10.0, 9.0, 8.7, 8.6)] == [False, False, False, True]
    assert (stopper.epoch, stopper.best, stopper.best_epoch, stopper.bad_epochs) == (4, 9.0, 2, 2)
    assert not stopper.improved and stopper.stopped
    never = EarlyStopping(patience=0)
    assert not any(never.update(v) for v in (1.0, 2.0, 3.0, 4.0))
    assert never.best_epoch == 1 and never.bad_epochs == 3


def test_early_stopping_state_round_trips_through_json():
    stopper = EarlyStopping(patience=3, min_delta=0.1)
    assert stopper.state_dict() == {
        "epoch": 0,
        "best_val": math.inf,
        "best_epoch": -1,
        "bad_epochs": 0,
        "stopped_early": False,
    }
    for v in (5.0, 4.0, 4.05):
        stopper.update(v)
    saved = json.loads(json.dumps(stopper.state_dict()))  # as a checkpoint's metadata holds it
    resumed = EarlyStopping(patience=3, min_delta=0.1)
    resumed.load_state_dict(saved)
    assert resumed == stopper
    # The same decisions from here on as the run never interrupted.
    for v in (4.2, 3.99):
        assert resumed.update(v) == stopper.update(v)
    assert resumed == stopper and resumed.stopped


def test_early_stopping_in_a_run_stops_at_the_expected_epoch(digits):
    config = aejax.Config(
        model="ae", data="digits", hidden=(32,), latent_dim=4, epochs=6, batch_size=64,
        lr=3e-2, patience=2, min_delta=1.5, progress=False, devices=1,
    )  # fmt: skip
    result = train(config, dataset=digits)
    # Validation losses 24.47, 21.99, 21.04, 20.58 (figures of the loop before the refactor):
    # epochs 3 and 4 improve by less than 1.5 on epoch 2's.
    assert [round(r["val_loss"], 2) for r in result.history] == [24.47, 21.99, 21.04, 20.58]
    stats = result.stats
    assert (stats["epochs_run"], stats["best_epoch"], stats["stopped_early"]) == (4, 2, True)


def test_fit_on_objects_equals_train_of_the_config(digits):
    run = assemble(SMALL, digits)
    assert run.settings == LoopSettings(
        epochs=3, batch_size=64, seed=0, checkpoint_every=1, checkpoint_seconds=30.0,
        devices=1, label="ae/digits",
    )  # fmt: skip
    # No Config below the boundary: fit is given objects only.
    direct = fit(run.model, run.objective, run.optimizers, run.dataset, run.settings)
    assert direct.config is None
    via_config = train(SMALL, dataset=digits)
    for a, b in zip(host_leaves(direct.params), host_leaves(via_config.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [r["train_loss"] for r in direct.history] == [
        r["train_loss"] for r in via_config.history
    ]
    assert "lr" not in direct.history[0] and "lr" in via_config.history[0]
    assert via_config.stats["pretrain"] is None


def test_fit_with_a_workdir_needs_the_config_as_its_record(digits, tmp_path):
    run = assemble(SMALL, digits)
    with pytest.raises(ConfigError, match="record="):
        fit(run.model, run.objective, run.optimizers, run.dataset, run.settings, tmp_path)
    assert not any(tmp_path.iterdir())


STACKED = aejax.Config(
    model="stacked_ae", data="digits", hidden=(32, 16), latent_dim=4, pretrain_epochs=3,
    epochs=3, batch_size=64, lr=3e-3, warmup_steps=5, progress=False, devices=1,
)  # fmt: skip


def test_pretraining_runs_the_shared_epoch_body_to_the_same_numbers(digits, monkeypatch):
    calls = []
    real = epoch_mod.run_epoch

    def counting(*args, **kwargs):
        calls.append(args[3].shape)  # the layer's inputs
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrain, "run_epoch", counting)
    pre = pretrain.pretrain(STACKED, digits)
    assert (
        calls
        == [(digits.x_train.shape)] * 3
        + [(digits.x_train.shape[0], 32)] * 3
        + [(digits.x_train.shape[0], 16)] * 3
    )
    # The training losses of each layer's epochs as the loop of its own gave them before
    # pretraining shared the engine's epoch body (the same bits: float32 sums on CPU).
    expected = [
        [41.058982849121094, 31.642230987548828, 28.413253784179688],
        [22.42470932006836, 11.209026336669922, 6.289450645446777],
        [14.032748222351074, 10.2722749710083, 9.013056755065918],
    ]
    got = [[r["train_loss"] for r in layer["history"]] for layer in pre.layers]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert pre.test["sse_per_example"] == pytest.approx(9.134478081597223, rel=1e-6)
