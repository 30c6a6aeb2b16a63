"""aejax: autoencoders in JAX — pure Flax modules, jit-compiled training, PCA baselines."""

from aejax import (
    losses,
    metrics,
    objective,
    pretrain,  # stacked_ae's layer-wise pretraining: aejax.pretrain.pretrain(config, dataset)
    series,  # time series: windows, point scores, NAB labels (aejax.series.window_starts, ...)
    train,  # the engine subpackage: aejax.train.train(config, workdir)
)
from aejax.augment import Augment, parse_augment
from aejax.baselines import PCA, fit_pca
from aejax.bounds import importance_weighted_bound
from aejax.config import Config
from aejax.corruption import Corruption, parse_corruption
from aejax.data import Dataset, load_dataset
from aejax.embed import embed_run
from aejax.errors import AejaxError, CheckpointError, ConfigError, DataError, TrainingDivergedError
from aejax.estimators import AnomalyDetector, Autoencoder
from aejax.estimators.metrics import average_precision, precision_at_n, roc_auc
from aejax.evaluate import evaluate_model, train_and_evaluate
from aejax.generate import interpolate, sample
from aejax.inference import decode, encode, reconstruct, score
from aejax.models import MODELS, create_model, model_from_config
from aejax.objective import Objective, make_objective
from aejax.probe import linear_probe
from aejax.recommend import recommend  # the function: AutoRec's top-k items for a user
from aejax.restore import denoise, inpaint, super_resolve
from aejax.run import Run, load_run
from aejax.series import detect_series, load_nab_windows, read_series
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
    "pretrain",
    "series",
    "MODELS",
    "PCA",
    "AejaxError",
    "Augment",
    "AnomalyDetector",
    "Autoencoder",
    "CheckpointError",
    "Config",
    "ConfigError",
    "Corruption",
    "DataError",
    "Dataset",
    "TrainState",
    "TrainingDivergedError",
    "average_precision",
    "create_model",
    "decode",
    "denoise",
    "detect_series",
    "embed_run",
    "encode",
    "evaluate_model",
    "fit_pca",
    "importance_weighted_bound",
    "inpaint",
    "interpolate",
    "linear_probe",
    "load_dataset",
    "load_nab_windows",
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
    "parse_augment",
    "parse_corruption",
    "precision_at_n",
    "recommend",
    "read_series",
    "reconstruct",
    "roc_auc",
    "Run",
    "sample",
    "score",
    "super_resolve",
    "train_and_evaluate",
]
