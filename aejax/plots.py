"""Figures written into run directories (matplotlib, Agg backend, headless)."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aejax import inference  # noqa: E402


def reconstructions(
    path: str | pathlib.Path, model, variables, pca, ds, n: int = 10, label: str = "autoencoder"
) -> None:
    """Draws test originals, the model's reconstructions and PCA's in three rows.

    Images are shown as pictures; tabular rows as line plots of their features.
    """
    x = ds.x_test[:n]
    n = x.shape[0]
    ae, _ = inference.reconstruct(model, variables, x)
    pc = np.asarray(pca.reconstruct(x))
    rows = [("original", x), (label, ae), (f"PCA-{pca.components.shape[0]}", pc)]
    if ds.kind == "image":
        fig, axes = plt.subplots(3, n, figsize=(1.2 * n, 3.8), squeeze=False)
        for r, (label, imgs) in enumerate(rows):
            for c in range(n):
                ax = axes[r, c]
                img = np.clip(imgs[c], 0, 1)
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[r, 0].set_ylabel(label, fontsize=8)
    else:
        fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.4), squeeze=False)
        for c in range(n):
            ax = axes[0, c]
            for label, arr in rows:
                ax.plot(arr[c].reshape(-1), label=label, lw=1)
            ax.set_xticks([])
        axes[0, 0].legend(fontsize=6)
    fig.suptitle(f"{ds.name}: test reconstructions", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def code_scatter(
    path: str | pathlib.Path,
    codes: np.ndarray,
    labels: np.ndarray | None,
    prior: np.ndarray | None = None,
    title: str = "",
) -> None:
    """Two panels: 2-D codes ``[N, 2]`` coloured by label, beside prior samples ``[M, 2]``.

    Codes of more than two dimensions are drawn by their first two.
    """
    codes = np.asarray(codes).reshape(len(codes), -1)[:, :2]
    panels = 2 if prior is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 4.2), squeeze=False)
    ax = axes[0, 0]
    sc = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7)
    if labels is not None:
        fig.colorbar(sc, ax=ax, ticks=np.unique(labels))
    ax.set_title(f"test codes{' by label' if labels is not None else ''}", fontsize=9)
    if prior is not None:
        prior = np.asarray(prior).reshape(len(prior), -1)[:, :2]
        axes[0, 1].scatter(prior[:, 0], prior[:, 1], s=3, alpha=0.5, color="gray")
        axes[0, 1].set_title("prior samples", fontsize=9)
        lo = np.minimum(codes.min(0), prior.min(0))
        hi = np.maximum(codes.max(0), prior.max(0))
        for a in axes[0]:
            a.set_xlim(lo[0], hi[0])
            a.set_ylim(lo[1], hi[1])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _show(ax, img: np.ndarray) -> None:
    img = np.clip(img, 0, 1)
    ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(
    path: str | pathlib.Path, images: np.ndarray, ncols: int = 8, title: str | None = None
) -> None:
    """Writes ``images: [N, H, W, C]`` in [0, 1] (C = 1 or 3) as a grid, row by row."""
    n = images.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols, nrows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            _show(ax, images[i])
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def interpolation_grid(
    path: str | pathlib.Path, paths: np.ndarray, title: str | None = None
) -> None:
    """Writes ``paths: [P, steps, H, W, C]`` in [0, 1]: one row per pair, left to right."""
    p, steps = paths.shape[:2]
    fig, axes = plt.subplots(p, steps, figsize=(steps, p + 0.4), squeeze=False)
    for r in range(p):
        for c in range(steps):
            _show(axes[r, c], paths[r, c])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
