"""Quieting the absl logger, through which Orbax and TFDS report what aejax reports itself."""

from __future__ import annotations

import contextlib
import logging


@contextlib.contextmanager
def absl_quiet(active: bool = True):
    """Drops absl's WARNING (and lower) records while ``active``; errors still pass."""
    logger = logging.getLogger("absl")
    level = logger.level
    if active:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
