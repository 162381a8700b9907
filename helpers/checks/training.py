"""Checks for lesson 04 (training): patient-level split, callbacks, compile, the training run.

Each check calls the learner's function (or inspects the object it made) on fixed and
random cases and raises ``AssertionError`` naming the case, what was expected, what came
back and a hint; it prints one short success line when all is well. None of them
depends on how well a model trained, so they pass at any ``UNET_COURSE_SCALE``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from helpers.checks._common import _tracing_history_kept, call, fail, name_of, ok

if TYPE_CHECKING:
    import keras

__all__ = ["check_split_by_patient", "check_callbacks", "check_compile", "check_training_run",
           "check_monitor", "check_train_step", "check_best_epoch"]


def _fake_cxr_pairs(n_patients: int = 40, second_view: float = 0.3, seed: int = 0,
                    prefix: str = "SYN") -> list[tuple[str, str]]:
    """The split check's input: made-up ``(image, mask)`` path pairs named like the chest X-ray set
    (``images/SYN_0007_0.png``, about ``second_view`` of the patients with a second view
    ``_1``). No file is created: the split functions only look at the names.
    """
    rng = np.random.default_rng(seed)
    pairs = []
    for patient in range(1, n_patients + 1):
        views = 2 if rng.random() < second_view else 1
        for view in range(views):
            name = f"{prefix}_{patient:04d}_{view}.png"
            pairs.append((f"images/{name}", f"masks/{name}"))
    return pairs


def _patient(item) -> str:
    from helpers.data import patient_id

    return patient_id(item[0] if isinstance(item, (tuple, list)) else item)


def _one_split(fn, items, fractions, seed, label):
    try:
        parts = fn(items, fractions=fractions, seed=seed)
    except TypeError as error:
        fail('split_by_patient', label, f"calling split_by_patient(items, fractions={fractions}, seed={seed}) "
                                        f"failed with TypeError: {error}. Keep the signature "
                                        f"split_by_patient(items, fractions=(0.7, 0.15, 0.15), seed=42).")
    if not isinstance(parts, (tuple, list)) or len(parts) != len(fractions):
        fail('split_by_patient', label, f"expected {len(fractions)} lists (one per fraction), got "
                                        f"{type(parts).__name__} of length {len(parts) if hasattr(parts, '__len__') else '?'}. "
                                        f"Return e.g. (train, val, test).")
    parts = [list(part) for part in parts]
    keys = [tuple(map(str, item)) if isinstance(item, (tuple, list)) else str(item) for item in items]
    seen = {}
    for p, part in enumerate(parts):
        for item in part:
            key = tuple(map(str, item)) if isinstance(item, (tuple, list)) else str(item)
            if key not in set(keys):
                fail('split_by_patient', label, f"part {p} holds {item!r}, which is not one of the input items; "
                                                f"return the items themselves (the (image, mask) pairs), not patient names.")
            if key in seen:
                fail('split_by_patient', label, f"item {item!r} is in part {seen[key]} and in part {p}; every item "
                                                f"must be in exactly one part.")
            seen[key] = p
    missing = [k for k in keys if k not in seen]
    if missing:
        fail('split_by_patient', label, f"{len(missing)} of {len(items)} items are in no part (e.g. {missing[0]!r}); "
                                        f"every item must be in exactly one part. If the lost items belong to the "
                                        f"last patients of the shuffled order, the fractions lose patients when they "
                                        f"become whole numbers.")
    owner = {}
    for p, part in enumerate(parts):
        for item in part:
            patient = _patient(item)
            if owner.setdefault(patient, p) != p:
                fail('split_by_patient', label, f"patient {patient} has images in part {owner[patient]} and in part {p}. "
                                                f"You seem to split the images rather than the patients: all the images "
                                                f"of a patient must land in the same part.")
    n = len(items)
    for p, (part, fraction) in enumerate(zip(parts, fractions)):
        expected = fraction * n
        tolerance = max(4.0, 0.1 * n)
        if abs(len(part) - expected) > tolerance:
            fail('split_by_patient', label, f"part {p} has {len(part)} of {n} items, expected about "
                                            f"{expected:.0f} ({fraction:.0%}, ± {tolerance:.0f}). The parts do not follow "
                                            f"the fractions: look at how many patients each part receives.")
    return parts


def check_split_by_patient(fn: Callable[..., Any], cases: int = 1, seed: int = 0) -> None:
    """Check a patient-level split ``fn(items, fractions=..., seed=...)`` on made-up chest
    X-ray file pairs: all items used once, no patient in two parts, sizes near the
    fractions, the same seed gives the same split and another seed another split.
    ``cases`` random data sets (sizes, fractions, seeds) are tried.

    Args:
        fn: the function to check (the learner's, or the reference).
        cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    rng = np.random.default_rng(seed)
    settings: list[tuple[int, tuple[float, ...], int]] = [(40, (0.7, 0.15, 0.15), 42)]
    fractions: tuple[float, ...]
    for _ in range(int(cases) - 1):
        n_patients = int(rng.integers(25, 120))
        if rng.random() < 0.3:
            first = float(rng.uniform(0.6, 0.85))
            fractions = (first, 1 - first)
        else:
            a, b = rng.uniform(0.1, 0.2, size=2)
            fractions = (1 - a - b, float(a), float(b))
        settings.append((n_patients, tuple(round(f, 3) for f in fractions), int(rng.integers(0, 10_000))))
    for n_patients, fractions, split_seed in settings:
        fractions = tuple(float(f) for f in fractions[:-1]) + (round(1 - float(sum(fractions[:-1])), 6),)
        items = _fake_cxr_pairs(n_patients, seed=split_seed)
        label = f"{len(items)} images of {n_patients} patients, fractions {fractions}, seed {split_seed}"
        first = _one_split(fn, items, fractions, split_seed, label)
        again = _one_split(fn, list(items), fractions, split_seed, label)
        if [sorted(map(str, p)) for p in first] != [sorted(map(str, p)) for p in again]:
            fail('split_by_patient', label, "two calls with the same seed gave different splits: the shuffle "
                                            "seems to draw from a global random state, which moves on from call "
                                            "to call, instead of depending on `seed` alone.")
        other = _one_split(fn, items, fractions, split_seed + 1, label + " (seed + 1)")
        if [sorted(map(str, p)) for p in first] == [sorted(map(str, p)) for p in other]:
            fail('split_by_patient', label, f"seeds {split_seed} and {split_seed + 1} gave the same split; the "
                                            f"shuffle must depend on `seed`.")
    ok(f"split_by_patient: no patient in two parts, sizes match the fractions "
       f"({len(settings)} case{'s' if len(settings) > 1 else ''}).")


#: The four callbacks of lesson 04 by class, and what the missing one would do (failure messages
#: name the role, not the class).
_ROLES = {"ModelCheckpoint": "saves the best model to a file",
          "ReduceLROnPlateau": "lowers the learning rate when the watched quantity stops improving",
          "EarlyStopping": "stops the run when the watched quantity stops improving",
          "CSVLogger": "writes the logs of every epoch to a CSV file"}


def _find(callbacks, cls_name):
    return [cb for cb in callbacks if type(cb).__name__ == cls_name]


def check_callbacks(fn_or_list: Callable[..., Any] | Sequence[Any], run_dir: str | Path | None = None,
                    monitor: str = "val_dice", mode: str = "max") -> None:
    """Check the four callbacks of lesson 04, made by ``fn_or_list(run_dir)`` or given as a
    list: ModelCheckpoint to ``run_dir/best.keras`` keeping only the best, ReduceLROnPlateau,
    EarlyStopping restoring the best weights (all watching ``monitor`` in ``mode``) and a
    CSVLogger writing ``run_dir/log.csv``.

    Args:
        fn_or_list: a function ``fn(run_dir) -> callbacks``, or the callbacks.
        run_dir: the run folder the callbacks must write into; None: a new temporary folder for a function, anywhere for
            a list.
        monitor: the quantity the callbacks must watch.
        mode: ``"max"`` or ``"min"``, the direction in which it improves.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    import tempfile

    if callable(fn_or_list):
        # a folder that does not exist yet: make_callbacks must work for a new run folder
        run_dir = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix="unet_callbacks_")) / "new" / "run"
        callbacks = call(fn_or_list, name_of(fn_or_list, "make_callbacks"),
                         "a run folder that does not exist yet" + ("" if run_dir.parent.exists() else
                                                                   ", nor does its parent folder"), run_dir,
                         allow_none=True)
    else:
        callbacks = fn_or_list
        run_dir = Path(run_dir) if run_dir is not None else None
    if callbacks is None or not isinstance(callbacks, (list, tuple)):
        fail('callbacks', None, f"Expected a list of four callbacks, got {type(callbacks).__name__}: did you forget "
                                f"to return the list?")
    names = [type(cb).__name__ for cb in callbacks]
    for needed, role in _ROLES.items():
        if not _find(callbacks, needed):
            fail('callbacks', None, f"None of the callbacks {names} {role}.")
    checkpoint = _find(callbacks, "ModelCheckpoint")[0]
    path = Path(checkpoint.filepath)
    if path.suffix != ".keras":
        fail('callbacks', None, f"The checkpoint writes {path}; save the whole model in the Keras 3 format: a "
                                f"file name ending in .keras (run_dir / 'best.keras'), not .h5 or a folder.")
    if run_dir is not None and path.resolve() != (run_dir / "best.keras").resolve():
        fail('callbacks', None, f"The checkpoint writes {path}, expected {run_dir / 'best.keras'} (lesson 05 loads it from there).")
    if not checkpoint.save_best_only:
        fail('callbacks', None, "The checkpoint overwrites the file every epoch, with better and worse models alike: "
                                "the file must hold the best model only.")
    for cb in (checkpoint, _find(callbacks, "ReduceLROnPlateau")[0], _find(callbacks, "EarlyStopping")[0]):
        if cb.monitor != monitor:
            fail('callbacks', None, f"{type(cb).__name__} watches {cb.monitor!r}, expected {monitor!r} "
                                    f"(your MONITOR): the three callbacks that watch a quantity must all watch it.")
        if cb.mode != mode:
            fail('callbacks', None, f"{type(cb).__name__} has mode {cb.mode!r}, expected {mode!r} (your MODE): "
                                    "Keras cannot guess the direction of a custom metric, so every callback that "
                                    "watches one must be told.")
    early = _find(callbacks, "EarlyStopping")[0]
    if not early.restore_best_weights:
        fail('callbacks', None, "Early stopping does not put back the best weights: the model would end with the "
                                "weights of the last epoch, not of the best one.")
    reduce = _find(callbacks, "ReduceLROnPlateau")[0]
    if not 0 < reduce.factor < 1:
        fail('callbacks', None, f"The learning-rate callback multiplies the rate by {reduce.factor}: it must lower "
                                f"the rate, not keep or raise it.")
    if reduce.patience >= early.patience:
        fail('callbacks', None, f"The learning rate is lowered after {reduce.patience} epochs without progress and "
                                f"the run stops after {early.patience}: lower the rate before giving up (a shorter "
                                f"wait for the learning rate than for stopping).")
    logger = _find(callbacks, "CSVLogger")[0]
    log = Path(logger.filename)
    if log.suffix != ".csv":
        fail('callbacks', None, f"The log is written to {log}; it must be a .csv file, run_dir / 'log.csv'.")
    if run_dir is not None and log.resolve() != (run_dir / "log.csv").resolve():
        fail('callbacks', None, f"The log is written to {log}, expected {run_dir / 'log.csv'}.")
    ok("callbacks: best.keras checkpoint, learning-rate schedule, early stopping, CSV log.")


def check_compile(model: keras.Model, learning_rate: float | None = None, hard_dice: bool = True) -> None:
    """See :func:`_check_compile`; the check's own evaluate() calls are kept out of
    TensorFlow's retracing warning, so that the lesson's next ``fit`` prints none.

    Args:
        model: the learner's compiled model.
        learning_rate: the learning rate Adam must have, or None for any.
        hard_dice: also require the ``hard_dice`` metric.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    with _tracing_history_kept():
        _check_compile(model, learning_rate, hard_dice)


def _check_compile(model, learning_rate: float | None = None, hard_dice: bool = True) -> None:
    """Check that ``model`` is compiled with Adam (at ``learning_rate`` if given), the
    BCE + Dice loss and the metrics logged as ``dice`` and (if ``hard_dice``) ``hard_dice``:
    the loss on a fixed batch must equal the reference :func:`helpers.losses.bce_dice_loss`
    and evaluate() must report both metrics.
    """
    import keras

    from helpers import losses

    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", True):
        fail('compile', None, "The model is not compiled: call model.compile(optimizer=..., loss=..., metrics=[...]).")
    optimizer = model.optimizer
    if type(optimizer).__name__ != "Adam":
        fail('compile', None, f"The optimizer is {type(optimizer).__name__}, expected Adam: "
                              f"optimizer=keras.optimizers.Adam(learning_rate).")
    if learning_rate is not None:
        got = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        if not np.isclose(got, learning_rate, rtol=1e-3):
            fail('compile', None, f"The learning rate is {got:g}, expected {learning_rate:g}: "
                                  f"keras.optimizers.Adam(learning_rate=learning_rate).")
    shape = tuple(int(s) for s in model.input_shape[1:])
    rng = np.random.default_rng(0)
    x = rng.random((2,) + shape).astype("float32")
    y_pred = np.asarray(model.predict_on_batch(x))
    y_true = (rng.random(y_pred.shape) < 0.4).astype("float32")
    expected = float(keras.ops.convert_to_numpy(losses.bce_dice_loss(y_true, y_pred)))
    logs = model.evaluate(x, y_true, verbose=0, return_dict=True)
    if "dice" not in logs:
        fail('compile', None, f"evaluate() logs {sorted(logs)} but no 'dice': pass "
                              f"metrics=[metrics.dice_coefficient] to compile (it is logged as 'dice').")
    got = float(logs["loss"])
    if not np.isclose(got, expected, rtol=1e-3, atol=1e-4):
        fail('compile', None, f"The loss on a fixed batch is {got:.4f}, but the BCE + Dice loss gives {expected:.4f}: "
                              f"pass loss=losses.bce_dice_loss to compile.")
    if hard_dice and "hard_dice" not in logs:
        fail('compile', None, f"evaluate() logs {sorted(logs)} but no 'hard_dice': pass "
                              f"metrics=[metrics.dice_coefficient, metrics.hard_dice] to compile (the fit "
                              f"check looks for 'val_hard_dice').")
    ok("compile: Adam, BCE + Dice loss, " + ("'dice' and 'hard_dice' metrics." if hard_dice else "'dice' metric."))


def check_training_run(history: Any, run_dir: str | Path, monitor: str = "val_dice", started: float | None = None,
                       epochs: int | None = None, hard_dice: bool = True) -> None:
    """Check a finished ``model.fit`` run: ``history`` logged training and validation loss
    and Dice (and the hard Dice, if ``hard_dice``), ran at most ``epochs`` epochs if given,
    ``run_dir/best.keras`` exists and loads, and ``run_dir/log.csv`` has one row per epoch. ``started`` (a ``time.time()`` taken before ``fit``) makes files left by an
    earlier run fail: both must have been written after it. Says nothing about how good the
    model is.

    Args:
        history: the ``History`` that ``model.fit`` returned.
        run_dir: the run folder.
        monitor: the quantity the callbacks watched.
        started: ``time.time()`` before ``fit``, or None.
        epochs: the most epochs the run may have, or None.
        hard_dice: also require the hard Dice in the logs.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    from helpers import training

    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        fail('training run', None, f"Expected the History returned by model.fit, got {type(history).__name__}.")
    needed = ("loss", "val_loss", "dice", monitor) + (("hard_dice", "val_hard_dice") if hard_dice else ())
    for key in needed:
        if key not in logs:
            fail('training run', None, f"The history has no {key!r} (it has {sorted(logs)}): pass validation_data=val_ds "
                                       f"to fit and metrics=[metrics.dice_coefficient, metrics.hard_dice] to compile.")
    limit, epochs = epochs, len(logs["loss"])
    if limit is not None and epochs > limit:
        fail('training run', None, f"fit ran {epochs} epochs, more than EPOCHS = {limit}: pass epochs=EPOCHS to fit.")
    run_dir = Path(run_dir)
    best = run_dir / "best.keras"
    if not best.is_file():
        fail('training run', None, f"No {best}: pass the callbacks (with the ModelCheckpoint) to fit(callbacks=...).")
    try:
        training.load_model(best)
    except Exception as error:  # show any loading problem to the learner
        fail('training run', None, f"{best} does not load ({type(error).__name__}: {error}).")
    log = run_dir / "log.csv"
    if not log.is_file():
        fail('training run', None, f"No {log}: pass the CSVLogger to fit(callbacks=...).")
    if started is not None:
        for path in (best, log):
            if path.stat().st_mtime < started - 1.0:
                fail('training run', None, f"{path.name} in the run folder was written before this fit started: it is left over "
                                           f"from an earlier run, so this fit wrote neither a checkpoint nor a log. Pass "
                                           f"callbacks=callbacks to model.fit.")
    with log.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    if len(rows) != epochs:
        fail('training run', None, f"{log} has {len(rows)} rows but the history {epochs} epochs; was the log written by "
                                   f"another run? Make the callbacks anew before each fit.")
    ok(f"training run: {epochs} epochs logged, {best.name} saved and loadable.")


# --------------------------------------------------------------------------- what to watch

#: Quantities logged by lesson 04's compile, and the direction in which each improves.
LOGGED = {"loss": "min", "dice": "max", "hard_dice": "max"}


def check_monitor(monitor: Any, mode: Any, logged: Mapping[str, str] = LOGGED) -> None:
    """Check the choice of the quantity the callbacks watch: a *validation* quantity that
    ``fit`` logs (``val_`` + one of ``logged``) and the ``mode`` in which it improves
    (``max`` for a Dice, ``min`` for a loss).

    Args:
        monitor: the learner's choice of quantity, e.g. ``"val_dice"``.
        mode: the learner's mode, ``"max"`` or ``"min"``.
        logged: logged quantity -> the mode in which it improves.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    if not isinstance(monitor, str) or not isinstance(mode, str):
        fail('MONITOR and MODE', None, f"MONITOR and MODE should be strings such as 'val_...' and 'max' or 'min', got "
                                       f"{monitor!r} and {mode!r}.")
    options = sorted(f"val_{key}" for key in logged)
    if monitor in logged:
        fail('MONITOR and MODE', None, f"MONITOR = {monitor!r} is measured on the training batches, which the model has learnt "
                                       f"from (with augmentation and dropout on): it keeps improving while the model over-fits. "
                                       f"Watch a quantity that fit measures on the validation set.")
    if monitor not in options:
        fail('MONITOR and MODE', None, f"MONITOR = {monitor!r} is not logged by this fit; it logs {options} on the validation set "
                                       f"(a metric is logged under its function's name, with 'val_' in front).")
    expected = logged[monitor[len("val_"):]]
    # the hints say what is wrong, not the answer: which direction is better is the decision
    if mode == "auto":
        fail('MONITOR and MODE', None, f"MODE = 'auto' lets Keras guess from the name: it knows 'loss' and 'accuracy', not a custom "
                                       f"Dice. Say it yourself: does {monitor!r} get larger or smaller as the model gets better?")
    if mode not in ("max", "min"):
        fail('MONITOR and MODE', None, f"MODE = {mode!r}: the callbacks understand 'max' (larger is better) and 'min' "
                                       f"(smaller is better).")
    if mode != expected:
        fail('MONITOR and MODE', None, f"MODE = {mode!r} for {monitor!r}: the callbacks would keep the worst epoch and stop when "
                                       f"the model improves. Think about what {monitor!r} measures and whether a better model "
                                       f"makes it larger or smaller.")
    ok(f"MONITOR and MODE: watching {monitor!r} in mode {mode!r}, a validation quantity, in the direction it improves.")


# --------------------------------------------------------------------------- the restored epoch

def _best_epoch(values, mode: str) -> int | None:
    """The epoch (from 1) whose value of a logged quantity is best in ``mode``; the first one
    on a tie, as Keras's callbacks keep the first (an improvement must be strict).
    """
    values = np.asarray(values, dtype=float)
    if not len(values) or np.all(np.isnan(values)):
        return None
    filled = np.where(np.isnan(values), -np.inf if mode == "max" else np.inf, values)
    return int(np.argmax(filled) if mode == "max" else np.argmin(filled)) + 1


def check_best_epoch(best_epoch: Any, history: Any, monitor: str = "val_dice", mode: str = "max") -> None:
    """Check the epoch a learner read off the learning curves: the epoch whose weights
    ``EarlyStopping(restore_best_weights=True)`` put back, numbered from 1 as ``fit`` prints
    it (``Epoch 1/16`` is epoch 1).

    Args:
        best_epoch: the learner's answer, a whole number.
        history: the ``History`` that ``model.fit`` returned (or its ``.history`` dict).
        monitor: the logged quantity the callbacks watched (``"val_dice"``).
        mode: ``"max"`` or ``"min"``, the direction in which ``monitor`` improves.

    Raises:
        AssertionError: ``best_epoch`` is not a whole number in range, or not the best epoch
            of ``monitor``; the hint names the usual slip (counting from 0, the last epoch,
            the training curve, the wrong direction) without giving the answer.
    """
    import numbers

    name = "BEST_EPOCH"
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or monitor not in logs or not len(logs[monitor]):
        fail(name, None, f"Expected the History of the fit above with {monitor!r} in it; got "
                         f"{sorted(logs) if isinstance(logs, dict) else type(history).__name__}.")
    values = list(logs[monitor])
    epochs = len(values)
    if best_epoch is Ellipsis or best_epoch is None:
        fail(name, None, "BEST_EPOCH is not set yet: replace the ... by the epoch you read off the curves.")
    if isinstance(best_epoch, bool) or not isinstance(best_epoch, numbers.Integral):
        fail(name, None, f"BEST_EPOCH should be a whole number, the epoch as fit prints it, got {best_epoch!r} "
                         f"({type(best_epoch).__name__}).",
             "Epochs are counted, not measured: `Epoch 1/N` is epoch 1.")
    best_epoch = int(best_epoch)
    if not 1 <= best_epoch <= epochs:
        hint = ("fit numbers epochs from 1; 0 is the index of the first one (as in log.csv's epoch column)."
                if best_epoch == 0 else "")
        fail(name, None, f"BEST_EPOCH = {best_epoch}, but this run had epochs 1 to {epochs}.", hint)
    expected = _best_epoch(values, mode)
    if best_epoch == expected:
        ok(f"BEST_EPOCH: the weights of epoch {best_epoch} of {epochs}, the best {monitor} ({mode}), are the ones restored.")
        return
    training_key = monitor[len("val_"):] if monitor.startswith("val_") else None
    opposite = "min" if mode == "max" else "max"
    if expected is not None and best_epoch == expected - 1:
        hint = ("You counted from 0: positions in a Python list and log.csv's epoch column start at 0, "
                "fit's `Epoch 1/N` lines and restore_best_weights at 1. Add one.")
    elif best_epoch == epochs:
        hint = ("The last epoch is not necessarily the best one: restore_best_weights puts back the weights of the "
                f"epoch where {monitor!r} was best, and the curve was better earlier.")
    elif training_key and training_key in logs and best_epoch == _best_epoch(logs[training_key], mode):
        hint = (f"That is where the training curve {training_key!r} is best; the callbacks watch {monitor!r}, "
                f"measured on the validation set.")
    elif best_epoch == _best_epoch(values, opposite):
        hint = (f"That is the worst epoch of {monitor!r}: in mode {mode!r} the best value is the "
                f"{'largest' if mode == 'max' else 'smallest'}.")
    else:
        hint = (f"Find the epoch where {monitor!r} reaches its best value ({'largest' if mode == 'max' else 'smallest'}"
                f"); if two epochs tie, Keras keeps the first.")
    fail(name, None, f"BEST_EPOCH = {best_epoch} is not the epoch whose weights the model holds now.", hint)


# --------------------------------------------------------------------------- a step by hand

def _step_model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def _step_loss(y_true, y_pred):
    import keras

    y_pred = keras.ops.clip(y_pred, 1e-7, 1 - 1e-7)
    bce = -keras.ops.mean(y_true * keras.ops.log(y_pred) + (1 - y_true) * keras.ops.log(1 - y_pred))
    axes = tuple(range(1, len(y_true.shape)))
    dice = (2 * keras.ops.sum(y_true * y_pred, axis=axes) + 1) / (
        keras.ops.sum(y_true, axis=axes) + keras.ops.sum(y_pred, axis=axes) + 1)
    return bce + 1 - keras.ops.mean(dice)


def check_train_step(fn: Callable[..., Any], seed: int = 0, steps: int = 3) -> None:
    """Check ``fn(model, optimizer, loss_fn, x, y) -> loss``, one training step written with
    ``tf.GradientTape``, against Keras's own ``train_on_batch`` on an identical model: the
    same loss before each of ``steps`` steps and the same weights after them, batch-norm
    statistics included.

    Args:
        fn: the function to check (the learner's, or the reference).
        seed: seed of the model's weights and of the batches.
        steps: the number of steps compared.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    import keras

    rng = np.random.default_rng(seed)
    x = rng.random((4, 12, 12, 1)).astype("float32")
    yy, xx = np.mgrid[0:12, 0:12]
    y = np.broadcast_to(((xx > 3) & (yy < 8))[None, ..., None], x.shape).astype("float32")
    reference = _step_model(seed)
    reference.compile(optimizer=keras.optimizers.Adam(1e-2), loss=_step_loss)
    model = _step_model(seed)
    optimizer = keras.optimizers.Adam(1e-2)
    before = [np.array(w) for w in model.weights]
    trainable_before = [np.array(w) for w in model.trainable_weights]
    for step in range(steps):
        expected = float(np.asarray(reference.train_on_batch(x, y)).reshape(-1)[0])
        try:
            got = fn(model, optimizer, _step_loss, x, y)
        except Exception as error:
            fail("train_step", f"step {step + 1}", f"raised {type(error).__name__}: {error}.",
                 "if the gradients came back empty (None), the forward pass and the loss were not recorded "
                 "for differentiation: only what is computed while the operations are recorded can be "
                 "differentiated.", cause=error)
        if got is None:
            fail('train_step', None, "train_step returned None: return the loss of the batch (the value before the update).")
        got = float(np.asarray(got).reshape(-1)[0]) if np.size(got) == 1 else float("nan")
        if step == 0 and not np.isclose(got, expected, rtol=1e-4, atol=1e-5):
            inference_loss = float(np.asarray(_step_loss(y, _step_model(seed)(x, training=False))))
            hint = ("this is the loss of the model in inference mode; during a training step batch "
                    "normalisation must use the batch's own statistics (and dropout be on)"
                    if np.isclose(got, inference_loss, rtol=1e-4, atol=1e-5) else
                    "return the loss of the prediction in training mode measured before the update, with the "
                    "truth as loss_fn's first argument")
            fail('train_step', None, f"step 1: the loss of the batch is {expected:.5f} (Keras's own training step), "
                                     f"train_step returned {got:.5f}. Hint: {hint}.")
    after = [np.array(w) for w in model.weights]
    if all(np.array_equal(a, np.array(b)) for a, b in zip(trainable_before, model.trainable_weights)):
        fail('train_step', None, f"after {steps} steps no trainable weight has changed. Hint: the gradients were "
                                 f"computed but never applied by the optimizer.")
    names = [w.path if hasattr(w, "path") else w.name for w in model.weights]
    for name, w, r, b in zip(names, after, [np.array(v) for v in reference.weights], before):
        if np.allclose(w, r, rtol=1e-3, atol=1e-5):
            continue
        if "moving" in name:
            fail('train_step', None, f"after {steps} steps the batch-norm statistic {name} differs from Keras's training step. "
                                     f"Hint: batch normalisation updates its running averages only when the model "
                                     f"runs in training mode.")
        if np.sum((w - b) * (r - b)) < 0:
            fail('train_step', None, f"after {steps} steps {name} moved away from where Keras's step takes it: the step goes "
                                     f"uphill. Hint: apply the gradients of the loss as they are (the optimizer subtracts "
                                     f"them); do not negate them, and minimise the loss, not the Dice.")
        fail('train_step', None, f"after {steps} steps the weights {name} differ from Keras's own training step "
                                 f"(largest difference {np.max(np.abs(w - r)):.2e}). Hint: one step per call: the gradient of "
                                 f"the loss of the prediction in training mode with respect to the trainable weights, "
                                 f"applied once by the optimizer you are given.")
    ok(f"train_step: matches Keras's own training step: the same loss and weights over {steps} steps.")
