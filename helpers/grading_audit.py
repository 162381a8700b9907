"""Integrity of a submission before it is graded: metadata repair and a code audit.

Two functions, both pure (they read notebooks and return results, nothing is executed):

* :func:`repair` puts back the nbgrader metadata of the release in a submission: a renamed
  ``grade_id``, ``grade: false`` on a test cell, changed points, a test cell turned into
  markdown, or an extra cell marked as graded would otherwise make nbgrader fail the whole
  notebook or count points the release does not give. Cells are matched to the release by
  ``grade_id``, then by content (locked cells) and by position (solution cells).
* :func:`audit` reads every code cell the student could write (not the release's locked
  cells) as a Python syntax tree and lists what a solution has no business doing:
  IPython internals, ``builtins``/``sys.modules`` edits, assignments to ``checks``,
  ``helpers`` or their attributes, ``exec``/``eval``/``compile``, file, database and
  process access, signals, ``os._exit``, reading ``answers/`` or the gradebook, and
  calling the reference implementation of the exercise being written. A finding does not
  change the score: the submission is graded as usual and marked "needs review" with the
  cell, the line and the reason. Ordinary solutions, which import ``helpers`` modules and
  use them as the lessons say, are never flagged (``tests/test_grading_audit.py`` keeps a
  corpus of legitimate variants).
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass

#: Names whose use is tampering with the kernel or the interpreter.
_FORBIDDEN_NAMES = {
    "get_ipython": "uses IPython internals (get_ipython)",
    "__builtins__": "edits builtins",
    "__import__": "imports through __import__",
    "exec": "runs code from a string (exec)",
    "eval": "runs code from a string (eval)",
    "compile": "compiles code from a string (compile)",
    "breakpoint": "starts a debugger",
}
#: Modules a solution has no reason to import.
_FORBIDDEN_MODULES = {
    "IPython": "uses IPython internals", "ipykernel": "uses the kernel's internals",
    "builtins": "edits builtins", "subprocess": "starts processes", "signal": "handles signals",
    "ctypes": "calls C code directly", "sqlite3": "opens a database", "socket": "opens network sockets",
    "multiprocessing": "starts processes", "pty": "starts processes", "gc": "walks the garbage collector",
    "inspect": "inspects code (e.g. to copy the reference)", "importlib": "re-imports modules",
    "nbgrader": "uses nbgrader", "nbformat": "reads notebooks", "nbclient": "runs notebooks",
    "jupyter_client": "talks to kernels", "sqlalchemy": "opens a database", "urllib": "uses the network",
    "http": "uses the network", "requests": "uses the network", "shutil": "moves or deletes files",
    "threading": "starts threads", "atexit": "registers exit hooks", "sys": None, "os": None,
}
_FORBIDDEN_ATTRIBUTES = {
    ("sys", "modules"): "edits sys.modules", ("sys", "settrace"): "sets a trace function",
    ("sys", "setprofile"): "sets a profile function", ("sys", "exit"): "exits the kernel",
    ("sys", "_getframe"): "reads interpreter frames", ("sys", "meta_path"): "changes the import system",
    ("sys", "path_hooks"): "changes the import system", ("sys", "excepthook"): "changes error handling",
    ("sys", "stdout"): "replaces the output stream", ("sys", "stderr"): "replaces the error stream",
    ("os", "_exit"): "kills the kernel (os._exit)", ("os", "kill"): "sends signals (os.kill)",
    ("os", "killpg"): "sends signals (os.killpg)", ("os", "system"): "runs shell commands",
    ("os", "popen"): "runs shell commands", ("os", "fork"): "forks the kernel",
    ("os", "remove"): "deletes files", ("os", "unlink"): "deletes files", ("os", "rmdir"): "deletes folders",
    ("os", "open"): "opens files directly", ("os", "chmod"): "changes file permissions",
    ("os", "environ"): None, ("os", "getppid"): "looks for the grader's process",
}
_OS_PREFIXES = ("exec", "spawn", "posix_spawn")
#: Dunder attributes that reach into functions, frames and classes.
_FORBIDDEN_DUNDERS = {"__code__", "__globals__", "__closure__", "__subclasses__", "__builtins__",
                      "__kwdefaults__", "__defaults__", "__dict__", "__class__", "__bases__", "__mro__",
                      "f_back", "f_globals", "f_locals", "f_builtins", "gi_frame", "tb_frame",
                      "__loader__", "__spec__", "__file__", "__path__"}
#: Text that names the grader's files.
_FORBIDDEN_TEXT = re.compile(r"answers[/\\]|gradebook|nbgrader_config|autograded[/\\]|submitted[/\\]"
                             r"|\.nbgrader|/proc/|/etc/passwd")
#: Cell magics and line magics that are fine in a solution.
_ALLOWED_MAGICS = {"matplotlib", "time", "timeit", "load_ext", "autoreload", "config"}


@dataclass(frozen=True)
class Finding:
    """One reason to review a submission: the cell (0-based index), the line in it and why."""

    cell: int
    line: int
    reason: str

    def __str__(self) -> str:
        return f"cell {self.cell + 1}, line {self.line}: {self.reason}"


def _nbgrader(cell) -> dict:
    return (cell.get("metadata") or {}).get("nbgrader") or {}


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _strip_magics(source: str) -> tuple[str, list[tuple[int, str]]]:
    """The source with IPython magics and shell escapes blanked, and findings for them."""
    lines, findings = [], []
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.lstrip()
        if stripped.startswith("!"):
            findings.append((number, "runs a shell command (!)"))
            lines.append("")
        elif stripped.startswith("%"):
            name = stripped.lstrip("%").split(None, 1)[0] if stripped.lstrip("%") else ""
            if name not in _ALLOWED_MAGICS:
                findings.append((number, f"uses the IPython magic %{name}"))
            lines.append("")
        else:
            lines.append(line)
    return "\n".join(lines), findings


class _Auditor(ast.NodeVisitor):
    def __init__(self, helpers_aliases: set[str]) -> None:
        self.aliases = helpers_aliases
        self.module_aliases: dict[str, str] = {}  # local name -> module (os, sys, ...)
        self.functions: list[str] = []
        self.findings: list[tuple[int, str]] = []

    def flag(self, node: ast.AST, reason: str) -> None:
        self.findings.append((getattr(node, "lineno", 1), reason))

    # imports
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            self._import(node, top)
            self.module_aliases[(alias.asname or alias.name).split(".")[0]] = top
            if top == "helpers":
                self.aliases.add(alias.asname or "helpers")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        top = (node.module or "").split(".")[0]
        self._import(node, top)
        if top == "helpers":
            self.aliases.update(alias.asname or alias.name for alias in node.names)
        if top in ("os", "sys"):
            for alias in node.names:
                reason = _FORBIDDEN_ATTRIBUTES.get((top, alias.name))
                if reason or alias.name.startswith(_OS_PREFIXES) and top == "os":
                    self.flag(node, reason or f"runs programs (os.{alias.name})")

    def _import(self, node: ast.AST, top: str) -> None:
        reason = _FORBIDDEN_MODULES.get(top)
        if reason:
            self.flag(node, f"imports {top}: {reason}")

    # names, attributes, calls
    def visit_Name(self, node: ast.Name) -> None:
        reason = _FORBIDDEN_NAMES.get(node.id)
        if reason:
            self.flag(node, reason)
        if node.id == "open" and isinstance(node.ctx, ast.Load):
            self.flag(node, "opens files directly (open)")
        if node.id in ("globals", "vars", "locals", "setattr", "delattr") and isinstance(node.ctx, ast.Load):
            self.flag(node, f"changes names indirectly ({node.id})")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in _FORBIDDEN_DUNDERS:
            self.flag(node, f"reaches into objects' internals ({node.attr})")
        if isinstance(node.value, ast.Name):
            module = self.module_aliases.get(node.value.id, node.value.id if node.value.id in ("os", "sys") else None)
            if module in ("os", "sys"):
                reason = _FORBIDDEN_ATTRIBUTES.get((module, node.attr))
                if reason:
                    self.flag(node, reason)
                elif module == "os" and node.attr.startswith(_OS_PREFIXES):
                    self.flag(node, f"runs programs (os.{node.attr})")
        self.generic_visit(node)

    def _root(self, node: ast.AST) -> str | None:
        while isinstance(node, ast.Attribute | ast.Subscript):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    def _target(self, target: ast.AST, node: ast.AST) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._target(element, node)
            return
        if isinstance(target, ast.Name):
            if target.id in ("checks", "helpers", "__builtins__"):
                self.flag(node, f"rebinds `{target.id}`, which the tests use")
            return
        root = self._root(target)
        if root in self.aliases or root in ("checks", "helpers"):
            self.flag(node, f"changes an attribute of `{root}` (helpers), which the tests use")
        elif root in ("builtins", "__builtins__", "sys"):
            self.flag(node, f"changes `{root}`")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._target(target, node)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._target(node.target, node)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._target(node.target, node)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._target(target, node)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            if name in ("checks", "helpers"):
                self.flag(node, f"rebinds `{name}` from inside a function")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            if self._root(base) in self.aliases or self._root(base) == "helpers":
                self.flag(node, f"class {node.name} inherits from the reference implementation "
                                f"({ast.unparse(base)}): write the class yourself")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        if isinstance(function, ast.Attribute) and self._root(function) in self.aliases | {"helpers"}:
            called = function.attr.removeprefix("reference_")
            if self.functions and called == self.functions[0]:
                self.flag(node, f"{self.functions[0]}() calls the reference implementation "
                                f"{ast.unparse(function)} instead of doing its own work")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _FORBIDDEN_TEXT.search(node.value):
            self.flag(node, f"names the grader's files ({node.value[:60]!r})")


def _helpers_aliases(cells) -> set[str]:
    """Local names bound to helpers modules anywhere in the notebook
    (``from helpers import checks``, ``import helpers.metrics as m``)."""
    aliases = set()
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse(_strip_magics(_source(cell))[0])
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "helpers":
                aliases.update(alias.asname or alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "helpers":
                        aliases.add(alias.asname or "helpers")
    return aliases


def audit_source(source: str, helpers_aliases: set[str] | None = None) -> list[tuple[int, str]]:
    """``(line, reason)`` for every suspicious construct in one cell's source (see the module
    docstring). Source that does not parse gives no finding: it fails by itself when run."""
    aliases = set(helpers_aliases or ()) | {"checks", "helpers"}
    stripped, findings = _strip_magics(source)
    try:
        tree = ast.parse(stripped)
    except SyntaxError:
        return findings
    auditor = _Auditor(aliases)
    auditor.visit(tree)
    return sorted(set(findings + auditor.findings))


def audit(submission, release) -> list[Finding]:
    """Findings in the code cells of ``submission`` that a student wrote or changed (cells
    identical to a cell of ``release`` are skipped), in cell order."""
    given = {_source(cell) for cell in release.get("cells", []) if cell.get("cell_type") == "code"}
    cells = submission.get("cells", [])
    aliases = _helpers_aliases(cells)
    findings = []
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code" or _source(cell) in given:
            continue
        meta = _nbgrader(cell)
        if meta.get("locked") and not meta.get("solution"):
            continue  # nbgrader puts the original back before running it
        for line, reason in audit_source(_source(cell), aliases):
            findings.append(Finding(index, line, reason))
    return findings


# --- metadata repair ------------------------------------------------------------------------


def repair(submission, release) -> tuple[dict, list[str]]:
    """Return a copy of ``submission`` whose nbgrader metadata matches ``release``, and a
    list of sentences saying what was put back.

    A cell keeps the release metadata of the cell it corresponds to: the cell with its
    ``grade_id``; else, for locked cells, the cell with the same source; else, for
    solution cells, the unmatched submission cell with nbgrader metadata between the same
    neighbours. Cells that match nothing lose their nbgrader metadata (an extra graded
    cell cannot add points); locked cells of the release that are missing are added back by
    nbgrader itself (``add_missing_cells``).
    """
    repaired = copy.deepcopy(submission)
    cells = repaired.get("cells", [])
    wanted = [(i, cell) for i, cell in enumerate(release.get("cells", [])) if _nbgrader(cell)]
    by_id = {_nbgrader(cell).get("grade_id"): cell for _, cell in wanted}
    notes: list[str] = []
    assigned: dict[int, dict] = {}  # submission index -> release cell
    used_ids: set[str] = set()
    for index, cell in enumerate(cells):
        grade_id = _nbgrader(cell).get("grade_id")
        if grade_id in by_id and grade_id not in used_ids:
            assigned[index] = by_id[grade_id]
            used_ids.add(grade_id)
    for _, original in wanted:  # locked cells by content
        grade_id = _nbgrader(original).get("grade_id")
        if grade_id in used_ids or not _nbgrader(original).get("locked"):
            continue
        for index, cell in enumerate(cells):
            if index not in assigned and _source(cell).strip() == _source(original).strip():
                assigned[index] = original
                used_ids.add(grade_id)
                notes.append(f"cell {index + 1}: locked cell {grade_id!r} recognised by its content "
                             f"and given back its metadata")
                break
    order = [_nbgrader(cell).get("grade_id") for _, cell in wanted]
    for position, (_, original) in enumerate(wanted):  # solution cells by position
        grade_id = _nbgrader(original).get("grade_id")
        if grade_id in used_ids or not _nbgrader(original).get("solution"):
            continue
        before = [i for i, c in assigned.items() if _nbgrader(c).get("grade_id") in order[:position]]
        after = [i for i, c in assigned.items() if _nbgrader(c).get("grade_id") in order[position + 1:]]
        low, high = (max(before) if before else -1), (min(after) if after else len(cells))
        for index in range(low + 1, high):
            if index not in assigned and _nbgrader(cells[index]) and cells[index].get("cell_type") == "code":
                assigned[index] = original
                used_ids.add(grade_id)
                notes.append(f"cell {index + 1}: solution cell {grade_id!r} recognised by its position "
                             f"(its grade_id had been changed to {_nbgrader(cells[index]).get('grade_id')!r})")
                break
    for index, cell in enumerate(cells):
        meta = cell.setdefault("metadata", {})
        original = assigned.get(index)
        if original is None:
            if meta.get("nbgrader"):
                if _nbgrader(cell).get("grade") or _nbgrader(cell).get("solution") or _nbgrader(cell).get("locked"):
                    notes.append(f"cell {index + 1}: nbgrader metadata {_nbgrader(cell).get('grade_id')!r} "
                                 f"is not in the release and was removed")
                del meta["nbgrader"]
            continue
        expected = copy.deepcopy(original["metadata"]["nbgrader"])
        grade_id = expected.get("grade_id")
        if _nbgrader(cell) != expected:
            changed = sorted(key for key in set(expected) | set(_nbgrader(cell))
                             if key not in ("checksum", "cell_type") and _nbgrader(cell).get(key) != expected.get(key))
            if changed:
                notes.append(f"cell {index + 1} ({grade_id}): metadata {', '.join(changed)} restored "
                             f"from the release")
            meta["nbgrader"] = expected
        if cell.get("cell_type") != original.get("cell_type"):
            notes.append(f"cell {index + 1} ({grade_id}): cell type {cell.get('cell_type')!r} "
                         f"restored to {original.get('cell_type')!r}")
            cell["cell_type"] = original["cell_type"]
            if original["cell_type"] == "code":
                cell.setdefault("outputs", [])
                cell.setdefault("execution_count", None)
            else:
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
    return repaired, notes
