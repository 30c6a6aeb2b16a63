"""Test helper: train a model with the engine's own step, outside the run loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax.models.objective import Objective
from aejax.models.registry import get_spec
from aejax.train.state import init_state
from aejax.train.step import make_eval_step, make_train_step


def spec_weights(name, **options):
    """The constant term weights of registry model ``name`` with ``options`` (its spec's)."""
    spec = get_spec(name)
    weights, capacity, _ = spec.weights(spec.options(**options), 1)
    assert capacity is None, "train_direct takes constant weights"
    return {"reconstruction": 1.0, **weights}


def train_direct(model, weights, data, *, epochs, batch_size=64, lr=3e-3, seed=0):
    """Trains ``model`` on ``data.x_train`` with ``make_train_step`` and ``Objective(weights)``.

    Returns:
      ``(train, val, state)``: one dict per epoch of the metrics' means over the examples
      (``loss``, each term, ...) in training and on ``data.x_val``, and the final state.
    """
    objective = Objective(weights)
    state = init_state(model, optax.adam(lr), data.input_shape, seed)
    step = jax.jit(make_train_step(model, optax.adam(lr), objective), donate_argnums=0)
    evaluate = jax.jit(make_eval_step(model, objective))
    x = np.asarray(data.x_train)
    n = len(x) // batch_size * batch_size
    train_hist, val_hist = [], []
    rng = np.random.default_rng(seed)
    xv = np.asarray(data.x_val)
    val_batch = {"x": xv, "weight": np.ones(len(xv), np.float32)}
    key = jax.random.key(seed)  # the step folds its step number in
    for _ in range(epochs):
        order = rng.permutation(len(x))[:n].reshape(-1, batch_size)
        total = None
        for idx in order:
            state, m = step(state, {"x": x[idx]}, key)
            total = m if total is None else jax.tree.map(jnp.add, total, m)
        train_hist.append({k: float(v / total["count"]) for k, v in total.items()})
        ev = evaluate(state.variables(), val_batch)
        val_hist.append({k: float(v / ev["count"]) for k, v in ev.items()})
    return train_hist, val_hist, state
