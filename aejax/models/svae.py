"""The hyperspherical VAE, S-VAE (Davidson et al. 2018): a von Mises-Fisher code on a sphere.

The code lives on the unit sphere ``S^{m-1}`` of ``m = latent_dim`` dimensions. The
posterior is ``q(z|x) = vMF(mu(x), kappa(x))``, density ``C_m(kappa) exp(kappa mu.z)``
with respect to the sphere's surface measure; the encoder gives ``m + 1`` features:
``mu`` (normalized) and ``kappa = softplus(.) + 1``. The prior is uniform on the sphere,
so the KL has the closed form (the paper's eq. 4; ``v = m/2 - 1``)

    KL(vMF(mu, kappa) || U(S^{m-1})) = kappa A_m(kappa) + log C_m(kappa) + log |S^{m-1}|,
    A_m(kappa) = I_{m/2}(kappa) / I_{m/2-1}(kappa),
    log C_m(kappa) = v log kappa - (m/2) log(2 pi) - log I_v(kappa),
    log |S^{m-1}| = log 2 + (m/2) log pi - lgamma(m/2).

Bessel functions. ``jax.scipy.special`` has the modified Bessel functions of orders 0 and
1 only (``i0e``, ``i1e``), so ``log_ive(v, x) = log(I_v(x) e^{-x})`` is computed here for
any order ``v >= 0`` in float32, differentiable in ``x``:

- where ``sqrt(v^2 + x^2) > 10``: Debye's uniform asymptotic expansion with the terms
  ``u_1..u_4`` (Abramowitz & Stegun 9.7.7), written in ``p = 1 / sqrt(v^2 + x^2)`` so it
  holds down to ``v = 0`` (there it is Hankel's large-``x`` expansion); the first omitted
  term is below ``0.23 p^5 < 3e-6`` relative;
- elsewhere the power series ``sum_k (x/2)^{2k+v} / (k! Gamma(k+v+1))``, 48 terms (all
  positive, summed by logsumexp; at ``x <= 10`` the omitted tail is below 1e-30).

Against ``scipy.special.ive`` (float64), over ``v`` in 0, 0.5, ..., 63.5 and ``x`` in
0.01..1e4, the error of ``log_ive`` is below 1.6e-6 absolute where ``|log_ive| <= 1`` and
relative above (float32 rounding of large logs); tests/test_svae.py checks the
log-normalizer. The KL is written as ``kappa (A - 1) + v log kappa - log ive_v(kappa) +
...`` so that no term of the size of ``kappa`` cancels in float32, with ``log A`` taken
term by term in Debye's range (``log_iv_ratio``): against scipy the KL's error is below
5e-5, absolute or relative, for ``m`` in 2..129 and ``kappa`` in 0.5..1e5.

Sampling (``train=True``). Wood's (1994) rejection sampler draws the component
``w = mu.z``: with ``b = (m - 1) / (2 kappa + sqrt(4 kappa^2 + (m - 1)^2))``, a proposal
``eps ~ Beta((m-1)/2, (m-1)/2)`` gives ``w = (1 - (1+b) eps) / (1 - (1-b) eps)``, accepted
when ``(m-1) log t - t + d >= log u`` (``t = 2ab / (1 - (1-b) eps)``, ``u ~ U(0, 1)``). In
JAX the shapes are fixed: each example draws ``PROPOSALS`` (32) proposals at once and
takes the first accepted one (the last if none is; Wood's acceptance rate measured 0.66 or
more for ``m`` in 2..256 and ``kappa`` in 1..1e4, so that happens with probability below
``0.34^32 ~ 1e-15``); the result is a deterministic function of the ``"sample"`` key. The
Beta proposals are ``|g|^2 / (|g|^2 + |h|^2)`` of normals ``g, h`` for ``m <= 17`` (no
while loop: the registry tests' 4-dimensional run compiled in half the time) and
``jax.random.beta`` above. The code is then
``z' = (w, sqrt(1 - w^2) v)`` with ``v`` uniform on ``S^{m-2}``, reflected onto ``mu`` by the
Householder map that sends ``e_1`` to ``mu``.

The gradient. As in the paper's reparameterization, ``z`` is a differentiable function
``h(eps, kappa, v, mu)`` of the *accepted* proposal ``eps``, held fixed: the gradient is
the paper's ``g_rep`` term only. The correction ``g_cor`` (the score-function term for
the acceptance's dependence on ``kappa``) is left out, as in the authors' PyTorch code
(github.com/nicola-decao/s-vae-pytorch: the accepted Beta draw is a plain sample, ``w``
differentiable through ``b``). That gradient in ``kappa`` is biased: measured with
200,000 draws, ``d E[mu.z] / d kappa`` by ``g_rep`` alone is 20% below the exact
``A_m'(kappa)`` at ``m = 3`` (``kappa`` 1 and 5), 8% at ``m = 10, kappa = 5``, 2% at
``m = 10, kappa = 50`` and 1% at ``m = 64, kappa = 20``. The KL's gradient is exact
(closed form), as is the gradient for ``mu`` through the Householder reflection.

Evaluation (``train=False``) decodes the mode ``mu``. The prior samples (``aejax sample``)
are uniform on the sphere. Likelihood bounds (``posterior=True``): the code's
``posterior_draw`` gives ``aejax.bounds`` vMF draws (Wood's sampler, one key per draw and
row) and their ``log q`` (``vmf_log_density``), ``log_prior`` the uniform density
``-log |S^{m-1}|``, both w.r.t. the surface measure; the bounds' KL is then the Monte Carlo
mean of ``log q - log p`` (the closed form above is the training term). Active units are
counted on the codes ``aejax.encode`` gives, the mean direction ``mu`` (unit vectors).
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from aejax.errors import ConfigError
from aejax.models.autoencoder import Autoencoder
from aejax.models.compose import dense_parts
from aejax.models.objective import kl_weights
from aejax.models.options import Dense, Variational
from aejax.models.spec import Common, DataInfo, ModelSpec

PROPOSALS = 32  # Wood's proposals per example (module docstring)
_NORMALS_UP_TO = 16  # m - 1 up to which Beta proposals come from 2 (m - 1) normals
_DEBYE_FROM = 10.0  # sqrt(v^2 + x^2) above which log_ive uses Debye's expansion
_SERIES_TERMS = 48
_LOG_2PI = math.log(2.0 * math.pi)

# Debye's u_k(t) = sum_j _U[k][j] t^j, k = 1..4 (Abramowitz & Stegun 9.3.9), over divisors.
_U = (
    ({1: 3, 3: -5}, 24),
    ({2: 81, 4: -462, 6: 385}, 1152),
    ({3: 30375, 5: -369603, 7: 765765, 9: -425425}, 414720),
    (
        {4: 4465125, 6: -94121676, 8: 349922430, 10: -446185740, 12: 185910725},
        39813120,
    ),
)


def _debye_coefficients(v: float) -> list[float]:
    """``c_j`` with ``sum_k u_k(t) / v^k = sum_j c_j p^j``, ``t = v p`` (``j >= k``: no 1/v)."""
    c = [0.0] * 13
    for k, (terms, divisor) in enumerate(_U, start=1):
        for j, a in terms.items():
            c[j] += a / divisor * v ** (j - k)
    return c


def _check_order(v: float) -> float:
    if v < 0:
        raise ValueError(f"log_ive: the order must be >= 0, got {v}")
    return float(v)


def _debye(v: float, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(s, log1p(P))`` of Debye's expansion at order ``v``: ``s = sqrt(v^2 + x^2)`` and
    ``1 + P = sum_k u_k(t) / v^k`` (``u_0 = 1``), a polynomial in ``p = 1 / s``."""
    s = jnp.sqrt(v * v + x * x)
    p = 1.0 / s
    poly = jnp.zeros_like(p)
    for c in reversed(_debye_coefficients(v)[1:]):
        poly = (poly + c) * p
    return s, poly


def _series(v: float, x: jax.Array) -> jax.Array:
    """``log ive`` by the power series; ``x`` is clipped to 10 (the series' range here)."""
    xs = jnp.minimum(x, _DEBYE_FROM)
    k = jnp.arange(_SERIES_TERMS, dtype=jnp.float32).reshape((1,) * xs.ndim + (-1,))
    log_half = jnp.log(xs / 2.0)[..., None]
    terms = (2.0 * k + v) * log_half - gammaln(k + 1.0) - gammaln(k + v + 1.0)
    return jax.nn.logsumexp(terms, axis=-1) - xs


def _log_x_over(c: float, s: jax.Array, x: jax.Array) -> jax.Array:
    """``log(x / (c + s))`` with ``s = sqrt(c^2 + x^2)``, without rounding near 1 (large x)."""
    return -jnp.log1p((c + c * c / (s + x)) / x)


def log_ive(v: float, x: jax.Array) -> jax.Array:
    """``log(I_v(x) exp(-x))``, the exponentially scaled modified Bessel function, in logs.

    Args:
      v: the order, a Python float ``>= 0`` (static).
      x: ``[...]`` arguments ``> 0`` (float32).

    Returns:
      ``[...]`` float32; error below 1.6e-6, absolute or relative (module docstring),
      differentiable in ``x``.
    """
    v = _check_order(v)
    x = jnp.maximum(jnp.asarray(x, jnp.float32), 1e-30)
    s, poly = _debye(v, x)
    # s - x + v log(x / (v + s)) - log(2 pi s) / 2 + log(sum_k u_k / v^k)
    debye = v * v / (s + x) + v * _log_x_over(v, s, x) - 0.5 * (_LOG_2PI + jnp.log(s))
    debye = debye + jnp.log1p(poly)
    return jnp.where(s > _DEBYE_FROM, debye, _series(v, x))


def log_iv_ratio(v: float, x: jax.Array) -> jax.Array:
    """``log(I_{v+1}(x) / I_v(x))``: ``x: [...]`` -> ``[...]`` (``<= 0``), float32.

    In Debye's range the difference is taken term by term (``s_1 - s_0 = (2v+1) / (s_1 +
    s_0)``, ...), so its absolute error stays near 1e-7 of its own size, ``~v / x``, rather
    than of ``log ive``'s: ``kappa (A - 1)`` in the KL keeps its digits at large ``kappa``.
    """
    v = _check_order(v)
    x = jnp.maximum(jnp.asarray(x, jnp.float32), 1e-30)
    s0, p0 = _debye(v, x)
    s1, p1 = _debye(v + 1.0, x)
    ds = (2.0 * v + 1.0) / (s1 + s0)  # s1 - s0
    debye = (
        ds
        + _log_x_over(v + 1.0, s1, x)
        + v * jnp.log1p((-ds - 1.0) / (v + 1.0 + s1))  # v log((v + s0) / (v + 1 + s1))
        - 0.5 * jnp.log1p(ds / s0)
        + jnp.log1p((p1 - p0) / (1.0 + p0))
    )
    series = _series(v + 1.0, x) - _series(v, x)
    return jnp.where(s0 > _DEBYE_FROM, debye, series)


def log_sphere_area(m: int) -> float:
    """``log |S^{m-1}|``, the surface area of the unit sphere in ``m`` dimensions."""
    return math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


def vmf_log_normalizer(m: int, kappa: jax.Array) -> jax.Array:
    """``log C_m(kappa)`` of the vMF density on ``S^{m-1}``: ``kappa: [...]`` -> ``[...]``."""
    v = 0.5 * m - 1.0
    return v * jnp.log(kappa) - 0.5 * m * _LOG_2PI - log_ive(v, kappa) - kappa


def vmf_log_density(z: jax.Array, mu: jax.Array, kappa: jax.Array) -> jax.Array:
    """``log vMF(z; mu, kappa)`` w.r.t. the surface measure of ``S^{m-1}``: ``z: [..., B, m]``,
    ``mu: [B, m]`` unit, ``kappa: [B]`` -> ``[..., B]``; ``kappa (mu.z - 1)`` is kept whole
    (``log C_m + kappa = v log kappa - (m/2) log 2 pi - log ive``), so no ``kappa`` cancels."""
    m = z.shape[-1]
    v = 0.5 * m - 1.0
    log_c = v * jnp.log(kappa) - 0.5 * m * _LOG_2PI - log_ive(v, kappa)
    log_c = jnp.broadcast_to(log_c, z.shape[:-1])
    cos = jnp.sum(jnp.broadcast_to(mu, z.shape) * z, axis=-1)
    return log_c + jnp.broadcast_to(kappa, cos.shape) * (cos - 1.0)


def vmf_mean_cosine(m: int, kappa: jax.Array) -> jax.Array:
    """``A_m(kappa) = I_{m/2}(kappa) / I_{m/2-1}(kappa) = E[mu.z]``: ``[...]`` -> ``[...]``."""
    return jnp.exp(log_iv_ratio(0.5 * m - 1.0, kappa))


def vmf_kl_uniform(m: int, kappa: jax.Array) -> jax.Array:
    """``KL(vMF(mu, kappa) || U(S^{m-1}))`` in nats: ``kappa: [...]`` -> ``[...]``.

    ``kappa A + log C_m + log |S|``, rearranged so the terms of size ``kappa`` cancel
    exactly (``kappa (A - 1)`` by ``expm1``; module docstring).
    """
    v = 0.5 * m - 1.0
    return (
        kappa * jnp.expm1(log_iv_ratio(v, kappa))
        + v * jnp.log(kappa)
        - 0.5 * m * _LOG_2PI
        - log_ive(v, kappa)
        + log_sphere_area(m)
    )


def wood_w(key: jax.Array, m: int, kappa: jax.Array, proposals: int = PROPOSALS) -> jax.Array:
    """Wood's (1994) rejection sampler of ``w = mu.z``: ``kappa: [B]`` -> ``w: [B]``.

    ``proposals`` proposals per example, the first accepted kept (module docstring). The
    accepted ``eps`` is held fixed (``stop_gradient``), so the gradient in ``kappa`` is the
    reparameterization through ``w = h(eps, kappa)`` only (no ``g_cor``).
    """
    kappa = kappa.astype(jnp.float32)[:, None]
    d1 = m - 1.0
    root = jnp.sqrt(4.0 * kappa * kappa + d1 * d1)
    b = d1 / (2.0 * kappa + root)
    a = (d1 + 2.0 * kappa + root) / 4.0
    d = 4.0 * a * b / (1.0 + b) - d1 * math.log(d1)
    k_eps, k_u = jax.random.split(key)
    shape = (kappa.shape[0], proposals)
    if m - 1 <= _NORMALS_UP_TO:
        # Beta((m-1)/2, (m-1)/2) = |g|^2 / (|g|^2 + |h|^2), g, h ~ N(0, I_{m-1}): no
        # while loop (jax.random.beta's gammas have one), cheaper to compile and run.
        gh = jnp.square(jax.random.normal(k_eps, (2, *shape, m - 1), jnp.float32)).sum(-1)
        eps = gh[0] / (gh[0] + gh[1])
    else:
        eps = jax.random.beta(k_eps, 0.5 * d1, 0.5 * d1, shape, jnp.float32)
    u = jax.random.uniform(k_u, shape, jnp.float32, minval=1e-38)
    denom = 1.0 - (1.0 - jax.lax.stop_gradient(b)) * eps
    t = 2.0 * jax.lax.stop_gradient(a * b) / denom
    accept = d1 * jnp.log(t) - t + jax.lax.stop_gradient(d) >= jnp.log(u)
    first = jnp.argmax(accept.at[:, -1].set(True), axis=1)
    eps = jax.lax.stop_gradient(jnp.take_along_axis(eps, first[:, None], axis=1))
    denom = 1.0 - (1.0 - b) * eps
    w = (1.0 - (1.0 + b) * eps) / denom
    return w[:, 0]


def _one_minus_w2(w: jax.Array) -> jax.Array:
    return jnp.maximum((1.0 - w) * (1.0 + w), 1e-12)


def householder_to(mu: jax.Array, y: jax.Array) -> jax.Array:
    """Reflects ``y: [B, m]`` by the Householder map sending ``e_1`` to ``mu: [B, m]`` (unit)."""
    e1 = jnp.zeros_like(mu).at[:, 0].set(1.0)
    diff = e1 - mu
    sq = jnp.sum(diff * diff, axis=-1, keepdims=True)
    near = sq < 1e-12  # mu = e_1: the identity
    u = diff / jnp.sqrt(jnp.where(near, 1.0, sq))
    reflected = y - 2.0 * jnp.sum(u * y, axis=-1, keepdims=True) * u
    return jnp.where(near, y, reflected)


def sample_vmf(key: jax.Array, mu: jax.Array, kappa: jax.Array) -> jax.Array:
    """One draw per row of ``vMF(mu, kappa)``: ``mu: [B, m]`` unit, ``kappa: [B]`` -> ``[B, m]``."""
    m = mu.shape[-1]
    k_w, k_v = jax.random.split(key)
    w = wood_w(k_w, m, kappa)
    v = jax.random.normal(k_v, (*mu.shape[:-1], m - 1), jnp.float32)
    v = v / jnp.linalg.norm(v, axis=-1, keepdims=True)
    y = jnp.concatenate([w[:, None], jnp.sqrt(_one_minus_w2(w))[:, None] * v], axis=-1)
    return householder_to(mu, y)


def uniform_sphere(key: jax.Array, n: int, m: int) -> jax.Array:
    """``n`` draws ``[n, m]`` uniform on ``S^{m-1}`` (normalized Gaussians)."""
    g = jax.random.normal(key, (n, m), jnp.float32)
    return g / jnp.linalg.norm(g, axis=-1, keepdims=True)


class VMFCode(nn.Module):
    """``q(z|x) = vMF(mu, kappa)`` on ``S^{m-1}``, prior uniform; the term ``kl`` in closed form.

    The encoder gives ``m + 1`` features: ``mu`` unnormalized, then ``kappa``'s
    pre-activation. Outputs ``mu`` (``[B, m]``) and ``kappa`` (``[B]``); stats: the batch's
    mean ``kappa``.
    """

    latent_dim: int

    @property
    def features(self) -> int:
        return self.latent_dim + 1

    def vmf_params(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``h: [B, m + 1]`` -> ``(mu [B, m] unit, kappa [B] >= 1)``, float32."""
        h = h.astype(jnp.float32)
        raw = h[:, : self.latent_dim]
        mu = raw / jnp.sqrt(jnp.sum(raw * raw, axis=-1, keepdims=True) + 1e-12)
        kappa = jax.nn.softplus(h[:, self.latent_dim]) + 1.0
        return mu, kappa

    def encode(self, h: jax.Array) -> jax.Array:
        """``h`` -> the mode ``mu: [B, m]``."""
        return self.vmf_params(h)[0]

    def posterior_draw(self, h: jax.Array, keys: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Draws ``(z [C, B, m], log q(z|x) [C, B])`` of ``h: [B, m + 1]``, ``keys: [C, B]``.

        Draw ``(i, b)`` is ``sample_vmf`` of row ``b`` alone with ``keys[i, b]``; ``log q``
        w.r.t. the sphere's surface measure (``vmf_log_density``).
        """
        mu, kappa = self.vmf_params(h)

        def one(key, m, k):
            return sample_vmf(key, m[None], k[None])[0]

        z = jax.vmap(lambda ks: jax.vmap(one)(ks, mu, kappa))(keys)
        return z, vmf_log_density(z, mu, kappa)

    def log_prior(self, z: jax.Array) -> jax.Array:
        """``log p(z) = -log |S^{m-1}|`` (uniform, w.r.t. the surface measure): ``[..., m] ->
        [...]``."""
        return jnp.full(z.shape[:-1], -log_sphere_area(z.shape[-1]), jnp.float32)

    def __call__(self, h: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        mu, kappa = self.vmf_params(h)
        z = sample_vmf(self.make_rng("sample"), mu, kappa) if train else mu
        kl = vmf_kl_uniform(self.latent_dim, kappa)
        outputs = {"mu": mu, "kappa": kappa}
        return z, {"terms": {"kl": kl}, "outputs": outputs, "stats": {"kappa": kappa.mean()}}

    def sample_prior(self, n: int) -> jax.Array:
        """``n`` draws ``[n, m]`` uniform on the sphere, from the ``"sample"`` rng stream."""
        return uniform_sphere(self.make_rng("sample"), n, self.latent_dim)


@dataclasses.dataclass(frozen=True)
class SVAEOptions(Variational, Dense):
    """``svae``: the dense network and the KL's weight or schedule (the KL is exact)."""


def _build(options: SVAEOptions, common: Common, data: DataInfo) -> Autoencoder:
    """A dense S-VAE: ``dense_parts`` around a ``VMFCode`` (``latent_dim >= 2``)."""
    if common.latent_dim < 2:
        raise ConfigError(
            f"svae needs latent_dim >= 2 (codes on the sphere S^(latent_dim-1)), got "
            f"{common.latent_dim}"
        )
    parts = dense_parts(options, common, data, VMFCode(common.latent_dim))
    return Autoencoder(tuple(data.input_shape), likelihood=common.likelihood, **parts)


SVAE = ModelSpec(
    _build,
    SVAEOptions,
    weights=kl_weights,
    test_config={"hidden": (32,), "latent_dim": 4},
    posterior=True,
)
