"""The package's shape, read from its source with ``ast`` (nothing is imported): no import
cycle, no module over 500 lines, few top-level modules, and the layers below.

Every ``import aejax...`` counts, at any depth: a late import inside a function is still a
dependency (as in ../shared/tools/house.py). A name inside a module maps to that module.

Layers, bottom to top; a module may import from its own layer and the layers below:

0. errors, _logging, outputs, xla, fields: no aejax dependency worth the name
1. data (augment, corruption, chunks), models (objective, losses), baselines, metrics
2. config: the frozen dataclass that names the parts
3. train (the engine, stacked pretraining beside it), inference: the batched application
   of a model, whose input checks the engine uses (it needs only layers 0 and 1)
4. assemble (config -> objects -> fit), run (a run's lifecycle), evaluate, bounds, sampling
5. apps, estimators, plots: what users do with runs
6. cli and the package ``__init__``
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "aejax"

LAYERS = {
    **dict.fromkeys(("errors", "_logging", "outputs", "xla", "fields"), 0),
    **dict.fromkeys(("data", "models", "baselines", "metrics"), 1),
    "config": 2,
    **dict.fromkeys(("train", "inference"), 3),
    **dict.fromkeys(("assemble", "run", "evaluate", "bounds", "sampling"), 4),
    **dict.fromkeys(("apps", "estimators", "plots"), 5),
    **dict.fromkeys(("cli", "__init__"), 6),
}

# The one upward import allowed, with its reason: (importer's unit, imported unit).
ALLOWED_UPWARD = {
    # `aejax train` draws the test reconstructions (reconstructions.png) at the end of a
    # run: evaluate (layer 4) calls plots (layer 5, it draws runs' codes and samples too)
    # late, only when a figure is drawn. It goes when that figure is drawn by the caller.
    ("evaluate", "plots"): "train_and_evaluate draws reconstructions.png",
}

MAX_LINES = 500
MAX_TOP_LEVEL = 12


def _modules() -> dict[str, pathlib.Path]:
    mods = {}
    for f in sorted(ROOT.rglob("*.py")):
        parts = f.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = f
    return mods


def _graph() -> dict[str, set[str]]:
    """module -> the aejax modules it imports (a package's ``__init__`` is the package)."""
    mods = _modules()

    def resolve(target: str) -> str | None:
        while target and target not in mods:
            target = target.rpartition(".")[0]
        return target or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        is_pkg = f.name == "__init__.py"
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = m.split(".") if is_pkg else m.split(".")[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            for n in names:
                if n == "aejax" or n.startswith("aejax."):
                    t = resolve(n)
                    # A module's own package (its __init__ runs first anyway) is no edge.
                    if t and t != m and not m.startswith(t + "."):
                        graph[m].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _unit(module: str) -> str:
    """``aejax.train.loop`` -> ``train``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _upward() -> set[tuple[str, str, str, str]]:
    """Every import of a higher layer: ``(importer, imported, importer's unit, its unit)``."""
    out = set()
    for m, targets in _graph().items():
        for t in targets:
            a, b = _unit(m), _unit(t)
            if a != b and LAYERS[b] > LAYERS[a]:
                out.add((m, t, a, b))
    return out


def test_every_top_level_module_has_a_layer():
    units = {_unit(m) for m in _modules()}
    assert units - set(LAYERS) == set(), "add the new module to LAYERS (and the docstring)"


def test_no_module_over_500_lines():
    long = {m: n for m, f in _modules().items() if (n := len(f.read_text().splitlines())) > 500}
    assert long == {}


def test_few_top_level_modules():
    top = sorted(f.stem for f in ROOT.glob("*.py") if f.name != "__init__.py")
    assert len(top) <= MAX_TOP_LEVEL, top


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_at_most_one_upward_import():
    pairs = {(a, b) for _, _, a, b in _upward()}
    assert pairs <= set(ALLOWED_UPWARD) and len(ALLOWED_UPWARD) <= 1, pairs


def test_the_package_and_the_cli_import_no_jax():
    """``import aejax`` and ``aejax.cli`` import jax, scikit-learn and Orbax nowhere at module
    level (the handlers import the library when they run)."""
    heavy = ("jax", "flax", "optax", "orbax", "sklearn", "dm_pix", "tqdm", "numpy")
    light = ["aejax", "aejax.errors", "aejax.cli", "aejax.apps", *_modules_under("aejax.cli")]
    for m in light:
        f = _modules()[m]
        for node in ast.parse(f.read_text()).body:  # module level only
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for n in names:
                assert n.split(".")[0] not in heavy, (m, n)


def _modules_under(package: str) -> list[str]:
    return [m for m in _modules() if m.startswith(package + ".")]


def test_import_aejax_imports_no_library_and_lists_every_name():
    """``import aejax`` loads no jax, scikit-learn, Orbax or numpy; every public name resolves
    (then its module is loaded), and ``dir`` lists them."""
    import subprocess
    import sys

    code = (
        "import sys\nimport aejax\n"
        "heavy = ('jax', 'sklearn', 'orbax', 'numpy', 'tqdm', 'dm_pix')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "assert set(aejax.__all__) <= set(dir(aejax))\n"
        "import aejax.apps.recommend\n"
        "missing = [n for n in aejax.__all__ if getattr(aejax, n, None) is None]\n"
        "assert not missing, missing\n"
        "import aejax.assemble\n"
        "assert callable(aejax.recommend) and aejax.train_run is aejax.assemble.train\n"
        "assert aejax.series.detect_series is aejax.detect_series\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "[]"


def test_renamed_names_say_the_new_name():
    import aejax
    import aejax.estimators
    from aejax.errors import RenamedError

    for module in (aejax, aejax.estimators):
        with pytest.raises(RenamedError, match="renamed .*AutoencoderTransformer"):
            module.Autoencoder  # noqa: B018
    with pytest.raises(ImportError, match="AutoencoderTransformer"):
        from aejax import Autoencoder  # noqa: F401


def test_the_old_train_function_says_its_new_name():
    import aejax.train
    from aejax.errors import RenamedError

    with pytest.raises(RenamedError, match=r"aejax.train.train was renamed aejax.train_run"):
        aejax.train.train  # noqa: B018
