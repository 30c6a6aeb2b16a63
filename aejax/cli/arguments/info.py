"""The options of ``aejax config``, ``aejax models`` and ``aejax datasets``."""

from __future__ import annotations

import argparse

HELP = {
    "config": dict(
        help="list the config fields: type, default, allowed values and meaning",
        description="List the config fields that `aejax train --set KEY=VALUE` sets.",
    ),
    "models": dict(help="list the registered models"),
    "datasets": dict(help="list the dataset specs"),
}


def config(cfg: argparse.ArgumentParser) -> None:
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


def models(_: argparse.ArgumentParser) -> None:
    """No options."""


def datasets(_: argparse.ArgumentParser) -> None:
    """No options."""
