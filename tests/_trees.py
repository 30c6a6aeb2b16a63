"""Test helpers: pytrees as host numpy arrays (typed PRNG keys as their raw key data)."""

import jax
import numpy as np


def host(x) -> np.ndarray:
    """One leaf as numpy; a typed key becomes its uint32 key data."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)


def host_leaves(tree) -> list[np.ndarray]:
    """Every leaf of ``tree`` as numpy, in tree order."""
    return [host(x) for x in jax.tree.leaves(tree)]
