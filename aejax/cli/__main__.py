"""``python -m aejax.cli``: the ``aejax`` console script."""

import sys

from aejax.cli.process import main

sys.exit(main())
