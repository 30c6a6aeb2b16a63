"""The Poincaré ball and two normal distributions on it (Mathieu et al. 2019), in float32.

The ball ``B_c^d = {z : c |z|^2 < 1}`` has curvature ``-c`` and the metric ``lambda_z^2 I``,
``lambda_z = 2 / (1 - c |z|^2)``; densities here are with respect to its Riemannian volume
``lambda_z^d dz``. Its operations (the paper's appendix A; geoopt's conventions):

    x (+) y = ((1 + 2c <x,y> + c|y|^2) x + (1 - c|x|^2) y) / (1 + 2c <x,y> + c^2 |x|^2 |y|^2),
    d(x, y) = (2 / sqrt(c)) artanh(sqrt(c) |(-x) (+) y|),
    exp_0(u) = tanh(sqrt(c) |u|) u / (sqrt(c) |u|),   log_0 its inverse,
    exp_x(u) = x (+) exp_0(lambda_x u / 2),  log_x(y) = (2 / lambda_x) log_0((-x) (+) y).

As ``c -> 0`` the ball's metric tends to ``4 I``: ``d(x, y) -> 2 |x - y|``.

``wrapped_normal(mu, sigma)``: ``v ~ N(0, diag(sigma^2))`` in the tangent space at 0,
parallel-transported to ``mu`` and mapped by ``exp_mu``, which is ``z = mu (+) exp_0(v /
2)`` (pythae's and pvae's ``rsample``: ``v / lambda_0`` transported, then ``exp_mu``). Then
``d(mu, z) = |v| = r`` and

    log q(z) = log N(v; 0, diag(sigma^2)) - (d - 1) log(sinh(sqrt(c) r) / (sqrt(c) r)),

the second term the log-determinant of ``exp_mu`` in geodesic polar coordinates. As ``c ->
0``, ``z -> mu + v / 2``: the Euclidean ``N(mu, diag(sigma^2) / 4)`` in coordinates.

``riemannian_normal(mu, sigma)``: ``q(z) = exp(-d(mu, z)^2 / (2 sigma^2)) / Z(sigma)``,

    Z = |S^{d-1}| int_0^inf exp(-r^2 / (2 sigma^2)) (sinh(sqrt(c) r) / sqrt(c))^(d-1) dr.

pythae and pvae sum a closed form of ``Z``, an alternating series of ``d`` terms, in
float64; in float32 it cancels (at ``d = 10, c = 1, sigma = 0.1`` its ``log Z`` is off by
0.19). Here ``Z`` is a ``_NODES``-point (64) Gauss-Legendre quadrature on the window
``mode +- 10 sigma`` of the radial density, the mode found by Newton's method: the density
is strongly log-concave (``-(log p)'' >= 1 / sigma^2``), so the mass outside is below
``e^-50`` of it. Against scipy's adaptive quadrature in float64, ``log Z``'s relative error
is below 1e-6 for ``d`` in 1..20, ``c`` in 1e-4..2 and ``sigma`` in 0.01..5 (where float64's
``sinh`` does not overflow). A draw is ``exp_mu`` of a uniform direction and a radius from
the radial density by inverse CDF: ``_BISECTIONS`` (30) bisection steps on the quadrature
CDF ``F``, the same work for every example (pvae's adaptive rejection sampler loops until
every proposal is accepted; this needs no proposals and cannot fail). The radius's gradient
in ``sigma`` is the implicit reparameterization (Figurnov et al. 2018) ``dr/dsigma =
-(dF/dsigma) / p(r)`` of that CDF (pvae's is the same formula on its closed form).

Precision. Points are projected to ``|z| <= (1 - BALL_EPS) / sqrt(c)`` (``BALL_EPS =
4e-3``, geoopt's float32 margin, as pvae), which caps distances from the origin at
``log((2 - 4e-3) / 4e-3) / sqrt(c) = 6.2 / sqrt(c)``. Where the draw has its tangent vector
or radius, ``log q`` is computed from it, not from the (possibly projected) point.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

BALL_EPS = 4e-3  # float32 margin inside the ball's boundary (geoopt, pvae)
_NODES = 64  # Gauss-Legendre nodes of the radial integrals
_WINDOW = 10.0  # the radial window: mode +- _WINDOW sigma
_MODE_STEPS = 8  # Newton steps to the radial mode
_BISECTIONS = 30  # inverse-CDF steps of a Riemannian normal radius (window / 2^30)
_LOG_2PI = math.log(2.0 * math.pi)


# --- the ball ------------------------------------------------------------------------------
def sq(x: jax.Array) -> jax.Array:
    """``|x|^2`` over the last axis, kept: ``[..., d]`` -> ``[..., 1]``."""
    return jnp.sum(x * x, axis=-1, keepdims=True)


def norm(x: jax.Array) -> jax.Array:
    """``|x|`` over the last axis, kept; at least 1e-15 (finite gradients at 0)."""
    return jnp.sqrt(jnp.maximum(sq(x), 1e-30))


def project(x: jax.Array, c: float) -> jax.Array:
    """``x: [..., d]`` pulled inside ``|x| <= (1 - BALL_EPS) / sqrt(c)``."""
    cap = (1.0 - BALL_EPS) / math.sqrt(c)
    n = norm(x)
    return jnp.where(n > cap, x * (cap / n), x)


def mobius_add(x: jax.Array, y: jax.Array, c: float) -> jax.Array:
    """Möbius addition ``x (+) y`` of points ``[..., d]`` of the ball (broadcast)."""
    xy, x2, y2 = jnp.sum(x * y, -1, keepdims=True), sq(x), sq(y)
    num = (1.0 + 2.0 * c * xy + c * y2) * x + (1.0 - c * x2) * y
    return num / jnp.maximum(1.0 + 2.0 * c * xy + c * c * x2 * y2, 1e-15)


def conformal_factor(x: jax.Array, c: float) -> jax.Array:
    """``lambda_x = 2 / (1 - c |x|^2)``: ``[..., d]`` -> ``[..., 1]``."""
    return 2.0 / jnp.maximum(1.0 - c * sq(x), 1e-15)


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
    return project(u * _tanh_ratio(math.sqrt(c) * norm(u)), c)


def log0(y: jax.Array, c: float) -> jax.Array:
    """``log_0``: points ``[..., d]`` -> tangent vectors at the origin (``exp_0``'s inverse)."""
    return y * _artanh_ratio(math.sqrt(c) * norm(y))


def expmap(x: jax.Array, u: jax.Array, c: float) -> jax.Array:
    """``exp_x(u)``: a tangent vector ``u`` at ``x`` (both ``[..., d]``) -> a point."""
    return project(mobius_add(x, exp0(0.5 * conformal_factor(x, c) * u, c), c), c)


def logmap(x: jax.Array, y: jax.Array, c: float) -> jax.Array:
    """``log_x(y)``: the tangent vector at ``x`` whose ``exp_x`` is ``y`` (``[..., d]``)."""
    return 2.0 / conformal_factor(x, c) * log0(mobius_add(-x, y, c), c)


def distance(x: jax.Array, y: jax.Array, c: float) -> jax.Array:
    """The geodesic distance ``d(x, y)``: ``[..., d]`` each -> ``[...]``."""
    w = mobius_add(-x, y, c)
    return 2.0 / math.sqrt(c) * _artanh(math.sqrt(c) * norm(w))[..., 0]


# --- the wrapped normal -------------------------------------------------------------------
def _wrapped_log_prob_at(v: jax.Array, scale: jax.Array, c: float) -> jax.Array:
    """``log q`` of the point whose tangent vector (at 0, before transport) is ``v: [..., d]``."""
    d = v.shape[-1]
    r = norm(v)[..., 0]
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
    # The barrier keeps XLA's algebraic simplifier from cycling on the Newton steps when
    # sigma is a broadcast scalar (the prior's); the window carries no gradient anyway.
    s = jax.lax.optimization_barrier(jax.lax.stop_gradient(sigma))
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
    y = alpha / norm(alpha) * (jnp.tanh(0.5 * math.sqrt(c) * r) / math.sqrt(c))[:, None]
    return project(mobius_add(mu, y, c), c)


def riemannian_normal_draw(key, mu: jax.Array, sigma: jax.Array, c: float):
    """One draw per row: ``mu: [B, d]``, ``sigma: [B]`` -> ``(z [B, d], log q(z) [B])``."""
    k_r, k_dir = jax.random.split(key)
    r = riemannian_radius(k_r, sigma, c, mu.shape[-1])
    log_q = -0.5 * jnp.square(r / sigma) - riemannian_log_normalizer(sigma, c, mu.shape[-1])
    return _polar(k_dir, mu, r, c), log_q


def riemannian_normal_log_prob(z: jax.Array, mu: jax.Array, sigma: jax.Array, c: float):
    """``log q(z)``: ``z, mu: [..., d]``, ``sigma: [...]`` (or a scalar) -> ``[...]``."""
    r = distance(mu, z, c)
    sigma = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), r.shape)
    return -0.5 * jnp.square(r / sigma) - riemannian_log_normalizer(sigma, c, z.shape[-1])
