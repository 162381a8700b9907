"""Integrity of a submission before it is graded: metadata repair and a code audit.

Two functions, both pure (they read notebooks and return results, nothing is executed):

* :func:`repair` puts back the nbgrader metadata of the release in a submission: a renamed
  ``grade_id``, ``grade: false`` on a test cell, changed points, a test cell turned into
  markdown, or an extra cell marked as graded would otherwise make nbgrader fail the whole
  notebook or count points the release does not give. Cells are matched to the release by
  ``grade_id``, then by content (locked cells) and by position (solution cells).
* :func:`audit` reads every code cell the student could write (not the release's locked
  cells) as IPython reads it: IPython's own input transformation
  (``TransformerManager.transform_cell``) turns magics, shell escapes (``!cmd``,
  ``x = !cmd``) and help (``x?``) into Python, whose syntax tree is read; the code that the
  allowed magics run (``%time``/``%timeit``/``%%time``/``%%timeit``, the value ``%config``
  executes, the ``{expressions}`` IPython expands in a magic's arguments) is read as code
  too, and a cell that does not parse even so is a finding (reviewed by hand) unless it is
  the release's own. It lists what a solution has no business doing: magics other than
  ``%matplotlib``, ``%time``, ``%timeit``, ``%load_ext autoreload``, ``%autoreload`` and
  ``%config``, shell escapes, help (``x?``, ``x??``) on the course's code, IPython
  internals, ``builtins``/``sys.modules`` edits, assignments to ``checks``,
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
_ALLOWED_MAGICS = {"matplotlib", "time", "timeit", "load_ext", "autoreload", "config", "pinfo", "pinfo2"}


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


# --- cells read as IPython reads them --------------------------------------------------------

#: Magics whose argument (and cell body) is Python that runs in the kernel: it is audited
#: as code. IPython expands no ``{expression}`` in their arguments.
_CODE_MAGICS = {"time", "timeit"}
_NO_VAR_EXPAND = {"time", "timeit", "prun", "debug"}
#: What the generated ``get_ipython().<method>(...)`` calls of IPython's transformation are.
_MAGIC_METHODS = {"run_line_magic": 2, "run_cell_magic": 3, "system": 1, "getoutput": 1}
#: Why some magics that are not allowed are worth a word more.
_MAGIC_WHY = {"bash": "runs a shell", "sh": "runs a shell", "script": "runs another program",
              "system": "runs a shell command", "sx": "runs a shell command", "writefile": "writes a file",
              "python": "runs another Python", "python2": "runs another Python", "python3": "runs another Python",
              "pypy": "runs another Python", "perl": "runs another program", "ruby": "runs another program",
              "run": "runs a file", "load": "loads a file into the cell", "pip": "installs packages",
              "conda": "installs packages", "env": "changes the environment", "cd": "changes the folder",
              "capture": "hides the cell's output", "store": "stores variables on disk"}
#: Extensions ``%load_ext`` may load (an extension runs with the kernel's internals).
_ALLOWED_EXTENSIONS = {"autoreload"}
#: Nesting of magics inside the code of magics that is read (``%time %time ...``).
_MAX_MAGIC_DEPTH = 4


@dataclass
class _Parsed:
    """A cell's code as IPython runs it: the cell's syntax tree, then the trees of the code its
    magics run (``%time``'s argument, a ``%%time`` body, the ``{expressions}`` IPython expands
    in a magic's arguments), every line number that of the cell; and findings for code that
    does not parse."""

    trees: list
    findings: list


def _transform(source: str) -> str:
    """The cell as IPython's own input transformation makes it Python (magics become
    ``get_ipython().run_line_magic(...)`` calls, ``!cmd`` ``get_ipython().system(...)``)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _line_map(source: str, transformed: str) -> list[int]:
    """For each line of ``transformed``, the line of ``source`` it comes from (1-based).
    Line magics keep lines one for one; IPython drops leading blank lines and joins the
    lines of a magic continued with a backslash, and a cell magic becomes one line."""
    import difflib

    before, after = source.splitlines() or [""], transformed.splitlines() or [""]
    lines = [1] * len(after)
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal" or (i2 - i1) == (j2 - j1):
            for k in range(j2 - j1):
                lines[j1 + k] = min(i1 + k, len(before) - 1) + 1
            continue
        start = i1
        while start < i2 - 1 and not before[start].strip():
            start += 1  # blank lines IPython dropped
        for k in range(j2 - j1):
            lines[j1 + k] = min(start + k, max(i2 - 1, i1), len(before) - 1) + 1
    return lines


def _renumber(tree: ast.AST, line_of) -> None:
    for node in ast.walk(tree):
        for attribute in ("lineno", "end_lineno"):
            if getattr(node, attribute, None) is not None:
                setattr(node, attribute, line_of(getattr(node, attribute)))


def _magic_call(node: ast.AST) -> tuple[str, list[str]] | None:
    """``(method, arguments)`` when ``node`` is a call that IPython's transformation writes:
    ``get_ipython().run_line_magic('name', 'args')`` and the like, all arguments strings."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and not node.keywords):
        return None
    method, owner = node.func.attr, node.func.value
    if not (method in _MAGIC_METHODS and len(node.args) == _MAGIC_METHODS[method]
            and isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name)
            and owner.func.id == "get_ipython" and not owner.args and not owner.keywords):
        return None
    if not all(isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in node.args):
        return None
    return method, [arg.value for arg in node.args]


def _strip_options(argument: str) -> str:
    """The statement of ``%time``/``%timeit`` without their leading options (``-n 10 -r 3``)."""
    rest = argument.strip()
    while rest:
        option, _, after = rest.partition(" ")
        if not re.fullmatch(r"--?[\w-]*", option):
            break
        after = after.lstrip()
        if option in ("-n", "-r", "-p", "-v") and after:  # the options of %timeit with a value
            after = after.partition(" ")[2].lstrip()
        rest = after
    return rest


def _expansions(argument: str) -> list[str]:
    """The ``{expressions}`` IPython evaluates in a magic's or a shell command's arguments."""
    import string

    try:
        fields = list(string.Formatter().parse(argument))
    except ValueError:
        return []  # IPython leaves such an argument as it is
    return [field + (":" + spec if spec else "") for _, field, spec, _ in fields if field]


def _magic_code(method: str, arguments: list[str]) -> list[tuple[str, int, str]]:
    """``(code, first line, what)`` for the Python a magic call runs: the first line is 0 for
    the magic's own line, 1 for the line after it (a cell magic's body)."""
    if method in ("system", "getoutput"):
        return [(code, 0, "an expression in the shell command") for code in _expansions(arguments[0])]
    name, line = arguments[0], arguments[1]
    code = []
    if name in _CODE_MAGICS:
        if _strip_options(line):
            code.append((_strip_options(line), 0, f"the code of %{name}"))
    else:
        if name == "config" and "=" in line:
            code.append(("cfg." + line.strip(), 0, "the value given to %config"))  # %config execs it
        if name not in _NO_VAR_EXPAND:
            code += [(expression, 0, f"an expression in the arguments of %{name}")
                     for expression in _expansions(line)]
    if method == "run_cell_magic" and name in _CODE_MAGICS:
        code.append((arguments[2], 1, f"the body of %%{name}"))
    return code


def _parse(source: str, what: str = "cell", depth: int = 0) -> _Parsed:
    """Read ``source`` as IPython does (see :class:`_Parsed`)."""
    try:
        transformed = _transform(source)
    except Exception:  # noqa: BLE001 - a cell IPython cannot transform is read as it is
        transformed = source
    lines = _line_map(source, transformed)

    def line_of(number: int) -> int:
        return lines[min(max(number, 1), len(lines)) - 1]

    try:
        tree = ast.parse(transformed)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        message = getattr(error, "msg", None) or str(error) or type(error).__name__
        line = line_of(getattr(error, "lineno", None) or 1)
        return _Parsed([], [(line, f"{what} does not parse: {message} — reviewed by hand")])
    _renumber(tree, line_of)
    parsed = _Parsed([tree], [])
    for node in ast.walk(tree):
        magic = _magic_call(node)
        if magic is None:
            continue
        for code, first, code_what in _magic_code(*magic):
            if depth >= _MAX_MAGIC_DEPTH:
                parsed.findings.append((node.lineno, f"magics nested too deep in {what} — reviewed by hand"))
                break
            inner = _parse(code, code_what, depth + 1)
            base = node.lineno + first - 1
            for inner_tree in inner.trees:
                _renumber(inner_tree, lambda number, base=base: base + number)
            parsed.trees += inner.trees
            parsed.findings += [(base + line, reason) for line, reason in inner.findings]
    return parsed


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
        magic = _magic_call(node)
        if magic is not None:
            self._magic(node, *magic)
            return
        function = node.func
        if isinstance(function, ast.Attribute) and self._root(function) in self.aliases | {"helpers"}:
            called = function.attr.removeprefix("reference_")
            if self.functions and called == self.functions[0]:
                self.flag(node, f"{self.functions[0]}() calls the reference implementation "
                                f"{ast.unparse(function)} instead of doing its own work")
        self.generic_visit(node)

    def _magic(self, node: ast.Call, method: str, arguments: list[str]) -> None:
        """A magic or shell escape (its code, if it runs any, is a tree of its own)."""
        if method in ("system", "getoutput"):
            self.flag(node, f"runs a shell command (!{arguments[0][:40]}): a solution does not use the shell")
        elif method == "run_cell_magic" and arguments[0] not in _CODE_MAGICS:
            name = arguments[0]
            why = f" ({_MAGIC_WHY[name]})" if name in _MAGIC_WHY else ""
            self.flag(node, f"uses the IPython cell magic %%{name}{why}: a solution is plain Python")
        elif method == "run_line_magic":
            name, argument = arguments
            if name not in _ALLOWED_MAGICS:
                why = f" ({_MAGIC_WHY[name]})" if name in _MAGIC_WHY else ""
                self.flag(node, f"uses the IPython magic %{name}{why}: a solution is plain Python")
            elif name == "load_ext" and argument.strip() not in _ALLOWED_EXTENSIONS:
                self.flag(node, f"loads the IPython extension {argument.strip()!r}, which runs with the "
                                f"kernel's internals: a solution is plain Python")
            elif name in ("pinfo", "pinfo2"):
                self._help(node, name, argument)
        if method in ("system", "getoutput") or arguments[0] not in _CODE_MAGICS:
            for argument in node.args:
                self.visit(argument)  # names of the grader's files in a command

    def _help(self, node: ast.Call, name: str, target: str) -> None:
        """``x?`` / ``x??`` on the course's code shows its documentation or its source."""
        try:
            expression = ast.parse(target.strip(), mode="eval").body
        except (SyntaxError, ValueError, RecursionError):
            return
        if self._root(expression) in self.aliases | {"helpers"}:
            marks = "??" if name == "pinfo2" else "?"
            self.flag(node, f"shows the source of the course's code ({target.strip()}{marks}): "
                            f"a solution is written from the lesson, not from the reference")

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _FORBIDDEN_TEXT.search(node.value):
            self.flag(node, f"names the grader's files ({node.value[:60]!r})")


def _helpers_aliases(parsed: list[_Parsed]) -> set[str]:
    """Local names bound to helpers modules anywhere in the notebook
    (``from helpers import checks``, ``import helpers.metrics as m``)."""
    aliases = set()
    for cell in parsed:
        for tree in cell.trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "helpers":
                    aliases.update(alias.asname or alias.name for alias in node.names)
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.split(".")[0] == "helpers":
                            aliases.add(alias.asname or "helpers")
    return aliases


def _audit_parsed(parsed: _Parsed, helpers_aliases: set[str]) -> list[tuple[int, str]]:
    aliases = set(helpers_aliases) | {"checks", "helpers"}
    findings = list(parsed.findings)
    for tree in parsed.trees:
        auditor = _Auditor(set(aliases))
        auditor.visit(tree)
        findings += auditor.findings
    return sorted(set(findings))


def audit_source(source: str, helpers_aliases: set[str] | None = None) -> list[tuple[int, str]]:
    """``(line, reason)`` for every suspicious construct in one cell's source (see the module
    docstring), read as IPython reads it; source that does not parse is a finding."""
    parsed = _parse(source)
    return _audit_parsed(parsed, set(helpers_aliases or ()) | _helpers_aliases([parsed]))


def audit(submission, release) -> list[Finding]:
    """Findings in the code cells of ``submission`` that a student wrote or changed (cells
    identical to a cell of ``release`` are skipped), in cell order."""
    given = {_source(cell) for cell in release.get("cells", []) if cell.get("cell_type") == "code"}
    cells = submission.get("cells", [])
    parsed = {index: _parse(_source(cell)) for index, cell in enumerate(cells) if cell.get("cell_type") == "code"}
    aliases = _helpers_aliases(list(parsed.values()))
    findings = []
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code" or _source(cell) in given:
            continue
        meta = _nbgrader(cell)
        if meta.get("locked") and not meta.get("solution"):
            continue  # nbgrader puts the original back before running it
        for line, reason in _audit_parsed(parsed[index], aliases):
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
