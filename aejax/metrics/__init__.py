"""Metrics, one home each: ``reconstruction`` (per-example errors, PSNR, SSIM; jax),
``detection`` (ROC-AUC, AP, precision@n of anomaly scores; scikit-learn) and ``vus``
(range-aware Range-AUC, VUS-ROC and VUS-PR of a series' point scores; numpy).

``aejax.metrics.X`` reaches both; the detection names load scikit-learn on first use only,
so the training step (which reads the reconstruction metrics) never imports it.
"""

from __future__ import annotations

import importlib
from typing import Any

from aejax.metrics.reconstruction import (
    PSNR_CAP_DB,
    PSNR_MSE_FLOOR,
    bce_per_example,
    masked_psnr,
    mse_per_example,
    psnr,
    psnr_per_example,
    quality_report,
    reconstruction_report,
    squared_error_per_example,
    ssim,
    ssim_filter_size,
)
from aejax.metrics.vus import range_auc, vus

_DETECTION = ("average_precision", "detection_report", "precision_at_n", "roc_auc")


def __getattr__(name: str) -> Any:
    if name in _DETECTION:
        return getattr(importlib.import_module("aejax.metrics.detection"), name)
    raise AttributeError(f"module 'aejax.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_DETECTION])


__all__ = [
    "PSNR_CAP_DB",
    "PSNR_MSE_FLOOR",
    "average_precision",
    "bce_per_example",
    "detection_report",
    "masked_psnr",
    "mse_per_example",
    "precision_at_n",
    "psnr",
    "psnr_per_example",
    "quality_report",
    "range_auc",
    "reconstruction_report",
    "roc_auc",
    "squared_error_per_example",
    "ssim",
    "ssim_filter_size",
    "vus",
]
