"""``python -m maskformer ...``: see :mod:`maskformer.cli` for the commands."""

import sys

from .cli import main

if __name__ == "__main__":
    main(sys.argv[1:])
