"""FactorVAE (Kim & Mnih 2018): a VAE plus ``gamma`` times a discriminator's estimate of the
total correlation of its codes.

A discriminator ``D: z -> logit`` learns to tell codes ``z ~ q(z)`` (label 1) from codes
whose dimensions were shuffled independently across the batch (``permute_dims``: draws
from ``prod_d q(z_d)``, label 0). At its optimum ``D(z) = q(z) / (q(z) + prod_d q(z_d))``,
so its logit ``log D / (1 - D) = log q(z) / prod_d q(z_d)``, whose mean over ``q(z)`` is the
total correlation: the encoder's term ``tc_i`` is the logit of its code (one logit, where
the paper's two-way softmax has the difference of two: the same function).

Objective: ``reconstruction + kl + gamma * tc`` for the autoencoder group;
``tc_discriminator_i = softplus(-D(z_i)) + softplus(D(perm(z)_i))`` (binary cross-entropy)
for the discriminator's own parameter group ``tc_discriminator``, trained first in each
step on stopped codes of the same batch (as disentanglement_lib does; the paper draws a
second batch) with its own optimizer, the paper's Adam (lr 1e-4, betas 0.5, 0.9) at a
constant rate. Codes ``z`` are the reparameterized samples in both phases; permutations
come from the ``"sample"`` stream.

``FactorVAE`` is the ``Autoencoder`` with the discriminator as the submodule
``tc_discriminator`` (a group of its own, ``Autoencoder.groups``); the prior stays the
code's ``N(0, I)``, so the model has a posterior density (``posterior=True``).
``FACTOR_VAE`` is the registry entry (``aejax.models.spec.ModelSpec``).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.fields import ACTIVATIONS, field, integers, number
from aejax.models._common import critic_layers, critic_logits
from aejax.models.autoencoder import Autoencoder
from aejax.models.codes import GaussianCode
from aejax.models.compose import dense_parts
from aejax.models.options import Dense
from aejax.models.spec import Common, DataInfo, Group, ModelSpec


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
    """

    latent_dim: int
    hidden: tuple[int, ...] = (256, 256)
    activation: str = "leaky_relu"

    def setup(self):
        self.layers, self.out = critic_layers(self.hidden)

    def __call__(self, z: jax.Array) -> jax.Array:
        """``z: [B, K]`` -> logits ``[B]``."""
        return critic_logits(self.layers, self.out, self.activation, z)

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


class FactorVAE(Autoencoder):
    """The VAE with a ``TCDiscriminator`` trained as the parameter group ``tc_discriminator``.

    ``__call__`` adds the encoder's term ``tc`` (the discriminator's logit of each code,
    ``[B]``) to the VAE's; ``tc_discriminator_terms`` is the discriminator's phase.

    Attributes:
      tc_discriminator: the ``TCDiscriminator`` (its parameters: ``params["tc_discriminator"]``).
    """

    tc_discriminator: nn.Module = None

    def __call__(self, x, *, train=False, mask=None, target=None):
        recon, aux = super().__call__(x, train=train, mask=mask, target=target)
        aux["terms"]["tc"] = self.tc_discriminator.generator_loss(aux["z"])
        return recon, aux

    def tc_discriminator_terms(
        self,
        x: jax.Array,
        *,
        train: bool = False,
        mask: jax.Array | None = None,
        target: jax.Array | None = None,
    ) -> tuple[None, dict]:
        """The discriminator's phase: codes of ``x`` (stopped) against their permutation.

        Returns ``(None, {"terms": {"tc_discriminator": [B]}, "stats":
        {"tc_discriminator_accuracy": scalar}})``.
        """
        del mask, target
        z, _ = self.code(self.encoder(x), train=train)
        loss, stats = self.tc_discriminator.discriminator_loss(jax.lax.stop_gradient(z))
        return None, {"terms": {"tc_discriminator": loss}, "stats": stats}


@dataclasses.dataclass(frozen=True)
class FactorVAEOptions(Dense):
    """``factor_vae``: the dense network, the TC weight and the TC discriminator.

    The discriminator's keys are ``tc_disc_*``: adversarial_ae's ``disc_lr`` has another
    default and meaning (0 = lr), and a key two models read must mean the same in both.
    """

    GROUP: ClassVar = (
        "factor_vae",
        "factor_vae's total-correlation discriminator (Kim & Mnih 2018)",
    )
    gamma: float = field(
        10.0, "weight of the discriminator's TC estimate tc", number(0, finite=True)
    )
    tc_disc_hidden: tuple[int, ...] = field(
        (256, 256), "TC discriminator widths (the paper: 6 x 1000)", integers(1)
    )
    tc_disc_activation: str = field(
        "leaky_relu", "the TC discriminator's hidden-layer activation", ACTIVATIONS
    )
    tc_disc_lr: float = field(
        1e-4,
        "the TC discriminator's Adam learning rate (constant)",
        number(0, above=True, finite=True),
    )
    tc_disc_b1: float = field(0.5, "the TC discriminator's Adam beta1", number(0, 1))
    tc_disc_b2: float = field(0.9, "the TC discriminator's Adam beta2", number(0, 1))


def _build(options: FactorVAEOptions, common: Common, data: DataInfo) -> FactorVAE:
    """``vae``'s dense parts around a ``GaussianCode``, and the ``TCDiscriminator``."""
    parts = dense_parts(options, common, data, GaussianCode(common.latent_dim))
    disc = TCDiscriminator(
        common.latent_dim, tuple(options.tc_disc_hidden), options.tc_disc_activation
    )
    return FactorVAE(
        data.input_shape,
        likelihood=common.likelihood,
        tc_discriminator=disc,
        groups=(("tc_discriminator", "tc_discriminator_terms", "tc_discriminator"),),
        **parts,
    )


def _weights(options: FactorVAEOptions, total_steps: int):
    """``kl`` 1 (the ELBO's), ``tc`` gamma, the discriminator's loss 1 (its own phase)."""
    return {"kl": 1.0, "tc": options.gamma, "tc_discriminator": 1.0}, None, total_steps


def _disc_optimizer(options: FactorVAEOptions) -> dict:
    """The paper's discriminator optimizer: Adam(lr, b1, b2) at a constant rate, unclipped."""
    return {
        "optimizer": "adam",
        "schedule": "constant",
        "lr": options.tc_disc_lr,
        "grad_clip": 0.0,
        "b1": options.tc_disc_b1,
        "b2": options.tc_disc_b2,
    }


FACTOR_VAE = ModelSpec(
    _build,
    FactorVAEOptions,
    weights=_weights,
    groups=(Group("tc_discriminator", _disc_optimizer),),
    test_config={"hidden": (32,), "latent_dim": 4, "tc_disc_hidden": (16,)},
    posterior=True,
)
