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


def test_all_finite():
    assert bool(losses.all_finite({"a": jnp.ones(3), "b": jnp.zeros(2)}))
    assert not bool(losses.all_finite({"a": jnp.array([1.0, jnp.nan])}))
    assert not bool(losses.all_finite([jnp.array([jnp.inf])]))
