"""Streamed sources (``tfds:NAME``, ``images:DIR``): the streamed splits equal the in-memory
ones for the same seed and fractions; labels read without decoding; errors when read."""

import functools
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from aejax.data import tfds_source
from aejax.data.dataset import build_dataset
from aejax.data.images import open_folder_stream, read_folder
from aejax.data.stream import streamed_dataset
from aejax.errors import DataError
from tests._tfds import prepare_fake_tfds

SPLITS = {"seed": 3, "val_fraction": 0.2, "test_fraction": 0.25}


def _assert_same(streamed, memory):
    """Every split of a streamed Dataset equals the in-memory one, labels included."""
    for name in ("train", "val", "test"):
        x = getattr(streamed, f"x_{name}")
        assert x.shape == getattr(memory, f"x_{name}").shape and x.dtype == np.uint8
        np.testing.assert_array_equal(np.asarray(x), getattr(memory, f"x_{name}"))
        y, want = getattr(streamed, f"y_{name}"), getattr(memory, f"y_{name}")
        assert (y is None) == (want is None)
        if y is not None:
            assert y.dtype == np.int64
            np.testing.assert_array_equal(y, want)


def _both(spec, data_dir):
    """``(streamed, in-memory)`` Datasets of a tfds spec, split alike."""
    source, y, test_source, y_test, shape, dtype = tfds_source.open_tfds_stream(
        spec, data_dir=data_dir
    )
    streamed = streamed_dataset(
        spec, source, shape, dtype, y, test_source=test_source, y_test=y_test, **SPLITS
    )
    raw = tfds_source.load_tfds(spec, data_dir=data_dir)
    memory = build_dataset(spec, raw.x, raw.y, x_test=raw.x_test, y_test=raw.y_test, **SPLITS)
    return streamed, memory


# --- tfds:NAME ------------------------------------------------------------------------------


def test_tfds_stream_equals_memory_on_mocked_mnist(tmp_path):
    import tensorflow_datasets as tfds

    prepare_fake_tfds(tmp_path, {"train": 20, "test": 8})
    with tfds.testing.mock_data(num_examples=20, data_dir=str(tmp_path)):
        streamed, memory = _both("tfds:mnist", str(tmp_path))
        _assert_same(streamed, memory)
        assert streamed.input_shape == (28, 28, 1) and len(streamed.x_test) == 20
        one, one_memory = _both("tfds:mnist:train", str(tmp_path))  # split by the fractions
        _assert_same(one, one_memory)
        assert (len(one.x_train), len(one.x_val), len(one.x_test)) == (12, 3, 5)


@functools.cache
def _image_builder():
    """A tiny tfds image data set prepared offline: PIL images are encoded without
    TensorFlow. Train: 12 grayscale [5, 4, 1] with labels 0..2, test: 5."""
    import tensorflow_datasets as tfds

    class StreamToy(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        name = "aejax_stream_toy"
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(5, 4, 1)),
                    "label": tfds.features.ClassLabel(num_classes=3),
                }
            )
            return tfds.core.DatasetInfo(builder=self, features=features)

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(12, 0), "test": self._generate_examples(5, 1)}

        def _generate_examples(self, n, seed):
            rng = np.random.default_rng(seed)
            for i in range(n):
                pixels = rng.integers(0, 256, (5, 4), dtype=np.uint8)
                yield i, {"image": Image.fromarray(pixels, "L"), "label": i % 3}

    return StreamToy


def test_tfds_stream_of_a_prepared_data_set(tmp_path, monkeypatch):
    """Real array_record files: labels parsed with the images left encoded; the source is
    read alike from threads and after a pickle."""
    import tensorflow_datasets as tfds

    _image_builder()(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
    decoded = []
    decode = tfds.features.Image.decode_example_np
    monkeypatch.setattr(
        tfds.features.Image,
        "decode_example_np",
        lambda self, ex: decoded.append(1) or decode(self, ex),
    )
    spec = "tfds:aejax_stream_toy"
    source, y, test_source, y_test, shape, dtype = tfds_source.open_tfds_stream(
        spec, data_dir=str(tmp_path)
    )
    assert len(decoded) == 2  # example 0 of each split, for its shape; none for the labels
    assert (shape, dtype, len(source), len(test_source)) == ((5, 4, 1), np.uint8, 12, 5)
    assert y.dtype == np.int64 and sorted(y.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    streamed, memory = _both(spec, str(tmp_path))
    _assert_same(streamed, memory)
    with ThreadPoolExecutor(4) as pool:
        threaded = np.stack(list(pool.map(source.__getitem__, range(len(source)))))
    again = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(threaded, np.stack([again[i] for i in range(len(again))]))
    np.testing.assert_array_equal(threaded, tfds_source.load_tfds(spec, data_dir=str(tmp_path)).x)


def test_tfds_stream_refuses_tables_and_reads_grayscale_as_hwc():
    table = [{"features": np.zeros(3, np.float32), "label": 1}]
    with pytest.raises(DataError, match="streaming reads images; tables are loaded in memory"):
        tfds_source._image_source(table, "fake")
    flat = [{"image": np.full((3, 2), i, np.uint8), "label": np.int64(i)} for i in range(4)]
    images, shape, dtype, labelled = tfds_source._image_source(flat, "fake")
    assert (shape, dtype, labelled) == ((3, 2, 1), np.uint8, True)
    np.testing.assert_array_equal(images[2], np.full((3, 2, 1), 2, np.uint8))
    # Any other source: labels read example by example.
    np.testing.assert_array_equal(tfds_source._read_labels(flat, "fake"), np.arange(4))


# --- images:DIR -----------------------------------------------------------------------------


def _folder(root, mode):
    """Three class subfolders of 4 random images each (size varies; a JPEG per class)."""
    rng = np.random.default_rng(0)
    for c in ("ant", "bee", "cow"):
        (root / c).mkdir(parents=True)
        for i in range(4):
            shape = (7 + i, 9) + ((3,) if mode == "RGB" else ())
            im = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
            im.save(root / c / f"{i}.{'jpg' if i == 0 else 'png'}")
    return root


@pytest.mark.parametrize(
    ("mode", "image_mode"), [("L", "auto"), ("RGB", "auto"), ("RGB", "grayscale")]
)
def test_folder_stream_equals_read_folder(tmp_path, mode, image_mode):
    root = _folder(tmp_path / "f", mode)
    source, y, classes, shape = open_folder_stream(root, "6x5", image_mode)
    x, y_memory, classes_memory = read_folder(root, "6x5", image_mode)
    assert shape == x.shape[1:] == (6, 5, 3 if mode == "RGB" and image_mode == "auto" else 1)
    assert classes == classes_memory == ("ant", "bee", "cow")
    np.testing.assert_array_equal(y, y_memory)
    streamed = streamed_dataset(
        f"images:{root}", source, shape, np.uint8, y, class_names=classes, **SPLITS
    )
    memory = build_dataset(f"images:{root}", x, y_memory, **SPLITS)
    _assert_same(streamed, memory)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(source))[5], x[5])


def test_folder_stream_names_a_corrupt_file_when_read(tmp_path):
    root = _folder(tmp_path / "f", "L")
    broken = root / "bee" / "2.png"
    broken.write_bytes(broken.read_bytes()[:60])  # the header stays readable
    source, y, _, shape = open_folder_stream(root, 6)  # auto: headers only, no error yet
    index = source.files.index(broken)
    assert source[index - 1].shape == (6, 6, 1)
    with pytest.raises(DataError, match=r"cannot read image file .*bee/2\.png"):
        source[index]
    ds = streamed_dataset("images", source, shape, np.uint8, y, seed=0)
    with pytest.raises(DataError, match=r"bee/2\.png"):
        np.asarray(ds.x_train), np.asarray(ds.x_val), np.asarray(ds.x_test)
    (root / "cow" / "9.png").write_bytes(b"not a png")  # auto reads every header up front
    with pytest.raises(DataError, match=r"cannot read image file .*cow/9\.png"):
        open_folder_stream(root, 6)
    forced = open_folder_stream(root, 6, "rgb")[0]  # a forced mode reads no header
    with pytest.raises(DataError, match=r"cannot read image file .*cow/9\.png"):
        forced[forced.files.index(root / "cow" / "9.png")]
