"""Checks for lesson 03 (loss and metrics): Dice, IoU, losses, confusion metrics.

Every check calls the learner's function on named cases (identical, partly overlapping,
disjoint and empty masks, soft predictions, a batch whose samples differ, 3D volumes) and
on random batches, compares with an exact NumPy reference written here (float64), and
raises ``AssertionError`` naming the case, the expected value, the value it got and, where
the wrong value matches a usual mistake (no smoothing, sums over the whole batch, Dice in
place of IoU ...), the fix. It prints one success line when all is well.

The conventions are those of :mod:`helpers.metrics`: inputs ``(batch, ..., channels)``,
per-sample values averaged over the batch, ``smooth=1`` for soft Dice and IoU, a tiny
``smooth=1e-6`` for sensitivity, specificity and precision of thresholded masks.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from helpers.checks._common import call, fail, ok

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["check_dice", "check_hard_dice", "check_dice_loss", "check_iou",
           "check_bce_dice_loss", "check_confusion_metrics", "check_sensitivity",
           "check_specificity", "check_precision", "check_multiclass_dice", "check_metric_verdicts"]

ATOL = 1e-4
HARD_SMOOTH = 1e-6
EPSILON = 1e-7  # Keras' clipping of probabilities in binary cross-entropy

HINT_SMOOTH = ("did you add `smooth` to both the numerator and the denominator? "
               "Two empty masks must score 1, not 0/0")
HINT_BATCH = ("you seem to sum over the whole batch at once: compute one value per sample "
              "(summing over every axis except the batch axis), then average those values "
              "over the batch")
HINT_AXES = ("sum over every axis except the batch axis, whatever the number of axes, "
             "so that 2D images and 3D volumes both work")


# --------------------------------------------------------------------------------------
# NumPy references (float64, independent of helpers.metrics)
# --------------------------------------------------------------------------------------

def _axes(a):
    return tuple(range(1, a.ndim))


def _soft_dice(t, p, smooth=1.0, pooled=False, factor=2.0, num_smooth=True,
               den_smooth=True):
    t, p = np.asarray(t, np.float64), np.asarray(p, np.float64)
    axes = None if pooled else _axes(t)
    inter = np.sum(t * p, axis=axes)
    total = np.sum(t, axis=axes) + np.sum(p, axis=axes)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = ((factor * inter + (smooth if num_smooth else 0.0))
                 / (total + (smooth if den_smooth else 0.0)))
    return float(np.mean(value))


def _soft_iou(t, p, smooth=1.0, pooled=False):
    t, p = np.asarray(t, np.float64), np.asarray(p, np.float64)
    axes = None if pooled else _axes(t)
    inter = np.sum(t * p, axis=axes)
    union = np.sum(t, axis=axes) + np.sum(p, axis=axes) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean((inter + smooth) / (union + smooth)))


def _hard(t, p, threshold=0.5):
    return (np.asarray(t) > 0.5).astype(np.float64), (np.asarray(p) > threshold).astype(np.float64)


def _bce(t, p):
    t = np.asarray(t, np.float64)
    p = np.clip(np.asarray(p, np.float64), EPSILON, 1 - EPSILON)
    return float(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))


def _counts(t, p, threshold=0.5, pooled=False, hard=True):
    if hard:
        t, p = _hard(t, p, threshold)
    else:
        t, p = np.asarray(t, np.float64), np.asarray(p, np.float64)
    axes = None if pooled else _axes(t)
    return {"tp": np.sum(t * p, axis=axes), "fp": np.sum((1 - t) * p, axis=axes),
            "fn": np.sum(t * (1 - p), axis=axes), "tn": np.sum((1 - t) * (1 - p), axis=axes)}


def _ratio(c, num, den, smooth=HARD_SMOOTH):
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean((c[num] + smooth) / (sum(c[k] for k in den) + smooth)))


CONFUSION = {
    "sensitivity": ("tp", ("tp", "fn")),
    "specificity": ("tn", ("tn", "fp")),
    "precision": ("tp", ("tp", "fp")),
}


def _multiclass(t, p, include_background=False, smooth=1.0):
    t, p = np.asarray(t, np.float64), np.asarray(p, np.float64)
    axes = tuple(range(1, t.ndim - 1))
    inter = np.sum(t * p, axis=axes)
    total = np.sum(t, axis=axes) + np.sum(p, axis=axes)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = (2 * inter + smooth) / (total + smooth)      # (batch, C)
    if not include_background:
        scores = scores[:, 1:]
    return float(np.mean(scores))


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------

def _square(size, top, left, side, batch_shape=(1,)):
    mask = np.zeros(batch_shape + (size, size, 1), np.float32)
    mask[..., top:top + side, left:left + side, :] = 1.0
    return mask


def _binary_cases():
    """Named (y_true, y_pred) cases on 8x8 or 16x16 masks."""
    a = _square(8, 1, 1, 4)
    b = _square(8, 3, 3, 4)
    far = _square(8, 5, 5, 3)
    empty = np.zeros_like(a)
    soft = np.where(a > 0, 0.8, 0.1).astype(np.float32)
    soft[0, 1, 1, 0] = 0.3          # one missed foreground pixel (below 0.5)
    soft[0, 6, 6, 0] = 0.7          # one false positive above 0.5
    big = _square(16, 2, 2, 10)
    small_true = _square(16, 12, 12, 2)
    small_pred = _square(16, 0, 13, 2)
    batch_true = np.concatenate([big, small_true])
    batch_pred = np.concatenate([big, small_pred])
    vol_true = np.zeros((2, 4, 8, 8, 1), np.float32)
    vol_true[:, 1:3, 2:6, 2:6] = 1.0
    vol_pred = np.zeros_like(vol_true)
    vol_pred[0, 1:4, 3:7, 2:6] = 0.9
    vol_pred[1, 0:2, 2:6, 2:6] = 0.6
    return [
        ("identical masks", a, a.copy()),
        ("two empty masks", empty, empty.copy()),
        ("partly overlapping squares", a, b),
        ("disjoint masks", a, far),
        ("empty truth, non-empty prediction", empty, b),
        ("non-empty truth, empty prediction", a, empty.copy()),
        ("soft prediction (probabilities)", a, soft),
        ("batch of two samples (one good, one bad)", batch_true, batch_pred),
        ("3D volumes of shape (2, 4, 8, 8, 1)", vol_true, vol_pred),
    ]


def _random_binary(rng, shape=(2, 16, 16, 1)):
    """A batch of random rectangle masks and noisy soft predictions of them."""
    t = np.zeros(shape, np.float32)
    for i in range(shape[0]):
        if rng.random() < 0.15:
            continue                                   # a sample without foreground
        h, w = rng.integers(2, 9, size=2)
        top, left = rng.integers(0, shape[1] - h), rng.integers(0, shape[2] - w)
        t[i, top:top + h, left:left + w] = 1.0
    shift = np.roll(t, tuple(rng.integers(-2, 3, size=2)), axis=(1, 2))
    p = 0.55 * shift + 0.45 * rng.random(shape)
    p = np.clip(p, 0.01, 0.99).astype(np.float32)
    # keep away from the 0.5 threshold so > and >= agree
    p[np.abs(p - 0.5) < 0.01] = 0.49
    return t, p


def _one_hot(labels, n_classes):
    return np.eye(n_classes, dtype=np.float32)[labels]


def _random_labels(rng, shape, n_classes):
    labels = np.zeros(shape, np.int64)
    for i in range(shape[0]):
        for c in range(1, n_classes):
            if rng.random() < 0.2:
                continue                               # class absent in this sample
            h, w = rng.integers(2, 6, size=2)
            top, left = rng.integers(0, shape[1] - h), rng.integers(0, shape[2] - w)
            labels[i, top:top + h, left:left + w] = c
    return labels


def _random_multiclass(rng, shape=(2, 12, 12), n_classes=4):
    labels = _random_labels(rng, shape, n_classes)
    t = _one_hot(labels, n_classes)
    logits = 3.0 * np.roll(t, tuple(rng.integers(-1, 2, size=2)), axis=(1, 2))
    logits = logits + rng.normal(0, 1.0, t.shape)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return t, (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------------------
# Calling the learner's function
# --------------------------------------------------------------------------------------

def _label(fn, name):
    return name or getattr(fn, "__name__", "your function")


def _returns_per_sample(fn):
    """True for the Keras metrics of :mod:`helpers.metrics`, which return one value per
    sample (so that Keras averages exactly over an epoch); a learner's function returns
    the batch mean.
    """
    return getattr(fn, "__module__", None) == "helpers.metrics"


def _call(fn, name, case, y_true, y_pred, scalar=True, **kwargs):
    """Call ``fn`` on Keras tensors; return its value as float (or array). The
    per-sample values of the reference metrics are averaged over the batch first.
    """
    import keras

    out = call(fn, name, f"{case}, y_true and y_pred of shape {tuple(np.shape(y_true))}",
               keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(y_pred), **kwargs)
    try:
        value = np.asarray(keras.ops.convert_to_numpy(out))
    except Exception as error:
        fail(name, case, f"returned {type(out).__name__}, not a tensor or number: {error}", cause=error)
    if value.dtype.kind not in "fiub":
        fail(name, case, f"returned values of dtype {value.dtype}; expected a floating-point number.")
    if scalar:
        if value.shape == np.shape(y_true)[:1] and _returns_per_sample(fn):
            value = np.mean(value.astype(np.float64))
        if value.size != 1:
            fail(name, case, f"expected one number (the mean over the batch), got an array of shape "
                             f"{value.shape}.", "average the per-sample values over the batch.")
        return float(value.reshape(()))
    return value.astype(np.float64)


def _fmt(x):
    return "nan" if isinstance(x, float) and math.isnan(x) else f"{x:.4f}"


def _compare(name, case, expected, got, hint, diagnoses=(), atol=ATOL):
    """Raise AssertionError unless ``got`` is close to ``expected``; ``diagnoses`` is a
    list of (value a usual mistake gives, hint) tried before ``hint``.
    """
    if math.isfinite(got) and abs(got - expected) <= atol:
        return
    reason = hint
    if not math.isfinite(got):
        reason = f"got a non-finite value (0/0 or x/0): {HINT_SMOOTH}"
    else:
        for value, diagnosis in diagnoses:
            if value is not None and math.isfinite(value) and abs(got - value) <= atol \
                    and abs(value - expected) > atol:
                reason = diagnosis
                break
    fail(name, case, f"expected {_fmt(expected)}, got {_fmt(got)}.", reason)


def _check_graph_mode(fn, name, y_true, y_pred):
    """The function must also work on symbolic tensors, as inside model.fit."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")      # no "retracing" warnings: each check traces once
    try:
        tf.function(lambda t, p: fn(t, p))(tf.constant(y_true), tf.constant(y_pred))
    except Exception as error:
        fail(name, None, f"works on concrete arrays but not inside a compiled model "
                         f"({type(error).__name__}: {str(error).strip().splitlines()[-1][:200]}).",
             "compute on the tensors with keras.ops rather than with NumPy or Python `float(...)`, so "
             "that Keras can trace it during model.fit.", cause=error)
    finally:
        logger.setLevel(level)


def _check_gradient(fn, name, y_true, y_pred):
    """A loss needs a finite, non-zero gradient with respect to y_pred."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    p = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        loss = fn(tf.constant(y_true), p)
    if not tf.is_tensor(loss):
        fail(name, None, f"returns a plain {type(loss).__name__}, not a tensor, so it has no gradient and "
                         f"cannot train a model.",
             "compute it on the tensors with keras.ops instead of NumPy or float(...).")
    grad = tape.gradient(loss, p)
    if grad is None or not np.any(np.asarray(grad)):
        fail(name, None, "has no gradient with respect to y_pred, so a model cannot learn from it.",
             "did you threshold the prediction or convert it with NumPy? A loss must stay soft: "
             "it works on the probabilities themselves.")
    if not np.all(np.isfinite(np.asarray(grad))):
        fail(name, None, "has a non-finite gradient (nan or inf).", f"{HINT_SMOOTH}.")


def _case(cases, name):
    """(y_true, y_pred) of the named case."""
    for case, t, p in cases:
        if case.startswith(name):
            return t, p
    raise KeyError(name)


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------

def _dice_diagnoses(t, p):
    return [
        (_soft_dice(t, p, smooth=0.0), "this is Dice without smoothing: " + HINT_SMOOTH),
        (_soft_dice(t, p, num_smooth=False), "`smooth` is missing from the numerator: "
                                             + HINT_SMOOTH),
        (_soft_dice(t, p, den_smooth=False), "`smooth` is missing from the denominator: "
                                             + HINT_SMOOTH),
        (_soft_dice(t, p, pooled=True), HINT_BATCH),
        (_soft_dice(t, p, factor=1.0), "the factor 2 is missing: Dice = 2|A∩B| / (|A| + |B|)"),
        (_soft_iou(t, p), "this is the IoU (Jaccard), not Dice: Dice = 2|A∩B| / (|A| + |B|)"),
        (_soft_dice(*_hard(t, p)), "you thresholded y_pred; the soft Dice uses the "
                                   "probabilities themselves (thresholding is for hard_dice)"),
    ]


def check_dice(fn: Callable[..., Any], random_cases: int = 10, seed: int = 0, name: str | None = None) -> None:
    """Check a soft Dice ``fn(y_true, y_pred)`` (smooth=1, per-sample mean over the batch)
    on named edge cases and ``random_cases`` random batches drawn with ``seed``.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        name: the name the messages use; None: the function's ``__name__``.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    name = _label(fn, name)
    cases = _binary_cases()
    for case, t, p in cases:
        got = _call(fn, name, case, t, p)
        hint = HINT_AXES if t.ndim == 5 else ("compare your value with the smoothed Dice of section 1, computed "
                                              "on the probabilities, one value per sample")
        _compare(name, case, _soft_dice(t, p), got, hint, _dice_diagnoses(t, p))
    rng = np.random.default_rng(seed)
    for i in range(random_cases):
        t, p = _random_binary(rng)
        got = _call(fn, name, f"random batch {i} (seed {seed})", t, p)
        _compare(name, f"random batch {i} (seed {seed})", _soft_dice(t, p), got,
                 "check the per-sample sums and the mean over the batch",
                 _dice_diagnoses(t, p))
    _check_graph_mode(fn, name, *_case(cases, "partly overlapping squares"))
    ok(f"{name}: {len(cases)} named cases and {random_cases} random batches match the "
             f"reference soft Dice.")


def check_hard_dice(fn: Callable[..., Any], random_cases: int = 10, seed: int = 0, threshold: float = 0.5,
                    name: str | None = None) -> None:
    """Check a hard Dice ``fn(y_true, y_pred)``: Dice (smooth=1) of the masks thresholded
    at ``threshold`` (prediction > threshold), per-sample mean over the batch.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        threshold: the threshold the function applies.
        name: the name the messages use; None: the function's ``__name__``.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    name = _label(fn, name)

    def expected(t, p):
        return _soft_dice(*_hard(t, p, threshold))

    def diagnoses(t, p):
        ht, hp = _hard(t, p, threshold)
        return [(_soft_dice(t, p), "this is the soft Dice: threshold the prediction first, "
                                   "into a mask of 0.0 and 1.0"),
                (_soft_dice(ht, hp, smooth=0.0), "this is Dice without smoothing: "
                                                 + HINT_SMOOTH),
                (_soft_dice(ht, hp, pooled=True), HINT_BATCH),
                (_soft_dice(ht, 1 - hp), "the prediction is inverted: foreground is "
                                         "where the prediction is above the threshold")]

    cases = _binary_cases()
    for case, t, p in cases:
        _compare(name, case, expected(t, p), _call(fn, name, case, t, p),
                 "threshold y_pred, then compute the Dice with smoothing per sample",
                 diagnoses(t, p))
    rng = np.random.default_rng(seed)
    for i in range(random_cases):
        t, p = _random_binary(rng)
        case = f"random batch {i} (seed {seed})"
        _compare(name, case, expected(t, p), _call(fn, name, case, t, p),
                 "threshold y_pred, then compute the Dice with smoothing per sample",
                 diagnoses(t, p))
    # the threshold argument must be used: the same soft predictions at other thresholds
    for other in (0.25, 0.75):
        for case, t, p in cases + [(f"random batch (seed {seed + 100})", *_random_binary(np.random.default_rng(seed + 100)))]:
            want = _soft_dice(*_hard(t, p, other))
            got = _call(fn, name, f"{case}, threshold={other}", t, p, threshold=other)
            if abs(float(got) - want) > 1e-4:
                at_default = _soft_dice(*_hard(t, p, threshold))
                hint = ("you ignore the threshold argument: the prediction is foreground where it is "
                        "above `threshold`, not above 0.5"
                        if abs(float(got) - at_default) < 1e-4 else
                        "threshold the prediction at the `threshold` argument (the truth at 0.5)")
                fail(name, f"{case}, threshold={other}", f"expected {want:.4f}, got {float(got):.4f}.",
                     f"{hint}.")
    _check_graph_mode(fn, name, *_case(cases, "soft prediction"))
    ok(f"{name}: {len(cases)} named cases and {random_cases} random batches match the "
             f"reference hard Dice (also at thresholds 0.25 and 0.75).")


def check_dice_loss(fn: Callable[..., Any], random_cases: int = 10, seed: int = 0, name: str | None = None) -> None:
    """Check a Dice loss ``fn(y_true, y_pred)`` = 1 - soft Dice (smooth=1): values,
    range [0, 1], a finite gradient and use inside a compiled model.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        name: the name the messages use; None: the function's ``__name__``.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    name = _label(fn, name)

    def diagnoses(t, p):
        return [(_soft_dice(t, p), "this is the Dice coefficient itself; a loss must go "
                                   "down as overlap improves: return 1 - dice"),
                (-_soft_dice(t, p), "return 1 - dice rather than -dice, so the loss is in "
                                    "[0, 1] and 0 means perfect"),
                (1 - _soft_dice(t, p, pooled=True), HINT_BATCH)] + [
                    (1 - value, hint) for value, hint in _dice_diagnoses(t, p)]

    cases = _binary_cases()
    rng = np.random.default_rng(seed)
    randoms = [_random_binary(rng) for _ in range(random_cases)]
    named = [(case, t, p) for case, t, p in cases] + [
        (f"random batch {i} (seed {seed})", t, p) for i, (t, p) in enumerate(randoms)]
    for case, t, p in named:
        got = _call(fn, name, case, t, p)
        _compare(name, case, 1 - _soft_dice(t, p), got,
                 "the Dice loss is 1 - soft Dice (with smoothing, per-sample mean)",
                 diagnoses(t, p))
        if not -ATOL <= got <= 1 + ATOL:
            fail(name, case, f"the loss is {got:.4f}, outside [0, 1].")
    _check_gradient(fn, name, *_case(cases, "soft prediction"))
    _check_graph_mode(fn, name, *_case(cases, "partly overlapping squares"))
    ok(f"{name}: {len(named)} cases match 1 - Dice, in [0, 1], with a finite gradient.")


def check_iou(fn: Callable[..., Any], random_cases: int = 10, seed: int = 0, name: str | None = None) -> None:
    """Check a soft IoU / Jaccard ``fn(y_true, y_pred)``: per sample
    (|A∩B| + 1) / (|A∪B| + 1), averaged over the batch.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        name: the name the messages use; None: the function's ``__name__``.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    name = _label(fn, name)

    def diagnoses(t, p):
        return [(_soft_dice(t, p), "this is the Dice coefficient; IoU divides the "
                                   "intersection by the union, which counts the overlap once"),
                (_soft_iou(t, p, smooth=0.0), "this is IoU without smoothing: add `smooth` to "
                                              "numerator and denominator"),
                (_soft_iou(t, p, pooled=True), HINT_BATCH),
                (_soft_iou(*_hard(t, p)), "you thresholded y_pred; the soft IoU uses the "
                                          "probabilities themselves")]

    cases = _binary_cases()
    rng = np.random.default_rng(seed)
    named = cases + [(f"random batch {i} (seed {seed})", *_random_binary(rng))
                     for i in range(random_cases)]
    for case, t, p in named:
        hint = HINT_AXES if t.ndim == 5 else \
            "the soft IoU of section 3: intersection over union, `smooth` added to both, one value per sample"
        _compare(name, case, _soft_iou(t, p), _call(fn, name, case, t, p), hint,
                 diagnoses(t, p))
    _check_graph_mode(fn, name, *_case(cases, "partly overlapping squares"))
    ok(f"{name}: {len(named)} cases match the reference IoU.")


def check_bce_dice_loss(fn: Callable[..., Any], random_cases: int = 10, seed: int = 0, name: str | None = None) -> None:
    """Check ``fn(y_true, y_pred)`` = mean binary cross-entropy + (1 - soft Dice).

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        name: the name the messages use; None: the function's ``__name__``.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    name = _label(fn, name)

    def expected(t, p):
        return _bce(t, p) + 1 - _soft_dice(t, p)

    def diagnoses(t, p):
        bce, dice = _bce(t, p), _soft_dice(t, p)
        return [(bce, "only the cross-entropy is there: add the Dice loss (1 - dice)"),
                (1 - dice, "only the Dice loss is there: add the binary cross-entropy"),
                (bce + dice, "add the Dice *loss* (1 - dice), not the Dice coefficient"),
                (bce - dice, "use + (1 - dice): the Dice part must be a loss in [0, 1]"),
                (bce + 1 - _soft_dice(t, p, pooled=True), HINT_BATCH),
                (bce * t[0].size + 1 - dice, "average the cross-entropy over the pixels, "
                                             "do not sum it")]

    rng = np.random.default_rng(seed)
    cases = []
    for case, t, p in _binary_cases():
        # keep probabilities off exactly 0 and 1: cross-entropy there depends on clipping
        cases.append((case, t, np.clip(p, 0.02, 0.98).astype(np.float32)))
    cases += [(f"random batch {i} (seed {seed})", *_random_binary(rng))
              for i in range(random_cases)]
    for case, t, p in cases:
        got = _call(fn, name, case, t, p)
        _compare(name, case, expected(t, p), got,
                 "BCE (mean over all pixels) + 1 - soft Dice (per-sample mean)",
                 diagnoses(t, p), atol=5e-4)
    # a confident, perfect prediction (exact 0 and 1): log(0) must not turn the loss into nan
    t = _square(8, 1, 1, 4)
    got = _call(fn, name, "a perfect prediction with exact 0 and 1", t, t.copy())
    if not np.isfinite(got) or abs(got) > 1e-3:
        fail(name, "a perfect prediction with exact 0 and 1", f"expected about 0.0000, got {got:.4f}.",
             "log(0) is -inf and 0 * log(0) is nan: keep the probabilities a hair away from exactly 0 "
             "and 1 before the logarithm (Keras's own cross-entropy does so).")
    _check_gradient(fn, name, *_case(cases, "soft prediction"))
    _check_graph_mode(fn, name, *_case(cases, "partly overlapping squares"))
    ok(f"{name}: {len(cases) + 1} cases match BCE + (1 - Dice), with a finite gradient.")


def _confusion_cases():
    a = _square(8, 1, 1, 4)
    b = _square(8, 3, 3, 4)
    soft = np.where(a > 0, 0.8, 0.1).astype(np.float32)
    soft[0, 1, 1:3, 0] = 0.3          # two missed foreground pixels
    soft[0, 6, 5:8, 0] = 0.7          # three false positives
    empty = np.zeros_like(a)
    full = np.ones_like(a)
    batch_t = np.concatenate([a, _square(8, 0, 0, 2)])
    batch_p = np.concatenate([np.where(a > 0, 0.9, 0.2), np.where(b > 0, 0.9, 0.2)])
    return [
        ("partly overlapping squares", a, b),
        ("soft prediction: 2 missed pixels, 3 false positives", a, soft),
        ("identical masks", a, a.copy()),
        ("no foreground in the truth", empty, b),
        ("empty prediction", a, empty.copy()),
        ("two empty masks", empty, empty.copy()),
        ("all foreground in truth and prediction", full, full.copy()),
        ("batch of two samples", batch_t, batch_p.astype(np.float32)),
    ]


def _check_counts(fn, cases):
    """``fn(y_true, y_pred, threshold)`` returns the per-sample (tp, fp, fn, tn) of the
    thresholded masks, each of shape (batch,).
    """
    import keras

    name = _label(fn, None)
    for case, t, p in cases:
        for threshold in (0.5, 0.25):
            label = f"{case}, threshold={threshold}"
            out = call(fn, name, f"{label}, y_true and y_pred of shape {tuple(np.shape(t))}",
                       keras.ops.convert_to_tensor(t), keras.ops.convert_to_tensor(p), threshold)
            if not isinstance(out, (tuple, list)) or len(out) != 4:
                fail(name, label, f"expected the four counts (tp, fp, fn, tn), got {type(out).__name__}"
                                  f"{f' of length {len(out)}' if isinstance(out, (tuple, list)) else ''}.")
            want = _counts(t, p, threshold)
            for key, value in zip(("tp", "fp", "fn", "tn"), out):
                got = np.asarray(keras.ops.convert_to_numpy(value), np.float64)
                if got.shape != want[key].shape:
                    fail(name, label, f"{key} has shape {got.shape}; expected one count per sample, shape "
                                      f"{want[key].shape}.", "sum over every axis except the batch axis.")
                if not np.allclose(got, want[key], atol=1e-3):
                    soft = _counts(t, p, hard=False)[key]
                    hint = ("count on the thresholded masks (prediction above the threshold, truth above "
                            "0.5), not on the probabilities" if np.allclose(got, soft, atol=1e-3) else
                            "TP: 1 in both masks, FP: predicted but not true, FN: true but not predicted, "
                            "TN: 0 in both masks")
                    fail(name, label, f"{key} expected {want[key].tolist()}, got {got.tolist()}.", hint)


def check_confusion_metrics(sensitivity: Callable[..., Any] | None = None,
                            specificity: Callable[..., Any] | None = None, precision: Callable[..., Any] | None = None,
                            random_cases: int = 10, seed: int = 0,
                            counts: Callable[..., Any] | None = None) -> None:
    """Check any of ``sensitivity``, ``specificity``, ``precision`` (functions
    ``fn(y_true, y_pred)``): prediction thresholded at 0.5, ratio of counts per sample
    with a tiny smooth (1e-6) in numerator and denominator, mean over the batch; and, when
    given, ``counts(y_true, y_pred, threshold)``: the per-sample ``(tp, fp, fn, tn)``.

    Args:
        sensitivity: a sensitivity function, or None.
        specificity: a specificity function, or None.
        precision: a precision function, or None.
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        counts: a ``confusion_counts`` function, or None.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
        ValueError: none of the three functions is given.
    """
    functions = {"sensitivity": sensitivity, "specificity": specificity,
                 "precision": precision}
    functions = {key: fn for key, fn in functions.items() if fn is not None}
    if not functions:
        raise ValueError("Pass at least one of sensitivity=, specificity=, precision=.")
    formulas = {"sensitivity": "TP / (TP + FN)", "specificity": "TN / (TN + FP)",
                "precision": "TP / (TP + FP)"}
    rng = np.random.default_rng(seed)
    cases = _confusion_cases() + [(f"random batch {i} (seed {seed})", *_random_binary(rng))
                                  for i in range(random_cases)]
    if counts is not None:
        _check_counts(counts, cases)
    for key, fn in functions.items():
        name = _label(fn, None)
        num, den = CONFUSION[key]
        for case, t, p in cases:
            c = _counts(t, p)
            expected = _ratio(c, num, den)
            with np.errstate(divide="ignore", invalid="ignore"):
                denominator_only = float(np.mean(c[num] / (sum(c[k] for k in den) + HARD_SMOOTH)))
            diagnoses = [(denominator_only, f"`smooth` is only in the denominator: add it to the numerator "
                                            f"too, so that {formulas[key]} is 1.0 when both counts are 0")]
            diagnoses += [(_ratio(c, *CONFUSION[other]),
                          f"this is the {other} ({formulas[other]}); {key} is {formulas[key]}")
                         for other in CONFUSION if other != key]
            diagnoses += [
                (_ratio(_counts(t, p, hard=False), num, den),
                 "count on the thresholded masks (prediction above the threshold, truth above 0.5), "
                 "not on the probabilities"),
                (_ratio(c, num, den, smooth=0.0), f"add a tiny `smooth` to numerator and "
                                                  f"denominator of {formulas[key]}"),
                (_ratio(_counts(t, p, pooled=True), num, den), HINT_BATCH),
            ]
            if case in ("no foreground in the truth", "empty prediction", "two empty masks",
                        "all foreground in truth and prediction"):
                hint = (f"when the denominator of {formulas[key]} is 0 the value should be "
                        f"1.0: add `smooth` to numerator and denominator")
            else:
                hint = f"{key} = {formulas[key]} on the thresholded masks, per sample"
            _compare(name, case, expected, _call(fn, name, case, t, p), hint, diagnoses)
        _check_graph_mode(fn, name, *_case(cases, "partly overlapping squares"))
    ok(f"{', '.join(([_label(counts, None)] if counts is not None else []) + list(functions))}: "
       f"{len(cases)} cases each match the reference.")


def check_sensitivity(fn: Callable[..., Any], random_cases: int = 10, seed: int = 0) -> None:
    """Check a sensitivity (recall) function; see :func:`check_confusion_metrics`.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    check_confusion_metrics(sensitivity=fn, random_cases=random_cases, seed=seed)


def check_specificity(fn: Callable[..., Any], random_cases: int = 10, seed: int = 0) -> None:
    """Check a specificity function; see :func:`check_confusion_metrics`.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    check_confusion_metrics(specificity=fn, random_cases=random_cases, seed=seed)


def check_precision(fn: Callable[..., Any], random_cases: int = 10, seed: int = 0) -> None:
    """Check a precision function; see :func:`check_confusion_metrics`.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    check_confusion_metrics(precision=fn, random_cases=random_cases, seed=seed)


def check_multiclass_dice(fn: Callable[..., Any], random_cases: int = 10, seed: int = 0,
                          name: str | None = None) -> None:
    """Check ``fn(y_true_onehot, y_pred_softmax, include_background=False)``: per sample and
    class soft Dice (smooth=1) over the spatial axes, mean over the batch and the classes
    (class 0 left out unless ``include_background=True``).

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        name: the name the messages use; None: the function's ``__name__``.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    name = _label(fn, name)
    labels = np.zeros((1, 8, 8), np.int64)
    labels[0, 1:4, 1:4] = 1
    labels[0, 4:7, 3:7] = 2
    shifted = np.roll(labels, 1, axis=2)
    t3 = _one_hot(labels, 3)
    only_bg = _one_hot(np.zeros((1, 8, 8), np.int64), 3)
    two = np.concatenate([labels, np.where(labels == 2, 0, labels)])
    cases = [
        ("identical one-hot maps", t3, t3.copy()),
        ("prediction shifted by one pixel", t3, _one_hot(shifted, 3)),
        ("class 2 absent from truth and prediction",
         _one_hot(np.where(labels == 2, 0, labels), 3),
         _one_hot(np.where(shifted == 2, 0, shifted), 3)),
        ("background only, predicted right", only_bg, only_bg.copy()),
        ("softmax probabilities", t3, (0.7 * t3 + 0.1).astype(np.float32)),
        ("batch of two samples", _one_hot(two, 3), _one_hot(np.roll(two, 1, axis=1), 3)),
    ]
    rng = np.random.default_rng(seed)
    cases += [(f"random batch {i} (seed {seed})", *_random_multiclass(rng))
              for i in range(random_cases)]
    for case, t, p in cases:
        for include_background in (False, True):
            expected = _multiclass(t, p, include_background)
            other = _multiclass(t, p, not include_background)
            flat = _soft_dice(t, p)
            diagnoses = [
                (other, "class 0 (background) must be " + (
                    "left out of the mean when include_background is False"
                    if not include_background else
                    "included when include_background is True")),
                (flat, "this is one Dice over all channels together; compute the Dice of "
                       "each class (sum over the spatial axes only) and average them"),
                (_multiclass(t, p, include_background, smooth=0.0),
                 "add `smooth` to numerator and denominator of each class's Dice"),
            ]
            got = _call(fn, name, f"{case}, include_background={include_background}", t, p,
                        include_background=include_background)
            _compare(name, f"{case}, include_background={include_background}", expected, got,
                     "the soft Dice of each class of each sample, summed over the pixels only; then "
                     "the mean over samples and classes", diagnoses)
    _check_graph_mode(fn, name, *_case(cases, "prediction shifted"))
    ok(f"{name}: {len(cases)} cases match the reference multi-class Dice "
             f"(with and without background).")


# --------------------------------------------------------------------------- Dice or HD95?

def _exact_dice(truth: np.ndarray, prediction: np.ndarray) -> float:
    truth, prediction = truth.astype(bool), prediction.astype(bool)
    total = truth.sum() + prediction.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(truth, prediction).sum() / total


def check_metric_verdicts(better_by_dice: Any, better_by_hd95: Any, truth: ArrayLike, predictions: dict) -> None:
    """Check which of two predictions each metric prefers: the name of the prediction with
    the higher Dice, and the name of the one with the lower HD95 (a distance: smaller is
    better), both recomputed here from the masks.

    Args:
        better_by_dice: the learner's choice by Dice, a key of ``predictions`` (``"A"``).
        better_by_hd95: the learner's choice by HD95, a key of ``predictions``.
        truth: the true binary mask, 2D ``(H, W)``.
        predictions: two predicted masks of the same shape, by name (``{"A": ..., "B": ...}``).

    Raises:
        AssertionError: a choice is not one of the names, or is not the prediction the metric
            prefers; the hint names the direction of the metric, not the answer.
        ValueError: ``predictions`` does not hold exactly two masks, or they differ in Dice
            or HD95 by too little to tell them apart.
    """
    from helpers import metrics

    names = sorted(predictions)
    if len(names) != 2:
        raise ValueError(f"check_metric_verdicts compares two predictions, got {names}.")
    truth = np.asarray(truth).astype(bool)
    dice = {name: _exact_dice(truth, np.asarray(predictions[name])) for name in names}
    hd95 = {name: metrics.hausdorff_distance(truth, np.asarray(predictions[name]).astype(bool)) for name in names}
    if abs(dice[names[0]] - dice[names[1]]) < 1e-3 or abs(hd95[names[0]] - hd95[names[1]]) < 0.5:
        raise ValueError("the two predictions are too close in Dice or HD95 for a verdict")
    for label, choice in (("BETTER_BY_DICE", better_by_dice), ("BETTER_BY_HD95", better_by_hd95)):
        if choice is Ellipsis or choice is None:
            fail(label, None, f"{label} is not set yet: replace the ... by {' or '.join(map(repr, names))}.")
        if not isinstance(choice, str) or choice not in names:
            fail(label, None, f"{label} should be the name of a prediction, {' or '.join(map(repr, names))}, "
                              f"got {choice!r}.",
                 "Compute the metric for each prediction, then write the name of the one it prefers.")
    if better_by_dice != max(names, key=lambda n: dice[n]):
        fail("BETTER_BY_DICE", None, f"{better_by_dice!r} is not the prediction with the better Dice.",
             "Dice measures overlap: 1 is a perfect match, 0 no overlap, so the larger value wins. "
             "Did you compute it on the binary masks, prediction against the truth `mask`?")
    if better_by_hd95 != min(names, key=lambda n: hd95[n]):
        fail("BETTER_BY_HD95", None, f"{better_by_hd95!r} is not the prediction with the better HD95.",
             "HD95 is a distance between the two outlines, in pixels here: 0 is a perfect match, so the "
             "smaller value wins. Check that you took the 95th percentile of the outline distances, "
             "not their mean or maximum.")
    ok(f"BETTER_BY_DICE = {better_by_dice!r}, BETTER_BY_HD95 = {better_by_hd95!r}: the predictions each metric prefers.")
