"""The jit-compiled update and evaluation steps, one update function for every model.

A step runs the model's phases in order (``model.phases``: the autoencoder, or a
discriminator then the autoencoder); each phase differentiates the objective of the terms
its method reports with respect to its own parameter group and applies that group's
optimizer. Batches are pytrees: ``{"x": [B, ...]}`` plus optional ``mask`` (per element,
broadcastable to ``x``: unobserved entries, padding), ``weight`` (``[B]`` per example),
``target`` (what the reconstruction term scores instead of ``x``: a denoiser's clean
images) and anything else a model's data needs. Images may come as uint8 pixels: both
steps read them as floats in [0, 1] (``aejax.data.pixels.to_unit``) before anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from aejax import metrics
from aejax.data.augment import Augment
from aejax.data.corruption import Corruption
from aejax.data.pixels import to_unit_batch
from aejax.models import losses
from aejax.models.autoencoder import select_group
from aejax.models.objective import Objective
from aejax.train.state import TrainState, as_optimizers

Metrics = dict[str, jax.Array]
Batch = Mapping[str, jax.Array]
RNG_STREAMS = ("dropout", "noise", "sample")
_BINARIZE = 0x62696E  # fold_in constant of the dynamic-binarization key ("bin")
_CORRUPT = 0x636F72  # fold_in constant of the input-corruption key ("cor")
_AUGMENT = 0x617567  # fold_in constant of the augmentation key ("aug")


def default_objective() -> Objective:
    """Every model's terms at their default weights (reconstruction + KL at beta 1 + ...)."""
    from aejax.models.objective import default_objective as every_models

    return every_models(1)


def as_batch(batch: jax.Array | Batch) -> dict:
    """A bare array means ``{"x": array}``."""
    return {"x": batch} if not isinstance(batch, Mapping) else dict(batch)


def _weighted(values: jax.Array, weight: jax.Array | None) -> jax.Array:
    return values.sum() if weight is None else (values * weight).sum()


def apply_model(model: nn.Module, variables, batch: Batch, *, train: bool, rngs=None, method=None):
    """``model.apply`` on ``batch["x"]`` (with its ``mask`` and ``target``), returning
    ``((out, aux), state)``.

    ``state`` holds the updated collections other than ``params`` (empty when none).
    """
    mutable = tuple(k for k in variables if k != "params") if train else False
    kwargs = {k: batch[k] for k in ("mask", "target") if k in batch}
    out = model.apply(
        variables,
        batch["x"],
        train=train,
        rngs=rngs,
        method=method,
        mutable=mutable or False,
        **kwargs,
    )
    return out if mutable else (out, {})


def make_train_step(
    model: nn.Module,
    optimizers: optax.GradientTransformation | Mapping[str, optax.GradientTransformation],
    objective: Objective | None = None,
    *,
    nonfinite: str = "stop",
    binarize: bool = False,
    corruption: Corruption | None = None,
    augment: Augment | None = None,
    axis_name: str | None = None,
) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]]:
    """Builds the (un-jitted) ``train_step(state, batch, key) -> (state, metrics)``.

    The one update of the engine: the jit path jits it (``aejax.train.fit``), the ``pmap``
    compatibility path maps it over devices with ``axis_name`` (``make_update`` is the
    same function under its older name).

    Args:
      model: a registry model.
      optimizers: one optimizer, or ``{group: optimizer}`` (an adversarial autoencoder's
        ``autoencoder`` and ``discriminator``).
      objective: the term weights (``aejax.models.objective.make_objective``); default: the
        default ``Config``'s (``default_objective()``).
      nonfinite: ``"stop"`` applies every update and lets the loop stop on a NaN/Inf;
        ``"skip"`` leaves params, optimizer and model state unchanged on such a step.
      binarize: draw the pixels of each batch ``~ Bernoulli(x)`` (dynamic binarization).
      corruption: corrupt each batch's ``x`` anew (after any binarization) on a key
        stream of its own; the model sees the corrupted batch and its reconstruction
        term targets the clean one (``batch["target"]``, unless the batch brings its own).
        Evaluation stays clean.
      augment: transform each batch's images anew (``aejax.data.augment``) on a key stream of
        its own, before binarization and corruption: the target is the augmented image.
      axis_name: inside ``pmap``: average gradients and model state over this axis and
        sum the metrics (the jit path over a mesh needs neither: it sees the global batch).

    Returns:
      A pure function. ``batch``: ``{"x": [B, *input_shape], ...}`` (or the bare array);
      ``key`` a typed PRNG key into which the step number is folded. ``metrics`` are sums
      over the batch: ``loss`` (the weighted objective), each unweighted term the model
      reports (``reconstruction``, ``kl``, ...), each batch statistic times ``count``,
      a discriminator's ``discriminator_loss``, ``count`` and ``nonfinite`` (1 if this
      step's loss or gradients were NaN/Inf).
    """
    optimizers = as_optimizers(optimizers)
    objective = objective or default_objective()
    phases = model.phases

    def psum(v):
        return jax.lax.psum(v, axis_name) if axis_name else v

    def phase(i, group, method, state, batch, key, count, params, opt_state, model_state):
        """One group's update: ``(params, opt_state, model_state, finite, metrics)``."""
        weight = batch.get("weight")
        phase_key = key if len(phases) == 1 else jax.random.fold_in(key, i)
        rngs = dict(zip(RNG_STREAMS, jax.random.split(phase_key, len(RNG_STREAMS)), strict=True))

        def loss_fn(sub):
            variables = {"params": {**params, **sub}, **model_state}
            (_, aux), new_state = apply_model(
                model, variables, batch, train=True, rngs=rngs, method=method
            )
            per_example, _ = objective(aux["terms"], state.step)
            return _weighted(per_example, weight) / count, (per_example, aux, new_state)

        sub = select_group(params, group, model)
        (_, (per_example, aux, new_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(sub)
        if axis_name:
            # Each device holds its own copy of the parameters and its loss is its share
            # of the global mean (local sum / global count), so the gradient of the
            # global mean is the sum of the local ones (see pmap_compat).
            grads = jax.lax.psum(grads, axis_name)
            new_state = jax.lax.pmean(new_state, axis_name)
        updates, new_opt = optimizers[group].update(grads, opt_state[group], sub)
        new_sub = optax.apply_updates(sub, updates)
        loss_sum = psum(_weighted(per_example, weight))
        finite = losses.step_is_finite(loss_sum[None], grads)
        if nonfinite == "skip":
            new_sub, new_opt, new_state = jax.tree.map(
                lambda new, old: jnp.where(finite, new, old),
                (new_sub, new_opt, new_state),
                (sub, opt_state[group], {k: model_state[k] for k in new_state}),
            )
        prefix = "" if group == "autoencoder" else f"{group}_"
        out = {f"{prefix}loss": loss_sum}
        for name, value in aux["terms"].items():
            out[name] = psum(_weighted(value, weight))
        for name, value in aux.get("stats", {}).items():
            # Batch statistics enter as value x count, so the epoch sum / count is their mean.
            out[name] = value * count
        out = {k: jnp.where(finite, v, 0.0) for k, v in out.items()}
        opt_state = {**opt_state, group: new_opt}
        return {**params, **new_sub}, opt_state, {**model_state, **new_state}, finite, out

    def update(state: TrainState, batch: Batch, key: jax.Array):
        batch = to_unit_batch(as_batch(batch))  # uint8 pixels travel; floats from here
        key = jax.random.fold_in(key, state.step)
        if axis_name and jax.lax.axis_size(axis_name) > 1:
            # Under pmap each device draws the noise of its own rows: without this every
            # device would repeat the same draws. (The jit path draws once for the global
            # batch, so stochastic models match it in distribution, not in bits.)
            key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
        if augment:
            batch["x"] = augment(jax.random.fold_in(key, _AUGMENT), batch["x"])
        if binarize:
            bits = jax.random.bernoulli(jax.random.fold_in(key, _BINARIZE), batch["x"])
            batch["x"] = bits.astype(batch["x"].dtype)
        if corruption:
            batch.setdefault("target", batch["x"])
            batch["x"] = corruption(jax.random.fold_in(key, _CORRUPT), batch["x"])
        weight = batch.get("weight")
        count = psum(
            jnp.asarray(batch["x"].shape[0], jnp.float32) if weight is None else weight.sum()
        )
        params, opt_state, model_state = state.params, dict(state.opt_state), state.model_state
        finite_all = jnp.asarray(True)
        step_metrics: Metrics = {}
        for i, (group, method) in enumerate(phases):
            params, opt_state, model_state, finite, out = phase(
                i, group, method, state, batch, key, count, params, opt_state, model_state
            )
            finite_all = finite_all & finite
            step_metrics.update(out)
        new_state = state.replace(
            step=state.step + 1, params=params, opt_state=opt_state, model_state=model_state
        )
        step_metrics["count"] = count
        step_metrics["nonfinite"] = 1.0 - finite_all.astype(jnp.float32)
        return new_state, step_metrics

    return update


# The name the ``pmap`` compatibility path and older code use: the same function.
make_update = make_train_step


def metric_names(model: nn.Module, variables, batch_spec: Batch) -> tuple[str, ...]:
    """The keys of the metrics ``make_train_step``'s step returns, from an abstract forward
    pass of each phase (cheaper than tracing the step, which then traces once).
    """
    names = []
    rngs = {s: jax.random.key(0) for s in RNG_STREAMS}
    for group, method in model.phases:
        (_, aux), _ = jax.eval_shape(
            lambda v, b, m=method: apply_model(
                model, v, to_unit_batch(b), train=True, rngs=rngs, method=m
            ),
            variables,
            batch_spec,
        )
        names.append("loss" if group == "autoencoder" else f"{group}_loss")
        names += list(aux["terms"]) + list(aux.get("stats", {}))
    return (*dict.fromkeys(names), "count", "nonfinite")


def make_eval_step(
    model: nn.Module, objective: Objective | None = None
) -> Callable[[Any, Batch], Metrics]:
    """Builds ``eval_step(variables, batch) -> metrics``: sums over the batch's real rows.

    Args:
      model: the registry model.
      objective: the term weights; evaluated at ``objective.final_step``, so the loss
        means the same in every epoch (a warm-up does not make early epochs look better),
        and without the training-only terms (``Objective.for_evaluation``: weight decay).

    Returns:
      A pure function; ``variables`` as ``TrainState.variables()`` (or a bare params
      tree), ``batch = {"x": [B, ...], "weight": [B]}`` with weight 0 on padding rows (so
      the last batch keeps the static shape), and an optional ``target`` scored instead
      of ``x`` (a denoiser's clean images; the train step's corruption is not applied
      here), and an optional ``mask`` of the entries scored (ratings: the held-out ones;
      ``sse`` then sums over them, and ``observed`` counts them). Metrics: ``loss``,
      ``sse`` (summed squared error in data space), each term, ``count``.
    """
    objective = (objective or default_objective()).for_evaluation()

    def eval_step(variables, batch):
        batch = to_unit_batch(as_batch(batch))
        if "params" not in variables:
            variables = {"params": variables}
        (recon, aux), _ = apply_model(model, variables, batch, train=False)
        w = batch.get("weight")
        if w is None:
            w = jnp.ones((batch["x"].shape[0],), jnp.float32)
        per_example, _ = objective(aux["terms"], objective.final_step)
        target = batch.get("target", batch["x"])
        if "mask" in batch:  # only the scored entries (ratings: the held-out ones)
            mask = jnp.broadcast_to(batch["mask"], recon.shape)
            sse = jnp.sum(jnp.square(recon - target) * mask, axis=tuple(range(1, recon.ndim)))
            observed = {"observed": jnp.sum(mask.reshape(mask.shape[0], -1).sum(axis=1) * w)}
        else:
            sse, observed = metrics.squared_error_per_example(recon, target), {}
        sums = {
            "loss": jnp.sum(per_example * w),
            "sse": jnp.sum(sse * w),
            "count": jnp.sum(w),
            **observed,
        }
        for name, value in aux["terms"].items():
            sums[name] = jnp.sum(value * w)
        for name, value in aux.get("stats", {}).items():
            sums[name] = value * sums["count"]  # a batch statistic, weighted by its rows
        return sums

    return eval_step


def accumulate(total: Metrics | None, new: Metrics) -> Metrics:
    """Adds step metrics into running sums (inside jit: no host sync)."""
    return new if total is None else jax.tree.map(jnp.add, total, new)
