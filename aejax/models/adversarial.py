"""The adversarial autoencoder's latent discriminator and prior (Makhzani et al. 2016).

An adversarial autoencoder is a deterministic autoencoder (``IdentityCode``) whose codes
``z = E(x)`` are pushed toward a prior ``p(z)`` by a discriminator ``D: z -> logit`` that
learns to tell prior samples ("real", label 1) from codes ("fake", label 0), while the
encoder learns to fool it. The engine alternates the two in one step
(``Autoencoder.phases``): the discriminator first, on stopped codes, then the autoencoder,
whose objective adds ``adversarial_weight * generator_loss(z)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.errors import ConfigError
from aejax.fields import field, integer, integers, number, one_of
from aejax.models._common import critic_layers, critic_logits
from aejax.models.autoencoder import Autoencoder
from aejax.models.codes import IdentityCode
from aejax.models.compose import dense_parts
from aejax.models.options import Dense
from aejax.models.spec import Common, DataInfo, Group, ModelSpec

PRIORS = ("gaussian", "mixture")


class LatentDiscriminator(nn.Module):
    """An MLP critic on codes ``z: [B, latent_dim] -> logits [B]``, and the prior it guards.

    Priors (``sample_prior``):

    - ``"gaussian"``: ``N(0, I)``.
    - ``"mixture"``: Makhzani's 2-D picture, ``components`` equally weighted Gaussians of
      standard deviation ``component_std`` whose means lie evenly spaced on a circle of
      ``radius`` in the first two dimensions (component ``k`` at angle ``2 pi k / components``).
      With ``radius=4, component_std=0.5`` neighbouring means of 10 components lie ~2.5 apart
      (~5 std): the clusters are distinct. Further dimensions (``latent_dim > 2``) are
      ``N(0, 1)``, independent of the component, so the mixture lives in a plane of an
      otherwise standard Gaussian code. It needs ``latent_dim >= 2``.

    Attributes:
      latent_dim: width ``K`` of the codes.
      hidden: widths of the hidden layers (``Config.disc_hidden``).
      prior: ``"gaussian"`` or ``"mixture"``.
      components: mixture components (``Config.prior_components``).
      activation: hidden-layer activation, a ``jax.nn`` name.
      radius: the circle of the mixture's means.
      component_std: each mixture component's standard deviation (in the circle's plane).
    """

    latent_dim: int
    hidden: tuple[int, ...] = (256, 256)
    prior: str = "gaussian"
    components: int = 10
    activation: str = "gelu"
    radius: float = 4.0
    component_std: float = 0.5

    def setup(self):
        # setup, not compact: the same layers serve three methods.
        self.layers, self.out = critic_layers(self.hidden)

    def __call__(self, z: jax.Array) -> jax.Array:
        """``z: [B, K]`` -> logits ``[B]`` (large = "drawn from the prior")."""
        return critic_logits(self.layers, self.out, self.activation, z)

    def mixture_means(self) -> jax.Array:
        """The mixture's component means ``[components, K]`` (zero beyond the first two)."""
        angles = 2 * math.pi * jnp.arange(self.components, dtype=jnp.float32) / self.components
        circle = self.radius * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
        rest = jnp.zeros((self.components, self.latent_dim - 2), jnp.float32)
        return jnp.concatenate([circle, rest], axis=1)

    def sample_prior(self, n: int) -> jax.Array:
        """``n`` draws ``[n, K]`` from the prior, from the ``"sample"`` rng stream."""
        key = self.make_rng("sample")
        if self.prior == "gaussian":
            return jax.random.normal(key, (n, self.latent_dim))
        pick_key, noise_key = jax.random.split(key)
        k = jax.random.randint(pick_key, (n,), 0, self.components)
        eps = jax.random.normal(noise_key, (n, self.latent_dim))
        scale = jnp.ones((self.latent_dim,), jnp.float32).at[:2].set(self.component_std)
        return self.mixture_means()[k] + eps * scale.reshape(1, -1)

    def discriminator_loss(self, z: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Binary cross-entropy of prior samples (label 1) against codes (label 0).

        Args:
          z: ``[B, K]`` codes, already stopped by the caller (``discriminator_terms``).

        Returns:
          ``(loss, stats)``: ``loss_i = softplus(-D(p_i)) + softplus(D(z_i))`` ``[B]``, one
          fresh prior sample ``p_i`` per code; ``stats["discriminator_accuracy"]`` the share
          of the ``2B`` decisions (logit > 0 means "prior") that are right.
        """
        p = self.sample_prior(z.shape[0])
        real, fake = self(p), self(z)
        loss = jax.nn.softplus(-real) + jax.nn.softplus(fake)
        correct = jnp.sum(real > 0) + jnp.sum(fake < 0)
        accuracy = correct.astype(jnp.float32) / (2 * z.shape[0])
        return loss, {"discriminator_accuracy": accuracy}

    def generator_loss(self, z: jax.Array) -> jax.Array:
        """The encoder's non-saturating term ``-log sigmoid(D(z)) = softplus(-D(z))``: ``[B]``.

        The autoencoder phase differentiates it with respect to the encoder only (the
        discriminator's parameters are another group, constant in that phase).
        """
        return jax.nn.softplus(-self(z))


@dataclasses.dataclass(frozen=True)
class AdversarialOptions(Dense):
    """``adversarial_ae``: the dense network, the prior and the discriminator."""

    GROUP: ClassVar = (
        "adversarial_ae",
        "adversarial_ae's prior and discriminator (Makhzani et al. 2016)",
    )
    prior: str = field(
        "gaussian",
        "the latent prior: gaussian (N(0, I)) or mixture (Gaussians on a circle)",
        one_of(*PRIORS),
    )
    prior_components: int = field(10, "components of the mixture prior", integer(1))
    disc_hidden: tuple[int, ...] = field((256, 256), "latent discriminator widths", integers(1))
    disc_lr: float = field(0.0, "discriminator learning rate; 0 = lr", number(0))
    adversarial_weight: float = field(
        1.0, "weight of the encoder's adversarial (generator) term", number(0)
    )


def discriminator_from_options(options: AdversarialOptions, common: Common) -> LatentDiscriminator:
    """The ``adversarial_ae`` registry entry's discriminator, from its options.

    Raises:
      ConfigError: the mixture prior with ``latent_dim < 2``.
    """
    if options.prior == "mixture" and common.latent_dim < 2:
        raise ConfigError(
            f"prior='mixture' places its components on a circle in the first two code "
            f"dimensions and needs latent_dim >= 2, got {common.latent_dim}"
        )
    return LatentDiscriminator(
        latent_dim=common.latent_dim,
        hidden=tuple(options.disc_hidden),
        prior=options.prior,
        components=options.prior_components,
        activation=common.activation,
    )


def _build(options: AdversarialOptions, common: Common, data: DataInfo) -> Autoencoder:
    parts = dense_parts(options, common, data, IdentityCode(common.latent_dim))
    return Autoencoder(
        tuple(data.input_shape),
        likelihood=common.likelihood,
        adversary=discriminator_from_options(options, common),
        # The parameter tree keeps the name "adversary"; the group is "discriminator".
        groups=(("discriminator", "discriminator_terms", "adversary"),),
        **parts,
    )


def _weights(options: AdversarialOptions, total_steps: int):
    return {"adversarial": options.adversarial_weight, "discriminator": 1.0}, None, total_steps


def _disc_optimizer(options: AdversarialOptions) -> dict:
    return {"lr": options.disc_lr} if options.disc_lr else {}


ADVERSARIAL_AE = ModelSpec(
    _build,
    AdversarialOptions,
    weights=_weights,
    groups=(Group("discriminator", _disc_optimizer),),
    test_config={"hidden": (32,), "latent_dim": 2, "disc_hidden": (16,)},
)
