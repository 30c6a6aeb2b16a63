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


def ramp(steps: int, end: float) -> Callable[[jax.Array], jax.Array]:
    """0 at step 0, rising linearly to ``end`` at ``steps``, then constant."""
    return optax.linear_schedule(0.0, end, max(int(steps), 1))


def kl_weights(options, total_steps: int):
    """The ``kl`` weight of a model with ``Variational`` options (``aejax.models.options``).

    ``beta``; with ``kl_warmup_steps`` rising from 0 to ``beta`` over them; with
    ``capacity > 0``, ``capacity_gamma * |KL - C(step)|`` where ``C`` grows linearly from
    0 to ``capacity`` over ``capacity_steps`` (0 = the whole run).

    Returns:
      ``({"kl": weight}, capacity schedule or None, final step)`` (``ModelSpec.weights``).
    """
    capacity = None
    if options.capacity > 0:
        kl = options.capacity_gamma
        capacity = ramp(options.capacity_steps or total_steps, options.capacity)
    elif options.kl_warmup_steps > 0:
        kl = ramp(options.kl_warmup_steps, options.beta)
    else:
        kl = options.beta
    final = max(total_steps, options.kl_warmup_steps, options.capacity_steps)
    return {"kl": kl}, capacity, final


def make_objective(config, total_steps: int) -> Objective:
    """The objective of a run: ``reconstruction`` at weight 1 and the model's own weights.

    The weights come from the model's registry entry (``ModelSpec.weights``) applied to
    the run's options, e.g. ``kl`` (``kl_weights``) for vae, ``commitment`` and
    ``codebook`` for vq_vae, ``adversarial`` and ``discriminator`` for adversarial_ae.

    Args:
      config: the run's ``aejax.Config``.
      total_steps: optimizer steps in the run (the end of the schedules).
    """
    from aejax.models.registry import get_spec  # late: it loads the model's module

    weights, capacity, final = get_spec(config.model).weights(config.options, total_steps)
    return Objective({"reconstruction": 1.0, **weights}, capacity, final)


def default_objective(total_steps: int = 1) -> Objective:
    """Every registry model's terms at their default weights (one objective for any model).

    What a train step uses when it is given no objective: a term weighs the same as in a
    run of its model with default options (``kl`` at beta 1, ``commitment`` 0.25, ...).
    """
    from aejax.models.registry import MODELS  # late: it loads every model's module

    weights: dict = {"reconstruction": 1.0}
    for spec in MODELS.values():
        w, _, _ = spec.weights(spec.options(), total_steps)
        for name, value in w.items():
            weights.setdefault(name, value)
    return Objective(weights, None, total_steps)
