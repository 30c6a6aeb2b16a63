"""Early stopping on a monitored loss: the best value, its epoch and the epochs since."""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass
class EarlyStopping:
    """Stops a run after ``patience`` epochs without an improvement of ``min_delta``.

    ``update`` is called once per finished epoch with the monitored loss (the validation
    loss, or the training loss when there is no validation split). ``state_dict()`` is
    what a checkpoint records (``meta["loop"]``) and ``load_state_dict`` restores it, so
    a resumed run stops at the epoch an uninterrupted one would.

    Attributes:
      patience: epochs without improvement before stopping; 0 never stops.
      min_delta: the least decrease that counts as an improvement.
      epoch: epochs seen (1-based number of the last one).
      best: the lowest loss seen (``inf`` before the first epoch).
      best_epoch: the epoch of ``best`` (-1 before the first epoch).
      bad_epochs: epochs since the last improvement.
      stopped: whether the run should stop (sticky).
    """

    patience: int = 0
    min_delta: float = 0.0
    epoch: int = 0
    best: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped: bool = False

    def update(self, loss: float) -> bool:
        """Records one more epoch's loss; returns whether to stop now."""
        self.epoch += 1
        if loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = loss, self.epoch, 0
        else:
            self.bad_epochs += 1
            if self.patience and self.bad_epochs >= self.patience:
                self.stopped = True
        return self.stopped

    @property
    def improved(self) -> bool:
        """Whether the last ``update`` set a new best (its parameters are the ones to keep)."""
        return self.best_epoch == self.epoch and self.epoch > 0

    def state_dict(self) -> dict:
        """The checkpointed form: ``{"epoch", "best_val", "best_epoch", "bad_epochs",
        "stopped_early"}`` (JSON; ``best_val`` may be ``inf``)."""
        return {
            "epoch": self.epoch,
            "best_val": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restores ``state_dict()``'s values (keys it lacks keep their value)."""
        self.epoch = state.get("epoch", self.epoch)
        self.best = state.get("best_val", self.best)
        self.best_epoch = state.get("best_epoch", self.best_epoch)
        self.bad_epochs = state.get("bad_epochs", self.bad_epochs)
        self.stopped = state.get("stopped_early", self.stopped)
