"""The training engine: state, jitted steps, the epoch, checkpoints and ``fit`` on objects.

``aejax.train.train(config, workdir)`` is the config-level entry point; it lives above the
engine (``aejax.assemble.train``: config -> objects -> ``fit``) and is reached here by name
only, so that nothing in this package imports what builds on it.
"""

from aejax.train.checkpoint import Checkpointer
from aejax.train.early_stopping import EarlyStopping
from aejax.train.epoch import epoch_permutation, evaluate_arrays, run_epoch
from aejax.train.loop import fit
from aejax.train.optim import make_optimizer, make_optimizers, make_schedule
from aejax.train.result import LoopSettings, RunResult
from aejax.train.state import TrainState, init_state
from aejax.train.step import make_eval_step, make_train_step, make_update

__all__ = [
    "Checkpointer",
    "EarlyStopping",
    "LoopSettings",
    "RunResult",
    "TrainState",
    "epoch_permutation",
    "evaluate_arrays",
    "fit",
    "init_state",
    "make_eval_step",
    "make_optimizer",
    "make_optimizers",
    "make_schedule",
    "make_train_step",
    "make_update",
    "run_epoch",
    "train",
]


def __getattr__(name: str):
    """``aejax.train.train``: the config-level wrapper, imported on first use."""
    if name == "train":
        from aejax.assemble import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
