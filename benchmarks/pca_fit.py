"""PCA baseline: ``aejax.fit_pca`` vs scikit-learn's PCA, fit seconds and held-out error.

Both fit the same training split at the same k and are scored on the test split by
``aejax.metrics.reconstruction_report`` (unclipped reconstructions, as in the literature).
aejax's first fit compiles; its compile seconds are the first fit minus the steady median.
"""

from __future__ import annotations

import jax
import numpy as np

import aejax
from aejax import metrics
from benchmarks import environment, records, timing
from benchmarks.context import Context
from benchmarks.peers import sklearn_pca


def run(ctx: Context, data: str, ds: aejax.Dataset, k: int) -> list[dict]:
    """Times both fits in interleaved rounds and scores both; two ``pca_fit`` records."""
    ctx.log(f"PCA-{k} on {data}: aejax vs scikit-learn")
    image = ds.kind == "image"

    def fit_aejax():
        return timing.timed(lambda: jax.block_until_ready(aejax.fit_pca(ds.x_train, k)))

    def fit_sklearn():
        return timing.timed(lambda: sklearn_pca.fit(ds.x_train, k))

    first_pca, first = fit_aejax()
    sk_pca, _ = fit_sklearn()  # warm-up: imports, BLAS threads
    seconds = timing.interleaved(
        {"aejax-pca": lambda: fit_aejax()[1], "sklearn-pca": lambda: fit_sklearn()[1]},
        ctx.suite.repeats,
    )
    compile_s = max(first - float(np.median(seconds["aejax-pca"])), 0.0)
    scores = {
        "aejax-pca": metrics.reconstruction_report(
            np.asarray(first_pca.reconstruct(ds.x_test)), ds.x_test, image=image
        ),
        "sklearn-pca": metrics.reconstruction_report(
            sklearn_pca.reconstruct(sk_pca, ds.x_test), ds.x_test, image=image
        ),
    }
    config = {
        "n_components": k,
        "data": data,
        "fit_on": "train split",
        "aejax_solver": "auto",
        "sklearn_svd_solver": "auto",
    }
    out = []
    for impl, secs in seconds.items():
        values = {f"test_{key}": v for key, v in scores[impl].items()}
        if impl == "aejax-pca":
            values["fit_speed_ratio_vs_sklearn"] = float(
                np.median(seconds["sklearn-pca"]) / np.median(secs)
            )
            values["sse_ratio_vs_sklearn"] = (
                scores[impl]["sse_per_example"] / scores["sklearn-pca"]["sse_per_example"]
            )
        stamp = ctx.stamp()
        out.append(
            records.make_record(
                benchmark="pca_fit",
                implementation=impl,
                model="pca",
                data=data,
                config=config,
                seed=0,
                env=stamp["env"],
                metric="fit_seconds",
                unit="s",
                samples=secs,
                compile_seconds=compile_s if impl == "aejax-pca" else None,
                values=values,
                peak_memory=environment.peak_memory(),
                timestamp=stamp["timestamp"],
            )
        )
    return out
