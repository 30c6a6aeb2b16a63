"""What a measurement ran on: package versions, device, machine, threads and peak memory."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import resource
import sys

import jax

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "scikit-learn", "torch", "pyod")


def versions() -> dict[str, str]:
    """Versions of Python, aejax and every package a benchmark may use (absent ones left out)."""
    out = {"python": platform.python_version()}
    for name in ("aejax",) + _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the host's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def device() -> dict:
    """The JAX device measurements run on: kind, platform, count, and the host CPU."""
    d = jax.devices()[0]
    return {
        "kind": d.device_kind,
        "platform": d.platform,
        "count": jax.device_count(),
        "cpu": cpu_model(),
        "cpu_cores": cpu_count(),
    }


def machine_line(dev: dict | None = None) -> str:
    """One line for reports: ``"cpu (AMD EPYC, 2 cores), 1 device(s)"``."""
    dev = dev or device()
    host = f"{dev['cpu']}, {dev['cpu_cores']} cores"
    if dev["platform"] == "cpu":
        return f"CPU only ({host}); JAX device kind {dev['kind']!r}"
    return f"{dev['count']} x {dev['kind']} ({dev['platform']}); host {host}"


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def peak_memory() -> dict:
    """Peak memory where measurable.

    Returns:
      ``{"bytes": int, "source": str, "note": str}``: the accelerator's ``peak_bytes_in_use``
      when ``memory_stats()`` reports it (GPU/TPU); otherwise this process's resident-set
      high-water mark (``ru_maxrss``), which covers everything the process did so far.
    """
    stats = jax.devices()[0].memory_stats()
    if stats and "peak_bytes_in_use" in stats:
        return {
            "bytes": int(stats["peak_bytes_in_use"]),
            "source": "device.memory_stats",
            "note": "accelerator peak bytes in use since the process started",
        }
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return {
        "bytes": int(kib * scale),
        "source": "ru_maxrss",
        "note": "process RSS high-water mark so far (host memory of the whole run, not "
        "of this measurement alone)",
    }
