"""XLA compiler options for aejax's own jitted functions, chosen per platform.

On CPU, XLA hands some operations to YNNPACK kernels. Measured on a 2-core x86 CPU
(AVX-512, jax 0.10.2; ``benchmarks/`` and the notes in ``benchmarks/README.md``):

- its matrix multiplications and plain reductions (a gradient's global norm: ~4x faster
  than XLA's loop emitter) win, so both stay on;
- its convolutions are slower than XLA's own: the conv AE's training step is ~1.35x
  faster at batch 64 and ~1.45x at batch 256 with them off.

``LIBRARY_FUSION_TYPE_*`` are the names of XLA's ``DebugOptions`` enum; options XLA does
not know (a future jaxlib) are dropped with a warning instead of failing every compile.

Programs that run once (parameter initialization) are compiled with LLVM optimizations
off: ~0.5 s instead of ~1.5–2.3 s, for values within one float32 ulp of the optimized
program's (threefry and the normal sampler's polynomials are the same; only the
instruction selection differs).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

CPU_OPTIONS: dict[str, Any] = {
    "xla_cpu_experimental_ynn_fusion_type": (
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"
    ),
}
RUN_ONCE_OPTIONS: dict[str, Any] = {"xla_backend_optimization_level": 0}


def compiler_options(platform: str | None = None, *, run_once: bool = False) -> dict[str, Any]:
    """The options for a program compiled for ``platform`` (default: JAX's default backend).

    Args:
      platform: ``"cpu"``, ``"gpu"``, ``"tpu"``, ...; only CPU gets options today.
      run_once: the program runs once (initialization): compile for speed of compiling.

    Returns:
      A dict for ``jax.jit(..., compiler_options=...)``; empty where nothing applies or
      this jaxlib rejects the options.
    """
    platform = platform or jax.default_backend()
    if platform != "cpu":
        return {}
    options = {**CPU_OPTIONS, **(RUN_ONCE_OPTIONS if run_once else {})}
    return options if _accepted(tuple(sorted(options.items()))) else {}


def jit(fun: Callable, *, platform: str | None = None, run_once: bool = False, **kwargs) -> Any:
    """``jax.jit(fun, **kwargs)`` with ``compiler_options(platform, run_once=run_once)``."""
    return jax.jit(
        fun, compiler_options=compiler_options(platform, run_once=run_once) or None, **kwargs
    )


@functools.cache
def _accepted(options: tuple[tuple[str, Any], ...]) -> bool:
    """Whether this jaxlib compiles with ``options`` (checked once per process)."""
    try:
        jax.jit(jnp.negative).lower(jnp.zeros(())).compile(compiler_options=dict(options))
    except jax.errors.JaxRuntimeError as e:
        warnings.warn(
            f"this jaxlib rejects aejax's XLA options {dict(options)} ({e}); compiling "
            "without them (correct, but slower on CPU)",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True
