"""The one autoencoder: an encoder, a code, a decoder and a likelihood, composed."""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.models.likelihoods import Likelihood

_LOG_2PI = math.log(2.0 * math.pi)


class Autoencoder(nn.Module):
    """Every registry model is one of these; variants differ only in their parts.

    Attributes:
      input_shape: per-example data shape, e.g. ``(28, 28, 1)`` or ``(30,)``.
      encoder: ``[B, *input_shape] -> features`` (``aejax.models.parts``).
      code: features -> ``z`` plus its objective terms (``aejax.models.codes``).
      decoder: ``z -> [B, *input_shape[:-1], C * likelihood.params_per_element]``.
      likelihood: reads the decoder's output (``aejax.models.likelihoods.Likelihood``).
      adversary: optional latent discriminator (the adversarial autoencoder); its
        parameters train as a group of their own when ``groups`` names it.
      penalty: optional regularizer of the encoder map, ``penalty(model, x, z) -> {name:
        [B]}``, called in ``__call__`` with the bound model, so it can differentiate
        ``model.encode`` with respect to ``x`` (the contractive penalty).
      groups: the parameter groups besides ``"autoencoder"``, as ``(group, method,
        submodule)``: the top-level submodule ``submodule``'s parameters train as
        ``group`` (its own optimizer: ``ModelSpec.groups``), in a phase that applies
        ``method`` (same signature as ``__call__``; its ``terms`` are that phase's loss)
        before the autoencoder's. E.g. ``(("discriminator", "discriminator_terms",
        "adversary"),)``. A model with another group (a second critic) declares it here
        and brings the method on its own module class.

    ``__call__(x, *, train=False, mask=None, target=None)`` returns ``(recon, aux)``:
    ``recon`` the reconstruction in data space and ``aux`` a dict with ``z``,
    ``decoder_output``, ``terms`` (unweighted per-example objective terms ``{name: [B]}``,
    always with ``reconstruction``, the NLL of ``target`` (default ``x``): a denoiser's
    clean images while ``x`` is corrupted), ``stats`` (scalar diagnostics of the batch)
    and the code's own outputs (``mean`` and ``logvar`` for a Gaussian code, ``codes``
    for a quantizer).
    """

    input_shape: tuple[int, ...]
    encoder: nn.Module
    code: nn.Module
    decoder: nn.Module
    likelihood: Likelihood
    adversary: Any = None
    penalty: Any = None
    groups: tuple[tuple[str, str, str], ...] = ()

    # --- the parts on their own --------------------------------------------------------
    def encode(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """``x: [B, *input_shape]`` -> deterministic codes ``z`` (``[B, K]`` or a grid)."""
        del train
        return self.code.encode(self.encoder(x))

    def decoder_output(self, z: jax.Array) -> jax.Array:
        """``z`` -> the likelihood's parameters (logits, means, or means and log-variances)."""
        return self.decoder(z)

    def decode(self, z: jax.Array) -> jax.Array:
        """``z`` -> reconstructions ``[B, *input_shape]`` in data space."""
        return self.likelihood.mean(self.decoder(z))

    def sample(self, n: int) -> jax.Array:
        """``n`` codes from the prior (``"sample"`` rng stream) decoded: ``[n, *input_shape]``."""
        prior = self.adversary if self.adversary is not None else self.code
        return self.decode(prior.sample_prior(n))

    def __call__(
        self,
        x: jax.Array,
        *,
        train: bool = False,
        mask: jax.Array | None = None,
        target: jax.Array | None = None,
    ) -> tuple[jax.Array, dict]:
        z, code = self.code(self.encoder(x), train=train)
        out = self.decoder(z)
        target = x if target is None else target
        terms = {"reconstruction": self.likelihood.nll(out, target, mask), **code["terms"]}
        stats = dict(code["stats"])
        if self.adversary is not None:
            terms["adversarial"] = self.adversary.generator_loss(z)
        if self.penalty is not None:
            terms.update(self.penalty(self, x, z))
        aux = {"z": z, "decoder_output": out, "terms": terms, "stats": stats, **code["outputs"]}
        return self.likelihood.mean(out), aux

    def discriminator_terms(
        self,
        x: jax.Array,
        *,
        train: bool = False,
        mask: jax.Array | None = None,
        target: jax.Array | None = None,
    ) -> tuple[None, dict]:
        """The adversary's phase: its loss on prior samples vs (stopped) codes of ``x``."""
        del mask, target
        z, _ = self.code(self.encoder(x), train=train)
        loss, stats = self.adversary.discriminator_loss(jax.lax.stop_gradient(z))
        return None, {"terms": {"discriminator": loss}, "stats": stats}

    # --- the posterior, where the code has one (capability: ``has_posterior``) ----------
    @property
    def has_posterior(self) -> bool:
        """Whether ``q(z|x)`` has a density and the prior is ``log_prior`` (likelihood bounds).

        True for a code with ``posterior`` (the Gaussian code) and no adversarial prior
        (``adversary`` replaces the prior by samples, which have no density). A critic in a
        group of its own (FactorVAE's) leaves the prior alone. A spec that declares
        ``posterior=True`` must build a model where this is true (``registry.build``).
        """
        code = self.code
        dense = callable(getattr(code, "posterior", None)) or self.has_posterior_draw
        return dense and self.adversary is None

    @property
    def has_posterior_draw(self) -> bool:
        """Whether ``q(z|x)`` is drawn by the code's ``posterior_draw`` (not a Gaussian in the
        code space: svae's vMF, poincare_vae's ball normals); ``aejax.bounds`` then uses it."""
        return callable(getattr(self.code, "posterior_draw", None))

    def posterior(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``x: [B, *input_shape]`` -> ``(mean, logvar)`` of ``q(z|x)``, each ``[B, K]``."""
        return self.code.posterior(self.encoder(x))

    def posterior_draw(self, x: jax.Array, keys: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Draws of ``q(z|x)`` with their densities (``has_posterior_draw``).

        Args:
          x: ``[B, *input_shape]``; keys: ``[C, B]`` PRNG keys, one per (draw, row).

        Returns:
          ``(z [C, B, K], log q(z|x) [C, B])``, ``log q`` w.r.t. the measure of ``log_prior``;
          draw ``(i, b)`` depends on ``keys[i, b]`` and row ``b`` of ``x`` only.
        """
        return self.code.posterior_draw(self.encoder(x), keys)

    def log_prior(self, z: jax.Array) -> jax.Array:
        """``log p(z)`` of codes ``z: [..., K]`` -> ``[...]``: the code's, else ``N(0, I)``'s."""
        own = getattr(self.code, "log_prior", None)
        if callable(own):
            return own(z)
        return standard_normal_log_prob(z)

    @property
    def analytic_kl(self) -> bool:
        """Whether the prior is ``N(0, I)``, so ``KL(q(z|x) || p(z))`` has a closed form.

        False when the code defines ``log_prior`` or a subclass overrides ``log_prior`` (a
        learned prior, e.g. vamp's mixture), or the posterior is a ``posterior_draw``: the
        bounds then estimate the KL by Monte Carlo.
        """
        own = callable(getattr(self.code, "log_prior", None)) or self.has_posterior_draw
        return not own and type(self).log_prior is Autoencoder.log_prior

    # --- how the engine trains it ------------------------------------------------------
    @property
    def phases(self) -> tuple[tuple[str, str], ...]:
        """``(parameter group, method)`` updates of one training step, in order."""
        return (*((g, m) for g, m, _ in self.groups), ("autoencoder", "__call__"))

    @property
    def param_groups(self) -> dict[str, str]:
        """Top-level submodule name -> its parameter group, for those not ``autoencoder``."""
        return {sub: g for g, _, sub in self.groups}


def standard_normal_log_prob(z: jax.Array) -> jax.Array:
    """``log N(z; 0, I)`` summed over the last axis: ``[..., K] -> [...]``."""
    return -0.5 * (jnp.square(z) + _LOG_2PI).sum(-1)


def group_of(top_level_name: str, model: Any) -> str:
    """The parameter group of ``model``'s top-level submodule ``top_level_name``."""
    return getattr(model, "param_groups", {}).get(top_level_name, "autoencoder")


def group_names(params: dict, model: Any) -> tuple[str, ...]:
    """The groups present in a parameter tree, ``autoencoder`` first."""
    names = {group_of(k, model) for k in params}
    return tuple(sorted(names, key=lambda g: (g != "autoencoder", g)))


def select_group(params: dict, group: str, model: Any) -> dict:
    """The top-level entries of ``params`` that belong to ``group`` of ``model``."""
    return {k: v for k, v in params.items() if group_of(k, model) == group}
