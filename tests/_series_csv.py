"""A synthetic series for the detection tests: a daily sine with one spike."""

import csv

import numpy as np


def sine_csv(path, n=480, spike=400):
    """Writes ``timestamp,value`` rows every 10 minutes (a 4-hour sine period, noise 0.05)
    with ``+4`` at row ``spike``; returns the spike's timestamp (``np.datetime64``)."""
    t = np.arange(n)
    v = np.sin(2 * np.pi * t / 24) + 0.05 * np.random.default_rng(0).normal(size=n)
    v[spike] += 4.0
    start = np.datetime64("2021-03-01T00:00")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value"])
        for i in range(n):
            w.writerow([str(start + np.timedelta64(10 * i, "m")).replace("T", " "), v[i]])
    return start + np.timedelta64(10 * spike, "m")
