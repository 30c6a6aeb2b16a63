"""Time-series anomaly detection: windows of a series, point scores, thresholds, NAB labels.

Defaults (``detect_series`` and ``aejax detect`` alike, from one table, ``defaults.py``):
the model ``ae``, windows of a day, the ``vote`` score, no smoothing, then the anomaly
likelihood; chosen on NAB's 14 series by leaving one series out
(benchmarks/results/2026-12-07-cpu-nab-cv).

The protocol is causal (as NAB's): a model sees only the first ``train_fraction`` of a
series, the *fit part*. Its first ``1 - val_share`` give the training windows, the rest
the clean validation windows, on which early stopping, the EncDec-AD Gaussian and the
``validation`` threshold are fitted. Values are standardized per column with the fit
part's mean and scale. Every point of the series is then scored; metrics count only the
points after the fit part.

Windows: ``window`` consecutive points every ``stride`` points, the last one ending at the
last point (so every point is covered); window ``i`` starts at ``starts[i]`` and keeps the
timestamps ``timestamps[starts[i] : starts[i] + window]``. ``window="day"`` sets it from
the timestamps to one day of points (``points_per_day``: 288 for 5-minute data, 24 for
hourly), at most what the training and the validation parts each hold (``resolve_window``):
a window that spans the series' seasonal period lets the model reconstruct a whole cycle,
so a day that departs from the usual shape stands out, where 32 points see a fraction of
it (EncDec-AD and most of the literature set the window from the domain's period; NAB's
series are daily operational data). ``stride=None`` takes ``window // 32`` (at least 1):
each point still lies in about 32 windows, and an epoch costs about as many steps as
windows of 32 at stride 1.

Point scores: a point's per-step errors in every window that covers it are averaged
(``point_errors``). The mean, not the max: a sequence autoencoder smears a spike's error
over the steps it reconstructs near it, and the max over ~``window / stride`` windows
picks up the worst of those smears, which widens every detection by a window; the mean
keeps it centred on the point, and each interior point averages the same number of windows.

Scores: ``"mahalanobis"`` (EncDec-AD, Malhotra et al. 2016): a Gaussian ``N(mu, Sigma)``
fitted to the points' ``D``-dim absolute error vectors on the validation part, the score
the squared Mahalanobis distance ``(e - mu)^T Sigma^-1 (e - mu)``; ``"error"``: the
point's mean squared error summed over the columns; ``"vote"``: the mean of the ``error``
score's and an isolation forest's (fitted on the same training windows, flattened;
``forest_points``) robust z, each ``(s - median) / IQR`` over the validation points
(``aejax.apps.series.vote``). The model ``ensemble`` replaces the autoencoder and its
scores: the table detector's ensemble (``aejax.estimators.ensemble``) on the same
flattened windows, a point the mean of its windows' scores, a robust z over the validation
points (``aejax.apps.series.ensemble``; its one score is ``vote``).

Smoothing (``smooth=K``, 0 = off, the default): each point's score becomes the mean of its
own and the ``K - 1`` scores before it (causal, a point's score never sees the future). NAB's
windows are wide and real anomalies last; on the four NAB series here a span of 4 windows
raised every method's point ROC-AUC (``benchmarks/nab.py`` reports both).

Thresholds: ``percentile`` of the validation points' scores (``threshold="validation"``,
clean data assumed, NAB's probationary period) or the ``1 - contamination`` quantile of
the scored points' scores (``threshold="contamination"``).

Anomaly likelihood (``post="likelihood"``, the default; ``"none"`` keeps the scores;
Ahmad et al. 2017, NAB's HTM detector): each score is compared with a Gaussian fitted to
the scores of the last 8640 points (from the validation part on): the likelihood ``L_t``
is the normal CDF of the last 10 scores' mean, and a point is flagged when
``L_t >= 1 - 1e-5`` (``anomaly_likelihood``). The Gaussian follows the scores, so scores
that drift after the fit part stop raising alarms; only a sudden rise does. The settings
are the paper's, not tuned here. ``refractory=R`` (off) lets an alarm silence new ones for
``R`` points (``suppress_alarms``).

Alarms: a run of consecutive flagged points is one alarm, at its first point (what pages
an operator). ``windows_hit`` is the share of labelled windows (those reaching past the
fit part) holding at least one flagged point; ``alarms_in_windows`` the share of alarms
whose first point lies in a labelled window; ``false_alarms_per_day`` the alarms outside
every window per day of the scored part. ``vus_roc`` and ``vus_pr`` are the range-aware
VUS measures of Paparrizos et al. 2022 as TSB-AD computes them (``aejax.metrics.vus``) on
the scored points, with the largest buffer ``vus_buffer``: twice one day of points, at
most 600.
"""

from aejax.apps.series.defaults import DEFAULTS, SERIES_MODEL, series_defaults
from aejax.apps.series.detect import detect_series, fit_and_reconstruct, series_plot
from aejax.apps.series.ensemble import (
    ENSEMBLE,
    ENSEMBLE_SCORES,
    check_ensemble_score,
    ensemble_options,
    ensemble_points,
)
from aejax.apps.series.nab import (
    load_nab_windows,
    point_labels,
    series_metrics,
    vus_buffer,
    windows_for,
)
from aejax.apps.series.reading import TIMESTAMPS, Series, is_series_csv, read_series
from aejax.apps.series.scores import (
    LIKELIHOOD_EPSILON,
    LIKELIHOOD_HISTORY,
    LIKELIHOOD_SHORT,
    POSTS,
    SCORES,
    alarm_onsets,
    anomaly_likelihood,
    check_contamination,
    check_options,
    check_percentile,
    fit_gaussian,
    likelihood_threshold,
    mahalanobis,
    score_points,
    smooth_scores,
    suppress_alarms,
    threshold_for,
)
from aejax.apps.series.vote import FOREST_TREES, forest_points, robust_z, vote_scores
from aejax.apps.series.windows import (
    COVER,
    causal_parts,
    default_stride,
    point_errors,
    points_per_day,
    resolve_window,
    window_points,
    window_starts,
    windows,
)

__all__ = [
    "DEFAULTS",
    "SERIES_MODEL",
    "series_defaults",
    "COVER",
    "ENSEMBLE",
    "ENSEMBLE_SCORES",
    "check_ensemble_score",
    "ensemble_options",
    "ensemble_points",
    "FOREST_TREES",
    "forest_points",
    "robust_z",
    "vote_scores",
    "LIKELIHOOD_EPSILON",
    "LIKELIHOOD_HISTORY",
    "LIKELIHOOD_SHORT",
    "TIMESTAMPS",
    "check_contamination",
    "check_options",
    "check_percentile",
    "series_plot",
    "POSTS",
    "SCORES",
    "Series",
    "alarm_onsets",
    "anomaly_likelihood",
    "causal_parts",
    "default_stride",
    "detect_series",
    "fit_and_reconstruct",
    "fit_gaussian",
    "is_series_csv",
    "likelihood_threshold",
    "load_nab_windows",
    "mahalanobis",
    "point_errors",
    "point_labels",
    "points_per_day",
    "read_series",
    "resolve_window",
    "score_points",
    "series_metrics",
    "smooth_scores",
    "suppress_alarms",
    "threshold_for",
    "window_points",
    "window_starts",
    "vus_buffer",
    "windows",
    "windows_for",
]
