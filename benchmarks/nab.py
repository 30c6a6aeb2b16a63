"""NAB, causally: seq2seq_ae and a dense ae on windows beside a random reference and baselines.

    python -m benchmarks nab --out bench-out/nab

For every series of ``DATA_DIR/nab`` labelled in its ``combined_windows.json``, each method
sees the first ``train_fraction`` (15%, NAB's probationary period) only: values are
standardized with that part's mean and scale, its first 70% gives the training windows and
the last 30% the clean validation points (``aejax.apps.series``). Every point is then scored and
the metrics count the points after the fit part only. Every method goes through the same
threshold rule (the ``percentile`` of its own scores on the validation points) and the same
metrics (``aejax.apps.series.series_metrics``): point ROC-AUC, the share of labelled windows
hit, the share of alarms (runs of flagged points) starting inside a window, and false
alarms per day.

Methods: ``random`` (uniform scores: the reference that NAB's wide windows make
necessary), ``rolling_z`` (the absolute z-score of each point against the ``window``
points before it), ``pca`` (PCA on the training windows, per-step squared reconstruction
errors), ``iforest`` (scikit-learn's IsolationForest on the flattened windows, each point
the mean score of the windows covering it), and the two autoencoders (``seq2seq_ae`` on
``[W, D]`` windows, ``ae`` on flattened ones), each scored three ways: ``mahalanobis``
(EncDec-AD), ``error`` (mean squared error) and ``vote`` (the mean of the ``error``'s and
the ``iforest`` row's robust z over the validation points, ``aejax.apps.series.vote``).

Every method's point scores go through the same post-processing families
(``post_process``):

- raw: flagged above the p``percentile`` (99.5) of its validation scores;
- ``+smooth``: a causal rolling mean over ``smooth`` points first (default 4 windows of
  ``window``, 128 points for every row, ``@day`` ones too, ``aejax.apps.series.smooth_scores``;
  the span was chosen on these four series: optimistic);
- ``+valmax``: raw, flagged above the max of its validation scores;
- ``+likelihood``: Numenta's anomaly likelihood (Ahmad et al. 2017,
  ``aejax.apps.series.anomaly_likelihood``) with the paper's settings (a Gaussian over the last
  8640 points, histories from the validation part on, a mean of the last 10 scores,
  flagged at ``L >= 1 - 1e-5``); the scores ranked for ROC-AUC are its log-likelihood;
- ``+likelihood +refractory``: the same, an alarm silencing new ones for one window
  (``aejax.apps.series.suppress_alarms``);
- ``+smooth +likelihood``: the likelihood of the ``+smooth`` scores (optimistic as those);
- ``+likelihood W'=window``: the likelihood with the short mean over the method's window
  instead of the paper's 10 points (an anomaly is judged over as many points as the model
  sees at once).

Every method but ``random`` runs twice: on windows of ``window`` (32, stride 1) and, as
``name@day``, on windows of one day of points from the timestamps
(``aejax.apps.series.resolve_window``: 288 for 5-minute data, 48 for 30 minutes, 24 for hourly,
at most what the validation part holds), stride ``window // 32``: a window that spans the
daily cycle of these operational series, the period EncDec-AD and most of the literature
set windows from (fixed before it ran here).

Writes ``nab.json`` (settings, versions, device, every series' rows, the means) and
``nab.md``.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import time

import numpy as np

from aejax.apps import series as S
from aejax.data.scaler import Standardizer
from aejax.errors import DataError
from benchmarks import environment

METRICS = ("roc_auc", "windows_hit", "alarms_in_windows", "false_alarms_per_day")
GOAL = {"roc_auc": 0.68, "alarms_in_windows": 0.5}
FAMILIES = (
    "",
    " +smooth",
    " +valmax",
    " +likelihood",
    " +likelihood +refractory",
    " +smooth +likelihood",
    " +likelihood W'=window",
)
# Numenta's anomaly likelihood with the paper's settings (Ahmad et al. 2017), not tuned here.
LIKELIHOOD = {
    "history": S.LIKELIHOOD_HISTORY,
    "short": S.LIKELIHOOD_SHORT,
    "epsilon": S.LIKELIHOOD_EPSILON,
}


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


def _methods(values, n, n_train, n_fit, window, stride, epochs, seed, suffix, scored) -> None:
    """Every method on windows of ``window`` every ``stride``: ``scored[name + suffix] =
    (point scores [n], seconds, window)``."""

    def add(name, fn):
        t0 = time.perf_counter()
        scored[name + suffix] = (fn(), time.perf_counter() - t0, window)

    if not suffix:  # the reference has no window
        add("random", lambda: np.random.default_rng(seed).uniform(size=n))
    add("rolling_z", lambda: _rolling_z(values, window))
    add("pca", lambda: _pca(values, n_train, window, stride))
    add("iforest", lambda: S.forest_points(values, n_train, window, stride, seed=seed))
    forest = scored["iforest" + suffix][0]  # the vote's second member, the same forest
    fit = {"window": window, "stride": stride, "overrides": {"epochs": epochs}, "seed": seed}
    for model in ("seq2seq_ae", "ae"):
        t0 = time.perf_counter()
        starts, errors, _ = S.fit_and_reconstruct(values, n_train, n_fit, model=model, **fit)
        fit_s = time.perf_counter() - t0
        for score in S.SCORES:
            t1 = time.perf_counter()
            vote = score == "vote"
            points = S.score_points(
                starts, errors, n, n_train, n_fit, score, forest=forest if vote else None
            )
            seconds = fit_s + time.perf_counter() - t1 + (scored["iforest" + suffix][1] * vote)
            scored[f"{model}/{score}{suffix}"] = (points, seconds, window)


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
    likelihood: dict = LIKELIHOOD,
    day: bool = True,
    seed: int = 0,
) -> list[dict]:
    """Every method on one series, on windows of ``window`` and (``day``) again on windows
    of one day (``@day``, ``aejax.apps.series.resolve_window``, stride ``window // 32``): a row
    of metrics and seconds each. Both share the fit part of the fixed window."""
    # NAB's own protocol reads rows in file order: machine_temperature_system_failure repeats
    # an hour of its clock once, its rows are still in time order.
    s = S.read_series(path, timestamps="file")
    n = len(s.values)
    n_train, n_fit = S.causal_parts(n, train_fraction, 0.3, window)
    values = Standardizer.fit(s.values[:n_fit]).transform(s.values).astype(np.float64)
    scored: dict[str, tuple[np.ndarray, float, int]] = {}
    _methods(values, n, n_train, n_fit, window, stride, epochs, seed, "", scored)
    if day:
        w_day = S.resolve_window("day", s.timestamps, train_fraction, 0.3)
        S.causal_parts(n, train_fraction, 0.3, w_day)  # the same parts, checked
        stride_day = S.default_stride(w_day)
        _methods(values, n, n_train, n_fit, w_day, stride_day, epochs, seed, "@day", scored)
    rows = []
    for family in FAMILIES:
        for method, (raw, seconds, w) in scored.items():
            scores, flags, rule = post_process(
                raw,
                family,
                n_train=n_train,
                n_fit=n_fit,
                percentile=percentile,
                smooth=smooth,
                likelihood=likelihood,
                refractory=w,
                window=w,
            )
            m = S.series_metrics(s.timestamps, scores, flags, label_windows, n_fit)
            rows.append(
                {"series": path.parent.name + "/" + path.name, "method": method + family, **m}
                | {"window": w, "threshold_rule": rule, "seconds": round(seconds, 3)}
            )
    return rows


def post_process(
    raw: np.ndarray,
    family: str,
    *,
    n_train: int,
    n_fit: int,
    percentile: float,
    smooth: int,
    likelihood: dict,
    refractory: int,
    window: int | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """``(scores [N], flags [N], rule)`` of raw point scores ``[N]`` under one of
    ``FAMILIES``: ``""`` (raw, validation percentile), ``" +smooth"`` (a causal mean over
    ``smooth`` points, then the same), ``" +valmax"`` (raw, the validation max),
    ``" +likelihood"`` (Numenta's log-likelihood, ``L >= 1 - epsilon``) and
    ``" +likelihood +refractory"`` (the same, one alarm per ``refractory`` points) and
    ``" +smooth +likelihood"`` (the likelihood of the smoothed scores) and
    ``" +likelihood W'=window"`` (the likelihood with a short mean over the method's
    ``window``, default ``refractory``, instead of the paper's 10)."""
    if family not in FAMILIES:
        raise DataError(f"family {family!r}: choose one of {FAMILIES}")
    if "+likelihood" in family:
        eps = likelihood["epsilon"]
        base = S.smooth_scores(raw, smooth) if family.startswith(" +smooth") else raw
        short = likelihood["short"]
        if family.endswith("W'=window"):
            short = min(refractory if window is None else window, likelihood["history"])
        scores = S.anomaly_likelihood(
            base, history=likelihood["history"], short=short, start=n_train, log=True
        )
        flags = scores >= S.likelihood_threshold(eps)
        rule = f"likelihood >= 1 - {eps:g}" + (
            f", short {short}" if short != likelihood["short"] else ""
        )
        if family.endswith("+refractory"):
            flags, rule = S.suppress_alarms(flags, refractory), f"{rule}, refractory {refractory}"
        return scores, flags, rule
    scores = S.smooth_scores(raw, smooth if family == " +smooth" else 0)
    p = 100.0 if family == " +valmax" else percentile
    threshold, rule = S.threshold_for(scores[n_fit:], scores[n_train:n_fit], percentile=p)
    return scores, scores > threshold, rule


def summarize(rows: list[dict]) -> dict[str, dict]:
    """Per method: the mean of each metric over the series where it is defined."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        out[method] = {
            k: (statistics.fmean(v) if (v := [r[k] for r in mine if r[k] is not None]) else None)
            for k in METRICS
        } | {
            "series": len(mine),
            "alarms": sum(r["alarms"] for r in mine),
            "seconds": round(sum(r["seconds"] for r in mine), 2),
        }
    return out


def _fmt(v, pct=False):
    if v is None:
        return "n/a"
    return f"{v:.0%}" if pct else f"{v:.3f}"


def markdown(record: dict) -> str:
    s = record["settings"]
    lk = s.get("likelihood", LIKELIHOOD)
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
        f"first point (`aejax.apps.series`). `+smooth`: the same scores after a causal mean over "
        f"{s['smooth']} points (the span was chosen on these four series, the only ones "
        "here: read those rows, and `+smooth +likelihood`, as optimistic). `+valmax`: raw "
        "scores above the max of the validation scores. `+likelihood`: Numenta's anomaly "
        f"likelihood (Ahmad et al. 2017) with the paper's settings (a Gaussian over the last "
        f"{lk['history']} scores from the validation part on, the mean of the last "
        f"{lk['short']}), flagged at L >= 1 - {lk['epsilon']:g}, its log-likelihood ranked "
        "for ROC-AUC; `+refractory`: an alarm silences new ones for one window; "
        "`+likelihood W'=window`: the same likelihood with the mean of the last window of "
        "scores instead of 10. `@day`: the method on windows of one day of points from the "
        "timestamps (288 at 5 minutes, 48 at 30, 24 at an hour; at most what the "
        "validation part holds: 181 on art_daily_jumpsup), stride window // 32, the same "
        "fit part (a setting from the data's period, fixed before it ran here). Means of "
        "alarms in windows leave out the series without alarms; `alarms` is the total over "
        "the series.",
        "",
        "## Means over the series",
        "",
        "| method | point ROC-AUC | windows hit | alarms in windows | false alarms / day "
        "| alarms | s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for method, m in record["summary"].items():
        lines.append(
            f"| {method} | {_fmt(m['roc_auc'])} | {_fmt(m['windows_hit'], True)} | "
            f"{_fmt(m['alarms_in_windows'], True)} | {_fmt(m['false_alarms_per_day'])} | "
            f"{m['alarms']} | {m['seconds']:.1f} |"
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
    day: bool = True,
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
        "likelihood": dict(LIKELIHOOD),
        "day": day,
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
