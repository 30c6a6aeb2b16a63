"""Figures written into run directories (matplotlib, Agg backend, headless).

Importing it imports no jax: the figures of a model's outputs import ``aejax.inference``
when they are drawn, so ``aejax compare`` draws learning curves without it.
"""

from __future__ import annotations

import pathlib
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aejax.errors import ConfigError  # noqa: E402

# The tabular figure: at most this many features (the worst reconstructed) and test rows.
TOP_FEATURES = 30
TABLE_ROWS = 3


def reconstructions(
    path: str | pathlib.Path, model, variables, pca, ds, n: int = 10, label: str = "autoencoder"
) -> None:
    """Draws test originals, the model's reconstructions and PCA's.

    Images are shown as pictures in three rows. Tables get ``tabular_reconstructions``'s
    figure: per-feature errors by column name, and a few test rows (``n`` at most).
    """
    if ds.kind != "image":
        tabular_reconstructions(path, model, variables, pca, ds, n=min(n, TABLE_ROWS), label=label)
        return
    from aejax import inference
    from aejax.data.pixels import to_unit

    x = to_unit(ds.x_test[:n])  # floats in [0, 1], as the model and PCA read them
    n = x.shape[0]
    ae, _ = inference.reconstruct(model, variables, x)
    pc = np.asarray(pca.reconstruct(x))
    rows = [("original", x), (label, ae), (f"PCA-{pca.components.shape[0]}", pc)]
    fig, axes = plt.subplots(3, n, figsize=(1.2 * n, 3.8), squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            img = np.clip(imgs[c], 0, 1)
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(f"{ds.name}: test reconstructions", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def check_figure_path(path: str | pathlib.Path) -> None:
    """Refuses a figure file whose suffix matplotlib does not write (``.png``, ``.pdf``,
    ``.svg``, ...): without one, ``savefig`` would add ``.png`` to the name it was given.

    Raises:
      ConfigError: naming the path and the accepted suffixes.
    """
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = FigureCanvasBase.get_supported_filetypes()
    suffix = pathlib.Path(path).suffix.lower()
    if suffix[1:] not in kinds:
        raise ConfigError(
            f"{path}: a figure needs one of the suffixes {', '.join('.' + k for k in kinds)}"
            f"{f', not {suffix!r}' if suffix else ''}"
        )


def _short(name: str, limit: int = 24) -> str:
    """Shortens in the middle: long names often differ only at their ends (``..._17``)."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return name[:head] + "\u2026" + name[len(name) - (limit - 1 - head) :]


def feature_errors(x: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Per-feature mean squared error: ``x, recon: [N, D]`` -> ``[D]``."""
    return np.square(np.asarray(recon, np.float64) - np.asarray(x, np.float64)).mean(axis=0)


def tabular_reconstructions(
    path: str | pathlib.Path,
    model,
    variables,
    pca,
    ds,
    n: int = TABLE_ROWS,
    label: str = "autoencoder",
) -> None:
    """Writes a 1400 px wide figure of how well a table's columns are reconstructed.

    Left: the per-feature test MSE of the model and of PCA as paired horizontal bars, one
    per column named by ``ds.feature_names`` (``x1..xD`` without names), worst first; only
    the ``TOP_FEATURES`` worst (by the model's error) when there are more. Right, sharing
    those rows: ``n`` test rows, the original (dots) against both reconstructions.
    Everything is in standardized units (``ds.x_test``). At most 940 px tall.

    Args:
      path: the PNG to write.
      model, variables: the trained model and its variables (``inference.reconstruct``).
      pca: a fitted ``aejax.baselines.PCA`` on the same standardized features.
      ds: a tabular Dataset with test rows ``x_test: [N_test, D]``.
      n: test rows drawn (the first ``n``).
      label: the model's name in legends.
    """
    from aejax import inference

    x = np.asarray(ds.x_test)
    d = x.shape[1]
    ae = np.asarray(inference.reconstruct(model, variables, x)[0])
    pc = np.asarray(pca.reconstruct(x))
    pca_label = f"PCA-{pca.components.shape[0]}"
    err_ae, err_pc = feature_errors(x, ae), feature_errors(x, pc)
    names = ds.feature_names or tuple(f"x{j + 1}" for j in range(d))
    order = np.argsort(-err_ae, kind="stable")[:TOP_FEATURES]
    k, n = order.size, min(n, x.shape[0])
    pos = np.arange(k)
    fig, axes = plt.subplots(
        1,
        1 + n,
        figsize=(14.0, max(3.0, 0.26 * k + 1.6)),
        sharey=True,
        squeeze=False,
        gridspec_kw={"width_ratios": [2.4] + [1.0] * n},
    )
    ax = axes[0, 0]
    ax.barh(pos - 0.2, err_ae[order], height=0.4, label=f"{label} (mean {err_ae.mean():.3g})")
    ax.barh(pos + 0.2, err_pc[order], height=0.4, label=f"{pca_label} (mean {err_pc.mean():.3g})")
    ax.set_yticks(pos, [_short(names[j]) for j in order], fontsize=7)
    ax.set_ylim(k - 0.5, -0.5)  # the worst feature on top
    ax.set_xlabel("test MSE per feature (standardized units)", fontsize=8)
    worst = f"the {k} of {d} features with the largest {label} error" if d > k else "all features"
    ax.set_title(f"per-feature test MSE: {worst}", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    ax.tick_params(axis="x", labelsize=7)
    for r in range(n):
        a = axes[0, 1 + r]
        a.axvline(0.0, color="0.8", lw=0.8)
        a.scatter(x[r, order], pos, color="black", s=14, label="original", zorder=3)
        a.scatter(ae[r, order], pos, marker="x", s=18, label=label, zorder=3)
        a.scatter(pc[r, order], pos, marker="+", s=24, label=pca_label, zorder=3)
        a.set_title(f"test row {r}", fontsize=8)
        a.set_xlabel("standardized value", fontsize=7)
        a.tick_params(axis="x", labelsize=7)
        a.grid(axis="y", color="0.93", lw=0.6)
    if n:
        axes[0, 1].legend(fontsize=6, loc="lower right")
    fig.suptitle(f"{ds.name}: test reconstructions of {d} features", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# Figures meant for a paper: at least 1200 pixels wide.
PAPER_DPI = 200


def code_scatter(
    path: str | pathlib.Path,
    codes: np.ndarray,
    labels: np.ndarray | None,
    prior: np.ndarray | None = None,
    title: str = "",
    what: str = "test codes",
) -> None:
    """2-D codes ``[N, 2]`` coloured by label, beside prior samples ``[M, 2]`` if given.

    Codes of more than two dimensions are drawn by their first two. Labels ``[N]`` of at
    most 20 distinct values are drawn as classes, a colour each, named in a legend; others,
    e.g. a continuous target, on a continuous colour scale with a colour bar. One title:
    ``title`` (or ``what`` when ``title`` is empty); with ``prior``, the two panels are
    named ``what`` and "prior samples". Written at ``PAPER_DPI`` (1280 pixels wide for one
    panel, 1840 for two).
    """
    codes = np.asarray(codes).reshape(len(codes), -1)[:, :2]
    panels = 2 if prior is not None else 1
    fig, axes = plt.subplots(
        1, panels, figsize=(6.4 if panels == 1 else 4.6 * panels, 5.2), squeeze=False
    )
    ax = axes[0, 0]
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=3, alpha=0.7)
    else:
        labels = np.asarray(labels)
        classes = np.unique(labels)
        if classes.size <= 20:
            cmap = plt.get_cmap("tab10" if classes.size <= 10 else "tab20")
            for i, c in enumerate(classes):
                on = labels == c
                ax.scatter(codes[on, 0], codes[on, 1], s=3, alpha=0.7, color=cmap(i), label=str(c))
            ax.legend(
                title="class",
                loc="center left",
                bbox_to_anchor=(1.0, 0.5),
                fontsize=8,
                title_fontsize=8,
                markerscale=4,
                frameon=False,
            )
        else:
            sc = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="viridis", s=3, alpha=0.7)
            fig.colorbar(sc, ax=ax, label="label")
    if prior is not None:
        ax.set_title(what, fontsize=9)
        prior = np.asarray(prior).reshape(len(prior), -1)[:, :2]
        axes[0, 1].scatter(prior[:, 0], prior[:, 1], s=3, alpha=0.5, color="gray")
        axes[0, 1].set_title("prior samples", fontsize=9)
        lo = np.minimum(codes.min(0), prior.min(0))
        hi = np.maximum(codes.max(0), prior.max(0))
        for a in axes[0]:
            a.set_xlim(lo[0], hi[0])
            a.set_ylim(lo[1], hi[1])
    fig.suptitle(title or what, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=PAPER_DPI)
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


class PanelRow(NamedTuple):
    """One row of ``restoration_panel``: ``images [k, H, W, C]`` in [0, 1], each one's
    ``psnr [k]`` (dB; None: no label) and, optionally, the ``missing`` pixels (bool, the
    images' shape), tinted red."""

    name: str
    images: np.ndarray
    psnr: np.ndarray | None = None
    missing: np.ndarray | None = None


MISSING_TINT = (1.0, 0.0, 0.0, 0.55)  # RGBA over the missing pixels of a restore panel


def restoration_panel(path: str | pathlib.Path, rows: list[PanelRow], title: str) -> None:
    """Writes ``rows`` top to bottom, each named on its left, each image's PSNR (``"%.2f dB"``)
    under it, at ``PAPER_DPI`` (1400 pixels wide for 8 images)."""
    k = len(rows[0].images)
    fig, axes = plt.subplots(
        len(rows), k, figsize=(0.8 * k + 0.6, 0.95 * len(rows) + 0.4), squeeze=False
    )
    for r, row in enumerate(rows):
        for c in range(k):
            ax = axes[r, c]
            _show(ax, row.images[c])
            if row.missing is not None:
                tint = np.zeros((*row.images.shape[1:3], 4), np.float32)
                tint[np.asarray(row.missing[c]).any(-1)] = MISSING_TINT
                ax.imshow(tint, interpolation="nearest")
            if row.psnr is not None:
                ax.set_xlabel(f"{row.psnr[c]:.2f} dB", fontsize=6, labelpad=1)
        axes[r, 0].set_ylabel(row.name, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.2)
    fig.savefig(path, dpi=PAPER_DPI)
    plt.close(fig)


def interpolation_grid(
    path: str | pathlib.Path,
    paths: np.ndarray,
    title: str | None = None,
    endpoints: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Writes ``paths: [P, steps, H, W, C]`` in [0, 1]: one row per pair, left to right.

    With ``endpoints = (x_a, x_b)``, each ``[P, H, W, C]``, every row starts with its input
    image A and ends with its input B, set apart from the decoded path between them, so a
    reader sees how far the decoded endpoints are from the inputs.
    """
    p, steps = paths.shape[:2]
    extra = 2 if endpoints is not None else 0
    ratios = (
        [1.0] * (steps + extra) if endpoints is None else [1.0, 0.25, *[1.0] * steps, 0.25, 1.0]
    )
    cols = len(ratios)
    fig, axes = plt.subplots(
        p,
        cols,
        figsize=(sum(ratios), p + 0.6),
        squeeze=False,
        gridspec_kw={"width_ratios": ratios},
    )
    for r in range(p):
        row = [None] * cols
        if endpoints is None:
            row = list(paths[r])
        else:
            row = [endpoints[0][r], None, *paths[r], None, endpoints[1][r]]
        for c, img in enumerate(row):
            if img is None:
                axes[r, c].axis("off")
            else:
                _show(axes[r, c], img)
    if endpoints is not None:
        axes[0, 0].set_title("input A", fontsize=8)
        axes[0, cols - 1].set_title("input B", fontsize=8)
        axes[0, 2].set_title("decoded A", fontsize=8)
        axes[0, cols - 3].set_title("decoded B", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100 if endpoints is None else PAPER_DPI // 2)
    plt.close(fig)


def score_histogram(
    path: str | pathlib.Path,
    scores: np.ndarray,
    threshold: float,
    labels: np.ndarray | None = None,
    title: str | None = None,
) -> None:
    """Writes a histogram of anomaly ``scores: [N]`` (log-spaced bins when they are all
    positive and span over a decade) with the ``threshold`` line; with ``labels: [N]``
    (1 = anomaly) normal and anomalous rows are drawn apart."""
    scores = np.asarray(scores, np.float64)
    lo, hi = float(scores.min()), float(scores.max())
    log = lo > 0 and hi / lo > 10
    bins = np.geomspace(lo, hi, 60) if log else np.linspace(lo, hi if hi > lo else lo + 1, 60)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if labels is None:
        ax.hist(scores, bins=bins, color="tab:blue", alpha=0.8, label=f"rows ({scores.size})")
    else:
        for value, name, color in ((0, "normal", "tab:blue"), (1, "anomaly", "tab:red")):
            part = scores[np.asarray(labels) == value]
            if part.size:
                ax.hist(part, bins=bins, color=color, alpha=0.6, label=f"{name} ({part.size})")
    flagged = int((scores > threshold).sum())
    ax.axvline(threshold, color="black", ls="--", lw=1, label=f"threshold ({flagged} flagged)")
    if log:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("anomaly score (higher = more anomalous)")
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


from aejax.plots.curves import curve_terms, learning_curves, read_history, run_curves  # noqa: E402, F401
