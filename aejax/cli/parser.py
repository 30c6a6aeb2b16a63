"""The ``aejax`` argument parser: every command's options (all the argparse of the CLI;
``aejax.cli.generate`` holds those of ``sample`` and ``interpolate``).

``build_parser(command)`` adds the options of that command only: ``aejax --help``, a typo
and the commands that need no library (``models``, ``datasets``) build no other command's
options, some of which read the config's field descriptions. Nothing here imports jax.
"""

from __future__ import annotations

import argparse

from aejax.cli import generate
from aejax.errors import did_you_mean

# Command-line flags that map straight onto config fields.
FLAGS = {
    "model": str,
    "data": str,
    "latent_dim": int,
    "epochs": int,
    "batch_size": int,
    "lr": float,
    "seed": int,
    "devices": int,
}

# The data-reading options of the commands that read a run's data again; the library
# (``aejax.run.with_data_options``) refuses any other key. tests/test_cli.py checks
# that this copy equals ``aejax.run.DATA_OPTIONS`` (the parser must not import it).
DATA_OPTIONS = ("data_dir", "download", "label_column", "impute", "drop_columns")

COMMANDS = (
    "train",
    "config",
    "evaluate",
    "sample",
    "interpolate",
    "encode",
    "embed",
    "detect",
    "restore",
    "probe",
    "recommend",
    "models",
    "datasets",
)

_EMBED = dict(
    help="a 2-D view of a run's codes (PCA, t-SNE, UMAP): embedding.csv and embedding.png",
    description="Encode one split of a trained run's data, map the codes to 2-D and "
    "write embedding.csv (index,x,y[,label]) and embedding.png (coloured by label).",
)

_DETECT = dict(
    help="anomaly scores for every row of a table: scores.csv, scores.png, detect.json",
    description="Fit an AnomalyDetector on every row of a table (labels, if any, are "
    "not shown to it) and write DIR/scores.csv (row,score,is_anomaly[,label]), "
    "DIR/scores.png (a histogram with the threshold) and DIR/detect.json; with labels "
    "(an .npz's y, or --label-column) it reports ROC-AUC, AP and precision@n.",
    epilog="Any AnomalyDetector keyword or Config field is set with --set KEY=VALUE "
    "(e.g. --set hidden=64 --set score_type=latent); --set drop_columns=... and "
    "--set impute=mean say how to read the file.",
)


class _Parser(argparse.ArgumentParser):
    """The top-level parser: a mistyped command gets a did-you-mean."""

    def error(self, message: str):
        if message.startswith("argument command: invalid choice:"):
            name = message.split("'")[1] if "'" in message else ""
            message += did_you_mean(name, COMMANDS)
        super().error(message)


def command_of(argv: list[str]) -> str | None:
    """The command named in ``argv`` (its first word that is not an option), if it is one."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def build_parser(command: str | None = None, *, every: bool = True) -> argparse.ArgumentParser:
    """The ``aejax`` parser.

    Args:
      command: add the options of this command only (the others keep their name and help,
        all ``aejax --help`` shows).
      every: with ``command=None``, add every command's options (``False``: none).
    """

    def want(name: str) -> bool:
        return command == name or (command is None and every)

    p = _Parser(prog="aejax", description="Autoencoders in JAX.")
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
    if want("train"):
        from aejax.config import describe_fields, format_value

        fields = {f["name"]: f for f in describe_fields()}
        for name, typ in FLAGS.items():
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
            help="run directory (default runs/<model>-<data>-<timestamp>-<suffix>); an existing "
            "one is resumed",
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
    if want("config"):
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
    if want("evaluate"):
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

    g = sub.add_parser("sample", **generate.SAMPLE)
    if want("sample"):
        generate.sample_arguments(g, seed_type=_seed_arg)
        _force_option(g)
    i = sub.add_parser("interpolate", **generate.INTERPOLATE)
    if want("interpolate"):
        generate.interpolate_arguments(i)
        _force_option(i)

    c = sub.add_parser(
        "encode", help="write the codes of a trained run's data (.npy, .npz or .csv)"
    )
    if want("encode"):
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

    embed = sub.add_parser("embed", **_EMBED)
    if want("embed"):
        _embed_arguments(embed)
    detect = sub.add_parser("detect", **_DETECT)
    if want("detect"):
        _detect_arguments(detect)

    r = sub.add_parser(
        "restore",
        help="denoise, inpaint or super-resolve a run's test images; PSNR/SSIM and PNG panels",
        description="Corrupt a trained image run's test split with the task's fixed protocol "
        "(denoise: gaussian:0.5; inpaint: a centre hole of half the side, and 50%% of the "
        "pixels at random; superres: 2x2 mean-pooling), restore it with the run and print "
        "the mean PSNR (dB) and SSIM of the corrupted and of the restored images.",
    )
    if want("restore"):
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
    if want("probe"):
        pr.add_argument("workdir")
        pr.add_argument(
            "--max-iter", type=int, default=2000, help="lbfgs iterations (default 2000)"
        )
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
        "training ratings gets the item-bias baseline's ranking (aejax.apps.recommend).",
    )
    if want("recommend"):
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
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"where and how to read the data, as in train: {', '.join(DATA_OPTIONS)}",
    )


def _detect_arguments(d: argparse.ArgumentParser) -> None:
    d.add_argument("--data", required=True, metavar="FILE", help="a .csv, .csv.gz, .npz or .npy")
    d.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for the three files; existing ones in it only with --force",
    )
    _force_option(d)
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
        type=_window_arg,
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


def _window_arg(text: str) -> int | str:
    """``--window``: a number of points or ``day``."""
    if text.strip().lower() == "day":
        return "day"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of points or day") from None


def _embed_arguments(m: argparse.ArgumentParser) -> None:
    from aejax.apps.embed import MAX_POINTS, METHODS

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
