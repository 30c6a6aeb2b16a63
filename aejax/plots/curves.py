"""Learning curves: every term of one or several runs' ``metrics.jsonl``, train and validation.

Imports no jax (``aejax compare`` draws them without it).
"""

from __future__ import annotations

import json
import math
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


# --- learning curves ----------------------------------------------------------------------
def read_history(path: str | pathlib.Path) -> list[dict]:
    """The epoch records of a ``metrics.jsonl`` (one JSON object a line; none if missing).

    A line cut short (a run killed while writing it) ends the records, as on resume.
    """
    path = pathlib.Path(path)
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return [r for r in records if isinstance(r, dict) and "epoch" in r]


def curve_terms(histories: list[list[dict]]) -> list[str]:
    """The terms that have a curve: ``X`` for each ``train_X`` or ``val_X`` key of the
    records, in the order first seen (``loss`` first)."""
    terms: dict[str, None] = {"loss": None}
    for history in histories:
        for record in history:
            for key, value in record.items():
                split, _, term = key.partition("_")
                if split in ("train", "val") and term and isinstance(value, int | float):
                    terms[term] = None
    return [t for t in terms if any(_has(h, t) for h in histories)]


def _has(history: list[dict], term: str) -> bool:
    return any(f"train_{term}" in r or f"val_{term}" in r for r in history)


def _band(histories: list[list[dict]], key: str) -> tuple[np.ndarray, ...] | None:
    """``(epochs, mean, low, high)`` of ``key`` over the runs at each epoch, or None."""
    by_epoch: dict[int, list[float]] = {}
    for history in histories:
        for r in history:
            v = r.get(key)
            if isinstance(v, int | float) and math.isfinite(v):
                by_epoch.setdefault(int(r["epoch"]), []).append(float(v))
    if not by_epoch:
        return None
    epochs = np.array(sorted(by_epoch))
    values = [np.array(by_epoch[e]) for e in epochs]
    return (
        epochs,
        np.array([v.mean() for v in values]),
        np.array([v.min() for v in values]),
        np.array([v.max() for v in values]),
    )


def learning_curves(
    path: str | pathlib.Path,
    groups: list[tuple[str, list[list[dict]]]],
    title: str | None = None,
) -> None:
    """Writes every term's learning curves into one figure: a panel per term (``loss``,
    ``reconstruction``, ``kl``, ...), its training curve solid and its validation curve
    dashed against the epoch, one colour per group.

    A group's curve is the mean over its runs at each epoch, shaded between their lowest
    and highest value (seeds); a panel whose values are all positive and span more than
    50x is drawn on a log scale.

    Args:
      path: the figure to write (its suffix picks the format).
      groups: ``[(label, [history, ...])]``: a history is one run's epoch records
        (``read_history``), ``{"epoch", "train_<term>", "val_<term>", ...}`` each.
      title: the figure's title.
    """
    terms = curve_terms([h for _, histories in groups for h in histories]) or ["loss"]
    ncols = min(3, len(terms))
    nrows = -(-len(terms) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.2 * nrows), squeeze=False)
    colors = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    for ax, term in zip(axes.flat, terms, strict=False):
        values = []
        for g, (_, histories) in enumerate(groups):
            color = colors(g % colors.N)
            for split, style, marker in (("train", "-", "o"), ("val", "--", "x")):
                band = _band(histories, f"{split}_{term}")
                if band is None:
                    continue
                epochs, mean, low, high = band
                ax.plot(
                    epochs,
                    mean,
                    style,
                    color=color,
                    lw=1.2,
                    marker=marker if len(epochs) < 3 else None,
                    ms=4,
                )
                if len(histories) > 1:
                    ax.fill_between(epochs, low, high, color=color, alpha=0.15, lw=0)
                values += [low.min(), high.max()]
        if values and min(values) > 0 and max(values) / min(values) > 50:
            ax.set_yscale("log")
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(terms) :]:
        ax.axis("off")
    handles = [
        plt.Line2D([], [], color=colors(g % colors.N), lw=2, label=label)
        for g, (label, _) in enumerate(groups)
    ]
    handles += [
        plt.Line2D([], [], color="gray", ls="-", marker="o", ms=3, label="train"),
        plt.Line2D([], [], color="gray", ls="--", marker="x", ms=3, label="validation"),
    ]
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    # Below the panels, however many groups: the saved figure grows to hold it.
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(len(handles), 4),
        fontsize=7,
        frameon=False,
    )
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def run_curves(workdir: str | pathlib.Path, label: str = "run") -> None:
    """Writes ``workdir/curves.png``: the learning curves of one run's ``metrics.jsonl``."""
    workdir = pathlib.Path(workdir)
    history = read_history(workdir / "metrics.jsonl")
    if history:
        learning_curves(workdir / "curves.png", [(label, [history])], title=str(workdir.name))
