"""The default table detector's core: small autoencoders and an isolation forest that vote.

``AnomalyDetector()`` on a table (``model=None``) fits an ``Ensemble``:

- ``members`` small dense autoencoders ``D -> hidden -> code -> hidden -> D`` (one Flax
  module, vmapped over the members, so they train as one compiled program), each on its own
  bootstrap minibatches and from its own initialization, for a few passes (a short fit: an
  autoencoder trained long learns to reconstruct the anomalies too; RandNet, Chen et al.
  2017, and the members' diversity is what makes their average robust);
- each member's score is its summed squared error on the standardized row, divided by the
  median of that member's error over the training rows (members then weigh the same);
- an ``sklearn.ensemble.IsolationForest`` on the standardized rows (Liu et al. 2008);
- the vote: each of the two scores mapped to a robust z, ``(s - median) / IQR`` over the
  training rows, and the mean taken (Aggarwal & Sathe 2015: normalize each detector's
  scores before combining them).

Every default (members, width, code, passes, activation, feature share, the vote) was
chosen by leaving ADBench sets out (``benchmarks/anomaly_cv.py``, ``docs/results.md``).

A row's score does not depend on the rows scored with it (rows go through one compiled
program of ``ROWS`` rows), and a fit is deterministic for a seed, to the bit on one CPU.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax.errors import ConfigError

ROWS = 256  # rows per compiled scoring call
ACTIVATIONS = {"sigmoid": nn.sigmoid, "tanh": jnp.tanh, "relu": nn.relu, "gelu": nn.gelu}
VOTES = ("vote", "reconstruction", "isolation")
# The default threshold (``threshold=None``, no contamination): a row is an outlier when its
# score, a robust z, exceeds this fence. Chosen by the best mean F1 against the labels over
# the 20 ADBench sets (``benchmarks/anomaly_cv.py``) among fences 0.25..2 on the vote, the
# top 5, 10 or 15% of the training rows and the MAD and IQR rules: all 20 leave-one-set-out
# folds picked 0.75 (left-out F1 0.326; the top 15%: 0.303; IsolationForest's own "auto"
# rule: 0.316 on the same sets). On clean data it still flags rows, as scikit-learn's do.
AUTO_FENCE = 0.75


@dataclasses.dataclass(frozen=True)
class EnsembleOptions:
    """The ensemble's settings (``AnomalyDetector`` takes each as a keyword).

    Attributes:
      members: autoencoders in the ensemble.
      hidden: units of each member's hidden layers.
      code: each member's code width; ``"sqrt"``: ``max(2, round(sqrt(D)))``.
      passes: training passes over the rows: ``passes * max(1, N // batch_size)`` steps.
      batch_size: rows per member and step (bootstrap draws).
      lr: Adam's learning rate.
      activation: of the hidden layers (``ACTIVATIONS``).
      feature_fraction: the share of the features each member sees (a random subset, at
        least one; 1.0: all).
      trees: the isolation forest's trees.
    """

    members: int = 16
    hidden: int = 64
    code: int | str = "sqrt"
    passes: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    activation: str = "sigmoid"
    feature_fraction: float = 1.0
    trees: int = 100

    def __post_init__(self):
        ints = ("members", "hidden", "passes", "batch_size", "trees")
        for name in ints:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ConfigError(f"{name}={v!r}: expected a positive integer")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"activation={self.activation!r}: expected one of {', '.join(ACTIVATIONS)}"
            )
        if not (isinstance(self.lr, float | int) and self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr={self.lr!r}: expected a positive number")
        f = self.feature_fraction
        if isinstance(f, bool) or not isinstance(f, float | int) or not 0 < f <= 1:
            raise ConfigError(f"feature_fraction={f!r}: expected a share in (0, 1]")
        c = self.code
        if not (
            c == "sqrt" or (isinstance(c, int | np.integer) and not isinstance(c, bool) and c >= 1)
        ):
            raise ConfigError(f"code={c!r}: expected a positive integer or 'sqrt'")

    def code_width(self, n_features: int) -> int:
        """The code width for ``n_features`` columns (never above ``n_features``)."""
        width = max(2, round(math.sqrt(n_features))) if self.code == "sqrt" else int(self.code)
        return max(1, min(width, n_features))

    def steps(self, n_rows: int) -> int:
        """Training steps for ``n_rows`` rows."""
        return self.passes * max(1, n_rows // self.batch_size)


def fit_key(seed: int) -> jax.Array:
    """The fit's key: JAX's ``"rbg"`` generator seeded with ``seed`` (deterministic)."""
    return jax.random.key(seed, impl="rbg")


class _Member(nn.Module):
    """One autoencoder: ``x: [B, D] -> (reconstruction [B, D], code [B, C])``."""

    hidden: int
    code: int
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        act = ACTIVATIONS[self.activation]
        z = nn.Dense(self.code)(act(nn.Dense(self.hidden)(x)))
        return nn.Dense(x.shape[-1])(act(nn.Dense(self.hidden)(z))), z


def _members(options: EnsembleOptions, n_features: int) -> nn.Module:
    """The members as one module: ``x: [M, B, D] -> ([M, B, D], [M, B, C])``."""
    stacked = nn.vmap(
        _Member,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=0,
        out_axes=0,
        axis_size=options.members,
    )
    return stacked(options.hidden, options.code_width(n_features), options.activation)


def _feature_masks(key: jax.Array, members: int, n_features: int, share: float) -> jax.Array:
    """``[M, D]`` 0/1 float32: each member's features (at least one: its smallest draw)."""
    u = jax.random.uniform(key, (members, n_features))
    keep = (u < share) | (u == u.min(axis=1, keepdims=True))
    return keep.astype(jnp.float32)


# The fit runs once per data set, so its compile time is most of its cost: XLA's backend
# optimization level 1 compiles it ~25% faster than the default for the same run time
# (a few hundred steps of a tiny network), and the key is JAX's "rbg" generator, whose
# RngBitGenerator compiles in a fraction of threefry's time (``fit_key``).
@functools.partial(
    jax.jit,
    static_argnames=("options",),
    compiler_options={"xla_backend_optimization_level": 1},
)
def fit_members(x: jax.Array, key: jax.Array, options: EnsembleOptions) -> tuple[Any, ...]:
    """Trains the members on ``x: [N, D]`` float32 (standardized) as one program;
    ``key`` from ``fit_key``.

    Returns:
      ``(params, masks [M, D], losses [steps])``: the members' parameters (leading axis
      ``M``), their feature masks and the mean training loss of each step.
    """
    n, d = x.shape
    module = _members(options, d)
    k_init, k_mask, k_steps = jax.random.split(key, 3)
    masks = _feature_masks(k_mask, options.members, d, options.feature_fraction)
    params = module.init(k_init, jnp.zeros((options.members, 1, d), x.dtype))["params"]
    opt = optax.adam(options.lr)

    def loss_fn(p, xb):  # xb: [M, B, D]
        recon, _ = module.apply({"params": p}, xb * masks[:, None])
        sse = jnp.sum(jnp.square((recon - xb) * masks[:, None]), axis=-1)  # [M, B]
        return jnp.mean(sse, axis=1).sum(), jnp.mean(sse)

    def step(carry, k):
        p, s = carry
        idx = jax.random.randint(k, (options.members, options.batch_size), 0, n)
        (_, loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, x[idx])
        updates, s = opt.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), loss

    keys = jax.random.split(k_steps, options.steps(n))
    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), keys)
    return params, masks, losses


@functools.partial(jax.jit, static_argnames=("options",))
def _member_outputs(params, masks, x, options: EnsembleOptions):
    """``x: [ROWS, D]`` -> (``[M, ROWS, D]`` squared errors, ``[M, ROWS, C]`` codes)."""
    module = _members(options, x.shape[-1])
    xm = x[None] * masks[:, None]
    recon, codes = module.apply({"params": params}, xm)
    return jnp.square((recon - x[None]) * masks[:, None]), codes


def member_outputs(
    params, masks, x: np.ndarray, options: EnsembleOptions
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature squared errors ``[M, N, D]`` and codes ``[M, N, C]`` (float64) of
    ``x: [N, D]`` standardized rows, ``ROWS`` at a time (a row's result does not depend on
    the rows beside it)."""
    n = x.shape[0]
    pad = (-n) % ROWS
    xp = np.concatenate([np.asarray(x, np.float32), np.zeros((pad, x.shape[1]), np.float32)])
    errs, codes = [], []
    for start in range(0, xp.shape[0], ROWS):
        e, c = _member_outputs(params, masks, jnp.asarray(xp[start : start + ROWS]), options)
        errs.append(np.asarray(e, np.float64))
        codes.append(np.asarray(c, np.float64))
    return np.concatenate(errs, axis=1)[:, :n], np.concatenate(codes, axis=1)[:, :n]


def robust_scale(scores: np.ndarray) -> tuple[float, float]:
    """``(median, IQR)`` of ``scores: [N]``, the IQR floored so that a constant score maps
    to 0 rather than dividing by zero."""
    s = np.asarray(scores, np.float64)
    q1, med, q3 = np.quantile(s, [0.25, 0.5, 0.75])
    spread = q3 - q1
    if not spread > 0:
        spread = max(float(np.max(np.abs(s - med))), 1.0) if s.size else 1.0
    return float(med), float(spread)


class Ensemble:
    """A fitted ensemble (see the module docstring); rows are standardized by the caller.

    Attributes:
      options: the ``EnsembleOptions``.
      params, masks: the members' parameters (numpy) and ``[M, D]`` feature masks.
      member_scale: ``[M]`` each member's median training error.
      forest: the fitted ``IsolationForest``.
      scales: ``{"reconstruction": (median, IQR), "isolation": (median, IQR)}`` of the
        training rows' scores.
      losses: ``[steps]`` the mean training loss of each step.
    """

    def __init__(self, options: EnsembleOptions, vote: str = "vote"):
        if vote not in VOTES:
            raise ConfigError(f"score_type={vote!r}: the ensemble scores {', '.join(VOTES)}")
        self.options = options
        self.vote = vote

    def fit(self, x: np.ndarray, seed: int) -> Ensemble:
        """Fits on ``x: [N, D]`` standardized rows. Returns ``self``."""
        from sklearn.ensemble import IsolationForest

        key = fit_key(seed)
        params, masks, losses = fit_members(jnp.asarray(x, jnp.float32), key, self.options)
        self.params = jax.device_get(params)
        self.masks = np.asarray(masks)
        self.losses = np.asarray(losses, np.float64)
        errors = member_outputs(self.params, self.masks, x, self.options)[0].sum(axis=2)
        self.member_scale = np.maximum(np.median(errors, axis=1), np.finfo(np.float64).tiny)
        self.forest = IsolationForest(n_estimators=self.options.trees, random_state=seed).fit(x)
        parts = self._parts(x, errors)
        self.scales = {name: robust_scale(s) for name, s in parts.items()}
        return self

    def _parts(self, x: np.ndarray, errors: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if errors is None:
            errors = member_outputs(self.params, self.masks, x, self.options)[0].sum(axis=2)
        recon = (errors / self.member_scale[:, None]).mean(axis=0)
        return {"reconstruction": recon, "isolation": -self.forest.score_samples(x)}

    def scores(self, x: np.ndarray) -> np.ndarray:
        """``[N]`` float64 anomaly scores of standardized rows ``x: [N, D]`` (higher = worse):
        the robust z of the reconstruction vote, of the isolation forest, or their mean."""
        parts = self._parts(x)
        z = {k: (v - self.scales[k][0]) / self.scales[k][1] for k, v in parts.items()}
        if self.vote == "vote":
            return (z["reconstruction"] + z["isolation"]) / 2.0
        return z[self.vote]

    def feature_errors(self, x: np.ndarray) -> np.ndarray:
        """``[N, D]`` each feature's squared error, averaged over the members that see it,
        each member divided by its median training error: which features make a row
        anomalous to the autoencoders."""
        errs = member_outputs(self.params, self.masks, x, self.options)[0]
        errs = errs / self.member_scale[:, None, None]
        seen = np.maximum(self.masks.sum(axis=0), 1.0)
        return errs.sum(axis=0) / seen

    def codes(self, x: np.ndarray) -> np.ndarray:
        """``[N, M * C]`` the members' codes of standardized rows, side by side."""
        codes = member_outputs(self.params, self.masks, x, self.options)[1]
        return np.concatenate(list(codes), axis=1)
