"""Exceptions that name the problem, raised before bad input reaches XLA."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AejaxError(Exception):
    """Base class of every error aejax raises on purpose."""


class DataError(AejaxError, ValueError):
    """Bad or missing input data: unknown spec, missing file, NaN/Inf, empty, ragged."""


class ConfigError(AejaxError, ValueError):
    """An unknown model, an impossible shape or an invalid configuration value."""


class CheckpointError(AejaxError):
    """A checkpoint that cannot be used: another config, missing keys, unwritable dir."""


class TrainingDivergedError(AejaxError, FloatingPointError):
    """The loss or the parameters became NaN/Inf during training."""


class DeviceHangError(AejaxError, RuntimeError):
    """A dispatched program that stopped making progress: its result never came and the
    process stopped computing (a lost wakeup in XLA's CPU runtime)."""


class RenamedError(AejaxError, ImportError):
    """A public name that was renamed: the message names the new one.

    An ``ImportError`` (not an ``AttributeError``) so that ``from aejax import OldName``
    shows the message instead of Python's "cannot import name".
    """


def renamed(module: str, old: str, new: str, why: str = "") -> RenamedError:
    """The error for ``module.old``, renamed to ``module.new`` (``why``: a clause after it)."""
    return RenamedError(f"{module}.{old} was renamed {module}.{new}{why}", name=old)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a preempted VM, ``kill``, a batch scheduler), handled like Ctrl-C."""


def did_you_mean(name: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to ``name``, or ``""`` if none is close.

    Args:
      name: what the user wrote, e.g. ``"vea"``.
      choices: the accepted names, e.g. the model registry's keys.

    Returns:
      A suffix for an error message; the comparison ignores case.
    """
    by_folded = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(str(name).lower(), list(by_folded), n=1, cutoff=0.6)
    return f" (did you mean {by_folded[close[0]]!r}?)" if close else ""
