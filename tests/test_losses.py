"""Known-value checks for the training objective."""

import jax.numpy as jnp
import numpy as np

from aejax import losses


def test_bernoulli_loss_is_bce_from_logits():
    logits = jnp.array([[0.0, 2.0], [-1.0, 3.0]])
    x = jnp.array([[1.0, 0.0], [0.5, 1.0]])
    p = 1 / (1 + np.exp(-np.asarray(logits)))
    expected = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1)
    np.testing.assert_allclose(
        losses.reconstruction_loss(logits, x, "bernoulli"), expected, rtol=1e-5
    )


def test_bernoulli_loss_is_finite_for_extreme_logits():
    out = losses.reconstruction_loss(
        jnp.array([[100.0, -100.0]]), jnp.array([[0.0, 1.0]]), "bernoulli"
    )
    np.testing.assert_allclose(out, [200.0], rtol=1e-5)


def test_gaussian_loss_is_summed_squared_error():
    out = losses.reconstruction_loss(
        jnp.zeros((2, 3)), jnp.array([[1.0, 2.0, 2.0], [0, 0, 3]]), "gaussian"
    )
    np.testing.assert_allclose(out, [9.0, 9.0])


def test_objective_adds_penalties():
    aux = {"out": jnp.zeros((2, 2)), "penalties": {"kl": jnp.array([1.0, 2.0])}}
    out = losses.objective(aux, jnp.ones((2, 2)), "gaussian")
    np.testing.assert_allclose(out, [3.0, 4.0])


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
