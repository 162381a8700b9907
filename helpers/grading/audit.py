"""Integrity of a submission before it is graded: metadata repair and a code audit.

Two functions, both pure (they read notebooks and return results, nothing is executed):

* :func:`repair` puts back the nbgrader metadata of the release in a submission: a renamed
  ``grade_id``, ``grade: false`` on a test cell, changed points, a test cell turned into
  markdown, or an extra cell marked as graded would otherwise make nbgrader fail the whole
  notebook or count points the release does not give. Cells are matched to the release by
  ``grade_id``, then by content (locked cells) and by position (solution cells).
* :func:`audit` reads every code cell the student could write (not the release's locked
  cells, nor cells identical to one of the release) as IPython reads it: IPython's own input
  transformation (``TransformerManager.transform_cell``) turns magics, shell escapes
  (``!cmd``, ``x = !cmd``) and help (``x?``, ``x??``) into Python, whose syntax tree is
  read, line numbers kept those of the cell; the code that the allowed magics run
  (``%time``/``%timeit``/``%%time``/``%%timeit``, the value ``%config`` executes, the
  ``{expressions}`` IPython expands in a magic's arguments) is read as code too; a
  ``get_ipython().run_line_magic('name', '...')`` call written by hand in the very form the
  transformation writes is read as the magic it stands for, any other use of ``get_ipython``
  is IPython internals. A cell that does not parse even so is a finding (reviewed by hand). It lists what a solution has
  no business doing: magics other than ``%matplotlib``, ``%time``, ``%timeit``,
  ``%load_ext autoreload``, ``%autoreload`` and ``%config`` (``%%bash``, ``%%writefile``,
  ``%sx``, ``%run``, ...), shell escapes, help on the course's code, IPython internals,
  ``builtins``/``sys.modules`` edits, assignments to ``checks``, ``helpers`` or their
  attributes, ``exec``/``eval``/``compile``, file, database and process access, signals,
  ``os._exit``, reading ``answers/`` or the gradebook, and the reference of an exercise:
  the name an exercise's solution cell defines (its graded name) made to be, wrap or reach
  the ``helpers`` function or class of the same name (with or without ``reference_``; the
  course's ``check_*`` are not references), in any cell: bound to it (``=``, ``import``,
  ``from helpers.metrics import *``, ``functools.partial``, a lambda, a ``for`` target),
  or a def/class of that name (a method too) whose body, decorators or defaults use it,
  directly, through an alias of its module or of itself bound in any cell (``m =
  metrics``, ``f = m.dice_coefficient``), through the learner's own functions, containers
  or attributes that hold it, through ``getattr`` (a spelled-out name, or a name computed
  at run time), a helpers module handed to other code, a Keras registered name, or a
  helpers mapping indexed by the reference's name. Names are followed across cells and
  Python's scopes (a function's own variables are its own), not in the order the cells
  run (a name is all the notebook ever binds it to).

  A finding does not change the score: the submission is graded as usual and marked
  "needs review" with the cell, the line and the reason. Ordinary solutions, which import
  ``helpers`` modules and use them as the lessons say (the references of other exercises
  included), are never flagged (``tests/grading/test_grading_audit.py`` keeps a corpus of
  legitimate variants and audits the answers).

  What the audit does not see: code that is not in the notebook's code cells (a module
  beside the notebook that the notebook imports, a file it reads); a reference reached at
  run time through another ``helpers`` function or object (``metrics.hard_dice`` calling
  ``metrics.dice_coefficient``, ``training.custom_objects()`` kept in a variable) or through
  names that only exist at run time. Those are the run-time guard's
  (:mod:`helpers.grading.guard`): before a test the graded names must not be, wrap or reach
  the exercise's reference, and while it runs no learner function may be on the stack when
  that reference is called, through other ``helpers`` functions included. Like any static reading the audit can be fooled by code that builds code; such
  code (``exec``, ``eval``, ``__import__``, ``vars``, ``__dict__``, ``inspect``,
  ``importlib``, ``sys.modules``) is itself a finding.
"""

from __future__ import annotations

import ast
import copy
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias, TypeGuard, cast

from helpers.grading.guard import is_tool_module

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
    ("os", "open"): "opens files directly", ("os", "write"): "writes to file descriptors directly",
    ("os", "dup2"): "rewires file descriptors", ("os", "chmod"): "changes file permissions",
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

#: Allowed magics whose argument (and cell body) is Python that runs in the kernel.
_CODE_MAGICS = {"time", "timeit"}
#: Magics whose code runs in the kernel: it is audited as code (for the magics that are not
#: allowed too, so that what they run is named). ``%%capture``'s line holds options only.
_PYTHON_MAGICS = _CODE_MAGICS | {"capture", "prun", "debug"}
#: Magics in whose arguments IPython expands no ``{expression}``.
_NO_VAR_EXPAND = {"time", "timeit", "prun", "debug"}
#: Options of these magics that take a value (``%timeit -n 10``, ``%prun -s cumulative``).
_VALUE_OPTIONS = {"-n", "-r", "-p", "-v", "-s", "-l", "-D", "-T"}
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
    in a magic's arguments), every line number that of the cell; findings for code that
    does not parse; and, by the ``id`` of each magic call, the trees of the code it runs."""

    trees: list
    findings: list
    runs: dict = field(default_factory=dict)


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
    texts = [arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
    if len(texts) != len(node.args):
        return None
    return method, texts


def _strip_options(argument: str) -> str:
    """The statement of ``%time``/``%timeit`` without their leading options (``-n 10 -r 3``)."""
    rest = argument.strip()
    while rest:
        option, _, after = rest.partition(" ")
        if not re.fullmatch(r"--?[\w-]*", option):
            break
        after = after.lstrip()
        if option in _VALUE_OPTIONS and after:
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
    if name in _PYTHON_MAGICS and name != "capture" and _strip_options(line):
        code.append((_strip_options(line), 0, f"the code of %{name}"))
    if name == "config" and "=" in line:
        code.append(("cfg." + line.strip(), 0, "the value given to %config"))  # %config execs it
    if name not in _NO_VAR_EXPAND:
        code += [(expression, 0, f"an expression in the arguments of %{name}") for expression in _expansions(line)]
    if method == "run_cell_magic" and name in _PYTHON_MAGICS:
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
        if magic is None or not isinstance(node, ast.Call):  # a magic is always an ast.Call
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
            parsed.runs.setdefault(id(node), []).extend(inner.trees)
            parsed.runs.update(inner.runs)
            parsed.findings += [(base + line, reason) for line, reason in inner.findings]
    return parsed


# --- the reference of an exercise, however it is reached -------------------------------------

#: Methods that put their arguments into the object they are called on.
_STORING_METHODS = {"append", "extend", "insert", "update", "setdefault", "add", "appendleft",
                    "extendleft", "__setitem__"}
#: In a set of names reached: some attribute of the course's code whose name is computed at
#: run time (``getattr(metrics, name)``, a helpers module handed to other code), which can
#: be any reference.
_ANY = "*"
#: Attribute chains longer than this are not followed (``m = m.x`` in a loop).
_MAX_PATH = 8
_TOO_DEEP = "code nested deeper than the audit can follow — reviewed by hand"


@dataclass(frozen=True)
class _Index:
    """The ``helpers`` package as its files say (read, never imported)."""

    modules: frozenset        # dotted names of its modules and packages
    exports: dict             # module -> the names ``from module import *`` binds
    references: frozenset     # names of the references of exercises (``reference_`` taken off)


@functools.lru_cache(maxsize=1)
def _helpers_index() -> _Index:
    """Every public function and class defined in a ``helpers`` module is the reference of
    the exercise of the same name (the course's own checks, ``check_*``, are not), as
    :mod:`helpers.grading.guard` guards them at run time."""
    root = Path(__file__).resolve().parents[1]    # helpers/, the package root
    modules, exports, references = set(), {}, set()
    for path in sorted(root.rglob("*.py")):
        parts = ("helpers", *path.relative_to(root).with_suffix("").parts)
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        name = ".".join(parts)
        modules.add(name)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            continue
        holds_references = not is_tool_module(name) and not any(p.startswith("_") for p in parts[1:])
        public, listed = set(), None
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                public.add(node.name)
                if holds_references and not node.name.startswith(("_", "check_")):
                    references.add(node.name.removeprefix("reference_"))
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    public.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
                    if isinstance(target, ast.Name) and target.id == "__all__" and node.value is not None:
                        try:
                            listed = ast.literal_eval(node.value)
                        except ValueError:
                            pass
            elif isinstance(node, ast.Import | ast.ImportFrom):
                public.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        if isinstance(listed, list | tuple) and all(isinstance(item, str) for item in listed):
            exports[name] = frozenset(listed)
        else:
            exports[name] = frozenset(n for n in public if not n.startswith("_"))
    return _Index(frozenset(modules), exports, frozenset(references))


#: The nodes a binding keeps for its line: each has a ``lineno``.
_Located: TypeAlias = ast.stmt | ast.expr | ast.excepthandler
#: A def, lambda or class: decorators, defaults or bases, and a body of its own scope.
_Definition: TypeAlias = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef


class _Scope:
    """The names one module (the notebook), function, lambda or class body binds."""

    def __init__(self, kind: str, parent: _Scope | None) -> None:
        self.kind, self.parent = kind, parent
        self.names: set[str] = set()
        self.declared: dict[str, str] = {}  # name -> "global" / "nonlocal"


@dataclass(eq=False)
class _Binding:
    """One place where ``name`` gets a value: ``kind`` says how to read ``value``."""

    scope: _Scope       # the scope the name lives in
    origin: _Scope      # the scope the value is computed in
    name: str
    kind: str           # value, part, store, for, def, path, none, import
    value: object       # an expression, a def/class node, a helpers path, or None
    node: _Located      # the statement (or the expression), for its line
    cell: int


@dataclass(frozen=True)
class _Hit:
    """An expression that reaches the course's code: ``refs`` are the reference names it can
    be (``_ANY``: any); ``how`` is path (it is a helpers object), module (a helpers module
    handed to other code), computed (getattr with a name computed at run time) or leads (a
    name or attribute that the notebook ties to the course's code)."""

    node: ast.AST
    refs: frozenset
    how: str
    path: str = ""
    called: bool = False


class _Notebook:
    """What the names of a notebook are, across its cells: which are helpers modules or
    functions (``m = metrics``, ``from helpers.metrics import dice_coefficient as d``,
    ``f = m.dice_coefficient``) and which references each name, function or class can reach
    (``g = functools.partial(metrics.dice_coefficient)``, a function calling ``f``, a list
    holding it). Python's scopes are followed (a function's own variables are its own); the
    order of cells is not (a name is everything the notebook ever binds it to)."""

    def __init__(self, units, runs: dict | None = None, aliases=(), solve: bool = True) -> None:
        self.index = _helpers_index()
        self.module = _Scope("module", None)
        self.scopes: dict[int, _Scope] = {}
        self.bindings: list[_Binding] = []
        self.runs = runs or {}
        self.imported: set[tuple[int, str]] = set()
        self.defaults = {"helpers": frozenset({"helpers"}), "checks": frozenset({"helpers.checks"})}
        for name in aliases:
            path = f"helpers.{name}" if f"helpers.{name}" in self.index.modules else None
            self.defaults.setdefault(name, frozenset({path or f"helpers.{name}"}))
        self._stores: list[tuple] = []
        self.too_deep: set[tuple[int, int]] = set()  # (cell, line) of code nested too deep to read
        for cell, tree in units:
            for statement in tree.body:
                try:
                    self._walk(statement, self.module, cell)
                except RecursionError:
                    self.too_deep.add((cell, statement.lineno))
        for origin, name, value, node, cell in self._stores:
            scope = self._lookup(name, origin) or self.module
            if (id(scope), name) not in self.imported:
                scope.names.add(name)
                self.bindings.append(_Binding(scope, origin, name, "store", value, node, cell))
        self.info: dict[tuple[int, str], tuple[frozenset, frozenset]] = {}
        if solve:
            self._solve()

    # -- what the notebook binds --------------------------------------------------------------

    def _bind(self, scope: _Scope, name: str, kind: str, value, node: _Located, cell: int) -> None:
        origin = scope
        if scope.declared.get(name) == "global":
            scope = self.module
        elif scope.declared.get(name) == "nonlocal":
            outer = scope.parent
            while outer is not None and outer.kind != "function":
                outer = outer.parent
            scope = outer or self.module
        scope.names.add(name)
        if kind == "import":
            self.imported.add((id(scope), name))
        self.bindings.append(_Binding(scope, origin, name, kind, value, node, cell))

    def _store(self, target: ast.AST, value: ast.AST, scope: _Scope, node: _Located, cell: int) -> None:
        """``x.attr = v``, ``x[k] = v``, ``x.append(v)``: ``x`` (and every ``.attr``) holds ``v``."""
        if isinstance(target, ast.Attribute):
            self._bind(self.module, "." + target.attr, "part", value, node, cell)
        while isinstance(target, ast.Attribute | ast.Subscript | ast.Call):
            target = target.func if isinstance(target, ast.Call) else target.value
        if isinstance(target, ast.Name):
            self._stores.append((scope, target.id, value, node, cell))

    def _assign(self, target: ast.AST, value: ast.AST, scope: _Scope, node: _Located, cell: int,
                kind: str = "value") -> None:
        if isinstance(target, ast.Name):
            self._bind(scope, target.id, kind, value, node, cell)
        elif isinstance(target, ast.Starred):
            self._assign(target.value, value, scope, node, cell, "part")
        elif isinstance(target, ast.Tuple | ast.List):
            pairs = (value.elts if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts)
                     and not any(isinstance(e, ast.Starred) for e in [*value.elts, *target.elts]) else None)
            for position, element in enumerate(target.elts):
                if pairs is not None:
                    self._assign(element, pairs[position], scope, node, cell, kind)
                else:
                    self._assign(element, value, scope, node, cell, "part")
        else:
            self._store(target, value, scope, node, cell)

    def _walk(self, node: ast.AST, scope: _Scope, cell: int) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            if not isinstance(node, ast.Lambda):
                self._bind(scope, node.name, "def", node, node, cell)
            for expression in [*getattr(node, "decorator_list", []), *node.args.defaults,
                               *[d for d in node.args.kw_defaults if d is not None]]:
                self._walk(expression, scope, cell)
            inner = self.scopes[id(node)] = _Scope("function", scope)
            arguments = node.args
            for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                             *[a for a in (arguments.vararg, arguments.kwarg) if a is not None]]:
                self._bind(inner, argument.arg, "none", None, node, cell)
            for statement in [node.body] if isinstance(node, ast.Lambda) else node.body:
                self._walk(statement, inner, cell)
        elif isinstance(node, ast.ClassDef):
            self._bind(scope, node.name, "def", node, node, cell)
            for expression in [*node.decorator_list, *node.bases, *[k.value for k in node.keywords]]:
                self._walk(expression, scope, cell)
            inner = self.scopes[id(node)] = _Scope("class", scope)
            for statement in node.body:
                self._walk(statement, inner, cell)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            for name in node.names:
                scope.declared[name] = "global" if isinstance(node, ast.Global) else "nonlocal"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                local = alias.asname or top
                if top == "helpers":
                    self._bind(scope, local, "path", alias.name if alias.asname else top, node, cell)
                else:
                    self._bind(scope, local, "import", None, node, cell)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            for alias in node.names:
                if node.level or module.split(".")[0] != "helpers":
                    if alias.name != "*":
                        self._bind(scope, alias.asname or alias.name, "import", None, node, cell)
                elif alias.name == "*":
                    for name in sorted(self.index.exports.get(module, ())):
                        self._bind(scope, name, "path", f"{module}.{name}", node, cell)
                else:
                    self._bind(scope, alias.asname or alias.name, "path", f"{module}.{alias.name}", node, cell)
        else:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    self._assign(target, node.value, scope, node, cell)
            elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
                self._assign(node.target, node.value, scope, node, cell)
            elif isinstance(node, ast.AugAssign):
                self._assign(node.target, node.value, scope, node, cell, "part")
            elif isinstance(node, ast.For | ast.AsyncFor):
                self._assign(node.target, node.iter, scope, node, cell, "for")
            elif isinstance(node, ast.comprehension):  # which has no line of its own: its target's
                self._assign(node.target, node.iter, scope, node.target, cell, "for")
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                self._assign(node.optional_vars, node.context_expr, scope, node.context_expr, cell, "part")
            elif isinstance(node, ast.ExceptHandler) and node.name:
                self._bind(scope, node.name, "none", None, node, cell)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in _STORING_METHODS):
                held = ast.Tuple(elts=[*node.args, *[k.value for k in node.keywords]], ctx=ast.Load())
                self._store(node.func.value, held, scope, node, cell)
            for child in ast.iter_child_nodes(node):
                self._walk(child, scope, cell)

    # -- what the names are -------------------------------------------------------------------

    def _lookup(self, name: str, scope: _Scope) -> _Scope | None:
        """The scope a name read in ``scope`` comes from (class bodies are not seen from the
        functions inside them), or None when the notebook never binds it."""
        current: _Scope | None = scope
        while current is not None:
            if (current is scope or current.kind != "class") and name in current.names:
                return current
            current = current.parent
        return None

    def _solve(self) -> None:
        for _ in range(12):
            changed = False
            for binding in self.bindings:
                try:
                    paths, refs = self._evaluate(binding)
                except RecursionError:  # nested deeper than Python follows: can be anything
                    paths, refs = frozenset(), frozenset({_ANY})
                    self.too_deep.add((binding.cell, getattr(binding.node, "lineno", 1)))
                key = (id(binding.scope), binding.name)
                old = self.info.get(key, (frozenset(), frozenset()))
                new = (old[0] | paths, old[1] | refs)
                if new != old:
                    self.info[key], changed = new, True
            if not changed:
                return

    def _evaluate(self, binding: _Binding) -> tuple[frozenset, frozenset]:
        empty = frozenset()
        if binding.kind == "path":
            return frozenset({binding.value}), self._path_refs(cast(str, binding.value))
        if binding.kind == "def":
            return empty, self._refs(self._definition_hits(cast(_Definition, binding.value), binding.origin))
        if binding.kind == "value":
            return self._value(cast(ast.AST, binding.value), binding.origin)
        if binding.kind == "for" and isinstance(binding.value, ast.Tuple | ast.List | ast.Set):
            paths, refs = empty, empty
            for element in binding.value.elts:
                more = self._value(element, binding.origin)
                paths, refs = paths | more[0], refs | more[1]
            return paths, refs
        if binding.kind in ("part", "store", "for"):
            return empty, self._refs(self._hits(binding.value, binding.origin))
        return empty, empty

    def _value(self, expression: ast.AST, scope: _Scope) -> tuple[frozenset, frozenset]:
        """``(paths, refs)`` of a value a name is bound to: the helpers objects it is, and the
        references it can reach."""
        paths = self._resolve(expression, scope)
        if paths:
            return paths, frozenset().union(*(self._path_refs(p) for p in paths))
        return frozenset(), self._refs(self._hits(expression, scope))

    @staticmethod
    def _refs(hits) -> frozenset:
        return frozenset().union(*(hit.refs for hit in hits))

    def _path_refs(self, path: str) -> frozenset:
        """The reference names a helpers path can be: the names after its modules
        (``helpers.metrics.dice_coefficient`` -> dice_coefficient); none for a module."""
        parts = path.split(".")
        known = max((k for k in range(1, len(parts) + 1) if ".".join(parts[:k]) in self.index.modules), default=1)
        rest = parts[known:]
        refs = {part.removeprefix("reference_") for part in rest}
        if any(part.startswith("__") for part in rest):
            refs.add(_ANY)  # metrics.__dict__, metrics.__getattribute__: any name
        return frozenset(refs)

    def _resolve(self, node: ast.AST, scope: _Scope) -> frozenset:
        """The helpers paths the expression is (``m.dice_coefficient`` with ``m = metrics``:
        helpers.metrics.dice_coefficient), empty when it is none."""
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            found = self._lookup(node.id, scope)
            paths = self.info.get((id(found), node.id), (frozenset(),))[0] if found else frozenset()
            if found is None or found is self.module:
                paths |= self.defaults.get(node.id, frozenset())
            return paths
        if isinstance(node, ast.Attribute):
            return frozenset(f"{base}.{node.attr}" for base in self._resolve(node.value, scope)
                             if base.count(".") < _MAX_PATH)
        if self._is_getattr(node, scope):
            name = _constant_text(node.args[1])
            if name is not None:
                return frozenset(f"{base}.{name}" for base in self._resolve(node.args[0], scope)
                                 if base.count(".") < _MAX_PATH)
        return frozenset()

    def _is_getattr(self, node: ast.AST, scope: _Scope) -> TypeGuard[ast.Call]:
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                and 2 <= len(node.args) <= 3 and not node.keywords and self._lookup("getattr", scope) is None)

    def _is_module(self, node: ast.AST, scope: _Scope) -> bool:
        paths = self._resolve(node, scope)
        return bool(paths) and all(path in self.index.modules for path in paths)

    def _hits(self, node, scope: _Scope, skip: str | None = None, called: bool = False):
        """Every place in ``node`` (an expression, a statement, a definition) that reaches the
        course's code; ``skip``: a name not to follow (a function calling itself)."""
        if node is None:
            return
        if isinstance(node, ast.Name) and node.id == skip and self._lookup(node.id, scope) in (None, self.module):
            return  # the function calling itself
        if isinstance(node, ast.Attribute) or self._is_getattr(node, scope) or (
                isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)):
            paths = self._resolve(node, scope)
            if paths:
                refs = frozenset().union(*(self._path_refs(p) for p in paths))
                how = "path" if refs else "module"
                yield _Hit(node, refs or frozenset({_ANY}), how, sorted(paths)[0], called)
                return
        if isinstance(node, ast.Name):
            found = self._lookup(node.id, scope) if isinstance(node.ctx, ast.Load) else None
            if found is not None:
                refs = self.info.get((id(found), node.id), (frozenset(), frozenset()))[1]
                if refs:
                    yield _Hit(node, refs, "leads", called=called)
        elif isinstance(node, ast.Attribute):
            yield from self._hits(node.value, scope, skip)
            refs = self.info.get((id(self.module), "." + node.attr), (frozenset(), frozenset()))[1]
            if refs and isinstance(node.ctx, ast.Load):
                yield _Hit(node, refs, "leads", called=called)
        elif isinstance(node, ast.Call) and id(node) in self.runs:
            for tree in self.runs[id(node)]:
                yield from self._hits(tree, self.module, skip)
        elif isinstance(node, ast.Call):
            if self._is_getattr(node, scope) and self._resolve(node.args[0], scope):
                yield _Hit(node, frozenset({_ANY}), "computed", called=called)
            else:
                yield from self._hits(node.func, scope, skip, called=True)
            for argument in [*node.args, *[k.value for k in node.keywords]]:
                yield from self._hits(argument, scope, skip)
        elif isinstance(node, ast.Subscript):
            yield from self._hits(node.value, scope, skip)
            owner = node.value.func if isinstance(node.value, ast.Call) else node.value
            key = _constant_text(node.slice)
            if key is not None and key.removeprefix("reference_") in self.index.references and (
                    isinstance(owner, ast.Name | ast.Attribute) and self._resolve(owner, scope)):
                yield _Hit(node, frozenset({key.removeprefix("reference_")}), "named")
            yield from self._hits(node.slice, scope, skip)
        elif isinstance(node, ast.Constant):
            yield from self._registered(node)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            yield from self._definition_hits(node, scope, skip)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
            if node.value is not None and not self._is_module(node.value, scope):  # m = metrics: an alias
                yield from self._hits(node.value, scope, skip)
        elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
            sources = node.iter.elts if isinstance(node.iter, ast.Tuple | ast.List | ast.Set) else [node.iter]
            for source in sources:
                if not self._is_module(source, scope):
                    yield from self._hits(source, scope, skip)
            for child in [*getattr(node, "body", []), *getattr(node, "orelse", []), *getattr(node, "ifs", [])]:
                yield from self._hits(child, scope, skip)
        elif not isinstance(node, ast.Import | ast.ImportFrom | ast.Delete | ast.Global | ast.Nonlocal):
            for child in ast.iter_child_nodes(node):
                yield from self._hits(child, scope, skip)

    def _registered(self, node: ast.AST):
        """A Keras registered name of a reference (``"unet_course>dice_coefficient"``, or its
        end in an f-string): the registry (``keras.saving.get_registered_object``) returns the
        reference."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ">" in node.value:
            name = node.value.rsplit(">", 1)[1].removeprefix("reference_")
            if name in self.index.references:
                yield _Hit(node, frozenset({name}), "named")

    def _definition_hits(self, node: _Definition, scope: _Scope, skip: str | None = None):
        """Hits of a def, lambda or class: its decorators, defaults and bases (in ``scope``)
        and its body (in its own scope, where a function calling itself is not a hit)."""
        if isinstance(node, ast.ClassDef):
            outside = [*node.decorator_list, *node.bases, *[k.value for k in node.keywords]]
        else:
            outside = [*getattr(node, "decorator_list", []), *node.args.defaults,
                       *[d for d in node.args.kw_defaults if d is not None]]
        for expression in outside:
            yield from self._hits(expression, scope, skip)
        inner = self.scopes[id(node)]
        own = getattr(node, "name", skip)
        for statement in [node.body] if isinstance(node, ast.Lambda) else node.body:
            yield from self._hits(statement, inner, own)

    # -- what the audit reports ---------------------------------------------------------------

    def aliases(self) -> set[str]:
        """Names the notebook binds to helpers modules, or imports from helpers."""
        names = {b.name for b in self.bindings if b.scope is self.module and b.kind == "path"}
        names |= {name for (scope, name), (paths, _) in self.info.items()
                  if scope == id(self.module) and any(path in self.index.modules for path in paths)}
        return names | set(self.defaults)

    def reaches(self, node: ast.AST) -> bool:
        """Whether an expression (read at the notebook's top level) is the course's code."""
        return bool(self._resolve(node, self.module))

    def bound(self, cells) -> set[str]:
        """Names bound at the notebook's top level by these cells."""
        return {b.name for b in self.bindings if b.cell in cells and b.scope is self.module
                and b.kind != "store" and not b.name.startswith(".")}

    def findings(self, graded, cells) -> list[tuple[int, int, str]]:
        """``(cell, line, reason)`` for each way, in ``cells``, that a graded name is, wraps or
        reaches the reference of the same name."""
        protected = set(graded) & self.index.references
        found = [(cell, line, _TOO_DEEP) for cell, line in self.too_deep if cell in cells]
        for binding in self.bindings:
            if binding.cell in cells and binding.name in protected:
                try:
                    found += self._binding_findings(binding)
                except RecursionError:
                    found.append((binding.cell, getattr(binding.node, "lineno", 1), _TOO_DEEP))
        return found

    def _binding_findings(self, binding: _Binding) -> list[tuple[int, int, str]]:
        name = binding.name
        if binding.kind == "def":  # def/class of the graded name (a method too)
            what = "class" if isinstance(binding.value, ast.ClassDef) else "function"
            for hit in self._definition_hits(cast(_Definition, binding.value), binding.origin):
                if name in hit.refs or _ANY in hit.refs:
                    return [(binding.cell, hit.node.lineno, self._reason(name, hit, what))]
        elif binding.scope is self.module and binding.kind == "path":  # from helpers... import
            statement = cast(ast.Import | ast.ImportFrom, binding.node)
            if name not in self._path_refs(cast(str, binding.value)):
                return []
            if isinstance(statement, ast.ImportFrom) and any(alias.name == "*" for alias in statement.names):
                return [(binding.cell, statement.lineno,
                         f"`from {statement.module} import *` binds {name} to the course's reference "
                         f"{binding.value}: import the module (from helpers import ...) and write the "
                         f"function yourself")]
            return [(binding.cell, statement.lineno, f"binds {name} to the course's reference {binding.value} "
                                                     f"(import): write the function yourself")]
        elif binding.scope.kind in ("module", "class") and binding.kind in ("value", "part", "for"):
            value = cast(ast.AST, binding.value)
            sources = value.elts if binding.kind == "for" and isinstance(value, ast.Tuple | ast.List) else [value]
            for hit in (h for source in sources for h in self._hits(source, binding.origin)):
                if name in hit.refs or _ANY in hit.refs:
                    where = "" if hit.node is value else f" (in {_short(value)})"
                    return [(binding.cell, binding.node.lineno,
                             f"binds {name} to {self._describe(hit, name)}{where}: write the function yourself")]
        return []

    @staticmethod
    def _text(hit: _Hit) -> str:
        text = _short(hit.node)
        if hit.how == "path" and not (hit.path == text or hit.path.endswith("." + text)):
            return f"{hit.path} (through {text})"
        return text

    def _describe(self, hit: _Hit, name: str) -> str:
        text = self._text(hit)
        if hit.how == "path":
            return f"the course's reference {text}"
        if hit.how == "module":
            return f"the helpers module {text} handed to other code, which can reach any reference"
        if hit.how == "named":
            return f"a lookup of the course's code by the name of the reference ({text})"
        if hit.how == "computed":
            return f"{text}, a helpers attribute named at run time, which can be the reference"
        if name in hit.refs:
            return f"{text}, which the notebook ties to the course's reference {name}"
        return f"{text}, which the notebook ties to helpers code named at run time"

    def _reason(self, name: str, hit: _Hit, what: str) -> str:
        if hit.how == "path" and hit.called and name in hit.refs:
            return (f"{name}() calls the reference implementation {self._text(hit)} instead of doing its own "
                    f"work: write the {what} yourself")
        return f"{what} {name} uses {self._describe(hit, name)}: write the {what} yourself"


def _constant_text(node: ast.AST) -> str | None:
    """The text of a string the code spells out: ``"dice_" + "coefficient"``, an f-string of
    constants, ``"".join([...])``; None when it is computed otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _constant_text(node.left), _constant_text(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = [_constant_text(v.value if isinstance(v, ast.FormattedValue) else v) for v in node.values]
        texts = [part for part in parts if part is not None]
        return None if len(texts) != len(parts) else "".join(texts)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join"
            and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.List | ast.Tuple)):
        glue, parts = _constant_text(node.func.value), [_constant_text(e) for e in node.args[0].elts]
        texts = [part for part in parts if part is not None]
        return None if glue is None or len(texts) != len(parts) else glue.join(texts)
    return None


def _short(node: ast.AST, limit: int = 60) -> str:
    """The code of ``node`` as the learner wrote it (a magic call as the magic), cut short."""
    magic = _magic_call(node)
    if magic is None:
        text = ast.unparse(node)
    elif magic[0] in ("system", "getoutput"):
        text = "!" + magic[1][0]
    else:
        text = ("%%" if magic[0] == "run_cell_magic" else "%") + " ".join(magic[1][:2]).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Auditor(ast.NodeVisitor):
    """The findings of one tree that need no more than the tree (and the notebook's aliases)."""

    def __init__(self, helpers_aliases: set[str], notebook: _Notebook | None = None) -> None:
        self.aliases = helpers_aliases
        self.notebook = notebook
        self.module_aliases: dict[str, str] = {}  # local name -> module (os, sys, ...)
        self.findings: list[tuple[int, str]] = []

    def flag(self, node: ast.AST, reason: str) -> None:
        self.findings.append((getattr(node, "lineno", 1), reason))

    # imports
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._own_get_ipython(node, alias.asname)
            top = alias.name.split(".")[0]
            self._import(node, top)
            self.module_aliases[(alias.asname or alias.name).split(".")[0]] = top
            if top == "helpers":
                self.aliases.add(alias.asname or "helpers")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            self._own_get_ipython(node, alias.asname or alias.name)
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

    def _own_get_ipython(self, node: ast.AST, name: str | None) -> None:
        if name == "get_ipython":
            self.flag(node, "binds get_ipython, which every magic calls: uses IPython internals")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._own_get_ipython(node, node.name)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._own_get_ipython(node, node.name)
        for base in node.bases:
            if self._root(base) in self.aliases or self._root(base) == "helpers":
                self.flag(node, f"class {node.name} inherits from the reference implementation "
                                f"({ast.unparse(base)}): write the class yourself")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        magic = _magic_call(node)
        if magic is not None:
            self._magic(node, *magic)
            return
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
        if method in ("system", "getoutput") or arguments[0] not in _PYTHON_MAGICS:
            for expression in node.args:
                self.visit(expression)  # names of the grader's files in a command

    def _help(self, node: ast.Call, name: str, target: str) -> None:
        """``x?`` / ``x??`` on the course's code shows its documentation or its source."""
        try:
            expression = ast.parse(target.strip(), mode="eval").body
        except (SyntaxError, ValueError, RecursionError):
            return
        if self._root(expression) in self.aliases | {"helpers"} or (
                self.notebook is not None and self.notebook.reaches(expression)):
            marks = "??" if name == "pinfo2" else "?"
            self.flag(node, f"shows the source of the course's code ({target.strip()}{marks}): "
                            f"a solution is written from the lesson, not from the reference")

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _FORBIDDEN_TEXT.search(node.value):
            self.flag(node, f"names the grader's files ({node.value[:60]!r})")


def _notebook(parsed: dict, aliases=(), solve: bool = True) -> _Notebook:
    """The names of the cells ``parsed`` (cell index -> :class:`_Parsed`), read together."""
    units = [(index, tree) for index, cell in parsed.items() for tree in cell.trees]
    runs = {}
    for cell in parsed.values():
        runs.update(cell.runs)
    return _Notebook(units, runs, aliases, solve)


def _audit_cell(parsed: _Parsed, notebook: _Notebook, aliases: set[str]) -> list[tuple[int, str]]:
    findings = list(parsed.findings)
    for tree in parsed.trees:
        auditor = _Auditor(set(aliases), notebook)
        for statement in tree.body:
            try:
                auditor.visit(statement)
            except RecursionError:
                auditor.findings.append((statement.lineno, _TOO_DEEP))
        findings += auditor.findings
    return findings


def audit_source(source: str, helpers_aliases: set[str] | None = None,
                 graded: set[str] | None = None) -> list[tuple[int, str]]:
    """``(line, reason)`` for every suspicious construct in one cell's source (see the module
    docstring), read as IPython reads it; source that does not parse is a finding.
    ``helpers_aliases``: names other cells bind to helpers modules (``metrics``, ...);
    ``graded``: the names of the exercises (default: every name the cell binds)."""
    parsed = _parse(source)
    notebook = _notebook({0: parsed}, helpers_aliases or ())
    graded = notebook.bound({0}) if graded is None else graded
    findings = _audit_cell(parsed, notebook, notebook.aliases())
    findings += [(line, reason) for _, line, reason in notebook.findings(graded, {0})]
    return sorted(set(findings))


def _graded_names(submission, release, notebook: _Notebook, audited) -> set[str]:
    """The names the exercises define: what the solution cells of the release bind at top
    level (without a release, what the submission's solution cells bind; with no solution
    cell at all, what the audited cells bind). A name a learner adds to a solution cell
    (``from helpers.metrics import dice_coefficient`` in lesson 05) is not an exercise."""
    given = {index: _parse(_source(cell)) for index, cell in enumerate(release.get("cells", []))
             if cell.get("cell_type") == "code" and _nbgrader(cell).get("solution")}
    if given:
        return _notebook(given, solve=False).bound(set(given))
    solutions = {index for index, cell in enumerate(submission.get("cells", []))
                 if cell.get("cell_type") == "code" and _nbgrader(cell).get("solution")}
    return notebook.bound(solutions or set(audited))


#: Exercises whose answer is a reading of the lesson's own run (solution cell ``grade_id`` ->
#: the name it sets), checked against the run the grader makes at the grading scale.
RUN_READINGS = {"noise_verdict": "AHEAD", "best_epoch": "BEST_EPOCH",
                "postprocessing_choice": "USE_POSTPROCESSING", "tta_choice": "TTA",
                "empty_fraction_choice": "EMPTY_FRACTION", "loss_choice": "LOSS_CHOICE"}


def _literal(node: ast.AST) -> bool:
    """A value spelled out in the code: a number, string or bool (``-3`` too), not ``...``."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
    return isinstance(node, ast.Constant) and node.value is not Ellipsis and node.value is not None


def typed_run_readings(cells, audited) -> list[tuple[int, int, str]]:
    """``(cell, line, reason)`` where a solution cell of :data:`RUN_READINGS` sets its name to
    a typed value at top level: the learner may have read it right from their own run, but
    grading re-runs the notebook at its smaller scale, where the numbers differ, so the
    check's verdict on it needs a look at the handed-in notebook."""
    found = []
    for index in audited:
        name = RUN_READINGS.get(_nbgrader(cells[index]).get("grade_id") or "")
        if name is None or not _nbgrader(cells[index]).get("solution"):
            continue
        parsed = _parse(_source(cells[index]))   # line numbers those of the cell
        for node in (parsed.trees[0].body if parsed.trees else []):
            if (isinstance(node, ast.Assign) and _literal(node.value)
                    and any(isinstance(target, ast.Name) and target.id == name for target in node.targets)):
                found.append((index, node.lineno,
                              f"{name} is typed ({ast.unparse(node.value)}), not computed from this run: grading "
                              f"re-runs the notebook at a smaller scale, where the numbers differ, so a value the "
                              f"learner read right from their own run can fail its check (compare with the "
                              f"handed-in notebook)"))
    return found


def audit(submission, release) -> list[Finding]:
    """Findings in the code cells of ``submission`` that a student wrote or changed (cells
    identical to a cell of ``release`` are skipped), in cell order. The names of all cells,
    the release's included, are read together (an alias bound in one cell and used in
    another). A run reading typed as a value (:func:`typed_run_readings`) is a finding too."""
    given = {_source(cell) for cell in release.get("cells", []) if cell.get("cell_type") == "code"}
    cells = submission.get("cells", [])
    parsed = {index: _parse(_source(cell)) for index, cell in enumerate(cells) if cell.get("cell_type") == "code"}
    audited = [index for index in parsed
               if _source(cells[index]) not in given  # nbgrader puts back a locked cell before running it
               and not (_nbgrader(cells[index]).get("locked") and not _nbgrader(cells[index]).get("solution"))]
    notebook = _notebook(parsed)
    aliases = notebook.aliases()
    by_cell = {index: _audit_cell(parsed[index], notebook, aliases) for index in audited}
    for index, line, reason in notebook.findings(_graded_names(submission, release, notebook, audited),
                                                 set(audited)):
        by_cell[index].append((line, reason))
    for index, line, reason in typed_run_readings(cells, audited):
        by_cell[index].append((line, reason))
    return [Finding(index, line, reason) for index in audited for line, reason in sorted(set(by_cell[index]))]


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
    used_ids: set[str | None] = set()  # a release cell without a grade_id counts as None
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
            if index not in assigned and _nbgrader(cells[index]) \
                    and cells[index].get("cell_type") in ("code", original.get("cell_type")):  # a written answer is markdown
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
