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
