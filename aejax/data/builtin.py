"""Named data sets (digits, mnist-lite, mnist, fashion-mnist), the data-dir lookup, and the
spec dispatcher."""

from __future__ import annotations

import os
import pathlib

import numpy as np

from aejax.data._validate import check_fractions, check_impute
from aejax.data.dataset import Dataset, build_dataset
from aejax.data.files import SUPPORTED, RawSplits, load_file, read_csv, read_idx
from aejax.data.stream import check_stream_mode, stream_or_load, streamed_dataset, want_stream
from aejax.errors import DataError, did_you_mean

ENV_VAR = "AEJAX_DATA_DIR"
MNIST_TRAIN = "mnist_5k_train.csv.gz"
MNIST_TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
MNIST_TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
_MNIST_FILES = (MNIST_TRAIN, MNIST_TEST_IMAGES, MNIST_TEST_LABELS)


def _default_data_dirs() -> list[pathlib.Path]:
    """``../shared/data`` beside the checkout, then beside the working directory."""
    checkout = pathlib.Path(__file__).resolve().parents[2]  # <checkout>/aejax/data/builtin.py
    return [checkout.parent / "shared" / "data", pathlib.Path.cwd().parent / "shared" / "data"]


def user_data_dir() -> pathlib.Path:
    """``$XDG_CACHE_HOME/aejax/data`` (default ``~/.cache/aejax/data``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(cache) / "aejax" / "data"


def _search_roots(data_dir: str | None) -> list[pathlib.Path]:
    """Where the named data sets are looked for: an explicit dir (argument or
    ``$AEJAX_DATA_DIR``) alone, else the defaults and then ``aejax fetch``'s user dir."""
    if data_dir is not None or os.environ.get(ENV_VAR):
        return [resolve_data_dir(data_dir)]
    return [*_default_data_dirs(), user_data_dir()]


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path | None:
    """Finds the directory that holds aejax's local data sets (``mnist/``, ``adbench/``, ...).

    An explicit choice wins even when it does not exist (so that errors name it): the
    ``data_dir`` argument, else ``$AEJAX_DATA_DIR``. Otherwise the first existing default:
    ``../shared/data`` beside the checkout, then ``../shared/data`` beside the working
    directory.

    Args:
      data_dir: an explicit directory, or None.

    Returns:
      The directory, or None when nothing is set and no default exists.
    """
    if data_dir is not None:
        return pathlib.Path(data_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return pathlib.Path(os.environ[ENV_VAR]).expanduser()
    return next((d for d in _default_data_dirs() if d.is_dir()), None)


def _load_digits(data_dir: str | None) -> RawSplits:
    """sklearn's bundled 8x8 digits: ``[1797, 8, 8]`` float in [0, 1] and labels 0..9."""
    del data_dir  # bundled with scikit-learn
    from sklearn.datasets import load_digits  # slow import, only when asked for

    digits = load_digits()
    return RawSplits(digits.images / 16.0, digits.target)  # 4-bit pixels: max 16


def _find_mnist(data_dir: str | None) -> pathlib.Path:
    roots = _search_roots(data_dir)
    looked, seen = [], set()
    for d in (p for root in roots for p in (root / "mnist", root)):
        if d.resolve() not in seen:  # the two default roots can be one directory
            seen.add(d.resolve())
            looked.append(d)
    for d in looked:
        if all((d / f).is_file() for f in _MNIST_FILES):
            return d
    where = "\n".join(f"  - {d}" for d in looked)
    raise DataError(
        f"data set 'mnist-lite': files {', '.join(_MNIST_FILES)} not found. Looked in:\n"
        f"{where}\nGet them with `aejax fetch mnist-lite` (5 MB, SHA-256 checked), or set "
        f"{ENV_VAR}=/path/to/data (holding mnist/ with those files) or pass data_dir "
        "(CLI: --set data_dir=...)."
    )


def _load_mnist_lite(data_dir: str | None) -> RawSplits:
    """Train on 5,000 official MNIST training images, test on the official 10,000."""
    d = _find_mnist(data_dir)
    table = read_csv(d / MNIST_TRAIN).x
    if table.shape[1] != 28 * 28 + 1:
        raise DataError(
            f"data file {d / MNIST_TRAIN}: {table.shape[1]} columns, expected 785 "
            "(784 pixels then the label)"
        )
    pixels = table[:, :-1]
    if not (np.array_equal(pixels, np.round(pixels)) and 0 <= pixels.min() <= pixels.max() <= 255):
        raise DataError(f"data file {d / MNIST_TRAIN}: pixels are not integers in 0..255")
    x = pixels.astype(np.uint8).reshape(-1, 28, 28)
    return RawSplits(
        x, table[:, -1], read_idx(d / MNIST_TEST_IMAGES), read_idx(d / MNIST_TEST_LABELS)
    )


def _idx_loader(name: str, sub: str):
    """A loader of the four official IDX files of ``name`` in ``DATA_DIR/sub``."""
    files = (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    )

    def load(data_dir: str | None) -> RawSplits:
        looked = [root / sub for root in _search_roots(data_dir)]
        for d in looked:
            if all((d / f).is_file() for f in files):
                return RawSplits(*(read_idx(d / f) for f in files))
        where = "\n".join(f"  - {d}" for d in looked)
        raise DataError(
            f"data set {name!r}: files {', '.join(files)} not found. Looked in:\n{where}\n"
            f"Get them with `aejax fetch {name}` (SHA-256 checked), or set {ENV_VAR} to the "
            f"directory holding {sub}/."
        )

    return load


_BUILTIN = {
    "digits": ("sklearn's 8x8 handwritten digits, 1797 images [8, 8, 1] (bundled)", _load_digits),
    "mnist-lite": (
        "MNIST [28, 28, 1]: 5k official train + the official 10k test ($AEJAX_DATA_DIR/mnist)",
        _load_mnist_lite,
    ),
    "mnist": (
        "MNIST [28, 28, 1]: the official 60k train + 10k test (`aejax fetch mnist`)",
        _idx_loader("mnist", "mnist"),
    ),
    "fashion-mnist": (
        "Fashion-MNIST [28, 28, 1]: 60k train + 10k test (`aejax fetch fashion-mnist`)",
        _idx_loader("fashion-mnist", "fashion-mnist"),
    ),
}


def list_datasets() -> list[tuple[str, str]]:
    """Returns ``(spec pattern, one-line description)`` for every kind of spec."""
    return [(name, desc) for name, (desc, _) in _BUILTIN.items()] + [
        ("tfds:NAME", "a prepared TFDS data set (array_record): 'train', and 'test' if present"),
        ("tfds:NAME:SPLIT", "one split of a prepared TFDS data set, split by the fractions"),
        ("ratings:PATH", "a user,item,rating[,timestamp] CSV (.csv, .csv.gz): rows of ratings"),
        ("sequence:PATH", "an .npz of x [N, T, D] sequences (+ lengths [N] or mask [N, T])"),
        (
            "images:DIR",
            "a folder of PNG/JPEG files resized to image_size (image_mode: grayscale or rgb); "
            "labels from class subfolders",
        ),
        (
            "arrayrecord:DIR",
            "images in ArrayRecord files (aejax.data.arrayrecord.writer), streamed from disk "
            "when large (stream)",
        ),
        ("PATH", f"a local file: {SUPPORTED}"),
    ]


def _known() -> str:
    names = [spec for spec, _ in list_datasets() if spec != "PATH"]
    return f"{', '.join(names)}, or the path of an existing file ({SUPPORTED})"


def _table_options(label_column: int | str | None, impute: str, drop_columns: tuple) -> str:
    """The local-table options set to other than their defaults, as ``a, b``."""
    chosen = {
        "label_column": label_column is not None,
        "impute": impute != "none",
        "drop_columns": bool(drop_columns),
    }
    return ", ".join(name for name, on in chosen.items() if on)


def _load_raw(
    spec: str,
    data_dir: str | None,
    download: bool,
    label_column: int | str | None,
    impute: str = "none",
    drop_columns: tuple = (),
) -> tuple[RawSplits, str]:
    """Dispatches a spec to its loader; returns the raw arrays and how errors name them."""
    if spec in _BUILTIN or spec.startswith("tfds:"):
        if options := _table_options(label_column, impute, drop_columns):
            verb = "apply" if "," in options else "applies"
            raise DataError(
                f"data set {spec!r}: {options} {verb} only to local table files (.csv, .npy, .npz)"
            )
        if spec in _BUILTIN:
            return _BUILTIN[spec][1](data_dir), f"data set {spec!r}"
        from aejax.data.tfds_source import load_tfds  # imports tensorflow_datasets

        return load_tfds(spec, data_dir=data_dir, download=download), f"data set {spec!r}"
    path = pathlib.Path(spec).expanduser()
    if not path.exists():
        if "/" in spec or os.sep in spec or path.suffix:
            raise DataError(f"data file {path}: no such file (known specs: {_known()})")
        hint = did_you_mean(spec, _BUILTIN)
        raise DataError(f"unknown data spec {spec!r}{hint}; known specs: {_known()}")
    raw = load_file(path, label_column=label_column, impute=impute, drop_columns=drop_columns)
    return raw, f"data file {path}"


def _tfds_streams(spec: str, data_dir, download: bool, stream: str) -> bool:
    """Whether ``tfds:`` data stream: ``on``, or ``auto`` and large (tables never)."""
    from aejax.data.tfds_source import stream_size

    if stream == "on":
        return True
    size = stream_size(spec, data_dir=data_dir, download=download)
    return size is not None and want_stream(stream, *size)


def load_dataset(
    spec: str,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    data_dir: str | None = None,
    download: bool = False,
    label_column: int | str | None = None,
    impute: str = "none",
    drop_columns: tuple = (),
    ratings_rows: str = "items",
    ratings_columns: tuple = (),
    ratings_centre: str = "mean",
    image_size: int | str = 64,
    image_mode: str = "auto",
    stream: str = "auto",
) -> Dataset:
    """Loads a data set by spec and splits it deterministically.

    Args:
      spec: ``"digits"``, ``"mnist-lite"``, ``"tfds:NAME[:SPLIT]"`` or a path to a local
        file (see ``list_datasets``).
      seed: seeds the split; the same seed gives identical arrays.
      val_fraction: fraction of the training pool held out for validation, in [0, 1).
      test_fraction: fraction held out for test when the source has no test split, in [0, 1).
      data_dir: aejax's data dir for ``mnist-lite`` (see ``resolve_data_dir``); the TFDS
        data dir for ``tfds:`` specs (default ``$TFDS_DATA_DIR``).
      download: let tfds download and prepare a missing ``tfds:`` data set (needs internet).
      label_column: local tables only: the column that holds labels, by CSV header name
        or 0-based index (an int, or a string of one such as ``"-1"``; a header name wins).
        Numbers must be whole (class ids); text classes become ids 0, 1, ... in sorted
        order.
      impute: local tables only: what missing cells (empty, NA, NaN, null, ...) do:
        ``"none"`` refuses them, naming their columns; ``"mean"`` fills each with its
        column's mean over the training split (after the split, before standardizing).
      drop_columns: local tables only: columns (names or indices, as ``label_column``) to
        leave out before anything else is checked, e.g. ``("timestamp", "id")``.
      ratings_rows: ``ratings:`` only: ``"items"`` (an example per item, over the users:
        I-AutoRec) or ``"users"`` (U-AutoRec); see ``aejax.data.ratings``.
      ratings_columns: ``ratings:`` only: the ``(user, item, rating)`` header names, or
        ``()`` for the defaults (MovieLens' ``userId,movieId,rating`` among them).
      ratings_centre: ``ratings:`` only: ``"mean"`` or ``"biases"``, what every rating is
        centred on (``aejax.data.ratings.ratings_dataset``).
      image_size: ``images:`` only: every image resized to ``N`` x ``N`` or ``"HxW"``.
      image_mode: ``images:`` only: ``"grayscale"``, ``"rgb"`` or ``"auto"`` (the files'
        own: grayscale when every file is; see ``aejax.data.images.read_folder``).
      stream: ``arrayrecord:``, ``tfds:`` and ``images:`` images: ``"on"`` reads them from
        disk batch by batch (``aejax.data.stream``: the splits are ``StreamedArray``s),
        ``"off"`` loads them, ``"auto"`` streams what would take over a quarter of the RAM.

    Returns:
      A Dataset: images ``[N, H, W, C]`` uint8 pixels (8-bit sources: mnist-lite, mnist,
      fashion-mnist, IDX files, TFDS images, ``images:DIR``) or float32 in [0, 1]
      (``digits``, float files), or tabular ``[N, D]`` float32
      standardized on the training split, with ``feature_names`` from a CSV header; for
      ``ratings:PATH`` a Dataset of kind ``"ratings"``, split by rating with the fractions.

    Raises:
      DataError: unknown spec, missing file or data, invalid values, bad fractions, a bad
        impute, unknown columns, text columns, missing values with ``impute="none"``, or a
        table option on a data set that is not a local file.
    """
    check_fractions(val_fraction, test_fraction)
    check_impute(impute)
    check_stream_mode(stream)
    if isinstance(drop_columns, (str, int)):
        drop_columns = (drop_columns,)
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"data spec {spec!r} is empty; known specs: {_known()}")
    for prefix in ("ratings", "sequence", "images", "arrayrecord"):
        if spec.startswith(f"{prefix}:"):
            if options := _table_options(label_column, impute, drop_columns):
                raise DataError(
                    f"data set {spec!r}: {options}: options of local tables, not {prefix}"
                )
    if spec.startswith("arrayrecord:"):
        from aejax.data.arrayrecord import open_arrayrecord

        d = open_arrayrecord(spec[len("arrayrecord:") :])
        return stream_or_load(
            spec, d.source, d.shape, d.dtype, d.y, stream=stream, test_source=d.test_source,
            y_test=d.y_test, class_names=d.class_names, seed=seed, val_fraction=val_fraction,
            test_fraction=test_fraction,
        )  # fmt: skip
    splits = {"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction}
    if spec.startswith("images:"):  # read file by file: streamed, or into memory
        from aejax.data.images import open_folder_stream

        src, y, classes, shape = open_folder_stream(spec[len("images:") :], image_size, image_mode)
        return stream_or_load(
            spec, src, shape, np.uint8, y, stream=stream, class_names=classes, **splits
        )
    if (
        spec.startswith("tfds:")
        and stream != "off"
        and _tfds_streams(spec, data_dir, download, stream)
    ):
        from aejax.data.tfds_source import open_tfds_stream

        src, y, test_src, y_test, shape, dtype = open_tfds_stream(
            spec, data_dir=data_dir, download=download
        )
        return streamed_dataset(
            spec, src, shape, dtype, y, test_source=test_src, y_test=y_test, **splits
        )
    if spec.startswith("sequence:"):
        from aejax.data.sequence import load_sequences

        splits = {"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction}
        return load_sequences(spec[len("sequence:") :], **splits)
    if spec.startswith("ratings:"):
        from aejax.data.ratings import load_ratings

        return load_ratings(
            spec[len("ratings:") :],
            seed=seed,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            rows=ratings_rows,
            columns=tuple(ratings_columns),
            centre=ratings_centre,
        )
    raw, where = _load_raw(spec, data_dir, download, label_column, impute, tuple(drop_columns))
    return build_dataset(
        spec,
        raw.x,
        raw.y,
        x_test=raw.x_test,
        y_test=raw.y_test,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        where=where,
        feature_names=raw.columns,
        impute=impute,
    )
