"""The pixelcnn sampler: the causal masks, a fit to code grids of known entropy, its draws."""

import functools

import jax
import numpy as np
import pytest

from aejax import xla
from aejax.errors import ConfigError, DataError
from aejax.sampling._pixelcnn_net import GatedPixelCNN
from aejax.sampling.pixelcnn import code_indices, code_nll, fit_prior, sample_indices

K, GRID, COPY = 4, (4, 4), 0.9


def _grids(n, seed):
    """``[n, 4, 4]``: a uniform first row; below, each cell copies the one above with
    probability 0.9, else is uniform (so it equals the one above with 0.9 + 0.1 / 4)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, K, (n, *GRID))
    for r in range(1, GRID[0]):
        keep = rng.random((n, GRID[1])) < COPY
        g[:, r] = np.where(keep, g[:, r - 1], g[:, r])
    return g.astype(np.int32)


def _true_entropy():
    """Nats per position of ``_grids``: log K for the first row, H(copy) below."""
    same = COPY + (1 - COPY) / K
    other = (1 - COPY) / K
    h_copy = -(same * np.log(same) + (K - 1) * other * np.log(other))
    rows = GRID[0]
    return (np.log(K) + (rows - 1) * h_copy) / rows


def test_logits_at_a_position_depend_on_every_earlier_position_and_no_later_one():
    h, w, k = 4, 5, 3
    net = GatedPixelCNN(k, channels=8, layers=4)  # reaches layers + 1 = 5 cells each way
    x = jax.random.normal(jax.random.key(0), (1, h, w, k))

    init = functools.partial(net.init, method=net.logits)
    params = xla.jit(init, run_once=True)(jax.random.key(1), x)

    @jax.jit
    def jacobian(params, x):
        return jax.jacfwd(lambda x: net.apply(params, x, method=net.logits))(x)

    jac = jacobian(params, x)
    # [1, h, w, K, 1, h, w, K] -> dependence of output position p on input position q.
    dep = np.abs(np.asarray(jac)).sum(axis=(0, 3, 4, 7)).reshape(h * w, h * w)
    later = np.triu(np.ones((h * w, h * w), bool))  # q >= p, the position itself included
    np.testing.assert_array_equal(dep[later], 0.0)
    assert (dep[~later] > 1e-7).all(), "a blind spot: an earlier position is not seen"


@pytest.fixture(scope="module")
def fitted():
    train = _grids(2048, seed=0)
    net, params, losses = fit_prior(
        train, K, seed=0, layers=4, channels=16, epochs=5, lr=3e-3, batch_size=128
    )
    return net, params, losses


def test_fitted_prior_reaches_the_true_entropy_on_held_out_grids(fitted):
    net, params, losses = fitted
    held_out = code_nll(net, params, _grids(512, seed=1))
    assert held_out.shape == (512,)
    truth = _true_entropy()  # 0.608 nats per position; uniform is log 4 = 1.386
    assert losses[-1] < losses[0]
    assert truth - 0.05 < held_out.mean() < truth + 0.05, (held_out.mean(), truth, losses)


def test_draws_reproduce_the_structure_and_a_key_its_draws(fitted):
    net, params, _ = fitted
    key = jax.random.key(3)
    g = sample_indices(net, params, 600, key, GRID)
    assert g.shape == (600, *GRID) and g.dtype == np.int32
    assert 0 <= g.min() and g.max() < K
    same = (g[:, 1:] == g[:, :-1]).mean()
    assert abs(same - (COPY + (1 - COPY) / K)) < 0.04, same
    first = np.bincount(g[:, 0].ravel(), minlength=K) / g[:, 0].size
    np.testing.assert_allclose(first, 1 / K, atol=0.05)
    np.testing.assert_array_equal(sample_indices(net, params, 600, key, GRID), g)
    # A low temperature sharpens: nearly every cell below the first row copies.
    cold = sample_indices(net, params, 600, key, GRID, temperature=0.3)
    assert (cold[:, 1:] == cold[:, :-1]).mean() > 0.98


def test_code_indices_from_codebook_vectors_and_its_refusals():
    book = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    idx = _grids(5, seed=2)
    np.testing.assert_array_equal(code_indices(book[idx], book, GRID), idx)
    np.testing.assert_array_equal(code_indices(idx, book, GRID), idx)
    with pytest.raises(DataError, match="not this model's codebook vectors"):
        code_indices(book[idx] + 0.01, book, GRID)
    with pytest.raises(DataError, match=r"needs the training codes \[N, 4, 4, 3\]"):
        code_indices(book[idx][:, :3], book, GRID)
    with pytest.raises(DataError, match="must lie in 0..3"):
        code_indices(idx + 1, book, GRID)
    with pytest.raises(ConfigError, match="layers must be an integer >= 1"):
        fit_prior(idx, 4, layers=0)
