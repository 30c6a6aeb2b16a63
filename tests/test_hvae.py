"""hvae: the tempering schedule by hand, the leapfrog integrator reversible and volume
preserving, the bound equal to the VAE's ELBO of the same draw when nothing moves, and
the options. The registry tests (tests/test_registry.py) train it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from aejax.errors import ConfigError
from aejax.models import create_model
from aejax.models.hvae import _EVAL_SEED, HVAEOptions, flow_bound, integrate, sqrt_betas

SHAPE = (6, 6, 1)
DENSE = {"latent_dim": 3, "hidden": (16,), "activation": "gelu", "dtype": "float32"}
B = 4


def build(**options):
    return create_model("hvae", SHAPE, "bernoulli", **{**DENSE, **options})


@pytest.fixture(scope="module")
def setup():
    """``(x, variables)``: binary images and parameters (no learned leapfrog parameters)."""
    x = jax.random.bernoulli(jax.random.key(0), 0.4, (B, *SHAPE)).astype(jnp.float32)
    init = jax.jit(build().init)  # one compile, not an op-by-op scan
    return x, init({"params": jax.random.key(1), "sample": jax.random.key(2)}, x)


def test_quadratic_tempering_by_hand():
    # beta_0 = 1/4, K = 2: 1/sqrt(beta_k) = (1 - 2) (k/2)^2 + 2 = 2, 1.75, 1
    np.testing.assert_allclose(sqrt_betas(0.25, 2, "quadratic"), [0.5, 1 / 1.75, 1.0], rtol=1e-6)
    np.testing.assert_allclose(sqrt_betas(0.25, 2, "none"), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(sqrt_betas(0.25, 0, "quadratic"), [0.5])


def toy_potential(z):
    """A non-quadratic potential, ``[B, L] -> ([B], z)``."""
    return jnp.sum(0.25 * z**4 + 0.5 * z**2 + 0.3 * z * jnp.roll(z, 1, axis=1), axis=1), z


def test_leapfrog_is_reversible_on_the_model_potential(setup):
    x, variables = setup
    model = build()
    z0 = jax.random.normal(jax.random.key(3), (B, 3))
    rho0 = jax.random.normal(jax.random.key(4), (B, 3))
    ones = jnp.ones(6)

    def there_and_back(m):
        u = m.potential(x)
        zk, rhok, _, _ = integrate(u, z0, rho0, 0.1, ones)
        z, rho, _, _ = integrate(u, zk, -rhok, 0.1, ones)
        return zk, z, -rho

    zk, z, rho = jax.jit(lambda v: model.apply(v, method=there_and_back))(variables)
    assert float(jnp.max(jnp.abs(zk - z0))) > 0.05  # it moved
    np.testing.assert_allclose(z, z0, atol=1e-5)
    np.testing.assert_allclose(rho, rho0, atol=1e-5)


@pytest.mark.parametrize("tempered", [False, True])
def test_flow_jacobian_is_one_or_the_tempering_factor(tempered):
    latent = 3
    roots = sqrt_betas(0.3, 4, "quadratic" if tempered else "none")
    alphas = roots[:-1] / roots[1:]

    def flow(state):  # one example's (z, rho): [2L] -> [2L]
        z, rho = state[None, :latent], state[None, latent:]
        zk, rhok, _, _ = integrate(toy_potential, z, rho, 0.2, alphas)
        return jnp.concatenate([zk[0], rhok[0]])

    start = jnp.array([0.5, -1.0, 0.3, 0.2, 0.7, -0.4])
    det = np.linalg.det(np.float64(jax.jit(jax.jacfwd(flow))(start)))
    want = 0.3 ** (latent / 2) if tempered else 1.0  # prod alphas^L = (beta_0 / beta_K)^(L/2)
    np.testing.assert_allclose(det, want, rtol=1e-5)


def test_flow_raises_the_bound_on_a_gaussian_target_and_stays_below_log_px():
    # p(x, z) = N(z; m, 0.5^2 I): log p(x) = 0. q(z_0|x) = N(0, I) is poor; tempered
    # leapfrog moves its draws toward m (a wrong sign of grad U would move them away).
    m = jnp.array([[1.0, -0.5]])

    def potential(z):
        return jnp.sum(0.5 * jnp.square((z - m) / 0.5) + jnp.log(0.5 * jnp.sqrt(2 * jnp.pi)), 1), z

    eps0, gamma = jax.random.normal(jax.random.key(0), (2, 4096, 2))
    zeros = jnp.zeros((1, 2))

    @jax.jit
    def mean_bound(step, beta_zero):
        b, _, _ = flow_bound(potential, zeros, zeros, eps0, gamma, step, beta_zero, 5, "quadratic")
        return jnp.mean(b)

    elbo = float(mean_bound(0.0, 0.3))  # no motion: the base ELBO, -4.1 here
    hvae = float(mean_bound(0.2, 0.3))
    assert elbo + 1.0 < hvae < 0.0


def elbo_by_hand(model, variables, x):
    """The VAE's one-draw ELBO ``[B]`` in float64 at evaluation's first draw ``z_0``."""
    mean, logvar = model.apply(variables, x, method=lambda m, x: m.posterior(x))
    mean, logvar = np.float64(mean), np.float64(logvar)
    eps0 = np.float64(jax.random.normal(jax.random.key(_EVAL_SEED), (2, *mean.shape))[0])
    sd = np.exp(0.5 * logvar)
    z = mean + sd * eps0
    logits = np.float64(model.apply(variables, jnp.float32(z), method=lambda m, z: m.decoder(z)))
    xs = np.float64(x).reshape(B, -1)
    logits = logits.reshape(B, -1)
    log_px = np.sum(xs * -np.logaddexp(0, -logits) + (1 - xs) * -np.logaddexp(0, logits), -1)
    return log_px + norm.logpdf(z).sum(-1) - norm.logpdf(z, mean, sd).sum(-1)


@pytest.mark.parametrize(
    "options",
    [
        {"eps_lf": 0.0, "n_lf": 3, "beta_zero": 0.3},  # tempered momenta, no motion
        {"n_lf": 0, "beta_zero": 1.0},
    ],
)
def test_bound_without_motion_is_the_vae_elbo_of_the_same_draw(setup, options):
    x, variables = setup
    model = build(**options)
    _, aux = jax.jit(model.apply)(variables, x)
    bound = -sum(np.asarray(v, np.float64) for v in aux["terms"].values())
    np.testing.assert_allclose(bound, elbo_by_hand(model, variables, x), rtol=1e-5)


def test_learned_step_and_beta_get_gradients(setup):
    x, _ = setup
    model = build(n_lf=1, eps_lf=0.05, learn_eps_lf=True, learn_beta_zero=True)
    variables = jax.jit(model.init)({"params": jax.random.key(1), "sample": jax.random.key(2)}, x)

    def loss(params):
        _, aux = model.apply({"params": params}, x, train=True, rngs={"sample": jax.random.key(5)})
        return sum(jnp.mean(v) for v in aux["terms"].values())

    grads = jax.jit(jax.grad(loss))(variables["params"])["leapfrog"]
    assert grads["log_eps"].shape == (1, 3)
    assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in jax.tree.leaves(grads))


def test_options_are_checked():
    with pytest.raises(ConfigError, match="beta_zero"):
        HVAEOptions(beta_zero=0.0)
    with pytest.raises(ConfigError, match="learn_beta_zero"):
        HVAEOptions(beta_zero=1.0, learn_beta_zero=True)
    with pytest.raises(ConfigError, match="learn_eps_lf"):
        HVAEOptions(eps_lf=0.0, learn_eps_lf=True)
