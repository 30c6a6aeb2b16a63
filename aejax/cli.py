"""Command line: ``aejax train | evaluate | sample | interpolate | models | datasets``."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import pathlib
import re
import signal
import sys
import warnings

from aejax.config import Config
from aejax.errors import AejaxError, ConfigError

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

    t = sub.add_parser("train", help="train a model and compare it with PCA on held-out data")
    for name, typ in _FLAGS.items():
        t.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=typ,
            default=None,
            help=f"config field {name} (default: {getattr(Config(), name)!r})",
        )
    t.add_argument(
        "--workdir",
        default=None,
        help="run directory (default runs/<model>-<data>-<timestamp>); an existing one is resumed",
    )
    t.add_argument("--config", default=None, help="a JSON file of config fields")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any other config field, e.g. --set hidden=1000,500,250",
    )
    t.add_argument(
        "--fresh",
        action="store_true",
        help="discard a run already in --workdir instead of resuming it",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true", help="print the summary as JSON")

    e = sub.add_parser("evaluate", help="evaluate a trained run directory on its test split")
    e.add_argument("workdir")
    e.add_argument("--data", default=None, help="evaluate on another dataset spec")
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
    g.add_argument("--seed", type=int, default=0, help="the sampling seed (default 0)")
    g.add_argument("--out", default=None, help="file (default: WORKDIR/samples.png or .csv)")

    i = sub.add_parser(
        "interpolate",
        help="write interpolations between test examples of a trained run (PNG; CSV if tabular)",
    )
    i.add_argument("workdir")
    i.add_argument("--steps", type=int, default=10, help="points per path (default 10)")
    i.add_argument("--method", choices=("linear", "slerp"), default="linear")
    i.add_argument("--pairs", type=int, default=4, help="pairs of test examples (default 4)")
    i.add_argument("--out", default=None, help="file (default: WORKDIR/interpolations.png or .csv)")

    sub.add_parser("models", help="list the registered models")
    sub.add_parser("datasets", help="list the dataset specs")
    return p


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


def default_workdir(config: Config) -> pathlib.Path:
    data = re.sub(r"[^A-Za-z0-9_.-]+", "_", pathlib.Path(config.data).name.replace(":", "_"))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return pathlib.Path("runs") / f"{config.model}-{data}-{stamp}"


def format_table(summary: dict) -> str:
    """A small aligned table: autoencoder vs PCA on the test split."""
    cols = [("recon_mse", "test MSE"), ("sse_per_example", "SSE/example")]
    if "test_psnr" in summary:
        cols.append(("psnr", "PSNR dB"))
    head = f"{'':<14}" + "".join(f"{title:>14}" for _, title in cols)
    rows = [head]
    for label, prefix in ((summary["model"], "test_"), (f"PCA-{summary['latent_dim']}", "pca_")):
        rows.append(f"{label:<14}" + "".join(f"{summary[prefix + k]:>14.5g}" for k, _ in cols))
    sps = summary.get("train_samples_per_sec")
    rows.append(
        f"{summary['data']}: {summary['n_train']} train / {summary['n_test']} test, "
        f"latent {summary['latent_dim']}, {summary['epochs_run']} epochs, "
        f"{summary['steps']} steps, compile {summary['compile_seconds']:.2f}s"
        + (f", {sps:,.0f} samples/s" if sps else "")
    )
    return "\n".join(rows)


def _train(args) -> int:
    from aejax.evaluate import train_and_evaluate

    config = build_config(args)
    workdir = pathlib.Path(args.workdir) if args.workdir else default_workdir(config)
    config = config.replace(workdir=str(workdir))
    summary, _ = train_and_evaluate(config, workdir, fresh=args.fresh)
    if summary["already_complete"]:
        print(
            f"aejax train: the run in {workdir} is complete ({summary['epochs']} epochs"
            + (", stopped early" if summary["stopped_early"] else "")
            + "): nothing to train; raise --epochs to continue it",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_table(summary))
        print(f"workdir: {workdir}")
    return 0


def _evaluate(args) -> int:
    from aejax.evaluate import evaluate_workdir

    out = evaluate_workdir(args.workdir, args.data, iw=args.iw, iw_examples=args.iw_examples)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:<22} {v:.6g}" if isinstance(v, float) else f"{k:<22} {v}")
    return 0


def _sample(args) -> int:
    from aejax.generate import sample_run

    print(f"wrote {sample_run(args.workdir, args.n, args.seed, args.out)}")
    return 0


def _interpolate(args) -> int:
    from aejax.generate import interpolate_run

    out = interpolate_run(args.workdir, args.steps, args.method, args.pairs, args.out)
    print(f"wrote {out}")
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


class Terminated(KeyboardInterrupt):
    """SIGTERM (a preempted VM, ``kill``, a batch scheduler), handled like Ctrl-C."""


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
    """Entry point of the ``aejax`` console script."""
    args = _parser().parse_args(argv)
    handler = {
        "train": _train,
        "evaluate": _evaluate,
        "sample": _sample,
        "interpolate": _interpolate,
        "models": _models,
        "datasets": _datasets,
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
    except Terminated:
        print(
            f"aejax {args.command}: terminated (SIGTERM); the last committed checkpoint is "
            "kept: run the same command again to resume",
            file=sys.stderr,
        )
        return 143
    except KeyboardInterrupt:
        print(
            f"aejax {args.command}: interrupted; the last committed checkpoint is kept: run "
            "the same command again to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
