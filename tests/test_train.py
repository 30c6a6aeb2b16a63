"""The training engine on real data: learning, determinism, compilation, resume, guards."""

import json

import jax
import numpy as np
import pytest
from _configs import SMALL
from _trees import host_leaves

import aejax
from aejax.assemble import train
from aejax.data import Dataset
from aejax.errors import CheckpointError, DataError, TrainingDivergedError
from aejax.train import loop as loop_mod
from aejax.train import shard
from aejax.train.checkpoint import Checkpointer
from aejax.train.epoch import evaluate_arrays

_leaves = host_leaves


def test_loss_falls_on_digits(digits):
    result = train(SMALL.replace(epochs=6), dataset=digits)
    losses = [r["train_loss"] for r in result.history]
    assert len(losses) == 6
    assert losses[-1] < 0.6 * losses[0], losses
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]


def test_ae_beats_pca_on_digits_at_latent_8(digits):
    config = SMALL.replace(hidden=(256, 128), epochs=40, lr=2e-3)
    summary, _ = aejax.train_and_evaluate(config, dataset=digits, plot=False)
    assert summary["latent_dim"] == 8
    # Measured: AE ~0.024 vs PCA-8 ~0.031 per-element MSE on the held-out split.
    assert summary["test_recon_mse"] < 0.9 * summary["pca_recon_mse"], summary
    assert summary["test_sse_per_example"] < summary["pca_sse_per_example"]


def test_interrupted_run_resumes_to_the_same_parameters(digits, tmp_path):
    config = SMALL.replace(epochs=4)
    full = train(config, tmp_path / "full", dataset=digits)

    def crash_after_two(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", dataset=digits, on_epoch_end=crash_after_two)
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    resumed = train(config, tmp_path / "cut", dataset=digits)
    assert resumed.stats["epochs_run"] == 2
    assert int(resumed.state.step) == int(full.state.step)
    for x, y in zip(_leaves(full.state), _leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(_leaves(full.params), _leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(x, y)
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]


def test_workdir_of_another_config_is_refused(digits, tmp_path):
    train(SMALL.replace(epochs=1), tmp_path, dataset=digits)
    with pytest.raises(CheckpointError, match=r"latent_dim: 8 -> 4.*--fresh"):
        train(SMALL.replace(epochs=1, latent_dim=4), tmp_path, dataset=digits)
    # Presentation-only fields do not count as another run.
    train(SMALL.replace(epochs=1, progress=True, keep_checkpoints=3), tmp_path, dataset=digits)
    fresh = train(SMALL.replace(epochs=1, latent_dim=4), tmp_path, dataset=digits, fresh=True)
    assert fresh.stats["epochs_run"] == 1


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(digits, tmp_path):
    config = SMALL.replace(epochs=4)

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path, dataset=digits, on_epoch_end=stop_after_two)
    # Finite but enormous inputs overflow the squared error to inf in the next epoch.
    poisoned = Dataset(
        "digits",
        "tabular",
        digits.x_train.reshape(-1, 64) * 1e30,
        digits.x_val.reshape(-1, 64),
        digits.x_test.reshape(-1, 64),
    )
    with pytest.raises(TrainingDivergedError, match="epoch 3.*last good checkpoint"):
        train(config.replace(data="digits"), tmp_path, dataset=poisoned)
    with Checkpointer(tmp_path / "checkpoints", read_only=True) as c:
        assert c.read_meta()["loop"]["epoch"] == 2


def test_nonfinite_skip_policy_leaves_params_unchanged(digits):
    poisoned = Dataset(
        "digits",
        "tabular",
        digits.x_train.reshape(-1, 64) * 1e30,
        digits.x_val.reshape(-1, 64),
        digits.x_test.reshape(-1, 64),
    )
    config = SMALL.replace(epochs=1, nonfinite="skip")
    with pytest.warns(UserWarning, match="skipped"):
        result = train(config, dataset=poisoned)
    assert result.history[0]["skipped_nonfinite_steps"] == result.stats["steps_per_epoch"]
    assert all(np.all(np.isfinite(x)) for x in _leaves(result.params))


def test_early_stopping_restores_best_parameters(digits, tmp_path):
    # A huge min_delta makes every epoch after the first "not better".
    config = SMALL.replace(epochs=10, patience=2, min_delta=1e9)
    result = train(config, tmp_path, dataset=digits)
    assert result.stats["stopped_early"] and result.stats["epochs_run"] == 3
    assert result.stats["best_epoch"] == 1
    assert any(
        not np.array_equal(x, y)
        for x, y in zip(_leaves(result.params), _leaves(result.state.params), strict=True)
    )
    # The returned parameters are epoch 1's: they score epoch 1's validation loss.
    model = result.model
    eval_step = jax.jit(aejax.make_eval_step(model, aejax.make_objective(SMALL, 1)))
    mesh = shard.make_mesh(1)
    val = evaluate_arrays(eval_step, result.params, digits.x_val, 64, mesh)
    np.testing.assert_allclose(val["loss"], result.history[0]["val_loss"], rtol=1e-6)


def test_bad_dataset_is_refused_before_training(digits):
    x = digits.x_train.copy()
    x[3, 0, 0, 0] = np.nan
    bad = Dataset("digits", "image", x, digits.x_val, digits.x_test)
    with pytest.raises(DataError, match="NaN/Inf.*row 3"):
        train(SMALL, dataset=bad)


def test_tensorboard_scalars_are_written(digits, tmp_path):
    import struct

    from tensorboardX.proto import event_pb2

    train(SMALL.replace(epochs=2, tensorboard=True), tmp_path, dataset=digits)
    files = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    data, scalars = files[0].read_bytes(), {}
    while data:  # TFRecord framing: length, crc, payload, crc
        (n,) = struct.unpack("<Q", data[:8])
        event = event_pb2.Event.FromString(data[12 : 12 + n])
        data = data[16 + n :]
        for v in event.summary.value:
            scalars.setdefault(v.tag, []).append((event.step, v.simple_value))
    log = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [s for s, _ in scalars["train_loss"]] == [r["step"] for r in log]
    np.testing.assert_allclose(
        [v for _, v in scalars["val_loss"]], [r["val_loss"] for r in log], rtol=1e-6
    )


def test_train_starts_from_init_params_and_checks_them(digits):
    first = train(SMALL.replace(epochs=3), dataset=digits)
    scratch = train(SMALL.replace(epochs=1), dataset=digits)
    warm = train(SMALL.replace(epochs=1), dataset=digits, init_params=first.params)
    # A second phase continues from the first one's parameters (with a fresh optimizer).
    assert warm.history[0]["train_loss"] < 0.8 * scratch.history[0]["train_loss"]
    assert warm.history[0]["train_loss"] < first.history[0]["train_loss"]
    with pytest.raises(aejax.ConfigError, match=r"init_params do not fit.*reshaped"):
        train(SMALL.replace(epochs=1, latent_dim=4), dataset=digits, init_params=first.params)


def test_checkpoint_of_the_old_format_is_refused_naming_it(digits, tmp_path, monkeypatch):
    from aejax.train import checkpoint

    monkeypatch.setattr(checkpoint, "FORMAT", 1)  # what aejax 0.1 wrote (no "format" key)
    train(SMALL.replace(epochs=1), tmp_path, dataset=digits)
    monkeypatch.undo()
    with pytest.raises(
        CheckpointError, match=r"format 1 \(aejax 0.1.*reads formats 2 and 3.*--fresh"
    ):
        train(SMALL.replace(epochs=1), tmp_path, dataset=digits)
    with pytest.raises(CheckpointError, match="format 1"):
        aejax.load_run(tmp_path)


def test_more_epochs_continue_a_run_and_a_finished_run_is_not_compiled(
    digits, tmp_path, monkeypatch
):
    five = train(SMALL.replace(epochs=2), tmp_path, dataset=digits)
    # Run again as it is: complete, so nothing is compiled or trained.
    compiled = []
    real_jit = loop_mod.xla.jit
    monkeypatch.setattr(
        loop_mod.xla, "jit", lambda *a, **k: compiled.append(a[0].__name__) or real_jit(*a, **k)
    )
    again = train(SMALL.replace(epochs=2), tmp_path, dataset=digits)
    assert again.stats["already_complete"] and again.stats["epochs_run"] == 0
    assert "loop_step" not in compiled and again.stats["compile_seconds"] == 0.0
    for x, y in zip(_leaves(five.params), _leaves(again.params), strict=True):
        np.testing.assert_array_equal(x, y)
    # More epochs continue it from its last checkpoint (fewer are another run: refused).
    longer = train(SMALL.replace(epochs=4), tmp_path, dataset=digits)
    assert longer.stats["epochs_run"] == 2 and not longer.stats["already_complete"]
    assert [r["epoch"] for r in longer.history] == [1, 2, 3, 4]
    assert int(longer.state.step) == 4 * longer.stats["steps_per_epoch"]
    assert longer.history[-1]["train_loss"] < five.history[-1]["train_loss"]
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 4
    with pytest.raises(CheckpointError, match=r"epochs: 4 -> 3"):
        train(SMALL.replace(epochs=3), tmp_path, dataset=digits)
