"""Applications of a trained run or of the engine: restoration (``restore``), 2-D views of
the codes (``embed``), linear probes (``probe``), code export (``export``), anomaly
detection on tables (``detect``) and on time series (``series``), grids of runs
(``sweep``) and runs side by side (``compare``).

Each module imports the library it needs; importing this package imports none of them.
"""
