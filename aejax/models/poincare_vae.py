"""The Poincaré VAE, P-VAE (Mathieu, Le Lan, Maddison, Tomioka & Teh 2019): a hyperbolic code.

The code lives in the Poincaré ball ``B_c^d = {z : c |z|^2 < 1}`` of curvature ``-c``
(``d = latent_dim``, ``c = curvature``), metric ``lambda_z^2 I`` with the conformal factor
``lambda_z = 2 / (1 - c |z|^2)``; densities are with respect to its Riemannian volume
``lambda_z^d dz``. The ball's operations (the paper's appendix; geoopt's conventions):

    x (+) y = ((1 + 2c <x,y> + c|y|^2) x + (1 - c|x|^2) y) / (1 + 2c <x,y> + c^2 |x|^2 |y|^2),
    d(x, y) = (2 / sqrt(c)) artanh(sqrt(c) |(-x) (+) y|),
    exp_0(u) = tanh(sqrt(c) |u|) u / (sqrt(c) |u|),   log_0 its inverse,
    exp_x(u) = x (+) exp_0(lambda_x u / 2),  log_x(y) = (2 / lambda_x) log_0((-x) (+) y).

The encoder gives ``d`` features mapped into the ball by ``exp_0`` (the posterior's centre
``mu``) and log-variances: ``d`` of them for the wrapped normal, one (isotropic) for the
Riemannian normal. Prior and posterior are either (``prior_distribution``,
``posterior_distribution``), the prior centred at 0 with scale 1 as in pythae:

- ``wrapped_normal(mu, sigma)``: ``v ~ N(0, diag(sigma^2))`` in the tangent space at 0,
  parallel-transported to ``mu`` and mapped by ``exp_mu``, which is ``z = mu (+)
  exp_0(v / 2)``; then ``d(mu, z) = |v| = r`` and ``log q(z) = log N(v; 0, sigma^2) - (d-1)
  log(sinh(sqrt(c) r) / (sqrt(c) r))`` (the log-determinant of ``exp_mu``).
- ``riemannian_normal(mu, sigma)``: ``q(z) = exp(-d(mu, z)^2 / (2 sigma^2)) / Z(sigma)``,
  ``Z = |S^{d-1}| int_0^inf exp(-r^2 / (2 sigma^2)) (sinh(sqrt(c) r) / sqrt(c))^(d-1) dr``.
  ``Z`` is a Gauss-Legendre quadrature of ``_NODES`` (64) nodes on the window ``mode +-
  10 sigma`` of the radial density (strongly log-concave, so the mass left outside is below
  ``e^-50``), not the alternating closed-form series of pythae/pvae, which cancels
  catastrophically in float32. A draw is ``z = exp_mu`` of a uniform direction and a radius
  from the radial density by inverse CDF: ``_BISECTIONS`` (30) bisection steps on the
  quadrature CDF, a fixed amount of work per example (pvae's adaptive rejection sampler
  loops until acceptance; this needs no proposals and cannot fail). The radius's gradient
  in ``sigma`` is the implicit reparameterization ``dr/dsigma = -(dF/dsigma) / p(r)`` of
  the same CDF (pvae's is the same formula on its closed form).

The KL term is the one-draw Monte Carlo ``log q(z|x) - log p(z)`` at the training draw, as
pythae (an unbiased estimate that can be negative; it keeps the name ``kl`` and takes
``beta`` and the warm-up; no capacity, as vamp's). Evaluation decodes ``mu`` and draws the
KL's ``z`` from a fixed key (the validation loss is then the same estimate every epoch).

The decoder is pythae's MLP on the ball's coordinates, or with ``gyroplane=true`` pvae's
``GeodesicLayer`` first (Ganea et al. 2018): unit ``k`` is the signed distance
``asinh(2 sqrt(c) <w_k, (-p_k) (+) z> / ((1 - c |(-p_k) (+) z|^2) |w_k|)) / sqrt(c)`` of
``z`` to the gyroplane through ``p_k = exp_0(b_k w_k)`` with normal ``w_k``; then the
activation and the rest of the MLP.

Precision. Points are projected to ``|z| <= (1 - 4e-3) / sqrt(c)`` (geoopt's float32
margin, as pvae), which caps distances from the origin at ``log((2 - 4e-3) / 4e-3) /
sqrt(c) = 6.2 / sqrt(c)``; the stat ``at_cap`` is the fraction of the batch's draws that
reached it. Prior draws go beyond it when ``d`` is large for ``c``: the wrapped normal's
radius is ``chi_d`` (mean ``~sqrt(d)``), the Riemannian normal's mode is at least ``(d-1)
sqrt(c)`` (``d = 8, c = 1``: all of its draws are projected; lower ``c``). ``log q`` at a
draw is computed from its tangent vector (or radius), ``log p`` from the point.

Likelihood bounds. ``aejax.bounds`` draws ``z = mean + std * eps`` from a diagonal
Gaussian ``q(z|x)``, so, as svae, the model declares no ``posterior`` capability: no test
ELBO, IW bound or active units. The densities it would need are here:
``PoincareCode.log_prior(z)`` (also the model's ``log_prior``), ``log_posterior(h, z)`` and
``draw(key, mu, scale) -> (z, log q)``. Not implemented: pvae's learnable prior scale and
its ``Mob`` (gyrovector) encoder and decoder layers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aejax.fields import field, number, one_of
from aejax.models import losses
from aejax.models._common import get_activation
from aejax.models.autoencoder import Autoencoder
from aejax.models.compose import dense_parts, out_shape
from aejax.models.objective import ramp
from aejax.models.options import Dense, KLWeight
from aejax.models.parts import MLPDecoder
from aejax.models.spec import Common, DataInfo, ModelSpec

BALL_EPS = 4e-3  # float32 margin inside the ball's boundary (geoopt, pvae)
_NODES = 64  # Gauss-Legendre nodes of the radial integrals
_WINDOW = 10.0  # the radial window: mode +- _WINDOW sigma
_MODE_STEPS = 8  # Newton steps to the radial mode
_BISECTIONS = 30  # inverse-CDF steps of a Riemannian normal radius (window / 2^30)
_EVAL_SEED = 0x9C4E  # the fixed key of the KL's draw in evaluation
_LOG_2PI = math.log(2.0 * math.pi)
DISTRIBUTIONS = ("wrapped_normal", "riemannian_normal")


# --- the ball ------------------------------------------------------------------------------
def _sq(x: jax.Array) -> jax.Array:
    return jnp.sum(x * x, axis=-1, keepdims=True)


def _norm(x: jax.Array) -> jax.Array:
    """``|x|`` over the last axis, kept; at least 1e-15 (finite gradients at 0)."""
    return jnp.sqrt(jnp.maximum(_sq(x), 1e-30))


def project(x: jax.Array, c: float) -> jax.Array:
    """``x: [..., d]`` pulled inside ``|x| <= (1 - BALL_EPS) / sqrt(c)``."""
    cap = (1.0 - BALL_EPS) / math.sqrt(c)
    n = _norm(x)
    return jnp.where(n > cap, x * (cap / n), x)


def mobius_add(x: jax.Array, y: jax.Array, c: float) -> jax.Array:
    """Möbius addition ``x (+) y`` of points ``[..., d]`` of the ball (broadcast)."""
    xy, x2, y2 = jnp.sum(x * y, -1, keepdims=True), _sq(x), _sq(y)
    num = (1.0 + 2.0 * c * xy + c * y2) * x + (1.0 - c * x2) * y
    return num / jnp.maximum(1.0 + 2.0 * c * xy + c * c * x2 * y2, 1e-15)


def conformal_factor(x: jax.Array, c: float) -> jax.Array:
    """``lambda_x = 2 / (1 - c |x|^2)``: ``[..., d]`` -> ``[..., 1]``."""
    return 2.0 / jnp.maximum(1.0 - c * _sq(x), 1e-15)


def _tanh_ratio(t: jax.Array) -> jax.Array:
    """``tanh(t) / t`` for ``t >= 0`` (1 at 0: below 1e-4 the ratio is 1 to float32)."""
    t = jnp.maximum(t, 1e-4)
    return jnp.tanh(t) / t


def _artanh(t: jax.Array) -> jax.Array:
    return jnp.arctanh(jnp.minimum(t, 1.0 - 1e-7))


def _artanh_ratio(t: jax.Array) -> jax.Array:
    """``artanh(t) / t`` for ``0 <= t < 1`` (1 at 0, as ``_tanh_ratio``)."""
    t = jnp.maximum(t, 1e-4)
    return _artanh(t) / t


def _log_sinh(t: jax.Array) -> jax.Array:
    """``log(sinh(t))`` for ``t >= 0``, without overflow (``-inf`` at 0)."""
    return t + jnp.log(-jnp.expm1(-2.0 * t)) - math.log(2.0)


def log_sinh_ratio(t: jax.Array) -> jax.Array:
    """``log(sinh(t) / t)`` for ``t >= 0``: its series below 0.1 (value and gradient exact
    to float32 there, where the closed form's quotient cancels), else the closed form."""
    small = t < 0.1
    ts = jnp.where(small, 1.0, t)
    t2 = jnp.square(t)
    series = t2 * (1.0 / 6.0 - t2 * (1.0 / 180.0 - t2 / 2835.0))
    return jnp.where(small, series, _log_sinh(ts) - jnp.log(ts))


def exp0(u: jax.Array, c: float) -> jax.Array:
    """``exp_0``: tangent vectors ``[..., d]`` at the origin -> points of the ball."""
    return project(u * _tanh_ratio(math.sqrt(c) * _norm(u)), c)


def log0(y: jax.Array, c: float) -> jax.Array:
    """``log_0``: points ``[..., d]`` -> tangent vectors at the origin (``exp_0``'s inverse)."""
    return y * _artanh_ratio(math.sqrt(c) * _norm(y))


def expmap(x: jax.Array, u: jax.Array, c: float) -> jax.Array:
    """``exp_x(u)``: a tangent vector ``u`` at ``x`` (both ``[..., d]``) -> a point."""
    return project(mobius_add(x, exp0(0.5 * conformal_factor(x, c) * u, c), c), c)


def logmap(x: jax.Array, y: jax.Array, c: float) -> jax.Array:
    """``log_x(y)``: the tangent vector at ``x`` whose ``exp_x`` is ``y`` (``[..., d]``)."""
    return 2.0 / conformal_factor(x, c) * log0(mobius_add(-x, y, c), c)


def distance(x: jax.Array, y: jax.Array, c: float) -> jax.Array:
    """The geodesic distance ``d(x, y)``: ``[..., d]`` each -> ``[...]``."""
    w = mobius_add(-x, y, c)
    return 2.0 / math.sqrt(c) * _artanh(math.sqrt(c) * _norm(w))[..., 0]


# --- the wrapped normal -------------------------------------------------------------------
def _wrapped_log_prob_at(v: jax.Array, scale: jax.Array, c: float) -> jax.Array:
    """``log q`` of the point whose tangent vector (at 0, before transport) is ``v: [..., d]``."""
    d = v.shape[-1]
    r = _norm(v)[..., 0]
    scale = jnp.broadcast_to(scale, v.shape)
    gauss = -0.5 * jnp.sum(jnp.square(v / scale) + 2.0 * jnp.log(scale) + _LOG_2PI, axis=-1)
    return gauss - (d - 1) * log_sinh_ratio(math.sqrt(c) * r)


def wrapped_normal_draw(key, mu: jax.Array, scale: jax.Array, c: float):
    """One draw per row of ``wrapped_normal(mu, scale)``.

    Args:
      mu: ``[B, d]`` centres in the ball; scale: ``[B, d]`` (or broadcastable) tangent std.

    Returns:
      ``(z [B, d], log q(z) [B])``, ``log q`` from the draw's tangent vector.
    """
    v = scale * jax.random.normal(key, mu.shape, jnp.float32)
    z = project(mobius_add(mu, exp0(0.5 * v, c), c), c)
    return z, _wrapped_log_prob_at(v, scale, c)


def wrapped_normal_log_prob(z: jax.Array, mu: jax.Array, scale: jax.Array, c: float):
    """``log q(z)`` of ``wrapped_normal(mu, scale)``: ``z, mu, scale: [..., d]`` -> ``[...]``."""
    v = 2.0 * log0(mobius_add(-mu, z, c), c)
    return _wrapped_log_prob_at(v, scale, c)


# --- the Riemannian normal ----------------------------------------------------------------
@functools.cache
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of ``n``-point Gauss-Legendre quadrature on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(n)
    return ((x + 1.0) / 2.0).astype(np.float32), (w / 2.0).astype(np.float32)


def log_sphere_area(d: int) -> float:
    """``log |S^{d-1}|``, the area of the unit sphere in ``d`` dimensions (2 at ``d = 1``)."""
    return math.log(2.0) + 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d)


def _log_radial(r: jax.Array, sigma: jax.Array, c: float, d: int) -> jax.Array:
    """``log(exp(-r^2 / (2 sigma^2)) (sinh(sqrt(c) r) / sqrt(c))^(d-1))``, elementwise."""
    out = -0.5 * jnp.square(r / sigma)
    if d > 1:
        out = out + (d - 1) * (_log_sinh(math.sqrt(c) * r) - 0.5 * math.log(c))
    return out


def _radial_window(sigma: jax.Array, c: float, d: int) -> tuple[jax.Array, jax.Array]:
    """``(lo, hi)``: the radial density's mode ``+- _WINDOW sigma`` (``lo >= 0``), no gradient.

    The mode solves ``r / sigma^2 = (d-1) sqrt(c) coth(sqrt(c) r)``, whose left side less its
    right is concave and increasing: Newton's steps from the lower bound ``max((d-1) sqrt(c)
    sigma^2, sigma sqrt(d-1))`` rise monotonically to it.
    """
    s = jax.lax.stop_gradient(sigma)
    if d == 1:
        mode = jnp.zeros_like(s)
    else:
        k, sc = d - 1.0, math.sqrt(c)
        mode = jnp.maximum(k * sc * s * s, s * math.sqrt(k))
        for _ in range(_MODE_STEPS):
            t = sc * mode
            f = mode / (s * s) - k * sc / jnp.tanh(t)
            fp = 1.0 / (s * s) + k * c / jnp.square(jnp.sinh(t))
            mode = mode - f / fp
    return jnp.maximum(mode - _WINDOW * s, 0.0), mode + _WINDOW * s


def _log_integral(a, b, sigma, c: float, d: int) -> jax.Array:
    """``log int_a^b exp(_log_radial(r)) dr`` by Gauss-Legendre: ``a, b, sigma: [B]`` -> ``[B]``."""
    x, w = _gauss_legendre(_NODES)
    lead = (1,) * jnp.ndim(a)
    width = jnp.maximum(b - a, 1e-30)[..., None]
    r = a[..., None] + width * x.reshape(*lead, -1)
    terms = _log_radial(r, sigma[..., None], c, d) + np.log(w).reshape(*lead, -1)
    return jax.nn.logsumexp(terms, axis=-1) + jnp.log(width[..., 0])


def riemannian_log_normalizer(sigma: jax.Array, c: float, d: int) -> jax.Array:
    """``log Z(sigma)`` of the Riemannian normal on ``B_c^d``: ``sigma: [B]`` -> ``[B]``."""
    lo, hi = _radial_window(sigma, c, d)
    return _log_integral(lo, hi, sigma, c, d) + log_sphere_area(d)


def riemannian_radius(key, sigma: jax.Array, c: float, d: int) -> jax.Array:
    """Radii ``d(mu, z)`` of Riemannian normal draws: ``sigma: [B]`` -> ``[B]``.

    Inverse CDF by bisection on the quadrature CDF ``F`` (module docstring); the gradient
    in ``sigma`` is the implicit one, ``-(dF/dsigma) / p(r)``.
    """
    lo, hi = _radial_window(sigma, c, d)
    s = jax.lax.stop_gradient(sigma)
    log_total = _log_integral(lo, hi, s, c, d)
    log_u = jnp.log(jax.random.uniform(key, sigma.shape, jnp.float32, minval=1e-30))

    def bisect(_, bracket):
        a, b = bracket
        m = 0.5 * (a + b)
        below = _log_integral(lo, m, s, c, d) - log_total < log_u
        return jnp.where(below, m, a), jnp.where(below, b, m)

    a, b = jax.lax.fori_loop(0, _BISECTIONS, bisect, (lo, hi))
    r = 0.5 * (a + b)
    cdf = jnp.exp(_log_integral(lo, r, sigma, c, d) - _log_integral(lo, hi, sigma, c, d))
    inv_density = jnp.exp(jnp.minimum(log_total - _log_radial(r, s, c, d), 60.0))
    return r + jax.lax.stop_gradient(inv_density) * (jax.lax.stop_gradient(cdf) - cdf)


def _polar(key, mu: jax.Array, r: jax.Array, c: float) -> jax.Array:
    """``exp_mu`` of radius ``r: [B]`` in a uniform direction: ``mu: [B, d]`` -> ``[B, d]``."""
    alpha = jax.random.normal(key, mu.shape, jnp.float32)
    y = alpha / _norm(alpha) * (jnp.tanh(0.5 * math.sqrt(c) * r) / math.sqrt(c))[:, None]
    return project(mobius_add(mu, y, c), c)


def riemannian_normal_draw(key, mu: jax.Array, sigma: jax.Array, c: float):
    """One draw per row: ``mu: [B, d]``, ``sigma: [B]`` -> ``(z [B, d], log q(z) [B])``."""
    k_r, k_dir = jax.random.split(key)
    r = riemannian_radius(k_r, sigma, c, mu.shape[-1])
    log_q = -0.5 * jnp.square(r / sigma) - riemannian_log_normalizer(sigma, c, mu.shape[-1])
    return _polar(k_dir, mu, r, c), log_q


def riemannian_normal_log_prob(z: jax.Array, mu: jax.Array, sigma: jax.Array, c: float):
    """``log q(z)``: ``z, mu: [..., d]``, ``sigma: [...]`` -> ``[...]`` (all of one shape)."""
    r = distance(mu, z, c)
    return -0.5 * jnp.square(r / sigma) - riemannian_log_normalizer(sigma, c, z.shape[-1])


# --- the model ----------------------------------------------------------------------------
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
        k_r, k_dir = jax.random.split(key)
        return _polar(k_dir, zero, riemannian_radius(k_r, jnp.ones((n,)), c, self.latent_dim), c)

    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        mu, scale = self.posterior_params(h)
        has_rng = self.has_rng("sample")
        key = self.make_rng("sample") if has_rng else jax.random.key(_EVAL_SEED)
        z, log_q = self.draw(key, mu, scale)
        kl = log_q - self.log_prior(z)
        cap = (1.0 - BALL_EPS) / math.sqrt(self.curvature)
        stats = {
            "radius": distance(jnp.zeros_like(mu), mu, self.curvature).mean(),
            "at_cap": (_norm(z)[:, 0] >= cap * (1.0 - 1e-6)).mean(),
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
        denom = jnp.maximum(1.0 - c * _sq(diff)[..., 0], 1e-15) * _norm(w)[None, :, 0]
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
)
