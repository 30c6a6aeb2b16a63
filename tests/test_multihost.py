"""Two processes on one machine run the multi-host path and match a single process."""

import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import aejax
from aejax.train.state import init_state

WORKER = Path(__file__).with_name("_multihost_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path, digits):
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(port), str(i), str(tmp_path / f"{i}.npy")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert "runtime main True" in outs[0][0] and "runtime main False" in outs[1][0]
    a, b = np.load(tmp_path / "0.npy"), np.load(tmp_path / "1.npy")
    np.testing.assert_array_equal(a, b)

    config = aejax.Config(hidden=(32,), latent_dim=4, warmup_steps=0, schedule="constant")
    model = aejax.model_from_config(config, digits.input_shape, "image")
    tx = aejax.make_optimizer(config, 100)
    state = init_state(model, tx, digits.input_shape, 0)
    step = jax.jit(aejax.make_train_step(model, tx))
    for i in range(4):
        state, _ = step(
            state, jnp.asarray(digits.x_train[i * 64 : (i + 1) * 64]), jax.random.key(1)
        )
    single = np.concatenate([np.ravel(x) for x in jax.tree.leaves(state.params)])
    np.testing.assert_allclose(a, single, rtol=1e-5, atol=1e-6)
