"""The options of ``aejax config``, ``aejax models``, ``aejax datasets`` and ``aejax fetch``."""

from __future__ import annotations

import argparse

HELP = {
    "config": dict(
        help="list the config fields: type, default, allowed values and meaning",
        description="List the config fields that `aejax train --set KEY=VALUE` sets.",
    ),
    "models": dict(help="list the registered models"),
    "datasets": dict(help="list the dataset specs"),
    "fetch": dict(
        help="download mnist-lite, mnist or fashion-mnist into the data dir (SHA-256 checked)",
        description="Download a public data set that aejax names, check every file's SHA-256 "
        "and put it where --data NAME finds it: $AEJAX_DATA_DIR, ../shared/data beside the "
        "checkout if it exists, else ~/.cache/aejax/data. A killed download resumes.",
    ),
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


def fetch(f: argparse.ArgumentParser) -> None:
    f.add_argument("name", metavar="NAME", help="mnist-lite, mnist or fashion-mnist")
    f.add_argument(
        "--data-dir", default=None, metavar="DIR", help="where to put it (default: see above)"
    )
    f.add_argument(
        "--mirror",
        action="append",
        default=None,
        metavar="URL",
        help="a base URL to download from instead of the public mirrors (repeatable)",
    )
