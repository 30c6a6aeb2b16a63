"""Optimizer factory: optax chains built from the config."""

from __future__ import annotations

import optax

from aejax.config import Config


def make_schedule(config: Config, total_steps: int) -> optax.Schedule:
    """Linear warmup then cosine decay to 0 over ``total_steps``, or a constant rate."""
    if config.schedule == "constant":
        return optax.constant_schedule(config.lr)
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.lr,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=0.0,
    )


def make_optimizer(config: Config, total_steps: int) -> optax.GradientTransformation:
    """Global-norm clipping (unless ``grad_clip == 0``) followed by Adam or AdamW.

    Args:
      config: the run config (``optimizer``, ``lr``, ``schedule``, ``warmup_steps``,
        ``weight_decay``, ``grad_clip``).
      total_steps: optimizer steps in the whole run, for the decay schedule.

    Returns:
      The optax transformation.
    """
    schedule = make_schedule(config, total_steps)
    if config.optimizer == "adamw":
        opt = optax.adamw(schedule, weight_decay=config.weight_decay)
    else:
        opt = optax.adam(schedule)
    if config.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip), opt)
    return opt
