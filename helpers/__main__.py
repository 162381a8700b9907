"""``python -m helpers <command>``: the course's command line (:mod:`helpers.tools.cli`).

``python -m helpers --help`` lists the commands. Standard library only until a command
runs (the command line works on a bare Python and builds the course environment first).
"""

import sys

from helpers.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
