"""The Poincaré VAE, P-VAE (Mathieu, Le Lan, Maddison, Tomioka & Teh 2019): a hyperbolic code.

The code lives in the Poincaré ball ``B_c^d`` of curvature ``-c`` (``d = latent_dim``,
``c = curvature``); the ball, its maps and the two distributions are in
``aejax.models._hyperbolic``. As pythae's ``PoincareVAE`` (the reference):

- the encoder gives ``d`` features, then log-variances: ``d`` for a wrapped normal
  posterior (a diagonal scale), one for a Riemannian normal (isotropic); the first ``d``
  are mapped into the ball by ``exp_0`` to the posterior's centre ``mu`` (pvae's wrapped
  encoder does so; pythae's model takes its encoder's output as the centre as it is);
- prior and posterior are each ``wrapped_normal`` or ``riemannian_normal``
  (``prior_distribution``, ``posterior_distribution``), the prior centred at 0, scale 1;
- the term ``kl`` is the one-draw Monte Carlo ``log q(z|x) - log p(z)`` at the training
  draw (unbiased, can be negative); it takes ``beta`` and the warm-up, not a capacity
  (``|KL - C|`` of a noisy estimate is biased; vamp's choice too);
- the decoder is an MLP on the ball's coordinates, or, with ``gyroplane=true``, pvae's
  ``GeodesicLayer`` first (its ``Geo`` decoder; Ganea et al. 2018): unit ``k`` is the
  signed distance of ``z`` to a gyroplane through ``p_k = exp_0(b_k w_k)`` with normal
  ``w_k``, ``asinh(2 sqrt(c) <w_k, (-p_k) (+) z> / ((1 - c |(-p_k) (+) z|^2) |w_k|)) /
  sqrt(c)``, then the activation and the rest of the MLP (as ``c -> 0``, an affine layer).

Differences: the Riemannian normal's normalizer is a quadrature and its radius an inverse
CDF by bisection (``_hyperbolic``), not pvae's float64 closed form and adaptive rejection
sampler; log-variances are clamped as ``GaussianCode`` clamps them (pvae clips the
Riemannian scale to [0.1, 7]). Evaluation decodes ``mu`` (the mode) and draws the KL's
``z`` from a fixed key, so the validation loss is the same estimate every epoch. Not
implemented: pvae's learnable prior scale and its gyrovector (``Mob``) layers.

Precision. Points are kept ``BALL_EPS`` inside the ball, which caps distances from the
origin at ``6.2 / sqrt(c)``; the stat ``at_cap`` is the fraction of the batch's draws there
(``radius``: the mean ``d(0, mu)``). Prior draws reach it when ``d`` is large for ``c``:
the wrapped normal's radius is ``chi_d`` (mean about ``sqrt(d)``), the Riemannian normal's
mode is above ``(d-1) sqrt(c)``. Measured at ``c = 1`` (4,000 draws): 80% of the Riemannian
prior's draws are capped at ``d = 8`` and all at ``d = 16`` (none at ``c = 0.3``), 20% of
the wrapped prior's at ``d = 32`` (0.05% at ``d = 16``). Lower ``c`` for wide codes.

Likelihood bounds (``posterior=True``). ``PoincareCode.posterior_draw(h, keys)`` gives
``aejax.bounds`` the posterior's draws and ``log q`` (``draw``, one key per draw and row),
``log_prior`` the prior's density, both with respect to the ball's volume; the bounds' KL is
by Monte Carlo. Active units are counted on the centres ``mu`` mapped to the tangent space
at 0, ``2 log_0(mu)`` (``unit_coordinates``: there the wrapped prior is ``N(0, I)``, as a
VAE's prior for the threshold 0.01).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.fields import field, number, one_of
from aejax.models import losses
from aejax.models._common import get_activation
from aejax.models._hyperbolic import (
    BALL_EPS,
    distance,
    exp0,
    log0,
    mobius_add,
    norm,
    riemannian_normal_draw,
    riemannian_normal_log_prob,
    sq,
    wrapped_normal_draw,
    wrapped_normal_log_prob,
)
from aejax.models.autoencoder import Autoencoder
from aejax.models.compose import dense_parts, out_shape
from aejax.models.objective import ramp
from aejax.models.options import Dense, KLWeight
from aejax.models.parts import MLPDecoder
from aejax.models.spec import Common, DataInfo, ModelSpec

_EVAL_SEED = 0x9C4E  # the fixed key of the KL's draw in evaluation
DISTRIBUTIONS = ("wrapped_normal", "riemannian_normal")


class PoincareCode(nn.Module):
    """``q(z|x)`` and ``p(z)`` on the Poincaré ball; the term ``kl`` by one-draw Monte Carlo.

    Features: ``d`` (mapped to ``mu`` by ``exp_0``) then the log-variances (``d`` for the
    wrapped normal, 1 for the Riemannian normal). Outputs ``mu`` (``[B, d]``) and ``scale``
    (``[B, d]`` or ``[B, 1]``); stats: ``radius`` (mean ``d(0, mu)``) and ``at_cap``.
    """

    latent_dim: int
    curvature: float = 1.0
    posterior_distribution: str = "wrapped_normal"
    prior_distribution: str = "wrapped_normal"

    @property
    def features(self) -> int:
        wrapped = self.posterior_distribution == "wrapped_normal"
        return self.latent_dim + (self.latent_dim if wrapped else 1)

    def posterior_params(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``h: [B, F]`` -> ``(mu [B, d] in the ball, scale [B, d] or [B, 1])``, float32."""
        h = h.astype(jnp.float32)
        mu = exp0(h[:, : self.latent_dim], self.curvature)
        return mu, jnp.exp(0.5 * losses.clamp_logvar(h[:, self.latent_dim :]))

    def encode(self, h: jax.Array) -> jax.Array:
        """``h`` -> the posterior's centre ``mu: [B, d]`` (its mode)."""
        return self.posterior_params(h)[0]

    def draw(self, key, mu: jax.Array, scale: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One posterior draw per row: ``(z [B, d], log q(z|x) [B])``."""
        if self.posterior_distribution == "wrapped_normal":
            return wrapped_normal_draw(key, mu, scale, self.curvature)
        return riemannian_normal_draw(key, mu, scale[:, 0], self.curvature)

    def posterior_draw(self, h: jax.Array, keys: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Draws ``(z [C, B, d], log q(z|x) [C, B])`` of ``h: [B, F]``, ``keys: [C, B]``:
        draw ``(i, b)`` is ``draw`` of row ``b`` alone with ``keys[i, b]``; ``log q`` w.r.t.
        the ball's volume, as ``log_prior``."""
        mu, scale = self.posterior_params(h)

        def one(key, m, s):
            z, log_q = self.draw(key, m[None], s[None])
            return z[0], log_q[0]

        return jax.vmap(lambda ks: jax.vmap(one)(ks, mu, scale))(keys)

    def unit_coordinates(self, z: jax.Array) -> jax.Array:
        """``2 log_0(z)``: ``[..., d]`` -> ``[..., d]``, the tangent coordinates at 0 in which
        the wrapped prior is ``N(0, I)``; active units (``aejax.bounds``) are counted on them."""
        return 2.0 * log0(z, self.curvature)

    def log_posterior(self, h: jax.Array, z: jax.Array) -> jax.Array:
        """``log q(z|x)`` of codes ``z: [..., B, d]`` under the posterior of ``h: [B, F]``."""
        mu, scale = self.posterior_params(h)
        mu = jnp.broadcast_to(mu, z.shape)
        scale = jnp.broadcast_to(scale, (*z.shape[:-1], scale.shape[-1]))
        if self.posterior_distribution == "wrapped_normal":
            return wrapped_normal_log_prob(z, mu, scale, self.curvature)
        return riemannian_normal_log_prob(z, mu, scale[..., 0], self.curvature)

    def log_prior(self, z: jax.Array) -> jax.Array:
        """``log p(z)`` of codes ``z: [..., d]`` -> ``[...]``: the prior centred at 0, scale 1."""
        zero, one = jnp.zeros_like(z), jnp.ones(z.shape[:-1], jnp.float32)
        if self.prior_distribution == "wrapped_normal":
            return wrapped_normal_log_prob(z, zero, one[..., None], self.curvature)
        return riemannian_normal_log_prob(z, zero, one, self.curvature)

    def sample_prior(self, n: int) -> jax.Array:
        """``n`` prior draws ``[n, d]`` from the ``"sample"`` rng stream."""
        key, c = self.make_rng("sample"), self.curvature
        zero = jnp.zeros((n, self.latent_dim), jnp.float32)
        if self.prior_distribution == "wrapped_normal":
            return wrapped_normal_draw(key, zero, jnp.ones_like(zero), c)[0]
        return riemannian_normal_draw(key, zero, jnp.ones((n,), jnp.float32), c)[0]

    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        mu, scale = self.posterior_params(h)
        has_rng = self.has_rng("sample")
        key = self.make_rng("sample") if has_rng else jax.random.key(_EVAL_SEED)
        z, log_q = self.draw(key, mu, scale)
        kl = log_q - self.log_prior(z)
        cap = (1.0 - BALL_EPS) / math.sqrt(self.curvature)
        stats = {
            "radius": distance(jnp.zeros_like(mu), mu, self.curvature).mean(),
            "at_cap": (norm(z)[:, 0] >= cap * (1.0 - 1e-6)).mean(),
        }
        outputs = {"mu": mu, "scale": scale}
        return (z if train else mu), {"terms": {"kl": kl}, "outputs": outputs, "stats": stats}


class Gyroplanes(nn.Module):
    """Signed distances of ``z: [B, d]`` to ``features`` learned gyroplanes -> ``[B, features]``.

    pvae's ``GeodesicLayer`` (Ganea et al. 2018; module docstring): unit ``k`` has a normal
    ``w_k`` and passes through ``p_k = exp_0(b_k w_k)``. Initialized as pvae: ``w`` Kaiming
    normal (``std 0.577 / sqrt(d)``), ``b`` uniform in ``+-4 / sqrt(d)``.
    """

    features: int
    curvature: float

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        d, c = z.shape[-1], self.curvature
        std, bound = math.sqrt(1.0 / 3.0) / math.sqrt(d), 4.0 / math.sqrt(d)
        w = self.param("normals", nn.initializers.normal(std), (self.features, d))
        b = self.param(
            "offsets",
            lambda k, s: jax.random.uniform(k, s, minval=-bound, maxval=bound),
            (self.features, 1),
        )
        p = exp0(w * b, c)  # [F, d]
        diff = mobius_add(-p[None], z.astype(jnp.float32)[:, None], c)  # [B, F, d]
        inner = jnp.sum(diff * w[None], axis=-1)
        denom = jnp.maximum(1.0 - c * sq(diff)[..., 0], 1e-15) * norm(w)[None, :, 0]
        return jnp.arcsinh(2.0 * math.sqrt(c) * inner / denom) / math.sqrt(c)


class GyroplaneDecoder(nn.Module):
    """``Gyroplanes`` of width ``hidden[0]``, the activation, then ``MLPDecoder(hidden[1:])``.

    ``z: [B, d]`` -> ``[B, *output_shape]``; with no hidden layers the gyroplanes are the
    output.
    """

    curvature: float
    hidden: tuple[int, ...]
    output_shape: tuple[int, ...]
    activation: str = "gelu"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        width = self.hidden[0] if self.hidden else math.prod(self.output_shape)
        x = Gyroplanes(width, self.curvature, name="gyroplanes")(z)
        if not self.hidden:
            return x.reshape(z.shape[0], *self.output_shape)
        x = get_activation(self.activation)(x)
        return MLPDecoder(
            self.hidden[1:], self.output_shape, self.activation, self.dtype, name="mlp"
        )(x)


@dataclasses.dataclass(frozen=True)
class PoincareOptions(KLWeight, Dense):
    """``poincare_vae``: the dense network, the KL's weight or warm-up and the geometry.

    No capacity (``KLWeight``): ``|KL - C|`` of a one-draw Monte Carlo KL is biased.
    """

    GROUP: ClassVar = ("poincare_vae", "poincare_vae's hyperbolic code (Mathieu et al. 2019)")
    curvature: float = field(
        1.0,
        "c: the code lives in the Poincaré ball of curvature -c (radius 1/sqrt(c))",
        number(0, above=True, finite=True),
    )
    prior_distribution: str = field(
        "wrapped_normal", "the prior, centred at the origin with scale 1", one_of(*DISTRIBUTIONS)
    )
    posterior_distribution: str = field(
        "wrapped_normal",
        "q(z|x): wrapped_normal (a diagonal scale) or riemannian_normal (one scale)",
        one_of(*DISTRIBUTIONS),
    )
    gyroplane: bool = field(
        False, "the decoder's first layer: distances to learned gyroplanes (pvae's Geo)"
    )


def _build(options: PoincareOptions, common: Common, data: DataInfo) -> Autoencoder:
    """A dense P-VAE: ``dense_parts`` around a ``PoincareCode``, optionally a gyroplane layer."""
    code = PoincareCode(
        common.latent_dim,
        float(options.curvature),
        options.posterior_distribution,
        options.prior_distribution,
    )
    parts = dense_parts(options, common, data, code)
    if options.gyroplane:
        parts["decoder"] = GyroplaneDecoder(
            float(options.curvature),
            tuple(options.hidden)[::-1],
            out_shape(data.input_shape, common.likelihood),
            common.activation,
            common.dtype,
        )
    return Autoencoder(tuple(data.input_shape), likelihood=common.likelihood, **parts)


def _weights(options: PoincareOptions, total_steps: int):
    """``kl`` weighs ``beta``, or rises to it over ``kl_warmup_steps``; no capacity."""
    warmup = options.kl_warmup_steps
    kl = ramp(warmup, options.beta) if warmup > 0 else options.beta
    return {"kl": kl}, None, max(total_steps, warmup)


POINCARE_VAE = ModelSpec(
    _build,
    PoincareOptions,
    weights=_weights,
    test_config={"hidden": (32,), "latent_dim": 2},
    posterior=True,
)
