"""Table detection defaults chosen by leaving ADBench sets out, and the peers beside them.

    python -m benchmarks anomaly-cv --out bench-out/anomaly-cv

The data protocol is the one the project is judged by (``../shared/data/README.md``,
``adbench_protocol``): a set of more than 5,000 rows is subsampled to 5,000, stratified,
with ``np.random.RandomState(0)``; features standardized on the rows used (constant
columns 0); each method fits every row without labels and scores the same rows; ROC-AUC
and average precision.

Every candidate setting of the aejax ensemble (``CANDIDATES``: an ``EnsembleOptions``
and the vote) runs on every set with seeds ``0..S-1``; one fit of an ensemble gives both
of its votes. Then, for each set, the candidate with the best mean of ``(ROC-AUC + AP) / 2``
over the *other* sets is scored on it: the mean of those held-out figures over the sets
is the left-out figure (leave one set out; the K-fold variant over sets is reported too).
The shipped default is the pick on every set; ``AnomalyDetector()`` is then run as a
user runs it (the public estimator, every default), beside the peers of
``anomaly_methods`` in the same process: IsolationForest, PCA, kNN, PyOD's AutoEncoder and
VAE. Fit times include the JIT compilation (once per new input shape), after one untimed
warm-up fit of each method on a small table.

Writes ``anomaly_cv.json`` (versions, device, every row, the folds' picks, the summaries)
and ``anomaly_cv.md``. Rows are cached in ``OUT/rows-cache.json`` so a rerun only fits
what is missing.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import time

import numpy as np

from benchmarks import environment
from benchmarks.anomaly import _metrics, load_adbench
from benchmarks.anomaly_methods import methods_for, unavailable
from benchmarks.timing import timed

CAP = 5000
# The candidates: the centre (the defaults' family) and one change at a time.
CENTRE = {
    "members": 8,
    "hidden": 64,
    "code": "sqrt",
    "passes": 3,
    "activation": "sigmoid",
    "feature_fraction": 1.0,
}
CHANGES = (
    {},
    {"passes": 1},
    {"passes": 10},
    {"activation": "tanh"},
    {"activation": "relu"},
    {"code": 2},
    {"feature_fraction": 0.5},
    {"hidden": 128},
    {"members": 16},
)
VOTES = ("vote", "reconstruction")


def adbench_protocol(x: np.ndarray, y: np.ndarray, cap: int = CAP) -> tuple[np.ndarray, ...]:
    """The judged protocol's rows of one set: ``(x [n, D] float64 standardized, y [n])``.

    More than ``cap`` rows: ``max(1, round(cap * share))`` anomalies and the rest normal
    rows, each drawn without replacement by one ``np.random.RandomState(0)`` (anomalies
    first), kept in their original order. Columns standardized on the rows kept; a
    constant column becomes 0.
    """
    if x.shape[0] > cap:
        rng = np.random.RandomState(0)
        anomalies, normal = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        n_anomalies = max(1, int(round(cap * anomalies.size / y.size)))
        keep = np.sort(
            np.concatenate(
                [
                    rng.choice(anomalies, n_anomalies, replace=False),
                    rng.choice(normal, cap - n_anomalies, replace=False),
                ]
            )
        )
        x, y = x[keep], y[keep]
    mean, std = x.mean(axis=0), x.std(axis=0)
    x = np.where(std > 0, (x - mean) / np.where(std > 0, std, 1.0), 0.0)
    return x, y


def candidate_name(change: dict) -> str:
    return "centre" if not change else ",".join(f"{k}={v}" for k, v in change.items())


def _candidate_rows(sets, seeds: int, cache: dict, save) -> list[dict]:
    """One row per (set, AE candidate, seed, vote)."""
    from aejax.estimators.ensemble import Ensemble, EnsembleOptions

    rows = []
    for change in CHANGES:
        options = EnsembleOptions(**{**CENTRE, **change})
        for name, (x, y) in sets.items():
            for seed in range(seeds):
                key = f"{candidate_name(change)}|{name}|{seed}"
                if key not in cache:
                    ens, fit_s = timed(lambda o=options, x=x, s=seed: Ensemble(o).fit(x, s))
                    parts = ens._parts(x)
                    z = {k: (v - ens.scales[k][0]) / ens.scales[k][1] for k, v in parts.items()}
                    scores = {"vote": (z["reconstruction"] + z["isolation"]) / 2}
                    scores["reconstruction"] = z["reconstruction"]
                    cache[key] = {
                        vote: {**_metrics(y, s), "fit_seconds": fit_s} for vote, s in scores.items()
                    }
                    save()
                for vote in VOTES:
                    rows.append(
                        {
                            "candidate": f"{candidate_name(change)}|{vote}",
                            "set": name,
                            "seed": seed,
                            **cache[key][vote],
                        }
                    )
    return rows


def _per_set(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """candidate -> set -> mean AUC and AP over seeds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        out.setdefault(r["candidate"], {}).setdefault(r["set"], {"auc": [], "ap": []})
        out[r["candidate"]][r["set"]]["auc"].append(r["auc"])
        out[r["candidate"]][r["set"]]["ap"].append(r["ap"])
    return {
        c: {s: {k: statistics.fmean(v) for k, v in m.items()} for s, m in by_set.items()}
        for c, by_set in out.items()
    }


def left_out_by_seed(rows: list[dict], names: list[str]) -> dict:
    """The leave-one-set-out figure of each seed's fits alone: its spread over seeds."""
    seeds = sorted({r["seed"] for r in rows})
    per_seed = [left_out(_per_set([r for r in rows if r["seed"] == s]), names) for s in seeds]
    aucs, aps = [p["auc"] for p in per_seed], [p["ap"] for p in per_seed]
    return {"auc": aucs, "ap": aps, "auc_std": float(np.std(aucs)), "ap_std": float(np.std(aps))}


def _pick(per_set: dict, sets: list[str]) -> str:
    """The candidate with the best mean of ``(AUC + AP) / 2`` over ``sets`` (ties: first)."""

    def merit(c):
        return statistics.fmean((per_set[c][s]["auc"] + per_set[c][s]["ap"]) / 2 for s in sets)

    return max(per_set, key=merit)


def left_out(per_set: dict, names: list[str], folds: int | None = None, repeats: int = 1):
    """The left-out figures: for each fold of sets, the pick on the others scored on it.

    Args:
      per_set: candidate -> set -> {"auc", "ap"}.
      names: the sets.
      folds: None: leave one set out; else K folds over the sets, shuffled ``repeats``
        times with seeds 0.. (each repeat's mean is one figure).

    Returns:
      ``{"auc", "ap", "auc_repeats", "ap_repeats", "picks": {set: candidate}}`` (picks of
      the first repeat).
    """
    aucs, aps, first_picks = [], [], None
    for rep in range(1 if folds is None else repeats):
        if folds is None:
            groups = [[n] for n in names]
        else:
            order = np.random.RandomState(rep).permutation(len(names))
            groups = [[names[i] for i in order[k::folds]] for k in range(folds)]
        picks = {}
        for held in groups:
            choice = _pick(per_set, [n for n in names if n not in held])
            picks.update({n: choice for n in held})
        aucs.append(statistics.fmean(per_set[picks[n]][n]["auc"] for n in names))
        aps.append(statistics.fmean(per_set[picks[n]][n]["ap"] for n in names))
        first_picks = first_picks or picks
    return {
        "auc": statistics.fmean(aucs),
        "ap": statistics.fmean(aps),
        "auc_repeats": aucs,
        "ap_repeats": aps,
        "picks": first_picks,
    }


# The threshold rules the default detector's fence was chosen among (F1 against the
# labels, leaving one set out): fences on its robust-z score, and the quantile and
# robust rules of ``aejax.estimators.thresholds``.
FENCES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def _rule_f1(scores: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """F1 of each candidate threshold rule on one set's training scores."""
    from sklearn.metrics import f1_score

    from aejax.estimators import thresholds as t

    cuts = {f"fence {f}": f for f in FENCES}
    cuts |= {f"contamination {c}": t.contamination_threshold(scores, c) for c in (0.05, 0.1, 0.15)}
    cuts |= {"mad": t.mad_threshold(scores), "iqr": t.iqr_threshold(scores)}
    return {name: float(f1_score(y, scores > cut)) for name, cut in cuts.items()}


def rule_left_out(rows: list[dict]) -> dict:
    """Leave one set out over the threshold rules: each set's F1 under the rule with the
    best mean F1 on the other sets."""
    names = list(dict.fromkeys(r["set"] for r in rows))
    per = {
        n: {
            rule: statistics.fmean(r["f1"][rule] for r in rows if r["set"] == n)
            for rule in rows[0]["f1"]
        }
        for n in names
    }
    picks = {}
    for n in names:
        others = [o for o in names if o != n]
        picks[n] = max(per[n], key=lambda rule: statistics.fmean(per[o][rule] for o in others))
    return {
        "f1": statistics.fmean(per[n][picks[n]] for n in names),
        "picks": picks,
        "pick_all": max(
            per[names[0]], key=lambda rule: statistics.fmean(per[o][rule] for o in names)
        ),
        "in_sample": {
            rule: statistics.fmean(per[n][rule] for n in names) for rule in per[names[0]]
        },
    }


def threshold_summary(peer_rows: list[dict]) -> dict | None:
    """``rule_left_out`` over the aejax detector's rows, with the F1 of its own labels_."""
    mine = [r for r in peer_rows if r["method"].startswith("aejax") and "f1" in r]
    if not mine:
        return None
    out = rule_left_out(mine)
    out["f1_default"] = statistics.fmean(r["f1_default"] for r in mine)
    return out


def _peer_rows(sets, seeds: int) -> tuple[list[dict], dict, dict]:
    """The public default detector and the peers, each warmed up once, in one process."""
    from sklearn.metrics import f1_score

    methods = methods_for("tabular", "all")
    skipped = {m.name: unavailable(m) for m in methods if unavailable(m)}
    methods = [m for m in methods if m.name not in skipped]
    warm = np.random.default_rng(0).normal(size=(64, 8))
    warmup = {m.name: timed(lambda m=m: m.score(m.fit(warm, 0), warm))[1] for m in methods}
    rows = []
    for name, (x, y) in sets.items():
        for method in methods:
            for seed in range(seeds if method.stochastic else 1):
                fitted, fit_s = timed(lambda m=method, x=x, s=seed: m.fit(x, s))
                scores = method.score(fitted, x)
                row = {"method": method.name, "set": name, "seed": seed, "fit_seconds": fit_s}
                if method.name.startswith("aejax"):  # the aejax detector: its threshold
                    row["f1"] = _rule_f1(fitted.decision_scores_, y)
                    row["f1_default"] = float(f1_score(y, fitted.labels_))
                rows.append(row | _metrics(y, scores))
    return rows, skipped, warmup


def _peer_summary(rows: list[dict]) -> dict[str, dict]:
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        names = list(dict.fromkeys(r["set"] for r in mine))
        seeds = sorted({r["seed"] for r in mine})
        per_seed = [
            (
                statistics.fmean(r["auc"] for r in mine if r["seed"] == s),
                statistics.fmean(r["ap"] for r in mine if r["seed"] == s),
            )
            for s in seeds
        ]
        out[method] = {
            "auc": statistics.fmean(
                statistics.fmean(r["auc"] for r in mine if r["set"] == n) for n in names
            ),
            "ap": statistics.fmean(
                statistics.fmean(r["ap"] for r in mine if r["set"] == n) for n in names
            ),
            "auc_seed_std": float(np.std([a for a, _ in per_seed])),
            "ap_seed_std": float(np.std([b for _, b in per_seed])),
            "seeds": len(seeds),
            "fit_seconds_median": statistics.median(r["fit_seconds"] for r in mine),
            # seed 0 only: the first fit of each set's shape, so every JIT compile counts
            "first_fit_seconds_median": statistics.median(
                r["fit_seconds"] for r in mine if r["seed"] == 0
            ),
            "per_set": {
                n: {
                    "auc": statistics.fmean(r["auc"] for r in mine if r["set"] == n),
                    "ap": statistics.fmean(r["ap"] for r in mine if r["set"] == n),
                }
                for n in names
            },
        }
    return out


def run_anomaly_cv(
    out: str | pathlib.Path,
    *,
    data_dir: str | pathlib.Path | None = None,
    seeds: int = 3,
    folds: int = 5,
    repeats: int = 10,
    peers: bool = True,
) -> dict:
    """Runs the grid, the left-out selection and the peers; writes the JSON and Markdown."""
    from aejax.data.builtin import resolve_data_dir
    from benchmarks import anomaly_cv_report

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    root = resolve_data_dir(data_dir)
    raw = load_adbench(root)
    sets = {name: adbench_protocol(x, y) for name, (x, y) in raw.items()}
    cache_path = out / "rows-cache.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    def save():
        cache_path.write_text(json.dumps(cache))

    rows = _candidate_rows(sets, seeds, cache, save)
    per_set = _per_set(rows)
    names = list(sets)
    record: dict = {
        "benchmark": "anomaly-cv",
        "data_dir": str(root),
        "protocol": {"cap": CAP, "seeds": seeds, "folds": folds, "repeats": repeats},
        "data": {
            n: {"n": int(x.shape[0]), "d": int(x.shape[1]), "anomalies": int(y.sum())}
            for n, (x, y) in sets.items()
        },
        "centre": CENTRE,
        "candidates": list(per_set),
        "loo": left_out(per_set, names),
        "loo_by_seed": left_out_by_seed(rows, names),
        "kfold": left_out(per_set, names, folds, repeats),
        "pick_all": _pick(per_set, names),
        "in_sample": {
            c: {
                "auc": statistics.fmean(v["auc"] for v in by.values()),
                "ap": statistics.fmean(v["ap"] for v in by.values()),
            }
            for c, by in per_set.items()
        },
        "per_set": per_set,
        "rows": rows,
    }
    if peers:
        peer_rows, skipped, warmup = _peer_rows(sets, seeds)
        record["peers"] = _peer_summary(peer_rows)
        threshold = threshold_summary(peer_rows)
        if threshold:
            record["threshold"] = threshold
        record["peer_rows"] = peer_rows
        record["skipped"] = skipped
        record["warmup_seconds"] = warmup
    record.update(
        seconds=time.perf_counter() - t0,
        versions=environment.versions(),
        device=environment.device(),
        timestamp=environment.now(),
    )
    (out / "anomaly_cv.json").write_text(json.dumps(record, indent=1))
    (out / "anomaly_cv.md").write_text(anomaly_cv_report.markdown(record))
    return record


def options_of(candidate: str) -> dict:
    """The ``EnsembleOptions`` fields and vote of a candidate name (``"passes=1|vote"``)."""
    change, vote = candidate.split("|")
    fields = dict(CENTRE)
    for c in CHANGES:
        if candidate_name(c) == change:
            fields.update(c)
    return {"fields": fields, "vote": vote}
