"""The options of each ``aejax`` command, one module per group of related commands (as in
``aejax.cli.commands``), and the options several groups share.

Each module holds ``HELP`` (a command's ``help``, ``description`` and ``epilog``) and one
function per command that adds its options to its subparser. Nothing here imports jax:
the functions that read the config's field descriptions import them when they run.
"""

from __future__ import annotations

import argparse

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


def force_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force",
        action="store_true",
        help="replace existing files at --out, or write into a run's records (summary.json, "
        "metrics.jsonl, ...); never over a run's config.json or into its checkpoints/",
    )


def seed_arg(text: str) -> int:
    """A seed for ``jax.random.key`` and numpy: an integer in ``[0, MAX_SEED]``."""
    from aejax.config import MAX_SEED

    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer") from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{seed}: a seed is an integer in [0, {MAX_SEED}]")
    return seed


def data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"where and how to read the data, as in train: {', '.join(DATA_OPTIONS)}",
    )


def _metavar(name: str, typ: type) -> str:
    return {"model": "NAME", "data": "SPEC"}.get(name, typ.__name__.upper())


def config_flags(p: argparse.ArgumentParser, *, grid: bool = False) -> None:
    """``--model``, ``--data``, ``--latent-dim``, ... (``FLAGS``), ``--config`` and ``--set``:
    the options of ``train`` that make its config.

    Args:
      p: the command's parser.
      grid: ``aejax sweep``'s flags: each takes a comma-separated list of values (a grid
        axis) and is read as text, like ``--set``.
    """
    from aejax.config import describe_fields, format_value

    fields = {f["name"]: f for f in describe_fields()}
    for name, typ in FLAGS.items():
        f = fields[name]
        text = f"{f['help']}: {f['allowed']}; default {format_value(f['default'])}"
        if grid and name != "seed":
            text += "; V1,V2,... sweeps it"
        elif grid:
            text = "the first seed (default 0): --seeds N runs seeds S, S+1, ..., S+N-1"
        p.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=str if grid and name != "seed" else typ,
            default=None,
            metavar=_metavar(name, typ) + ("[,...]" if grid and name != "seed" else ""),
            help=text.replace("%", "%%"),
        )
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="a JSON object of config fields (`aejax config --json` describes them)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any other config field, e.g. --set hidden=1000,500,250 (see `aejax config`)"
        if not grid
        else "set a config field (KEY=VALUE) or sweep it (KEY=V1,V2,...; a list field's "
        "values apart with /: hidden=64,32/128,64)",
    )
