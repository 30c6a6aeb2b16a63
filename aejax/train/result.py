"""What a training run returns, and the settings of its loop."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from aejax.data import Dataset
from aejax.train.state import TrainState


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    """How ``fit`` runs its loop: everything it needs beyond the objects it trains.

    Attributes:
      epochs: epochs in all (a resumed run runs the rest).
      batch_size: rows per step, divisible by the devices (``shard.plan_batch_size``).
      seed: the batch order's seed (``epoch_permutation``); the model's initialization
        and the step keys come from ``init_state``'s seed, the same one.
      patience, min_delta: early stopping (``EarlyStopping``); patience 0 never stops.
      nonfinite: ``"stop"`` (raise on a NaN/Inf loss or gradient) or ``"skip"`` the step.
      binarize: dynamic binarization of the training images.
      checkpoint_every: save every this many epochs (0: only by the clock and at the end).
      checkpoint_seconds: save when this many seconds passed since the last save.
      keep_checkpoints: checkpoints kept in ``workdir/checkpoints``.
      devices: devices of the data-parallel mesh (None: all).
      progress: show a progress bar.
      tensorboard: also write TensorBoard scalars in ``workdir/tensorboard``.
      label: the progress bar's label.
      device_data: keep the training split on the devices and run an epoch's steps as one
        program (``aejax.train.resident``): ``"on"``, ``"off"``, or ``"auto"`` (when it fits
        in ``device_data_fraction`` of one device's memory; a CPU's is its RAM).
      device_data_fraction: the share of one device's memory ``"auto"`` lets the data take.
    """

    epochs: int
    batch_size: int
    seed: int = 0
    patience: int = 0
    min_delta: float = 0.0
    nonfinite: str = "stop"
    binarize: bool = False
    checkpoint_every: int = 0
    checkpoint_seconds: float = float("inf")
    keep_checkpoints: int = 2
    devices: int | None = None
    progress: bool = False
    tensorboard: bool = False
    label: str = "fit"
    device_data: str = "auto"
    device_data_fraction: float = 0.25


@dataclasses.dataclass
class RunResult:
    """What ``fit`` (and ``train``) return: the trained model, its best variables and the
    bookkeeping."""

    config: Any  # the run's Config (``record``), None for a ``fit`` without one
    dataset: Dataset
    model: Any
    params: Any  # the best parameters (lowest validation loss), on the host's default device
    state: TrainState  # the whole final state: every group, optimizer and model state
    history: list[dict]
    stats: dict  # steps, epochs_run, compile_seconds, train_samples_per_sec, stopped_early
    workdir: pathlib.Path | None
    model_state: Any = None  # the best variables' collections other than params ({} if none)

    @property
    def variables(self) -> dict:
        """The best ``{"params": ..., **model_state}`` for ``model.apply`` and inference."""
        return {"params": self.params, **(self.model_state or {})}
