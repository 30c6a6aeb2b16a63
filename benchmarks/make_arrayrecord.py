"""Writes a generated ``arrayrecord:DIR`` image data set of a given size, in chunks.

The images are deterministic pseudo-random smooth blobs (one to three Gaussian blobs of
random colour, size and place on a dark background), something an autoencoder can learn;
the label is the quadrant of the first blob's centre (4 classes). Generated and written
``CHUNK`` examples at a time, so the peak memory stays flat whatever the size: the script
prints it (``resource.getrusage``; also as it was before writing: the imports') with the
time taken and the bytes on disk.

    python -m benchmarks.make_arrayrecord --out /tmp/blobs --gigabytes 2.2 --shape 64x64x3
    python -m benchmarks.make_arrayrecord --out /tmp/blobs-small --gigabytes 0.05

``--gigabytes`` counts the examples' raw bytes (1 GB = 1e9 bytes), what ``stream=auto``
weighs against the RAM; zstd makes the files smaller. The same arguments give the same
bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import time

import numpy as np

from aejax.data import arrayrecord

CHUNK = 512  # examples generated and written at a time (also the unit of the seeding)
CLASS_NAMES = ("top-left", "top-right", "bottom-left", "bottom-right")
SPLIT_IDS = {"train": 0, "test": 1}  # seeds each split's own stream


def blobs(n: int, shape: tuple[int, int, int], rng: np.random.Generator):
    """``(x [n, H, W, C] float32 in [0, 1], y [n] int64)``: smooth blob images and labels."""
    h, w, c = shape
    yy = np.arange(h, dtype=np.float32)[None, :, None]
    xx = np.arange(w, dtype=np.float32)[None, None, :]
    x = np.repeat(rng.uniform(0.0, 0.25, (n, 1, 1, c)).astype(np.float32), h, axis=1)
    x = np.repeat(x, w, axis=2)
    count = rng.integers(1, 4, n)
    centres = rng.uniform(0.15, 0.85, (3, n, 2)) * np.array([h, w])
    sigmas = rng.uniform(0.06, 0.2, (3, n)) * min(h, w)
    colours = rng.uniform(0.3, 1.0, (3, n, c)).astype(np.float32)
    for k in range(3):
        cy, cx = centres[k, :, 0, None, None], centres[k, :, 1, None, None]
        d2 = (yy - cy.astype(np.float32)) ** 2 + (xx - cx.astype(np.float32)) ** 2
        g = np.exp(-d2 / (2 * sigmas[k, :, None, None] ** 2).astype(np.float32))
        g *= (count > k)[:, None, None]
        x += g[..., None] * colours[k, :, None, None, :]
    np.clip(x, 0.0, 1.0, out=x)
    y = (centres[0, :, 0] > h / 2) * 2 + (centres[0, :, 1] > w / 2)
    return x, y.astype(np.int64)


def write_split(out, split, n, shape, dtype, seed) -> None:
    """Writes ``n`` examples as ``split`` of ``out``, ``CHUNK`` at a time."""
    with arrayrecord.writer(
        out, split=split, shape=shape, dtype=dtype, labels=True, class_names=CLASS_NAMES
    ) as w:
        for k in range(math.ceil(n / CHUNK)):
            rng = np.random.default_rng([seed, SPLIT_IDS[split], k])
            x, y = blobs(min(CHUNK, n - k * CHUNK), shape, rng)
            if dtype == "uint8":
                x = np.rint(x * 255).astype(np.uint8)
            w.write(x, y)


def copy_data(spec: str, out: str) -> dict:
    """Writes a data set's train and test images (uint8, labelled) as ``arrayrecord:out``,
    unsplit (the loader splits it as it splits ``spec``: the same arrays)."""
    from aejax.data.builtin import _BUILTIN, _load_raw

    raw = _BUILTIN[spec][1](None) if spec in _BUILTIN else _load_raw(spec, None, False, None)[0]
    for split, x, y in (("train", raw.x, raw.y), ("test", raw.x_test, raw.y_test)):
        if x is None:
            continue
        x = np.asarray(x)
        with arrayrecord.writer(
            out, split=split, shape=x.shape[1:], dtype="uint8", labels=y is not None
        ) as w:
            for i in range(0, len(x), 1000):
                w.write(x[i : i + 1000], None if y is None else y[i : i + 1000])
    result = {"out": out, "from": spec, "examples": len(raw.x)}
    print(json.dumps(result))
    return result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="the directory to write (must not hold a split)")
    p.add_argument("--gigabytes", type=float, default=0.05, help="raw bytes of the train split")
    p.add_argument("--shape", default="64x64x3", help="HxWxC of one image")
    p.add_argument("--dtype", default="uint8", choices=arrayrecord.DTYPES)
    p.add_argument("--test-fraction", type=float, default=0.0, help="a test split this size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--from-data",
        default=None,
        help="instead of blobs: an aejax data spec of uint8 images (e.g. mnist-lite) written "
        "as its train and test splits with labels",
    )
    a = p.parse_args(argv)
    if a.from_data:
        return copy_data(a.from_data, a.out)
    shape = tuple(int(d) for d in a.shape.lower().split("x"))
    per_example = math.prod(shape) * np.dtype(a.dtype).itemsize
    n = max(1, round(a.gigabytes * 1e9 / per_example))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    write_split(a.out, "train", n, shape, a.dtype, a.seed)
    n_test = round(a.test_fraction * n)
    if n_test:
        write_split(a.out, "test", n_test, shape, a.dtype, a.seed)
    seconds = time.perf_counter() - start
    on_disk = sum(e.stat().st_size for e in os.scandir(a.out) if e.is_file())
    result = {
        "out": a.out,
        "shape": shape,
        "dtype": a.dtype,
        "examples": n,
        "test_examples": n_test,
        "raw_gb": round((n + n_test) * per_example / 1e9, 4),
        "on_disk_gb": round(on_disk / 1e9, 4),
        "seconds": round(seconds, 1),
        "raw_mb_per_s": round((n + n_test) * per_example / 1e6 / seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_before_writing_mb": round(rss_before, 1),  # the imports'
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
