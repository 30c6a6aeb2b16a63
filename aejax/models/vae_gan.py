"""VAE-GAN (Larsen, Sønderby, Larochelle & Winther 2016, "Autoencoding beyond pixels using a
learned similarity metric"): a VAE whose reconstruction is measured in the features of a
GAN discriminator on images, not in pixels.

A discriminator ``Dis: x -> (Dis_l(x), logit)`` on data space learns to tell real images
(label 1) from reconstructions ``Dec(z), z ~ q(z|x)`` and prior samples ``Dec(z_p), z_p ~
N(0, I)`` (label 0). The autoencoder's reconstruction term is the Gaussian NLL, less its
constant, of the real image's features at the discriminator's layer ``l`` given those of
its reconstruction, ``feature_i = ||Dis_l(x_i) - Dis_l(Dec(z_i))||^2 / 2``. The paper's
three losses, one per network:

- encoder: ``kl + feature`` (``kl`` weighted by ``beta``, with a warm-up or capacity);
- decoder: ``gamma * feature + gan``; ``gan_i = softplus(-Dis(Dec(z_i))) +
  softplus(-Dis(Dec(z_p,i)))`` is the non-saturating form of the paper's ``-L_GAN`` (the
  usual practice for generators), not backpropagated to the encoder;
- discriminator, its own parameter group ``gan_discriminator`` with its own learning rate
  (``gan_disc_lr``), trained first in each step on stopped images of the same batch:
  ``gan_discriminator_i = softplus(-Dis(x_i)) + softplus(Dis(Dec(z_i))) +
  softplus(Dis(Dec(z_p,i)))``, ``L_GAN``'s binary cross-entropy over the real,
  reconstructed and prior-sampled images (``3 log 2`` when every logit is 0).

The encoder and the decoder are one parameter group; their different losses come from one
objective whose gradient is exactly the paper's for each: the decoder is run on ``[z,
stop_gradient(z), z_p]`` (one call, ``3B`` rows), ``gan`` sees only the last two (so no
encoder gradient) and the term ``feature`` is ``F(Dec(z)) + (gamma - 1) * (F(Dec(sg z)) -
sg(F(Dec(sg z))))``: its value is ``F``, its encoder gradient that of ``F`` and its decoder
gradient ``gamma`` times that of ``F``. The autoencoder's reported ``loss`` is therefore
``beta * kl + feature + gan (+ gan_pixel_weight * reconstruction)``, not a sum of the
paper's three losses (which have no common value).

Choices and differences from the paper and from pythae's ``VAEGAN``:

- The encoder and decoder are the dense networks of ``vae`` (``hidden``); the paper's are
  conv nets. The discriminator is a conv net for images (``gan_disc=auto``: stride-2 3x3
  convs ``gan_disc_conv``, then dense ``gan_disc_hidden``; no batch norm, which would make
  a sharded batch's statistics differ from one device's; a per-example layer norm in its
  place made the discriminator win outright) and an MLP on tabular rows
  (``gan_disc=dense``), where the "images" are standardized rows.
- ``Dis_l`` is layer ``gan_feature_layer`` (after its activation): 0 = the input itself
  (the pixels: ``feature`` is then half the squared error), ``k`` the ``k``-th hidden
  layer counting convs then dense layers, ``-1`` the last conv layer (an MLP: its last
  hidden layer, pythae's default). The default is 1, the first conv layer, where the paper
  takes a deep one, and the discriminator's learning rate ``gan_disc_lr`` defaults to 1e-4
  (a tenth of the default ``lr``): on mnist-lite (``hidden=256``, ``latent_dim=16``, 4-6
  epochs of 35 steps) the last conv layer with the discriminator at ``lr`` left it winning
  outright (accuracy 1.0) and the posterior collapsed (KL < 1 nat, one blur for every
  input, validation pixel MSE 0.107), where these defaults reconstruct (MSE 0.039; the
  ``vae`` 0.032). Unnormalized features are small, so ``feature`` is weak against the KL:
  ``beta`` < 1 helps (0.1: KL 29 nats, MSE 0.038 after 4 epochs).
- The pixel NLL ``reconstruction`` is always reported; its weight ``gan_pixel_weight`` is 0
  by default (the paper: features only), so it is a diagnostic unless set.
- pythae's discriminator sees real and prior-sampled images only and its decoder loss is
  ``(1 - s) * feature - s * L_GAN`` (saturating, ``s = adversarial_loss_scale``); here the
  paper's three-way ``L_GAN`` and a non-saturating decoder term, ``gamma`` playing
  ``(1 - s) / s``. pythae's equilibrium margins (skipping the discriminator's or the
  decoder's update when the other side wins by a margin) are not implemented: the engine
  has no hook for a model to skip a group's update, and a zero gradient is not a skipped
  Adam step (its moments still move the parameters).
- With ``binarize=True`` the discriminator sees binary real images against grey decoder
  means, an easy tell; the paper trained on continuous images.
- In evaluation (no ``"sample"`` stream) ``z`` is the posterior mean and the prior draws
  ``z_p`` come from a fixed key, so a validation loss is deterministic.

``posterior=True``: the code is ``vae``'s diagonal Gaussian with prior ``N(0, I)`` and the
decoder's output is read by the run's likelihood (Bernoulli for images), so ``aejax.bounds``
gives the ELBO and the importance-weighted bound of ``log p(x)`` under ``p(z) p(x|z)`` with
``p(x|z)`` that likelihood of ``Dec(z)``. They are true bounds of that model, but its
decoder was trained on feature and adversarial losses, not on that likelihood: the figures
measure how well sharp, feature-matched reconstructions score as pixel densities (usually
worse than a ``vae`` of the same size), not what the training optimized.

``VAE_GAN`` is the registry entry (``aejax.models.spec.ModelSpec``).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.errors import ConfigError
from aejax.fields import field, integer, integers, number, one_of
from aejax.models._common import get_activation
from aejax.models.autoencoder import Autoencoder
from aejax.models.codes import GaussianCode
from aejax.models.compose import dense_parts
from aejax.models.objective import kl_weights
from aejax.models.options import Dense, Variational
from aejax.models.spec import Common, DataInfo, Group, ModelSpec

# The key of the prior draws in evaluation (no "sample" stream): fixed, so the validation
# loss of an epoch does not depend on the draws.
_EVAL_SEED = 0x766167  # "vag"


def feature_reconstruction(fake: jax.Array, real: jax.Array) -> jax.Array:
    """``||real - fake||^2 / 2`` per example: ``[B, F], [B, F] -> [B]``.

    The Gaussian NLL of ``Dis_l(x)`` given ``Dis_l(x~)`` with unit variance, less its
    constant (the paper's ``L_llike^Dis_l``).
    """
    return 0.5 * jnp.sum(jnp.square(real - fake), axis=-1)


def discriminator_loss(real: jax.Array, recon: jax.Array, prior: jax.Array) -> jax.Array:
    """``L_GAN``'s cross-entropy for the discriminator: each argument logits ``[B]`` -> ``[B]``.

    ``softplus(-real) + softplus(recon) + softplus(prior)``: real images labelled 1,
    reconstructions and prior samples 0 (``3 log 2`` when every logit is 0).
    """
    return jax.nn.softplus(-real) + jax.nn.softplus(recon) + jax.nn.softplus(prior)


def generator_loss(recon: jax.Array, prior: jax.Array) -> jax.Array:
    """The decoder's non-saturating GAN term ``softplus(-recon) + softplus(-prior)``: ``[B]``."""
    return jax.nn.softplus(-recon) + jax.nn.softplus(-prior)


class PixelDiscriminator(nn.Module):
    """A critic on data space: ``x: [B, *input_shape] -> (Dis_l(x) [B, F], logits [B])``.

    Stride-2 3x3 convs (``conv_features``; images ``[B, H, W, C]`` only), then dense layers
    (``hidden``) on the flattened result, then one logit (large = "a real image").

    Attributes:
      conv_features: conv channels, one stride-2 conv each (``()`` = an MLP).
      hidden: dense widths after the convs.
      activation: the hidden layers' activation, a ``jax.nn`` name.
      feature_layer: the layer ``l`` of ``Dis_l``, after its activation: 0 = the input
        (flattened), ``k`` = the ``k``-th hidden layer (convs first), -1 = the last conv
        layer, or the last dense one when there are no convs (``layer``).
    """

    conv_features: tuple[int, ...] = (32, 64)
    hidden: tuple[int, ...] = (256,)
    activation: str = "gelu"
    feature_layer: int = -1

    @property
    def depth(self) -> int:
        """Hidden layers: ``len(conv_features) + len(hidden)``."""
        return len(self.conv_features) + len(self.hidden)

    @property
    def layer(self) -> int:
        """The layer ``l`` of ``Dis_l``: ``feature_layer``, with -1 resolved."""
        if self.feature_layer >= 0:
            return self.feature_layer
        return len(self.conv_features) or len(self.hidden)

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``x: [B, *input_shape]`` -> ``(features [B, F], logits [B])`` in float32."""
        act = get_activation(self.activation)
        layer = self.layer
        b = x.shape[0]
        h = x.astype(jnp.float32)
        features = h.reshape(b, -1) if layer == 0 else None
        for i, c in enumerate(self.conv_features):
            conv = nn.Conv(c, (3, 3), strides=(2, 2), padding="SAME", name=f"conv_{i}")
            h = act(conv(h))
            if layer == i + 1:
                features = h.reshape(b, -1)
        h = h.reshape(b, -1)
        for j, f in enumerate(self.hidden):
            h = act(nn.Dense(f, name=f"dense_{j}")(h))
            if layer == len(self.conv_features) + j + 1:
                features = h
        logits = nn.Dense(1, name=f"dense_{len(self.hidden)}")(h).reshape(b)
        return features, logits


class VAEGAN(Autoencoder):
    """The VAE with a ``PixelDiscriminator`` trained as the parameter group ``gan_discriminator``.

    ``__call__`` reports ``reconstruction`` (the pixel NLL), ``kl``, ``feature`` and
    ``gan`` (module docstring); ``gan_discriminator_terms`` is the discriminator's phase.

    Attributes:
      gan_discriminator: the ``PixelDiscriminator`` (``params["gan_discriminator"]``).
      gamma: the decoder's weight of ``feature`` against ``gan`` (the encoder's is 1).
    """

    gan_discriminator: nn.Module = None
    gamma: float = 1.0

    def prior_codes(self, n: int, k: int) -> jax.Array:
        """``n`` draws ``[n, k]`` of ``N(0, I)``: the ``"sample"`` stream, else a fixed key."""
        key = self.make_rng("sample") if self.has_rng("sample") else jax.random.key(_EVAL_SEED)
        return jax.random.normal(key, (n, k), jnp.float32)

    def __call__(self, x, *, train=False, mask=None, target=None):
        z, code = self.code(self.encoder(x), train=train)
        b = z.shape[0]
        zp = self.prior_codes(b, z.shape[-1])
        # One decoder call: z (both groups' gradients), sg(z) (the decoder's), z_p.
        out = self.decoder(jnp.concatenate([z, jax.lax.stop_gradient(z), zp]))
        images = self.likelihood.mean(out)
        real = x if target is None else target
        features, logits = self.gan_discriminator(
            jnp.concatenate([real.astype(images.dtype), images])
        )
        f_real, f_z, f_fixed, _ = jnp.split(features, 4)
        feature = feature_reconstruction(f_z, f_real)
        if self.gamma != 1.0:
            fixed = feature_reconstruction(f_fixed, f_real)  # decoder-only gradient
            feature = feature + (self.gamma - 1.0) * (fixed - jax.lax.stop_gradient(fixed))
        terms = {
            "reconstruction": self.likelihood.nll(out[:b], real, mask),
            **code["terms"],
            "feature": feature,
            "gan": generator_loss(logits[2 * b : 3 * b], logits[3 * b :]),
        }
        aux = {"z": z, "decoder_output": out[:b], "terms": terms, "stats": dict(code["stats"])}
        return images[:b], {**aux, **code["outputs"]}

    def gan_discriminator_terms(
        self,
        x: jax.Array,
        *,
        train: bool = False,
        mask: jax.Array | None = None,
        target: jax.Array | None = None,
    ) -> tuple[None, dict]:
        """The discriminator's phase: real images against (stopped) reconstructions and samples.

        Returns ``(None, {"terms": {"gan_discriminator": [B]}, "stats":
        {"gan_discriminator_accuracy": scalar}})``, the share of the ``3B`` decisions right.
        """
        del mask
        z, _ = self.code(self.encoder(x), train=train)
        b = z.shape[0]
        zp = self.prior_codes(b, z.shape[-1])
        fakes = self.likelihood.mean(self.decoder(jnp.concatenate([z, zp])))
        real = x if target is None else target
        _, logits = self.gan_discriminator(
            jnp.concatenate([real.astype(fakes.dtype), jax.lax.stop_gradient(fakes)])
        )
        l_real, l_recon, l_prior = jnp.split(logits, 3)
        loss = discriminator_loss(l_real, l_recon, l_prior)
        correct = jnp.sum(l_real > 0) + jnp.sum(l_recon < 0) + jnp.sum(l_prior < 0)
        accuracy = correct.astype(jnp.float32) / (3 * b)
        return None, {
            "terms": {"gan_discriminator": loss},
            "stats": {"gan_discriminator_accuracy": accuracy},
        }


@dataclasses.dataclass(frozen=True)
class VAEGANOptions(Variational, Dense):
    """``vae_gan``: the dense VAE, the pixel-space discriminator and the decoder's gamma."""

    GROUP: ClassVar = (
        "vae_gan",
        "vae_gan's data-space discriminator and feature reconstruction (Larsen et al. 2016)",
    )
    gan_gamma: float = field(
        1.0,
        "gamma: the decoder's weight of the feature reconstruction against its GAN term "
        "(the encoder's weight is 1)",
        number(0, finite=True),
    )
    gan_feature_layer: int = field(
        1,
        "the discriminator layer Dis_l whose features are reconstructed: 0 = the input, "
        "k = hidden layer k (convs first), -1 = the last conv layer (an MLP: its last layer)",
        integer(-1),
    )
    gan_disc: str = field(
        "auto",
        "the discriminator: conv (images), dense, or auto (conv for images, else dense)",
        one_of("auto", "conv", "dense"),
    )
    gan_disc_conv: tuple[int, ...] = field(
        (32, 64), "the conv discriminator's channels, one stride-2 3x3 conv each", integers(1)
    )
    gan_disc_hidden: tuple[int, ...] = field(
        (256,), "the discriminator's dense widths (after its convs)", integers(1)
    )
    gan_disc_lr: float = field(
        1e-4, "the discriminator's learning rate; 0 = lr", number(0, finite=True)
    )
    gan_pixel_weight: float = field(
        0.0,
        "weight of the pixel NLL reconstruction (0 = the paper: discriminator features only)",
        number(0, finite=True),
    )


def discriminator_from_options(
    options: VAEGANOptions, common: Common, data: DataInfo
) -> PixelDiscriminator:
    """The discriminator ``options`` describe for ``data``.

    Raises:
      ConfigError: a conv discriminator on data that are not ``(H, W, C)`` images, or a
        feature layer deeper than the discriminator.
    """
    image = len(data.input_shape) == 3
    kind = options.gan_disc if options.gan_disc != "auto" else ("conv" if image else "dense")
    if kind == "conv" and not image:
        raise ConfigError(
            f"gan_disc='conv' needs image data of shape (H, W, C), got per-example shape "
            f"{data.input_shape}; use gan_disc=dense"
        )
    convs = tuple(options.gan_disc_conv) if kind == "conv" else ()
    disc = PixelDiscriminator(
        convs, tuple(options.gan_disc_hidden), common.activation, options.gan_feature_layer
    )
    if options.gan_feature_layer > disc.depth:
        raise ConfigError(
            f"gan_feature_layer={options.gan_feature_layer} is deeper than the discriminator's "
            f"{disc.depth} hidden layers ({len(convs)} conv + {len(options.gan_disc_hidden)} "
            f"dense); use 0..{disc.depth} or -1 for the last"
        )
    return disc


def _build(options: VAEGANOptions, common: Common, data: DataInfo) -> VAEGAN:
    """``vae``'s dense parts around a ``GaussianCode``, and the ``PixelDiscriminator``."""
    parts = dense_parts(options, common, data, GaussianCode(common.latent_dim))
    return VAEGAN(
        data.input_shape,
        likelihood=common.likelihood,
        gan_discriminator=discriminator_from_options(options, common, data),
        gamma=options.gan_gamma,
        groups=(("gan_discriminator", "gan_discriminator_terms", "gan_discriminator"),),
        **parts,
    )


def _weights(options: VAEGANOptions, total_steps: int):
    """The pixel NLL ``gan_pixel_weight``, ``kl`` as ``vae``'s, ``feature``, ``gan`` and the
    discriminator's loss 1 (``gamma`` acts inside ``feature``: the module docstring)."""
    kl, capacity, final = kl_weights(options, total_steps)
    weights = {"reconstruction": options.gan_pixel_weight, **kl, "feature": 1.0, "gan": 1.0}
    return {**weights, "gan_discriminator": 1.0}, capacity, final


def _disc_optimizer(options: VAEGANOptions) -> dict:
    return {"lr": options.gan_disc_lr} if options.gan_disc_lr else {}


VAE_GAN = ModelSpec(
    _build,
    VAEGANOptions,
    weights=_weights,
    groups=(Group("gan_discriminator", _disc_optimizer),),
    test_config={
        "hidden": (32,),
        "latent_dim": 4,
        "gan_disc_conv": (8,),
        "gan_disc_hidden": (16,),
    },
    posterior=True,
)
