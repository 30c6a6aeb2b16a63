"""Quality vs PCA: held-out error of every registry model, its PyTorch twin and PCA at one k.

aejax is trained and evaluated by the library itself (``aejax.train_and_evaluate``: best
validation checkpoint, test-split metrics, PCA fitted on the training split at the same
latent size). The twin trains on the same splits with the same protocol
(``peers.torch_train.train_twin``) and is scored by the same metric code.
"""

from __future__ import annotations

import math
import statistics

import aejax
from benchmarks import environment, pca_fit, records
from benchmarks.context import Context
from benchmarks.suites import suite_models

SSE = ("test_sse_per_example", "squared error per example (summed over elements)")


def run(ctx: Context) -> list[dict]:
    """The AE-vs-PCA table: every ``(data, latent)`` of the suite, every registry model."""
    out = []
    for data, latent in ctx.suite.quality:
        if ctx.suite.only_data and data != ctx.suite.only_data:
            continue
        ds = ctx.dataset(data)
        if ds is None:
            continue
        k = min(latent, ds.x_train.shape[0], math.prod(ds.input_shape))
        out += pca_fit.run(ctx, data, ds, k)
        for name in suite_models(ctx.suite):
            ctx.log(f"quality {name} on {data}, latent {latent}")
            out += _model(ctx, name, data, ds, latent)
    return out


def _model(ctx: Context, name: str, data: str, ds: aejax.Dataset, latent: int) -> list[dict]:
    suite = ctx.suite
    runs, twin_runs, config = [], [], None
    for seed in suite.seeds:
        config = ctx.config(
            model=name, data=data, latent_dim=latent, epochs=suite.epochs[data], seed=seed
        )
        try:
            summary = ctx.train_and_evaluate(config, ds)
        except aejax.AejaxError as e:
            ctx.note(f"quality of {name!r} on {data!r} skipped: {e}")
            return []
        runs.append(summary)
        if ctx.torch_ok:
            twin = _train_twin(ctx, name, ds, config)
            if twin is not None:
                twin_runs.append(twin)
    stamp = ctx.stamp()
    common = dict(
        model=name,
        data=data,
        seed=suite.seeds[0],
        env=stamp["env"],
        timestamp=stamp["timestamp"],
        metric=SSE[0],
        unit=SSE[1],
        config={**config.to_dict(), "seeds": list(suite.seeds)},
    )
    values = {
        key: _median([r[key] for r in runs])
        for key in (
            "test_recon_mse",
            "test_psnr",
            "test_bce_per_example",
            "pca_recon_mse",
            "pca_sse_per_example",
            "sse_ratio_ae_over_pca",
            "train_samples_per_sec",
            "wall_seconds",
            "epochs_run",
            "best_epoch",
        )
        if all(r.get(key) is not None for r in runs)
    }
    out = []
    if twin_runs:
        twin_values = {
            "test_recon_mse": _median([t["test"]["recon_mse"] for t in twin_runs]),
            "sse_ratio_vs_pca": _median([t["test"]["sse_per_example"] for t in twin_runs])
            / values["pca_sse_per_example"],
            "train_samples_per_sec": _median([t["train_samples_per_sec"] for t in twin_runs]),
            "train_seconds": _median([t["train_seconds"] for t in twin_runs]),
            "best_epoch": _median([t["best_epoch"] for t in twin_runs]),
            "torch_threads": twin_runs[0]["torch_threads"],
        }
        twin_sse = [t["test"]["sse_per_example"] for t in twin_runs]
        values["sse_ratio_vs_torch"] = _median([r[SSE[0]] for r in runs]) / _median(twin_sse)
        if values.get("train_samples_per_sec") and twin_values["train_samples_per_sec"]:
            values["train_speed_ratio_vs_torch"] = (
                values["train_samples_per_sec"] / twin_values["train_samples_per_sec"]
            )
        out.append(
            records.make_record(
                benchmark="quality",
                implementation="torch",
                samples=twin_sse,
                values=twin_values,
                compile_seconds=None,
                peak_memory=None,
                **common,
            )
        )
    out.insert(
        0,
        records.make_record(
            benchmark="quality",
            implementation="aejax",
            samples=[r[SSE[0]] for r in runs],
            values=values,
            compile_seconds=runs[0]["compile_seconds"],
            peak_memory=environment.peak_memory(),
            **common,
        ),
    )
    return out


def _train_twin(ctx: Context, name: str, ds: aejax.Dataset, config: aejax.Config) -> dict | None:
    import torch

    from benchmarks.peers import torch_train
    from benchmarks.peers.torch_twins import create_twin

    torch.set_num_threads(ctx.torch_threads.get(name, environment.cpu_count()))
    torch.manual_seed(config.seed)
    try:
        twin = create_twin(name, ds.input_shape, config)
    except ValueError as e:  # e.g. an activation the twins do not mirror
        ctx.note(f"no PyTorch twin of {name!r} for this config ({e}): peer skipped")
        return None
    if twin is None:
        ctx.note(f"{name!r} has no PyTorch twin: its peer comparison is skipped")
        return None
    result = torch_train.train_twin(twin, ds, config)
    result["torch_threads"] = torch.get_num_threads()
    return result


def _median(xs: list) -> float:
    return float(statistics.median(xs))
