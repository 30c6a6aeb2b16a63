"""XLA's CPU client aborts a multi-device program when the host runs far ahead (no aejax).

A standalone reproduction (jax/jaxlib 0.10.2): a jitted step whose batch sum is an
all-reduce over 8 fake CPU devices, called 2,000 times without waiting for a result.

    python benchmarks/xla_cpu_rendezvous.py                   # fewer than 16 cores: aborts
    python benchmarks/xla_cpu_rendezvous.py --pace 16         # waits every 16 calls: completes
    PJRT_NPROC=16 python benchmarks/xla_cpu_rendezvous.py     # 16 pool threads: completes

Without ``--pace``, on a machine with fewer than twice as many cores as devices, XLA
logs "This thread has been waiting for `all reduce ...` for 20 seconds and may be
stuck", then aborts the process (SIGABRT, exit 134) after 40 s: "Expected 8 threads
to join the rendezvous, but only 7 of them arrived on time". Measured on 2 cores: 2, 4
and 8 devices all abort; ``PJRT_NPROC`` (the thread count XLA's CPU client reads) below
2 x devices aborts, at 2 x devices completes; waiting every 16 or 32 calls completes,
every 48 or 64 aborts. The cause (see docs/scaling.md): one thread pool of
max(cores, devices) threads runs both each device's launch, which first takes one of its
device's 32 in-flight permits and blocks its thread while none is free, and each
device's program, which holds a thread until its all-reduce has all participants.
"""

import argparse

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, NamedSharding, PartitionSpec

p = argparse.ArgumentParser()
p.add_argument("--devices", type=int, default=8)
p.add_argument("--steps", type=int, default=2000)
p.add_argument("--pace", type=int, default=0, help="wait for the result every N calls")
args = p.parse_args()

jax.config.update("jax_num_cpu_devices", args.devices)
mesh = jax.make_mesh((args.devices,), ("data",), axis_types=(AxisType.Auto,))
x = jax.device_put(jnp.ones((64, 16)), NamedSharding(mesh, PartitionSpec("data")))
w = jax.device_put(jnp.zeros((16, 16)), NamedSharding(mesh, PartitionSpec()))
step = jax.jit(lambda w, x: w - 1e-6 * (x @ w + x).T @ x)  # sums over the sharded batch
for i in range(args.steps):
    w = step(w, x)
    if args.pace and (i + 1) % args.pace == 0:
        w.block_until_ready()
w.block_until_ready()
print(f"completed {args.steps} steps on {args.devices} devices")
