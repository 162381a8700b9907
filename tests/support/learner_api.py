"""The learner API: the ``helpers`` functions and classes that the answer notebooks call, and
whether each is fully annotated and documented (issue 28, item 5).

Static, from the source (``ast``; nothing is imported, no TensorFlow): the code cells of
``answers/*/*.ipynb`` are scanned for ``<module>.<name>(...)`` where ``<module>`` is a
``helpers`` module the notebook imports (``from helpers import data, metrics``,
``from helpers.data import lung_ct``, ``import helpers.viz as viz``), and for
``<name>(...)`` imported from one (``from helpers.data.io import read_nifti``). Each name is
followed to its definition through re-exports (``helpers.checks`` re-exports the checks of
its submodules). A function is *complete* when

* every parameter (but ``self`` / ``cls``) and the return are annotated;
* its docstring has an ``Args:`` section naming every parameter (when it has any), a
  ``Returns:`` (or ``Yields:``) section unless it returns ``None``, and a ``Raises:``
  section when its body has a ``raise`` statement of its own (not a bare re-raise, not in a
  nested function).

A class is complete when it has a docstring and its ``__init__`` (if it defines one) is
complete, with the ``Args:`` on the class or on ``__init__``.

The same rule holds for the whole public API of the lessons' modules (:data:`LESSON_MODULES`).
Run ``python tests/support/learner_api.py`` from the repository root for the listing;
``tests/library/test_learner_api.py`` enforces both.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SECTION = re.compile(r"^\s*(Args|Arguments|Returns|Yields|Raises|Attributes|Examples?|Notes?|Example)\s*:\s*$")


@dataclass
class Entry:
    """One helpers function or class that a notebook calls."""

    qualname: str  # helpers.metrics.dice_coefficient (where it is defined)
    kind: str  # "function", "class" or "other"
    lessons: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.kind != "other" and not self.problems


# ---------------------------------------------------------------------------------------------
# the notebooks


def _code_cells(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    sources = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        # IPython magics and shell escapes are not Python
        lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
        sources.append("\n".join(lines))
    return sources


def _is_helpers_module(dotted: str) -> bool:
    return _module_file(dotted) is not None


def calls_in_notebook(notebook: Path) -> set[tuple[str, str]]:
    """``(module, name)`` of every helpers function or class called in the notebook's code cells."""
    trees = []
    for source in _code_cells(notebook):
        try:
            trees.append(ast.parse(source))
        except SyntaxError:
            continue
    modules: dict[str, str] = {}  # local name -> helpers module
    functions: dict[str, tuple[str, str]] = {}  # local name -> (module, name)
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "helpers":
                for alias in node.names:
                    dotted = f"{node.module}.{alias.name}"
                    local = alias.asname or alias.name
                    if _is_helpers_module(dotted):
                        modules[local] = dotted
                    else:
                        functions[local] = (node.module, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "helpers" and alias.asname:
                        modules[alias.asname] = alias.name
    found = set()
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in functions:
                found.add(functions[func.id])
            elif isinstance(func, ast.Attribute):
                chain = [func.attr]
                value = func.value
                while isinstance(value, ast.Attribute):
                    chain.append(value.attr)
                    value = value.value
                if isinstance(value, ast.Name) and value.id in modules:
                    parts = [modules[value.id], *reversed(chain[1:])]
                    module = ".".join(parts)
                    if _is_helpers_module(module):
                        found.add((module, func.attr))
    return found


# ---------------------------------------------------------------------------------------------
# the helpers source


def _module_file(dotted: str) -> Path | None:
    base = REPO_ROOT.joinpath(*dotted.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


_TREES: dict[Path, ast.Module] = {}


def _tree(path: Path) -> ast.Module:
    if path not in _TREES:
        _TREES[path] = ast.parse(path.read_text(encoding="utf-8"))
    return _TREES[path]


def resolve(module: str, name: str, _depth: int = 0) -> tuple[str, ast.AST | None]:
    """The definition of ``module.name``, following ``from ... import`` re-exports."""
    path = _module_file(module)
    if path is None or _depth > 5:
        return f"{module}.{name}", None
    tree = _tree(path)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return f"{module}.{name}", node
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            source = node.module
            if node.level:  # relative import
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                source = ".".join([*package, node.module])
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return resolve(source, alias.name, _depth + 1)
    for node in tree.body:  # an alias (name = other_function)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            if isinstance(node.value, ast.Name):
                return resolve(module, node.value.id, _depth + 1)
            return f"{module}.{name}", node
    return f"{module}.{name}", None


def _sections(docstring: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in docstring.splitlines():
        match = SECTION.match(line)
        if match:
            current = {"Arguments": "Args", "Yields": "Returns"}.get(match.group(1), match.group(1))
            sections.setdefault(current, [])
        elif current is not None:
            sections[current].append(line)
    return sections


def _own_raises(function: ast.AST) -> bool:
    """Whether the body of ``function`` has a ``raise X`` of its own (not in a nested def)."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Raise) and node.exc is not None:
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> list[ast.arg]:
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    if method and positional:
        positional = positional[1:]
    params = [*positional, *args.kwonlyargs]
    params += [arg for arg in (args.vararg, args.kwarg) if arg is not None]
    return params


def function_problems(function: ast.FunctionDef | ast.AsyncFunctionDef, *, method: bool = False,
                      docstring: str | None = None) -> list[str]:
    """What ``function`` lacks: annotations, sections of its docstring."""
    problems = []
    params = _parameters(function, method)
    unannotated = [p.arg for p in params if p.annotation is None]
    if unannotated:
        problems.append("unannotated: " + ", ".join(unannotated))
    is_init = function.name == "__init__"
    if function.returns is None and not is_init:
        problems.append("no return annotation")
    text = docstring if docstring is not None else (ast.get_docstring(function) or "")
    if not text:
        return [*problems, "no docstring"]
    sections = _sections(text)
    if params:
        if "Args" not in sections:
            problems.append("no Args section")
        else:
            body = "\n".join(sections["Args"])
            missing = [p.arg for p in params
                       if not re.search(rf"^\s*\**{re.escape(p.arg)}\b[^:\n]*:", body, re.MULTILINE)]
            if missing:
                problems.append("Args lacks: " + ", ".join(missing))
    returns_none = isinstance(function.returns, ast.Constant) and function.returns.value in (None, "None")
    returns_none = returns_none or (isinstance(function.returns, ast.Name) and function.returns.id == "NoReturn")
    if not is_init and not returns_none and "Returns" not in sections:
        problems.append("no Returns section")
    if _own_raises(function) and "Raises" not in sections:
        problems.append("raises, no Raises section")
    return problems


def class_problems(node: ast.ClassDef) -> list[str]:
    """What class ``node`` lacks: a docstring; a complete ``__init__`` (Args on the class or on it)."""
    docstring = ast.get_docstring(node) or ""
    if not docstring:
        return ["no docstring"]
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            text = "\n".join([docstring, ast.get_docstring(item) or ""])
            return function_problems(item, method=True, docstring=text)
    return []


def listing() -> dict[str, Entry]:
    """Every helpers function or class that an answer notebook calls, by the name it is defined under."""
    entries: dict[str, Entry] = {}
    for notebook in sorted(REPO_ROOT.glob("answers/*/*.ipynb")):
        for module, name in sorted(calls_in_notebook(notebook)):
            qualname, node = resolve(module, name)
            if qualname not in entries:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    entry = Entry(qualname, "function", problems=function_problems(node))
                elif isinstance(node, ast.ClassDef):
                    entry = Entry(qualname, "class", problems=class_problems(node))
                else:
                    entry = Entry(qualname, "other", problems=["not a def or class (not checked)"])
                entries[qualname] = entry
            entries[qualname].lessons.add(notebook.parent.name[:2])
    return dict(sorted(entries.items()))


#: The modules of the lessons' pipeline: their whole public API (``__all__``, else every public
#: def and class) is held to the same rule, not only what a notebook calls today.
LESSON_MODULES = (
    "helpers.config", "helpers.distribute", "helpers.generator", "helpers.geometry", "helpers.inference",
    "helpers.losses", "helpers.metrics", "helpers.models", "helpers.patches", "helpers.slices",
    "helpers.training", "helpers.viz", "helpers.data", "helpers.data.io", "helpers.data.cxr",
    "helpers.data.lung_ct", "helpers.data.liver_ct", "helpers.data.brain_mri", "helpers.checks",
    "helpers.checks._common", "helpers.checks.architecture", "helpers.checks.brain", "helpers.checks.generator",
    "helpers.checks.liver_ct", "helpers.checks.lung_ct", "helpers.checks.metrics", "helpers.checks.prediction",
    "helpers.checks.training",
)


def _public_names(module: str) -> list[str]:
    path = _module_file(module)
    assert path is not None, module
    tree = _tree(path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [element.value for element in node.value.elts]  # type: ignore[attr-defined]
    return [node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")]


def public_api(modules: tuple[str, ...] = LESSON_MODULES) -> dict[str, Entry]:
    """Every public function and class of ``modules`` (constants and aliases left out)."""
    entries: dict[str, Entry] = {}
    for module in modules:
        for name in _public_names(module):
            qualname, node = resolve(module, name)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                entries.setdefault(qualname, Entry(qualname, "function", problems=function_problems(node)))
            elif isinstance(node, ast.ClassDef):
                entries.setdefault(qualname, Entry(qualname, "class", problems=class_problems(node)))
    return dict(sorted(entries.items()))


def main() -> int:
    entries = listing()
    checked = [e for e in entries.values() if e.kind != "other"]
    complete = [e for e in checked if e.complete]
    verbose = "-v" in sys.argv
    for entry in entries.values():
        if entry.complete and not verbose:
            continue
        mark = "ok " if entry.complete else "-- "
        print(f"{mark}{entry.qualname} [{entry.kind}; {','.join(sorted(entry.lessons))}]"
              + ("" if entry.complete else ": " + "; ".join(entry.problems)))
    print(f"\n{len(complete)} of {len(checked)} notebook-called helpers functions and classes are fully annotated "
          f"and documented ({len(entries) - len(checked)} other names not checked).")
    api = public_api()
    for entry in api.values():
        if not entry.complete:
            print(f"-- {entry.qualname} [public API]: " + "; ".join(entry.problems))
    print(f"{sum(e.complete for e in api.values())} of {len(api)} public functions and classes of the lessons' "
          f"modules are fully annotated and documented.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
