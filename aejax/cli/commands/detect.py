"""``aejax detect``: anomaly scores of a table's rows (``aejax.apps.detect``) or of a time
series' points (``aejax.apps.series``)."""

from __future__ import annotations

from aejax.cli.commands.train import parse_data_options
from aejax.errors import ConfigError


def _series_requested(args) -> bool:
    """Whether ``detect`` takes the series path (see its "time series" options)."""
    from aejax.apps.series import is_series_csv
    from aejax.models import MODELS

    spec = MODELS.get(args.model)
    if spec is not None and "sequence" in spec.kinds:
        return True
    options = (args.train_fraction, args.window, args.stride, args.labels, args.score, args.smooth)
    options += (args.post, args.epsilon, args.refractory, args.timestamps)
    if any(o is not None for o in options):
        return True
    from aejax.apps.detect import READ_OPTIONS

    keys = {a.partition("=")[0].strip().replace("-", "_") for a in args.overrides}
    table = args.label_column is not None or bool(keys & set(READ_OPTIONS))
    return not table and is_series_csv(args.data)


def _detect_series(args) -> int:
    from aejax.apps.series import detect_series
    from aejax.outputs import dumps_strict

    overrides = _parse_detector_options(args.overrides, args.model)
    contamination = _number_or_name(args.contamination)
    if contamination == "auto":
        contamination = None
    if contamination is not None and not isinstance(contamination, float):
        raise ConfigError(f"--contamination {contamination}: expected a fraction in (0, 0.5]")
    if args.threshold not in (None, "validation", "contamination"):
        raise ConfigError(f"--threshold {args.threshold}: series take validation or contamination")
    if args.threshold == "contamination" and not isinstance(contamination, float):
        raise ConfigError("--threshold contamination needs --contamination RATE")
    if args.threshold == "validation":
        contamination = None
    # Unset options stay None (or unset): detect_series resolves them, from the model's
    # defaults chosen on NAB by leaving one series out (aejax.apps.series.defaults).
    given = {
        "train_fraction": args.train_fraction,
        "refractory": args.refractory,
        "percentile": overrides.pop("percentile", None),
        "timestamps": args.timestamps,
    }
    out = detect_series(
        args.data,
        args.out,
        model=args.model,
        window=args.window,
        stride=args.stride,
        score=args.score,
        smooth=args.smooth,
        post=args.post,
        epsilon=args.epsilon,
        contamination=contamination,
        labels=args.labels,
        overrides=overrides,
        seed=args.seed,
        progress=not args.no_progress,
        force=args.force,
        **{k: v for k, v in given.items() if v is not None},
    )
    if args.json:
        print(dumps_strict(out), end="")
        return 0
    print(
        f"{out['points']} points of {out['data']}: fitted {out['model']} on the first "
        f"{out['fit_points']} (until {out['fit_until']}); {out['flagged']} later points flagged "
        f"({out['threshold_rule']} threshold {out['threshold']:.4g}, {out['score']} score)"
    )
    if "windows" in out:
        auc = "n/a" if out["roc_auc"] is None else f"{out['roc_auc']:.4f}"
        inside = out["alarms_in_windows"]
        vus = "" if out["vus_pr"] is None else f"  VUS-PR {out['vus_pr']:.4f}"
        print(
            f"  point ROC-AUC {auc}{vus}  windows hit {out['windows_hit']}  alarms {out['alarms']} "
            f"({'n/a' if inside is None else f'{inside:.0%}'} inside windows, "
            f"{out['false_alarms_per_day']:.3f} false per day)"
        )
    print(f"wrote {out['out']}/scores.csv, scores.png, detect.json")
    return 0


def _number_or_name(value: str | None) -> float | str | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def detect(args) -> int:
    from aejax.apps.detect import READ_OPTIONS, detect_table
    from aejax.estimators import AnomalyDetector
    from aejax.outputs import dumps_strict

    if _series_requested(args):
        return _detect_series(args)
    overrides = _parse_detector_options(args.overrides, args.model)
    read = {k: overrides.pop(k) for k in READ_OPTIONS if k in overrides}
    if args.label_column is not None:
        read["label_column"] = args.label_column
    detector = AnomalyDetector(
        model=None if args.model == "ensemble" else args.model,  # the table default's name
        contamination=_number_or_name(args.contamination),
        threshold=_number_or_name(args.threshold),
        random_state=args.seed,
        verbose=not args.no_progress,
        **overrides,
    )
    out = detect_table(args.data, args.out, detector=detector, read_options=read, force=args.force)
    if args.json:
        print(dumps_strict(out), end="")
        return 0
    print(
        f"{out['rows']} rows x {out['features']} features of {out['data']}: {out['outliers']} "
        f"flagged ({out['threshold_rule']} threshold {out['threshold']:.4g} on the "
        f"{out['score']} score of {out['model']}), fit {out['fit_seconds']:.2f} s"
    )
    if "roc_auc" in out:
        print(
            f"  ROC-AUC {out['roc_auc']:.4f}  AP {out['average_precision']:.4f}  "
            f"precision@n {out['precision_at_n']:.4f}"
        )
    print(f"wrote {out['out']}/scores.csv, scores.png, detect.json")
    return 0


def _parse_detector_options(assignments: list[str], model: str | None = None) -> dict:
    """``--set`` pairs for ``detect``: detector keywords (``score_type``, ``percentile``)
    as given, Config fields coerced as the config of ``model`` does."""
    own = {"score_type": str, "percentile": float, "validation_fraction": float}
    if model in (None, "ensemble"):  # the ensemble's keywords (AnomalyDetector, model=None)
        own.update(members=int, hidden=int, activation=str, feature_fraction=float, trees=int)
        model = None
    options, fields = {}, []
    for a in assignments:
        key, _, value = a.partition("=")
        key = key.strip().replace("-", "_")
        if key in own:
            options[key] = own[key](value.strip())
        else:
            fields.append(a)
    options.update(parse_data_options(fields, model))
    return options
