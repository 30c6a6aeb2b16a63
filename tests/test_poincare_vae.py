"""poincare_vae (P-VAE): the ball's maps and Möbius identities, distances by hand, the
wrapped normal's density against the change of variables, both densities integrating to
one, the Euclidean limit c -> 0, the Riemannian normal's normalizer against scipy, its
radius sampler and implicit gradient, the gyroplane layer by hand, and the model's code
(prior draws against posterior densities, the KL's gradients). Training, determinism,
sharding and resume are the registry tests' (tests/test_registry.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from aejax.errors import ConfigError
from aejax.models import _hyperbolic as H
from aejax.models import create_model
from aejax.models.poincare_vae import Gyroplanes, PoincareOptions

C = 0.7


def _points(n, d, seed, radius=0.8):
    """``n`` points of the ball of curvature ``C`` at most ``radius`` of the way out."""
    x = np.random.default_rng(seed).normal(size=(n, d))
    x *= np.random.default_rng(seed + 1).uniform(0, radius, (n, 1)) / np.linalg.norm(
        x, axis=1, keepdims=True
    )
    return jnp.asarray(x / math.sqrt(C), jnp.float32)


@jax.jit
def _maps(x, y, u):
    zero = jnp.zeros_like(x)
    lam = H.conformal_factor(x, C)[:, 0]
    return {
        "log0(exp0(u))": (H.log0(H.exp0(u, C), C), u),
        "exp0(log0(x))": (H.exp0(H.log0(x, C), C), x),
        "log_x(exp_x(u))": (H.logmap(x, H.expmap(x, 0.3 * u, C), C), 0.3 * u),
        "exp_x(log_x(y))": (H.expmap(x, H.logmap(x, y, C), C), y),
        "x + 0": (H.mobius_add(x, zero, C), x),
        "0 + x": (H.mobius_add(zero, x, C), x),
        "-x + x": (H.mobius_add(-x, x, C), zero),
        "-x + (x + y)": (H.mobius_add(-x, H.mobius_add(x, y, C), C), y),
        # The Riemannian norm of log_x(y) is the distance.
        "|log_x(y)|_x": (lam * jnp.linalg.norm(H.logmap(x, y, C), axis=-1), H.distance(x, y, C)),
    }


def test_maps_are_inverse_and_mobius_identities():
    u = jnp.asarray(np.random.default_rng(4).normal(size=(16, 3)), jnp.float32)
    for name, (got, want) in _maps(_points(16, 3, 0), _points(16, 3, 2), u).items():
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5, err_msg=name)


def test_distances_by_hand():
    a, b = np.array([0.5, 0.0], np.float32), np.array([0.0, 0.5], np.float32)
    got = jax.jit(
        lambda a, b: jnp.stack(
            [H.distance(0 * a, a, 1.0), H.distance(a, b, 1.0), H.distance(a / 2, b / 2, 4.0)]
        )
    )(a, b)
    want = [
        math.log(3.0),  # d(0, x) = 2 artanh(|x|) at c = 1: 2 artanh(1/2) = ln 3
        math.acosh(1 + 1 / 0.5625),  # arccosh(1 + 2|a - b|^2 / ((1 - |a|^2)(1 - |b|^2)))
        math.acosh(1 + 1 / 0.5625) / 2,  # d_c(x, y) = d_1(sqrt(c) x, sqrt(c) y) / sqrt(c)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_wrapped_log_prob_is_the_change_of_variables():
    """log q(z) = log N(v) - log|det dz/dv| - d log lambda_z (Lebesgue -> the ball's volume)."""
    d, mu = 3, _points(1, 3, 7, radius=0.7)[0]
    scale = jnp.array([0.4, 0.9, 0.6])

    def z_of(v):
        return H.mobius_add(mu, H.exp0(0.5 * v, C), C)

    @jax.jit
    @jax.vmap
    def both(v):
        z = z_of(v)
        log_det = jnp.linalg.slogdet(jax.jacfwd(z_of)(v))[1]
        gauss = -0.5 * jnp.sum(jnp.square(v / scale) + 2 * jnp.log(scale) + math.log(2 * math.pi))
        want = gauss - log_det - d * jnp.log(H.conformal_factor(z, C)[0])
        return H.wrapped_normal_log_prob(z, mu, scale, C), want

    got, want = both(scale[None] * jax.random.normal(jax.random.key(0), (8, d)))
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_densities_integrate_to_one_over_the_ball():
    """On a 601^2 grid of the unit disc (c = 1): int q(z) lambda_z^2 dz = 1, both kinds."""
    xs = np.linspace(-1, 1, 601, dtype=np.float32)
    grid = np.stack(np.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
    masses = _masses(jnp.asarray(grid[(grid**2).sum(1) < 1 - 1e-6]))
    np.testing.assert_allclose(np.asarray(masses) * float(xs[1] - xs[0]) ** 2, 1, atol=2e-3)


@jax.jit
def _masses(z):
    mu = jnp.broadcast_to(jnp.array([0.3, -0.2]), z.shape)
    scale = jnp.broadcast_to(jnp.array([0.5, 0.8]), z.shape)
    log_volume = 2 * jnp.log(H.conformal_factor(z, 1.0)[:, 0])
    wrapped = H.wrapped_normal_log_prob(z, mu, scale, 1.0)
    riemannian = H.riemannian_normal_log_prob(z, mu, 0.6, 1.0)
    return jnp.stack([jnp.exp(wrapped + log_volume).sum(), jnp.exp(riemannian + log_volume).sum()])


def test_zero_curvature_is_the_euclidean_gaussian():
    """As c -> 0 both are N(mu, sigma^2 / 4) in coordinates (the metric tends to 4 I)."""
    c, z, mu = 1e-6, jnp.array([0.2, 0.7, -0.4]), jnp.array([0.1, 0.5, 0.0])
    scale = jnp.array([0.3, 0.5, 0.4])

    @jax.jit
    def both(z, mu, scale):
        to_lebesgue = 3 * jnp.log(H.conformal_factor(z, c)[0])
        wrapped = H.wrapped_normal_log_prob(z, mu, scale, c)
        return wrapped + to_lebesgue, H.riemannian_normal_log_prob(z, mu, 0.4, c) + to_lebesgue

    def gauss(std):
        std = np.broadcast_to(std, 3)
        return np.sum(-0.5 * ((z - mu) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi))

    wrapped, riemannian = both(z, mu, scale)
    np.testing.assert_allclose(wrapped, gauss(np.asarray(scale) / 2), atol=5e-5)
    np.testing.assert_allclose(riemannian, gauss(0.2), atol=5e-5)


def _radial_reference(sigma, c, d, power=0):
    """int_0^inf r^power exp(-r^2 / 2 sigma^2) (sinh(sqrt(c) r) / sqrt(c))^(d-1) dr, float64."""

    def f(r):
        log_sinh = math.log(math.sinh(math.sqrt(c) * r) / math.sqrt(c)) if r > 0 else -math.inf
        return (
            r**power * math.exp(-(r**2) / (2 * sigma**2) + (d - 1) * log_sinh)
            if d > 1 or r > 0
            else 1.0
        )

    top = (d - 1) * math.sqrt(c) * sigma**2 + 15 * sigma
    return integrate.quad(f, 0, top, limit=200, epsabs=0, epsrel=1e-11)[0]


# (sigma, c, d): one dimension (Z = sqrt(2 pi) sigma), a small scale, a mode far out
# ((d-1) sqrt(c) sigma^2 = 36), nearly flat in many dimensions.
NORMALIZER_CASES = ((0.7, 1.0, 1), (0.05, 1.0, 2), (2.0, 1.0, 10), (0.3, 1e-4, 20))


def test_riemannian_log_normalizer_matches_scipy():
    @jax.jit
    def all_cases(sigmas):
        return [
            H.riemannian_log_normalizer(s[None], c, d)[0]
            for s, (_, c, d) in zip(sigmas, NORMALIZER_CASES, strict=True)
        ]

    got = all_cases(jnp.asarray([s for s, _, _ in NORMALIZER_CASES]))
    for value, (sigma, c, d) in zip(got, NORMALIZER_CASES, strict=True):
        want = math.log(_radial_reference(sigma, c, d)) + H.log_sphere_area(d)
        np.testing.assert_allclose(float(value), want, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(float(got[0]), math.log(math.sqrt(2 * math.pi) * 0.7), rtol=1e-6)


def test_riemannian_radius_sampler_and_its_implicit_gradient():
    """E[r] by draws against quadrature; d E[r] / d sigma by the implicit gradient against
    the finite difference of the exact mean."""
    sigma, c, d, n = 0.5, 1.0, 3, 4000

    def mean_radius(s):
        return H.riemannian_radius(jax.random.key(0), jnp.full((n,), s), c, d).mean()

    value, grad = jax.jit(jax.value_and_grad(mean_radius))(jnp.float32(sigma))

    def exact(s):
        return _radial_reference(s, c, d, power=1) / _radial_reference(s, c, d)

    # the radii's standard deviation is below 0.4 here (exact: 0.32)
    assert abs(float(value) - exact(sigma)) < 4 * 0.4 / math.sqrt(n)
    slope = (exact(sigma + 1e-3) - exact(sigma - 1e-3)) / 2e-3
    np.testing.assert_allclose(float(grad), slope, rtol=0.03)


def test_gyroplane_layer_by_hand():
    """A gyroplane through 0 with normal e_1 is the diameter x_1 = 0: the distance of (t, 0)
    to it is d(0, (t, 0)) = 2 artanh(t); as c -> 0 a unit is 2 <z - p, w / |w|>."""
    t = jnp.array([[0.3, 0.0], [-0.6, 0.0], [0.5, 0.4]])
    w, b = jnp.array([[0.6, -0.8]]), jnp.array([[0.5]])

    @jax.jit
    def both(t):
        e1 = {"params": {"normals": jnp.array([[2.0, 0.0]]), "offsets": jnp.zeros((1, 1))}}
        curved = Gyroplanes(1, 1.0).apply(e1, t)[:, 0]
        return curved, Gyroplanes(1, 1e-6).apply({"params": {"normals": w, "offsets": b}}, t)[:, 0]

    curved, flat = both(t)
    np.testing.assert_allclose(curved[:2], 2 * np.arctanh(t[:2, 0]), rtol=1e-6)
    np.testing.assert_allclose(flat, 2 * (t - w * b) @ w[0], atol=1e-4)


def test_the_riemannian_code_densities_draws_and_gradients():
    """Through the model's code, Riemannian prior and posterior (the wrapped ones train in
    the registry run): E_{z ~ p}[q(z|x) / p(z)] = 1 (the prior's sampler and density against
    the posterior's density); the training KL, log q - log p at posterior draws, averages
    above 0 with finite, nonzero gradients."""
    model = create_model(
        "poincare_vae",
        (6,),
        "gaussian",
        hidden=(4,),
        latent_dim=2,
        curvature=0.5,
        prior_distribution="riemannian_normal",
        posterior_distribution="riemannian_normal",
    )
    code = model.code
    h = jnp.asarray([[0.4, -0.3, math.log(0.6**2)]])  # mu's tangent vector, log sigma^2

    def kl(h):
        z, parts = code.apply({}, h, train=True, rngs={"sample": jax.random.key(3)})
        return parts["terms"]["kl"].mean(), z

    @jax.jit
    def check(key):
        z = code.apply({}, 20000, method=code.sample_prior, rngs={"sample": key})
        log_q = code.apply({}, h, z, method=code.log_posterior)
        weights = jnp.exp(log_q - code.apply({}, z, method=code.log_prior))
        return weights, jax.value_and_grad(kl, has_aux=True)(jnp.repeat(h, 4000, axis=0))

    w, ((mean_kl, z), grad) = check(jax.random.key(1))
    w = np.asarray(w)
    assert abs(w.mean() - 1) < 4 * w.std() / math.sqrt(w.size), (w.mean(), w.std())
    assert float(mean_kl) > 0 and np.isfinite(np.asarray(grad)).all()
    assert np.abs(np.asarray(grad)).sum() > 0
    assert z.shape == (4000, 2) and float(jnp.linalg.norm(z, axis=-1).max()) < 1 / math.sqrt(0.5)
    with pytest.raises(ConfigError, match="curvature"):
        PoincareOptions(curvature=0.0)
