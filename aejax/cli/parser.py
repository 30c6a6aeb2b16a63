"""The ``aejax`` argument parser: the commands, each with its options from
``aejax.cli.arguments`` (one module per group of related commands).

``build_parser(command)`` adds the options of that command only: ``aejax --help``, a typo
and the commands that need no library (``models``, ``datasets``) build no other command's
options, some of which read the config's field descriptions. Nothing here imports jax.
"""

from __future__ import annotations

import argparse
import importlib

from aejax.cli.arguments import DATA_OPTIONS, FLAGS
from aejax.errors import did_you_mean

# command -> the module of aejax.cli.arguments with its HELP and its options (a function
# of the command's name), in the order `aejax --help` lists them.
COMMAND_GROUPS = {
    "train": "train",
    "config": "info",
    "evaluate": "train",
    "sample": "runs",
    "interpolate": "runs",
    "encode": "runs",
    "embed": "runs",
    "detect": "detect",
    "restore": "runs",
    "probe": "runs",
    "recommend": "runs",
    "sweep": "experiments",
    "compare": "experiments",
    "models": "info",
    "datasets": "info",
    "fetch": "info",
}
COMMANDS = tuple(COMMAND_GROUPS)

__all__ = ["COMMANDS", "DATA_OPTIONS", "FLAGS", "build_parser", "command_of"]


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
    p = _Parser(prog="aejax", description="Autoencoders in JAX.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, group in COMMAND_GROUPS.items():
        module = importlib.import_module(f"aejax.cli.arguments.{group}")
        s = sub.add_parser(name, **module.HELP[name])
        if command == name or (command is None and every):
            getattr(module, name)(s)
    return p
