"""Anomaly detection: the aejax detector beside IsolationForest, PCA, kNN and PyOD's AutoEncoder.

    python -m benchmarks anomaly --out bench-out/anomaly                      # everything
    python -m benchmarks anomaly --methods baselines --out bench-out/anomaly  # no aejax

Two protocols, every method run the same way in the same process (``anomaly_methods``):

- ``adbench``: the ADBench classical sets in ``DATA_DIR/adbench/*.npz`` (``X`` [N, D], ``y``
  [N], 1 = anomaly), unsupervised and transductive: each method is fitted on all of ``X``
  without the labels and scores every row. Stochastic methods run with seeds 0..S-1 and a
  set's ROC-AUC and average precision are the means over the seeds; the headline figures
  are the means over the sets.
- ``mnist``: one-class MNIST, the Deep SVDD protocol on mnist-lite (``aejax``'s own loader):
  for each digit, fit on the 500 training images of that digit and score the official 10k
  test images, normal = that digit; pixels as flat rows [N, 784] in [0, 1]. The figure is
  the mean ROC-AUC over the digits (seed 0).

Fit and score are timed apart (``time.perf_counter``); before any timed fit each method is
fitted once, untimed, on a small random table (``warmup_seconds``: one-off imports and
torch's start-up). The aejax detector's timed fits include its JIT compilation, once per
new input shape. Metrics are ``sklearn.metrics.roc_auc_score`` and
``average_precision_score``. The data directory is ``--data-dir``, else ``$AEJAX_DATA_DIR``,
else ``../shared/data`` (``aejax.data.builtin.resolve_data_dir``).

Writes ``anomaly.json`` (versions, device, settings, every fit's row, the summaries, what was
skipped and why) and ``anomaly.md`` (the tables, beside the issue's figures).
"""

from __future__ import annotations

import json
import pathlib
import re
import statistics
import time

import numpy as np

from aejax.errors import DataError
from benchmarks import anomaly_report, environment, records
from benchmarks.anomaly_methods import Method, methods_for, unavailable
from benchmarks.timing import timed

PROTOCOLS = ("adbench", "mnist")
WHICH = ("all", "baselines", "aejax")
WARMUP_SHAPE = (64, 8)


def _set_order(path: pathlib.Path) -> tuple[int, str]:
    number = re.match(r"(\d+)_", path.name)
    return (int(number.group(1)) if number else 10**9, path.name)


def load_adbench(
    data_dir: str | pathlib.Path, sets: tuple[str, ...] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The ADBench ``.npz`` sets of ``data_dir/adbench``, in ADBench's numbering.

    Args:
      data_dir: the data directory (holding ``adbench/``).
      sets: only these names (the file stem, e.g. ``"6_cardio"``, or without the number,
        ``"cardio"``); None: every set there.

    Returns:
      name -> ``(X [N, D] float64, y [N] int64 with 1 = anomaly)``.

    Raises:
      DataError: no such directory or set; a file without ``X``/``y``, non-finite
        features, labels other than 0/1 or a single class.
    """
    folder = pathlib.Path(data_dir) / "adbench"
    files = sorted(folder.glob("*.npz"), key=_set_order)
    if not files:
        raise DataError(f"no ADBench sets (*.npz) in {folder}")
    if sets is not None:
        known = {f.stem: f for f in files} | {f.stem.partition("_")[2]: f for f in files}
        missing = [s for s in sets if s not in known]
        if missing:
            raise DataError(f"ADBench set(s) {missing} not in {folder}: {[f.stem for f in files]}")
        files = sorted({known[s] for s in sets}, key=_set_order)
    out = {}
    for f in files:
        with np.load(f) as d:
            if "X" not in d or "y" not in d:
                raise DataError(f"{f}: expected arrays X and y, found {sorted(d)}")
            x, y = np.asarray(d["X"], np.float64), np.asarray(d["y"])
        x = x.reshape(x.shape[0], -1)
        if not np.isfinite(x).all():
            raise DataError(f"{f}: X holds NaN or Inf")
        if x.shape[0] != y.shape[0] or not np.isin(y, (0, 1)).all() or np.unique(y).size < 2:
            raise DataError(f"{f}: y must be {x.shape[0]} labels of both classes 0 and 1")
        out[f.stem] = (x, y.astype(np.int64))
    return out


def load_mnist(data_dir: str | pathlib.Path | None) -> tuple[np.ndarray, ...]:
    """mnist-lite as the library loads it: ``(x_train [5000, 784], y_train [5000], x_test
    [10000, 784], y_test [10000])``, pixels float32 in [0, 1].

    Raises:
      DataError: the files are not found (the message says where it looked).
    """
    from aejax.data.builtin import _load_mnist_lite

    raw = _load_mnist_lite(None if data_dir is None else str(data_dir))

    def flat(x):
        return (np.asarray(x, np.float32) / 255.0).reshape(x.shape[0], -1)

    return flat(raw.x), raw.y.astype(np.int64), flat(raw.x_test), raw.y_test.astype(np.int64)


def _metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores = np.asarray(scores, np.float64).reshape(-1)
    if scores.shape != y.shape or not np.isfinite(scores).all():
        raise DataError(f"expected {y.shape[0]} finite scores, got shape {scores.shape}")
    return {"auc": float(roc_auc_score(y, scores)), "ap": float(average_precision_score(y, scores))}


def _seeds(method: Method, seeds: int) -> range:
    return range(seeds if method.stochastic else 1)


def _fit_and_score(method: Method, x_fit, x_score, y, seed: int) -> dict:
    fitted, fit_seconds = timed(lambda: method.fit(x_fit, seed))
    # The transductive protocol scores the very array it fitted on (kNN then skips self).
    scores, score_seconds = timed(lambda: method.score(fitted, x_score))
    return {
        "method": method.name,
        "seed": seed,
        **_metrics(y, scores),
        "fit_seconds": fit_seconds,
        "score_seconds": score_seconds,
    }


def adbench_rows(
    sets: dict[str, tuple[np.ndarray, np.ndarray]], methods: tuple[Method, ...], seeds: int
) -> list[dict]:
    """One row per (set, method, seed): each method fitted on all of X, scoring all of X."""
    rows = []
    for name, (x, y) in sets.items():
        for method in methods:
            for seed in _seeds(method, seeds):
                row = _fit_and_score(method, x, x, y, seed)
                rows.append({"protocol": "adbench", "set": name, **row})
    return rows


def one_class_rows(
    mnist: tuple[np.ndarray, ...],
    methods: tuple[Method, ...],
    digits: tuple[int, ...] = tuple(range(10)),
    seeds: int = 1,
) -> list[dict]:
    """One row per (digit, method, seed): fitted on the training images of the digit,
    scoring every test image (label 1 = another digit).

    Args:
      mnist: ``(x_train [N, 784], y_train [N], x_test [M, 784], y_test [M])``.
    """
    x_train, y_train, x_test, y_test = mnist
    rows = []
    for digit in digits:
        normal = x_train[y_train == digit]
        if normal.shape[0] == 0:
            raise DataError(f"one-class MNIST: no training images of digit {digit}")
        y = (y_test != digit).astype(np.int64)
        for method in methods:
            for seed in _seeds(method, seeds):
                row = _fit_and_score(method, normal, x_test, y, seed)
                rows.append({"protocol": "mnist", "set": str(digit), **row})
    return rows


def summarize(rows: list[dict]) -> dict[str, dict]:
    """Per method: each set's AUC/AP means over seeds, their means over the sets, and the
    fit and score seconds (median/min/max over every fit)."""
    out: dict[str, dict] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        per_set = {}
        for name in dict.fromkeys(r["set"] for r in mine):
            of_set = [r for r in mine if r["set"] == name]
            per_set[name] = {
                "auc": statistics.fmean(r["auc"] for r in of_set),
                "ap": statistics.fmean(r["ap"] for r in of_set),
                "auc_std": float(np.std([r["auc"] for r in of_set])),
                "seeds": len(of_set),
                "fit_seconds_median": statistics.median(r["fit_seconds"] for r in of_set),
            }
        out[method] = {
            "per_set": per_set,
            "mean_auc": statistics.fmean(s["auc"] for s in per_set.values()),
            "mean_ap": statistics.fmean(s["ap"] for s in per_set.values()),
            "fit_seconds": records.summarize([r["fit_seconds"] for r in mine]),
            "score_seconds": records.summarize([r["score_seconds"] for r in mine]),
        }
    return out


def _warmup_rows(kind: str) -> np.ndarray:
    """A small random input of the protocol's kind: a table, or flat images in [0, 1]."""
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 8)) if kind == "tabular" else rng.uniform(size=(64, 784))


def _runnable(methods: tuple[Method, ...], kind: str) -> tuple[tuple, dict, dict]:
    """``(methods that can run here, {name: reason} of the others, {name: warm-up s})``:
    each runnable method is fitted and scored once, untimed, on ``_warmup_rows``."""
    skipped = {m.name: unavailable(m) for m in methods if unavailable(m)}
    keep = tuple(m for m in methods if m.name not in skipped)
    warm = _warmup_rows(kind)
    warmup = {m.name: timed(lambda m=m: m.score(m.fit(warm, 0), warm))[1] for m in keep}
    return keep, skipped, warmup


def run_anomaly(
    out: str | pathlib.Path,
    *,
    data_dir: str | pathlib.Path | None = None,
    protocols: tuple[str, ...] = PROTOCOLS,
    which: str = "all",
    seeds: int = 3,
    sets: tuple[str, ...] | None = None,
    digits: tuple[int, ...] = tuple(range(10)),
    mnist_seeds: int = 1,
) -> dict:
    """Runs the protocols, writes ``anomaly.json`` and ``anomaly.md`` into ``out``.

    Args:
      out: the output directory.
      data_dir: holds ``adbench/`` and ``mnist/`` (default: ``resolve_data_dir``'s choice).
      protocols: some of ``PROTOCOLS``; one whose data is missing is skipped with a note.
      which: ``"all"``, ``"baselines"`` or ``"aejax"`` (``anomaly_methods.methods_for``).
      seeds: seeds 0..seeds-1 of each stochastic method on ADBench.
      sets: only these ADBench sets (see ``load_adbench``).
      digits: the one-class MNIST digits.
      mnist_seeds: seeds of each stochastic method per digit.

    Returns:
      The record written to ``anomaly.json``.
    """
    from aejax.data.builtin import resolve_data_dir

    bad = sorted(set(protocols) - set(PROTOCOLS))
    if bad or which not in WHICH:
        raise DataError(f"unknown protocol(s) {bad} or methods {which!r}: {PROTOCOLS}, {WHICH}")
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    root = resolve_data_dir(data_dir)
    record: dict = {"benchmark": "anomaly", "data_dir": str(root), "protocols": {}, "notes": []}
    for protocol in protocols:
        kind = "tabular" if protocol == "adbench" else "image"
        try:
            if root is None and protocol == "adbench":
                raise DataError("no data directory: pass --data-dir or set AEJAX_DATA_DIR")
            data = load_adbench(root, sets) if protocol == "adbench" else load_mnist(data_dir)
        except DataError as e:
            record["notes"].append(f"{protocol} skipped: {str(e).splitlines()[0]}")
            continue
        methods, skipped, warmup = _runnable(methods_for(kind, which), kind)
        if protocol == "adbench":
            rows = adbench_rows(data, methods, seeds)
            shapes = {
                k: {"n": int(x.shape[0]), "d": int(x.shape[1]), "anomalies": int(y.sum())}
                for k, (x, y) in data.items()
            }
        else:
            rows = one_class_rows(data, methods, digits, mnist_seeds)
            per_digit = {str(d): int((data[1] == d).sum()) for d in digits}
            shapes = {"train_per_digit": per_digit, "test": int(data[2].shape[0])}
        record["protocols"][protocol] = {
            "seeds": seeds if protocol == "adbench" else mnist_seeds,
            "data": shapes,
            "methods": {m.name: {"stochastic": m.stochastic, **m.settings} for m in methods},
            "skipped": skipped,
            "warmup_seconds": warmup,
            "summary": summarize(rows) if rows else {},
            "rows": rows,
        }
    record.update(
        seconds=time.perf_counter() - t_start,
        versions=environment.versions(),
        device=environment.device(),
        timestamp=environment.now(),
    )
    (out / "anomaly.json").write_text(json.dumps(record, indent=2))
    (out / "anomaly.md").write_text(anomaly_report.markdown(record))
    return record
