"""Command line of the course: ``python -m helpers <command>``.

A thin entry: the commands live in :mod:`helpers.tools.cli` (``python -m helpers --help``
lists them). Standard library only until a command runs: the command line works on a bare
Python and builds the course environment first.
"""

import sys

from helpers.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
