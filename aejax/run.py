"""A run's lifecycle after training: loading it back (``load_run``), its restore targets,
its data (in the data's own units) and the ``Run`` that encodes, decodes and samples."""

from __future__ import annotations

import json
import pathlib
from typing import Any, NamedTuple

import jax
import numpy as np

from aejax import inference, sampling
from aejax.assemble import dataset_for
from aejax.config import Config
from aejax.data import Standardizer
from aejax.errors import CheckpointError, ConfigError, DataError
from aejax.models import model_from_config
from aejax.train.checkpoint import Checkpointer
from aejax.train.optim import make_optimizers
from aejax.train.rundir import check_recorded_config, config_of
from aejax.train.state import state_shapes


class Run(NamedTuple):
    """What ``aejax.load_run`` returns; unpacks as ``config, model, variables, scaler``.

    The methods take and return examples in the data's own units: for a tabular run the
    saved scaler standardizes the input rows and maps outputs back (the model itself
    reads standardized features); images are ``[N, H, W, C]`` floats in [0, 1] (or
    uint8 0..255) either way. The functions of ``aejax.inference`` take the same
    arguments without the scaler applied for you.
    """

    config: Config
    model: Any
    variables: dict  # {"params": ..., **model_state}: the best validation epoch's
    scaler: Standardizer | None  # tabular runs: the training split's standardizer

    def encode(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Codes ``[N, latent_dim]`` (a VAE's posterior means) of ``x: [N, *input_shape]``."""
        return inference.encode(self.model, self.variables, x, batch_size, scaler=self.scaler)

    def decode(self, z: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Decoder means ``[N, *input_shape]`` of codes ``z: [N, latent_dim]``."""
        return inference.decode(self.model, self.variables, z, batch_size, scaler=self.scaler)

    def reconstruct(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Reconstructions ``[N, *input_shape]`` of ``x: [N, *input_shape]``."""
        recon, _ = inference.reconstruct(
            self.model, self.variables, x, batch_size, scaler=self.scaler
        )
        return recon

    def score(self, x: np.ndarray, batch_size: int | None = None) -> dict[str, np.ndarray]:
        """Per-example terms ``{name: [N]}`` of ``x`` (see ``aejax.inference.score``)."""
        return inference.score(self.model, self.variables, x, batch_size, scaler=self.scaler)

    def sample(self, n: int, seed: int = 0, sampler: str | None = None, **options) -> np.ndarray:
        """``n`` generated examples ``[n, *input_shape]`` (``jax.random.key(seed)``).

        ``sampler`` names one of ``aejax.sampling.SAMPLERS`` (``options`` are its own,
        e.g. ``sampler="two_stage", epochs=100``); by default the model's prior, or for a
        model with none (``ae``, ``conv_ae``) a Gaussian mixture fitted to the codes of the
        run's training split, as ``aejax sample`` does. The training split is encoded only
        for a sampler fitted to codes, after the sampler and its options are checked.
        """
        return sampling.sample(
            self.model,
            self.variables,
            n,
            jax.random.key(seed),
            scaler=self.scaler,
            codes=self.training_codes,
            sampler=sampler,
            seed=seed,
            **options,
        )

    def training_codes(self) -> np.ndarray:
        """Codes ``[N, *code_shape]`` of the run's training split (read again, in data units)."""
        return self.encode(split_in_data_units(self.config, self.model, "train"))

    def interpolate(
        self, x0: np.ndarray, x1: np.ndarray, steps: int = 10, method: str = "linear"
    ) -> np.ndarray:
        """Decoded paths ``[N, steps, *input_shape]`` from ``x0[i]`` to ``x1[i]`` in code space."""
        return sampling.interpolate(
            self.model, self.variables, x0, x1, steps, method, scaler=self.scaler
        )


def load_run(workdir: str | pathlib.Path) -> Run:
    """Loads a finished or interrupted run for inference.

    Returns:
      A ``Run``, which unpacks as ``(config, model, variables, scaler)``: ``variables``
      are the best parameters and model state as ``{"params": ..., **model_state}``; the
      model is built for the data shape the run was trained on (stored in its checkpoint
      metadata). The newest loadable checkpoint is used; newer ones that are unreadable or
      fail their integrity check (their arrays or metadata differ from the hashes
      recorded when they were written) are skipped with a warning, never used.
      ``run.encode(x)``, ``run.decode(z)``, ``run.reconstruct(x)``, ``run.score(x)``,
      ``run.sample(n)`` work in the data's own units (the scaler is applied both ways).

    Raises:
      CheckpointError: not a run directory, no (loadable) checkpoint, unreadable
        ``config.json`` or ``scaler.json``, checkpoints whose parameters do not fit the
        model that ``config.json`` describes (missing, extra or reshaped leaves), or a
        ``config.json`` that differs from the config the checkpoint was written with in a
        field that changes what the model computes (naming the fields).
    """
    workdir = pathlib.Path(workdir)
    if not workdir.is_dir():
        raise CheckpointError(f"{workdir} is not an aejax run directory (no such directory)")
    cfg_path = workdir / "config.json"
    if not cfg_path.exists():
        raise CheckpointError(f"{workdir} is not an aejax run directory (no config.json)")
    try:
        config = Config.from_dict(json.loads(cfg_path.read_text()))
    except (OSError, ValueError) as e:  # JSONDecodeError and ConfigError are ValueErrors
        raise CheckpointError(f"{cfg_path} is unreadable: {e}") from e
    with Checkpointer(workdir / "checkpoints", read_only=True) as ckpt:
        meta = ckpt.read_meta()
        if meta is None:
            raise CheckpointError(f"{workdir}/checkpoints holds no committed checkpoint")
        data_info = meta.get("data")
        if not isinstance(data_info, dict) or not {"input_shape", "kind"} <= data_info.keys():
            raise CheckpointError(f"{workdir}: checkpoint metadata lacks the data shape")
        input_shape = tuple(data_info["input_shape"])
        try:
            model = model_from_config(
                config, input_shape, data_info["kind"], n_train=data_info.get("n_train")
            )
        except ConfigError as e:
            raise CheckpointError(f"{cfg_path} describes a model that cannot be built: {e}") from e
        state = abstract_state(model, make_optimizers(config, 1, model), input_shape, config.seed)
        _, best, meta, step = ckpt.restore(state, best_like(state))
    where = f"{ckpt.directory}/{step}"  # an edited activation keeps every shape: compare
    check_recorded_config(cfg_path, config, config_of(meta, where), where)
    scaler_path = workdir / "scaler.json"
    try:
        scaler = (
            Standardizer.from_dict(json.loads(scaler_path.read_text()))
            if scaler_path.exists()
            else None
        )
    except (OSError, ValueError) as e:  # DataError is a ValueError
        raise CheckpointError(f"{scaler_path} is unreadable: {e}") from e
    best = jax.device_get(best)
    return Run(config, model, {"params": best["params"], **best["model_state"]}, scaler)


def best_like(state: Any) -> dict:
    """The structure of the best-variables tree a run checkpoints beside its state."""
    return {"params": state.params, "model_state": state.model_state}


def abstract_state(model: Any, tx: Any, input_shape: tuple[int, ...], seed: int) -> Any:
    """The shapes, dtypes and (one-device) shardings of ``init_state``'s result.

    A restore target that costs a trace, not a compilation and an initialization.

    Args:
      model: the registry model.
      tx: the optimizer (its state's structure is part of the target).
      input_shape: the per-example shape the model was built for.
      seed: the run's seed.

    Returns:
      A ``TrainState`` of ``jax.ShapeDtypeStruct`` leaves on the first local device.
    """
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    shapes = state_shapes(model, tx, input_shape, seed)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


# The config fields that say where and how to read data, not what the run computed:
# ``aejax evaluate``/``encode`` take them (``--set data_dir=...``) for data found elsewhere.
DATA_OPTIONS = ("data_dir", "download", "label_column", "impute", "drop_columns")


def with_data_options(config: Config, options: dict[str, Any] | None) -> Config:
    """``config`` with data-reading fields replaced (``DATA_OPTIONS`` only).

    Raises:
      ConfigError: a key that is not a data option (the split and the model are the run's).
    """
    options = dict(options or {})
    other = sorted(set(options) - set(DATA_OPTIONS))
    if other:
        raise ConfigError(
            f"{', '.join(other)}: not a data option; a saved run takes only "
            f"{', '.join(DATA_OPTIONS)} (its split, seed and model are the run's own)"
        )
    return config.replace(**options)


# --- the run's data, in the data's own units ----------------------------------------------
def split_in_data_units(config, model, split: str, data: str | None = None) -> np.ndarray:
    """The ``split`` rows of the run's data (or of the spec ``data``), in data units.

    Tabular splits are stored standardized; they are mapped back with their own scaler,
    so that the run's saved scaler (applied by ``encode``) sees rows as a user has them.
    ``split`` is ``"train"``, ``"val"``, ``"test"`` or ``"all"`` (the three in that order).

    Raises:
      DataError: the data's examples are not of the shape the model was trained on.
    """
    return labelled_split(config, model, split, data)[0]


def labelled_split(
    config, model, split: str, data: str | None = None
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """``(x, y, name)``: ``split_in_data_units``'s rows, their labels (or None) and the
    data set's name."""
    ds = dataset_for(config, data)
    if ds.input_shape != tuple(model.input_shape):
        raise DataError(
            f"data {ds.name!r} has examples of shape {ds.input_shape}, but the model "
            f"was trained on {tuple(model.input_shape)}"
        )
    x, y = split_arrays(ds, split)
    return (x if ds.scaler is None else ds.scaler.inverse_transform(x)), y, ds.name


SPLITS = ("train", "val", "test", "all")


def split_arrays(ds, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(x, y)`` of one split of a Dataset, or of all three (train, val, test) in order."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    if split != "all":
        return getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
    xs = [ds.x_train, ds.x_val, ds.x_test]
    ys = [ds.y_train, ds.y_val, ds.y_test]
    y = None if any(v is None for v in ys) else np.concatenate(ys)
    return np.concatenate(xs), y
