"""The training engine: state, objective, optimizers, jitted steps, checkpoints and the loop."""

from aejax.train.checkpoint import Checkpointer
from aejax.train.loop import RunResult, epoch_permutation, evaluate_arrays, train
from aejax.train.optim import make_optimizer, make_optimizers, make_schedule
from aejax.train.state import TrainState, init_state
from aejax.train.step import make_eval_step, make_train_step, make_update

__all__ = [
    "Checkpointer",
    "RunResult",
    "TrainState",
    "epoch_permutation",
    "evaluate_arrays",
    "init_state",
    "make_eval_step",
    "make_optimizer",
    "make_optimizers",
    "make_schedule",
    "make_train_step",
    "make_update",
    "train",
]
