"""FLOP counting and the machine's float32 matmul peak, so throughput reads as % of peak.

``matmul_flops`` counts the multiply-adds of every ``dot_general`` and
``conv_general_dilated`` in a function's jaxpr (2 FLOPs each), the work as executed: the
sub-pixel transposed convolution, for one, computes 16 taps per output quad where
``ConvTranspose`` computes 9. Elementwise work (activations, the loss, Adam) is not
counted, so "% of matmul peak" is the share of the step's time spent at the machine's
matmul speed.

The peak is the fastest of ``PEAK_REPEATS`` interleaved repeats of a float32
``2048 x 2048 x 2048`` matmul in JAX and in NumPy's BLAS, at the start of the run. The best
repeat, not the median: a peak is what the machine can do, and other processes on a shared
machine only ever lower a repeat (a median taken while the machine was busy once put a
training step above "100% of peak"; the best repeats here reach ~200 GFLOP/s, the 2-core
AVX2-FMA bound).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import environment, records, timing
from benchmarks.context import Context

PEAK_SIZE = 2048
PEAK_REPEATS = 9


def matmul_flops(fn: Callable, *args) -> int:
    """FLOPs of the matrix products and convolutions of ``fn(*args)`` (traced, not run)."""
    return _jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def _jaxpr_flops(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            k = math.prod(eqn.invars[0].aval.shape[d] for d in lhs_contract)
            total += 2 * math.prod(eqn.outvars[0].aval.shape) * k
        elif name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, *spatial) positions
            taps = math.prod(rhs[d] for d in spec[2:]) * rhs[spec[1]]
            total += 2 * math.prod(eqn.outvars[0].aval.shape) * taps
        for sub in _subjaxprs(eqn.params):
            total += _jaxpr_flops(sub)
    return total


def _subjaxprs(params: dict):
    for value in params.values():
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if hasattr(v, "eqns"):  # a Jaxpr
                yield v
            elif hasattr(v, "jaxpr") and hasattr(v.jaxpr, "eqns"):  # a ClosedJaxpr
                yield v.jaxpr


def run(ctx: Context) -> list[dict]:
    """Times the peak matmul; sets ``ctx.matmul_peak_gflops``; one record per implementation."""
    n = PEAK_SIZE
    ctx.log(f"float32 matmul peak ({n}^3): JAX and NumPy")
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    ja, jb = jax.device_put(a), jax.device_put(b)
    jax_mm = jax.jit(jnp.matmul)
    runners = {
        "jax": lambda: timing.timed(lambda: jax.block_until_ready(jax_mm(ja, jb)))[1],
        "numpy": lambda: timing.timed(lambda: a @ b)[1],
    }
    for r in runners.values():  # compile, BLAS threads
        r()
    seconds = timing.interleaved(runners, max(ctx.suite.repeats, PEAK_REPEATS))
    gflops = {k: [2 * n**3 / s / 1e9 for s in v] for k, v in seconds.items()}
    ctx.matmul_peak_gflops = max(max(v) for v in gflops.values())
    stamp = ctx.stamp()
    return [
        records.make_record(
            benchmark="matmul_peak",
            implementation=impl,
            model="matmul",
            data=f"random-{n}",
            config={"n": n, "dtype": "float32"},
            seed=0,
            env=stamp["env"],
            metric="gflops",
            unit="GFLOP/s",
            samples=v,
            values={"peak_gflops": ctx.matmul_peak_gflops},
            peak_memory=environment.peak_memory(),
            timestamp=stamp["timestamp"],
        )
        for impl, v in gflops.items()
    ]
