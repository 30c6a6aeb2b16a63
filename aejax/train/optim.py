"""Optimizer factory: optax chains built from the config."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from aejax.config import Config


def make_schedule(config: Config, total_steps: int) -> optax.Schedule:
    """Linear warmup then cosine decay to 0 over ``total_steps``, or a constant rate.

    The warmup is ``warmup_steps`` when set, else ``round(warmup_fraction * total_steps)``
    steps (5% by default, so a 5-epoch run warms up as briefly, relative to its length,
    as a 500-epoch one); it is capped at ``total_steps - 1``. A continued run (more
    ``--epochs`` on a finished one) stretches the schedule to the new total.
    """
    if config.schedule == "constant":
        return optax.constant_schedule(config.lr)
    warmup = warmup_steps(config, total_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.lr,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=0.0,
    )


def warmup_steps(config: Config, total_steps: int) -> int:
    """The number of linear-warmup steps of a cosine schedule over ``total_steps``."""
    if config.warmup_steps is not None:
        steps = config.warmup_steps
    else:
        steps = round(config.warmup_fraction * total_steps)
    return min(steps, max(total_steps - 1, 0))


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """``optax.clip_by_global_norm`` as one multiply by ``min(1, max_norm / norm)``.

    The same transformation (no state; updates scaled to global norm ``max_norm`` when
    it is larger), in the form optax's own source marks as the faster one. optax selects
    between ``g`` and ``g / norm * max_norm`` for every leaf, and XLA's CPU backend, which
    does not duplicate a division into its two consumers (Adam's two moments), writes the
    clipped gradients to memory and reads them back: a third pass over every gradient.
    A scalar multiply is fused into both moment updates instead; the dense AE's training
    step is ~1.05-1.15x faster on 2 CPU cores (``benchmarks/``, docs/performance.md).
    Values equal optax's within float32 rounding of the scale (tested); a zero norm leaves
    the updates unchanged, a NaN/Inf norm gives NaN/zero updates, which the train step's
    finiteness check reports.
    """

    def update_fn(updates, state, params=None):
        del params
        norm = optax.global_norm(updates)
        scale = jnp.minimum(1.0, max_norm / norm)
        return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


# Settings a parameter group's optimizer may declare (``ModelSpec.groups``) beyond the
# Config fields: Adam's moment decay rates (optax's defaults 0.9, 0.999 otherwise).
ADAM_BETAS = ("b1", "b2")


def make_optimizer(
    config: Config, total_steps: int, *, b1: float | None = None, b2: float | None = None
) -> optax.GradientTransformation:
    """Global-norm clipping (unless ``grad_clip == 0``) followed by Adam or AdamW.

    Args:
      config: the run config (``optimizer``, ``lr``, ``schedule``, ``warmup_fraction``,
        ``warmup_steps``, ``weight_decay``, ``grad_clip``).
      total_steps: optimizer steps in the whole run, for the decay schedule.
      b1, b2: Adam's decay rates of the first and second moments; None = optax's
        (0.9, 0.999). A parameter group sets them (FactorVAE's discriminator: 0.5, 0.9).

    Returns:
      The optax transformation.
    """
    schedule = make_schedule(config, total_steps)
    betas = {k: v for k, v in (("b1", b1), ("b2", b2)) if v is not None}
    if config.optimizer == "adamw":
        opt = optax.adamw(schedule, weight_decay=config.weight_decay, **betas)
    else:
        opt = optax.adam(schedule, **betas)
    if config.grad_clip > 0:
        return optax.chain(clip_by_global_norm(config.grad_clip), opt)
    return opt


def make_optimizers(config: Config, total_steps: int, model) -> dict:
    """One optimizer per parameter group the model trains (``model.phases``).

    The autoencoder's is ``make_optimizer(config, total_steps)``; another group's is the
    same with the overrides its registry entry declares (``ModelSpec.groups``): Config
    fields, e.g. the adversarial autoencoder's discriminator with ``lr = disc_lr`` when
    that is set, and Adam's ``b1``/``b2`` (``ADAM_BETAS``), e.g. FactorVAE's discriminator
    ``{"lr": 1e-4, "schedule": "constant", "b1": 0.5, "b2": 0.9, ...}``. A group the entry
    does not declare gets the autoencoder's settings.
    """
    from aejax.models.registry import get_spec

    spec = get_spec(config.model)
    out = {}
    for g in dict.fromkeys(g for g, _ in model.phases):
        declared = spec.group(g) if g != "autoencoder" else None
        changes = dict(declared.optimizer(config.options)) if declared else {}
        betas = {k: changes.pop(k) for k in ADAM_BETAS if k in changes}
        group_config = config.replace(**changes) if changes else config
        out[g] = make_optimizer(group_config, total_steps, **betas)
    return out
