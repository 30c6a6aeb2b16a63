"""The command handlers, one module per group of related commands.

A handler takes the parsed ``argparse.Namespace``, prints its result and returns the exit
status; it imports the library when it runs, never at module level.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

# command -> the module of aejax.cli.commands that holds its handler (of the same name).
MODULES = {
    "train": "train",
    "evaluate": "train",
    "encode": "runs",
    "embed": "runs",
    "sample": "runs",
    "interpolate": "runs",
    "restore": "runs",
    "probe": "runs",
    "recommend": "runs",
    "detect": "detect",
    "sweep": "experiments",
    "compare": "experiments",
    "models": "info",
    "datasets": "info",
    "fetch": "info",
    "config": "info",
}


def handler_for(command: str) -> Callable[..., int]:
    """The handler of ``command``, its module imported now."""
    module = importlib.import_module(f"aejax.cli.commands.{MODULES[command]}")
    return getattr(module, command)
