"""aejax.data.arrayrecord: writer and reader round trips, refusals, threads, and streaming
equal to build_dataset."""

import json
import os
import pickle
import threading

import numpy as np
import pytest

from aejax.data import arrayrecord as ar
from aejax.data.dataset import build_dataset
from aejax.data.stream import streamed_dataset
from aejax.errors import DataError


def _images(n, shape=(5, 4, 3), dtype="uint8", seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "uint8":
        return rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    return rng.random((n, *shape), dtype=np.float32)


def _write(d, x, y=None, split="train", chunk=7, **kw):
    with ar.writer(d, split=split, shape=x.shape[1:], dtype=x.dtype, **kw) as w:
        for i in range(0, len(x), chunk):
            w.write(x[i : i + chunk], None if y is None else y[i : i + chunk])


def _all(source):
    return np.stack([source[i] for i in range(len(source))])


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("labelled", [True, False])
def test_round_trip(tmp_path, dtype, labelled):
    x, xt = _images(23, dtype=dtype), _images(6, dtype=dtype, seed=1)
    y = np.arange(23) % 3 if labelled else None
    yt = np.arange(6) % 3 if labelled else None
    # shards of 2 examples: 12 train files
    _write(tmp_path, x, y, shard_bytes=2 * x[0].nbytes, class_names=["a", "b", "c"])
    _write(tmp_path, xt, yt, split="test")  # a second split keeps the first
    d = ar.open_arrayrecord(f"arrayrecord:{tmp_path}")
    meta = json.loads((tmp_path / ar.META).read_text())
    assert len(meta["splits"]["train"]["files"]) == 12 and meta["splits"]["test"]["examples"] == 6
    assert (d.shape, d.dtype, d.class_names) == ((5, 4, 3), np.dtype(dtype), ("a", "b", "c"))
    got = _all(d.source)
    assert got.dtype == x.dtype and got.tobytes() == x.tobytes()  # bytes exact
    assert _all(d.test_source).tobytes() == xt.tobytes()
    assert np.array_equal(np.stack(d.source.__getitems__([22, 0, 5])), x[[22, 0, 5]])
    if labelled:
        assert d.y.dtype == np.int64 and np.array_equal(d.y, y) and np.array_equal(d.y_test, yt)
    else:
        assert d.y is None and d.y_test is None
    with pytest.raises(IndexError):
        d.source[23]
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]  # temporaries renamed
    again = pickle.loads(pickle.dumps(d.source))  # light: no open file travels
    assert np.array_equal(again[3], x[3])


def test_chunks_equal_one_write_and_2d_shape(tmp_path):
    x = _images(20, shape=(4, 3))
    _write(tmp_path / "a", x, chunk=20)
    _write(tmp_path / "b", x, chunk=3)
    a, b = ar.open_arrayrecord(tmp_path / "a"), ar.open_arrayrecord(tmp_path / "b")
    assert a.shape == (4, 3, 1) and a.test_source is None
    assert _all(a.source).tobytes() == _all(b.source).tobytes() == x.tobytes()
    for name in ("train-00000.array_record", ar.META):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_refuses_overwrite(tmp_path):
    x = _images(4)
    _write(tmp_path, x)
    with pytest.raises(DataError, match="already holds the train split"):
        ar.writer(tmp_path, shape=(5, 4, 3))
    with pytest.raises(DataError, match="holds examples"):  # a test split of another shape
        ar.writer(tmp_path, split="test", shape=(5, 4, 1))
    (tmp_path / "stale").mkdir()
    (tmp_path / "stale" / "test-00000.array_record").write_bytes(b"")
    with pytest.raises(DataError, match="test-00000.array_record: exists"):
        ar.writer(tmp_path / "stale", split="test", shape=(5, 4, 3))
    with pytest.raises(RuntimeError), ar.writer(tmp_path / "c", shape=(5, 4, 3)) as w:
        w.write(x)
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path / "c") == []  # an interrupted write leaves nothing


@pytest.mark.parametrize(
    "make, write, match",
    [
        (dict(shape=(5, 4, 3)), lambda w: w.write(_images(2, (5, 4, 1))), "has shape"),
        (dict(shape=(5, 4, 3)), lambda w: w.write(_images(2).astype(np.int64)), "has dtype"),
        (dict(shape=(5, 4, 3), dtype="float32"), lambda w: w.write(_images(2) * 1.0), "dtype"),
        (
            dict(shape=(5, 4, 3), dtype="float32"),
            lambda w: w.write(_images(2, dtype="float32") + 0.5),
            "outside",
        ),
        (
            dict(shape=(5, 4, 3), dtype="float32"),
            lambda w: w.write(np.full((2, 5, 4, 3), np.nan, np.float32)),
            "NaN",
        ),
        (
            dict(shape=(5, 4, 3)),
            lambda w: (w.write(_images(2), [0, 1]), w.write(_images(2))),
            "labels missing",
        ),
        (dict(shape=(5, 4, 3), labels=True), lambda w: w.write(_images(2)), "labels missing"),
        (
            dict(shape=(5, 4, 3)),
            lambda w: (w.write(_images(2)), w.write(_images(2), [0, 1])),
            "labels given",
        ),
        (dict(shape=(5, 4, 3)), lambda w: w.write(_images(2), [0, 1, 2]), "3 labels"),
        (dict(shape=(5, 4, 3)), lambda w: None, "no example written"),
        (dict(shape=(5, 4, 3), dtype="int64"), None, "stored as uint8"),
        (dict(shape=(5, 4, 3), dtype="float64"), None, "expected uint8"),
        (dict(shape=(5, 4, 3, 2)), None, "expected \\(H, W\\)"),
        (dict(shape=(5, 4, 3), split="val"), None, "not one of"),
    ],
)
def test_bad_writes(tmp_path, make, write, match):
    with pytest.raises(DataError, match=match) as e:
        with ar.writer(tmp_path / "d", **make) as w:
            write(w)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "d").exists() or os.listdir(tmp_path / "d") in ([], [ar._LOCK])


def test_bad_reads(tmp_path):
    def fails(match, path=tmp_path):
        with pytest.raises(DataError, match=match) as e:
            ar.open_arrayrecord(path)
        assert "\n" not in str(e.value)

    fails("no such directory", tmp_path / "nope")
    fails("no aejax-arrayrecord.json")
    (tmp_path / ar.META).write_text("{not json")
    fails("not readable JSON")
    (tmp_path / ar.META).write_text(json.dumps({"format": 1, "shape": [2, 2], "dtype": "uint8"}))
    fails("expected \\[H, W, C\\]")
    os.remove(tmp_path / ar.META)

    x = _images(10)
    _write(tmp_path, x, np.arange(10), shard_bytes=5 * x[0].nbytes)
    meta = json.loads((tmp_path / ar.META).read_text())
    meta["splits"]["train"]["examples"] = 11
    (tmp_path / ar.META).write_text(json.dumps(meta))
    fails("hold 10 records \\(train-00000.array_record: 5, train-00001.array_record: 5\\)")
    meta["splits"]["train"]["examples"] = 10
    (tmp_path / ar.META).write_text(json.dumps(meta))
    np.save(tmp_path / "train-labels.npy", np.arange(9))
    fails("9 labels in train for 10 examples")
    os.remove(tmp_path / "train-labels.npy")
    fails("train-labels.npy is not a readable")
    os.remove(tmp_path / "train-00001.array_record")
    fails("train file .*train-00001.array_record is missing")

    # a record of another byte size: a split written with (5, 4, 1) examples, read as (5, 4, 3)
    _write(tmp_path / "small", _images(3, (5, 4, 1)))
    meta = json.loads((tmp_path / "small" / ar.META).read_text())
    meta["shape"] = [5, 4, 3]
    (tmp_path / "small" / ar.META).write_text(json.dumps(meta))
    d = ar.open_arrayrecord(tmp_path / "small")
    with pytest.raises(DataError, match="record 2 has 20 bytes; expected 60"):
        d.source[2]


def test_concurrent_reads_equal_sequential(tmp_path):
    x = _images(200, shape=(8, 8, 3))
    _write(tmp_path, x, chunk=50, shard_bytes=30 * x[0].nbytes)  # 7 files
    source = ar.open_arrayrecord(tmp_path).source
    orders = [np.tile(np.random.default_rng(t).permutation(200), 5) for t in range(4)]
    got = [None] * 4

    def read(t):
        got[t] = np.stack([source[i] for i in orders[t]])

    threads = [threading.Thread(target=read, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for t in range(4):
        assert np.array_equal(got[t], x[orders[t]])


@pytest.mark.parametrize("dtype, test_split", [("uint8", False), ("float32", True)])
def test_streamed_equals_build_dataset(tmp_path, dtype, test_split):
    """The key guarantee: streaming the files gives the arrays build_dataset gives in memory."""
    x, y = _images(37, dtype=dtype), np.arange(37) % 4
    xt, yt = (_images(9, dtype=dtype, seed=2), np.arange(9) % 4) if test_split else (None, None)
    _write(tmp_path, x, y, chunk=10)
    if test_split:
        _write(tmp_path, xt, yt, split="test")
    d = ar.open_arrayrecord(tmp_path)
    kw = dict(seed=3, val_fraction=0.2, test_fraction=0.25)
    mem = build_dataset("m", x, y, x_test=xt, y_test=yt, **kw)
    st = streamed_dataset(
        "s", d.source, d.shape, d.dtype, d.y, test_source=d.test_source, y_test=d.y_test, **kw
    )
    for split in ("train", "val", "test"):
        a, b = getattr(mem, f"x_{split}"), getattr(st, f"x_{split}")
        assert a.shape == b.shape and a.dtype == b.dtype
        assert np.array_equal(a, b[:])
        assert np.array_equal(getattr(mem, f"y_{split}"), getattr(st, f"y_{split}"))
    grained = np.stack(list(st.x_train.grain_dataset()))  # grain's path reads the same
    assert np.array_equal(grained, mem.x_train)


def test_make_arrayrecord_is_deterministic(tmp_path, capsys):
    from benchmarks import make_arrayrecord

    args = ["--gigabytes", "0.00003", "--shape", "6x5x3", "--test-fraction", "0.5"]
    for name in ("a", "b"):
        result = make_arrayrecord.main(["--out", str(tmp_path / name), *args])
    assert (result["examples"], result["test_examples"]) == (333, 166)
    for name in ("train-00000.array_record", "test-00000.array_record", "train-labels.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    d = ar.open_arrayrecord(tmp_path / "a")
    assert d.class_names == make_arrayrecord.CLASS_NAMES and set(d.y) <= {0, 1, 2, 3}
    assert d.source[0].shape == (6, 5, 3) and d.source[0].std() > 0
