"""Property-based tests (hypothesis) of the loaders, the split, the scaler and the epoch order."""

from __future__ import annotations

import gzip
import math
import struct

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aejax.data import Standardizer, load_dataset, read_idx
from aejax.data.dataset import build_dataset, min_examples
from aejax.data.pixels import to_unit
from aejax.errors import DataError
from aejax.train.epoch import epoch_permutation

FAST = settings(max_examples=40, deadline=None)
EPS32 = float(np.finfo(np.float32).eps)


def _split_indices(n: int, seed: int, val_fraction: float, test_fraction: float):
    """The split ``build_dataset`` documents: one seeded permutation, test, then val."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = math.ceil(round(test_fraction * n, 9))
    test, pool = perm[:n_test], perm[n_test:]
    n_val = math.ceil(round(val_fraction * len(pool), 9))
    return pool[n_val:], pool[:n_val], test


fractions = st.sampled_from([0.0, 0.1, 0.2, 0.25, 0.5])
values = st.floats(-1e6, 1e6, allow_subnormal=False)


@st.composite
def tables(draw, max_rows=30, max_cols=5):
    """``[N, D]`` float64 tables, some columns constant."""
    x = draw(
        hnp.arrays(
            np.float64,
            hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=max_rows),
            elements=values,
        )
    )
    x = x[:, :max_cols]
    for j in range(x.shape[1]):
        if draw(st.booleans()) and draw(st.booleans()):  # about one column in four
            x[:, j] = draw(values)
    return x


# --- the scaler ------------------------------------------------------------------------------


@FAST
@given(tables())
def test_standardizer_is_zero_mean_unit_std_and_inverts(x):
    s = Standardizer.fit(x)
    z = s.transform(x)
    assert z.dtype == np.float32 and np.isfinite(z).all() and (s.scale > 0).all()
    mean = x.mean(axis=0)
    constant = s.scale == 1.0
    for j in range(x.shape[1]):
        # The mean and scale are stored as float32: the standardized mean is off by their
        # rounding, (mean - float32(mean)) / scale, and nothing else.
        offset = (mean[j] - np.float64(s.mean[j])) / np.float64(s.scale[j])
        np.testing.assert_allclose(
            z[:, j].astype(np.float64).mean(), offset, atol=1e-5 * (1 + abs(offset))
        )
        if not constant[j]:
            np.testing.assert_allclose(z[:, j].astype(np.float64).std(), 1.0, rtol=1e-5)
        elif np.all(x[:, j] == x[0, j]):
            assert np.all(z[:, j] == z[0, j]) and abs(z[0, j]) <= 2 * EPS32 * abs(mean[j])
    back = s.inverse_transform(z)
    np.testing.assert_allclose(back, x, rtol=1e-6, atol=2e-6 * (1 + np.abs(x).max()))
    again = Standardizer.from_dict(s.to_dict())
    np.testing.assert_array_equal(again.transform(x), z)


# --- the split -------------------------------------------------------------------------------


@FAST
@given(st.integers(1, 60), st.integers(0, 2**32 - 1), fractions, fractions)
def test_split_is_the_documented_seeded_partition(n, seed, val_fraction, test_fraction):
    x = np.arange(n, dtype=np.float64)[:, None] * np.array([[1.0, -2.0]])  # row i holds i
    train_idx, val_idx, test_idx = _split_indices(n, seed, val_fraction, test_fraction)
    if len(train_idx) == 0:
        need = min_examples(val_fraction, test_fraction)
        assert n < need
        with pytest.raises(DataError, match=f"At least {need} are needed"):
            build_dataset("t", x, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
        return
    assert n >= min_examples(val_fraction, test_fraction)
    ds = build_dataset(
        "t", x, np.arange(n), seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
    )
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == n
    for split, idx in ((ds.y_train, train_idx), (ds.y_val, val_idx), (ds.y_test, test_idx)):
        np.testing.assert_array_equal(split, idx)  # the labels tell where each row went


# --- the loaders -----------------------------------------------------------------------------


@FAST
@given(tables(max_rows=25), st.booleans(), st.integers(0, 10), fractions, fractions)
def test_csv_loads_back_standardized_rows_of_the_table(
    tmp_path_factory, x, header, seed, val_fraction, test_fraction
):
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    lines = [",".join(f"col{j}" for j in range(x.shape[1]))] if header else []
    path.write_text("\n".join(lines + [",".join(repr(float(v)) for v in row) for row in x]))
    train_idx, val_idx, test_idx = _split_indices(len(x), seed, val_fraction, test_fraction)
    if len(train_idx) == 0:
        with pytest.raises(DataError, match="too few"):
            load_dataset(
                str(path), seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
            )
        return
    ds = load_dataset(str(path), seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    assert ds.kind == "tabular" and ds.input_shape == (x.shape[1],)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (
        len(train_idx),
        len(val_idx),
        len(test_idx),
    )
    reference = Standardizer.fit(x[train_idx])  # fitted on the training rows only
    for split, idx in ((ds.x_train, train_idx), (ds.x_val, val_idx), (ds.x_test, test_idx)):
        assert split.dtype == np.float32
        np.testing.assert_array_equal(split, reference.transform(x[idx]))


@FAST
@given(
    st.integers(1, 40),
    st.integers(1, 6),
    st.integers(1, 6),
    st.sampled_from([0, 1, 3]),
    st.integers(0, 5),
)
def test_uint8_images_load_as_pixels_over_255(tmp_path_factory, n, h, w, channels, seed):
    rng = np.random.default_rng(seed)
    shape = (n, h, w) if channels == 0 else (n, h, w, channels)
    images = rng.integers(0, 256, shape, np.uint8)
    images.flat[0] = 255  # never only 0/1 (that warns: binary images stored as integers)
    d = tmp_path_factory.mktemp("img")
    np.save(d / "x.npy", images)
    np.savez(d / "x.npz", x_train=images, x_test=images[: max(1, n // 3)])
    expected = (images.astype(np.float32) / np.float32(255)).reshape(n, h, w, -1)
    if n >= 3:
        ds = load_dataset(str(d / "x.npy"), seed=seed)
        train_idx, val_idx, test_idx = _split_indices(n, seed, 0.1, 0.2)
        assert ds.x_train.dtype == np.uint8  # kept as 8-bit pixels, read as k / 255
        np.testing.assert_array_equal(to_unit(ds.x_train), expected[train_idx])
        np.testing.assert_array_equal(to_unit(ds.x_test), expected[test_idx])
        assert ds.input_shape == expected.shape[1:] and ds.x_val.shape[0] == len(val_idx)
    if n >= 2:
        ds = load_dataset(str(d / "x.npz"), seed=seed)
        np.testing.assert_array_equal(to_unit(ds.x_test), expected[: max(1, n // 3)])  # in order
        rows = to_unit(np.concatenate([ds.x_train, ds.x_val]))
        assert len(rows) == n
        assert _as_multiset(rows) == _as_multiset(expected)  # the pool is a permutation


def _as_multiset(a: np.ndarray) -> list[bytes]:
    return sorted(map(bytes, a.reshape(len(a), -1).view(np.uint8)))


@FAST
@given(
    hnp.arrays(
        st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]),
        hnp.array_shapes(min_dims=1, max_dims=4, max_side=5),
    ),
    st.booleans(),
)
def test_idx_round_trip(tmp_path_factory, a, compress):
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    header = struct.pack(">BBBB", 0, 0, codes[f"{a.dtype.kind}{a.dtype.itemsize}"], a.ndim)
    data = header + struct.pack(f">{a.ndim}I", *a.shape)
    data += a.astype(a.dtype.newbyteorder(">")).tobytes()
    path = tmp_path_factory.mktemp("idx") / "x-idx-ubyte"
    path.write_bytes(gzip.compress(data) if compress else data)
    b = read_idx(path)
    assert b.dtype == a.dtype and b.dtype.isnative and b.shape == a.shape
    np.testing.assert_array_equal(b, a)  # NaNs included: same positions


# --- the epoch order -------------------------------------------------------------------------


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(0, 10_000), st.integers(1, 3000))
def test_epoch_permutation_is_a_pure_permutation(seed, epoch, n):
    perm = epoch_permutation(seed, epoch, n)
    assert perm.shape == (n,) and np.array_equal(np.sort(perm), np.arange(n))
    # A pure function of (seed, epoch): what a resumed run computes, whatever ran before.
    epoch_permutation(seed, epoch + 1, n)
    np.testing.assert_array_equal(epoch_permutation(seed, epoch, n), perm)
    if n >= 20:
        assert not np.array_equal(epoch_permutation(seed, epoch + 1, n), perm)
