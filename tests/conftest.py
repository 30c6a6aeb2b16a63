"""Test setup: 8 fake CPU devices (for sharding tests) and strict numerics."""

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def digits():
    """The embedded 8x8 digits, split with seed 0."""
    from aejax.data import load_dataset

    return load_dataset("digits", seed=0)


def _session_compilation_cache():
    """One persistent XLA cache for the whole session, removed at exit: tests train the
    same tiny configs many times (determinism, resume, sharding, the estimator checks),
    and a hit skips XLA's compile of a program already built (tracing still runs)."""
    import atexit
    import shutil
    import tempfile

    from aejax.train.runtime import enable_compilation_cache

    path = tempfile.mkdtemp(prefix="aejax-test-xla-cache-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    enable_compilation_cache(path)


_session_compilation_cache()


@pytest.fixture
def saved_figures(monkeypatch):
    """The matplotlib figures saved during the test, in order (still written to disk)."""
    import matplotlib.figure

    saved = []
    real = matplotlib.figure.Figure.savefig

    def capture(fig, *args, **kwargs):
        saved.append(fig)
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", capture)
    return saved
