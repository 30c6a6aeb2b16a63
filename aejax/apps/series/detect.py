"""Causal detection on a series: fit a model on the fit part's windows, score every point,
threshold, write ``scores.csv``, ``scores.png`` and ``detect.json`` (``detect_series``)."""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any

import numpy as np

from aejax.apps.series.defaults import SERIES_MODEL, series_defaults
from aejax.apps.series.ensemble import (
    ENSEMBLE,
    check_ensemble_score,
    ensemble_options,
    ensemble_points,
)
from aejax.apps.series.nab import load_nab_windows, series_metrics, windows_for
from aejax.apps.series.reading import Series, read_series
from aejax.apps.series.scores import (
    LIKELIHOOD_EPSILON,
    LIKELIHOOD_HISTORY,
    LIKELIHOOD_SHORT,
    POSTS,
    _check_windows,
    anomaly_likelihood,
    check_options,
    likelihood_threshold,
    score_points,
    smooth_scores,
    suppress_alarms,
    threshold_for,
)
from aejax.apps.series.vote import forest_points
from aejax.apps.series.windows import (
    causal_parts,
    default_stride,
    resolve_window,
    window_starts,
    windows,
)
from aejax.errors import ConfigError, DataError
from aejax.outputs import atomic_path, check_output_dir, dumps_strict


def _config(model: str, overrides: dict | None, seed: int, progress: bool):
    from aejax import Config

    base = {"model": model, "epochs": 30, "batch_size": 64, "lr": 3e-3, "patience": 5}
    if model == "seq2seq_ae":
        base.update(latent_dim=16, rnn_hidden=32)
    else:
        base.update(hidden=(64,), latent_dim=8)
    base.update(seed=seed, progress=progress, **(overrides or {}))
    return Config(**base)


def reconstruct(result, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """The trained model's reconstructions of ``x [M, ...]`` in static batches."""
    from aejax.inference import batched_apply

    return batched_apply(result.model, result.variables, x, "call", min(batch, len(x)))[0]


def fit_and_reconstruct(
    values: np.ndarray,
    n_train: int,
    n_fit: int,
    *,
    window: int,
    stride: int,
    model: str | None = None,
    overrides: dict | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Trains ``model`` on standardized windows of the fit part; returns ``(starts,
    step_abs_errors [M, W, D], stats)`` over every window of the series (stride ``stride``).

    A sequence model (``seq2seq_ae``) sees ``[W, D]`` windows as ``sequence`` data; any
    other registry model sees them flattened as a ``[W * D]`` table. ``model=None`` is
    ``SERIES_MODEL`` (``ae``, as in ``detect_series``).
    """
    from aejax.assemble import train
    from aejax.data import Dataset
    from aejax.models import MODELS

    model = model or SERIES_MODEL
    config = _config(model, overrides, seed, progress)
    tr = windows(values, window_starts(n_train, window, stride), window)
    va = windows(values[n_train:n_fit], window_starts(n_fit - n_train, window, 1), window)
    starts = window_starts(len(values), window, stride)
    every = windows(values, starts, window)
    sequence = "sequence" in MODELS[model].kinds if model in MODELS else False
    shape = every.shape[1:]
    if not sequence:
        tr, va, every = (a.reshape(len(a), -1) for a in (tr, va, every))
    kind = "sequence" if sequence else "tabular"
    ds = Dataset(f"windows-{window}", kind, tr, va, va[:1])
    t0 = time.perf_counter()
    result = train(config, dataset=ds)
    fit_seconds = time.perf_counter() - t0
    recon = reconstruct(result, every).reshape(len(every), *shape)
    errors = np.abs(every.reshape(len(every), *shape) - recon)
    stats = {"fit_seconds": round(fit_seconds, 3), "epochs_run": result.stats["epochs_run"]}
    stats["train_windows"], stats["val_windows"] = len(tr), len(va)
    return starts, errors, stats


def _autoencoder_points(values, n_train, n_fit, window, stride, model, score, *fit_args):
    """``(points [N], stats)``: ``model`` fitted on the training windows, its ``score``
    (``score_points``; for ``vote`` with the forest of ``forest_points``)."""
    overrides, seed, progress = fit_args
    n = len(values)
    starts, errors, stats = fit_and_reconstruct(
        values,
        n_train,
        n_fit,
        window=window,
        stride=stride,
        model=model,
        overrides=overrides,
        seed=seed,
        progress=progress,
    )
    forest = None
    if score == "vote":  # the isolation forest on the autoencoder's training windows
        t0 = time.perf_counter()
        forest = forest_points(values, n_train, window, stride, seed=seed)
        stats["forest_seconds"] = round(time.perf_counter() - t0, 3)
    return score_points(starts, errors, n, n_train, n_fit, score, forest=forest), stats


def detect_series(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    model: str | None = None,
    window: int | str | None = None,
    stride: int | None = None,
    train_fraction: float = 0.15,
    val_share: float = 0.3,
    score: str | None = None,
    smooth: int | None = None,
    post: str | None = None,
    history: int = LIKELIHOOD_HISTORY,
    short: int = LIKELIHOOD_SHORT,
    epsilon: float | None = None,
    refractory: int = 0,
    percentile: float = 99.5,
    contamination: float | None = None,
    labels: str | os.PathLike | None = None,
    overrides: dict | None = None,
    seed: int = 0,
    progress: bool = False,
    timestamps: str = "increasing",
    force: bool = False,
) -> dict[str, Any]:
    """Causal detection on a ``timestamp,value[,...]`` CSV: writes ``out_dir/scores.csv``
    (``timestamp,score,is_anomaly``), ``scores.png`` and ``detect.json``; ``out_dir`` may
    exist, but not those files in it unless ``force`` (checked first,
    ``aejax.outputs.check_output_dir``).

    Defaults: ``model=None`` is ``SERIES_MODEL`` (``ae``); ``window``, ``score``,
    ``smooth`` and ``post`` left at None take that model's defaults
    (``series_defaults(model)``, ``aejax.apps.series.defaults``: for ``ae`` and
    ``seq2seq_ae``, ``window="day"``, ``score="vote"``, ``smooth=0``,
    ``post="likelihood"``), chosen on NAB's 14 series by leaving one series out
    (``python -m benchmarks nab-cv``, benchmarks/results/2026-12-07-cpu-nab-cv). ``aejax
    detect`` passes its unset options through, so both resolve them here, the same way.

    ``post="likelihood"`` turns the (optionally ``smooth``-ed) scores into NAB's
    log-likelihood score (``anomaly_likelihood(log=True)``, histories from the validation
    part on, ``history`` and ``short`` points) and flags ``L_t >= 1 - epsilon``
    (``epsilon=None``: 1e-5, the paper's) instead of the validation percentile
    (``contamination``, when given, still wins); ``post="none"`` flags above the
    ``percentile`` of the validation points' scores, and refuses an ``epsilon``.
    ``refractory=R`` clears every run of flags starting less than ``R`` points after the
    last alarm kept (``suppress_alarms``). ``window="day"`` spans one day of points from the
    timestamps (``resolve_window``: the seasonal period of daily data, at most what the
    training and validation parts each hold); ``window=32`` the windows of EncDec-AD;
    ``stride=None`` is ``window // 32``.
    ``score="vote"`` averages the ``error`` score's robust z with an IsolationForest's
    (``seed``, 100 trees, the same training windows; ``aejax.apps.series.vote``);
    ``"error"`` and ``"mahalanobis"`` are the autoencoder's alone. ``model="ensemble"``
    fits the table detector's ensemble (``aejax.estimators.ensemble``: 16 small
    autoencoders and an IsolationForest) on the same flattened windows instead
    (``aejax.apps.series.ensemble``); its one score is ``vote``, and ``overrides`` are
    its ``EnsembleOptions`` fields.
    ``timestamps`` says how rows are ordered (``read_series``): by default the timestamps
    must increase strictly, so the fit part is the past.

    Raises:
      ConfigError: an option outside its range (``check_options``) or an ``epsilon``
        without the likelihood, before anything is read.
      DataError: an unknown ``post``; what ``read_series`` refuses; a series too short for
        the windows.

    Returns:
      The summary written to ``detect.json`` (the resolved settings: ``model``,
      ``window`` in points with ``window_rule="day"`` when asked so, ``score``, ``smooth``,
      ``post``, ...); with ``labels`` (NAB's windows JSON) it holds ``series_metrics`` of
      the points after the fit part.
    """
    check_output_dir(out_dir, ("scores.csv", "scores.png", "detect.json"), force=force)
    # Unset options take the model's defaults, chosen on NAB by leaving one series out.
    model = model or SERIES_MODEL
    d = series_defaults(model)
    window = d["window"] if window is None else window
    score = d["score"] if score is None else score
    smooth = d["smooth"] if smooth is None else smooth
    post = d["post"] if post is None else post
    # Every option is checked before the file is read and the model trained.
    check_options(
        window=window,
        stride=stride,
        train_fraction=train_fraction,
        val_share=val_share,
        score=score,
        smooth=smooth,
        refractory=refractory,
        percentile=percentile,
        contamination=contamination,
    )
    if post not in POSTS:
        raise DataError(f"post {post!r}: choose one of {POSTS}")
    if epsilon is not None and post != "likelihood":
        raise ConfigError(f"epsilon is the tail of post='likelihood', not of post={post!r}")
    epsilon = LIKELIHOOD_EPSILON if epsilon is None else epsilon
    if post == "likelihood":
        _check_windows(history, short)
        likelihood_threshold(epsilon)
    if model == ENSEMBLE:  # the table ensemble: its own vote, its own settings
        check_ensemble_score(score)
        ensemble_options(overrides)
    else:
        _config(model, overrides, seed, progress)  # an unknown model or Config field
    from aejax.data.scaler import Standardizer

    s = read_series(path, timestamps=timestamps)
    n = len(s.values)
    label_windows = windows_for(load_nab_windows(labels), path) if labels else None
    requested = window
    window = resolve_window(window, s.timestamps, train_fraction, val_share)
    stride = default_stride(window) if stride is None else int(stride)
    n_train, n_fit = causal_parts(n, train_fraction, val_share, window)
    scaler = Standardizer.fit(s.values[:n_fit])
    values = scaler.transform(s.values).astype(np.float64)
    if model == ENSEMBLE:
        raw, stats = ensemble_points(
            values, n_train, n_fit, window, stride, seed=seed, overrides=overrides
        )
    else:
        raw, stats = _autoencoder_points(
            values, n_train, n_fit, window, stride, model, score, overrides, seed, progress
        )
    scores = smooth_scores(raw, smooth)
    if post == "likelihood":
        scores = anomaly_likelihood(scores, history=history, short=short, start=n_train, log=True)
    if post == "likelihood" and contamination is None:
        threshold, rule = likelihood_threshold(epsilon), f"likelihood >= 1 - {epsilon:g}"
        flags = scores >= threshold
    else:
        threshold, rule = threshold_for(
            scores[n_fit:],
            scores[n_train:n_fit],
            percentile=percentile,
            contamination=contamination,
        )
        flags = scores > threshold
    flags = suppress_alarms(flags, refractory)
    summary: dict[str, Any] = {
        "data": str(path),
        "points": n,
        "columns": list(s.columns),
        "model": model,
        "window": window,
        **({"window_rule": requested} if isinstance(requested, str) else {}),
        "stride": stride,
        "train_fraction": train_fraction,
        "fit_points": n_fit,
        "fit_until": str(s.timestamps[n_fit - 1]),
        "score": score,
        "smooth": smooth,
        "post": post,
        **({"history": history, "short": short} if post == "likelihood" else {}),
        "refractory": refractory,
        "threshold": threshold,
        "threshold_rule": rule,
        "flagged": int(flags[n_fit:].sum()),
        "seed": seed,
        **stats,
    }
    if label_windows is not None:
        summary.update(series_metrics(s.timestamps, scores, flags, label_windows, n_fit))
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from aejax.train.rundir import write_atomic

    lines = ["timestamp,score,is_anomaly"] + [
        f"{np.datetime_as_string(t, unit='s').replace('T', ' ')},{float(v)!r},{int(f)}"
        for t, v, f in zip(s.timestamps, scores, flags, strict=True)
    ]
    write_atomic(out / "scores.csv", "\n".join(lines) + "\n")
    with atomic_path(out / "scores.png") as tmp:
        series_plot(tmp, s, scores, threshold, n_fit, label_windows, title=model, flags=flags)
    write_atomic(out / "detect.json", dumps_strict(summary))
    summary["out"] = str(out)
    return summary


def series_plot(
    path, s: Series, scores, threshold, n_fit, label_windows=None, title=None, flags=None
):
    """The series (first column), its scores with the threshold, the flagged points
    (``flags [N]``, default ``scores > threshold``) and, when given, the labelled windows
    (red) over the fit part (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    t = s.timestamps
    a.plot(t, s.values[:, 0], lw=0.6, color="tab:blue")
    a.set_ylabel(s.columns[0])
    b.plot(t, scores, lw=0.6, color="tab:purple")
    b.axhline(threshold, color="black", ls="--", lw=1, label="threshold")
    flagged = scores > threshold if flags is None else np.asarray(flags, bool)
    b.scatter(t[flagged], scores[flagged], s=4, color="tab:red", label="flagged")
    b.set_yscale("symlog")
    b.set_ylabel("score")
    for ax in (a, b):
        ax.axvspan(t[0], t[n_fit - 1], color="0.85", lw=0)
        for lo, hi in label_windows or ():
            ax.axvspan(lo, hi, color="tab:red", alpha=0.15, lw=0)
    b.legend(fontsize=8, loc="upper left")
    a.set_title(f"{s.name}: {title or ''} (grey: fit part, red: labelled windows)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
