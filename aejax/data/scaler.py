"""Per-feature standardization of tabular data, fitted on the training split only."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from aejax.data._validate import check_array, check_finite
from aejax.errors import DataError

# A column whose std is at most this times |mean| is constant up to float32 rounding; a std
# below the smallest normal float32 would round to 0 (or lose its precision) in float32.
_CONSTANT_RTOL = float(np.finfo(np.float32).eps)
_CONSTANT_ATOL = float(np.finfo(np.float32).tiny)


@dataclasses.dataclass(frozen=True, eq=False)
class Standardizer:
    """``(x - mean) / scale`` per feature.

    Constant columns (std 0, below float32 resolution relative to their mean, or below the
    smallest normal float32) get ``scale = 1``: they map to 0 instead of dividing by zero,
    and invert exactly.

    Attributes:
      mean: ``[D]`` float32 per-feature mean of the data it was fitted on.
      scale: ``[D]`` float32 per-feature standard deviation (1.0 for constant columns).
    """

    mean: np.ndarray
    scale: np.ndarray

    def __post_init__(self):
        mean = np.ascontiguousarray(self.mean, dtype=np.float32)
        scale = np.ascontiguousarray(self.scale, dtype=np.float32)
        if mean.ndim != 1 or mean.shape != scale.shape or mean.size == 0:
            raise DataError(
                f"Standardizer: mean {mean.shape} and scale {scale.shape} must be equal, "
                "non-empty [D] vectors"
            )
        check_finite(mean, "Standardizer", what="mean")
        check_finite(scale, "Standardizer", what="scale")
        if (scale <= 0).any():
            raise DataError("Standardizer: every scale must be > 0")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "scale", scale)

    @property
    def num_features(self) -> int:
        """The feature count ``D``."""
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        """Fits mean and scale per column.

        Args:
          x: ``[N, D]`` numeric, finite, N >= 1.

        Returns:
          A Standardizer with ``[D]`` float32 mean and scale.
        """
        x = check_array(x, "Standardizer.fit", what="x")
        if x.ndim != 2:
            raise DataError(f"Standardizer.fit: x has shape {x.shape}; expected [N, D]")
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=0)
        std = x64.std(axis=0)
        constant = (std <= _CONSTANT_RTOL * np.abs(mean)) | (std < _CONSTANT_ATOL)
        scale = np.where(constant, 1.0, std)
        return cls(mean=mean, scale=scale)

    def _check(self, x: Any, name: str) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise DataError(f"Standardizer.{name}: x has non-numeric dtype {x.dtype}")
        if x.ndim == 0 or x.shape[-1] != self.num_features:
            raise DataError(
                f"Standardizer.{name}: x has shape {x.shape}; expected [..., "
                f"{self.num_features}] ({self.num_features} features)"
            )
        check_finite(x, f"Standardizer.{name}", what="x")
        return x.astype(np.float64)

    def transform(self, x: Any) -> np.ndarray:
        """Maps raw units to standardized units.

        Args:
          x: ``[..., D]`` numeric, finite.

        Returns:
          ``[..., D]`` float32 ``(x - mean) / scale``.
        """
        x = self._check(x, "transform")
        return np.ascontiguousarray((x - self.mean) / self.scale, dtype=np.float32)

    def inverse_transform(self, x: Any) -> np.ndarray:
        """Maps standardized units back to raw units.

        Args:
          x: ``[..., D]`` numeric, finite.

        Returns:
          ``[..., D]`` float32 ``x * scale + mean``.
        """
        x = self._check(x, "inverse_transform")
        return np.ascontiguousarray(x * self.scale + self.mean, dtype=np.float32)

    def to_dict(self) -> dict:
        """Returns ``{"mean": [D floats], "scale": [D floats]}``, JSON-serializable."""
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Standardizer:
        """Rebuilds a Standardizer from ``to_dict``'s output.

        Args:
          d: ``{"mean": [D floats], "scale": [D floats]}``.

        Returns:
          The Standardizer; DataError when keys are missing or the vectors do not match.
        """
        if not isinstance(d, dict) or not {"mean", "scale"} <= d.keys():
            keys = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise DataError(f"Standardizer.from_dict: need keys 'mean' and 'scale', got {keys}")
        try:
            mean = np.asarray(d["mean"], dtype=np.float32)
            scale = np.asarray(d["scale"], dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise DataError(f"Standardizer.from_dict: mean/scale are not numbers: {e}") from e
        return cls(mean=mean, scale=scale)
