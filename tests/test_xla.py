"""aejax.xla: the compiler options aejax's jitted functions get on each platform."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import xla


def test_cpu_gets_the_ynnpack_choice_and_other_platforms_nothing():
    assert xla.compiler_options("cpu") == xla.CPU_OPTIONS
    assert xla.compiler_options("cpu", run_once=True) == {
        **xla.CPU_OPTIONS,
        **xla.RUN_ONCE_OPTIONS,
    }
    assert xla.compiler_options("gpu") == {} and xla.compiler_options("tpu") == {}


def test_convolutions_leave_ynnpack_and_keep_their_values():
    # The conv AE's second layer: XLA sends convolutions of about this size to YNNPACK.
    x = jax.random.normal(jax.random.key(0), (64, 14, 14, 32))
    k = jax.random.normal(jax.random.key(1), (3, 3, 32, 64))

    def f(x, k):
        return jax.lax.conv_general_dilated(
            x, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    def ynn_convolutions(fn):
        hlo = fn.lower(x, k).compile().as_text()
        return [line for line in hlo.splitlines() if "__ynn_fusion" in line and "conv" in line]

    assert ynn_convolutions(jax.jit(f)), "XLA's default no longer sends convs to YNNPACK"
    assert not ynn_convolutions(xla.jit(f, platform="cpu"))
    np.testing.assert_allclose(
        xla.jit(f, platform="cpu")(x, k), jax.jit(f)(x, k), rtol=1e-4, atol=1e-3
    )


def test_options_this_jaxlib_rejects_are_dropped_with_a_warning(monkeypatch):
    monkeypatch.setattr(xla, "CPU_OPTIONS", {"xla_cpu_experimental_ynn_fusion_type": "NO_SUCH"})
    with pytest.warns(RuntimeWarning, match="rejects aejax's XLA options"):
        assert xla.compiler_options("cpu") == {}
    assert float(xla.jit(jnp.negative, platform="cpu")(jnp.ones(()))) == -1.0
