"""``aejax train`` and ``aejax evaluate``: the config from the command line, the run
directory, and what an interrupted run leaves behind."""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import re
import secrets
import sys

from aejax.cli.parser import FLAGS
from aejax.cli.tables import format_table
from aejax.config import Config
from aejax.errors import ConfigError


def parse_data_options(assignments: list[str], model: str | None = None) -> dict:
    """``--set`` pairs as a dict, values coerced as the config of ``model`` (default: the
    default model) does; the library refuses keys that are not data options
    (``aejax.run.with_data_options``)."""
    keys = [a.partition("=")[0].strip().replace("-", "_") for a in assignments]
    config = (Config(model=model) if model else Config()).with_overrides(assignments)
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
    flags = {k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None}
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
    """``runs/<model>-<data>-<timestamp>-<4 hex digits>``: ``runs/ae-digits-20261206-204501-3f9a``.

    The random suffix keeps runs started in the same second (a sweep's ``&``) apart.
    """
    data = re.sub(r"[^A-Za-z0-9_.-]+", "_", pathlib.Path(config.data).name.replace(":", "_"))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    while True:
        path = pathlib.Path("runs") / f"{config.model}-{data}-{stamp}-{secrets.token_hex(2)}"
        if not path.exists():  # 65536 suffixes a second; the lock refuses the rest
            return path


def train(args) -> int:
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


def evaluate(args) -> int:
    from aejax.evaluate import evaluate_workdir

    out = evaluate_workdir(
        args.workdir,
        args.data,
        iw=args.iw,
        iw_examples=args.iw_examples,
        data_options=parse_data_options(args.overrides),
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


def after_interrupt(args: argparse.Namespace, e: BaseException) -> str:
    """What an interrupted command leaves behind, in words that are true."""
    if args.command == "sweep":
        return (
            "the runs in training were stopped, each saving its step if it had begun; the same "
            f"command (or aejax sweep {args.directory}) resumes the sweep"
        )
    workdir = getattr(e, "workdir", None)
    if args.command != "train" or workdir is None:
        return "nothing was changed"
    from aejax.train.resume import committed_checkpoint, describe

    meta = committed_checkpoint(workdir)
    if meta is None:
        return (
            f"no checkpoint had been written yet in {workdir} (the first comes "
            "checkpoint_seconds into training, or at its end): the same command starts over"
        )
    return f"the checkpoint of {describe(meta)} is kept in {workdir}: the same command resumes it"
