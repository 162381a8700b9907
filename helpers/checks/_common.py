"""What every check shares: how it fails, how it succeeds, how it calls the learner's code.

One message style for the whole course:

* a failure raises ``AssertionError("<name> — case '<case>': <problem> Hint: <hint>")``,
  where ``<name>`` is the learner's function (or object) under test, ``<case>`` the named
  or random input it failed on (left out when the problem is not tied to one input), and
  the hint names the usual mistake (:func:`fail`);
* success prints one line, ``✓ <name>: <what was checked>`` (:func:`ok`);
* the learner's function is called through :func:`call`, which turns the usual accidents
  (``raise NotImplementedError()`` still there, an exception, a forgotten ``return``) into
  such a failure instead of a traceback from inside the check.
"""

from __future__ import annotations

from typing import Any, Callable, NoReturn

__all__ = ["fail", "ok", "call", "name_of"]


def fail(name: str, case: str | None, problem: str, hint: str = "") -> NoReturn:
    """Raise the check's ``AssertionError``.

    Args:
        name: the learner's function or object under test (``"dice_coefficient"``).
        case: the input it failed on (``"two empty masks"``), or ``None`` when the problem
            is not tied to one input (a wrong optimizer, a missing callback).
        problem: what was expected and what came back.
        hint: the usual mistake that gives this result, and the fix; may be empty.

    Raises:
        AssertionError: always, with ``"<name> — case '<case>': <problem> Hint: <hint>"``.
    """
    where = f"{name} — case '{case}'" if case else name
    message = f"{where}: {problem.strip()}"
    if hint:
        message += f" Hint: {hint.strip()}"
    raise AssertionError(message)


def ok(message: str) -> None:
    """Print the one success line of a check, ``✓ <message>``; the message starts with the
    name of what was checked (``"dice_coefficient: 9 named cases ... match"``)."""
    print(f"✓ {message}")


def name_of(fn: Any, default: str = "your function") -> str:
    """The name a message uses for ``fn``: its ``__name__``, else ``default``."""
    return getattr(fn, "__name__", None) or default


def call(fn: Callable, name: str, case: str | None, *args: Any, allow_none: bool = False,
         **kwargs: Any) -> Any:
    """Call the learner's ``fn(*args, **kwargs)`` and return its result.

    Args:
        fn: the learner's function (or class).
        name: its name in messages (see :func:`name_of`).
        case: the input it is called on, for the message.
        *args, **kwargs: passed to ``fn``.
        allow_none: accept ``None`` as a result (for functions that only write files).

    Returns:
        What ``fn`` returned.

    Raises:
        AssertionError: ``fn`` still raises ``NotImplementedError``, raised another
            exception (kept as the context, so its traceback stays available), or returned ``None``
            unless ``allow_none``. An ``AssertionError`` from ``fn`` itself (a nested
            check) passes through unchanged.
    """
    try:
        out = fn(*args, **kwargs)
    except NotImplementedError:
        raise AssertionError(f"{name} is not written yet: replace `raise NotImplementedError()` "
                             f"with your code and run the cell again.") from None
    except AssertionError:
        raise
    except Exception as error:
        fail(name, case, f"raised {type(error).__name__}: {error}")
    if out is None and not allow_none:
        fail(name, case, "returned None.", "did you forget `return`?")
    return out
