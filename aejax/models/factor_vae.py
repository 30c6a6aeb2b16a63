"""FactorVAE (Kim & Mnih 2018): a VAE plus ``gamma`` times a discriminator's estimate of the
total correlation of its codes.

A discriminator ``D: z -> logit`` learns to tell codes ``z ~ q(z)`` (label 1) from codes
whose dimensions were shuffled independently across the batch (``permute_dims``: draws
from ``prod_d q(z_d)``, label 0). At its optimum ``D(z) = q(z) / (q(z) + prod_d q(z_d))``,
so its logit ``log D / (1 - D) = log q(z) / prod_d q(z_d)``, whose mean over ``q(z)`` is the
total correlation: the encoder's term ``tc_i`` is the logit of its code (one logit, where
the paper's two-way softmax has the difference of two: the same function).

Objective: ``reconstruction + kl + tc_weight * tc`` for the autoencoder group;
``tc_discriminator_i = softplus(-D(z_i)) + softplus(D(perm(z)_i))`` (binary cross-entropy)
for the discriminator's own group, trained first in each step on stopped codes of the same
batch (as disentanglement_lib does; the paper draws a second batch). Codes ``z`` are the
reparameterized samples in both phases; permutations come from the ``"sample"`` stream.

The discriminator fits ``Autoencoder``'s ``adversary`` slot (``generator_loss``,
``discriminator_loss``, ``sample_prior``); it names its terms in ``generator_term`` and
``discriminator_term``, which ``Autoencoder`` does not read yet (today it reports them as
``adversarial`` and ``discriminator``; see ``term_weights``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.models._common import get_activation
from aejax.models.autoencoder import Autoencoder
from aejax.models.codes import GaussianCode
from aejax.models.likelihoods import Likelihood


def permute_dims(z: jax.Array, key: jax.Array) -> jax.Array:
    """Shuffles each column of ``z: [B, K]`` by its own random permutation of the rows.

    Every column keeps its values (its multiset); the joint across columns is broken, so
    the rows are draws from the product of the batch's marginals. Returns ``[B, K]``.
    """
    keys = jax.random.split(key, z.shape[1])
    perms = jax.vmap(lambda k: jax.random.permutation(k, z.shape[0]))(keys)  # [K, B]
    return jnp.take_along_axis(z, perms.T, axis=0)


def tc_from_probability(d: jax.typing.ArrayLike) -> jax.Array:
    """The density-ratio TC estimate ``log D / (1 - D)`` from probabilities ``D(z)`` in (0, 1)."""
    d = jnp.asarray(d)
    return jnp.log(d) - jnp.log1p(-d)


class TCDiscriminator(nn.Module):
    """An MLP ``z: [B, K] -> logits [B]`` (large = "a joint code, not a permuted one").

    Attributes:
      latent_dim: ``K``.
      hidden: hidden widths (the paper's: six layers of 1000).
      activation: a ``jax.nn`` name (the paper's leaky ReLU has slope 0.2; ``jax.nn``'s 0.01).
      generator_term, discriminator_term: the names of its terms in the objective.
    """

    latent_dim: int
    hidden: tuple[int, ...] = (256, 256)
    activation: str = "leaky_relu"

    generator_term: ClassVar[str] = "tc"
    discriminator_term: ClassVar[str] = "tc_discriminator"

    def setup(self):
        self.layers = [nn.Dense(f, name=f"dense_{i}") for i, f in enumerate(self.hidden)]
        self.out = nn.Dense(1, name=f"dense_{len(self.hidden)}")

    def __call__(self, z: jax.Array) -> jax.Array:
        """``z: [B, K]`` -> logits ``[B]``."""
        act = get_activation(self.activation)
        h = z.astype(jnp.float32)
        for layer in self.layers:
            h = act(layer(h))
        return self.out(h).reshape(z.shape[0])

    def permuted(self, z: jax.Array) -> jax.Array:
        """``permute_dims(z)`` with a key from the ``"sample"`` stream: ``[B, K]``."""
        return permute_dims(z, self.make_rng("sample"))

    def discriminator_loss(self, z: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Cross-entropy of codes (label 1) against their permutation (label 0).

        Args:
          z: ``[B, K]`` sampled codes, stopped by the caller.

        Returns:
          ``(loss [B], stats)``: ``loss_i = softplus(-D(z_i)) + softplus(D(perm(z)_i))``;
          ``stats["tc_discriminator_accuracy"]``, the share of the ``2B`` decisions right.
        """
        real, fake = self(z), self(self.permuted(z))
        loss = jax.nn.softplus(-real) + jax.nn.softplus(fake)
        correct = jnp.sum(real > 0) + jnp.sum(fake < 0)
        return loss, {"tc_discriminator_accuracy": correct.astype(jnp.float32) / (2 * z.shape[0])}

    def generator_loss(self, z: jax.Array) -> jax.Array:
        """The encoder's term: the TC estimate ``log D(z) / (1 - D(z))``, the logit: ``[B]``.

        Differentiated with respect to the encoder only (the discriminator is another group).
        """
        return self(z)

    def sample_prior(self, n: int) -> jax.Array:
        """The VAE's prior ``N(0, I)``: ``[n, K]`` (the discriminator imposes none)."""
        return jax.random.normal(self.make_rng("sample"), (n, self.latent_dim))


@dataclasses.dataclass(frozen=True)
class FactorVAEOptions:
    """``factor_vae``'s own options (the dense parts read ``latent_dim``, ``hidden``, ...)."""

    tc_weight: float = dataclasses.field(
        default=10.0, metadata={"help": "gamma: weight of the discriminator's TC estimate 'tc'"}
    )
    disc_hidden: tuple[int, ...] = dataclasses.field(
        default=(256, 256),
        metadata={"help": "hidden widths of the TC discriminator (the paper: 6 x 1000)"},
    )
    disc_activation: str = dataclasses.field(
        default="leaky_relu", metadata={"help": "the TC discriminator's activation"}
    )
    disc_lr: float = dataclasses.field(
        default=1e-4, metadata={"help": "the TC discriminator's Adam learning rate"}
    )
    disc_b1: float = dataclasses.field(
        default=0.5, metadata={"help": "the TC discriminator's Adam beta1"}
    )
    disc_b2: float = dataclasses.field(
        default=0.9, metadata={"help": "the TC discriminator's Adam beta2"}
    )


def term_weights(options: Any, *, legacy_names: bool = True) -> dict[str, float]:
    """The objective's weights: ``reconstruction`` and ``kl`` 1, ``tc`` gamma, the
    discriminator's loss 1 (its own phase).

    ``legacy_names`` also weighs the names today's ``Autoencoder`` gives an adversary's
    terms (``adversarial``, ``discriminator``) until it reads ``generator_term``.
    """
    gamma = float(_as_mapping(options)["tc_weight"])
    out = {"reconstruction": 1.0, "kl": 1.0, "tc": gamma, "tc_discriminator": 1.0}
    if legacy_names:
        out.update(adversarial=gamma, discriminator=1.0)
    return out


def build(
    input_shape: tuple[int, ...],
    likelihood: Likelihood,
    options: Any,
    n_train: int | None = None,
) -> Autoencoder:
    """``factor_vae``: ``vae`` (dense) with a ``TCDiscriminator`` in the adversary slot.

    Args:
      input_shape: per-example shape.
      likelihood: the decoder's.
      options: a mapping or dataclass with ``latent_dim``, ``hidden``, ``activation``,
        ``dtype`` and ``FactorVAEOptions``' fields.
      n_train: unused (the same signature as every build).
    """
    from aejax.models.registry import dense_parts  # the registry imports the model files

    del n_train
    hp = _as_mapping(options)
    get_activation(hp.get("disc_activation", "leaky_relu"))  # a ConfigError if unknown
    parts = dense_parts(input_shape, likelihood, hp, GaussianCode(int(hp["latent_dim"])))
    adversary = TCDiscriminator(
        int(hp["latent_dim"]),
        tuple(hp.get("disc_hidden", (256, 256))),
        hp.get("disc_activation", "leaky_relu"),
    )
    return Autoencoder(tuple(input_shape), likelihood=likelihood, adversary=adversary, **parts)


def _as_mapping(options: Any) -> Mapping[str, Any]:
    return options if isinstance(options, Mapping) else dataclasses.asdict(options)
