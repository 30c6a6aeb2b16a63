"""Greedy layer-wise pretraining of ``stacked_ae`` (the SDAE recipe of Vincent et al. 2010).

Layer ``l`` of the dense topology ``input -> hidden... -> latent_dim`` is first trained
alone, as a shallow (optionally denoising) autoencoder on the codes of layers ``< l``:

- its encoder is one dense layer of width ``hidden[l]`` (``latent_dim`` for the last),
  followed by the config's activation except on the last layer (the code is linear, as in
  ``MLPEncoder``);
- its decoder is one dense layer back to the previous width: the data's likelihood for
  the input layer (Bernoulli logits for images), else the activation and a squared error
  on the real-valued codes, so each decoder layer does in the shallow model exactly what
  it does inside the deep ``MLPDecoder``;
- ``pretrain_corruption`` corrupts its input (clean target), on its own key stream.

Each layer trains for ``pretrain_epochs`` with the engine's update step
(``aejax.train.step``: clipping, Adam, the warmup-cosine schedule at ``pretrain_lr``) and
the clean codes of its trained encoder feed the next. The encoders, stacked, and the
decoders, in reverse order, are the initial parameters of the whole network, which
``aejax.train_run(config, init_params=...)`` then fine-tunes end to end.

In a run directory every finished layer is saved (``pretrain/layer_<l>.npz`` and its
history) before the next begins, so a run killed while pretraining resumes at the next
layer with the same bits, and a run whose fine-tuning has a checkpoint never pretrains
again (``prepare_run``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import pathlib
import shutil
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aejax import inference, xla
from aejax.config import Config
from aejax.data import Dataset
from aejax.data.corruption import parse_corruption
from aejax.errors import CheckpointError, ConfigError, TrainingDivergedError
from aejax.inference import evaluate_model
from aejax.models import model_from_config
from aejax.models._common import compute_dtype, get_activation
from aejax.models.autoencoder import Autoencoder
from aejax.models.codes import IdentityCode
from aejax.models.likelihoods import Likelihood, likelihood_for
from aejax.models.objective import make_objective
from aejax.models.parts import MLPDecoder, MLPEncoder
from aejax.train.epoch import (
    Carry,
    epoch_permutation,
    evaluate_arrays,
    loop_step_fn,
    run_epoch,
    zero_metrics,
)
from aejax.train.optim import make_optimizers
from aejax.train.resume import committed_epoch
from aejax.train.rundir import write_atomic
from aejax.train.runtime import is_main_process
from aejax.train.shard import check_batch_size, fetch, make_mesh, replicate
from aejax.train.state import check_params_fit, init_state, state_shapes
from aejax.train.step import make_eval_step, make_train_step, metric_names

PyTree = Any
STORE = "pretrain"  # the folder of a run directory that holds the pretrained layers
_LAYER_SEED = 0x53444145  # "SDAE": keeps each layer's seed apart from the fine-tuning's


def pretrains(config: Config) -> bool:
    """Whether a run of ``config`` is preceded by layer-wise pretraining."""
    return config.model == "stacked_ae" and config.pretrain_epochs > 0


class StackLayer(nn.Module):
    """One dense layer, ``[B, ...] -> [B, features]`` (or ``[B, *output_shape]``).

    Its parameters live under ``dense_0``, so they map one to one onto a layer of
    ``MLPEncoder`` or ``MLPDecoder``.

    Attributes:
      features: output width.
      activation: applied to the output when ``activate`` (a ``jax.nn`` name).
      dtype: compute dtype (parameters stay float32).
      activate: apply the activation (hidden layers) or not (the code, the output logits).
      output_shape: reshape the output to ``[B, *output_shape]`` (the input layer's decoder).
    """

    features: int
    activation: str = "gelu"
    dtype: str = "float32"
    activate: bool = True
    output_shape: tuple[int, ...] | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch = x.shape[0]
        y = nn.Dense(self.features, dtype=compute_dtype(self.dtype), name="dense_0")(
            x.reshape(batch, -1)
        )
        if self.activate:
            y = get_activation(self.activation)(y)
        y = y.astype("float32")
        return y if self.output_shape is None else y.reshape(batch, *self.output_shape)


def layer_widths(config: Config) -> tuple[int, ...]:
    """The encoder's widths, layer by layer: ``(*hidden, latent_dim)``."""
    return (*config.hidden, config.latent_dim)


def layer_model(config: Config, layer: int, input_shape: tuple[int, ...], kind: str) -> Autoencoder:
    """The shallow autoencoder that pretrains ``layer`` (0 = the one that reads the data).

    Args:
      config: the run's config (``hidden``, ``latent_dim``, ``activation``, ``dtype``,
        ``likelihood``).
      layer: the layer's index in ``layer_widths(config)``.
      input_shape: the per-example shape of the data (the layer's own input is the
        previous layer's width).
      kind: the data kind (``"image"`` or ``"tabular"``).
    """
    widths = layer_widths(config)
    last = layer == len(widths) - 1
    act, dtype = config.activation, config.dtype
    encoder = StackLayer(widths[layer], act, dtype, activate=not last)
    if layer == 0:
        lik = likelihood_for(kind, config.likelihood)
        out_shape = (*input_shape[:-1], input_shape[-1] * lik.params_per_element)
        decoder = StackLayer(math.prod(out_shape), act, dtype, False, out_shape)
        shape = tuple(input_shape)
    else:
        # The codes it reconstructs are activations: the decoder layer applies the
        # activation as it does inside MLPDecoder, and the loss is a squared error.
        lik = Likelihood("gaussian")
        decoder = StackLayer(widths[layer - 1], act, dtype, activate=True)
        shape = (widths[layer - 1],)
    return Autoencoder(shape, encoder, IdentityCode(widths[layer]), decoder, lik)


def assemble(layer_params: list[PyTree]) -> PyTree:
    """The deep autoencoder's parameters from each shallow one's.

    Encoder ``dense_l`` is layer ``l``'s encoder; decoder ``dense_{L-1-l}`` is layer
    ``l``'s decoder (the decoder runs the layers in reverse order).
    """
    n = len(layer_params)
    encoder = {f"dense_{i}": p["encoder"]["dense_0"] for i, p in enumerate(layer_params)}
    decoder = {f"dense_{n - 1 - i}": p["decoder"]["dense_0"] for i, p in enumerate(layer_params)}
    return {"encoder": encoder, "decoder": decoder}


def layer_seed(seed: int, layer: int) -> int:
    """Layer ``layer``'s seed (parameters, batch order, corruption), a function of the run's."""
    return int(np.random.default_rng([seed, _LAYER_SEED, layer]).integers(2**31 - 1))


def train_layer(
    config: Config, model: Autoencoder, x_train: np.ndarray, x_val: np.ndarray, seed: int
) -> tuple[PyTree, list[dict]]:
    """Trains one shallow autoencoder for ``config.pretrain_epochs`` epochs.

    Args:
      config: the run's config (``pretrain_epochs``, ``pretrain_lr`` (0 = ``lr``),
        ``pretrain_corruption``, ``batch_size``, the optimizer's fields, ``devices``).
      model: from ``layer_model``.
      x_train: ``[N, *model.input_shape]`` the layer's training inputs.
      x_val: ``[M, *model.input_shape]`` its validation inputs (``M`` may be 0).
      seed: the layer's seed (``layer_seed``).

    Returns:
      ``(params, history)``: the last epoch's parameters (host numpy) and one record per
      epoch, ``{"epoch", "train_reconstruction", "train_loss"[, "val_reconstruction"]}``
      (means per example; the training term is on corrupted inputs when corruption is on).
    """
    mesh = make_mesh(config.devices)
    n_dev = mesh.devices.size
    n = x_train.shape[0]
    batch_size = max(n_dev, min(config.batch_size, n) // n_dev * n_dev)
    check_batch_size(batch_size, mesh)
    steps = n // batch_size
    if steps < 1:
        raise ConfigError(f"{n} training examples cannot fill one batch on {n_dev} devices")
    cfg = config.replace(lr=config.pretrain_lr or config.lr)
    total = steps * config.pretrain_epochs
    optimizers = make_optimizers(cfg, total, model)
    corruption = parse_corruption(config.pretrain_corruption)
    objective = make_objective(cfg, total)
    step = make_train_step(
        model, optimizers, objective, nonfinite=config.nonfinite, corruption=corruption or None
    )
    platform = mesh.devices.flat[0].platform
    step_fn = loop_step_fn(step, platform)
    # A few small calls per layer: compiled for speed of compiling (see aejax.xla).
    eval_step = xla.jit(make_eval_step(model, objective), platform=platform, run_once=True)
    state = replicate(init_state(model, optimizers, model.input_shape, seed), mesh)
    key = jax.tree.map(jnp.copy, state.rng)  # the state's own rng leaf is donated
    spec = jax.ShapeDtypeStruct((batch_size, *model.input_shape), x_train.dtype)
    acc0 = zero_metrics(metric_names(model, state.variables(), {"x": spec}), mesh)
    carry = Carry(state, acc0)
    history = []
    for epoch in range(config.pretrain_epochs):
        carry.acc = jax.tree.map(jnp.zeros_like, acc0)
        perm = epoch_permutation(seed, epoch, n)
        acc = run_epoch(step_fn, carry, key, x_train, perm, batch_size, mesh)
        count = max(float(acc["count"]), 1.0)
        record = {
            "epoch": epoch + 1,
            "train_loss": float(acc["loss"] / count),
            "train_reconstruction": float(acc["reconstruction"] / count),
        }
        if acc["nonfinite"] > 0 and config.nonfinite == "stop":
            raise TrainingDivergedError(
                f"pretraining: the loss became NaN/Inf in epoch {epoch + 1}; lower "
                "--set pretrain_lr=..."
            )
        if x_val.shape[0]:
            val = evaluate_arrays(eval_step, carry.state.variables(), x_val, batch_size, mesh)
            record["val_reconstruction"] = val["reconstruction"]
        history.append(record)
    return fetch(carry.state.params), history


def layer_codes(model: Autoencoder, params: PyTree, x: np.ndarray) -> np.ndarray:
    """The clean codes ``[N, width]`` of a trained layer: the next layer's inputs."""
    if x.shape[0] == 0:
        return np.zeros((0, model.code.latent_dim), np.float32)
    return np.asarray(inference.encode(model, {"params": params}, x), np.float32)


@dataclasses.dataclass
class Pretrained:
    """What ``pretrain`` returns.

    Attributes:
      params: the deep model's parameters (``model_from_config(config, ...)``'s structure).
      layers: one dict per layer, in training order: ``layer``, ``input_shape`` (the
        data's, then the previous width), ``width``, ``history`` (``train_layer``'s),
        ``seconds`` (of its training) and ``loaded`` (True when read back from a store).
      test: the deep model's reconstruction report on the test split with ``params``
        (``aejax.inference.evaluate_model``: before any fine-tuning), or None when the data
        has no test split.
    """

    params: PyTree
    layers: list[dict]
    test: dict | None

    def summary(self) -> dict:
        """Flat entries for the run's summary: ``pretrain_test_<metric>`` and the layers'."""
        out: dict[str, Any] = {
            "pretrain_layers": [layer["width"] for layer in self.layers],
            "pretrain_layer_reconstruction": [
                layer["history"][-1]["train_reconstruction"] for layer in self.layers
            ],
            "pretrain_seconds": sum(layer["seconds"] for layer in self.layers),
        }
        out.update({f"pretrain_test_{k}": v for k, v in (self.test or {}).items()})
        return out


def pretrain(
    config: Config, dataset: Dataset, *, store: str | pathlib.Path | None = None
) -> Pretrained:
    """Greedy layer-wise pretraining of the deep dense autoencoder ``config`` describes.

    Args:
      config: the run's config (model ``stacked_ae``, or any whose ``hidden`` and
        ``latent_dim`` describe a dense ``MLPEncoder``/``MLPDecoder`` pair).
      dataset: the loaded data (its training split trains, its validation split is
        reported per epoch, its test split gives ``Pretrained.test``).
      store: a folder where each finished layer is saved and from which saved layers are
        read back instead of trained (``prepare_run`` uses ``<workdir>/pretrain``).

    Returns:
      A ``Pretrained``: the same bits for the same config and data, whether its layers
      were trained in one go or read back after an interruption.

    Raises:
      ConfigError: a model that is not a dense autoencoder with a plain code.
    """
    ds = dataset
    model = model_from_config(config, ds.input_shape, ds.kind)
    dense = isinstance(model.encoder, MLPEncoder) and isinstance(model.decoder, MLPDecoder)
    if not dense or not isinstance(model.code, IdentityCode) or model.adversary is not None:
        raise ConfigError(
            f"model {config.model!r} is not a dense autoencoder with a plain code: layer-wise "
            "pretraining initialises the dense stack of hidden and latent_dim (stacked_ae)"
        )
    expected = state_shapes(model, make_optimizers(config, 1, model), ds.input_shape, 0).params
    store = pathlib.Path(store) if store is not None else None
    if store is not None and is_main_process():
        store.mkdir(parents=True, exist_ok=True)
    x_train, x_val = ds.x_train, ds.x_val
    params, layers = [], []
    for layer, width in enumerate(layer_widths(config)):
        shallow = layer_model(config, layer, ds.input_shape, ds.kind)
        t0 = time.perf_counter()
        saved = _load_layer(store, layer) if store is not None else None
        if saved is None:
            seed = layer_seed(config.seed, layer)
            p, history = train_layer(config, shallow, x_train, x_val, seed)
            seconds = time.perf_counter() - t0
            if store is not None and is_main_process():
                _save_layer(store, layer, p, {"history": history, "seconds": seconds})
        else:
            p, info = saved
            history, seconds = info["history"], info["seconds"]
        params.append(p)
        # One call for both splits: one compilation.
        codes = layer_codes(shallow, p, np.concatenate([x_train, x_val]))
        x_train, x_val = codes[: x_train.shape[0]], codes[x_train.shape[0] :]
        layers.append(
            {
                "layer": layer,
                "input_shape": tuple(shallow.input_shape),
                "width": width,
                "history": history,
                "seconds": seconds,
                "loaded": saved is not None,
            }
        )
    full = assemble(params)
    try:
        check_params_fit(full, expected)
    except ConfigError as e:
        raise ConfigError(
            f"model {config.model!r} is not a dense stack of hidden={config.hidden} and "
            f"latent_dim={config.latent_dim} that layer-wise pretraining can initialise: {e}"
        ) from e
    test = None
    if ds.x_test.shape[0]:
        test = evaluate_model(model, {"params": full}, ds.x_test, ds.kind)
    return Pretrained(full, layers, test)


def prepare_run(
    config: Config, workdir: str | pathlib.Path | None, dataset: Dataset, *, fresh: bool = False
) -> tuple[PyTree | None, dict | None]:
    """The pretraining step of a ``stacked_ae`` run: ``(init_params, summary entries)``.

    Called by ``aejax.train_run`` (``aejax.assemble.train``) before ``fit``:

    - in memory (``workdir`` None): pretrains and returns the parameters;
    - a run directory whose fine-tuning has a committed checkpoint: returns ``(None, the
      saved summary entries)``: the run resumes from its checkpoint, nothing pretrains;
    - otherwise pretrains, keeping each finished layer in ``<workdir>/pretrain`` (read
      back, not retrained, after an interruption) and ``pretrain/summary.json``.

    Args:
      config: the run's config.
      workdir: the run directory, or None.
      dataset: the loaded data.
      fresh: discard saved layers (with the rest of the run, which ``train`` discards).

    Returns:
      ``(init_params or None, Pretrained.summary() or None)``.

    Raises:
      CheckpointError: ``<workdir>/pretrain`` holds the layers of another config.
    """
    if workdir is None:
        pre = pretrain(config, dataset)
        return pre.params, pre.summary()
    store = pathlib.Path(workdir) / STORE
    if fresh and store.exists():
        shutil.rmtree(store)
    if not fresh and committed_epoch(workdir) is not None:
        summary_path = store / "summary.json"
        return None, json.loads(summary_path.read_text()) if summary_path.exists() else None
    _check_store(store, config)
    pre = pretrain(config, dataset, store=store)
    if is_main_process():
        write_atomic(store / "summary.json", json.dumps(pre.summary(), indent=2))
    return pre.params, pre.summary()


# --- the store: one .npz and one .json per finished layer ------------------------------
def _pretrain_fields(config: Config) -> dict:
    """The fields that decide what pretraining computes (``epochs`` is the fine-tuning's)."""
    return {k: v for k, v in config.semantic_dict().items() if k != "epochs"}


def _check_store(store: pathlib.Path, config: Config) -> None:
    saved = store / "config.json"
    if saved.exists():
        try:
            old = json.loads(saved.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{saved} is unreadable ({e}); use --fresh") from e
        new = json.loads(json.dumps(_pretrain_fields(config)))
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if diff:
            raise CheckpointError(
                f"{store} holds layers pretrained with another config ({', '.join(diff)} "
                "differ); use another --workdir, or --fresh to discard them"
            )
    elif is_main_process():
        store.mkdir(parents=True, exist_ok=True)
        write_atomic(saved, json.dumps(_pretrain_fields(config), indent=2))


def _save_layer(store: pathlib.Path, layer: int, params: PyTree, info: dict) -> None:
    """The history first, the parameters last: a layer counts as done once its .npz exists."""
    write_atomic(store / f"layer_{layer}.json", json.dumps(info))
    flat = {"/".join(k.key for k in path): np.asarray(v) for path, v in _flatten(params)}
    buffer = io.BytesIO()
    np.savez(buffer, **flat)
    write_atomic(store / f"layer_{layer}.npz", buffer.getvalue())


def _flatten(params: PyTree):
    return jax.tree_util.tree_flatten_with_path(params)[0]


def _load_layer(store: pathlib.Path, layer: int) -> tuple[PyTree, dict] | None:
    """``(params, {"history", "seconds"})`` of a saved layer, or None if it is not done."""
    npz, js = store / f"layer_{layer}.npz", store / f"layer_{layer}.json"
    if not (npz.exists() and js.exists()):
        return None
    try:
        with np.load(npz) as f:
            flat = {k: f[k] for k in f.files}
        info = json.loads(js.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{npz} is unreadable ({e}); use --fresh") from e
    params: dict = {}
    for name, value in flat.items():
        node = params
        *parents, leaf = name.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return params, info
