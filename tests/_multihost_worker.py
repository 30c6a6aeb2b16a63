"""One process of a 2-process CPU run (spawned by test_multihost.py): a few sharded steps."""

import sys

import jax

jax.config.update("jax_num_cpu_devices", 2)  # 2 processes x 2 devices = a 4-device mesh
port, pid, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

from aejax.train import runtime  # noqa: E402

runtime.initialize_distributed(f"127.0.0.1:{port}", 2, pid)

import numpy as np  # noqa: E402

import aejax  # noqa: E402
from aejax.train import shard  # noqa: E402
from aejax.train.state import init_state  # noqa: E402

assert jax.process_count() == 2 and jax.device_count() == 4, (jax.process_count(), jax.devices())
ds = aejax.load_dataset("digits")
config = aejax.Config(hidden=(32,), latent_dim=4, warmup_steps=0, schedule="constant")
model = aejax.model_from_config(config, ds.input_shape, "image")
tx = aejax.make_optimizer(config, 100)
mesh = shard.make_mesh()  # all 4 devices of both processes
state = shard.replicate(init_state(model, tx, ds.input_shape, 0), mesh)
step = jax.jit(aejax.make_train_step(model, tx), donate_argnums=0)
key = shard.replicate(jax.random.key(1), mesh)
for i in range(4):
    state, metrics = step(state, shard.put_batch(ds.x_train[i * 64 : (i + 1) * 64], mesh), key)
# Replicated values are not fully addressable from one process: fetch reads a local copy.
flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(shard.fetch(state.params))])
np.save(out, flat)
print("loss", float(shard.fetch(metrics)["loss"]), "runtime main", runtime.is_main_process())
