"""The objective: weights (constants or schedules of the step) over a model's unweighted terms.

Models report per-example terms (``reconstruction``, ``kl``, ``commitment``, ...); the
objective alone decides how they combine, so a KL warm-up or a capacity schedule changes
the loss with the step inside one compiled program: the step is a traced value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from aejax.errors import ConfigError

Weight = float | Callable[[jax.Array], jax.Array]
# Terms that only regularize training: evaluation losses leave them out (for_evaluation).
TRAIN_ONLY = ("l2",)


@dataclasses.dataclass(frozen=True)
class Objective:
    """``loss_i = sum_k w_k(step) * term_k,i`` (the KL as ``|KL_i - C(step)|`` under a capacity).

    Attributes:
      weights: term name -> a constant or an ``optax`` schedule of the step. Every term a
        model reports must have a weight: an unweighted term is an error, not a silent 1.
      capacity: ``C(step)`` in nats, or None. When set, the ``kl`` term enters as
        ``|KL - C(step)|`` (Burgess et al. 2018) with the ``kl`` weight as gamma.
      final_step: the step at which the schedules have reached their end; validation and
        evaluation use the weights there, so their loss means the same in every epoch.
    """

    weights: Mapping[str, Weight]
    capacity: Callable[[jax.Array], jax.Array] | None = None
    final_step: int = 0

    def for_evaluation(self) -> Objective:
        """This objective without the training-only terms (``TRAIN_ONLY``: weight 0).

        Weight decay in the loss regularizes the fit, it does not measure it: the
        validation loss that picks the best epoch (and stops early) leaves it out.
        """
        weights = {k: 0.0 if k in TRAIN_ONLY else w for k, w in self.weights.items()}
        return dataclasses.replace(self, weights=weights)

    def weight(self, name: str, step: jax.typing.ArrayLike) -> jax.Array:
        """The weight of term ``name`` at ``step`` (a float32 scalar)."""
        if name not in self.weights:
            raise ConfigError(
                f"the objective has no weight for the model's term {name!r}; weighted terms: "
                f"{sorted(self.weights)}"
            )
        w = self.weights[name]
        return jnp.asarray(w(step) if callable(w) else w, jnp.float32)

    def __call__(
        self, terms: Mapping[str, jax.Array], step: jax.typing.ArrayLike
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The per-example loss ``[B]`` and each term's weight at ``step``."""
        total, weights = None, {}
        for name, value in terms.items():
            weights[name] = w = self.weight(name, step)
            if name == "kl" and self.capacity is not None:
                value = jnp.abs(value - self.capacity(step))
            total = w * value if total is None else total + w * value
        return total, weights


def _ramp(steps: int, end: float) -> Callable[[jax.Array], jax.Array]:
    """0 at step 0, rising linearly to ``end`` at ``steps``, then constant."""
    return optax.linear_schedule(0.0, end, max(int(steps), 1))


def make_objective(config, total_steps: int) -> Objective:
    """The objective of a run: every term any registry model reports, weighted by ``config``.

    - ``reconstruction``: 1.
    - ``kl``: ``beta``; with ``kl_warmup_steps`` rising from 0 to ``beta`` over them; with
      ``capacity > 0``, ``capacity_gamma * |KL - C(step)|`` where ``C`` grows linearly
      from 0 to ``capacity`` over ``capacity_steps`` (0 = the whole run).
    - ``commitment``: ``commitment`` (VQ-VAE's beta); ``codebook``: 1.
    - ``adversarial``: ``adversarial_weight``; ``discriminator``: 1 (its own phase).
    - ``sparsity``: ``sparsity_weight``; ``contractive``: ``contractive_weight``.
    - ``l2``: ``autorec_l2`` (AutoRec's weight decay in the loss).

    Args:
      config: the run's ``aejax.Config``.
      total_steps: optimizer steps in the run (the end of the schedules).
    """
    capacity = None
    if config.capacity > 0:
        kl = config.capacity_gamma
        capacity = _ramp(config.capacity_steps or total_steps, config.capacity)
    elif config.kl_warmup_steps > 0:
        kl = _ramp(config.kl_warmup_steps, config.beta)
    else:
        kl = config.beta
    weights = {
        "reconstruction": 1.0,
        "kl": kl,
        "commitment": config.commitment,
        "codebook": 1.0,
        "adversarial": config.adversarial_weight,
        "discriminator": 1.0,
        "sparsity": config.sparsity_weight,
        "contractive": config.contractive_weight,
        "l2": config.autorec_l2,
    }
    final = max(total_steps, config.kl_warmup_steps, config.capacity_steps)
    return Objective(weights, capacity, final)
