"""Command line: ``aejax train | evaluate | encode | embed | sample | interpolate | restore |
probe | config | models | datasets``."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import pathlib
import re
import secrets
import signal
import sys
import warnings

from aejax.config import Config
from aejax.errors import AejaxError, ConfigError, Terminated

# Command-line flags that map straight onto config fields.
_FLAGS = {
    "model": str,
    "data": str,
    "latent_dim": int,
    "epochs": int,
    "batch_size": int,
    "lr": float,
    "seed": int,
    "devices": int,
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aejax", description="Autoencoders in JAX.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train",
        help="train a model and compare it with PCA on held-out data",
        description="Train a model and compare it with PCA on held-out data.",
        epilog="Every other config field is set with --set KEY=VALUE (a list as --set "
        "hidden=1000,500,250, none as --set warmup_steps=none): run `aejax config` for "
        "each field's type, default, allowed values and meaning, or `aejax config --model "
        "NAME` for only the fields model NAME reads.",
    )
    from aejax.config import describe_fields, format_value

    fields = {f["name"]: f for f in describe_fields()}
    for name, typ in _FLAGS.items():
        f = fields[name]
        t.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=typ,
            default=None,
            metavar={"model": "NAME", "data": "SPEC"}.get(name, typ.__name__.upper()),
            help=f"{f['help']}: {f['allowed']}; default {format_value(f['default'])}".replace(
                "%", "%%"
            ),
        )
    t.add_argument(
        "--workdir",
        default=None,
        help="run directory (default runs/<model>-<data>-<timestamp>-<suffix>); an existing one "
        "is resumed",
    )
    t.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="a JSON object of config fields (`aejax config --json` describes them)",
    )
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any other config field, e.g. --set hidden=1000,500,250 (see `aejax config`)",
    )
    t.add_argument(
        "--fresh",
        action="store_true",
        help="discard a run already in --workdir instead of resuming it",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true", help="print the summary as JSON")

    cfg = sub.add_parser(
        "config",
        help="list the config fields: type, default, allowed values and meaning",
        description="List the config fields that `aejax train --set KEY=VALUE` sets.",
    )
    cfg.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help="only the fields model NAME reads, and those every run reads",
    )
    out = cfg.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="as JSON, one object per field")
    out.add_argument(
        "--markdown",
        action="store_true",
        help="as Markdown: aejax config --markdown > docs/configuration.md",
    )

    e = sub.add_parser("evaluate", help="evaluate a trained run directory on its test split")
    e.add_argument("workdir")
    e.add_argument("--data", default=None, help="evaluate on another dataset spec")
    _data_options(e)
    e.add_argument("--json", action="store_true")
    e.add_argument(
        "--iw",
        type=int,
        default=0,
        metavar="K",
        help="also report the test ELBO and the importance-weighted IW-K NLL in nats "
        "(vae, conv_vae; Burda et al. 2016), e.g. --iw 5000",
    )
    e.add_argument(
        "--iw-examples",
        type=int,
        default=None,
        metavar="N",
        help="bound only the first N test examples (default: all)",
    )

    g = sub.add_parser(
        "sample", help="write samples of a trained run (a PNG grid; a CSV for tabular runs)"
    )
    g.add_argument("workdir")
    g.add_argument("--n", type=int, default=64, help="how many samples (default 64)")
    g.add_argument("--seed", type=_seed_arg, default=0, help="the sampling seed (default 0)")
    g.add_argument(
        "--out",
        default=None,
        help="file, never an existing one without --force (default: WORKDIR/samples.png or "
        ".csv, replaced by each run)",
    )
    _force_option(g)

    i = sub.add_parser(
        "interpolate",
        help="write interpolations between test examples of a trained run (PNG; CSV if tabular)",
    )
    i.add_argument("workdir")
    i.add_argument("--steps", type=int, default=10, help="points per path (default 10)")
    i.add_argument("--method", choices=("linear", "slerp"), default="linear")
    i.add_argument("--pairs", type=int, default=4, help="pairs of test examples (default 4)")
    i.add_argument(
        "--out",
        default=None,
        help="file, never an existing one without --force (default: "
        "WORKDIR/interpolations.png or .csv, replaced by each run)",
    )
    _force_option(i)

    c = sub.add_parser(
        "encode", help="write the codes of a trained run's data (.npy, .npz or .csv)"
    )
    c.add_argument("workdir")
    c.add_argument(
        "--out",
        required=True,
        help="codes.npy ([N, K] float32), codes.npz or codes.csv; never an existing file "
        "without --force",
    )
    _force_option(c)
    c.add_argument("--data", default=None, help="encode another dataset spec")
    c.add_argument(
        "--split",
        choices=("train", "val", "test", "all"),
        default="test",
        help="which split (default test; all = train, val, test in that order)",
    )
    _data_options(c)
    _embed_parser(sub)
    _detect_parser(sub)

    r = sub.add_parser(
        "restore",
        help="denoise, inpaint or super-resolve a run's test images; PSNR/SSIM and PNG panels",
        description="Corrupt a trained image run's test split with the task's fixed protocol "
        "(denoise: gaussian:0.5; inpaint: a centre hole of half the side, and 50%% of the "
        "pixels at random; superres: 2x2 mean-pooling), restore it with the run and print "
        "the mean PSNR (dB) and SSIM of the corrupted and of the restored images.",
    )
    r.add_argument("workdir")
    r.add_argument("--task", required=True, choices=("denoise", "inpaint", "superres"))
    r.add_argument("--n", type=int, default=None, help="only the first N test images")
    r.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="inpaint: reconstructions, the known pixels kept each time (default: 10 for "
        "the centre hole, 1 for the random pixels)",
    )
    r.add_argument(
        "--out",
        default=None,
        help="folder for the PNG panels; existing panels in it only with --force (default: "
        "WORKDIR, replaced by each run)",
    )
    _force_option(r)
    r.add_argument("--json", action="store_true", help="print the result as JSON")

    pr = sub.add_parser(
        "probe",
        help="linear probe: logistic-regression accuracy on a run's codes, PCA codes and raw input",
        description="Fit scikit-learn's LogisticRegression (defaults, max_iter 2000) on a "
        "run's codes of the training and validation splits, on PCA codes of the same size and "
        "on the raw features, and print each one's accuracy on the test split (labels "
        "required).",
    )
    pr.add_argument("workdir")
    pr.add_argument("--max-iter", type=int, default=2000, help="lbfgs iterations (default 2000)")
    pr.add_argument(
        "--standardize",
        action="store_true",
        help="scale each feature on the training split first (default: scikit-learn's "
        "defaults, no scaling)",
    )
    pr.add_argument(
        "--fit-on",
        choices=("train+val", "train"),
        default="train+val",
        help="the examples the probe (and PCA) is fitted on (default train+val)",
    )
    pr.add_argument("--json", action="store_true", help="print the result as JSON")

    rc = sub.add_parser(
        "recommend",
        help="an autorec run's top-k unseen items for a user, with their predicted ratings",
        description="Predict a user's ratings of every item with a trained autorec run on "
        "ratings:PATH data and print the k best the user has not rated. A user without "
        "training ratings gets the item-bias baseline's ranking (aejax.recommend).",
    )
    rc.add_argument("workdir")
    rc.add_argument("--user", required=True, help="the user's id as in the ratings file")
    rc.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    _data_options(rc)
    rc.add_argument("--json", action="store_true", help="print the result as JSON")

    sub.add_parser("models", help="list the registered models")
    sub.add_parser("datasets", help="list the dataset specs")
    return p


def _force_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force",
        action="store_true",
        help="replace existing files at --out, or write into a run's records (summary.json, "
        "metrics.jsonl, ...); never over a run's config.json or into its checkpoints/",
    )


def _seed_arg(text: str) -> int:
    """A seed for ``jax.random.key`` and numpy: an integer in ``[0, MAX_SEED]``."""
    from aejax.config import MAX_SEED

    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer") from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{seed}: a seed is an integer in [0, {MAX_SEED}]")
    return seed


def _data_options(p: argparse.ArgumentParser) -> None:
    from aejax.evaluate import DATA_OPTIONS

    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"where and how to read the data, as in train: {', '.join(DATA_OPTIONS)}",
    )


def _parse_data_options(assignments: list[str]) -> dict:
    """``--set`` pairs as a dict, values coerced as the config does; the library refuses
    keys that are not data options (``aejax.evaluate.with_data_options``)."""
    keys = [a.partition("=")[0].strip().replace("-", "_") for a in assignments]
    config = Config().with_overrides(assignments)
    return {k: getattr(config, k) for k in keys}


def build_config(args: argparse.Namespace) -> Config:
    """Config from defaults < --config file < flags < --set."""
    config = Config()
    if args.config:
        try:
            fields = json.loads(pathlib.Path(args.config).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"--config {args.config}: cannot read it as JSON: {e}") from e
        if not isinstance(fields, dict):
            raise ConfigError(f"--config {args.config}: expected a JSON object of config fields")
        config = config.replace(**fields)
    flags = {k: getattr(args, k) for k in _FLAGS if getattr(args, k) is not None}
    if args.no_progress:
        flags["progress"] = False
    config = config.replace(**flags).with_overrides(args.overrides)
    # A key set by name that the chosen model does not read is refused, even at its
    # default value: `--model ae --set beta=4` would otherwise be silently ignored.
    from aejax.models import check_model_keys

    named = tuple(o.partition("=")[0].strip().replace("-", "_") for o in args.overrides)
    check_model_keys(config, explicit=named)
    return config


def _ratings_table(summary: dict) -> str:
    """An autorec run's test RMSE, recall@10 and NDCG@10 beside the bias baseline."""
    rows = [f"{'':<14}{'test RMSE':>14}{'recall@10':>14}{'NDCG@10':>14}"]
    for label, prefix in ((summary["model"], "test_"), ("user+item bias", "bias_test_")):
        rows.append(
            f"{label:<14}{summary[prefix + 'rmse']:>14.4f}"
            f"{summary[prefix + 'recall@10']:>14.4f}{summary[prefix + 'ndcg@10']:>14.4f}"
        )
    rows.append(f"{'global mean':<14}{summary['global_mean_test_rmse']:>14.4f}")
    rows.append(
        f"{summary['data']}: {summary['n_train']} {summary['variant']} rows, "
        f"{summary['n_test_ratings']} test ratings, hidden {summary['latent_dim']}, "
        f"{summary['epochs_run']} epochs, compile {summary['compile_seconds']:.2f}s"
    )
    return "\n".join(rows)


def default_workdir(config: Config) -> pathlib.Path:
    """``runs/<model>-<data>-<timestamp>-<4 hex digits>``: ``runs/ae-digits-20261206-204501-3f9a``.

    The random suffix keeps runs started in the same second (a sweep's ``&``) apart.
    """
    data = re.sub(r"[^A-Za-z0-9_.-]+", "_", pathlib.Path(config.data).name.replace(":", "_"))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    while True:
        path = pathlib.Path("runs") / f"{config.model}-{data}-{stamp}-{secrets.token_hex(2)}"
        if not path.exists():  # 65536 suffixes a second; the lock refuses the rest
            return path


def format_table(summary: dict) -> str:
    """A small aligned table: autoencoder vs PCA on the test split (ratings: vs baselines)."""
    if summary.get("kind") == "ratings":
        return _ratings_table(summary)
    cols = [("recon_mse", "test MSE"), ("sse_per_example", "SSE/example")]
    if "test_psnr" in summary:
        cols.append(("psnr", "PSNR dB"))
    head = f"{'':<14}" + "".join(f"{title:>14}" for _, title in cols)
    rows = [head]
    labelled = [(summary["model"], "test_"), (f"PCA-{summary['latent_dim']}", "pca_")]
    if "pretrain_test_sse_per_example" in summary:  # stacked_ae, before fine-tuning
        labelled.insert(1, ("  pretrained", "pretrain_test_"))
    for label, prefix in labelled:
        rows.append(f"{label:<14}" + "".join(f"{summary[prefix + k]:>14.5g}" for k, _ in cols))
    if summary.get("pca_note"):
        rows.append(f"note: {summary['pca_note']}")
    if "test_elbo" in summary:
        rows.append(
            f"{summary['model']}: test ELBO {summary['test_elbo']:.4g} nats = -(reconstruction "
            f"{summary['test_reconstruction_nll']:.4g} + KL {summary['test_kl']:.4g}); "
            f"{summary['active_units']} of {summary['latent_units']} latent units active"
        )
    sps = summary.get("train_samples_per_sec")
    rows.append(
        f"{summary['data']}: {summary['n_train']} train / {summary['n_test']} test, "
        f"latent {summary['latent_dim']}, {summary['epochs_run']} epochs, "
        f"{summary['steps']} steps, compile {summary['compile_seconds']:.2f}s"
        + (f", {sps:,.0f} samples/s" if sps else "")
    )
    rows.append(table_footer(summary))
    return "\n".join(rows)


def table_footer(summary: dict) -> str:
    """What the table's columns mean (docs/metrics.md has the long form), then the run's
    warnings (``summary["warnings"]``)."""
    image = summary.get("kind") == "image"
    units = "pixels in [0, 1]" if image else "standardized features"
    lines = [
        f"test MSE: squared error per element ({units}); SSE/example: summed per example",
    ]
    if image:
        lines.append("PSNR dB: the mean over test images of each image's PSNR (peak 1)")
    best = summary.get("best_epoch")
    lines.append(
        f"{summary['model']}: its best validation epoch"
        + (f" ({best})" if best and best > 0 else "")
        + f"; PCA-{summary['latent_dim']}: fitted on the training split"
    )
    if "pretrain_test_sse_per_example" in summary:
        lines.append(
            "pretrained: the layer-wise pretrained network before fine-tuning "
            f"({summary['pretrain_seconds']:.1f} s of pretraining)"
        )
    if "test_elbo" in summary:
        lines.append(
            "ELBO: one posterior sample per example; active unit: posterior-mean variance "
            "over the test set > 0.01"
        )
    lines += [f"warning: {w}" for w in summary.get("warnings", ())]
    return "\n".join(lines)


def _train(args) -> int:
    from aejax.evaluate import train_and_evaluate

    config = build_config(args)
    workdir = pathlib.Path(args.workdir) if args.workdir else default_workdir(config)
    config = config.replace(workdir=str(workdir))
    try:
        summary, _ = train_and_evaluate(config, workdir, fresh=args.fresh)
    except KeyboardInterrupt as e:
        e.workdir = workdir  # for the message: what is left to resume
        raise
    if summary["already_complete"]:
        print(
            f"aejax train: the run in {workdir} is complete ({summary['epochs']} epochs"
            + (", stopped early" if summary["stopped_early"] else "")
            + "): nothing to train; raise --epochs to continue it",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(summary, indent=2))
        # The table's footer carries the warnings; beside JSON they go to stderr (the
        # collapse warning is already there, as a Python warning).
        for w in summary.get("warnings", ()):
            if w != summary.get("warning"):
                print(f"aejax train: warning: {w}", file=sys.stderr)
    else:
        print(format_table(summary))
        print(f"workdir: {workdir}")
    return 0


def _evaluate(args) -> int:
    from aejax.evaluate import evaluate_workdir

    out = evaluate_workdir(
        args.workdir,
        args.data,
        iw=args.iw,
        iw_examples=args.iw_examples,
        data_options=_parse_data_options(args.overrides),
    )
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:<22} {v:.6g}" if isinstance(v, float) else f"{k:<22} {v}")
        if "iw_examples" in out and "test_examples" in out:
            print(
                f"(test_* and pca_* cover all {out['test_examples']} test examples; iw_* the "
                f"first {out['iw_examples']})"
            )
    return 0


def _encode(args) -> int:
    from aejax.export import encode_run

    info = encode_run(
        args.workdir,
        args.out,
        data=args.data,
        split=args.split,
        data_options=_parse_data_options(args.overrides),
        force=args.force,
    )
    print(
        f"wrote {info['out']}: {info['examples']} {info['split']} examples of {info['data']}, "
        f"codes of size {info['code_size']}" + (", with labels" if info["labels"] else "")
    )
    return 0


def _detect_parser(sub) -> None:
    d = sub.add_parser(
        "detect",
        help="anomaly scores for every row of a table: scores.csv, scores.png, detect.json",
        description="Fit an AnomalyDetector on every row of a table (labels, if any, are "
        "not shown to it) and write DIR/scores.csv (row,score,is_anomaly[,label]), "
        "DIR/scores.png (a histogram with the threshold) and DIR/detect.json; with labels "
        "(an .npz's y, or --label-column) it reports ROC-AUC, AP and precision@n.",
        epilog="Any AnomalyDetector keyword or Config field is set with --set KEY=VALUE "
        "(e.g. --set hidden=64 --set score_type=latent); --set drop_columns=... and "
        "--set impute=mean say how to read the file.",
    )
    d.add_argument("--data", required=True, metavar="FILE", help="a .csv, .csv.gz, .npz or .npy")
    d.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for the three files; existing ones in it only with --force",
    )
    _force_option(d)
    d.add_argument("--model", default="ae", metavar="NAME", help="a registry model (default ae)")
    d.add_argument(
        "--contamination",
        default=None,
        help="the expected outlier fraction in (0, 0.5] or auto (default: the MAD rule decides)",
    )
    d.add_argument(
        "--threshold",
        default=None,
        help="mad, iqr, validation, contamination, f1 (needs labels), or a score",
    )
    d.add_argument("--label-column", default=None, metavar="COLUMN", help="name or index")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a detector keyword or Config field; drop_columns/impute for reading",
    )
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.add_argument("--json", action="store_true", help="print the summary as JSON")
    series = d.add_argument_group(
        "time series",
        "A CSV whose header starts with timestamp (timestamp,value[,value...]), --model "
        "seq2seq_ae, or any option below selects the causal series path (aejax.series): the "
        "model is fitted on windows of the first --train-fraction only and every point is "
        "scored; scores.csv is then timestamp,score,is_anomaly. --threshold validation "
        "(default: --set percentile=99.5 of the clean validation points) or contamination.",
    )
    series.add_argument("--train-fraction", type=float, default=None, help="default 0.15")
    series.add_argument(
        "--window",
        type=_window_arg,
        default=None,
        help="points per window (32), or day: one day of points from the timestamps (the "
        "seasonal period of daily data)",
    )
    series.add_argument(
        "--stride",
        type=int,
        default=None,
        help="points between windows (default window // 32, at least 1: each point in ~32)",
    )
    series.add_argument("--labels", default=None, metavar="JSON", help="NAB windows: metrics")
    series.add_argument("--score", default=None, help="mahalanobis (EncDec-AD, default) or error")
    series.add_argument(
        "--smooth", type=int, default=None, metavar="K", help="causal mean of K scores (off)"
    )
    series.add_argument(
        "--post",
        choices=("none", "likelihood"),
        default=None,
        help="likelihood: Numenta's anomaly likelihood of the scores, flagged at 1 - epsilon "
        "instead of the validation percentile (default none)",
    )
    series.add_argument(
        "--epsilon", type=float, default=None, help="--post likelihood tail (1e-5, the paper's)"
    )
    series.add_argument(
        "--refractory",
        type=int,
        default=None,
        metavar="R",
        help="an alarm silences new ones for R points (off)",
    )
    series.add_argument(
        "--timestamps",
        choices=("increasing", "sort", "file"),
        default=None,
        help="increasing (default): refuse timestamps that do not increase strictly, naming "
        "the first such row; sort: sort the rows by timestamp first; file: keep the file's "
        "row order whatever the clock says",
    )


def _window_arg(text: str) -> int | str:
    """``--window``: a number of points or ``day``."""
    if text.strip().lower() == "day":
        return "day"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of points or day") from None


def _series_requested(args) -> bool:
    """Whether ``detect`` takes the series path (see its "time series" options)."""
    from aejax.models import MODELS
    from aejax.series import is_series_csv

    spec = MODELS.get(args.model)
    if spec is not None and "sequence" in spec.kinds:
        return True
    options = (args.train_fraction, args.window, args.stride, args.labels, args.score, args.smooth)
    options += (args.post, args.epsilon, args.refractory, args.timestamps)
    if any(o is not None for o in options):
        return True
    from aejax.detect import READ_OPTIONS

    keys = {a.partition("=")[0].strip().replace("-", "_") for a in args.overrides}
    table = args.label_column is not None or bool(keys & set(READ_OPTIONS))
    return not table and is_series_csv(args.data)


def _detect_series(args) -> int:
    from aejax._json import dumps_strict
    from aejax.series import detect_series

    overrides = _parse_detector_options(args.overrides)
    percentile = overrides.pop("percentile", 99.5)
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
    if args.epsilon is not None and args.post != "likelihood":
        raise ConfigError("--epsilon is the tail of --post likelihood: add --post likelihood")
    out = detect_series(
        args.data,
        args.out,
        model=args.model,
        window=32 if args.window is None else args.window,
        stride=args.stride,
        train_fraction=0.15 if args.train_fraction is None else args.train_fraction,
        score=args.score or "mahalanobis",
        smooth=args.smooth or 0,
        post=args.post or "none",
        epsilon=1e-5 if args.epsilon is None else args.epsilon,
        refractory=args.refractory or 0,
        percentile=percentile,
        contamination=contamination,
        labels=args.labels,
        overrides=overrides,
        seed=args.seed,
        progress=not args.no_progress,
        timestamps=args.timestamps or "increasing",
        force=args.force,
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
        print(
            f"  point ROC-AUC {auc}  windows hit {out['windows_hit']}  alarms {out['alarms']} "
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


def _detect(args) -> int:
    from aejax._json import dumps_strict
    from aejax.detect import READ_OPTIONS, detect_table
    from aejax.estimators import AnomalyDetector

    if _series_requested(args):
        return _detect_series(args)
    overrides = _parse_detector_options(args.overrides)
    read = {k: overrides.pop(k) for k in READ_OPTIONS if k in overrides}
    if args.label_column is not None:
        read["label_column"] = args.label_column
    detector = AnomalyDetector(
        model=args.model,
        contamination=_number_or_name(args.contamination),
        threshold=_number_or_name(args.threshold),
        random_state=args.seed,
        verbose=not args.no_progress,
        **overrides,
    )
    out = detect_table(
        args.data, args.out, detector=detector, read_options=read, force=args.force
    )
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


def _parse_detector_options(assignments: list[str]) -> dict:
    """``--set`` pairs for ``detect``: detector keywords (``score_type``, ``percentile``)
    as given, Config fields coerced as the config does."""
    own = {"score_type": str, "percentile": float, "validation_fraction": float}
    options, fields = {}, []
    for a in assignments:
        key, _, value = a.partition("=")
        key = key.strip().replace("-", "_")
        if key in own:
            options[key] = own[key](value.strip())
        else:
            fields.append(a)
    options.update(_parse_data_options(fields))
    return options


def _embed_parser(sub) -> None:
    from aejax.embed import MAX_POINTS, METHODS

    m = sub.add_parser(
        "embed",
        help="a 2-D view of a run's codes (PCA, t-SNE, UMAP): embedding.csv and embedding.png",
        description="Encode one split of a trained run's data, map the codes to 2-D and "
        "write embedding.csv (index,x,y[,label]) and embedding.png (coloured by label).",
    )
    m.add_argument("workdir")
    m.add_argument(
        "--method",
        default="pca",
        metavar="|".join(METHODS),
        help="pca (default), tsne (scikit-learn), umap (pip install 'aejax[umap]'), or none "
        "(codes of size 2 as they are)",
    )
    m.add_argument("--split", choices=("train", "val", "test", "all"), default="test")
    m.add_argument(
        "--out",
        default=None,
        help="folder for the two files; existing ones in it only with --force (default: "
        "WORKDIR, replaced by each run)",
    )
    _force_option(m)
    m.add_argument(
        "--seed", type=_seed_arg, default=0, help="subsample and method seed (default 0)"
    )
    m.add_argument(
        "--max-points",
        type=int,
        default=MAX_POINTS,
        metavar="N",
        help=f"embed a seeded random N examples at most (default {MAX_POINTS}; 0: all)",
    )
    m.add_argument("--data", default=None, help="embed another dataset spec")
    _data_options(m)
    m.add_argument("--json", action="store_true", help="print the result as JSON")


def _embed(args) -> int:
    from aejax.embed import write_embedding

    out = write_embedding(
        args.workdir,
        args.out,
        args.method,
        split=args.split,
        seed=args.seed,
        max_points=args.max_points,
        data=args.data,
        data_options=_parse_data_options(args.overrides),
        force=args.force,
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"wrote {out['csv']} and {out['png']}: {out['method']} of {out['points']} of "
        f"{out['examples']} {out['split']} codes of {out['data']} (size {out['code_size']})"
        + ("" if out["labels"] else ", no labels")
    )
    return 0


def _sample(args) -> int:
    from aejax.generate import sample_run

    print(f"wrote {sample_run(args.workdir, args.n, args.seed, args.out, force=args.force)}")
    return 0


def _interpolate(args) -> int:
    from aejax.generate import interpolate_run

    out = interpolate_run(
        args.workdir, args.steps, args.method, args.pairs, args.out, force=args.force
    )
    print(f"wrote {out}")
    return 0


def _restore(args) -> int:
    from aejax.restore import restore_run

    out = restore_run(
        args.workdir,
        args.task,
        n=args.n,
        out_dir=args.out,
        iterations=args.iterations,
        force=args.force,
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['task']}: {out['n']} test images of {out['data']}, seed {out['seed']}")
    for name, r in out["protocols"].items():
        for which in ("corrupted", "restored"):
            q = r[which]
            missing = (
                f"  missing-pixel PSNR {q['missing_psnr']:6.2f} dB" if "missing_psnr" in q else ""
            )
            print(
                f"  {name:<12} {which:<9}  PSNR {q['psnr']:6.2f} dB  SSIM {q['ssim']:.3f}{missing}"
            )
        print(f"  {'':<12} panel: {r['panel']}")
    return 0


def _probe(args) -> int:
    from aejax.probe import linear_probe

    out = linear_probe(
        args.workdir, max_iter=args.max_iter, standardize=args.standardize, fit_on=args.fit_on
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    scaled = ", standardized" if out["standardize"] else ""
    print(
        f"linear probe (logistic regression, max_iter {out['max_iter']}{scaled}) on "
        f"{out['data']}: fitted on {out['n_fit']} {out['fit_on']} examples, scored on "
        f"{out['n_test']} test examples"
    )
    rows = (
        (f"{out['model']} codes ({out['code_size']})", "codes"),
        (f"PCA-{out['pca_components']} codes", "pca"),
        (f"raw input ({out['raw_features']})", "raw"),
    )
    for label, key in rows:
        note = "" if out["converged"][key] else f"  (not converged in {out['max_iter']} iterations)"
        print(f"  {label:<24} accuracy {out[key + '_accuracy']:.4f}{note}")
    return 0


def _recommend(args) -> int:
    from aejax.recommend import recommend

    out = recommend(
        args.workdir, args.user, args.k, data_options=_parse_data_options(args.overrides)
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"user {out['user']}: {out['n_rated']} rated item(s); top {len(out['items'])} unseen")
    if out["fallback"]:
        print(f"  note: {out['fallback']}")
    for rank, entry in enumerate(out["items"], 1):
        print(f"  {rank:>3}. item {entry['item']:<12} predicted {entry['predicted']:.3f}")
    return 0


def _models(_) -> int:
    from aejax.models import list_models

    for name, desc in list_models():
        print(f"{name:<16} {desc}")
    return 0


def _datasets(_) -> int:
    from aejax.data import list_datasets

    for spec, desc in list_datasets():
        print(f"{spec:<24} {desc}")
    return 0


def _config(args) -> int:
    from aejax.config import config_keys, describe_fields
    from aejax.models.registry import MODELS, model_keys

    fields = describe_fields()
    owned = model_keys()
    for f in fields:  # which models read it; None: every run, whatever the model
        f["models"] = [n for n, s in MODELS.items() if f["name"] in s.hparams]
        f["models"] = f["models"] if f["name"] in owned else None
    if args.model is not None:
        keep = set(config_keys(args.model))
        fields = [f for f in fields if f["name"] in keep]
    if args.json:
        print(json.dumps({f.pop("name"): f for f in fields}, indent=2))
    elif args.markdown:
        print(_config_markdown(fields, len(MODELS)), end="")
    else:
        print(_config_table(fields, args.model))
    return 0


def _config_table(fields: list[dict], model: str | None) -> str:
    """Aligned columns, grouped as in ``Config``; long cells wrap inside their column."""
    import shutil
    import textwrap

    from aejax.config import GROUPS, format_value

    titles = {name: line for name, line in GROUPS.values()}
    head = ("FIELD", "TYPE", "DEFAULT", "ALLOWED", "MEANING")
    keys = ("name", "type", "default", "allowed", "help")
    cells = [tuple(format_value(f[k]) if k == "default" else f[k] for k in keys) for f in fields]
    fixed = [max(len(c[i]) for c in [head, *cells]) for i in range(3)]
    room = max(shutil.get_terminal_size((120, 24)).columns - sum(fixed) - 10, 60)
    wrap = (room * 2 // 5, room - room * 2 // 5)
    lines = []

    def row(cols):
        allowed, meaning = (
            textwrap.wrap(c, w) or [""] for c, w in zip(cols[3:], wrap, strict=True)
        )
        for i in range(max(len(allowed), len(meaning))):
            first = cols[:3] if i == 0 else ("", "", "")
            left = "".join(f"{c:<{w + 2}}" for c, w in zip(first, fixed, strict=True))
            more, mean = (col[i] if i < len(col) else "" for col in (allowed, meaning))
            lines.append(f"  {left}{more:<{wrap[0] + 2}}{mean}".rstrip())

    row(head)
    group = None
    for f, c in zip(fields, cells, strict=True):
        if f["group"] != group:
            group = f["group"]
            lines += ["", f"{group}: {titles[group]}"]
        row(c)
    which = f"the fields model {model!r} and every run read" if model else "every field"
    lines.append(f"{which}; set one with `aejax train --set NAME=VALUE` (a list: --set hidden=8,4)")
    return "\n".join(lines)


_MD_HEAD = ("| field | type | default | allowed | meaning | read by |", "|---|---|---|---|---|---|")


def _config_markdown(fields: list[dict], n_models: int) -> str:
    """docs/configuration.md: one table per group."""
    from aejax.config import GROUPS, format_value

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("<", "&lt;")

    titles = {name: line for name, line in GROUPS.values()}
    flags = ", ".join(f"`--{k.replace('_', '-')}`" for k in _FLAGS)
    out = [
        "<!-- Generated by `aejax config --markdown > docs/configuration.md` from the field "
        "metadata in aejax/config.py: edit that and regenerate; tests/test_settings.py checks "
        "this file is current. -->",
        "# Configuration",
        "",
        "Every field of `aejax.Config`, the frozen dataclass that defines a run. `aejax train` "
        f"sets some with flags ({flags}), any with `--set NAME=VALUE` (a list as `--set "
        "hidden=512,256`, none as `--set warmup_steps=none`), or reads a JSON object of fields "
        "with `--config FILE`. A model refuses a field it does not read (`--model ae --set "
        "beta=4`); *read by* says which models read each field. `aejax config --model NAME` "
        "lists the fields one model reads; `aejax config --json` gives this table to programs.",
    ]
    group = None
    for f in fields:
        if f["group"] != group:
            group = f["group"]
            title = titles[group][0].upper() + titles[group][1:]
            out += ["", f"## {group}", "", cell(title) + ".", "", *_MD_HEAD]
        if f["models"] is None:
            read_by = "every run"
        else:
            read_by = "every model" if len(f["models"]) == n_models else ", ".join(f["models"])
        out.append(
            f"| `{f['name']}` | {f['type']} | `{format_value(f['default'])}` | "
            f"{cell(f['allowed'])} | {cell(f['help'])} | {read_by} |"
        )
    return "\n".join(out) + "\n"


def _on_sigterm(signum, frame):
    raise Terminated


class _NoTracebacks(logging.Filter):
    """Keeps Orbax's error log lines but drops their tracebacks: aejax reports the cause.

    Also drops asyncio's "exception was never retrieved" records: the same failed write,
    found again when its tasks are garbage-collected.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "asyncio" and "exception was never retrieved" in record.getMessage():
            return False
        record.exc_info, record.exc_text = None, None
        return True


def _quiet_unraisable(default):
    # When a checkpoint read fails, tensorstore completes its other reads after Orbax has
    # closed their event loop; Python then prints "RuntimeError: Event loop is closed"
    # tracebacks that say nothing about the real (already reported) problem.
    def hook(unraisable):
        if isinstance(unraisable.exc_value, RuntimeError) and "Event loop is closed" in str(
            unraisable.exc_value
        ):
            return
        default(unraisable)

    return hook


def _setup_process() -> None:
    """Process-wide settings the command line may make and the library must not."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # Python warnings (e.g. "skipping unreadable checkpoint") as one line each.
    warnings.formatwarning = lambda message, category, *_: f"warning: {message}\n"
    for name in ("absl", "asyncio"):
        logging.getLogger(name).addFilter(_NoTracebacks())
    sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # Lets a pending checkpoint save commit before the process exits.
        signal.signal(signal.SIGTERM, _on_sigterm)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aejax`` console script.

    Without ``argv`` (the console script, ``python -m aejax.cli``) it owns the process: it
    sets process-wide logging and a SIGTERM handler, and an interrupt ends it with status
    130 (Ctrl-C) or 143 (SIGTERM). With ``argv`` (a notebook, a test, a script's loop) it
    changes no process-wide handler, and an interrupt is raised again after its message:
    the caller's Ctrl-C is not swallowed.

    A reader that stops early (``aejax config | head``) closes the pipe: the command then
    ends quietly with status 141 (128 + SIGPIPE, what a shell reports for a tool killed by
    the closed pipe) instead of a ``BrokenPipeError`` traceback, the recipe of Python's
    ``signal`` documentation ("Note on SIGPIPE").
    """
    try:
        try:
            return _main(argv)
        finally:
            if argv is None:  # flush now: a closed pipe surfaces here, not at exit
                sys.stdout.flush()
    except BrokenPipeError:
        if argv is None:
            # Python flushes stdout again at exit: point it at devnull so that flush
            # cannot fail (and print "Exception ignored ... BrokenPipeError") too.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    handler = {
        "train": _train,
        "evaluate": _evaluate,
        "sample": _sample,
        "interpolate": _interpolate,
        "encode": _encode,
        "embed": _embed,
        "detect": _detect,
        "restore": _restore,
        "probe": _probe,
        "recommend": _recommend,
        "models": _models,
        "datasets": _datasets,
        "config": _config,
    }[args.command]
    if argv is None:  # the console script or ``python -m aejax.cli``: we own the process
        _setup_process()
    else:
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        return handler(args)
    except AejaxError as e:
        print(f"aejax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM as Terminated
        what = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        print(f"aejax {args.command}: {what}; {_after_interrupt(args, e)}", file=sys.stderr)
        if argv is not None:
            raise  # the caller owns Ctrl-C: a test suite or a notebook loop stops too
        return 143 if isinstance(e, Terminated) else 130


def _after_interrupt(args: argparse.Namespace, e: BaseException) -> str:
    """What an interrupted command leaves behind, in words that are true."""
    workdir = getattr(e, "workdir", None)
    if args.command != "train" or workdir is None:
        return "nothing was changed"
    from aejax.train.loop import committed_checkpoint, describe

    meta = committed_checkpoint(workdir)
    if meta is None:
        return (
            f"no checkpoint had been written yet in {workdir} (the first comes "
            "checkpoint_seconds into training, or at its end): the same command starts over"
        )
    return (
        f"the checkpoint of {describe(meta)} is kept in {workdir}: the same command resumes it"
    )


if __name__ == "__main__":
    sys.exit(main())
