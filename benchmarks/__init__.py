"""aejax's benchmark suite: throughput and quality of every registry model beside its peers.

Run it with ``python -m benchmarks run --suite quick --out bench-out/quick`` (see
``benchmarks/README.md``). The peers (PyTorch twins, scikit-learn's PCA) live only here,
behind the ``bench`` extra.
"""
