"""The training engine: state, jitted steps, the epoch, checkpoints and ``fit`` on objects.

``aejax.train_run(config, workdir)`` (``aejax.assemble.train``) is the config-level entry
point; it lives above the engine (config -> objects -> ``fit``), and nothing in this package
imports what builds on it. It was ``aejax.train.train`` before 0.2: a function named like
its package, which now raises an error naming the new name.
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
]


def __getattr__(name: str):
    """``aejax.train.train`` (before 0.2) says where the function went."""
    if name == "train":
        from aejax.errors import RenamedError

        raise RenamedError(
            "aejax.train.train was renamed aejax.train_run (aejax.assemble.train, the "
            "config-level function; aejax.train is the engine package, aejax.fit its entry)",
            name="train",
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
