"""The structure of helpers/ reads as the pipeline and has no import cycle.

Layers, lowest first: the foundation (``config``, ``distribute``), ``data`` (with
``geometry``), ``generator`` (with lesson 07's ``slices`` and lesson 06's ``patches``), ``models``,
``losses``/``metrics``, ``training``, ``inference``, ``viz``; ``checks`` beside them (they may
use any of them) and on top the lessons' ``course`` and ``challenge``, the instructor's grading
(``helpers/grading/``), the course tooling (``helpers/tools/``) and every ``__main__``. A module imports only from its
own layer or lower ones, counting the imports inside functions too, and the graph of all
imports between helpers modules is acyclic. A new module must be given its layer here.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from support.structure import MODULES, ROOT, SHIMS, TOP_PREFIXES, third_party_imports

PIPELINE = ["foundation", "data", "generator", "models", "losses/metrics", "training", "inference", "viz"]
BESIDE, TOP = "checks", "command line"
RANK = {name: rank for rank, name in enumerate(PIPELINE)} | {BESIDE: len(PIPELINE), TOP: len(PIPELINE) + 1}

LAYER_OF = {
    "helpers": "foundation", "helpers.config": "foundation", "helpers.distribute": "foundation",
    "helpers.generator": "generator", "helpers.slices": "generator",
    "helpers.models": "models",
    "helpers.losses": "losses/metrics", "helpers.metrics": "losses/metrics",
    "helpers.training": "training",
    "helpers.inference": "inference", "helpers.geometry": "data", "helpers.patches": "generator",
    "helpers.viz": "viz",
    # the lesson timer and the capstone's kit: notebooks import them, the command line runs them
    "helpers.course": TOP, "helpers.challenge": TOP, "helpers.challenge_page": TOP,
}



def _layer(module: str) -> str:
    if module in LAYER_OF:
        return LAYER_OF[module]
    # the instructor's grading, the course tooling, every command-line entry and the
    # one-release shims of moved modules (helpers.grading_execute, ...) sit on top
    if module.startswith(TOP_PREFIXES) or module.rpartition(".")[2] == "__main__" or module in SHIMS:
        return TOP
    if module == "helpers.data" or module.startswith("helpers.data."):
        return "data"
    if module == "helpers.checks" or module.startswith("helpers.checks."):
        return BESIDE
    raise AssertionError(f"{module} has no layer: add it to LAYER_OF in tests/tools/test_structure.py "
                         f"(where does it sit in data -> generator -> models -> ... -> viz?)")


def _imports(module: str, path: Path) -> set[str]:
    """The helpers modules ``module`` imports, anywhere in its code (functions included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from helpers import data` imports the module helpers.data; `from helpers.data
            # import load_pairs` imports helpers.data
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in MODULES and name != module)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


def test_no_import_cycle():
    state: dict[str, int] = {}          # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(GRAPH[module]):
            if state.get(imported) == 1:
                cycle = path[path.index(imported):] + [module, imported] if imported in path else [module, imported]
                raise AssertionError("import cycle: " + " -> ".join(dict.fromkeys(cycle)) + f" -> {imported}")
            if imported not in state:
                visit(imported, path + [module])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [])


def test_lower_layers_do_not_import_higher_ones():
    wrong = []
    for module, imported in sorted(GRAPH.items()):
        layer = _layer(module)
        for target in sorted(imported):
            if RANK[_layer(target)] > RANK[layer]:
                wrong.append(f"{module} ({layer}) imports {target} ({_layer(target)})")
    assert not wrong, "imports against the pipeline order:\n" + "\n".join(wrong)


def test_the_graph_sees_imports_inside_functions():
    # models builds in distribute's scope from inside build_unet: the edge must be there
    assert "helpers.distribute" in GRAPH["helpers.models"]
    assert "helpers.training" not in GRAPH["helpers.models"]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) != TOP or m == "helpers.course"))
def test_every_pipeline_and_checks_module_imports(module):
    importlib.import_module(module)


#: Packages only the instructor's grading and the course tooling may import: a learner's
#: install (the library the notebooks import) does not need them.
INSTRUCTOR_PACKAGES = ("nbformat", "nbclient", "nbconvert", "nbgrader", "ipykernel")


def _instructor_package(name: str) -> bool:
    top = name.split(".")[0]
    return top in INSTRUCTOR_PACKAGES or top.startswith("jupyter")




def test_the_learner_library_does_not_import_the_instructor_tools():
    """Only helpers/grading/, helpers/tools/ and the shims of moved modules may import
    nbformat, nbclient, nbconvert, nbgrader, ipykernel or jupyter_*."""
    wrong = []
    for module, path in sorted(MODULES.items()):
        if module.startswith(TOP_PREFIXES) or module in SHIMS:
            continue
        wrong += [f"{path.relative_to(ROOT)}:{line} imports {name}"
                  for name, line in sorted(third_party_imports(path)) if _instructor_package(name)]
    assert not wrong, "instructor packages imported outside helpers/grading and helpers/tools:\n" + "\n".join(wrong)


def test_the_import_boundary_sees_imports_inside_functions(tmp_path):
    path = tmp_path / "module.py"
    path.write_text("def run():\n    import nbformat\n    from nbclient import NotebookClient\n"
                    "    from jupyter_client import KernelManager\n    importlib.import_module('nbgrader.api')\n")
    names = {name for name, _ in third_party_imports(path)}
    assert names == {"nbformat", "nbclient", "jupyter_client", "nbgrader.api"}
    assert all(_instructor_package(name) for name in names) and not _instructor_package("numpy")
