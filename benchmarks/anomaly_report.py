"""``anomaly.md``: the tables of an ``anomaly`` run (``benchmarks.anomaly``) from its record."""

from __future__ import annotations

from benchmarks import environment

# The issue's figures (ADBench: over 40 classical sets, of which this checkout holds 8;
# one-class MNIST: ROC-AUC x 100) and its goals for the aejax detector.
ISSUE_ADBENCH = (
    "IsolationForest mean AUC 0.769 / AP 0.414; PyOD AutoEncoder 0.746 / 0.316 with a 5.3 s "
    "median fit (40 ADBench classical sets)"
)
ISSUE_MNIST = "PCA 94.9, kNN 93.7, IsolationForest 85.6; Deep SVDD reports 94.8 on full MNIST"
GOALS = {
    "adbench": "mean AUC >= 0.78 and AP >= 0.42 with a median fit under 2 s on 2 CPU cores",
    "mnist": "mean ROC-AUC >= 96",
}


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _seconds(summary: dict, methods: list[str], pad: int) -> list[list[str]]:
    """The rows of median fit and score seconds, ``pad`` empty cells after the first."""
    return [
        [f"median {part} s", *[""] * pad]
        + [f"{summary[m][f'{part}_seconds']['median']:.2f}" for m in methods]
        for part in ("fit", "score")
    ]


def _adbench(p: dict) -> list[str]:
    summary = p["summary"]
    methods = list(summary)
    rows = []
    for name, shape in p["data"].items():
        cells = [
            f"{s['auc']:.3f} / {s['ap']:.3f}"
            for s in (summary[m]["per_set"][name] for m in methods)
        ]
        rows.append([name, str(shape["n"]), str(shape["d"]), str(shape["anomalies"]), *cells])
    rows.append(
        [
            "**mean**",
            "",
            "",
            "",
            *(f"**{summary[m]['mean_auc']:.3f} / {summary[m]['mean_ap']:.3f}**" for m in methods),
        ]
    )
    rows += _seconds(summary, methods, pad=3)
    seeds = ", ".join(
        f"{m}: {summary[m]['fit_seconds']['repeats'] // len(p['data'])}" for m in methods
    )
    return [
        "## ADBench, unsupervised transductive: ROC-AUC / average precision",
        "",
        "Each method fitted on all rows of a set without labels, scoring every row; a set's "
        f"figures are the means over seeds (seeds per set: {seeds}).",
        "",
        *_table(["set", "n", "d", "anomalies", *methods], rows),
        "",
        f"The issue's figures: {ISSUE_ADBENCH}. Goal for aejax: {GOALS['adbench']}.",
    ]


def _mnist(p: dict) -> list[str]:
    summary = p["summary"]
    methods = list(summary)
    digits = list(next(iter(summary.values()))["per_set"]) if summary else []
    rows = [[d, *(f"{100 * summary[m]['per_set'][d]['auc']:.1f}" for m in methods)] for d in digits]
    rows.append(["**mean**", *(f"**{100 * summary[m]['mean_auc']:.1f}**" for m in methods)])
    rows += _seconds(summary, methods, pad=0)
    counts = p["data"]["train_per_digit"].values()
    lo, hi = min(counts, default=0), max(counts, default=0)
    return [
        "## One-class MNIST (mnist-lite): ROC-AUC x 100",
        "",
        f"Fitted on the {lo}{'' if lo == hi else f'-{hi}'} training images of one digit, "
        f"scoring the {p['data']['test']} test images, normal = that digit; seed 0.",
        "",
        *_table(["digit", *methods], rows),
        "",
        f"The issue's figures: {ISSUE_MNIST}. Goal for aejax: {GOALS['mnist']}.",
    ]


def markdown(record: dict) -> str:
    """The run's tables, its skipped methods and notes, and the machine."""
    lines = ["# Anomaly detection", ""]
    render = {"adbench": _adbench, "mnist": _mnist}
    for name, p in record["protocols"].items():
        lines += render[name](p)
        for method, why in p["skipped"].items():
            lines.append(f"- {method}: not run ({why}).")
        lines.append("")
    lines += [f"- {note}" for note in record["notes"]]
    lines += [
        "",
        f"Whole run: {record['seconds']:.0f} s on {environment.machine_line(record['device'])}, "
        f"{record['timestamp']}. Settings of every method: `anomaly.json`.",
        "",
    ]
    return "\n".join(lines)
