"""Tests of local tables: header names, label and dropped columns, missing values, the figure."""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import aejax
from aejax import cli
from aejax.baselines import fit_pca
from aejax.data import Dataset, builtin, load_dataset
from aejax.data.files import read_csv
from aejax.errors import ConfigError, DataError


def _csv(path: pathlib.Path, header: str | None, rows: list[str]) -> str:
    path.write_text("\n".join(([header] if header else []) + rows) + "\n")
    return str(path)


def _labelled(tmp_path, n=20) -> str:
    return _csv(tmp_path / "t.csv", "a,b,y", [f"{i},{2 * i},{i % 3}" for i in range(n)])


# --- header names and the label column ---------------------------------------------------------


@pytest.mark.parametrize("label_column", ["y", "2", "-1", 2, -1])
def test_label_column_by_name_or_index(tmp_path, label_column):
    ds = load_dataset(_labelled(tmp_path), label_column=label_column, test_fraction=0.25)
    assert ds.feature_names == ("a", "b") and ds.input_shape == (2,)
    raw = ds.scaler.inverse_transform(ds.x_train)
    np.testing.assert_array_equal(ds.y_train, np.round(raw[:, 0]).astype(int) % 3)


def test_a_header_name_wins_over_an_index(tmp_path):
    path = _csv(tmp_path / "t.csv", "a,0,b", [f"{i},{i % 2},{-i}" for i in range(12)])
    ds = load_dataset(path, label_column="0")  # the column named "0", not column 0
    assert ds.feature_names == ("a", "b")
    raw = ds.scaler.inverse_transform(ds.x_train)
    np.testing.assert_array_equal(ds.y_train, np.round(raw[:, 0]).astype(int) % 2)


def test_text_labels_become_sorted_class_ids(tmp_path):
    rows = [f"{i},{['dog', 'cat', 'eel'][i % 3]}" for i in range(15)]
    ds = load_dataset(_csv(tmp_path / "t.csv", "a,kind", rows), label_column="kind")
    raw = ds.scaler.inverse_transform(ds.x_train)[:, 0]
    # cat -> 0, dog -> 1, eel -> 2
    np.testing.assert_array_equal(ds.y_train, np.array([1, 0, 2])[np.round(raw).astype(int) % 3])


def test_label_column_errors(tmp_path):
    path = _labelled(tmp_path)
    with pytest.raises(
        DataError, match=r"label_column='z' is not a column; the columns are 'a', 'b', 'y'"
    ):
        load_dataset(path, label_column="z")
    with pytest.raises(DataError, match="label_column=3 is outside its 3 columns"):
        load_dataset(path, label_column="3")
    holes = _csv(tmp_path / "h.csv", "a,y", ["1,0", "2,", "3,1", "4,NA"])
    with pytest.raises(
        DataError, match=r"label column 'y' \(column 2\) has 2 missing cell\(s\) \(first in row 3\)"
    ):
        load_dataset(holes, label_column="y", impute="mean")
    np.save(tmp_path / "t.npy", np.arange(30.0).reshape(10, 3) % 4)
    ds = load_dataset(str(tmp_path / "t.npy"), label_column="-1")  # arrays: by index
    assert ds.input_shape == (2,) and ds.feature_names is None and ds.y_train is not None
    with pytest.raises(DataError, match="no column names"):
        load_dataset(str(tmp_path / "t.npy"), label_column="y")
    for option in ({"label_column": "0"}, {"impute": "mean"}, {"drop_columns": ("a",)}):
        with pytest.raises(DataError, match=f"{next(iter(option))} applies only to local"):
            load_dataset("digits", **option)


# --- text columns and drop_columns -------------------------------------------------------------


def _stamped(tmp_path) -> str:
    rows = [f"2024-05-{i + 1:02d}T10:00,id{i},{i},{i * i}" for i in range(20)]
    return _csv(tmp_path / "s.csv", "timestamp,id,a,b", rows)


def test_text_columns_are_named_with_how_to_drop_them(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset(_stamped(tmp_path))
    message = str(e.value)
    assert "2 column(s) hold text" in message
    assert "'timestamp' (column 1): row 2, column 1 is '2024-05-01T10:00', not a number" in message
    assert "'id' (column 2): row 2, column 2 is 'id0'" in message
    assert "--set drop_columns=timestamp,id" in message
    with pytest.raises(
        DataError, match=r"(?s)'id' \(column 2\).*drop_columns=id\b.*label_column=id"
    ):
        load_dataset(_stamped(tmp_path), drop_columns=("timestamp",))


def test_drop_columns_by_name_or_index(tmp_path):
    for drop in (("timestamp", "id"), ("0", "1"), ("id", -4), "timestamp,id".split(",")):
        ds = load_dataset(_stamped(tmp_path), drop_columns=drop)
        assert ds.feature_names == ("a", "b")
        raw = ds.scaler.inverse_transform(ds.x_train)
        np.testing.assert_allclose(raw[:, 1], np.round(raw[:, 0]) ** 2, rtol=1e-5, atol=1e-4)
    with pytest.raises(
        DataError,
        match="drop_columns='time' is not a column; the columns are 'timestamp', 'id', 'a', 'b'",
    ):
        load_dataset(_stamped(tmp_path), drop_columns=("time", "id"))
    with pytest.raises(DataError, match="label_column='a' is also in drop_columns"):
        load_dataset(_stamped(tmp_path), drop_columns=("timestamp", "id", "a"), label_column="a")


def test_headerless_table_with_a_text_first_column(tmp_path):
    path = _csv(tmp_path / "n.csv", None, [f"2024-01-{i + 1:02d},{i},{-i}" for i in range(10)])
    table = read_csv(path)
    assert table.columns is None and table.x.shape == (10, 3) and list(table.text) == [0]
    with pytest.raises(
        DataError,
        match=r"(?s)column 1: row 1, column 1 is '2024-01-01'.*"
        r"drop_columns=0 \(Python: drop_columns=\(0,\)\)",
    ):
        load_dataset(path)
    ds = load_dataset(path, drop_columns=("0",))
    assert ds.input_shape == (2,) and ds.feature_names is None


# --- missing values ------------------------------------------------------------------------------


def test_missing_cells_are_refused_by_default(tmp_path):
    rows = ["1,2,3", "4,,6", "7,NA,9", "10,11,n/a", "13,?,15", "16,17,None", "19,20,21"]
    path = _csv(tmp_path / "m.csv", "a,b,c", rows)
    table = read_csv(path)
    np.testing.assert_array_equal(table.missing().sum(axis=0), [0, 3, 2])
    with pytest.raises(DataError) as e:
        load_dataset(path)
    message = str(e.value)
    assert "5 missing value(s) in 2 column(s)" in message
    assert "'b' (column 2): 3 (first: row 3, column 2)" in message
    assert "'c' (column 3): 2 (first: row 5, column 3)" in message
    assert "--set impute=mean" in message
    with pytest.raises(DataError, match="impute='median' is not one of 'none', 'mean'"):
        load_dataset(path, impute="median")
    with pytest.raises(ConfigError, match="impute"):
        aejax.Config(impute="median")


def test_impute_mean_uses_the_training_split_only(tmp_path):
    # a = the row id (never missing); b = a**2, missing in every third row. The squares
    # make the means of the train, test and whole columns differ.
    n = 60
    rows = [f"{i},{'' if i % 3 == 0 else i * i}" for i in range(n)]
    ds = load_dataset(_csv(tmp_path / "m.csv", "a,b", rows), impute="mean", seed=3)
    assert ds.feature_names == ("a", "b") and np.isfinite(ds.x_train).all()
    train = ds.scaler.inverse_transform(ds.x_train).astype(np.float64)
    test = ds.scaler.inverse_transform(ds.x_test).astype(np.float64)
    ids_train, ids_test = np.round(train[:, 0]).astype(int), np.round(test[:, 0]).astype(int)
    observed = ids_train[ids_train % 3 != 0]
    mean = np.mean(observed.astype(np.float64) ** 2)  # over the observed training cells
    assert (ids_test % 3 == 0).any() and (ids_train % 3 == 0).any()
    close = dict(rtol=1e-5, atol=1e-3)  # float32 standardized units and back
    np.testing.assert_allclose(train[ids_train % 3 == 0, 1], mean, **close)
    np.testing.assert_allclose(test[ids_test % 3 == 0, 1], mean, **close)  # not its own
    np.testing.assert_allclose(train[ids_train % 3 != 0, 1], observed**2.0, **close)
    observed_test = ids_test[ids_test % 3 != 0] ** 2.0
    assert not np.isclose(mean, np.mean(np.concatenate([observed**2.0, observed_test])))
    # The standardizer was fitted after the imputation: the training split is centred.
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)


def test_impute_mean_refuses_a_column_without_training_values(tmp_path):
    path = _csv(tmp_path / "m.csv", "a,b,c", [f"{i},,{i}" for i in range(10)])
    with pytest.raises(DataError, match=r"'b' \(column 2\) has none in its 7 rows"):
        load_dataset(path, impute="mean")
    with pytest.raises(DataError, match=r"'b' \(column 2\): 10 \(first: row 2, column 2\)"):
        load_dataset(path)


def test_impute_mean_in_arrays_and_not_in_images(tmp_path):
    x = np.arange(40.0).reshape(20, 2)
    x[[1, 5], 1] = np.nan
    np.save(tmp_path / "t.npy", x)
    with pytest.raises(DataError, match=r"(?s)column 2: 2 \(first in row 1 of x.*impute=mean"):
        load_dataset(str(tmp_path / "t.npy"))
    assert np.isfinite(load_dataset(str(tmp_path / "t.npy"), impute="mean").x_train).all()
    x[3, 0] = np.inf
    np.save(tmp_path / "inf.npy", x)
    with pytest.raises(DataError, match="1 infinite values.*impute fills only missing"):
        load_dataset(str(tmp_path / "inf.npy"), impute="mean")
    images = np.full((10, 4, 4), 0.5)
    images[2, 1, 1] = np.nan
    np.save(tmp_path / "img.npy", images)
    with pytest.raises(DataError, match="NaN/Inf"):
        load_dataset(str(tmp_path / "img.npy"), impute="mean")


# --- the Dataset field, and the mnist lookup ------------------------------------------------------


def test_dataset_feature_names_are_optional_and_checked():
    x = np.zeros((2, 3), np.float32)
    assert Dataset(name="t", kind="tabular", x_train=x, x_val=x, x_test=x).feature_names is None
    ds = Dataset(
        name="t", kind="tabular", x_train=x, x_val=x, x_test=x, feature_names=["p", "q", "r"]
    )
    assert ds.feature_names == ("p", "q", "r")
    with pytest.raises(DataError, match="2 feature_names"):
        Dataset(name="t", kind="tabular", x_train=x, x_val=x, x_test=x, feature_names=("p", "q"))


def test_mnist_lookup_lists_each_directory_once(tmp_path, monkeypatch):
    monkeypatch.delenv(builtin.ENV_VAR, raising=False)
    (tmp_path / "mnist").mkdir()
    same = [tmp_path, tmp_path / "mnist" / ".."]
    monkeypatch.setattr(builtin, "_default_data_dirs", lambda: same)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="aejax fetch mnist-lite") as e:
        load_dataset("mnist-lite")
    looked = [line for line in str(e.value).splitlines() if line.startswith("  - ")]
    user = tmp_path / "cache" / "aejax" / "data"  # where `aejax fetch` puts it, last
    assert looked == [
        f"  - {tmp_path / 'mnist'}",
        f"  - {tmp_path}",
        f"  - {user / 'mnist'}",
        f"  - {user}",
    ]


# --- the figure and the command line --------------------------------------------------------------


def _wide(tmp_path, d=50, n=40) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)) @ rng.normal(size=(3, d)) + 0.1 * rng.normal(size=(n, d))
    header = ",".join(f"feature_with_a_long_name_{j}" for j in range(d))
    path = _csv(tmp_path / "w.csv", header, [",".join(f"{v:.4f}" for v in row) for row in x])
    return load_dataset(path)


def _png_size(path) -> tuple[int, int]:
    from matplotlib.image import imread

    height, width = imread(path).shape[:2]
    return width, height


def test_tabular_figure_of_50_named_columns_has_a_sane_size(tmp_path):
    from aejax import plots, xla

    d = 50
    ds = _wide(tmp_path, d=d)
    model = aejax.models.model_from_config(aejax.Config(hidden=(8,), latent_dim=2), (d,), "tabular")
    # One compile without LLVM optimizations: eager init dispatches (and compiles) op by op.
    variables = xla.jit(model.init, run_once=True)(jax.random.key(0), jnp.zeros((1, d)))
    plots.reconstructions(tmp_path / "r.png", model, variables, fit_pca(ds.x_train, 2), ds)
    width, height = _png_size(tmp_path / "r.png")
    assert 1000 <= width <= 1600 and height < 1600, (width, height)
    errors = plots.feature_errors(ds.x_test, np.zeros_like(ds.x_test))
    np.testing.assert_allclose(errors, np.mean(ds.x_test.astype(np.float64) ** 2, axis=0))
    assert plots._short("feature_with_a_long_name_17") == "feature_wit\u2026long_name_17"


def test_cli_trains_on_a_table_with_labels_text_and_holes(tmp_path):
    rows = [
        f"2024-01-{i % 28 + 1:02d},{i},{'' if i % 7 == 0 else f'{np.sin(i):.3f}'},{i % 2}"
        for i in range(40)
    ]
    path = _csv(tmp_path / "t.csv", "when,a,b,y", rows)
    argv = ["train", "--data", path, "--epochs", "1", "--set", "hidden=8", "--devices", "1"]
    argv += ["--set", "batch_size=8", "--set", "latent_dim=1"]  # below the 2 features
    argv += ["--set", "label_column=y", "--set", "impute=mean", "--set", "drop_columns=when"]
    assert cli.main([*argv, "--workdir", str(tmp_path / "run"), "--no-progress"]) == 0
    width, height = _png_size(tmp_path / "run" / "reconstructions.png")  # two features
    assert 1000 <= width <= 1600 and 250 <= height < 1600, (width, height)
