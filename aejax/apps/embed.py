"""Latent-space views: a 2-D embedding of a run's codes, as a CSV and a scatter PNG.

``aejax embed RUN [--method pca|tsne|umap|none]`` encodes one split of the run's data
(through its saved scaler, as ``aejax encode`` does), maps the codes to two dimensions and
writes ``embedding.csv`` (``index,x,y[,label]``) and ``embedding.png`` (the points coloured
by label). The methods:

- ``pca``: the first two principal components of the codes
  (``sklearn.decomposition.PCA(2, svd_solver="full")``: deterministic);
- ``tsne``: ``sklearn.manifold.TSNE(2, init="pca", random_state=seed)``, perplexity
  ``min(30, (N - 1) / 3)``;
- ``umap``: ``umap.UMAP(n_components=2, random_state=seed)`` from the optional
  ``umap-learn`` (``pip install 'aejax[umap]'``);
- ``none``: the codes themselves, for a run whose codes have two values.

A code grid (a VQ-VAE's) is flattened to one vector per example. At most ``max_points``
examples are embedded (t-SNE and UMAP grow superlinearly with N): a random subset drawn with
``numpy.random.default_rng(seed)``, kept in the split's order; the CSV's ``index`` column is
each point's row in the split.
"""

from __future__ import annotations

import pathlib
import time
import warnings
from typing import Any, NamedTuple

import numpy as np

from aejax.errors import ConfigError, DataError, did_you_mean
from aejax.outputs import atomic_path, check_output_dir

METHODS = ("pca", "tsne", "umap", "none")
MAX_POINTS = 5000
UMAP_HINT = "pip install 'aejax[umap]' (or pip install umap-learn)"


class Embedding(NamedTuple):
    """What ``embed_run`` returns.

    Attributes:
      coords: ``[N, 2]`` float32 coordinates, one row per embedded example.
      labels: ``[N]`` labels of those examples, or None when the data has none.
      index: ``[N]`` int64 rows of the split the examples are (ascending).
      method: the method used; split: the split embedded; data: the data set's name;
      model: the run's model name; code_size: values per (flattened) code;
      examples: rows in the whole split (``N`` or more when subsampled).
    """

    coords: np.ndarray
    labels: np.ndarray | None
    index: np.ndarray
    method: str
    split: str
    data: str
    model: str
    code_size: int
    examples: int


def check_method(method: str) -> str:
    """``method`` if known, else a ConfigError naming the closest."""
    if method not in METHODS:
        raise ConfigError(
            f"unknown embedding method {method!r}{did_you_mean(method, METHODS)}; "
            f"one of {', '.join(METHODS)}"
        )
    return method


def _umap():
    try:
        import umap
    except ImportError as e:
        raise ConfigError(f"method 'umap' needs the umap-learn package: {UMAP_HINT}") from e
    return umap


def embed_codes(codes: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Maps codes ``[N, K]`` (or ``[N, ...]``, flattened) to ``[N, 2]`` float32 coordinates.

    Raises:
      ConfigError: an unknown method; ``umap`` without umap-learn installed.
      DataError: fewer than 3 codes; codes of one value; ``none`` for codes of size != 2.
    """
    check_method(method)
    codes = np.asarray(codes, np.float32)
    codes = codes.reshape(codes.shape[0], -1)
    n, k = codes.shape
    if n < 3:
        raise DataError(f"{n} codes: an embedding needs at least 3")
    if method == "none":
        if k != 2:
            raise DataError(f"method 'none' draws codes of size 2 as they are; these have {k}")
        return codes
    if k < 2:
        raise DataError(f"codes of size {k}: nothing to embed in two dimensions")
    if method == "pca":
        from sklearn.decomposition import PCA

        coords = PCA(n_components=2, svd_solver="full").fit_transform(codes)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        tsne = TSNE(2, init="pca", perplexity=min(30.0, (n - 1) / 3), random_state=seed)
        coords = tsne.fit_transform(codes)
    else:
        umap = _umap()
        with warnings.catch_warnings():  # "n_jobs overridden to 1 by setting random_state"
            warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
            coords = umap.UMAP(n_components=2, random_state=seed).fit_transform(codes)
    return np.asarray(coords, np.float32)


def subsample(n: int, max_points: int | None, seed: int) -> np.ndarray:
    """Rows ``[M]`` (ascending) of a random subset of ``range(n)`` with ``M = min(n,
    max_points)``; all rows when ``max_points`` is None or 0."""
    if max_points is not None and max_points < 0:
        raise DataError(f"max_points={max_points}: must be >= 1 (0 or None: every example)")
    if not max_points or n <= max_points:
        return np.arange(n, dtype=np.int64)
    pick = np.random.default_rng(seed).choice(n, size=max_points, replace=False)
    return np.sort(pick).astype(np.int64)


def embed_run(
    run: Any,
    method: str = "pca",
    *,
    split: str = "test",
    seed: int = 0,
    max_points: int | None = MAX_POINTS,
    data: str | None = None,
    data_options: dict[str, Any] | None = None,
) -> Embedding:
    """Embeds the codes of one split of a run's data (or of the spec ``data``) in 2-D.

    Args:
      run: a run directory or an ``aejax.Run`` (``aejax.load_run``).
      method: one of ``METHODS``.
      split: ``train``, ``val``, ``test`` or ``all`` (the three, in that order).
      seed: the subsample's and the method's seed.
      max_points: embed at most this many examples (see ``subsample``).
      data: another dataset spec (default: the run's own data).
      data_options: where and how to read the data (``aejax.run.with_data_options``).

    Returns:
      An ``Embedding``.

    Raises:
      ConfigError: an unknown method, a key that is not a data option, umap not installed.
      DataError: an unknown or empty split, data of another shape (see ``embed_codes``).
      CheckpointError: ``run`` is a directory that ``aejax.load_run`` cannot read.
    """
    from aejax.run import labelled_split, load_run, with_data_options

    check_method(method)
    if isinstance(run, (str, pathlib.Path)):
        run = load_run(run)
    config = with_data_options(run.config, data_options)
    # In data units: the run's own scaler reads them, as it would a user's rows.
    x, y, name = labelled_split(config, run.model, split, data)
    index = subsample(x.shape[0], max_points, seed)
    codes = np.asarray(run.encode(x[index]), np.float32).reshape(index.size, -1)
    return Embedding(
        coords=embed_codes(codes, method, seed),
        labels=None if y is None else np.asarray(y)[index],
        index=index,
        method=method,
        split=split,
        data=name,
        model=run.config.model,
        code_size=int(codes.shape[1]),
        examples=int(x.shape[0]),
    )


def write_csv(path: str | pathlib.Path, emb: Embedding) -> pathlib.Path:
    """Writes ``index,x,y[,label]``, one embedded example per row (atomically)."""
    path = pathlib.Path(path)
    columns = [emb.index.astype(np.float64), emb.coords.astype(np.float64)]
    header, fmt = ["index", "x", "y"], ["%d", "%.7g", "%.7g"]
    if emb.labels is not None:
        columns.append(emb.labels.astype(np.float64))
        header.append("label")
        fmt.append("%d" if np.issubdtype(emb.labels.dtype, np.integer) else "%.7g")
    table = np.column_stack(columns)
    with atomic_path(path) as tmp:
        np.savetxt(tmp, table, delimiter=",", header=",".join(header), comments="", fmt=fmt)
    return path


def title(emb: Embedding) -> str:
    """``"ae codes of digits, test split (180 of 180 examples): PCA"``."""
    names = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP", "none": "the codes as they are"}
    split = "train+val+test" if emb.split == "all" else emb.split
    return (
        f"{emb.model} codes of {emb.data}, {split} split ({emb.index.size} of "
        f"{emb.examples} examples): {names[emb.method]}"
    )


def write_embedding(
    workdir: str | pathlib.Path,
    out: str | pathlib.Path | None = None,
    method: str = "pca",
    *,
    force: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """``aejax embed``: writes ``out/embedding.csv`` and ``out/embedding.png``.

    Args:
      workdir: the run directory.
      out: the folder to write to (default: ``workdir``, whose two files each call
        replaces). A given ``out`` may exist, but not the two files in it, unless ``force``
        (``aejax.outputs.check_output_dir``; checked before anything is computed).
      method: one of ``METHODS``.
      force: replace ``embedding.csv`` / ``embedding.png`` in ``out``.
      **options: ``split``, ``seed``, ``max_points``, ``data``, ``data_options`` of
        ``embed_run``.

    Returns:
      ``{"csv", "png", "method", "split", "data", "model", "points", "examples",
      "code_size", "labels", "seconds"}``.
    """
    from aejax import plots

    t0 = time.perf_counter()
    csv, png = check_output_dir(
        workdir if out is None else out,
        ("embedding.csv", "embedding.png"),
        force=force,
        default=out is None,
    )
    emb = embed_run(workdir, method, **options)
    write_csv(csv, emb)
    with atomic_path(png) as tmp:
        what = f"{method} of the codes"
        plots.code_scatter(tmp, emb.coords, emb.labels, title=title(emb), what=what)
    return {
        "csv": str(csv),
        "png": str(png),
        "method": method,
        "split": emb.split,
        "data": emb.data,
        "model": emb.model,
        "points": int(emb.index.size),
        "examples": emb.examples,
        "code_size": emb.code_size,
        "labels": emb.labels is not None,
        "seconds": time.perf_counter() - t0,
    }
