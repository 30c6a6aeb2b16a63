"""Test setup: 8 fake CPU devices (for sharding tests) and strict numerics."""

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def digits():
    """The embedded 8x8 digits, split with seed 0."""
    from aejax.data import load_dataset

    return load_dataset("digits", seed=0)
