"""The IPython kernel that grading runs submissions in (started inside the sandbox).

A solution cell runs in the same process as the tests that grade it, so it could try to
switch them off. Before every cell this kernel puts back what a cell could have bent:

* IPython's input transformers, AST transformers and event callbacks, and ``builtins``,
  as they were when the kernel started (a transformer that empties later cells is gone
  before the next cell is read);
* before a graded test cell (nbgrader's ``Execute`` step, :mod:`helpers.grading_execute`,
  marks it in the message metadata): every ``helpers`` module in ``sys.modules``, every
  function and class attribute in them, and the notebook names that refer to them
  (``checks``, ``metrics``, ...), as loaded from the read-only ``helpers/`` folder. If a
  cell had replaced any of the checks, the test cell fails and says so.

While a test cell runs, the reference implementation of the exercise under test (a
function in ``helpers`` with the same name as the learner's function, or with
``reference_`` before it) raises :class:`ReferenceCallError` when the learner's code calls
it: the learner's function must do its own work. Calling other references (an earlier
exercise one could not finish) stays allowed.

Anything a solution cell does to this process can in principle be undone by a cleverer
cell; the integrity audit (:mod:`helpers.grading_audit`) flags such code for review.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import pkgutil
import sys
import threading
import types
from pathlib import Path

from ipykernel.ipkernel import IPythonKernel

#: Metadata key, in the execute request, that :mod:`helpers.grading_execute` fills.
META_KEY = "unet_course_grading"

_HELPERS_DIR = Path(__file__).resolve().parent
#: Modules that are not references of an exercise (grading machinery, command line).
_SKIP_MODULES = {"helpers.__main__", "helpers.grading", "helpers.grading_kernel",
                 "helpers.grading_execute", "helpers.grading_audit", "helpers.sandbox",
                 "helpers.data.__main__", "helpers.lab", "helpers._bootstrap"}


#: Names that output caching may set in builtins.
_OUTPUT_NAMES = {"_", "__", "___"}
#: Methods of reference classes that a learner's class of its own must not delegate to.
_GUARDED_METHODS = {"__getitem__", "__len__", "on_epoch_end"}


class ReferenceCallError(AssertionError):
    """The learner's function called the reference implementation of the same exercise."""


def _is_code(value) -> bool:
    """Functions, classes, methods and modules: what a cell could swap to fake a check
    (plain data, such as a module's cache, is left as the code set it)."""
    return isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                              type, types.ModuleType, staticmethod, classmethod, property))


def _helpers_modules() -> dict[str, types.ModuleType]:
    return {name: module for name, module in list(sys.modules.items())
            if (name == "helpers" or name.startswith("helpers.")) and isinstance(module, types.ModuleType)}


def _import_all_helpers() -> None:
    """Import every module of the helpers package (as the lessons would), so that their
    pristine state is known before any student code runs."""
    import helpers

    for info in pkgutil.walk_packages(helpers.__path__, "helpers."):
        if info.name in _SKIP_MODULES or info.name.split(".")[-1].startswith("_"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as error:  # noqa: BLE001 - an optional module must not stop grading
            print(f"grading kernel: could not import {info.name}: {error}", file=sys.__stderr__)


class _Snapshot:
    """What the kernel looked like before any student code ran."""

    def __init__(self, shell) -> None:
        manager = shell.input_transformer_manager
        self.transformer_manager = manager
        self.manager_lists = {name: (getattr(manager, name), list(getattr(manager, name)))
                              for name in ("cleanup_transforms", "line_transforms",
                                           "token_transformers") if hasattr(manager, name)}
        self.input_post = list(shell.input_transformers_post)
        self.ast = list(shell.ast_transformers)
        self.events = {name: list(callbacks) for name, callbacks in shell.events.callbacks.items()}
        self.builtins = dict(vars(builtins))
        _import_all_helpers()
        self.modules = _helpers_modules()
        self.module_dicts = {name: dict(vars(module)) for name, module in self.modules.items()}
        self.functions: dict[types.FunctionType, tuple] = {}
        self.classes: dict[type, dict] = {}
        self.references: dict[types.CodeType, str] = {}
        for name, module in self.modules.items():
            if name in _SKIP_MODULES:
                continue
            for value in vars(module).values():
                if isinstance(value, types.FunctionType) and value.__module__ == name:
                    self._add_function(value)
                elif isinstance(value, type) and value.__module__ == name:
                    self.classes[value] = dict(vars(value))
                    for attribute in vars(value).values():
                        function = getattr(attribute, "__func__", attribute)
                        if isinstance(function, types.FunctionType):
                            self._add_function(function, owner=value.__name__)

    def _add_function(self, function: types.FunctionType, owner: str | None = None) -> None:
        self.functions[function] = (function.__code__, function.__defaults__, function.__kwdefaults__)
        name = function.__name__
        if owner and name in _GUARDED_METHODS:
            # a learner's PyDataset must not hand __getitem__ to the reference class
            self.references[function.__code__] = name
        elif not owner and not name.startswith(("check_", "_")):
            self.references[function.__code__] = name.removeprefix("reference_")

    # -- restoring ---------------------------------------------------------------------

    def restore_shell(self, shell) -> list[str]:
        """Put back transformers, event callbacks and builtins; return what had changed."""
        changed = []
        if shell.input_transformer_manager is not self.transformer_manager:
            changed.append("IPython input_transformer_manager")
            shell.input_transformer_manager = self.transformer_manager
        for name, (pristine_list, items) in self.manager_lists.items():
            if getattr(self.transformer_manager, name) is not pristine_list or pristine_list != items:
                changed.append(f"IPython input transformers ({name})")
                pristine_list[:] = items
                setattr(self.transformer_manager, name, pristine_list)
        for attribute, pristine in (("input_transformers_post", self.input_post),
                                    ("ast_transformers", self.ast)):
            current = getattr(shell, attribute)
            if current != pristine:
                changed.append(f"IPython {attribute}")
            setattr(shell, attribute, list(pristine))
        for name, pristine in self.events.items():
            if shell.events.callbacks.get(name) != pristine:
                changed.append(f"IPython event callbacks ({name})")
            shell.events.callbacks[name] = list(pristine)
        current = vars(builtins)
        managed = set(getattr(shell.builtin_trap, "auto_builtins", {}))
        for key in [key for key in current if key not in self.builtins]:
            if key not in managed and key not in _OUTPUT_NAMES:
                changed.append(f"builtins.{key} (added)")
                del current[key]
        for key, value in self.builtins.items():
            if key in managed or key in _OUTPUT_NAMES:
                continue
            if current.get(key) is not value:
                changed.append(f"builtins.{key}")
                current[key] = value
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
        sys.setprofile(None)
        return changed

    def restore_helpers(self, user_ns: dict, used: set[str] = frozenset()) -> list[str]:
        """Put back the helpers modules, their functions and classes, and the notebook names
        that the test cell uses as modules (``used``, e.g. ``checks`` in
        ``checks.check_dice(...)``); return what had changed. A notebook variable that merely
        shares a module's name (``losses = history.history["loss"]``) is left alone unless
        the test uses it as that module."""
        changed = []
        for name, module in self.modules.items():
            if sys.modules.get(name) is not module:
                changed.append(f"sys.modules[{name!r}]")
                sys.modules[name] = module
            current = vars(module)
            pristine = self.module_dicts[name]
            for key in [key for key in current if key not in pristine]:
                if _is_code(current[key]) and not isinstance(current[key], types.ModuleType):
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
        short_names = {name.rsplit(".", 1)[-1]: module for name, module in self.modules.items()}
        short_names["helpers"] = self.modules.get("helpers")
        for key, module in short_names.items():
            if module is None or key not in user_ns or key not in used:
                continue
            value = user_ns[key]
            if isinstance(value, types.ModuleType) and value.__name__.startswith("helpers") \
                    and value is not module and value.__name__ != module.__name__:
                continue  # e.g. `from helpers.data import io` next to helpers.io: not ours
            if value is not module:
                changed.append(f"the notebook name {key!r}")
                user_ns[key] = module
        return changed

    # -- the reference guard -----------------------------------------------------------

    def guard(self):
        """A trace function: a call of a reference from a learner's function of the same
        name (directly or through helpers of its own) raises :class:`ReferenceCallError`."""
        references = self.references
        helpers_dir = str(_HELPERS_DIR)
        prefixes = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix, helpers_dir})

        def is_learner_code(code: types.CodeType) -> bool:
            filename = code.co_filename
            return not filename.startswith(prefixes) and not filename.startswith("<frozen")

        def trace(frame, event, arg):
            if event != "call":
                return None
            target = references.get(frame.f_code)
            if target is None:
                return None
            wanted = target.split(".", 1)
            caller = frame.f_back
            while caller is not None and is_learner_code(caller.f_code):
                name = caller.f_code.co_name
                if name == wanted[-1] if len(wanted) == 1 else name == wanted[1]:
                    raise ReferenceCallError(
                        f"your {name}() calls the course's reference implementation "
                        f"({frame.f_code.co_name} in {Path(frame.f_code.co_filename).name}). "
                        f"Write the code of this exercise yourself instead of calling the "
                        f"reference; other helpers may be used as the lesson says.")
                caller = caller.f_back
            return None

        return trace


def _module_names_used(code: str) -> set[str]:
    """Names that ``code`` uses as modules: the ``x`` of every ``x.attribute``."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    return {node.value.id for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)}


class GradingKernel(IPythonKernel):
    """IPython kernel that restores its guards before every cell (see the module docstring)."""

    implementation = "unet-course-grading"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._snapshot = _Snapshot(self.shell)

    async def do_execute(self, code, silent, store_history=True, user_expressions=None,
                         allow_stdin=False, *, cell_meta=None, cell_id=None):
        info = (cell_meta or {}).get(META_KEY) or {}
        snapshot = self._snapshot
        changed = snapshot.restore_shell(self.shell)
        is_test = bool(info.get("test"))
        if is_test:
            changed += snapshot.restore_helpers(self.shell.user_ns, _module_names_used(code))
            tampered = [item for item in changed if "checks" in item or "notebook name" in item
                        or "sys.modules" in item]
            if tampered:
                message = ("The checks were replaced by code in this notebook ("
                           + ", ".join(sorted(set(tampered))[:5])
                           + "): the grader restored them, and this test cell fails. "
                             "Remove the code that changes `checks` or `helpers`.")
                code = f"raise AssertionError({message!r})"
            sys.settrace(snapshot.guard())
            threading.settrace(snapshot.guard())  # type: ignore[arg-type]
        try:
            return await super().do_execute(code, silent, store_history, user_expressions,
                                            allow_stdin, cell_meta=cell_meta, cell_id=cell_id)
        finally:
            if is_test:
                sys.settrace(None)
                threading.settrace(None)  # type: ignore[arg-type]


def main() -> None:
    """Start the kernel (``python -m helpers.grading_kernel -f CONNECTION_FILE``)."""
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(kernel_class=GradingKernel)


if __name__ == "__main__":
    main()
