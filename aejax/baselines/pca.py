"""Principal component analysis in JAX: the linear baseline every autoencoder must beat."""

from __future__ import annotations

import functools
import math
import operator

import flax.struct
import jax
import jax.numpy as jnp

from aejax.errors import ConfigError, DataError

SOLVERS = ("auto", "eigh", "svd")

# On GPUs float32 matmuls default to TF32 (~1e-3 relative error), far from sklearn's answer.
_HIGHEST = jax.lax.Precision.HIGHEST


@flax.struct.dataclass
class PCA:
    """A fitted PCA; a pytree, so it can be passed into jit and saved with Orbax.

    Attributes:
        mean: the training mean, [D] with D = prod(input_shape).
        components: principal axes, [k, D]; rows orthonormal, ordered by decreasing
            explained variance, each with its largest-|value| entry positive.
        explained_variance: variance of the training data along each axis, [k]
            (unbiased, divided by N - 1, as in scikit-learn).
        input_shape: the per-example shape, e.g. (28, 28, 1) or (64,).
    """

    mean: jax.Array
    components: jax.Array
    explained_variance: jax.Array
    input_shape: tuple[int, ...] = flax.struct.field(pytree_node=False)

    @property
    def n_components(self) -> int:
        """The number k of principal components kept."""
        return self.components.shape[0]

    def transform(self, x: jax.typing.ArrayLike) -> jax.Array:
        """Projects examples onto the principal axes.

        Args:
            x: examples, [N, *input_shape].

        Returns:
            [N, k] coordinates along the components.
        """
        x = jnp.asarray(x)
        if x.ndim < 1 or tuple(x.shape[1:]) != tuple(self.input_shape):
            raise DataError(
                f"PCA expected examples of shape [N, *{tuple(self.input_shape)}], "
                f"got {tuple(x.shape)}"
            )
        return _transform(self, x)

    def inverse_transform(self, z: jax.typing.ArrayLike) -> jax.Array:
        """Maps principal coordinates back to input space.

        Args:
            z: coordinates, [N, k].

        Returns:
            [N, *input_shape] reconstructions.
        """
        z = jnp.asarray(z)
        if z.ndim != 2 or z.shape[1] != self.n_components:
            raise DataError(
                f"PCA expected codes of shape [N, {self.n_components}], got {tuple(z.shape)}"
            )
        return _inverse_transform(self, z)

    def reconstruct(self, x: jax.typing.ArrayLike) -> jax.Array:
        """Projects examples onto the principal subspace and back.

        Args:
            x: examples, [N, *input_shape].

        Returns:
            [N, *input_shape] reconstructions, inverse_transform(transform(x)).
        """
        return self.inverse_transform(self.transform(x))


@jax.jit
def _transform(pca: PCA, x: jax.Array) -> jax.Array:
    x2d = x.reshape(x.shape[0], -1).astype(pca.mean.dtype)
    return jnp.matmul(x2d - pca.mean[None, :], pca.components.T, precision=_HIGHEST)


@jax.jit
def _inverse_transform(pca: PCA, z: jax.Array) -> jax.Array:
    z = z.astype(pca.components.dtype)
    x2d = jnp.matmul(z, pca.components, precision=_HIGHEST) + pca.mean[None, :]
    return x2d.reshape(z.shape[0], *pca.input_shape)


def _flip_signs(components: jax.Array) -> jax.Array:
    """Makes the largest-|value| entry of each row positive, like sklearn's svd_flip."""
    rows = jnp.arange(components.shape[0])
    pivots = components[rows, jnp.argmax(jnp.abs(components), axis=1)]
    return components * jnp.where(pivots < 0, -1.0, 1.0).astype(components.dtype)[:, None]


@functools.partial(jax.jit, static_argnames=("n_components", "solver"))
def _fit(x: jax.Array, n_components: int, solver: str) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Fits PCA to x: [N, D]; returns mean [D], components [k, D], explained variance [k]."""
    n = x.shape[0]
    mean = jnp.mean(x, axis=0)
    # Centre before forming any product: the one-pass E[xx^T] - mm^T cancels badly in float32.
    xc = x - mean[None, :]
    if solver == "eigh":
        cov = jnp.matmul(xc.T, xc, precision=_HIGHEST) / (n - 1)
        eigvals, eigvecs = jnp.linalg.eigh(cov)  # ascending
        variance = eigvals[::-1][:n_components]
        components = eigvecs[:, ::-1][:, :n_components].T
    else:
        _, singular, vt = jnp.linalg.svd(xc, full_matrices=False)  # descending
        variance = jnp.square(singular[:n_components]) / (n - 1)
        components = vt[:n_components]
    # Rounding can push the variance of null directions slightly below zero.
    return mean, _flip_signs(components), jnp.maximum(variance, 0.0)


def fit_pca(x: jax.typing.ArrayLike, n_components: int, *, solver: str = "auto") -> PCA:
    """Fits a PCA with a jit-compiled core (one compile per data shape, k and solver).

    Args:
        x: training examples, [N, *input_shape], finite; integer or 16-bit data is cast to
            float32.
        n_components: k, the number of components kept, 1 <= k <= min(N, D) where
            D = prod(input_shape).
        solver: "eigh" (eigendecomposition of the [D, D] covariance; fast when N >> D),
            "svd" (thin SVD of the centred [N, D] data; more accurate), or "auto" (eigh when
            N >= D, else svd).

    Returns:
        The fitted PCA, with components [k, D] and explained_variance [k].
    """
    x = jnp.asarray(x)
    # eigh/svd need at least float32; integer pixels and bf16 activations are upcast.
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    if x.ndim < 2:
        raise DataError(f"PCA expects examples [N, *input_shape], got shape {tuple(x.shape)}")
    n, input_shape = x.shape[0], tuple(x.shape[1:])
    d = math.prod(input_shape)
    if n < 2:
        raise DataError(f"PCA needs at least 2 examples to estimate a variance, got N={n}")
    try:
        k = operator.index(n_components)
    except TypeError:
        raise ConfigError(
            f"n_components must be an integer, got {type(n_components).__name__}"
        ) from None
    if isinstance(n_components, bool) or not 1 <= k <= min(n, d):
        raise ConfigError(
            f"n_components must be in [1, min(N, D)] = [1, {min(n, d)}] for data with "
            f"N={n} examples of D={d} features, got {n_components}"
        )
    if solver not in SOLVERS:
        raise ConfigError(f"unknown PCA solver {solver!r}; expected one of {SOLVERS}")
    if solver == "auto":
        solver = "eigh" if n >= d else "svd"
    # One host sync per fit, before any work: NaN would silently poison every component.
    if not bool(jnp.isfinite(x).all()):
        raise DataError("PCA training data contains NaN or Inf values")

    mean, components, variance = _fit(x.reshape(n, d), n_components=k, solver=solver)
    return PCA(
        mean=mean, components=components, explained_variance=variance, input_shape=input_shape
    )
