"""Variational autoencoder (Kingma & Welling, 2014) with dense encoder and decoder."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax import losses
from aejax.models._common import MLP, Head


class VAE(nn.Module):
    """Gaussian encoder ``q(z|x) = N(mean, diag(exp(logvar)))``, standard normal prior.

    Training (``train=True``) draws ``z = mean + exp(logvar / 2) * eps`` with ``eps`` from the
    ``"sample"`` rng stream (the reparameterization trick); evaluation and ``encode`` use
    ``z = mean``, so codes and reconstructions are deterministic. The per-example penalty
    ``aux["penalties"]["kl"] = beta * KL(q(z|x) || N(0, I))`` is added to the reconstruction
    NLL by ``aejax.losses.objective``: with ``beta = 1`` the training loss is the negative
    ELBO (``beta != 1``: the beta-VAE of Higgins et al., 2017). Log-variances are clamped
    before ``exp`` (``aejax.losses.clamp_logvar``).

    Attributes:
      input_shape: per-example shape, e.g. ``(28, 28, 1)`` or ``(30,)``.
      latent_dim: size of the code ``z``.
      hidden: encoder widths; the decoder uses them in reverse. The encoder's last layer
        outputs ``2 * latent_dim`` values: the mean, then the log-variance.
      activation: name of a ``jax.nn`` activation.
      likelihood: ``"bernoulli"`` (logits + BCE, data in [0, 1]) or ``"gaussian"``
        (linear output + squared error, standardized data).
      dtype: compute dtype of the layers; the posterior, ``z``, outputs and losses are
        float32.
      beta: weight of the KL term.
    """

    input_shape: tuple[int, ...]
    latent_dim: int = 8
    hidden: tuple[int, ...] = (512, 256)
    activation: str = "gelu"
    likelihood: str = "bernoulli"
    dtype: str = "float32"
    beta: float = 1.0

    def setup(self):
        self.encoder = MLP(
            self.hidden + (2 * self.latent_dim,), self.activation, self.dtype, name="encoder"
        )
        out = math.prod(self.input_shape)
        self.decoder = MLP(self.hidden[::-1] + (out,), self.activation, self.dtype, name="decoder")
        self.head = Head(self.likelihood)

    def posterior(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``x: [B, *input_shape]`` -> ``(mean, logvar)``, each ``[B, latent_dim]`` float32."""
        h = self.encoder(x.reshape(x.shape[0], -1)).astype(jnp.float32)
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def encode(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """Maps ``x: [B, *input_shape]`` to the posterior means ``[B, latent_dim]``."""
        del train
        return self.posterior(x)[0]

    def decode_params(self, z: jax.Array) -> jax.Array:
        """Maps ``z: [B, latent_dim]`` to ``[B, *input_shape]`` logits or means."""
        return self.decoder(z).reshape(z.shape[0], *self.input_shape).astype(jnp.float32)

    def decode(self, z: jax.Array) -> jax.Array:
        """Maps ``z: [B, latent_dim]`` to reconstructions ``[B, *input_shape]`` in data space.

        Codes drawn from the prior, ``z ~ N(0, I)``, decode to new samples.
        """
        return self.head(self.decode_params(z))

    def __call__(self, x: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        """Returns ``(recon [B, *input_shape], aux)``.

        ``aux`` has ``z``, ``out`` (decoder output parameters), ``mean``, ``logvar`` and
        ``penalties = {"kl": [B]}`` (already multiplied by ``beta``).
        """
        mean, logvar = self.posterior(x)
        if train:
            eps = jax.random.normal(self.make_rng("sample"), mean.shape, mean.dtype)
            z = mean + jnp.exp(0.5 * losses.clamp_logvar(logvar)) * eps
        else:
            z = mean
        out = self.decode_params(z)
        kl = self.beta * losses.kl_diag_gaussian(mean, logvar)
        aux = {"z": z, "out": out, "mean": mean, "logvar": logvar, "penalties": {"kl": kl}}
        return self.head(out), aux
