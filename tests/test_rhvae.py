"""rhvae: the inverse metric by hand, the generalized leapfrog reversible and volume
preserving, the bound equal to the VAE's ELBO of the same draw when nothing moves (with a
filled bank of centroids) and above it on a Gaussian target, the bank's ring buffer. The
registry tests (tests/test_registry.py) train it."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import norm

from aejax.models import create_model
from aejax.models.hvae import _EVAL_SEED, sqrt_betas
from aejax.models.rhvae import COLLECTION, generalized_integrate, inverse_metric, riemannian_bound

SHAPE = (6, 6, 1)
DENSE = {"latent_dim": 3, "hidden": (16,), "activation": "gelu", "dtype": "float32"}
B = 4
# Two centroids in 2-d and their lower-triangular factors.
CENTROIDS = jnp.array([[0.5, -0.5], [-1.0, 0.8]])
FACTORS = jnp.array([[[1.2, 0.0], [0.4, 0.7]], [[0.6, 0.0], [-0.9, 1.5]]])


def test_inverse_metric_by_hand():
    z = np.array([[0.1, 0.2], [-0.7, 1.1]])
    t, lam = 1.3, 0.05
    got = inverse_metric(jnp.float32(z), CENTROIDS, FACTORS, t, lam)
    for b in range(2):
        want = lam * np.eye(2)
        for c, f in zip(np.float64(CENTROIDS), np.float64(FACTORS), strict=True):
            want += f @ f.T * np.exp(-np.sum((z[b] - c) ** 2) / t**2)
        np.testing.assert_allclose(got[b], want, rtol=1e-6)


def toy_potential(z):
    """A non-quadratic potential, ``[B, L] -> ([B], z)``."""
    return jnp.sum(0.25 * z**4 + 0.5 * z**2 + 0.3 * z * jnp.roll(z, 1, axis=1), axis=1), z


def toy_metric(z):
    return inverse_metric(z, CENTROIDS, FACTORS, 1.0, 0.1)


def test_generalized_leapfrog_is_reversible():
    # Flip the momentum, integrate back: the start again, to the fixed point's residual.
    z0 = jnp.array([[0.5, -1.0], [0.3, 0.2]])
    rho0 = jnp.array([[0.7, -0.4], [-1.1, 0.5]])
    ones = jnp.ones(5)

    @jax.jit
    def there_and_back(eps):
        zk, rhok, _, _ = generalized_integrate(toy_potential, toy_metric, z0, rho0, eps, ones, 20)
        z, rho, _, _ = generalized_integrate(toy_potential, toy_metric, zk, -rhok, eps, ones, 20)
        return zk, z, -rho

    zk, z, rho = there_and_back(jnp.array([[0.1, 0.05]]))  # a step per dimension
    assert float(jnp.max(jnp.abs(zk - z0))) > 0.05  # it moved
    np.testing.assert_allclose(z, z0, atol=1e-4)
    np.testing.assert_allclose(rho, rho0, atol=1e-4)


def test_generalized_leapfrog_preserves_volume_up_to_the_tempering_factor():
    latent = 2
    roots = sqrt_betas(0.3, 4, "quadratic")
    alphas = roots[:-1] / roots[1:]

    def flow(state):  # one example's (z, rho): [2L] -> [2L]
        z, rho = state[None, :latent], state[None, latent:]
        zk, rhok, _, _ = generalized_integrate(toy_potential, toy_metric, z, rho, 0.1, alphas, 20)
        return jnp.concatenate([zk[0], rhok[0]])

    start = jnp.array([0.5, -1.0, 0.7, -0.4])
    det = np.linalg.det(np.float64(jax.jit(jax.jacfwd(flow))(start)))
    want = 0.3 ** (latent / 2)  # leapfrog 1, prod alphas^L = (beta_0 / beta_K)^(L/2)
    np.testing.assert_allclose(det, want, rtol=1e-4)


def test_flow_raises_the_bound_on_a_gaussian_target_and_stays_below_log_px():
    # p(x, z) = N(z; m, 0.5^2 I): log p(x) = 0; q(z_0|x) = N(0, I) is poor.
    m = jnp.array([[1.0, -0.5]])

    def potential(z):
        return jnp.sum(0.5 * jnp.square((z - m) / 0.5) + jnp.log(0.5 * jnp.sqrt(2 * jnp.pi)), 1), z

    eps0, gamma = jax.random.normal(jax.random.key(0), (2, 1024, 2))
    zeros = jnp.zeros((1, 2))

    @jax.jit
    def mean_bound(step):
        b, _, _ = riemannian_bound(
            potential, toy_metric, zeros, zeros, eps0, gamma, step, 0.3, 5, "quadratic", 3
        )
        return jnp.mean(b)

    elbo = float(mean_bound(0.0))  # no motion: the base ELBO, about -4.1
    rhvae = float(mean_bound(0.2))  # about -2.8
    assert elbo + 1.0 < rhvae < 0.0


def build(**options):
    opts = {"metric_hidden": (8,), "metric_bank": 6, **DENSE, **options}
    return create_model("rhvae", SHAPE, "bernoulli", **opts)


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


def test_bank_ring_buffer_and_the_bound_without_motion_is_the_vae_elbo():
    model = build(eps_lf=0.0, n_lf=1, lf_iter=1)
    x = jax.random.bernoulli(jax.random.key(0), 0.4, (B, *SHAPE)).astype(jnp.float32)
    variables = jax.jit(model.init)({"params": jax.random.key(1), "sample": jax.random.key(2)}, x)
    bank = variables[COLLECTION]["metric"]
    assert not np.any(bank["factors"]) and int(bank["cursor"]) == 0  # empty
    train = jax.jit(
        lambda v, x: model.apply(
            v, x, train=True, rngs={"sample": jax.random.key(3)}, mutable=[COLLECTION]
        )
    )
    params = {"params": variables["params"]}
    _, state = train({**params, COLLECTION: variables[COLLECTION]}, x)
    _, state = train({**params, **state}, x[::-1])  # 4 + 4 rows into 6 slots: wraps
    bank = state[COLLECTION]["metric"]
    mean, _ = model.apply(params, x, method=lambda m, x: m.posterior(x))
    assert (int(bank["cursor"]), int(bank["filled"]), int(bank["batch"])) == (2, 6, 4)
    # slots 0-3 <- x, then 4, 5, 0, 1 <- x[::-1]
    np.testing.assert_allclose(bank["centroids"][2:4], mean[2:4])
    np.testing.assert_allclose(bank["centroids"][4:], mean[::-1][:2])
    np.testing.assert_allclose(bank["centroids"][:2], mean[::-1][2:])
    assert np.all(np.diagonal(bank["factors"], axis1=1, axis2=2) > 0)  # every slot filled
    evaluated = {**params, **state}
    _, aux = jax.jit(model.apply)(evaluated, x)
    bound = -sum(np.asarray(v, np.float64) for v in aux["terms"].values())
    np.testing.assert_allclose(bound, elbo_by_hand(model, evaluated, x), rtol=1e-5)
