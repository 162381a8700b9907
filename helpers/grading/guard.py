"""What the grading runner puts back before a test, and the guard that keeps the course's
reference implementations out of a learner's answer.

Used by :mod:`helpers.grading.runner` inside the grading sandbox. A snapshot is taken after
every ``helpers`` module was imported and before any learner code runs:

* :meth:`Snapshot.restore` puts back what a solution cell could have bent to make a check
  pass: ``builtins``, ``sys.modules`` entries that existed at the snapshot, every function,
  class attribute and module attribute of ``helpers`` (code objects and defaults too), the
  module attributes of numpy, TensorFlow and Keras, and the notebook names that the test
  cell uses as modules (``checks``, ``np``, ...). What changed is returned, so that a test
  cell whose checks had been replaced fails and says so.
* :meth:`Snapshot.stands_in` tells whether a learner's object *is*, *wraps* or *reaches* the
  reference implementation of the exercise under test (the ``helpers`` function or class of
  the same name, or with ``reference_`` before it): the object itself, a
  ``functools.partial`` or bound method around it, a closure cell, a default argument, a
  global name the function reads, ``__wrapped__``, a class inheriting from the reference
  or holding it as an attribute.
* :meth:`Snapshot.guard` is a trace function for the time a test runs: a call of the
  exercise's reference while any learner function is on the stack (directly, or through
  other ``helpers`` functions) raises :class:`ReferenceCallError`; so does a call of any
  reference from a learner function of the same name. Functions converted by AutoGraph
  (``tf.function`` in graph mode) are recognised by the module their globals belong to.
  Other references stay usable, as the lessons say (an earlier exercise one could not finish).
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import pkgutil
import sys
import sysconfig
import types
from collections.abc import Set as AbstractSet
from pathlib import Path

#: The ``helpers`` package root (this file is helpers/grading/guard.py).
_HELPERS_DIR = Path(__file__).resolve().parents[1]
#: Packages of ``helpers`` that are tools, not lesson code: no references live in any module
#: under them, and the grading machinery is never imported into a graded process by name.
#: ``helpers.grading`` also covers the one-release shims ``helpers.grading_execute`` and co.
_TOOL_PREFIXES = ("helpers.grading", "helpers.tools")
#: Tool modules outside those packages (every ``__main__`` is one too): the settings, the
#: lesson timer, and the one-release shim ``helpers.hosted`` (now ``helpers.tools.hosted``).
_TOOL_MODULES = {"helpers.config", "helpers.course", "helpers.hosted"}
#: Third-party modules whose attributes a test may use (``np.allclose``): restored too.
_LIBRARY_MODULES = ("numpy", "numpy.testing", "tensorflow", "keras", "keras.ops", "math")
#: Names that output caching or the runner may set in builtins.
_OUTPUT_NAMES = {"_", "__", "___", "display", "get_ipython"}
#: Methods of reference classes that a learner's class of its own must not delegate to.
_GUARDED_METHODS = {"__getitem__", "__len__", "on_epoch_end"}
_AUTOGRAPH_FILE = "__autograph_generated_file"
#: Set by helpers.checks.learner_or_reference on objects the reference made (REFERENCE_TAG).
_REFERENCE_TAG = "_unet_course_reference"

_FunctionType, _ModuleType, _MethodType, _CodeType = (types.FunctionType, types.ModuleType,
                                                      types.MethodType, types.CodeType)
_partial = functools.partial


class ReferenceCallError(AssertionError):
    """The learner's code is, wraps or calls the reference implementation of the exercise."""


def is_tool_module(name: str) -> bool:
    """True for ``helpers`` modules that hold no reference implementation (grading, tools)."""
    return name.startswith(_TOOL_PREFIXES) or name.rpartition(".")[2] == "__main__" or name in _TOOL_MODULES


def is_lesson_module(name: str) -> bool:
    """True for the ``helpers`` modules the runner imports and snapshots before a submission:
    every module but the tools (:func:`is_tool_module`) and private ones (``_common``)."""
    return not is_tool_module(name) and not name.split(".")[-1].startswith("_")


def _is_code(value) -> bool:
    """Functions, classes, methods and modules: what a cell could swap to fake a check
    (plain data, such as a module's cache, is left as the code set it)."""
    return isinstance(value, (_FunctionType, types.BuiltinFunctionType, _MethodType, type,
                              _ModuleType, staticmethod, classmethod, property, _partial))


def import_all_helpers() -> list[str]:
    """Import every lesson module of the helpers package (as the lessons would), so that
    their pristine state is known before any learner code runs; return the names that
    could not be imported (an optional module must not stop grading)."""
    import helpers

    failed = []
    for info in pkgutil.walk_packages(helpers.__path__, "helpers."):
        if not is_lesson_module(info.name):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as error:  # noqa: BLE001 - reported by the runner, never fatal
            failed.append(f"{info.name}: {error}")
    return failed


#: Words that, in any code cell of a submission, make the runner import ``helpers`` (and with
#: it TensorFlow and Keras) before the first cell: see :func:`needs_helpers`.
LIBRARY_WORDS = ("helpers", "tensorflow", "keras")
#: The runner's environment variable that says whether to import them (``"0"``: do not).
PRELOAD_VARIABLE = "UNET_COURSE_GRADING_PRELOAD"


@functools.lru_cache(maxsize=1)
def helper_names() -> frozenset[str]:
    """Every name bound at the top level of a lesson module of ``helpers`` (the modules that
    :func:`import_all_helpers` imports): functions, classes, assignments and imports, with
    ``reference_`` removed. Read from the source files, without importing them."""
    names: set[str] = set()
    for path in sorted(_HELPERS_DIR.rglob("*.py")):
        parts = path.relative_to(_HELPERS_DIR).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        module = ".".join(("helpers", *parts))
        if not is_lesson_module(module):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return frozenset(name.removeprefix("reference_") for name in names)


def needs_helpers(code_sources: list[str], solution_names: set[str]) -> bool:
    """Whether the runner must import ``helpers`` (and TensorFlow, Keras) and snapshot them
    before a submission's first cell. Yes when any code cell names one of
    :data:`LIBRARY_WORDS` (the course's lessons all do), or when a solution cell defines a
    name that ``helpers`` also binds (:func:`helper_names`; the reference guard needs the
    reference of that name). Otherwise no test cell can use those modules: they are not
    imported, and the runner starts in a fraction of a second instead of seconds; a cell that
    imports them anyway (say, by a computed name) gets them unsnapshotted, which no test
    of such a notebook relies on, and still cannot reach a reference of an exercise's name."""
    if any(word in source for source in code_sources for word in LIBRARY_WORDS):
        return True
    return bool(set(solution_names) & helper_names())


def _trusted_prefixes() -> tuple[str, ...]:
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(_HELPERS_DIR)}
    paths.update(value for value in sysconfig.get_paths().values() if value)
    return tuple(sorted(paths))


class Snapshot:
    """What the graded process looked like before any learner code ran."""

    def __init__(self) -> None:
        self.builtins = dict(vars(builtins))
        self.sys_modules = dict(sys.modules)
        self.modules = {name: module for name, module in sys.modules.items()
                        if isinstance(module, _ModuleType)
                        and (name == "helpers" or name.startswith("helpers.") or name in _LIBRARY_MODULES)}
        self.module_dicts = {name: dict(vars(module)) for name, module in self.modules.items()}
        self.functions: dict[types.FunctionType, tuple] = {}
        self.classes: dict[type, dict] = {}
        #: code object of a reference -> the exercise names it implements (the module
        #: attribute names it is bound to, e.g. ``dice_coefficient`` and ``dice``)
        self.references: dict[types.CodeType, frozenset[str]] = {}
        #: exercise name -> the reference objects (functions and classes) of that name
        self.reference_objects: dict[str, list] = {}
        for name, module in self.modules.items():
            if not name.startswith("helpers") or is_tool_module(name):
                continue
            for key, value in vars(module).items():
                if isinstance(value, _FunctionType) and value.__module__ == name:
                    self._add_function(value, key=key)
                elif isinstance(value, type) and value.__module__ == name:
                    self.classes[value] = dict(vars(value))
                    if not key.startswith("_"):
                        self.reference_objects.setdefault(key.removeprefix("reference_"), []).append(value)
                    for attribute in vars(value).values():
                        function = getattr(attribute, "__func__", attribute)
                        if isinstance(function, _FunctionType):
                            self._add_function(function, owner=value.__name__)
        self.prefixes = _trusted_prefixes()

    def _add_function(self, function: types.FunctionType, owner: str | None = None,
                      key: str | None = None) -> None:
        self.functions[function] = (function.__code__, function.__defaults__, function.__kwdefaults__)
        if owner:
            if function.__name__ in _GUARDED_METHODS:
                # a learner's PyDataset must not hand __getitem__ to the reference class
                self.references[function.__code__] = frozenset({function.__name__})
            return
        names = {name.removeprefix("reference_") for name in (key, function.__name__)
                 if name and not name.startswith(("check_", "_"))}
        if names:
            code = function.__code__
            self.references[code] = self.references.get(code, frozenset()) | names
            for name in names:
                if function not in self.reference_objects.setdefault(name, []):
                    self.reference_objects[name].append(function)

    # -- restoring ---------------------------------------------------------------------

    def restore(self, user_ns: dict, used: AbstractSet[str] = frozenset()) -> list[str]:
        """Put back builtins, ``sys.modules``, the helpers and library modules, their
        functions and classes, and the notebook names that the test cell uses as modules
        (``used``, e.g. ``checks`` in ``checks.check_dice(...)``); return what had changed.
        A notebook variable that merely shares a module's name (``losses = history.history
        ["loss"]``) is left alone unless the test uses it as that module."""
        changed = []
        current = vars(builtins)
        for key in [key for key in current if key not in self.builtins and key not in _OUTPUT_NAMES]:
            changed.append(f"builtins.{key} (added)")
            del current[key]
        for key, value in self.builtins.items():
            if key not in _OUTPUT_NAMES and current.get(key) is not value:
                changed.append(f"builtins.{key}")
                current[key] = value
        if user_ns.get("__builtins__") is not builtins and user_ns.get("__builtins__") is not current:
            changed.append("the notebook's __builtins__")
            user_ns["__builtins__"] = builtins
        for name, module in self.sys_modules.items():
            if sys.modules.get(name) is not module:
                if name.startswith(("helpers", "numpy", "tensorflow", "keras")) or name in sys.builtin_module_names:
                    changed.append(f"sys.modules[{name!r}]")
                sys.modules[name] = module
        for name, module in self.modules.items():
            current = vars(module)
            pristine = self.module_dicts[name]
            for key in [key for key in current if key not in pristine]:
                if _is_code(current[key]) and not isinstance(current[key], _ModuleType):
                    changed.append(f"{name}.{key} (added)")
                    del current[key]
            for key, value in pristine.items():
                if current.get(key) is not value and (_is_code(value) or _is_code(current.get(key))):
                    changed.append(f"{name}.{key}")
                    current[key] = value
        for function, (code, defaults, kwdefaults) in self.functions.items():
            if function.__code__ is not code or function.__defaults__ is not defaults \
                    or function.__kwdefaults__ is not kwdefaults:
                changed.append(f"{function.__module__}.{function.__qualname__} (code or defaults)")
                function.__code__, function.__defaults__ = code, defaults
                function.__kwdefaults__ = kwdefaults
        for cls, pristine in self.classes.items():
            current = dict(vars(cls))
            for key in [key for key in current if key not in pristine]:
                if _is_code(current[key]):
                    changed.append(f"{cls.__module__}.{cls.__qualname__}.{key} (added)")
                    delattr(cls, key)
            for key, value in pristine.items():
                if key in ("__dict__", "__weakref__", "__doc__") or not _is_code(value):
                    continue
                if current.get(key) is not value:
                    changed.append(f"{cls.__module__}.{cls.__qualname__}.{key}")
                    setattr(cls, key, value)
        short_names: dict[str, types.ModuleType | None] = {
            name.rsplit(".", 1)[-1]: module for name, module in self.modules.items() if name.startswith("helpers")}
        short_names["helpers"] = self.modules.get("helpers")
        short_names.update(np=self.modules.get("numpy"), numpy=self.modules.get("numpy"),
                           tf=self.modules.get("tensorflow"), keras=self.modules.get("keras"))
        for key, ours in short_names.items():
            if ours is None or key not in user_ns or key not in used:
                continue
            value = user_ns[key]
            if isinstance(value, _ModuleType) and value.__name__.startswith("helpers") \
                    and value is not ours and value.__name__ != ours.__name__:
                continue  # e.g. `from helpers.data import io` next to helpers.io: not ours
            if value is not ours:
                changed.append(f"the notebook name {key!r}")
                user_ns[key] = ours
        return changed

    # -- the reference, standing in for the learner --------------------------------------

    def stands_in(self, value, name: str) -> str | None:
        """A sentence when ``value`` (the learner's ``name``) is, wraps or reaches the
        reference implementation of ``name``; None when it is the learner's own. An object
        that the lesson made with the reference after an unfinished exercise (marked by
        :func:`helpers.checks.learner_or_reference`) is the reference too."""
        if _reference_tag(value) == name:
            return (f"your {name} was made by the course's reference (the lesson's stand-in for an "
                    f"unfinished exercise), not by your code. Write the code of this exercise "
                    f"yourself and run it before its check.")
        references = self.reference_objects.get(name.removeprefix("reference_"), [])
        if not references:
            return None
        ids = {id(reference) for reference in references}
        codes = {reference.__code__ for reference in references if isinstance(reference, _FunctionType)}
        seen: set[int] = set()

        def reaches(item, depth: int) -> bool:
            if depth > 6 or id(item) in seen:
                return False
            seen.add(id(item))
            if id(item) in ids or (isinstance(item, _FunctionType) and item.__code__ in codes):
                return True
            if isinstance(item, _partial):
                return any(reaches(part, depth + 1)
                           for part in (item.func, *item.args, *item.keywords.values()))
            if isinstance(item, _MethodType):
                return reaches(item.__func__, depth + 1)
            if isinstance(item, (staticmethod, classmethod)):
                return reaches(item.__func__, depth + 1)
            wrapped = getattr(item, "__wrapped__", None) if isinstance(item, _FunctionType) else None
            if wrapped is not None and reaches(wrapped, depth + 1):
                return True
            if isinstance(item, _FunctionType):
                for cell in item.__closure__ or ():
                    try:
                        content = cell.cell_contents
                    except ValueError:  # an empty cell
                        continue
                    if reaches(content, depth + 1):
                        return True
                for default in (*(item.__defaults__ or ()), *(item.__kwdefaults__ or {}).values()):
                    if reaches(default, depth + 1):
                        return True
                for global_name in _names_read(item.__code__):
                    target = item.__globals__.get(global_name)
                    if target is not None and not isinstance(target, _ModuleType) and reaches(target, depth + 1):
                        return True
                return False
            if isinstance(item, type):
                if any(id(base) in ids for base in item.__mro__[1:]):
                    return True
                if item.__module__ == "__main__":
                    return any(reaches(attribute, depth + 1) for attribute in vars(item).values()
                               if _is_code(attribute) and not isinstance(attribute, type))
                return False
            call = getattr(type(item), "__call__", None)
            if isinstance(call, _FunctionType) and getattr(type(item), "__module__", "") == "__main__":
                return reaches(type(item), depth + 1) or any(
                    reaches(attribute, depth + 1) for attribute in getattr(item, "__dict__", {}).values())
            return False

        if reaches(value, 0):
            where = ", ".join(sorted({f"{getattr(r, '__module__', 'helpers')}.{name}" for r in references}))
            return (f"your {name} is, wraps or reaches the course's reference implementation "
                    f"({where}). Write the code of this exercise yourself instead of using the "
                    f"reference; other helpers may be used as the lesson says.")
        return None

    # -- the reference guard -----------------------------------------------------------

    def guard(self, exercise: frozenset[str] = frozenset(), test_file: str = ""):
        """A trace function for one test cell (``test_file``, the file name its code was
        compiled with): a call of the reference of a name in ``exercise`` while a learner
        function is anywhere on the stack, or of any reference from a learner function of
        the same name, raises :class:`ReferenceCallError`."""
        references = self.references
        reference_names = set().union(*references.values()) if references else set()
        exercise = frozenset(name.removeprefix("reference_") for name in exercise)
        prefixes = self.prefixes

        def kind(frame) -> str:
            """'helpers', 'learner' or 'library' for the code that ``frame`` runs."""
            filename = frame.f_code.co_filename
            if _AUTOGRAPH_FILE in filename:
                module = frame.f_globals.get("__name__", "")
                if module == "helpers" or str(module).startswith("helpers."):
                    return "helpers"
                return "learner" if module == "__main__" else "library"
            if filename.startswith(prefixes) or filename.startswith("<frozen"):
                return "library"
            return "learner"

        def reference_of(frame) -> frozenset[str]:
            targets = references.get(frame.f_code)
            if targets is not None:
                return targets
            if _AUTOGRAPH_FILE in frame.f_code.co_filename and kind(frame) == "helpers":
                name = frame.f_code.co_name.removeprefix("tf__")
                return frozenset({name}) if name in reference_names else frozenset()
            return frozenset()

        def learner_function(frame) -> bool:
            return (kind(frame) == "learner" and frame.f_code.co_name != "<module>"
                    and frame.f_code.co_filename != test_file)

        def trace(frame, event, arg):
            if event != "call":
                return None
            targets = reference_of(frame)
            if not targets:
                return None
            under_test = bool(targets & exercise)
            caller = frame.f_back
            while caller is not None:
                if under_test and learner_function(caller):
                    raise ReferenceCallError(_message(caller.f_code.co_name, frame))
                name = caller.f_code.co_name.removeprefix("tf__")
                if kind(caller) == "learner" and name in targets:
                    raise ReferenceCallError(_message(name, frame))
                if kind(caller) != "learner" and not under_test:
                    break
                caller = caller.f_back
            return None

        return trace


def _reference_tag(value) -> str | None:
    """The name under which :func:`helpers.checks.learner_or_reference` marked ``value`` as
    made by the reference, read from its instance dictionary without running any of its code."""
    try:
        attributes = object.__getattribute__(value, "__dict__")
    except (AttributeError, TypeError):
        return None
    tag = attributes.get(_REFERENCE_TAG) if isinstance(attributes, dict) else None
    return tag if isinstance(tag, str) else None


def _message(name: str, frame) -> str:
    return (f"your {name}() calls the course's reference implementation "
            f"({frame.f_code.co_name} in {Path(frame.f_code.co_filename).name}). "
            f"Write the code of this exercise yourself instead of calling the "
            f"reference; other helpers may be used as the lesson says.")


def _names_read(code: types.CodeType) -> set[str]:
    """Global names that ``code`` and the code nested in it read."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, _CodeType):
            names |= _names_read(constant)
    return names
