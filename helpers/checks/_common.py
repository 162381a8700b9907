"""What every check shares: how it fails, how it succeeds, how it calls the learner's code.

One message style for the whole course:

* a failure raises ``AssertionError("<name> — case '<case>': <problem> Hint: <hint>")``,
  where ``<name>`` is the learner's function (or object) under test, ``<case>`` the named
  or random input it failed on (left out when the problem is not tied to one input), and
  the hint names the usual mistake (:func:`fail`);
* success prints one line, ``✓ <name>: <what was checked>`` (:func:`ok`);
* the learner's function is called through :func:`call`, which turns the usual accidents
  (``raise NotImplementedError()`` still there, an exception, a forgotten ``return``) into
  such a failure instead of a traceback from inside the check;
* after an exercise, :func:`learner_or_reference` hands the rest of the lesson the learner's
  version when it passes its check, else the reference from ``helpers`` with one line that
  says so: an unfinished blank is no dead end.
"""

from __future__ import annotations

import contextlib
import functools
import io
import random
import sys
import types
from typing import Any, Callable, NoReturn

__all__ = ["fail", "ok", "call", "name_of", "learner_or_reference", "check_best_choice"]


def fail(name: str, case: str | None, problem: str, hint: str = "", *,
         cause: BaseException | None = None) -> NoReturn:
    """Raise the check's ``AssertionError``: every failing check of the course comes here.

    Args:
        name: the learner's function or object under test (``"dice_coefficient"``).
        case: the input it failed on (``"two empty masks"``), or ``None`` when the problem
            is not tied to one input (a wrong optimizer, a missing callback).
        problem: what was expected and what came back.
        hint: the usual mistake that gives this result, and the fix; may be empty.
        cause: the learner's exception behind the failure, kept as the error's cause so that
            its traceback stays available (``raise ... from cause``).

    Raises:
        AssertionError: always, with ``"<name> — case '<case>': <problem> Hint: <hint>"``.
    """
    where = f"{name} — case '{case}'" if case else name
    message = f"{where}: {problem.strip()}"
    if hint:
        message += f" Hint: {hint.strip()}"
    raise AssertionError(message) from cause


def ok(message: str) -> None:
    """Print the one success line of a check, ``✓ <message>``; the message starts with the
    name of what was checked (``"dice_coefficient: 9 named cases ... match"``).

    Args:
        message: what passed, starting with the name of what was checked.
    """
    print(f"✓ {message}")


def name_of(fn: Any, default: str = "your function") -> str:
    """The name a message uses for ``fn``: its ``__name__``, else ``default``.

    Args:
        fn: a function (or any object).
        default: the name when ``fn`` has no ``__name__``.

    Returns:
        The name.
    """
    return getattr(fn, "__name__", None) or default


def call(fn: Callable, name: str, case: str | None, *args: Any, allow_none: bool = False,
         **kwargs: Any) -> Any:
    """Call the learner's ``fn(*args, **kwargs)`` and return its result.

    Args:
        fn: the learner's function (or class).
        name: its name in messages (see :func:`name_of`).
        case: the input it is called on, for the message.
        *args: passed to ``fn``.
        **kwargs: passed to ``fn``.
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


@contextlib.contextmanager
def _random_state_kept():
    """Run a block without moving the lesson's random numbers: Python's and NumPy's global
    generators and Keras's global seed (a check builds models and may call
    ``keras.utils.set_random_seed``) are put back afterwards, so that the cells after a
    quiet check compute what they computed without it.
    """
    import numpy as np

    python_state, numpy_state = random.getstate(), np.random.get_state()
    keras_state = None
    if "keras" in sys.modules:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils import rng_utils

        names = (rng_utils.GLOBAL_RANDOM_SEED, seed_generator.GLOBAL_SEED_GENERATOR)
        values = [global_state.get_global_attribute(name) for name in names]
        generator = values[1]
        state = None if generator is None else np.array(generator.state.numpy())
        keras_state = (global_state, names, values, generator, state)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        if keras_state is not None:
            global_state, names, values, generator, state = keras_state
            for name, value in zip(names, values):
                global_state.set_global_attribute(name, value)
            if generator is not None:
                generator.state.assign(state)


@contextlib.contextmanager
def _tracing_history_kept():
    """Run a block without counting its ``tf.function`` tracings in TensorFlow's
    frequent-retracing detector: the models a quiet check builds would otherwise make the
    lesson's next ``fit`` print "triggered tf.function retracing" warnings (to stderr, which
    nbgrader scores as a failure in a test cell). TensorFlow's internals, if they are not
    where expected, are left alone.
    """
    import logging

    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)          # nor print them while the check runs
    manager = None
    if "tensorflow" in sys.modules:
        try:
            from tensorflow.python.eager.polymorphic_function import polymorphic_function

            manager = polymorphic_function._frequent_tracing_detector_manager
            with manager._lock:
                saved = {key: (list(d._calls_per_tracings), d._call_count, d._total_warning_count)
                         for key, d in manager._detectors.items()}
        except (ImportError, AttributeError):
            manager = None
    try:
        yield
    finally:
        tf_logger.setLevel(level)
        if manager is not None:
            try:
                with manager._lock:
                    for key in [key for key in manager._detectors.keys() if key not in saved]:
                        del manager._detectors[key]
                    for key, (calls, count, warnings) in saved.items():
                        detector = manager._detectors.get(key)
                        if detector is not None:
                            detector._calls_per_tracings, detector._call_count = calls, count
                            detector._total_warning_count = warnings
            except (AttributeError, TypeError, KeyError):
                pass


def _why_not(error: BaseException) -> str:
    """Why the learner's version is not used, in a few words: ``raised NotImplementedError``
    when that is anywhere in the chain of ``error``, else the check's first line.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NotImplementedError):
            return "raised NotImplementedError"
        if isinstance(current, AssertionError) and "is not written yet" in str(current):
            return "raised NotImplementedError"
        current = current.__cause__ or current.__context__
    if isinstance(error, AssertionError):
        first = (str(error).strip().splitlines() or [""])[0]
        if len(first) > 160:
            first = first[:157] + "..."
        return f"does not pass its check ({first})" if first else "does not pass its check"
    return f"raised {type(error).__name__}: {error}"


def check_best_choice(name: str, choice: Any, evidence: dict, *, criterion: str,
                      higher_is_better: bool = True) -> None:
    """Check a decision made from evidence: ``choice`` must be one of the options of
    ``evidence`` (option -> its score on the *validation* data, by ``criterion``) and the
    best of them.

    Args:
        name: the learner's variable (``"EMPTY_FRACTION"``).
        choice: the learner's value.
        evidence: option -> validation score, as the lesson printed it.
        criterion: what the score is, in words (``"mean validation Dice"``).
        higher_is_better: True for Dice, False for a distance such as HD95.

    Raises:
        AssertionError: ``choice`` is ``...``/None, not an option, or not the best option.
    """
    options = list(evidence)
    if choice is None or choice is Ellipsis:
        fail(name, None, "is not set yet.", f"set it to one of {options}, read from the validation table above.")
    matches = [option for option in options if option == choice or (
        isinstance(option, float) and isinstance(choice, (int, float)) and abs(option - float(choice)) < 1e-9)]
    if not matches:
        fail(name, None, f"{choice!r} is not one of the options measured: {options}.",
             "choose one of the settings in the validation table, spelled as in the table.")
    best = (max if higher_is_better else min)(options, key=lambda option: evidence[option])
    if evidence[matches[0]] != evidence[best]:
        better = "highest" if higher_is_better else "lowest"
        # the message never names the best option: a learner who tries values must still read the evidence
        fail(name, None, f"you chose {choice!r}, but another option has a {'higher' if higher_is_better else 'lower'} "
                         f"{criterion} on the validation data.",
             f"read the {criterion} of every option in the validation table above and choose the {better}; "
             f"never look at the test data.")
    ok(f"{name} = {choice!r}: the best {criterion} on the validation data.")


def learner_or_reference(name: str, get_learner: Callable[[], Any], reference: Any,
                         check: Callable[[Any], Any] | None = None, *, build: bool = False) -> Any:
    """The learner's version of ``name`` when it works, else the course's reference.

    Used in the cell after an exercise's check, so that the rest of the lesson runs whether
    or not the blank is finished::

        build_unet = checks.learner_or_reference("build_unet", lambda: build_unet,
                                                 models.build_unet, checks.check_unet)

    prints nothing when the learner's ``build_unet`` passes ``check_unet``, and otherwise one
    line, ``using the reference `build_unet`: yours raised NotImplementedError``, and returns
    ``models.build_unet``. The check runs quietly (its ``✓`` line was printed by the check
    cell above) and leaves the random generators as it found them, so the cells after it
    compute the same numbers with or without it. An object the reference made (a model, a
    ``History``) is marked with :data:`REFERENCE_TAG`: graded as the learner's own, it fails. Grading is not affected: the exercise's own check cell ran before, on the
    learner's version, and a graded name that is or reaches the reference fails its test.

    Args:
        name: the learner's name of the object, as the lesson writes it.
        get_learner: no arguments, returns the learner's object (a ``lambda: build_unet``,
            so that a name the learner never defined is a reason, not a ``NameError``).
        reference: the reference from ``helpers`` (or, with ``build``, a function of no
            arguments that makes it, e.g. a model built with the reference builder).
        check: the exercise's visible check, called with the learner's object; it raises
            ``AssertionError`` when the object is wrong. ``None``: only that the name exists.
        build: call ``reference()`` to get the reference, only when it is needed.

    Returns:
        The learner's object if it exists and passes ``check``, else the reference.
    """
    try:
        learner = get_learner()
    except NameError:
        reason = "yours is not defined (run its cell)"
    except Exception as error:  # noqa: BLE001 - any failure means: use the reference
        reason = f"yours {_why_not(error)}"
    else:
        if check is None:
            return learner
        try:
            with contextlib.redirect_stdout(io.StringIO()), _random_state_kept(), _tracing_history_kept():
                check(learner)
        except Exception as error:  # noqa: BLE001 - any failure means: use the reference
            reason = f"yours {_why_not(error)}"
        else:
            return learner
    print(f"using the reference `{name}`: {reason}")
    chosen = reference() if build else reference
    _tag(chosen, name)
    return chosen


#: Attribute that marks an object (a model, a History) the lesson made with the reference,
#: so that grading can tell it from the learner's own (:mod:`helpers.grading_guard`).
REFERENCE_TAG = "_unet_course_reference"


def _tag(value: Any, name: str) -> None:
    """Mark an object built by the reference (not functions, classes or modules: those are
    known to the grader by identity) with :data:`REFERENCE_TAG`; objects that take no
    attributes (numbers, strings, tuples) stay as they are.
    """
    if callable(value) and not hasattr(value, "__dict__"):
        return
    if isinstance(value, (type, types.FunctionType, types.ModuleType, types.MethodType, functools.partial)):
        return
    try:
        setattr(value, REFERENCE_TAG, name)
    except (AttributeError, TypeError):
        pass
