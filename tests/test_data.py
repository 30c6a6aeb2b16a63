"""Tests of aejax.data: built-in sets, local files, TFDS (mocked), splits and scaling."""

from __future__ import annotations

import functools
import gzip
import json
import math
import pathlib
import struct
import time

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aejax.data import (
    Dataset,
    Standardizer,
    builtin,
    list_datasets,
    load_dataset,
    read_idx,
    resolve_data_dir,
    tfds_source,
)
from aejax.data.pixels import to_unit
from aejax.errors import DataError
from tests._tfds import prepare_fake_tfds

SHARED_MNIST = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
FAST = settings(max_examples=25, deadline=None)


def _write_idx(path: pathlib.Path, array: np.ndarray, *, compress: bool = False) -> None:
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    dt = array.dtype
    header = struct.pack(">BBBB", 0, 0, codes[f"{dt.kind}{dt.itemsize}"], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(dt.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def _write_csv(path: pathlib.Path, lines: list[str]) -> pathlib.Path:
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


# --- digits and the split ------------------------------------------------------------------


def test_digits_shapes_and_range():
    ds = load_dataset("digits")
    # test = ceil(0.2 * 1797) = 360; val = ceil(0.1 * 1437) = 144.
    assert (ds.x_train.shape, ds.x_val.shape, ds.x_test.shape) == (
        (1293, 8, 8, 1),
        (144, 8, 8, 1),
        (360, 8, 8, 1),
    )
    assert ds.kind == "image" and ds.input_shape == (8, 8, 1) and ds.scaler is None
    assert ds.summary() == {
        "name": "digits",
        "kind": "image",
        "input_shape": (8, 8, 1),
        "n_train": 1293,
        "n_val": 144,
        "n_test": 360,
    }
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        assert x.dtype == np.float32 and x.flags.c_contiguous
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert y.shape == (x.shape[0],) and set(np.unique(y)) <= set(range(10))
    assert max(ds.x_train.max(), ds.x_val.max(), ds.x_test.max()) == 1.0


def test_split_is_a_seeded_partition():
    from sklearn.datasets import load_digits

    a, b, c = (load_dataset("digits", seed=s) for s in (3, 3, 4))
    for name in ("x_train", "x_val", "x_test", "y_train", "y_val", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.x_train, c.x_train)
    # The three splits hold every original image exactly once.
    rows = np.concatenate([a.x_train, a.x_val, a.x_test]).reshape(1797, 64)
    original = (load_digits().images / 16.0).astype(np.float32).reshape(1797, 64)
    np.testing.assert_array_equal(np.unique(rows, axis=0), np.unique(original, axis=0))
    assert np.bincount(np.concatenate([a.y_train, a.y_val, a.y_test])).sum() == 1797


def test_fractions(tmp_path):
    ds = load_dataset("digits", val_fraction=0.0, test_fraction=0.5)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (898, 0, 899)
    np.save(tmp_path / "hundred.npy", np.arange(200.0).reshape(100, 2))
    ds = load_dataset(str(tmp_path / "hundred.npy"), val_fraction=0.07, test_fraction=0.07)
    assert (len(ds.x_val), len(ds.x_test)) == (7, 7)  # 0.07 * 100 = 7.000000000000001
    for bad in ({"val_fraction": 1.0}, {"test_fraction": -0.1}, {"val_fraction": float("nan")}):
        with pytest.raises(DataError, match="fraction"):
            load_dataset("digits", **bad)


def test_too_few_rows_for_a_training_example(tmp_path):
    np.save(tmp_path / "two.npy", np.array([[1.0, 2.0], [3.0, 4.0]]))
    with pytest.raises(DataError, match="no training example"):
        load_dataset(str(tmp_path / "two.npy"), val_fraction=0.5, test_fraction=0.5)
    ds = load_dataset(str(tmp_path / "two.npy"), val_fraction=0.0, test_fraction=0.5)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (1, 0, 1)


def test_unknown_spec_and_missing_path(tmp_path):
    with pytest.raises(DataError, match="unknown data spec 'mnsit'.*digits.*mnist-lite"):
        load_dataset("mnsit")
    with pytest.raises(DataError, match="no such file"):
        load_dataset(str(tmp_path / "nope.npz"))
    with pytest.raises(DataError, match="a directory, not a data file"):
        load_dataset(str(tmp_path))
    (tmp_path / "notes.txt").write_text("1,2\n")
    with pytest.raises(DataError, match="unsupported file type"):
        load_dataset(str(tmp_path / "notes.txt"))
    with pytest.raises(DataError, match="label_column"):
        load_dataset("digits", label_column=0)
    assert [s for s, _ in list_datasets()][:2] == ["digits", "mnist-lite"]


def test_dataset_rejects_unknown_kind():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(DataError, match="kind"):
        Dataset(name="toy", kind="audio", x_train=x, x_val=x, x_test=x)


# --- Standardizer ---------------------------------------------------------------------------


def test_standardizer_fit_transform_roundtrip():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, size=(500, 4)) * np.array([1.0, 10.0, 0.1, 100.0])
    s = Standardizer.fit(x)
    z = s.transform(x)
    assert z.dtype == np.float32 and s.mean.dtype == np.float32 and s.mean.shape == (4,)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(s.inverse_transform(z), x, rtol=1e-5, atol=1e-4)
    again = Standardizer.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(again.mean, s.mean)
    np.testing.assert_array_equal(again.scale, s.scale)
    with pytest.raises(DataError, match="4 features"):
        s.transform(np.zeros((3, 5)))
    with pytest.raises(DataError, match="NaN"):
        s.transform(np.full((1, 4), np.nan))
    with pytest.raises(DataError, match="'mean' and 'scale'"):
        Standardizer.from_dict({"mean": [0.0]})


def test_standardizer_constant_column():
    x = np.column_stack([np.full(10, 0.1), np.arange(10.0), np.zeros(10)])
    s = Standardizer.fit(x)
    np.testing.assert_array_equal(s.scale[[0, 2]], [1.0, 1.0])
    z = s.transform(x)
    assert np.isfinite(z).all()
    np.testing.assert_allclose(z[:, [0, 2]], 0.0, atol=1e-7)
    np.testing.assert_allclose(s.inverse_transform(z), x, atol=1e-6)


@FAST
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=20),
        elements=st.floats(-1e4, 1e4),
    )
)
def test_standardizer_roundtrip_property(x):
    s = Standardizer.fit(x)
    z = s.transform(x)
    assert np.isfinite(z).all() and (s.scale > 0).all()
    np.testing.assert_allclose(s.inverse_transform(z), x, rtol=1e-5, atol=1e-5 * (1 + abs(x).max()))


def test_tabular_dataset_is_standardized_on_train(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(10.0, 4.0, size=(200, 3))
    np.save(tmp_path / "t.npy", x)
    ds = load_dataset(str(tmp_path / "t.npy"), seed=2)
    assert ds.kind == "tabular" and ds.input_shape == (3,) and ds.y_train is None
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (144, 16, 40)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, rtol=1e-5)
    # The scaler is in raw units and fitted on x_train only.
    raw_train = ds.scaler.inverse_transform(ds.x_train)
    np.testing.assert_allclose(ds.scaler.mean, raw_train.mean(axis=0), rtol=1e-5)
    raw_test = ds.scaler.inverse_transform(ds.x_test)
    assert all(np.isclose(row, x, rtol=1e-5).all(axis=1).any() for row in raw_test)


# --- CSV ------------------------------------------------------------------------------------


def test_csv_with_header_and_label_column(tmp_path):
    rows = [f"{i},{2 * i},{i % 3}" for i in range(20)]
    for name in ("h.csv", "h.csv.gz"):
        path = _write_csv(tmp_path / name, ["a,b,label"] + rows)
        ds = load_dataset(str(path), label_column=-1, test_fraction=0.25)
        assert ds.input_shape == (2,) and (len(ds.x_train), len(ds.x_test)) == (13, 5)
        raw = ds.scaler.inverse_transform(ds.x_train)
        np.testing.assert_allclose(raw[:, 1], 2 * raw[:, 0], atol=1e-4)
        np.testing.assert_array_equal(ds.y_train, np.round(raw[:, 0]).astype(int) % 3)
    with pytest.raises(DataError, match="label_column=5"):
        load_dataset(str(tmp_path / "h.csv"), label_column=5)


def test_csv_errors(tmp_path):
    ragged = _write_csv(tmp_path / "r.csv", ["x,y,z", "1,2,3", "4,5", "6,7,8"])
    with pytest.raises(DataError, match=r"r\.csv: row 3 has 2 columns, expected 3"):
        load_dataset(str(ragged))
    text = _write_csv(tmp_path / "t.csv", ["1,2,3", "4,abc,6"])
    with pytest.raises(DataError, match="row 2, column 2 is 'abc'"):
        load_dataset(str(text))
    hole = _write_csv(tmp_path / "hole.csv", ["1,2,3", "4,,6"])
    with pytest.raises(DataError, match="row 2, column 2"):
        load_dataset(str(hole))
    nan = _write_csv(tmp_path / "n.csv", ["1,2", "3,nan", "inf,4"])
    with pytest.raises(DataError, match=r"2 NaN/Inf values \(first in row 1"):
        load_dataset(str(nan))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        load_dataset(str(tmp_path / "empty.csv"))
    header_only = _write_csv(tmp_path / "ho.csv", ["a,b"])
    with pytest.raises(DataError, match="empty"):
        load_dataset(str(header_only))


@FAST
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=8),
        elements=st.floats(-1e6, 1e6),
    ),
    st.booleans(),
)
def test_csv_parse_property(tmp_path_factory, x, header):
    path = tmp_path_factory.mktemp("csv") / "p.csv"
    lines = [",".join(f"c{j}" for j in range(x.shape[1]))] if header else []
    _write_csv(path, lines + [",".join(repr(float(v)) for v in row) for row in x])
    from aejax.data.files import read_csv

    np.testing.assert_array_equal(read_csv(path).x, x)


# --- npy / npz ------------------------------------------------------------------------------


def test_nonfinite_empty_and_nonnumeric_arrays(tmp_path):
    x = np.ones((6, 2))
    x[3, 1], x[4, 0] = np.nan, np.inf
    np.save(tmp_path / "nan.npy", x)
    np.savez(tmp_path / "nan.npz", X=x, y=np.zeros(6))
    for name in ("nan.npy", "nan.npz"):
        with pytest.raises(DataError, match=r"2 NaN/Inf values \(first in row 3"):
            load_dataset(str(tmp_path / name))
    np.save(tmp_path / "rows0.npy", np.zeros((0, 4)))
    with pytest.raises(DataError, match="empty"):
        load_dataset(str(tmp_path / "rows0.npy"))
    np.save(tmp_path / "cols0.npy", np.zeros((5, 0)))
    with pytest.raises(DataError, match="no features"):
        load_dataset(str(tmp_path / "cols0.npy"))
    np.save(tmp_path / "str.npy", np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(DataError, match="non-numeric"):
        load_dataset(str(tmp_path / "str.npy"))
    np.save(tmp_path / "vec.npy", np.arange(5.0))
    with pytest.raises(DataError, match="one example per row"):
        load_dataset(str(tmp_path / "vec.npy"))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="junk.npy"):
        load_dataset(str(tmp_path / "junk.npy"))


def test_npz_layouts(tmp_path):
    rng = np.random.default_rng(0)
    x_tr, x_te = rng.integers(0, 256, (30, 5, 5), np.uint8), rng.integers(0, 256, (7, 5, 5))
    np.savez(
        tmp_path / "split.npz",
        x_train=x_tr,
        y_train=np.arange(30) % 2,
        x_test=x_te.astype(np.uint8),
        y_test=np.arange(7) % 2,
    )
    ds = load_dataset(str(tmp_path / "split.npz"))
    assert (ds.x_train.shape, ds.x_val.shape, ds.x_test.shape) == (
        (27, 5, 5, 1),
        (3, 5, 5, 1),
        (7, 5, 5, 1),
    )
    assert ds.x_test.dtype == np.uint8  # 8-bit pixels stay 8-bit (aejax.data.pixels)
    np.testing.assert_allclose(to_unit(ds.x_test)[..., 0], x_te / 255.0, rtol=1e-6)  # in order
    np.testing.assert_array_equal(ds.y_test, np.arange(7) % 2)
    np.savez(tmp_path / "xy.npz", x=rng.normal(size=(10, 3)), y=np.arange(10.0))
    assert load_dataset(str(tmp_path / "xy.npz")).y_train.dtype == np.int64
    np.savez(tmp_path / "one.npz", data=rng.normal(size=(10, 3)))
    assert load_dataset(str(tmp_path / "one.npz")).input_shape == (3,)
    np.savez(tmp_path / "what.npz", a=np.ones((3, 2)), b=np.ones((3, 2)))
    with pytest.raises(DataError, match=r"keys \['a', 'b'\]"):
        load_dataset(str(tmp_path / "what.npz"))
    np.savez(tmp_path / "short.npz", x=np.ones((10, 3)), y=np.ones(9))
    with pytest.raises(DataError, match="9 labels in y for 10 examples"):
        load_dataset(str(tmp_path / "short.npz"))


def test_image_ranges(tmp_path):
    np.save(tmp_path / "f.npy", np.full((4, 3, 3, 1), 2.0, np.float32))
    with pytest.raises(DataError, match=r"expected \[0, 1\]: scale them"):
        load_dataset(str(tmp_path / "f.npy"))
    np.save(tmp_path / "i.npy", np.full((4, 3, 3), 300, np.int32))
    with pytest.raises(DataError, match="0..255"):
        load_dataset(str(tmp_path / "i.npy"))
    np.save(tmp_path / "ok.npy", np.full((10, 3, 3, 2), 51, np.uint8))
    ds = load_dataset(str(tmp_path / "ok.npy"))
    assert ds.input_shape == (3, 3, 2) and np.allclose(to_unit(ds.x_train), 0.2)


# --- IDX ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_roundtrip(tmp_path, dtype, compress):
    a = (np.arange(2 * 3 * 4) % 100).astype(dtype).reshape(2, 3, 4)
    path = tmp_path / ("a-idx3-ubyte.gz" if compress else "a-idx3-ubyte")
    _write_idx(path, a, compress=compress)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative and b.shape == (2, 3, 4)
    np.testing.assert_array_equal(b, a)


def test_idx_errors_and_dataset(tmp_path):
    (tmp_path / "bad-ubyte").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "bad-ubyte")
    _write_idx(tmp_path / "cut-ubyte", np.zeros((3, 4), np.uint8))
    (tmp_path / "cut-ubyte").write_bytes((tmp_path / "cut-ubyte").read_bytes()[:-1])
    with pytest.raises(DataError, match="24 bytes with the header.*file has 23 bytes"):
        read_idx(tmp_path / "cut-ubyte")
    images = np.random.default_rng(0).integers(0, 256, (20, 6, 6), np.uint8)
    _write_idx(tmp_path / "tr-images-idx3-ubyte.gz", images, compress=True)
    _write_idx(
        tmp_path / "tr-labels-idx1-ubyte.gz", np.arange(20, dtype=np.uint8) % 10, compress=True
    )
    ds = load_dataset(str(tmp_path / "tr-images-idx3-ubyte.gz"))
    assert ds.kind == "image" and ds.input_shape == (6, 6, 1) and len(ds.y_train) == 14
    assert to_unit(ds.x_train).max() <= 1.0


# --- mnist-lite and the data dir ------------------------------------------------------------


def test_mnist_lite_real_data():
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"real MNIST files absent ({SHARED_MNIST}); see shared/data/README.md")
    ds = load_dataset("mnist-lite", data_dir=str(SHARED_MNIST.parent))
    assert (len(ds.x_train) + len(ds.x_val), len(ds.x_val), len(ds.x_test)) == (5000, 500, 10000)
    assert ds.x_train.dtype == ds.x_test.dtype == np.uint8
    assert ds.input_shape == (28, 28, 1) and ds.x_test.max() == 255 and ds.x_train.min() == 0
    np.testing.assert_array_equal(np.bincount(np.concatenate([ds.y_train, ds.y_val])), [500] * 10)
    assert list(ds.y_test[:5]) == [7, 2, 1, 0, 4]  # the official test set's first labels


def test_mnist_lite_files_directly_in_data_dir(tmp_path):
    rng = np.random.default_rng(0)
    table = np.column_stack([rng.integers(0, 256, (10, 784)), np.arange(10)])
    _write_csv(tmp_path / builtin.MNIST_TRAIN, [",".join(map(str, r)) for r in table])
    _write_idx(
        tmp_path / builtin.MNIST_TEST_IMAGES,
        rng.integers(0, 256, (4, 28, 28), np.uint8),
        compress=True,
    )
    _write_idx(tmp_path / builtin.MNIST_TEST_LABELS, np.arange(4, dtype=np.uint8), compress=True)
    ds = load_dataset("mnist-lite", data_dir=str(tmp_path))
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (9, 1, 4)
    assert ds.input_shape == (28, 28, 1)


def test_mnist_lite_absent_lists_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("AEJAX_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="AEJAX_DATA_DIR") as err:
        load_dataset("mnist-lite")
    message = str(err.value)
    assert f"- {tmp_path / 'mnist'}\n" in message and f"- {tmp_path}\n" in message


def test_resolve_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AEJAX_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("AEJAX_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    default = resolve_data_dir()
    assert default is None or default.name == "data" and default.is_dir()


# --- TFDS (mocked; never the network) -------------------------------------------------------


def test_tfds_mocked_mnist(tmp_path):
    import tensorflow_datasets as tfds

    prepare_fake_tfds(tmp_path, {"train": 20, "test": 20})
    with tfds.testing.mock_data(num_examples=20, data_dir=str(tmp_path)):
        full = load_dataset("tfds:mnist", data_dir=str(tmp_path))
        one = load_dataset("tfds:mnist:train", data_dir=str(tmp_path))
        again = load_dataset("tfds:mnist:train", data_dir=str(tmp_path))
        with pytest.raises(DataError, match="Unknown split 'validation'"):
            load_dataset("tfds:mnist:validation", data_dir=str(tmp_path))
    assert full.summary() == {
        "name": "tfds:mnist",
        "kind": "image",
        "input_shape": (28, 28, 1),
        "n_train": 18,
        "n_val": 2,
        "n_test": 20,
    }
    assert (len(one.x_train), len(one.x_val), len(one.x_test)) == (14, 2, 4)
    for ds in (full, one):
        for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
            assert x.dtype == np.uint8  # 8-bit pixels stay 8-bit (aejax.data.pixels)
            assert x.max() > 230  # mock pixels are uniform in 0..255
            assert y.dtype == np.int64 and ((0 <= y) & (y < 10)).all()
    np.testing.assert_array_equal(one.x_train, again.x_train)


def test_tfds_without_test_split_splits_train(tmp_path):
    import tensorflow_datasets as tfds

    prepare_fake_tfds(tmp_path, {"train": 20})
    with tfds.testing.mock_data(num_examples=20, data_dir=str(tmp_path)):
        ds = load_dataset("tfds:mnist", data_dir=str(tmp_path))
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (14, 2, 4)


def test_tfds_not_prepared_fails_fast(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DataError, match="'mnist'.*not prepared") as err:
        load_dataset("tfds:mnist", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 10
    assert str(tmp_path) in str(err.value) and "download=True" in str(err.value)
    import tensorflow_datasets as tfds

    # Bare mock_data (no prepared metadata) reads as "not prepared" too.
    with tfds.testing.mock_data(num_examples=5), pytest.raises(DataError, match="not prepared"):
        load_dataset("tfds:mnist")


def test_tfds_download_without_network_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_source, "_network_available", lambda: False)
    with pytest.raises(DataError, match="no network"):
        load_dataset("tfds:mnist", data_dir=str(tmp_path), download=True)


def test_tfds_unknown_name_and_bad_spec(tmp_path):
    with pytest.raises(DataError, match="unknown TFDS data set"):
        load_dataset("tfds:no_such_dataset_xyz", data_dir=str(tmp_path))
    with pytest.raises(DataError, match="tfds:NAME"):
        load_dataset("tfds:")


class _BatchSource:
    """A data source with ``__getitems__`` that counts its calls."""

    def __init__(self, examples):
        self.examples, self.calls = examples, 0

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        raise AssertionError("per-example reads when __getitems__ works")

    def __getitems__(self, keys):
        self.calls += 1
        return [self.examples[k] for k in keys]


def test_tfds_read_split_in_chunks(monkeypatch):
    monkeypatch.setattr(tfds_source, "_CHUNK", 3)
    examples = [{"features": np.full(4, i, np.float32), "label": np.int64(i % 2)} for i in range(7)]
    source = _BatchSource(examples)
    x, y = tfds_source._read_split(source, "fake")
    assert source.calls == math.ceil(7 / 3)
    np.testing.assert_array_equal(x[:, 0], np.arange(7))
    np.testing.assert_array_equal(y, np.arange(7) % 2)
    x, y = tfds_source._read_split([{"image": np.zeros((2, 2, 3), np.uint8)}] * 2, "fake")
    assert x.shape == (2, 2, 2, 3) and y is None
    with pytest.raises(DataError, match=r"features \['audio'\]"):
        tfds_source._read_split([{"audio": np.zeros(3)}], "fake")
    with pytest.raises(DataError, match="example 1 has image shape"):
        tfds_source._read_split([{"image": np.zeros((2, 2))}, {"image": np.zeros((3, 2))}], "f")


@functools.cache
def _toy_builder_cls(builder_name: str, *, image: bool, register: bool):
    """A tiny tfds builder that generates its examples offline (no download); cached because
    a registered name can be defined only once per process."""
    import tensorflow_datasets as tfds

    key = "image" if image else "features"
    feature = (
        tfds.features.Image(shape=(4, 4, 1))
        if image
        else tfds.features.Tensor(shape=(4,), dtype=np.float32)
    )

    class Toy(tfds.core.GeneratorBasedBuilder, skip_registration=not register):
        name = builder_name
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            label = tfds.features.ClassLabel(num_classes=3)
            features = tfds.features.FeaturesDict({key: feature, "label": label})
            return tfds.core.DatasetInfo(builder=self, features=features)

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(30, 0), "test": self._generate_examples(10, 1)}

        def _generate_examples(self, n, seed):
            rng = np.random.default_rng(seed)
            for i in range(n):
                value = rng.integers(0, 256, (4, 4, 1)) if image else rng.normal(size=4)
                yield i, {key: value.astype(feature.np_dtype), "label": i % 3}

    return Toy


def test_tfds_real_prepared_array_record(tmp_path):
    """A data set prepared to array_record offline, then read back like a copied one."""
    builder_cls = _toy_builder_cls("aejax_toy", image=False, register=False)
    builder_cls(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
    ds = load_dataset("tfds:aejax_toy", data_dir=str(tmp_path))
    assert ds.kind == "tabular" and ds.input_shape == (4,)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (27, 3, 10)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    expected = np.random.default_rng(1).normal(size=(10, 4)).astype(np.float32)
    raw_test = ds.scaler.inverse_transform(ds.x_test)
    order = np.lexsort(raw_test.T)  # tfds shuffles examples when it writes them
    np.testing.assert_allclose(raw_test[order], expected[np.lexsort(expected.T)], atol=1e-5)
    one = load_dataset("tfds:aejax_toy:test", data_dir=str(tmp_path))
    assert (len(one.x_train), len(one.x_val), len(one.x_test)) == (7, 1, 2)


def test_tfds_download_of_images(tmp_path, monkeypatch):
    """download=True prepares a registered builder; image encoding needs TensorFlow."""
    import importlib.util

    _toy_builder_cls("aejax_toy_images", image=True, register=True)
    monkeypatch.setattr(tfds_source, "_network_available", lambda: True)  # generates offline
    if importlib.util.find_spec("tensorflow") is None:
        with pytest.raises(
            DataError, match="No module named 'tensorflow'.*TensorFlow is installed"
        ):
            load_dataset("tfds:aejax_toy_images", data_dir=str(tmp_path), download=True)
    else:
        ds = load_dataset("tfds:aejax_toy_images", data_dir=str(tmp_path), download=True)
        assert ds.kind == "image" and ds.input_shape == (4, 4, 1) and len(ds.x_test) == 10
