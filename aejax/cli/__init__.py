"""Command line: ``aejax train | evaluate | encode | embed | sample | interpolate | restore |
probe | detect | recommend | config | models | datasets``.

``parser`` holds every option (``generate`` those of ``sample`` and ``interpolate``),
``commands`` the handlers (one module per group of related commands), ``tables`` what
``train`` prints and ``process`` the entry point ``main`` with the process-wide settings.
Importing this package imports no jax: each handler imports the library when it runs.
"""

from aejax.cli.commands.train import build_config, default_workdir
from aejax.cli.parser import build_parser
from aejax.cli.process import main
from aejax.cli.tables import format_table, table_footer
from aejax.errors import Terminated

# The name tests and scripts used before the parser became a module of its own.
_parser = build_parser

__all__ = [
    "Terminated",
    "build_config",
    "build_parser",
    "default_workdir",
    "format_table",
    "main",
    "table_footer",
]
