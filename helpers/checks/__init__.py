"""Student-facing checks used by the check cells of the lessons.

Each check compares a learner's function with the reference implementation in
``helpers`` on fixed and random inputs and raises ``AssertionError`` naming the failed
case, what was expected, what came back, and a hint. All is well when it prints one
short success line. One submodule per lesson topic; ``checks.check_dice`` and friends
are found in whichever submodule defines them, so notebooks write
``from helpers import checks`` and ``checks.check_dice(dice_coefficient)``.
"""

from __future__ import annotations

import importlib

#: Submodules searched, in order, for a check function (imported on first use).
SUBMODULES = (
    "generator",     # lesson 01
    "architecture",  # lesson 02
    "metrics",       # lesson 03
    "training",      # lesson 04
    "prediction",    # lesson 05
    "lung_ct",       # lesson 06
    "liver_ct",      # lesson 07
    "brain",         # lesson 08
)


def _submodules():
    for name in SUBMODULES:
        try:
            yield importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise


def __getattr__(name: str):
    if name.startswith("_"):
        raise AttributeError(name)
    for module in _submodules():
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"helpers.checks has no check named {name!r}")


def __dir__():
    names = set(globals())
    for module in _submodules():
        names.update(n for n in dir(module) if n.startswith("check_"))
    return sorted(names)
