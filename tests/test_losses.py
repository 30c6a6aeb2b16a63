"""Known-value checks for the training objective."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import Config
from aejax.errors import ConfigError
from aejax.models import Likelihood, losses
from aejax.models.objective import make_objective


def test_bernoulli_loss_is_bce_from_logits():
    logits = jnp.array([[0.0, 2.0], [-1.0, 3.0]])
    x = jnp.array([[1.0, 0.0], [0.5, 1.0]])
    p = 1 / (1 + np.exp(-np.asarray(logits)))
    expected = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1)
    np.testing.assert_allclose(Likelihood("bernoulli").nll(logits, x), expected, rtol=1e-5)
    # log_prob is its exact negative, and a mask drops elements.
    np.testing.assert_allclose(Likelihood("bernoulli").log_prob(logits, x), -expected, rtol=1e-5)
    mask = jnp.array([[1.0, 0.0], [1.0, 1.0]])
    one = -(np.asarray(x) * np.log(p) + (1 - np.asarray(x)) * np.log(1 - p))
    np.testing.assert_allclose(
        Likelihood("bernoulli").nll(logits, x, mask), (one * np.asarray(mask)).sum(1), rtol=1e-5
    )


def test_bernoulli_loss_is_finite_for_extreme_logits():
    out = Likelihood("bernoulli").nll(jnp.array([[100.0, -100.0]]), jnp.array([[0.0, 1.0]]))
    np.testing.assert_allclose(out, [200.0], rtol=1e-5)


def test_gaussian_loss_is_summed_squared_error():
    x = jnp.array([[1.0, 2.0, 2.0], [0, 0, 3]])
    out = Likelihood("gaussian").nll(jnp.zeros((2, 3)), x)
    np.testing.assert_allclose(out, [9.0, 9.0])
    # Its exact log-density is the unit-variance Gaussian's.
    np.testing.assert_allclose(
        Likelihood("gaussian").log_prob(jnp.zeros((2, 3)), x),
        -0.5 * np.array([9.0, 9.0]) - 1.5 * np.log(2 * np.pi),
        rtol=1e-6,
    )


def test_learned_variance_gaussian_is_the_normal_nll():
    x = np.array([[0.5, -1.0]], np.float32)
    mean, logvar = np.array([0.2, 0.1]), np.array([0.3, -0.7])
    out = jnp.asarray(np.concatenate([mean, logvar])[None], jnp.float32)
    lik = Likelihood("gaussian_learned")
    assert lik.params_per_element == 2
    var = np.exp(logvar)
    expected = (0.5 * ((x - mean) ** 2 / var + np.log(2 * np.pi * var))).sum()
    np.testing.assert_allclose(lik.nll(out, x), [expected], rtol=1e-5)
    np.testing.assert_allclose(lik.mean(out), mean[None], rtol=1e-6)


def test_objective_weights_terms_and_schedules_with_the_step():
    terms = {"reconstruction": jnp.array([1.0, 2.0]), "kl": jnp.array([4.0, 8.0])}
    obj = make_objective(Config(model="vae", beta=2.0), 100)
    np.testing.assert_allclose(obj(terms, 0)[0], [9.0, 18.0])
    warm = make_objective(Config(model="vae", beta=2.0, kl_warmup_steps=10), 100)
    np.testing.assert_allclose(warm(terms, 0)[0], [1.0, 2.0])  # no KL at step 0
    np.testing.assert_allclose(warm(terms, 5)[0], [5.0, 10.0])  # half of beta
    np.testing.assert_allclose(warm(terms, 50)[0], [9.0, 18.0])
    cap = make_objective(
        Config(model="vae", capacity=10.0, capacity_steps=20, capacity_gamma=3.0), 100
    )
    # gamma * |KL - C(step)|, C rising linearly to 10 at step 20.
    np.testing.assert_allclose(cap(terms, 10)[0], [1 + 3 * 1.0, 2 + 3 * 3.0])
    np.testing.assert_allclose(cap(terms, 40)[0], [1 + 3 * 6.0, 2 + 3 * 2.0])
    with pytest.raises(ConfigError, match="no weight for the model's term 'mystery'"):
        obj({"mystery": jnp.ones(2)}, 0)


def test_a_schedule_changes_the_weight_without_a_retrace():
    obj = make_objective(Config(model="vae", kl_warmup_steps=10), 100)
    traces = []

    @jax.jit
    def loss(step):
        traces.append(1)
        return obj({"reconstruction": jnp.zeros(1), "kl": jnp.ones(1)}, step)[0][0]

    values = [float(loss(jnp.asarray(s))) for s in (0, 5, 10, 20)]
    assert values == [0.0, 0.5, 1.0, 1.0]
    assert len(traces) == 1


def test_step_is_finite_catches_nan_inf_and_overflowing_squares():
    grads = {"a": jnp.ones(3), "b": {"c": jnp.zeros(2)}}
    loss = jnp.ones(4)
    assert bool(losses.step_is_finite(loss, grads))
    assert not bool(losses.step_is_finite(loss.at[2].set(jnp.nan), grads))
    assert not bool(losses.step_is_finite(loss.at[0].set(jnp.inf), grads))
    assert not bool(losses.step_is_finite(loss, {**grads, "a": jnp.array([1.0, jnp.nan, 0.0])}))
    assert not bool(losses.step_is_finite(loss, {**grads, "b": {"c": jnp.array([-jnp.inf, 0])}}))
    # Finite, but its square overflows float32: Adam's second moment would become inf.
    assert not bool(losses.step_is_finite(loss, {**grads, "a": jnp.array([2e19, 0.0, 0.0])}))
    assert bool(losses.step_is_finite(loss, {**grads, "a": jnp.array([1e18, 0.0, 0.0])}))


def test_kl_of_two_gaussians_known_value():
    # KL(N(1, 2^2) || N(0, 1)) = 0.5 * (4 + 1 - 1 - ln 4) per dimension.
    mu = jnp.array([[1.0, 1.0]])
    logvar = jnp.full((1, 2), np.log(4.0))
    expected = 2 * 0.5 * (4 + 1 - 1 - np.log(4.0))
    np.testing.assert_allclose(losses.kl_diag_gaussian(mu, logvar), [expected], rtol=1e-6)
    # Against a non-standard prior: KL(N(0, 1) || N(2, 3^2)).
    got = losses.kl_diag_gaussian(jnp.zeros((1, 1)), jnp.zeros((1, 1)), 2.0, np.log(9.0))
    want = np.log(3.0) + (1 + 4) / (2 * 9) - 0.5
    np.testing.assert_allclose(got, [want], rtol=1e-6)
    # Identical distributions: zero.
    np.testing.assert_allclose(
        losses.kl_diag_gaussian(jnp.zeros((3, 4)), jnp.zeros((3, 4))), np.zeros(3), atol=1e-7
    )


def test_kl_clamps_log_variances():
    import jax

    huge = jnp.array([[1e4, -1e4]])
    kl = losses.kl_diag_gaussian(jnp.zeros((1, 2)), huge)
    assert np.isfinite(np.asarray(kl)).all()
    grad = jax.grad(lambda lv: losses.kl_diag_gaussian(jnp.zeros((1, 2)), lv).sum())(huge)
    assert np.isfinite(np.asarray(grad)).all()
    np.testing.assert_allclose(losses.clamp_logvar(huge), [[losses.LOGVAR_MAX, losses.LOGVAR_MIN]])
