"""Bad input through the command line and the Python API: a clear error or a documented result.

Command-line cases run ``cli.main`` in this process (fast: they fail before compiling) and
check the exit code and stderr; two run as real processes to check what a user sees.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import aejax
from aejax import Config, cli
from aejax.assemble import train
from aejax.data import load_dataset
from aejax.data.pixels import to_unit
from aejax.errors import DataError
from aejax.evaluate import train_and_evaluate
from aejax.run import load_run

TINY = dict(
    hidden=(8,),
    latent_dim=2,
    epochs=1,
    batch_size=32,
    lr=3e-3,
    warmup_steps=2,
    progress=False,
    devices=1,
)


def _csv(path, rows):
    path.write_text("\n".join(rows) + "\n")
    return path


def _train_cli(capsys, data, workdir, *extra):
    rc = cli.main(
        [
            "train",
            "--data",
            str(data),
            "--workdir",
            str(workdir),
            "--devices",
            "1",
            "--epochs",
            "1",
            "--no-progress",
            *extra,
        ]
    )
    return rc, capsys.readouterr().err


def _table(n=120, d=5, seed=0):
    return np.random.default_rng(seed).normal(3.0, 2.0, size=(n, d))


@pytest.fixture(scope="module")
def tab_run(tmp_path_factory):
    """A 1-epoch run on a 5-column CSV table."""
    d = tmp_path_factory.mktemp("tab")
    np.savetxt(d / "t.csv", _table(), delimiter=",")
    train(Config(data=str(d / "t.csv"), **TINY), d / "run")
    return d / "run"


@pytest.fixture(scope="module")
def img_run(tmp_path_factory):
    """A 1-epoch run on 8-bit 6x6 images stored as uint8."""
    d = tmp_path_factory.mktemp("img")
    np.save(d / "img.npy", np.random.default_rng(0).integers(0, 256, (80, 6, 6), np.uint8))
    train(Config(data=str(d / "img.npy"), **TINY), d / "run")
    return d / "run"


# --- the command line ------------------------------------------------------------------------


def _nan_csv(d):
    return _csv(d / "nan.csv", ["a,b", "1,2", "3,nan", "inf,4", "5,6"])


def _inf_npy(d):
    x = np.ones((10, 3))
    x[4, 2] = -np.inf
    np.save(d / "inf.npy", x)
    return d / "inf.npy"


def _empty_csv(d):
    (d / "empty.csv").write_text("")
    return d / "empty.csv"


def _header_only_csv(d):
    return _csv(d / "header.csv", ["a,b,c"])


def _zero_rows_npy(d):
    np.save(d / "rows0.npy", np.zeros((0, 4)))
    return d / "rows0.npy"


def _one_row_csv(d):
    return _csv(d / "one.csv", ["a,b", "1.5,2.5"])


def _strings_csv(d):
    return _csv(d / "s.csv", ["x,y,z", "1,2,3", "4,abc,6"])


def _ragged_csv(d):
    return _csv(d / "r.csv", ["1,2,3", "4,5,6", "7,8"])


def _beyond_float32_csv(d):
    return _csv(d / "big.csv", ["1,2", "3,4e39", "5,6", "7,8"])


def _float_images_over_1(d):
    np.save(d / "f.npy", np.full((10, 4, 4), 2.0, np.float32))
    return d / "f.npy"


def _int_images_over_255(d):
    np.save(d / "i.npy", np.full((10, 4, 4), 300, np.int32))
    return d / "i.npy"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_nan_csv, r"nan.csv: x has 2 NaN/Inf values (first in row 1, counting from 0)"),
        (_inf_npy, r"inf.npy: x has 1 NaN/Inf values (first in row 4, counting from 0)"),
        (_empty_csv, "empty.csv: empty (no rows)"),
        (_header_only_csv, "header.csv: empty (a header row and no data rows)"),
        (_zero_rows_npy, "rows0.npy: x is empty (0 rows)"),
        (
            _one_row_csv,
            "1 example(s) are too few to split with val_fraction=0.1 and "
            "test_fraction=0.2: no training example would remain. At least 3 are needed",
        ),
        (_strings_csv, "'y' (column 2): row 3, column 2 is 'abc', not a number"),
        (_ragged_csv, "r.csv: row 3 has 2 columns, expected 3"),
        (_beyond_float32_csv, "big.csv: x has values beyond the float32 range"),
        (_float_images_over_1, "float images in x hold values in [2, 2]; expected [0, 1]: scale"),
        (_int_images_over_255, "integer images in x hold values in [300, 300]; expected 0..255"),
    ],
    ids=lambda v: getattr(v, "__name__", "")[1:] or None,
)
def test_bad_data_is_a_clear_cli_error(tmp_path, capsys, make, message):
    rc, err = _train_cli(capsys, make(tmp_path), tmp_path / "run")
    assert rc == 2, err
    assert err.startswith("aejax train: error: data file ") and message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()  # a refused run leaves no directory behind


def test_no_test_split_is_refused_before_training(tmp_path, capsys):
    np.savetxt(tmp_path / "t.csv", _table(), delimiter=",")
    rc, err = _train_cli(capsys, tmp_path / "t.csv", tmp_path / "run", "--set", "test_fraction=0")
    assert rc == 2 and "has no test examples (test_fraction=0.0)" in err, err


def test_bad_config_file_is_a_clear_cli_error(tmp_path, capsys):
    rc, err = _train_cli(capsys, "digits", tmp_path / "run", "--config", str(tmp_path / "no.json"))
    assert rc == 2 and "--config" in err and "cannot read it as JSON" in err, err
    (tmp_path / "bad.json").write_text("[1, 2]")
    rc, err = _train_cli(capsys, "digits", tmp_path / "run", "--config", str(tmp_path / "bad.json"))
    assert rc == 2 and "expected a JSON object" in err, err


def test_evaluate_on_data_of_another_shape_or_kind(tab_run, img_run, tmp_path, capsys):
    np.savetxt(tmp_path / "four.csv", _table(d=4), delimiter=",")
    assert cli.main(["evaluate", str(tab_run), "--data", str(tmp_path / "four.csv")]) == 2
    err = capsys.readouterr().err
    assert "has tabular examples of shape (4,), but the run in" in err
    assert "was trained on tabular examples of shape (5,)" in err and "Traceback" not in err
    assert cli.main(["evaluate", str(img_run), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert "image examples of shape (8, 8, 1)" in err and "image examples of shape (6, 6, 1)" in err
    assert cli.main(["evaluate", str(tab_run), "--data", "digits"]) == 2
    assert "trained on tabular examples" in capsys.readouterr().err


def _process(*args):
    return subprocess.run(
        [sys.executable, "-m", "aejax.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_what_a_user_sees_in_a_real_process(tab_run, tmp_path):
    proc = _process("train", "--data", str(_nan_csv(tmp_path)), "--workdir", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("aejax train: error: data file ") and "NaN/Inf" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    np.save(tmp_path / "wide.npy", _table(d=7))
    proc = _process("evaluate", str(tab_run), "--data", str(tmp_path / "wide.npy"))
    assert proc.returncode == 2, proc.stderr
    assert "shape (7,)" in proc.stderr and "shape (5,)" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- the Python API --------------------------------------------------------------------------


def test_inference_checks_shape_values_and_pixel_types(tab_run, img_run):
    _, model, params, scaler = load_run(tab_run)
    x = scaler.transform(_table(n=10))
    assert aejax.encode(model, params, x).shape == (10, 2)
    assert aejax.encode(model, params, x[0]).shape == (1, 2)  # one example, no batch axis
    with pytest.raises(
        DataError,
        match=r"expects examples of shape \(5,\), got an array of "
        r"shape \(10, 4\)",
    ):
        aejax.encode(model, params, x[:, :4])
    bad = x.copy()
    bad[7, 1] = np.nan
    with pytest.raises(DataError, match=r"1 NaN/Inf values in 1 example\(s\), first at row 7"):
        aejax.reconstruct(model, params, bad)
    with pytest.raises(DataError, match="float32 range"):
        aejax.encode(model, params, np.full((2, 5), 1e300))
    with pytest.raises(DataError, match="numeric"):
        aejax.encode(model, params, np.array([["a"] * 5]))

    _, model, params, _ = load_run(img_run)
    pixels = np.random.default_rng(1).integers(0, 256, (5, 6, 6, 1), np.uint8)
    pixels[0, 0, :2, 0] = 0, 255
    as_uint8, _ = aejax.reconstruct(model, params, pixels)
    as_float, _ = aejax.reconstruct(model, params, pixels.astype(np.float32) / 255)
    np.testing.assert_array_equal(as_uint8, as_float)  # integers are 8-bit pixels: / 255
    with pytest.raises(DataError, match=r"float pixels in \[0, 255\].*divide 8-bit pixels"):
        aejax.encode(model, params, pixels.astype(np.float32))
    with pytest.raises(DataError, match=r"integer pixels in \[0, 300\]"):
        aejax.encode(model, params, pixels.astype(np.int32) * 300 // 255)
    with pytest.raises(DataError, match=r"expects examples of shape \(6, 6, 1\)"):
        aejax.encode(model, params, np.zeros((2, 8, 8, 1), np.float32))


def test_binary_images_stored_as_integers_warn(tmp_path):
    np.save(tmp_path / "b.npy", np.random.default_rng(0).integers(0, 2, (20, 4, 4), np.uint8))
    with pytest.warns(UserWarning, match=r"only values in \[0, 1\].*divided by 255.*bool"):
        ds = load_dataset(str(tmp_path / "b.npy"))
    assert to_unit(ds.x_train).max() == np.float32(1) / np.float32(255)
    np.save(tmp_path / "bool.npy", np.random.default_rng(0).integers(0, 2, (20, 4, 4)) > 0)
    assert load_dataset(str(tmp_path / "bool.npy")).x_train.max() == 1.0


def test_constant_and_huge_columns_train_to_finite_results(tmp_path):
    # Column 1 constant, column 2 around 1e30, column 3 around 1e-30: standardized in float64
    # before the float32 cast, each becomes O(1) (the constant one exactly 0).
    x = _table(n=150, d=4)
    x[:, 1] = 7.25
    x[:, 2] *= 1e30
    x[:, 3] *= 1e-30
    np.savetxt(tmp_path / "t.csv", x, delimiter=",")
    config = Config(data=str(tmp_path / "t.csv"), **{**TINY, "epochs": 3})
    summary, result = train_and_evaluate(config, tmp_path / "run", plot=False)
    ds = result.dataset
    assert ds.scaler.scale[1] == 1.0 and np.all(ds.x_train[:, 1] == 0.0)
    assert np.all(np.abs(ds.x_train) < 10)
    np.testing.assert_allclose(ds.x_train[:, [0, 2, 3]].std(axis=0), 1.0, rtol=1e-4)
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in result.history)
    assert np.isfinite(summary["test_recon_mse"]) and np.isfinite(summary["pca_recon_mse"])
    assert not any("skipped_nonfinite_steps" in r for r in result.history)


def test_a_single_row_trains_only_when_nothing_is_held_out(tmp_path):
    path = _one_row_csv(tmp_path)
    with pytest.raises(DataError, match="At least 3 are needed"):
        load_dataset(str(path))
    ds = load_dataset(str(path), val_fraction=0.0, test_fraction=0.0)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (1, 0, 0)
    assert np.all(ds.x_train == 0.0)  # one row: every column is constant
    config = Config(data=str(path), val_fraction=0.0, test_fraction=0.0, **{**TINY, "epochs": 2})
    with pytest.warns(UserWarning, match="batch_size 32 > 1 training examples; using 1"):
        result = train(config, dataset=ds)
    assert result.stats["steps"] == 2 and all(np.isfinite(r["train_loss"]) for r in result.history)
    with pytest.raises(DataError, match="no test examples"):
        train_and_evaluate(config, dataset=ds)
