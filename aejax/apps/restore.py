"""Image restoration with a trained autoencoder: denoising, inpainting, super-resolution.

    aejax restore RUN --task denoise|inpaint|superres [--json]

``denoise``, ``inpaint`` and ``super_resolve`` take a loaded run (``aejax.load_run``) or
its directory and images ``[N, H, W, C]`` in [0, 1]. A run restores best when it was
trained on the same corruption (``--set corruption=gaussian:0.5``, ``masking:0.5``,
``downsample:2``; the ``denoising_ae`` preset), but any image run works.

``restore_run`` scores a run on its test split under each task's fixed protocol (one seed,
the same images every time), the numbers of ``aejax restore`` and of
``benchmarks/restoration.py``:

- denoise: Gaussian noise, sigma 0.5, clipped to [0, 1] (``gaussian:0.5``);
- inpaint: a centre square hole half the image's side (14x14 on 28x28), and 50% of the
  pixels missing at random (``masking:0.5``); PSNR also over the missing pixels only;
- superres: 2x2 mean-pooling (28x28 -> 14x14), restored to full size (``downsample:2``).

Beside the run, ``restore_run`` restores the same corrupted images with the classical
anchors of ``aejax.baselines.restoration`` (PCA of the run's code size, total variation,
biharmonic, bicubic, least squares), draws panels with every image's PSNR, and warns
(``RestorationWarning``) where the restored images score below the corrupted input.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
import warnings

import jax
import numpy as np

from aejax import metrics
from aejax.baselines import restoration
from aejax.baselines.restoration import check_images, downsample, upsample
from aejax.data.corruption import parse_corruption
from aejax.data.pixels import to_unit
from aejax.errors import DataError
from aejax.outputs import atomic_path, check_output_dir
from aejax.run import Run

TASKS = ("denoise", "inpaint", "superres")
SEED = 0  # every protocol's corruption key: jax.random.key(SEED)
INPAINT_ITERATIONS = 10
PANEL_IMAGES = 8


@dataclasses.dataclass(frozen=True)
class Protocol:
    """One fixed corruption of a task: ``name`` (in reports), ``spec`` (an
    ``aejax.data.corruption`` spec, or ``"centre"`` for the centre hole) and, for inpainting, the
    default ``iterations`` of ``inpaint``."""

    task: str
    name: str
    spec: str
    iterations: int = 1


PROTOCOLS: dict[str, tuple[Protocol, ...]] = {
    "denoise": (Protocol("denoise", "gaussian-0.5", "gaussian:0.5"),),
    "inpaint": (
        # Measured on mnist-lite (a conv_ae trained on masking:0.5): a hole wider than any
        # the run saw fills in from its rim over passes (10 beat 1 and 3); scattered pixels
        # are best after one pass, later passes feed the run its own outputs.
        Protocol("inpaint", "centre-hole", "centre", iterations=INPAINT_ITERATIONS),
        Protocol("inpaint", "random-50%", "masking:0.5", iterations=1),
    ),
    "superres": (Protocol("superres", "2x", "downsample:2"),),
}
SUPERRES_FACTOR = 2


def _as_run(run: Run | str | pathlib.Path) -> Run:
    if isinstance(run, Run):
        return run
    from aejax.run import load_run

    return load_run(run)


def denoise(run: Run | str | pathlib.Path, x_noisy: np.ndarray) -> np.ndarray:
    """Denoised images: the run's reconstruction of ``x_noisy``.

    Args:
      run: a loaded run or its directory; best trained with ``corruption=gaussian:...``.
      x_noisy: ``[N, H, W, C]`` in [0, 1], the run's image shape.

    Returns:
      ``[N, H, W, C]`` float32 in [0, 1].
    """
    run = _as_run(run)
    return np.asarray(run.reconstruct(check_images(x_noisy, "x_noisy")))


def inpaint(
    run: Run | str | pathlib.Path,
    x: np.ndarray,
    mask: np.ndarray,
    *,
    iterations: int = INPAINT_ITERATIONS,
    fill: float = 0.0,
) -> np.ndarray:
    """Fills the missing pixels of ``x`` by iterated projection onto the autoencoder.

    The missing pixels start at ``fill`` (0 is what ``masking`` and ``block`` corruptions
    feed a run in training); each iteration reconstructs the current images and keeps the
    reconstruction only where pixels are missing, the known pixels staying exact.

    Args:
      run: a loaded run or its directory; best trained with ``corruption=masking:...``
        or ``block:...``.
      x: ``[N, H, W, C]`` in [0, 1]; the values at missing pixels are ignored.
      mask: bool, broadcastable to ``x`` (e.g. ``[N, H, W, 1]``): True where a pixel is
        missing.
      iterations: reconstructions (>= 1). Iterating grows a large hole in from its rim;
        a run trained on the very masks it is given (``masking:P`` for scattered pixels)
        does best with 1, as later passes feed it its own outputs (``PROTOCOLS``).
      fill: the first guess at the missing pixels.

    Returns:
      ``[N, H, W, C]`` float32: ``x`` at the known pixels, the restoration elsewhere.
    """
    run = _as_run(run)
    x = check_images(x, "x").astype(np.float32, copy=False)
    if iterations < 1:
        raise DataError(f"iterations must be >= 1, got {iterations}")
    try:
        missing = np.broadcast_to(np.asarray(mask, bool), x.shape)
    except ValueError as e:
        raise DataError(f"mask of shape {np.shape(mask)} does not fit x {x.shape}") from e
    current = np.where(missing, np.float32(fill), x)
    for _ in range(iterations):
        current = np.where(missing, run.reconstruct(current), x)
    return current


def super_resolve(run: Run | str | pathlib.Path, x_low: np.ndarray, factor: int) -> np.ndarray:
    """Restores full-size images from ``factor``-times smaller ones.

    The low-resolution images are upsampled by repetition (what ``downsample:F`` feeds a
    run in training) and reconstructed.

    Args:
      run: a loaded run or its directory; best trained with ``corruption=downsample:F``.
      x_low: ``[N, h, w, C]`` in [0, 1], with ``(h*F, w*F, C)`` the run's image shape.
      factor: F, the upsampling factor (>= 1).

    Returns:
      ``[N, h*F, w*F, C]`` float32 in [0, 1].
    """
    run = _as_run(run)
    x_low = check_images(x_low, "x_low")
    if factor < 1:
        raise DataError(f"factor must be >= 1, got {factor}")
    n, h, w, c = x_low.shape
    if (h * factor, w * factor, c) != tuple(run.model.input_shape):
        raise DataError(
            f"x_low [{n}, {h}, {w}, {c}] upsampled {factor}x is {(h * factor, w * factor, c)}, "
            f"but the run's images are {tuple(run.model.input_shape)}"
        )
    return np.asarray(run.reconstruct(upsample(x_low, factor).astype(np.float32)))


def centre_hole(shape: tuple[int, ...]) -> np.ndarray:
    """The centre-hole mask ``[N, H, W, 1]``: a square of side ``min(H, W) // 2``, centred."""
    n, h, w = shape[:3]
    side = min(h, w) // 2
    top, left = (h - side) // 2, (w - side) // 2
    mask = np.zeros((n, h, w, 1), bool)
    mask[:, top : top + side, left : left + side] = True
    return mask


def corrupt(protocol: Protocol, x: np.ndarray, seed: int = SEED) -> dict[str, np.ndarray]:
    """Applies a protocol's corruption to ``x: [N, H, W, C]``.

    Returns:
      ``{"corrupted": [N, H, W, C]}`` plus ``"missing"`` (bool, the images' shape) for
      inpainting and ``"low"`` (``[N, H/2, W/2, C]``) for super-resolution.
    """
    x = check_images(x, "x").astype(np.float32, copy=False)
    if protocol.spec == "centre":
        missing = np.broadcast_to(centre_hole(x.shape), x.shape).copy()
        return {"corrupted": np.where(missing, np.float32(0), x), "missing": missing}
    if protocol.task == "superres":
        low = downsample(x, SUPERRES_FACTOR)
        return {"corrupted": upsample(low, SUPERRES_FACTOR), "low": low}

    corruption, key = parse_corruption(protocol.spec), jax.random.key(seed)
    if protocol.task != "inpaint":
        return {"corrupted": np.asarray(corruption(key, x), np.float32)}
    corrupted, missing = corruption.with_mask(key, x)
    return {
        "corrupted": np.asarray(corrupted, np.float32),
        "missing": np.broadcast_to(np.asarray(missing, bool), x.shape).copy(),
    }


def restore(
    run: Run,
    protocol: Protocol,
    corrupted: dict[str, np.ndarray],
    *,
    iterations: int | None = None,
) -> np.ndarray:
    """The run's restoration of ``corrupt(protocol, ...)``'s output (``iterations``: the
    inpainting's, default the protocol's)."""
    if protocol.task == "denoise":
        return denoise(run, corrupted["corrupted"])
    if protocol.task == "inpaint":
        its = protocol.iterations if iterations is None else iterations
        return inpaint(run, corrupted["corrupted"], corrupted["missing"], iterations=its)
    return super_resolve(run, corrupted["low"], SUPERRES_FACTOR)


def restore_run(
    workdir: str | pathlib.Path,
    task: str,
    *,
    n: int | None = None,
    out_dir: str | pathlib.Path | None = None,
    panels: bool = True,
    iterations: int | None = None,
    force: bool = False,
    baselines: bool = True,
) -> dict:
    """Restores a run's test split under ``task``'s protocols and scores it beside the
    classical anchors.

    Args:
      workdir: a trained image run's directory.
      task: ``"denoise"``, ``"inpaint"`` or ``"superres"``.
      n: restore only the first ``n`` test images (default: all).
      out_dir: where the PNG panels go (default ``workdir``, whose panels each call
        replaces). A given ``out_dir`` may exist, but not the panels in it, unless
        ``force`` (``aejax.outputs.check_output_dir``; checked before anything is computed).
      panels: write ``restore_<task>_<protocol>.png``: the first 8 test images, clean,
        corrupted, restored and restored by each anchor, one named row each, every image
        but the clean ones labelled with its PSNR (dB).
      iterations: the inpainting's reconstructions (see ``inpaint``); default each
        protocol's (``PROTOCOLS``: 10 for the centre hole, 1 for the random pixels).
      force: replace existing panels in ``out_dir``.
      baselines: also restore the same corrupted images with the classical anchors of
        ``aejax.baselines.restoration.anchors`` (PCA with the run's code size, fitted on its
        training split; total variation, biharmonic, bicubic, least squares).

    Returns:
      ``{"task", "workdir", "data", "model", "n", "seed", "pca_components",
      "skipped_baselines": {name: why}, "worse_than_input", "protocols": {name:
      {"corruption": spec, "corrupted": {"psnr", "ssim", "n", ...}, "restored": {...},
      "baselines": {anchor: {"psnr", "ssim", "n", "seconds", ...}}, "worse_than_input",
      "seconds", "panel"}}}``: mean per-image PSNR (dB) and SSIM against the originals,
      plus ``missing_psnr`` (PSNR over the missing pixels) for inpainting.
      ``worse_than_input``: the restored images' mean PSNR is below the corrupted ones'
      (each such protocol also warns, ``RestorationWarning``).
    """
    from aejax.assemble import dataset_for
    from aejax.evaluate import pca_components

    if task not in PROTOCOLS:
        raise DataError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    if n is not None and n < 1:
        raise DataError(f"n must be >= 1, got {n}")
    workdir = pathlib.Path(workdir)
    if panels:
        names = [panel_name(task, protocol) for protocol in PROTOCOLS[task]]
        paths = check_output_dir(out_dir or workdir, names, force=force, default=not out_dir)
    run = _as_run(workdir)
    ds = dataset_for(run.config)
    if ds.kind != "image":
        raise DataError(f"the run in {workdir} is a {ds.kind} run: restoration needs images")
    x = np.asarray(to_unit(ds.x_test if n is None else ds.x_test[:n]), np.float32)
    k = pca_components(run.config, ds)
    results, skipped = {}, {}
    for i, protocol in enumerate(PROTOCOLS[task]):
        corrupted = corrupt(protocol, x)
        t0 = time.perf_counter()
        restored = restore(run, protocol, corrupted, iterations=iterations)
        seconds = time.perf_counter() - t0
        missing = corrupted.get("missing")
        its = protocol.iterations if iterations is None else iterations
        anchors = {}
        if baselines:
            anchors, skipped = restoration.anchors(task, corrupted, x, ds.x_train, pca_components=k)
        entry = {
            "corruption": protocol.spec,
            **({"iterations": its} if task == "inpaint" else {}),
            "corrupted": metrics.quality_report(corrupted["corrupted"], x, missing),
            "restored": metrics.quality_report(restored, x, missing),
            "baselines": {
                name: {
                    **metrics.quality_report(
                        a["images"], x[: a["n"]], None if missing is None else missing[: a["n"]]
                    ),
                    **{key: v for key, v in a.items() if key not in ("images", "n")},
                }
                for name, a in anchors.items()
            },
            "seconds": seconds,
        }
        entry["worse_than_input"] = _check_worse(entry, task, protocol, x.shape)
        if panels:
            rows = [("clean", x), (_corrupted_label(task), corrupted["corrupted"], missing)]
            rows.append((f"restored ({run.config.model})", restored))
            rows += [(name, a["images"]) for name, a in anchors.items()]
            title = f"{run.config.model} on {run.config.data}: {task} ({protocol.name})"
            entry["panel"] = str(write_panel(paths[i], rows, x, title=title))
        results[protocol.name] = entry
    return {
        "task": task,
        "workdir": str(workdir),
        "data": run.config.data,
        "model": run.config.model,
        "n": int(len(x)),
        "seed": SEED,
        "pca_components": k,
        "skipped_baselines": skipped,
        "worse_than_input": any(r["worse_than_input"] for r in results.values()),
        "protocols": results,
    }


class RestorationWarning(UserWarning):
    """The restored images score below the corrupted ones (``restore_run``)."""


def _check_worse(entry: dict, task: str, protocol: Protocol, shape: tuple[int, ...]) -> bool:
    """Whether the restored images' mean PSNR is below the corrupted input's (images of
    ``shape``); warns if so."""
    before, after = entry["corrupted"]["psnr"], entry["restored"]["psnr"]
    if after >= before:
        return False
    # The training corruption nearest to the protocol's (the centre hole: a block that size).
    spec = f"block:{min(shape[1:3]) // 2}" if protocol.spec == "centre" else protocol.spec
    warnings.warn(
        f"{task} {protocol.name}: the restored images are worse than the corrupted input "
        f"(mean PSNR {after:.2f} dB after vs {before:.2f} dB before); train the run on this "
        f"corruption (--set corruption={spec}), or longer",
        RestorationWarning,
        stacklevel=3,
    )
    return True


def _corrupted_label(task: str) -> str:
    return "corrupted (nearest)" if task == "superres" else "corrupted"


def panel_name(task: str, protocol) -> str:
    """``restore_<task>_<protocol>.png``, the file name of a protocol's panel."""
    return f"restore_{task}_{protocol.name.replace('%', '')}.png"


def write_panel(
    path: str | pathlib.Path,
    rows: list[tuple],
    original: np.ndarray,
    *,
    title: str,
    count: int = PANEL_IMAGES,
) -> pathlib.Path:
    """Writes the first ``count`` images of each row, named, atomically.

    Args:
      path: the PNG.
      rows: ``(name, images [N, H, W, C])`` or ``(name, images, missing)`` (bool, the
        images' shape: drawn tinted), top to bottom. Every row but one named ``"clean"``
        gets each image's PSNR (``aejax.metrics.psnr``, dB) against ``original`` under it.
      original: the clean images ``[N, H, W, C]``.
      title: the figure's title.
    """
    from aejax import plots

    k = min(count, len(original))
    drawn = []
    for name, images, *missing in rows:
        images = np.asarray(images[:k])
        psnr = None if name == "clean" else metrics.psnr(images, original[:k])
        mask = missing[0][:k] if missing and missing[0] is not None else None
        drawn.append(plots.PanelRow(name, images, psnr, mask))
    with atomic_path(path) as tmp:
        plots.restoration_panel(tmp, drawn, title=f"{title}; PSNR (dB) under each image")
    return pathlib.Path(path)
