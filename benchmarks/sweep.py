"""Latent-size sweep: held-out error of the suite's models and of PCA at each latent size."""

from __future__ import annotations

import math

import aejax
from benchmarks import environment, records
from benchmarks.context import Context
from benchmarks.quality import SSE
from benchmarks.suites import NO_LATENT_SWEEP, suite_models


def run(ctx: Context) -> list[dict]:
    """Trains the suite's sweep models at every sweep latent size (up to the data dimension)."""
    suite = ctx.suite
    data = suite.only_data or suite.sweep_data
    ds = ctx.dataset(data)
    if ds is None:
        return []
    dim = min(math.prod(ds.input_shape), ds.x_train.shape[0])
    latents = [k for k in suite.sweep_latents if k <= dim]
    if len(latents) < len(suite.sweep_latents):
        ctx.note(f"sweep on {data!r}: latent sizes above its dimension {dim} left out")
    out = []
    names = suite.sweep_models or [n for n in suite_models(suite) if n not in NO_LATENT_SWEEP]
    for name in names:
        for latent in latents:
            ctx.log(f"sweep {name} on {data}, latent {latent}")
            config = ctx.config(model=name, data=data, latent_dim=latent, epochs=suite.sweep_epochs)
            try:
                summary = ctx.train_and_evaluate(config, ds)
            except aejax.AejaxError as e:
                ctx.note(f"sweep of {name!r} on {data!r} skipped: {e}")
                break
            stamp = ctx.stamp()
            values = {
                k: summary[k]
                for k in (
                    "test_recon_mse",
                    "pca_recon_mse",
                    "pca_sse_per_example",
                    "sse_ratio_ae_over_pca",
                    "wall_seconds",
                )
                if summary.get(k) is not None  # no ratio once latent_dim >= the features
            }
            out.append(
                records.make_record(
                    benchmark="sweep",
                    implementation="aejax",
                    model=name,
                    data=data,
                    config=config.to_dict(),
                    seed=config.seed,
                    env=stamp["env"],
                    metric=SSE[0],
                    unit=SSE[1],
                    samples=[summary[SSE[0]]],
                    compile_seconds=summary["compile_seconds"],
                    values=values,
                    peak_memory=environment.peak_memory(),
                    timestamp=stamp["timestamp"],
                )
            )
    return out
