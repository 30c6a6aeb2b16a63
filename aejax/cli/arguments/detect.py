"""The options of ``aejax detect``: anomaly scores for a table or a time series."""

from __future__ import annotations

import argparse

from aejax.cli.arguments import force_option

HELP = {
    "detect": dict(
        help="anomaly scores for every row of a table: scores.csv, scores.png, detect.json",
        description="Fit an AnomalyDetector on every row of a table (labels, if any, are "
        "not shown to it) and write DIR/scores.csv (row,score,is_anomaly[,label]), "
        "DIR/scores.png (a histogram with the threshold) and DIR/detect.json; with labels "
        "(an .npz's y, or --label-column) it reports ROC-AUC, AP and precision@n.",
        epilog="Any AnomalyDetector keyword or Config field is set with --set KEY=VALUE "
        "(e.g. --set hidden=64 --set score_type=latent); --set drop_columns=... and "
        "--set impute=mean say how to read the file.",
    ),
}


def detect(d: argparse.ArgumentParser) -> None:
    d.add_argument("--data", required=True, metavar="FILE", help="a .csv, .csv.gz, .npz or .npy")
    d.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for the three files; existing ones in it only with --force",
    )
    force_option(d)
    d.add_argument(
        "--model",
        metavar="NAME",
        help="a registry model or ensemble (the default on a table: small autoencoders and an "
        "isolation forest; on a series, on windows); default on a series ae",
    )
    d.add_argument("--contamination", help="the expected outlier fraction in (0, 0.5] or auto")
    d.add_argument(
        "--threshold",
        default=None,
        help="auto (the ensemble's default fence), mad (one model's), iqr, validation, "
        "contamination, f1 (needs labels), or a score",
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
        "seq2seq_ae, or any option below selects the causal series path (aejax.apps.series): the "
        "model is fitted on windows of the first --train-fraction only and every point is "
        "scored; scores.csv is then timestamp,score,is_anomaly. --threshold validation "
        "(default: --set percentile=99.5 of the clean validation points) or contamination.",
    )
    series.add_argument("--train-fraction", type=float, default=None, help="default 0.15")
    series.add_argument(
        "--window",
        type=window_arg,
        default=None,
        help="points per window, or day (the default for ae and seq2seq_ae): one day of "
        "points from the timestamps (the seasonal period of daily data)",
    )
    series.add_argument(
        "--stride",
        type=int,
        default=None,
        help="points between windows (default window // 32, at least 1: each point in ~32)",
    )
    series.add_argument("--labels", default=None, metavar="JSON", help="NAB windows: metrics")
    series.add_argument(
        "--score",
        default=None,
        help="vote (default: the error's and an IsolationForest's robust z over the validation "
        "points, averaged), error or mahalanobis (EncDec-AD); --model ensemble: vote only",
    )
    series.add_argument(
        "--smooth",
        type=int,
        default=None,
        metavar="K",
        help="causal mean of K scores (default 0: off)",
    )
    series.add_argument(
        "--post",
        choices=("none", "likelihood"),
        default=None,
        help="likelihood: Numenta's anomaly likelihood of the scores, flagged at 1 - epsilon "
        "instead of the validation percentile (the default)",
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


def window_arg(text: str) -> int | str:
    """``--window``: a number of points or ``day``."""
    if text.strip().lower() == "day":
        return "day"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of points or day") from None
