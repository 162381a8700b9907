"""Run by .ci/run with the Python of a fresh venv that has only `pip install .` (no extras):
every learner module of the installed course imports, and no instructor tool is installed.

    python .ci/learner_only.py      # from any folder but the repository root
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys

#: Sub-packages and shims that belong to the instructor and tooling rooms (their extras).
NOT_LEARNER = ("helpers.grading", "helpers.tools", "helpers.grading_execute", "helpers.grading_feedback",
               "helpers.hosted", "helpers.__main__")
#: Distributions that plain `pip install .` must not bring.
INSTRUCTOR_IMPORTS = ("nbgrader", "jupyterlab", "nbclient", "pytest")


def main() -> int:
    import helpers

    if "site-packages" not in helpers.__file__:
        print(f"helpers was imported from {helpers.__file__}, not from the installed course: run this "
              f"script from outside the repository", file=sys.stderr)
        return 2
    present = [name for name in INSTRUCTOR_IMPORTS if importlib.util.find_spec(name) is not None]
    if present:
        print(f"plain `pip install .` installed instructor tools: {', '.join(present)}", file=sys.stderr)
        return 1
    modules = [info.name for info in pkgutil.walk_packages(helpers.__path__, "helpers.")
               if not info.name.startswith(NOT_LEARNER)]
    for name in modules:
        importlib.import_module(name)
    print(f"learner library: {len(modules)} modules import with plain `pip install .`; "
          f"none of {', '.join(INSTRUCTOR_IMPORTS)} is installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
