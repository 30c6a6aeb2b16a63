"""A short, fixed fit on the 8x8 digits for the VAE-variant tests: 6 passes over 20 batches
of 64, one jitted step, keys ``epoch * 20 + i``."""

import jax
import jax.numpy as jnp
import numpy as np

from aejax.train import init_state, make_train_step

SHAPE = (8, 8, 1)


def fit_digits(model, tx, objective, x_train, epochs=6, n_batches=20):
    """Trains ``model`` on the first ``n_batches * 64`` images; returns every step's metrics."""
    step = jax.jit(make_train_step(model, tx, objective))
    state = init_state(model, tx, SHAPE, seed=0)
    batches = x_train[: n_batches * 64].reshape(n_batches, 64, *SHAPE)
    history = []
    for epoch in range(epochs):
        for i, batch in enumerate(batches):
            key = jax.random.key(epoch * n_batches + i)
            state, metrics = step(state, {"x": jnp.asarray(batch)}, key)
            history.append(metrics)
    return history


def per_example(name, rows):
    """The mean over ``rows`` of metric ``name`` per example (``name / count``)."""
    return float(np.mean([float(m[name] / m["count"]) for m in rows]))
