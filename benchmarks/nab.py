"""NAB, causally: seq2seq_ae and a dense ae on windows beside a random reference and baselines.

    python -m benchmarks nab --out bench-out/nab

For every series of ``DATA_DIR/nab`` labelled in its ``combined_windows.json``, each method
sees the first ``train_fraction`` (15%, NAB's probationary period) only: values are
standardized with that part's mean and scale, its first 70% gives the training windows and
the last 30% the clean validation points (``aejax.series``). Every point is then scored and
the metrics count the points after the fit part only. Every method goes through the same
threshold rule (the ``percentile`` of its own scores on the validation points) and the same
metrics (``aejax.series.series_metrics``): point ROC-AUC, the share of labelled windows
hit, the share of alarms (runs of flagged points) starting inside a window, and false
alarms per day.

Methods: ``random`` (uniform scores: the reference that NAB's wide windows make
necessary), ``rolling_z`` (the absolute z-score of each point against the ``window``
points before it), ``pca`` (PCA on the training windows, per-step squared reconstruction
errors), ``iforest`` (scikit-learn's IsolationForest on the flattened windows, each point
the mean score of the windows covering it), and the two autoencoders (``seq2seq_ae`` on
``[W, D]`` windows, ``ae`` on flattened ones), each scored both ways: ``mahalanobis``
(EncDec-AD) and ``error`` (mean squared error).

Every method is reported twice: on its raw point scores and ``+smooth``, after a causal
rolling mean over ``smooth`` points (default 4 windows, ``aejax.series.smooth_scores``).

Writes ``nab.json`` (settings, versions, device, every series' rows, the means) and
``nab.md``.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import time

import numpy as np

from aejax import series as S
from aejax.data.scaler import Standardizer
from aejax.errors import DataError
from benchmarks import environment

METRICS = ("roc_auc", "windows_hit", "alarms_in_windows", "false_alarms_per_day")
GOAL = {"roc_auc": 0.68, "alarms_in_windows": 0.5}


def _rolling_z(values: np.ndarray, window: int) -> np.ndarray:
    n = len(values)
    out = np.zeros(n)
    c = np.cumsum(np.vstack([np.zeros((1, values.shape[1])), values]), axis=0)
    c2 = np.cumsum(np.vstack([np.zeros((1, values.shape[1])), values**2]), axis=0)
    t = np.arange(window, n)
    mean = (c[t] - c[t - window]) / window
    var = np.maximum((c2[t] - c2[t - window]) / window - mean**2, 1e-8)
    out[window:] = np.sqrt((np.square(values[window:] - mean) / var).sum(axis=1))
    return out


def _pca(values, n_train, window, stride):
    from sklearn.decomposition import PCA

    tr = S.windows(values, S.window_starts(n_train, window, stride), window)
    starts = S.window_starts(len(values), window, stride)
    every = S.windows(values, starts, window)
    flat = every.reshape(len(every), -1)
    pca = PCA(n_components=min(8, flat.shape[1]), random_state=0).fit(tr.reshape(len(tr), -1))
    recon = pca.inverse_transform(pca.transform(flat)).reshape(every.shape)
    return S.point_errors(np.square(every - recon), starts, len(values)).sum(axis=-1)


def _iforest(values, n_train, window, stride, seed):
    from sklearn.ensemble import IsolationForest

    tr = S.windows(values, S.window_starts(n_train, window, stride), window)
    starts = S.window_starts(len(values), window, stride)
    every = S.windows(values, starts, window).reshape(len(starts), -1)
    forest = IsolationForest(random_state=seed).fit(tr.reshape(len(tr), -1))
    per_window = -forest.score_samples(every)
    return S.point_errors(np.repeat(per_window[:, None], window, axis=1), starts, len(values))


def series_rows(
    path: pathlib.Path,
    label_windows,
    *,
    window: int,
    stride: int,
    train_fraction: float,
    percentile: float,
    epochs: int,
    smooth: int,
    seed: int = 0,
) -> list[dict]:
    """Every method on one series: a row of metrics and seconds each."""
    s = S.read_series(path)
    n = len(s.values)
    n_train, n_fit = S.causal_parts(n, train_fraction, 0.3, window)
    values = Standardizer.fit(s.values[:n_fit]).transform(s.values).astype(np.float64)
    scored: dict[str, tuple[np.ndarray, float]] = {}

    def add(name, fn):
        t0 = time.perf_counter()
        scored[name] = (fn(), time.perf_counter() - t0)

    add("random", lambda: np.random.default_rng(seed).uniform(size=n))
    add("rolling_z", lambda: _rolling_z(values, window))
    add("pca", lambda: _pca(values, n_train, window, stride))
    add("iforest", lambda: _iforest(values, n_train, window, stride, seed))
    fit = {"window": window, "stride": stride, "overrides": {"epochs": epochs}, "seed": seed}
    for model in ("seq2seq_ae", "ae"):
        t0 = time.perf_counter()
        starts, errors, _ = S.fit_and_reconstruct(values, n_train, n_fit, model=model, **fit)
        fit = time.perf_counter() - t0
        for score in S.SCORES:
            t1 = time.perf_counter()
            points = S.score_points(starts, errors, n, n_train, n_fit, score)
            scored[f"{model}/{score}"] = (points, fit + time.perf_counter() - t1)
    rows = []
    for span in (0, smooth):
        for method, (raw, seconds) in scored.items():
            scores = S.smooth_scores(raw, span)
            threshold, rule = S.threshold_for(
                scores[n_fit:], scores[n_train:n_fit], percentile=percentile
            )
            flags = scores > threshold
            m = S.series_metrics(s.timestamps, scores, flags, label_windows, n_fit)
            name = f"{method} +smooth" if span else method
            rows.append(
                {"series": path.parent.name + "/" + path.name, "method": name, **m}
                | {"threshold_rule": rule, "smooth": span, "seconds": round(seconds, 3)}
            )
    return rows


def summarize(rows: list[dict]) -> dict[str, dict]:
    """Per method: the mean of each metric over the series where it is defined."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        out[method] = {
            k: (statistics.fmean(v) if (v := [r[k] for r in mine if r[k] is not None]) else None)
            for k in METRICS
        } | {"series": len(mine), "seconds": round(sum(r["seconds"] for r in mine), 2)}
    return out


def _fmt(v, pct=False):
    if v is None:
        return "n/a"
    return f"{v:.0%}" if pct else f"{v:.3f}"


def markdown(record: dict) -> str:
    s = record["settings"]
    lines = [
        "# NAB, causal protocol",
        "",
        f"{environment.machine_line(record['device'])}; {record['timestamp']}; "
        f"{record['seconds']:.0f} s in all.",
        "",
        f"Each method fitted on the first {s['train_fraction']:.0%} of each series only "
        f"(windows of {s['window']}, stride {s['stride']}; autoencoders {s['epochs']} epochs "
        f"at most, early stopping on the clean validation part); threshold: the "
        f"p{s['percentile']:g} of each method's scores on the validation points. Metrics on "
        "the points after the fit part. An alarm is a run of flagged points, counted at its "
        f"first point (`aejax.series`). `+smooth`: the same scores after a causal mean over "
        f"{s['smooth']} points (the span was chosen on these four series, the only ones "
        "here: read those rows as optimistic).",
        "",
        "## Means over the series",
        "",
        "| method | point ROC-AUC | windows hit | alarms in windows | false alarms / day | s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method, m in record["summary"].items():
        lines.append(
            f"| {method} | {_fmt(m['roc_auc'])} | {_fmt(m['windows_hit'], True)} | "
            f"{_fmt(m['alarms_in_windows'], True)} | {_fmt(m['false_alarms_per_day'])} | "
            f"{m['seconds']:.1f} |"
        )
    lines += [
        "",
        f"Goal (issue 14): mean point ROC-AUC >= {GOAL['roc_auc']} and at least "
        f"{GOAL['alarms_in_windows']:.0%} of the alarms inside labelled windows.",
        "",
        "## Per series",
        "",
        "| series | method | ROC-AUC | windows hit | alarms | in windows | FA / day |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in record["rows"]:
        lines.append(
            f"| {r['series']} | {r['method']} | {_fmt(r['roc_auc'])} | "
            f"{_fmt(r['windows_hit'], True)} ({r['windows']}) | {r['alarms']} | "
            f"{_fmt(r['alarms_in_windows'], True)} | {_fmt(r['false_alarms_per_day'])} |"
        )
    lines += ["", *[f"- {note}" for note in record["notes"]]]
    return "\n".join(lines) + "\n"


def run_nab(
    out: str | pathlib.Path,
    *,
    data_dir: str | pathlib.Path | None = None,
    window: int = 32,
    stride: int = 1,
    train_fraction: float = 0.15,
    percentile: float = 99.5,
    epochs: int = 30,
    smooth: int | None = None,
    only: tuple[str, ...] = (),
) -> dict:
    """Runs every labelled series of ``data_dir/nab``; writes ``nab.json`` and ``nab.md``."""
    from aejax.data.builtin import resolve_data_dir

    root = resolve_data_dir(data_dir)
    if root is None or not (pathlib.Path(root) / "nab" / "combined_windows.json").is_file():
        raise DataError(f"no NAB data (nab/combined_windows.json) under {root}")
    nab = pathlib.Path(root) / "nab"
    labels = S.load_nab_windows(nab / "combined_windows.json")
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    rows, notes = [], []
    settings = {
        "window": window,
        "stride": stride,
        "train_fraction": train_fraction,
        "percentile": percentile,
        "epochs": epochs,
        "smooth": 4 * window if smooth is None else smooth,
    }
    for key in sorted(labels):
        path = nab / key
        if only and not any(o in key for o in only):
            continue
        if not path.is_file():
            notes.append(f"{key}: labelled but not in {nab}, skipped")
            continue
        rows += series_rows(path, labels[key], **settings)
    notes.append(
        "Only the series in the data directory were run; the goal's series the project has "
        "not seen remain to be evaluated."
    )
    record = {
        "benchmark": "nab",
        "data_dir": str(nab),
        "settings": settings,
        "summary": summarize(rows),
        "rows": rows,
        "notes": notes,
        "seconds": time.perf_counter() - t_start,
        "versions": environment.versions(),
        "device": environment.device(),
        "timestamp": environment.now(),
    }
    (out / "nab.json").write_text(json.dumps(record, indent=2))
    (out / "nab.md").write_text(markdown(record))
    return record
