"""The ``tfds:NAME[:SPLIT]`` loader: prepared TFDS data read through ``tfds.data_source``.

Never TensorFlow: ``tfds.data_source`` with the array_record format gives random access to
numpy examples. Nothing here downloads unless asked to, and a missing network fails in
seconds instead of tfds's minutes of retries.

``load_tfds`` reads a whole data set into memory; ``open_tfds_stream`` opens one of images
as a source read example by example (``aejax.data.stream``), its labels read up front
without decoding an image.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import numpy as np

from aejax._logging import absl_quiet
from aejax.data._validate import check_labels
from aejax.data.files import RawSplits
from aejax.errors import DataError

PREFIX = "tfds:"
_BUILDER_KWARGS = {"file_format": "array_record"}
_CHUNK = 1024  # examples per __getitems__ call
# tfds fetches most data sets (mnist among them) from Google Cloud Storage.
_PROBE_ADDRESS = ("storage.googleapis.com", 443)
_PROBE_TIMEOUT_S = 3.0


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Splits ``"tfds:NAME[:SPLIT]"`` into ``(NAME, SPLIT or None)``.

    NAME may carry a config (``"cifar10_corrupted/fog_1"``); SPLIT may hold tfds slicing
    (``"train[:80%]"``). Versions (``NAME:1.2.3``) are not supported: the part after the
    second colon is always the split.
    """
    name, _, split = spec.removeprefix(PREFIX).partition(":")
    if not name:
        raise DataError(f"data spec {spec!r}: expected tfds:NAME or tfds:NAME:SPLIT")
    return name, split or None


def _network_available() -> bool:
    """True when a TCP connection to the tfds download host opens within 3 seconds."""
    try:
        with socket.create_connection(_PROBE_ADDRESS, timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _builder(tfds: Any, name: str, data_dir: str | None, where: str) -> Any:
    try:
        return tfds.builder(name, data_dir=data_dir, file_format="array_record")
    except ValueError as e:  # tfds's DatasetNotFoundError is a ValueError
        lines = str(e).splitlines()
        hints = [ln.strip() for ln in lines[1:] if ln.strip().startswith("Did you mean")]
        raise DataError(
            f"{where}: unknown TFDS data set ({' '.join(lines[:1] + hints)}); "
            "see tfds.list_builders() for the names"
        ) from e


def _not_prepared(where: str, builder: Any, data_dir: str | None) -> DataError:
    root = data_dir or "the default TFDS data dir ($TFDS_DATA_DIR or ~/tensorflow_datasets)"
    return DataError(
        f"{where}: not prepared in {root} (looked for {builder.data_path}). Prepare it on a "
        "machine with internet with download=True (CLI: --set download=true; image data sets "
        "also need TensorFlow there), or copy a prepared <data_dir>/<name>/<version>/ "
        "directory (array_record format) there."
    )


def _chunks(source: Sequence[Any], where: str):
    """Yields ``(indices, examples)`` of ``source`` in chunks of ``_CHUNK``, read through
    ``__getitems__`` where it works (one call per chunk), else one by one."""
    getitems = getattr(source, "__getitems__", None)
    n = len(source)
    for start in range(0, n, _CHUNK):
        idx = list(range(start, min(start + _CHUNK, n)))
        batch = None
        if getitems is not None:
            try:
                batch = getitems(idx)
            except TypeError:
                # tfds.testing.mock_data (4.9.10) installs a __getitems__ that misses `self`.
                getitems = None
        if batch is None:
            batch = [source[i] for i in idx]
        if len(batch) != len(idx):
            raise DataError(f"{where}: asked for {len(idx)} examples, got {len(batch)}")
        yield idx, batch


def _example_key(example: Any, where: str) -> str:
    """``"image"`` or ``"features"``: the entry of a tfds example that aejax reads."""
    key = next((k for k in ("image", "features") if k in example), None)
    if key is None:
        raise DataError(
            f"{where}: examples have features {sorted(example)}; aejax reads an 'image' "
            "or a 'features' vector"
        )
    return key


def _read_split(source: Sequence[Any], where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Reads every example of a data source into numpy, in chunks.

    Args:
      source: a ``tfds.data_source`` split (``len`` + ``__getitem__``, ideally
        ``__getitems__``) of dicts with an ``"image"`` ``[H, W(, C)]`` or a ``"features"``
        ``[D]`` entry, and optionally a scalar ``"label"``.
      where: names the source in error messages.

    Returns:
      ``(x, y)``: ``[N, H, W(, C)]`` or ``[N, D]`` in the stored dtype, ``[N]`` labels or None.
    """
    n = len(source)
    if n == 0:
        raise DataError(f"{where}: has no examples")
    x = y = key = None
    for idx, batch in _chunks(source, where):
        for i, example in zip(idx, batch, strict=True):
            if key is None:
                key = _example_key(example, where)
                first = np.asarray(example[key])
                if key == "features" and first.ndim != 1:
                    raise DataError(f"{where}: 'features' has shape {first.shape}; expected [D]")
                x = np.empty((n, *first.shape), dtype=first.dtype)
                if "label" in example and np.ndim(example["label"]) == 0:
                    y = np.empty((n,), dtype=np.asarray(example["label"]).dtype)
            value = np.asarray(example[key])
            if value.shape != x.shape[1:]:
                raise DataError(
                    f"{where}: example {i} has {key} shape {value.shape}, example 0 has "
                    f"{x.shape[1:]}; aejax needs a fixed shape"
                )
            x[i] = value
            if y is not None:
                y[i] = example["label"]
    return x, y


def _open_splits(spec: str, data_dir: str | None, download: bool) -> tuple[str, Any, Any]:
    """Opens the splits of ``spec`` as ``tfds.data_source`` sources.

    Returns:
      ``(where, train, test)``: how errors name the data set; the ``"train"`` split (or
      SPLIT); the ``"test"`` split for ``tfds:NAME`` when the data set has one, else None.

    Raises:
      DataError: as ``load_tfds``.
    """
    import tensorflow_datasets as tfds  # heavy: imported only for tfds specs

    name, split = parse_spec(spec)
    where = f"tfds data set {name!r} (spec {spec!r})"
    # tfds logs through absl what the errors below say ("Variant folder ... has no
    # dataset_info.json" for a data set that is not prepared).
    with absl_quiet():
        builder = _builder(tfds, name, data_dir, where)
        prepared = builder.is_prepared()
    if not prepared:
        if not download:
            raise _not_prepared(where, builder, data_dir)
        if not _network_available():
            host, port = _PROBE_ADDRESS
            raise DataError(
                f"{where}: download=True but there is no network ({host}:{port} did not "
                f"answer in {_PROBE_TIMEOUT_S:.0f} s). Prepare it on a machine with internet "
                "and copy <data_dir>/<name>/<version>/ here."
            )
    try:
        sources = tfds.data_source(
            name,
            split=split,
            data_dir=data_dir,
            download=download,
            builder_kwargs=dict(_BUILDER_KWARGS),
        )
    except (NotImplementedError, KeyError) as e:
        # What tfds raises when nothing is prepared, whatever the message says.
        raise _not_prepared(where, builder, data_dir) from e
    except ImportError as e:
        # Preparing encodes numpy images to PNG with tf.image, so it needs TensorFlow. tfds
        # re-raises with the whole example dumped into the message: keep its last line.
        missing = (str(e).strip().splitlines() or ["an import failed"])[-1][:200]
        raise DataError(
            f"{where}: preparing it failed: {missing} (tfds encodes images with TensorFlow). "
            "Prepare it where TensorFlow is installed and copy <data_dir>/<name>/<version>/ "
            "here; reading it needs no TensorFlow."
        ) from None
    except (ValueError, OSError) as e:  # e.g. an unknown split, unreadable files
        raise DataError(f"{where}: tfds could not open it: {e}") from e
    if not isinstance(sources, dict):
        return where, sources, None
    if not sources:  # data_source's silent answer when nothing is prepared
        raise _not_prepared(where, builder, data_dir)
    if "train" not in sources:
        raise DataError(
            f"{where}: has no 'train' split (splits: {sorted(sources)}); "
            f"name one: tfds:{name}:SPLIT"
        )
    return where, sources["train"], sources.get("test")


def load_tfds(spec: str, *, data_dir: str | None = None, download: bool = False) -> RawSplits:
    """Loads ``tfds:NAME`` (train + the builder's test split) or ``tfds:NAME:SPLIT``.

    Args:
      spec: ``"tfds:NAME"`` or ``"tfds:NAME:SPLIT"``.
      data_dir: the TFDS data dir; None uses tfds's default (``$TFDS_DATA_DIR``).
      download: prepare the data set if it is missing (needs internet).

    Returns:
      RawSplits with ``x`` from the ``"train"`` split (or from SPLIT), and ``x_test`` from
      the ``"test"`` split for ``tfds:NAME`` when the data set has one.

    Raises:
      DataError: unknown name or split, not prepared with ``download=False``, no network
        with ``download=True``, or examples without an image or a feature vector.
    """
    where, train, test = _open_splits(spec, data_dir, download)
    split = parse_spec(spec)[1]
    x, y = _read_split(train, f"{where} split {split or 'train'!r}")
    if test is None:
        return RawSplits(x, y)
    x_test, y_test = _read_split(test, f"{where} split 'test'")
    return RawSplits(x, y, x_test, y_test)


class TfdsImages:
    """A ``tfds.data_source`` split as a streaming source (``aejax.data.stream``):
    ``source[i]`` is example ``i``'s ``"image"`` decoded, ``[H, W, C]`` (a grayscale
    ``[H, W]`` as ``[H, W, 1]``), in the stored dtype.

    tfds's array_record source opens each shard on first use behind a lock and reads it
    through a thread-safe reader, so grain's reader threads share one; pickled, it holds
    its file list and no open file.
    """

    def __init__(self, source: Sequence[Any], where: str):
        self.source = source
        self.where = where

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> np.ndarray:
        return _hwc(self.source[i]["image"])

    def __repr__(self) -> str:
        return f"TfdsImages({self.where}, {len(self)} examples)"


def _read_labels(source: Sequence[Any], where: str) -> np.ndarray:
    """``[N]`` the scalar ``"label"`` of every example of a tfds data source, in chunks.

    A ``tfds.data_source`` split keeps its records as stored (``data_source``) and its
    ``FeaturesDict`` (``dataset_info.features``): each record is parsed with every image
    feature left encoded (``tfds.decode.SkipDecoding``), so no image is decoded (their
    encoded bytes are still read: a record holds a whole example). Any other source is
    read whole, example by example, its images decoded and dropped.
    """
    raw = getattr(source, "data_source", None)
    features = getattr(getattr(source, "dataset_info", None), "features", None)
    if raw is None or features is None:
        parse = _identity
    else:
        import tensorflow_datasets as tfds

        skip = {
            k: tfds.decode.SkipDecoding()
            for k, f in features.items()
            if k != "label" and isinstance(f, tfds.features.Image)
        }
        source = raw

        def parse(record):
            return features.deserialize_example_np(record, decoders=skip)

    y = None
    for idx, batch in _chunks(source, where):
        for i, record in zip(idx, batch, strict=True):
            label = np.asarray(parse(record)["label"])
            if y is None:
                y = np.empty((len(source),), label.dtype)
            y[i] = label
    return check_labels(y, len(source), where)


def _identity(example: Any) -> Any:
    return example


def _hwc(image: Any) -> np.ndarray:
    """An image ``[H, W, C]``, or ``[H, W]`` as ``[H, W, 1]``."""
    image = np.asarray(image)
    return image[..., None] if image.ndim == 2 else image


def _image_source(source: Sequence[Any], where: str) -> tuple[TfdsImages, tuple, np.dtype, bool]:
    """``(images, shape, dtype, labelled)`` of a split, from its example 0."""
    if len(source) == 0:
        raise DataError(f"{where}: has no examples")
    example = source[0]
    if _example_key(example, where) == "features":
        raise DataError(
            f"{where}: holds 'features' vectors; streaming reads images; tables are loaded "
            "in memory (stream=off)"
        )
    first = _hwc(example["image"])
    if first.ndim != 3:
        raise DataError(f"{where}: 'image' has shape {first.shape}; expected [H, W] or [H, W, C]")
    labelled = "label" in example and np.ndim(example["label"]) == 0
    return TfdsImages(source, where), first.shape, first.dtype, labelled


def open_tfds_stream(
    spec: str, *, data_dir: str | None = None, download: bool = False
) -> tuple[TfdsImages, np.ndarray | None, TfdsImages | None, np.ndarray | None, tuple, np.dtype]:
    """Opens ``tfds:NAME[:SPLIT]`` of images to stream (``aejax.data.stream``): no image is
    decoded but example 0 of each split.

    Args:
      spec, data_dir, download: as ``load_tfds``.

    Returns:
      ``(source, y, test_source, y_test, shape, dtype)``: ``source[i]`` ``[H, W, C]`` the
      ``i``-th image of the ``"train"`` split (or SPLIT); ``y`` its ``[N]`` int64 labels
      (None without a scalar ``"label"``); the ``"test"`` split and its ``[N_test]`` labels
      for ``tfds:NAME`` when the data set has one, else None and None; ``shape``
      ``(H, W, C)`` and ``dtype`` of example 0. ``source[i]`` equals ``load_tfds``'s
      ``x[i]`` (``[H, W]`` grayscale as ``[H, W, 1]``).

    Raises:
      DataError: as ``load_tfds``; a table (``"features"`` vectors); test examples of
        another shape or dtype, or labels on one split only.
    """
    where, train, test = _open_splits(spec, data_dir, download)
    split = parse_spec(spec)[1]
    train_where = f"{where} split {split or 'train'!r}"
    source, shape, dtype, labelled = _image_source(train, train_where)
    y = _read_labels(train, train_where) if labelled else None
    if test is None:
        return source, y, None, None, shape, dtype
    test_source, test_shape, test_dtype, test_labelled = _image_source(
        test, f"{where} split 'test'"
    )
    if (test_shape, test_dtype) != (shape, dtype):
        raise DataError(
            f"{where}: 'test' images are {test_shape} {test_dtype}, 'train' images "
            f"{shape} {dtype}; they must match"
        )
    if labelled != test_labelled:
        raise DataError(f"{where}: labels in only one of the 'train' and 'test' splits")
    y_test = _read_labels(test, f"{where} split 'test'") if labelled else None
    return source, y, test_source, y_test, shape, dtype


def stream_size(spec: str, *, data_dir: str | None = None, download: bool = False):
    """``(N, shape, dtype)`` of ``tfds:NAME[:SPLIT]``'s training images from example 0 (what
    ``stream=auto`` weighs), or None for a table."""
    where, train, _ = _open_splits(spec, data_dir, download)
    if len(train) and _example_key(train[0], where) == "features":
        return None
    _, shape, dtype, _ = _image_source(train, where)
    return len(train), shape, dtype
