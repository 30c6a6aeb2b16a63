"""``anomaly_cv.md``: the tables of an ``anomaly-cv`` run (``benchmarks.anomaly_cv``)."""

from __future__ import annotations

from collections import Counter

from benchmarks import environment

GOAL = (
    "ahead of every peer on both mean ROC-AUC and AP over the 20 sets, left out, by more "
    "than the spread over seeds; a median fit of at most 2 s on 2 cores (quiet machine)"
)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def markdown(record: dict) -> str:
    p = record["protocol"]
    loo, kfold = record["loo"], record["kfold"]
    lines = [
        "# ADBench, defaults chosen by leaving sets out",
        "",
        f"{environment.machine_line(record['device'])}; {record['timestamp']}; "
        f"{record['seconds']:.0f} s in all; {len(record['data'])} sets.",
        "",
        f"The judged protocol (`../shared/data/README.md`): sets above {p['cap']} rows "
        "subsampled to it, stratified (`RandomState(0)`); features standardized on the rows "
        "used; each method fits every row without labels and scores the same rows. Seeds "
        f"0..{p['seeds'] - 1} of every stochastic method; a set's figure is the mean over them.",
        "",
        "## The left-out figure of the aejax ensemble",
        "",
        f"{len(record['candidates'])} candidates (the centre {record['centre']} and one change "
        "at a time, each with the `vote` of reconstruction and isolation or the "
        "`reconstruction` vote alone). For each set, the candidate with the best mean "
        "(ROC-AUC + AP) / 2 on the other sets is scored on it.",
        "",
        *_table(
            ["selection", "mean ROC-AUC", "mean AP"],
            [
                ["leave one set out", f"{loo['auc']:.3f}", f"{loo['ap']:.3f}"],
                [
                    f"{p['folds']}-fold over sets, {p['repeats']} shuffles (mean; min..max)",
                    f"{kfold['auc']:.3f} ({min(kfold['auc_repeats']):.3f}.."
                    f"{max(kfold['auc_repeats']):.3f})",
                    f"{kfold['ap']:.3f} ({min(kfold['ap_repeats']):.3f}.."
                    f"{max(kfold['ap_repeats']):.3f})",
                ],
            ],
        ),
        "",
        "What the leave-one-set-out folds picked: "
        + ", ".join(f"`{c}` x{n}" for c, n in Counter(loo["picks"].values()).most_common())
        + f". On all sets (the shipped default): `{record['pick_all']}`.",
        "",
    ]
    if "peers" in record:
        lines += _peers(record)
    lines += ["## Every candidate, in-sample means over the sets (for reading, not choosing)", ""]
    ranked = sorted(record["in_sample"].items(), key=lambda kv: -(kv[1]["auc"] + kv[1]["ap"]))
    lines += _table(
        ["candidate", "mean ROC-AUC", "mean AP"],
        [[f"`{c}`", f"{v['auc']:.3f}", f"{v['ap']:.3f}"] for c, v in ranked],
    )
    lines += ["", "Every row and setting: `anomaly_cv.json`.", ""]
    return "\n".join(lines)


def _peers(record: dict) -> list[str]:
    peers = record["peers"]
    lines = [
        "## The defaults beside the peers, same run",
        "",
        "Fixed settings, so their mean over the sets is already a left-out figure; the aejax "
        "row is `aejax.AnomalyDetector()` with every default (the pick on all sets), and the "
        "first row the left-out figure of the selection (its spread: the standard deviation "
        "over seeds of each seed's own left-out figure). Spread: the standard deviation over "
        "seeds of the mean over sets. Fit: median seconds over every fit, JIT compilation "
        "included.",
        "",
    ]
    loo = record["loo"]
    spread = record.get("loo_by_seed")
    sd = (f" ± {spread['auc_std']:.3f}", f" ± {spread['ap_std']:.3f}") if spread else ("", "")
    rows = [
        [
            "aejax, left out (leave one set out)",
            f"{loo['auc']:.3f}{sd[0]}",
            f"{loo['ap']:.3f}{sd[1]}",
            str(len(spread["auc"])) if spread else "",
            "",
            "",
        ]
    ]
    for name, s in peers.items():
        rows.append(
            [
                name,
                f"{s['auc']:.3f} ± {s['auc_seed_std']:.3f}",
                f"{s['ap']:.3f} ± {s['ap_seed_std']:.3f}",
                str(s["seeds"]),
                f"{s['fit_seconds_median']:.2f}",
                f"{s['first_fit_seconds_median']:.2f}",
            ]
        )
    lines += _table(
        ["method", "mean ROC-AUC", "mean AP", "seeds", "median fit s", "median first fit s"],
        rows,
    )
    lines += ["", f"Goal (issue 23): {GOAL}.", ""]
    if "threshold" in record:
        t = record["threshold"]
        ranked = sorted(t["in_sample"].items(), key=lambda kv: -kv[1])
        lines += [
            "## The default threshold",
            "",
            "F1 of `labels_` against the labels, for candidate rules on the default "
            "detector's training scores (fences on its robust z, contamination quantiles, "
            f"MAD, IQR). Leave one set out: F1 {t['f1']:.3f}; the folds picked "
            + ", ".join(f"`{r}` x{n}" for r, n in Counter(t["picks"].values()).most_common())
            + f"; on all sets `{t['pick_all']}`. The shipped default's F1: "
            f"{t['f1_default']:.3f}." + (f" {t['note']}" if t.get("note") else ""),
            "",
            *_table(["rule", "mean F1 (in-sample)"], [[f"`{r}`", f"{v:.3f}"] for r, v in ranked]),
            "",
        ]
    names = list(record["data"])
    head = ["set", "n", "d", "anomalies", *peers]
    body = []
    for n in names:
        d = record["data"][n]
        body.append(
            [n, str(d["n"]), str(d["d"]), str(d["anomalies"])]
            + [
                f"{peers[m]['per_set'][n]['auc']:.3f} / {peers[m]['per_set'][n]['ap']:.3f}"
                for m in peers
            ]
        )
    lines += ["### Per set: ROC-AUC / AP", "", *_table(head, body), ""]
    if record.get("skipped"):
        lines += [f"Not run: {record['skipped']}.", ""]
    return lines
