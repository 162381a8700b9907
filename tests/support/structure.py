"""The modules of ``helpers`` as the structure tests see them: every module by dotted name,
the rooms on top (grading, tools), the one-release shims, and the imports a module makes."""

from __future__ import annotations

import ast
from pathlib import Path

from support.course import REPO_ROOT as ROOT

HELPERS = ROOT / "helpers"

#: Packages (and shim names) on top: everything under helpers/grading/ and helpers/tools/.
TOP_PREFIXES = ("helpers.grading", "helpers.tools")
#: One-release shims of modules that moved into helpers/grading/ or helpers/tools/.
SHIMS = {"helpers.grading_execute", "helpers.grading_feedback", "helpers.hosted"}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(HELPERS.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _modules()


def third_party_imports(path: Path) -> set[tuple[str, int]]:
    """Absolute imports of ``path`` anywhere in its code (functions included), and the
    modules named by a constant in ``importlib.import_module``/``__import__`` calls."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add((node.module, node.lineno))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module" or getattr(node.func, "id", None) == "__import__")):
            found.add((node.args[0].value, node.lineno))
    return found
