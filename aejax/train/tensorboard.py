"""Epoch metrics as TensorBoard scalars, through tensorboardX (no TensorFlow needed)."""

from __future__ import annotations

import os
from collections.abc import Callable

from aejax.errors import ConfigError


class TensorBoardLogger:
    """An ``on_epoch_end`` callback writing each numeric field of the record as a scalar.

    Install the extra first: ``pip install -e ".[tensorboard]"``; view with
    ``tensorboard --logdir <workdir>/tensorboard``.
    """

    def __init__(self, logdir: str | os.PathLike):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ConfigError(
                "tensorboard=true needs tensorboardX: pip install -e '.[tensorboard]'"
            ) from None
        self.writer = SummaryWriter(logdir=str(logdir))

    def __call__(self, record: dict) -> None:
        step = record["step"]
        for key, value in record.items():
            if key not in ("epoch", "step") and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()  # one flush per epoch: a killed run keeps its curves

    def close(self) -> None:
        self.writer.close()


def chain(*callbacks: Callable[[dict], None] | None) -> Callable[[dict], None]:
    """One callback calling each non-None callback in order."""
    active = [c for c in callbacks if c is not None]

    def call(record: dict) -> None:
        for c in active:
            c(record)

    return call
