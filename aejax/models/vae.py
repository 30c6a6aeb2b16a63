"""Variational autoencoders (Kingma & Welling, 2014): dense and conv, with a Gaussian code."""

from __future__ import annotations

import jax

from aejax.models._variational import gaussian_code
from aejax.models.conv import ConvAE
from aejax.models.dense import DenseAE


class _Variational:
    """What makes an autoencoder variational: mixed into a model that has ``code_stats``."""

    @property
    def code_outputs(self) -> int:
        return 2 * self.latent_dim

    def posterior(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``x: [B, *input_shape]`` -> ``(mean, logvar)``, each ``[B, latent_dim]`` float32."""
        stats = self.code_stats(x)
        return stats[:, : self.latent_dim], stats[:, self.latent_dim :]

    def encode(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """Maps ``x: [B, *input_shape]`` to the posterior means ``[B, latent_dim]``."""
        del train
        return self.posterior(x)[0]

    def __call__(self, x: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        """Returns ``(recon [B, *input_shape], aux)``.

        ``aux`` has ``z``, ``out`` (decoder output parameters), ``mean``, ``logvar`` and
        ``penalties = {"kl": [B]}`` (already multiplied by ``beta``).
        """
        z, aux = gaussian_code(self, *self.posterior(x), train=train, beta=self.beta)
        out = self.decode_params(z)
        return self.head(out), {"z": z, "out": out, **aux}


class VAE(_Variational, DenseAE):
    """Dense VAE: ``DenseAE``'s MLPs around a Gaussian code.

    The encoder's last layer gives ``2 * latent_dim`` values: the posterior means, then the
    log-variances of ``q(z|x) = N(mean, diag(exp(logvar)))``; the prior is ``N(0, I)``.
    Training (``train=True``) draws ``z = mean + exp(logvar / 2) * eps`` (the
    reparameterization trick; ``eps`` from the ``"sample"`` rng stream, log-variances
    clamped by ``aejax.losses.clamp_logvar``); evaluation and ``encode`` use ``z = mean``,
    so codes and reconstructions are deterministic. ``aux["penalties"]["kl"]`` is
    ``beta * KL(q(z|x) || N(0, I))`` per example, which ``aejax.losses.objective`` adds to
    the reconstruction NLL: the negative ELBO at ``beta = 1``, the beta-VAE of Higgins et
    al. (2017) otherwise. ``decode`` of ``z ~ N(0, I)`` generates new samples.

    Attributes:
      beta: weight of the KL term; the others as ``DenseAE``.
    """

    beta: float = 1.0


class ConvVAE(_Variational, ConvAE):
    """Convolutional VAE: ``ConvAE``'s conv stacks around the Gaussian code of ``VAE``.

    Attributes:
      beta: weight of the KL term; the others as ``ConvAE``.
    """

    beta: float = 1.0
