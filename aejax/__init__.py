"""aejax: autoencoders in JAX — pure Flax modules, jit-compiled training, PCA baselines."""

from aejax import (
    losses,
    metrics,
    objective,
    train,  # the engine subpackage: aejax.train.train(config, workdir)
)
from aejax.baselines import PCA, fit_pca
from aejax.bounds import importance_weighted_bound
from aejax.config import Config
from aejax.data import Dataset, load_dataset
from aejax.errors import AejaxError, CheckpointError, ConfigError, DataError, TrainingDivergedError
from aejax.evaluate import evaluate_model, load_run, train_and_evaluate
from aejax.generate import interpolate, sample
from aejax.inference import decode, encode, reconstruct, score
from aejax.models import MODELS, create_model, model_from_config
from aejax.objective import Objective, make_objective
from aejax.run import Run
from aejax.train import (
    TrainState,
    make_eval_step,
    make_optimizer,
    make_optimizers,
    make_train_step,
)

__version__ = "0.1.0"

__all__ = [
    "train",
    "MODELS",
    "PCA",
    "AejaxError",
    "CheckpointError",
    "Config",
    "ConfigError",
    "DataError",
    "Dataset",
    "TrainState",
    "TrainingDivergedError",
    "create_model",
    "decode",
    "encode",
    "evaluate_model",
    "fit_pca",
    "importance_weighted_bound",
    "interpolate",
    "load_dataset",
    "load_run",
    "losses",
    "make_eval_step",
    "make_objective",
    "make_optimizer",
    "make_optimizers",
    "make_train_step",
    "metrics",
    "model_from_config",
    "objective",
    "Objective",
    "reconstruct",
    "Run",
    "sample",
    "score",
    "train_and_evaluate",
]
