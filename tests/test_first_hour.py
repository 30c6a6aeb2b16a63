"""What a new user meets first: the checkpoint cadence, the warmup, VAE reporting, truthful
messages, codes written from the command line and runs loaded in the data's own units."""

import json
import warnings

import jax
import numpy as np
import pytest
from _configs import SMALL

import aejax
from aejax import bounds, cli
from aejax.assemble import train
from aejax.data import Dataset
from aejax.errors import ConfigError, TrainingDivergedError
from aejax.train import loop as loop_mod
from aejax.train import make_optimizer
from aejax.train.checkpoint import Checkpointer
from aejax.train.optim import make_schedule, warmup_steps
from aejax.train.resume import committed_epoch

# The defaults' cadence: by wall clock (30 s), so a short run checkpoints only at its end.
TIMED = SMALL.replace(checkpoint_every=0)


def _steps(workdir):
    with Checkpointer(workdir / "checkpoints", read_only=True) as c:
        return c.steps()


# --- checkpoint cadence ------------------------------------------------------------------


def test_default_cadence_checkpoints_a_short_run_once_at_its_end(digits, tmp_path):
    assert aejax.Config().checkpoint_every == 0 and aejax.Config().checkpoint_seconds == 30
    result = train(TIMED.replace(epochs=4), tmp_path, dataset=digits)
    assert _steps(tmp_path) == [4 * result.stats["steps_per_epoch"]]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def test_checkpoint_every_and_seconds_add_checkpoints(digits, tmp_path):
    every = train(SMALL.replace(epochs=5, checkpoint_every=2, keep_checkpoints=9), tmp_path / "a")
    per_epoch = every.stats["steps_per_epoch"]
    assert _steps(tmp_path / "a") == [2 * per_epoch, 4 * per_epoch, 5 * per_epoch]
    train(TIMED.replace(epochs=3, checkpoint_seconds=0, keep_checkpoints=9), tmp_path / "b")
    assert _steps(tmp_path / "b") == [per_epoch, 2 * per_epoch, 3 * per_epoch]


def test_a_run_killed_before_its_first_checkpoint_restarts_to_the_same_bits(digits, tmp_path):
    config = TIMED.replace(epochs=3)
    reference = train(config, dataset=digits)

    def stop(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path, dataset=digits, on_epoch_end=stop)
    assert committed_epoch(tmp_path) is None
    resumed = train(config, tmp_path, dataset=digits)
    assert resumed.stats["epochs_run"] == 3  # nothing was saved: it started over
    for a, b in zip(_flat(reference.params), _flat(resumed.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]


def _flat(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_interrupt_messages_say_what_is_kept(digits, tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    real = loop_mod.rundir.append_metrics

    def append_then_stop(path, record):
        real(path, record)
        calls["n"] += 1
        if calls["n"] == 2:
            raise cli.Terminated

    monkeypatch.setattr(loop_mod.rundir, "append_metrics", append_then_stop)
    args = ["train", "--epochs", "4", "--set", "hidden=16", "--no-progress"]
    # In process (argv given) the interrupt is raised again after the message: the caller
    # (here pytest) owns Ctrl-C.
    with pytest.raises(cli.Terminated):
        cli.main([*args, "--workdir", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert "terminated (SIGTERM); no checkpoint had been written yet" in err, err
    calls["n"] = 0
    every = [*args, "--set", "checkpoint_every=1", "--workdir", str(tmp_path / "b")]
    with pytest.raises(cli.Terminated):
        cli.main(every)
    err = capsys.readouterr().err
    # Stopped while logging epoch 2, before its checkpoint: epoch 1 is the last one.
    assert "the checkpoint of epoch 1 is kept in" in err and "resumes it" in err, err


def test_divergence_before_any_checkpoint_says_none_was_written(digits, tmp_path):
    poisoned = Dataset(
        "digits",
        "tabular",
        digits.x_train.reshape(-1, 64) * 1e30,
        digits.x_val.reshape(-1, 64),
        digits.x_test.reshape(-1, 64),
    )
    with pytest.raises(TrainingDivergedError, match="No checkpoint had been written yet"):
        train(TIMED.replace(epochs=2), tmp_path, dataset=poisoned)


# --- warmup --------------------------------------------------------------------------------


def test_warmup_is_a_fraction_of_the_run_unless_given_in_steps():
    config = aejax.Config(lr=1e-2)
    assert warmup_steps(config, 100) == 5 and warmup_steps(config, 2000) == 100
    schedule = make_schedule(config, 100)
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(1e-2)  # the peak, after 5% of 100 steps
    assert warmup_steps(config.replace(warmup_steps=30), 100) == 30
    assert warmup_steps(config.replace(warmup_steps=500), 100) == 99  # capped
    assert warmup_steps(config.replace(warmup_fraction=0.0), 100) == 0
    with pytest.raises(ConfigError, match="warmup_fraction"):
        config.replace(warmup_fraction=1.5)
    make_optimizer(config, 100)  # builds


def test_a_five_epoch_run_reaches_its_learning_rate(digits):
    result = train(SMALL.replace(epochs=5, warmup_steps=None), dataset=digits)
    lrs = [r["lr"] for r in result.history]
    peak = SMALL.lr
    # Warm for 5% of the 100 steps, then cosine decay: epoch 1 ends past the peak.
    assert lrs[0] > 0.9 * peak and lrs == sorted(lrs, reverse=True), lrs


# --- VAE reporting -------------------------------------------------------------------------


def test_active_units_counts_units_whose_mean_varies():
    rng = np.random.default_rng(0)
    means = np.column_stack([rng.normal(0, 1, 500), np.full(500, 3.0), rng.normal(0, 0.05, 500)])
    assert bounds.active_units(means) == 1  # variances ~1, 0 and 0.0025 against 0.01
    assert bounds.active_units(means, threshold=0.001) == 2


VAE = SMALL.replace(model="vae", epochs=3)


def test_vae_summary_reports_elbo_kl_and_active_units(digits):
    summary, _ = aejax.train_and_evaluate(VAE, dataset=digits, plot=False)
    assert summary["test_elbo"] == pytest.approx(
        -(summary["test_reconstruction_nll"] + summary["test_kl"])
    )
    assert summary["test_kl"] > 0 and summary["latent_units"] == 8
    assert 1 <= summary["active_units"] <= 8 and "warning" not in summary
    table = cli.format_table(summary)
    assert "test ELBO" in table and "latent units active" in table
    assert "the mean over test images of each image's PSNR" in table
    assert "best validation epoch" in table


def test_a_collapsed_posterior_is_warned_about(digits):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary, _ = aejax.train_and_evaluate(
            VAE.replace(beta=200.0, epochs=4), dataset=digits, plot=False
        )
    assert summary["active_units"] == 0, summary
    assert any("posterior collapse" in str(w.message) for w in caught)
    assert "kl_warmup_steps" in summary["warning"]


# --- saved runs: codes out, data units in ---------------------------------------------------


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    assert cli.main(["train", "--epochs", "2", "--set", "hidden=16", "--no-progress",
                     "--workdir", str(workdir)]) == 0  # fmt: skip
    return workdir


def test_encode_writes_npy_npz_and_csv(image_run, digits, capsys):
    run = aejax.load_run(image_run)
    expected = run.encode(digits.x_test)
    for name in ("codes.npy", "codes.npz", "codes.csv"):
        assert cli.main(["encode", str(image_run), "--out", str(image_run / name)]) == 0
    assert "360 test examples of digits, codes of size 8" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(image_run / "codes.npy"), expected)
    npz = np.load(image_run / "codes.npz")
    np.testing.assert_array_equal(npz["labels"], digits.y_test)
    table = np.loadtxt(image_run / "codes.csv", delimiter=",", skiprows=1)
    header = (image_run / "codes.csv").read_text().splitlines()[0]
    assert header == "z1,z2,z3,z4,z5,z6,z7,z8,label"
    np.testing.assert_allclose(table[:, :8], expected, rtol=1e-6)
    np.testing.assert_array_equal(table[:, 8], digits.y_test)
    out = image_run / "all.npy"
    assert cli.main(["encode", str(image_run), "--out", str(out), "--split", "all"]) == 0
    assert np.load(out).shape == (1797, 8)
    assert cli.main(["encode", str(image_run), "--out", str(image_run / "c.txt")]) == 2
    assert "unknown file type '.txt'" in capsys.readouterr().err


def test_evaluate_takes_data_options_and_refuses_others(image_run, capsys):
    assert cli.main(["evaluate", str(image_run), "--set", "download=false", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data"] == "digits"
    assert cli.main(["evaluate", str(image_run), "--set", "seed=3"]) == 2
    assert "seed: not a data option" in capsys.readouterr().err


def test_load_run_works_in_the_data_units_of_a_table(tmp_path):
    rng = np.random.default_rng(0)
    # One factor, three columns of very different offsets and scales, a little noise.
    factor = rng.normal(size=(400, 1)) @ np.array([[10.0, -2.0, 0.005]])
    raw = factor + [1000.0, -5.0, 3.0] + rng.normal(size=(400, 3)) * [0.1, 0.02, 5e-5]
    path = tmp_path / "t.npy"
    np.save(path, raw.astype(np.float32))
    config = SMALL.replace(data=str(path), latent_dim=1, epochs=30, hidden=(16,))
    aejax.train_and_evaluate(config, tmp_path / "run", plot=False)
    run = aejax.load_run(tmp_path / "run")
    config_, model, variables, scaler = run  # still unpacks as a 4-tuple
    assert scaler is not None and config_.data == str(path)
    recon = run.reconstruct(raw)
    # In data units: the error is small against each column's own spread.
    rel = np.abs(recon - raw).mean(0) / raw.std(0)
    assert (rel < 0.3).all(), rel
    np.testing.assert_array_equal(
        run.encode(raw), aejax.encode(model, variables, raw, scaler=scaler)
    )
    np.testing.assert_allclose(run.decode(run.encode(raw[:5])), recon[:5], rtol=1e-5, atol=1e-4)
    assert run.sample(7).shape == (7, 3)


def test_an_unprepared_tfds_set_is_one_error_without_absl_warnings(tmp_path, caplog):
    from aejax.errors import DataError

    with caplog.at_level("WARNING"), pytest.raises(DataError, match="not prepared"):
        aejax.load_dataset("tfds:mnist", data_dir=str(tmp_path))
    assert not [r for r in caplog.records if r.name == "absl"], caplog.text
