"""``aejax detect``: score every row of a table with an ``AnomalyDetector``, write the scores.

Transductive by design, as tabular anomaly detection is usually run: the detector is fitted
on all rows of the file (labels, when given, are never shown to it, except to
``threshold="f1"``) and then scores the same rows.
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any

import numpy as np

from aejax.data._validate import check_labels, check_table, impute_missing
from aejax.data.files import load_file
from aejax.errors import DataError
from aejax.estimators import AnomalyDetector
from aejax.estimators._core import seed_of
from aejax.metrics.detection import detection_report
from aejax.outputs import atomic_path, check_output_dir, dumps_strict
from aejax.train.rundir import write_atomic

# ``--set`` keys that say how to read the file; every other key goes to the detector.
READ_OPTIONS = ("label_column", "drop_columns", "impute")
# What ``detect`` writes into its ``--out`` folder (the series path too).
OUTPUT_FILES = ("scores.csv", "scores.png", "detect.json")


def read_table(
    path: str | os.PathLike,
    *,
    label_column: int | str | None = None,
    drop_columns: tuple = (),
    impute: str = "none",
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...] | None]:
    """``(x [N, D] float64, labels [N] 0/1 or None, column names or None)`` of a file.

    An ``.npz`` with ``X`` and ``y`` (ADBench's layout) gives its labels; a CSV gives them
    from ``label_column``. Missing cells (``impute="mean"``) are filled with column means.
    Every array passes the checks ``aejax train`` runs (``aejax.data._validate``).

    Raises:
      DataError: what ``aejax.data.files.load_file`` refuses; what the shared validator
        refuses (non-numeric or complex dtype, empty, NaN/Inf with their count and first
        row, values beyond float32, labels of another length than the rows); images;
        labels other than 0 (normal) and 1 (anomaly).
    """
    raw = load_file(path, label_column=label_column, drop_columns=drop_columns, impute=impute)
    where = f"data file {path}"
    allow_nan = impute == "mean"
    x = check_table(raw.x, where, what="x", allow_nan=allow_nan)
    y = check_labels(raw.y, x.shape[0], where, what="y")
    if raw.x_test is not None:
        x_test = check_table(raw.x_test, where, what="x_test", allow_nan=allow_nan)
        if x_test.shape[1] != x.shape[1]:
            raise DataError(
                f"{where}: x_test has {x_test.shape[1]} columns, x has {x.shape[1]}; they "
                "must match"
            )
        y_test = check_labels(raw.y_test, x_test.shape[0], where, what="y_test")
        if (y is None) != (y_test is None):
            raise DataError(f"{where}: labels given for only one of x and x_test")
        x = np.concatenate([x, x_test])
        y = None if y is None else np.concatenate([y, y_test])
    if impute == "mean":  # transductive: every row is a training row
        x, _ = impute_missing(x, [], where, columns=raw.columns)
    if y is not None and not np.isin(y, (0, 1)).all():
        raise DataError(
            f"{path}: labels must be 0 (normal) or 1 (anomaly); got values "
            f"{np.unique(y)[:6].tolist()}"
        )
    return x, y, raw.columns


def detect_table(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    detector: AnomalyDetector | None = None,
    read_options: dict[str, Any] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Fits ``detector`` (default ``AnomalyDetector()``) on the table at ``path``, scores its
    rows and writes ``out_dir/scores.csv``, ``scores.png`` and ``detect.json``.

    ``out_dir`` may exist, but not those three files in it unless ``force``
    (``aejax.outputs.check_output_dir``, checked before the file is read).

    ``scores.csv`` has the columns ``row,score,is_anomaly`` (then ``label``): the 0-based
    row of the table, the anomaly score (higher = more anomalous) and 0/1 against the
    threshold.

    Returns:
      The summary written to ``detect.json``: rows, features, threshold and its rule,
      outliers flagged, fit seconds and, with labels, ``roc_auc``, ``average_precision``
      and ``precision_at_n``.

    Raises:
      ConfigError: one of the three files exists (without ``force``) or ``out_dir`` lies
        in a run's bookkeeping.
    """
    check_output_dir(out_dir, OUTPUT_FILES, force=force)
    x, y, columns = read_table(path, **(read_options or {}))
    detector = detector if detector is not None else AnomalyDetector()
    t0 = time.perf_counter()
    detector.fit(x, y if detector.threshold == "f1" else None)
    fit_seconds = time.perf_counter() - t0
    scores, flags = detector.decision_scores_, detector.labels_
    summary: dict[str, Any] = {
        "data": str(path),
        "rows": int(x.shape[0]),
        "features": int(x.shape[1]),
        "model": detector.model_,
        "score": detector.score_,
        "threshold": float(detector.threshold_),
        "threshold_rule": detector.threshold_rule_,
        "outliers": int(flags.sum()),
        "fit_seconds": round(fit_seconds, 3),
        "seed": seed_of(detector.random_state),
    }
    if y is not None:
        if y.min() == y.max():
            summary["metrics_note"] = "the labels hold one class only: no ROC-AUC or AP"
        else:
            summary.update(detection_report(y, scores))
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_scores(out / "scores.csv", scores, flags, y)
    from aejax.plots import score_histogram  # late: matplotlib

    title = f"{pathlib.Path(path).name}: {detector.model_}, {detector.score_} score"
    with atomic_path(out / "scores.png") as tmp:
        score_histogram(tmp, scores, detector.threshold_, y, title=title)
    write_atomic(out / "detect.json", dumps_strict(summary))
    summary["out"] = str(out)
    return summary


def _write_scores(path: pathlib.Path, scores, flags, y) -> None:
    header = ["row", "score", "is_anomaly"] + ([] if y is None else ["label"])
    lines = [",".join(header)]
    for i, (s, f) in enumerate(zip(scores, flags, strict=True)):
        row = [str(i), repr(float(s)), str(int(f))] + ([] if y is None else [str(int(y[i]))])
        lines.append(",".join(row))
    write_atomic(path, "\n".join(lines) + "\n")


__all__ = ["OUTPUT_FILES", "READ_OPTIONS", "detect_table", "read_table"]
