"""PNG figures of a run (matplotlib, Agg backend): throughput bars and latent-sweep curves."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import analysis  # noqa: E402

COLORS = {"aejax": "#1f77b4", "torch": "#ff7f0e", "pca": "#7f7f7f"}


def throughput(path: pathlib.Path, records: list[dict]) -> pathlib.Path | None:
    """Grouped bars of training and encode samples/s (median, min-max whiskers) per model."""
    panels = [
        (b, analysis.throughput_rows(records, b)) for b in ("train_throughput", "encode_throughput")
    ]
    panels = [(b, rows) for b, rows in panels if rows]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (bench, rows) in zip(axes[0], panels, strict=True):
        size = "B" if bench == "train_throughput" else "rows"
        labels = [f"{r['model']}\n{r['data']}, {size}={r['batch_size']}" for r in rows]
        x = np.arange(len(rows))
        for i, impl in enumerate(("aejax", "torch")):
            med = [r[impl] if r[impl] is not None else np.nan for r in rows]
            lo = [m - (r[f"{impl}_min"] or m) for m, r in zip(med, rows, strict=True)]
            hi = [(r[f"{impl}_max"] or m) - m for m, r in zip(med, rows, strict=True)]
            ax.bar(
                x + (i - 0.5) * 0.4,
                med,
                0.4,
                yerr=[lo, hi],
                capsize=3,
                color=COLORS[impl],
                label="aejax (JAX)" if impl == "aejax" else "PyTorch twin (faster thread setting)",
            )
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("samples / s (median, min-max)")
        ax.set_title("training step" if bench == "train_throughput" else "encode")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def latent_sweep(path: pathlib.Path, records: list[dict]) -> pathlib.Path | None:
    """Test SSE per example vs latent size: one curve per registry model, and PCA."""
    series = analysis.sweep_series(records)
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    pca_drawn = False
    for name, points in series.items():
        latents = [p["latent"] for p in points]
        ax.plot(latents, [p["ae_sse"] for p in points], "o-", label=f"{name} (aejax)")
        if not pca_drawn:
            ax.plot(
                latents, [p["pca_sse"] for p in points], "s--", color=COLORS["pca"], label="PCA"
            )
            pca_drawn = True
    data = next(iter(series.values()))[0]["data"]
    epochs = next(iter(series.values()))[0]["epochs"]
    ax.set_xscale("log", base=2)
    ticks = sorted({p["latent"] for pts in series.values() for p in pts})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("latent size")
    ax.set_ylabel("test SSE per example")
    ax.set_title(f"AE vs PCA on {data} (epochs per point: {epochs})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def quality(path: pathlib.Path, records: list[dict]) -> pathlib.Path | None:
    """Bars of test SSE per example: each model (aejax, PyTorch twin) beside PCA, per data set."""
    rows = analysis.quality_rows(records)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(rows)), 4))
    x = np.arange(len(rows))
    bars = [
        ("aejax", "ae_sse", "aejax"),
        ("torch", "torch_sse", "PyTorch twin"),
        ("pca", "pca_sse", "PCA, same k"),
    ]
    for i, (color, key, label) in enumerate(bars):
        vals = [r[key] if r[key] is not None else np.nan for r in rows]
        ax.bar(x + (i - 1) * 0.27, vals, 0.27, color=COLORS[color], label=label)
    ax.set_xticks(x, [f"{r['model']}\n{r['data']}, k={r['latent']}" for r in rows], fontsize=8)
    ax.set_ylabel("test SSE per example (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
