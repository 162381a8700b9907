"""Checks for lesson 08 (brain tumour, multi-class): labels, one-hot, loss, BraTS scores.

Each check calls the learner's function on named cases and random label volumes, compares
with a NumPy reference written here, and raises ``AssertionError`` naming the case, the
expected value, the value it got and a hint at the usual mistake. It prints one success
line (``✓ ...``) when all is well.

Conventions of the lesson: BraTS labels 0 (background), 1 (necrotic core), 2 (oedema),
4 (enhancing tumour) are remapped to consecutive classes 0, 1, 2, 3; one-hot arrays have
the classes on the last axis; regions are WT = {1, 2, 3}, TC = {1, 3}, ET = {3} (after the
remap); Dice of a region empty in both volumes is 1.0.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from helpers.checks._common import fail, ok

__all__ = ["check_remap_labels", "check_one_hot", "check_cce_dice_loss", "check_weighted_cce_dice_loss",
           "check_loss_choice", "best_loss_choice", "check_region_dice", "check_per_class_scores"]

REGIONS = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
SCORE_NAMES = ("precision", "sensitivity", "specificity")


def _random_brats(rng, shape, labels=(0, 1, 2, 4)) -> np.ndarray:
    """Blocky random label volume (so regions are not just salt and pepper)."""
    coarse = rng.choice(np.asarray(labels, dtype=np.uint8), size=tuple((s + 1) // 2 for s in shape))
    volume = coarse
    for axis, size in enumerate(shape):
        volume = np.repeat(volume, 2, axis=axis)
        volume = np.take(volume, np.arange(size), axis=axis)
    return volume.astype(np.uint8)


def _to_numpy(value, name: str) -> np.ndarray:
    if value is None:
        fail(name, None, "returned None.", "did you forget `return`?")
    try:
        return np.asarray(value)
    except Exception as error:  # a tensor that cannot be converted, a list of odd things
        fail(name, None, f"returned {type(value).__name__}, which is not an array ({error}).", cause=error)


# --------------------------------------------------------------------------- remap 4 -> 3

def _remap_reference(labels):
    out = np.asarray(labels).copy()
    out[out == 4] = 3
    return out


def check_remap_labels(fn: Callable[..., Any], random_cases: int = 3, seed: int = 0) -> None:
    """Check ``fn(seg) -> labels`` maps BraTS labels {0, 1, 2, 4} to {0, 1, 2, 3}, keeping
    the shape, leaving 0, 1, 2 alone and not changing its input in place.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    rng = np.random.default_rng(seed)
    cases = {"the values 0, 1, 2, 4": np.array([0, 1, 2, 4], dtype=np.uint8),
             "a 3D volume (4, 5, 6)": _random_brats(rng, (4, 5, 6)),
             "a volume without enhancing tumour": np.array([[0, 1], [2, 2]], dtype=np.uint8)}
    for k in range(random_cases):
        cases[f"random volume #{k + 1}"] = _random_brats(rng, tuple(rng.integers(3, 12, size=3)))
    for name, seg in cases.items():
        original = seg.copy()
        got = _to_numpy(fn(seg), "remap_labels")
        if not np.array_equal(seg, original):
            fail("remap_labels", name, "changed its input in place.",
                 "work on a copy (`labels = seg.copy()`) so the volume read from disk keeps its BraTS labels.")
        expected = _remap_reference(seg)
        if got.shape != expected.shape:
            fail('remap_labels', name, f"expected shape {expected.shape}, got "
                                       f"{got.shape}. Keep the shape; only the values change.")
        if not np.array_equal(got, expected):
            values = sorted(np.unique(got).tolist())
            hint = ("label 4 should become 3" if 4 in values else
                    "only 4 changes (to 3); 0, 1 and 2 stay as they are")
            fail('remap_labels', name, f"expected values "
                                       f"{sorted(np.unique(expected).tolist())}, got {values}; {hint}.")
        if not np.issubdtype(got.dtype, np.integer):
            fail("remap_labels", name, f"returned dtype {got.dtype}: labels are integers.",
                 "keep the input's dtype, e.g. uint8.")
    ok("remap_labels maps 4 -> 3 and leaves 0, 1, 2 and the input alone.")


# --------------------------------------------------------------------------- one-hot

def check_one_hot(fn: Callable[..., Any], n_classes: int = 4, random_cases: int = 3, seed: int = 0) -> None:
    """Check ``fn(labels, n_classes) -> float32 (..., n_classes)`` one-hot encoding of an
    integer label array of any shape.

    Args:
        fn: the function to check (the learner's, or the reference).
        n_classes: the number of classes passed to ``fn``.
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    rng = np.random.default_rng(seed)
    cases = {f"labels {list(range(n_classes))}": np.arange(n_classes, dtype=np.uint8),
             "a 2D slice (3, 5)": rng.integers(0, n_classes, size=(3, 5)).astype(np.uint8),
             "a batch of slices (2, 4, 4)": rng.integers(0, n_classes, size=(2, 4, 4)).astype(np.uint8),
             "only background": np.zeros((3, 3), dtype=np.uint8)}
    for k in range(random_cases):
        shape = tuple(rng.integers(1, 9, size=int(rng.integers(1, 4))))
        cases[f"random labels #{k + 1} {shape}"] = rng.integers(0, n_classes, size=shape).astype(np.uint8)
    for name, labels in cases.items():
        got = _to_numpy(fn(labels, n_classes), "one_hot")
        expected = np.eye(n_classes, dtype=np.float32)[labels]
        if got.shape != expected.shape:
            hint = ("the classes go on a new last axis" if got.size == expected.size else
                    f"there are n_classes = {n_classes} channels, one per class, even if a class is absent")
            fail('one_hot', name, f"expected shape {expected.shape}, got "
                                  f"{got.shape}; {hint}.")
        if got.dtype != np.float32:
            fail('one_hot', name, f"expected dtype float32 (what Keras "
                                  f"trains on), got {got.dtype}. Add .astype('float32').")
        if not np.array_equal(got, expected):
            wrong = np.argwhere(np.any(got != expected, axis=-1))[0]
            where = tuple(int(i) for i in wrong)
            fail('one_hot', name, f"at position {where} label "
                                  f"{int(labels[where])} should give {expected[where].tolist()}, got "
                                  f"{got[where].tolist()}. Channel c is 1 exactly where labels == c.")
    ok(f"one_hot gives float32 arrays with {n_classes} channels, exactly one 1 per pixel.")


# --------------------------------------------------------------------------- loss

def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _cce_dice_reference(y_true, y_pred, pooled: bool, smooth: float = 1.0):
    t, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    cce = np.mean(-np.sum(t * np.log(np.clip(p, 1e-7, 1.0)), axis=-1))
    axes = tuple(range(0 if pooled else 1, t.ndim - 1))
    inter = np.sum(t * p, axis=axes)
    total = np.sum(t, axis=axes) + np.sum(p, axis=axes)
    dice = (2 * inter + smooth) / (total + smooth)           # (C,) or (batch, C)
    return float(cce + 1.0 - np.mean(dice[..., 1:]))


def _loss_value(fn, y_true, y_pred, name):
    import keras

    got = fn(keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(y_pred))
    got = np.asarray(keras.ops.convert_to_numpy(got), dtype=np.float64)
    if got.size != 1:
        fail('cce_dice_loss', name, f"expected one number (a scalar loss), got "
                                    f"an array of shape {got.shape}. Take the mean of the "
                                    f"cross-entropy over pixels and of Dice over classes.")
    return float(got.reshape(()))


def check_cce_dice_loss(fn: Callable[..., Any], random_cases: int = 3, seed: int = 0, atol: float = 2e-4) -> None:
    """Check ``fn(y_true, y_pred) -> scalar``: mean categorical cross-entropy plus
    ``1 - mean soft Dice`` over the foreground classes 1..C-1 (smooth = 1), for one-hot
    ``y_true`` and softmax ``y_pred`` of shape ``(batch, H, W, C)``. Dice per image and class
    averaged over the batch, or pooled over the batch, are both accepted.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        atol: absolute tolerance of the comparison with the reference.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    rng = np.random.default_rng(seed)
    cases = {}
    labels = rng.integers(0, 4, size=(1, 6, 6))
    onehot = np.eye(4, dtype=np.float32)[labels]
    # the uniform case first: there cross-entropy (log 4) and Dice loss differ clearly, so the
    # hint can tell which part is missing
    cases["a uniform prediction (1, 6, 6, 4)"] = (onehot, np.full_like(onehot, 0.25))
    cases["a perfect prediction (1, 6, 6, 4)"] = (onehot, np.clip(onehot, 1e-4, 1.0) / np.clip(onehot, 1e-4, 1.0).sum(-1, keepdims=True))
    # a confident network outputs exact 0s and 1s in float32: the loss must stay finite there
    cases["an exact one-hot prediction (1, 6, 6, 4), exact zeros in y_pred"] = (onehot, onehot.copy())
    for k in range(random_cases):
        batch = int(rng.integers(1, 4))
        labels = rng.integers(0, 4, size=(batch, 8, 8))
        y_true = np.eye(4, dtype=np.float32)[labels]
        y_pred = _softmax(rng.normal(0, 2, size=y_true.shape) + 2 * y_true).astype(np.float32)
        cases[f"random batch #{k + 1} ({batch}, 8, 8, 4)"] = (y_true, y_pred)
    perfect = None
    for name, (y_true, y_pred) in cases.items():
        got = _loss_value(fn, y_true, y_pred, name)
        options = {_cce_dice_reference(y_true, y_pred, pooled) for pooled in (False, True)}
        if not any(abs(got - value) <= atol for value in options):
            expected = _cce_dice_reference(y_true, y_pred, False)
            t, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
            cce = float(np.mean(-np.sum(t * np.log(np.clip(p, 1e-7, 1)), axis=-1)))
            hint = ("the loss is the cross-entropy averaged over the pixels plus one minus the soft Dice averaged "
                    "over the images and the tumour classes; try each term alone on this case")
            if not np.isfinite(got):
                hint = (f"{got} where y_pred holds exact 0s: the log of 0 is -inf, and 0 times -inf is nan. "
                        "The cross-entropy must stay finite for any prediction a softmax can round to")
            elif abs(got - cce) < atol:
                hint = "you seem to return only the cross-entropy: the Dice loss term is missing"
            elif abs(got - (expected - cce)) < atol:
                hint = "you seem to return only the Dice loss: the cross-entropy term is missing"
            else:
                with_bg = cce + 1.0 - float(np.mean((2 * np.sum(t * p, axis=(1, 2)) + 1)
                                                    / (np.sum(t + p, axis=(1, 2)) + 1)))
                if abs(got - with_bg) < atol:
                    hint = "you seem to include the background (class 0) in the Dice: its mean runs over the tumour classes only"
            fail('cce_dice_loss', name, f"expected {expected:.4f}, got {got:.4f}; {hint}.")
        if name.startswith("a perfect"):
            perfect = got
    if perfect is not None and perfect > 0.01:
        fail("cce_dice_loss", "a perfect prediction", f"should be close to 0, got {perfect:.4f}.")
    _check_loss_in_graph(fn, *cases["a uniform prediction (1, 6, 6, 4)"])
    ok("cce_dice_loss = cross-entropy + (1 - multi-class Dice), as the reference.")


def _weighted_reference(y_true, y_pred, weights, smooth: float = 1.0, *, pooled: bool = False,
                        part: str = "both") -> float:
    t, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    w = (t * np.asarray(weights, np.float64)).sum(-1)
    ce = -(t * np.log(np.clip(p, 1e-7, 1.0))).sum(-1)
    cce = float((w * ce).sum() / w.sum())
    axes = tuple(range(0 if pooled else 1, t.ndim - 1))
    dice = (2 * np.sum(t * p, axis=axes) + smooth) / (np.sum(t, axis=axes) + np.sum(p, axis=axes) + smooth)
    dice_loss = float(1.0 - np.mean(dice[..., 1:]))
    return {"both": cce + dice_loss, "cce": cce, "dice": dice_loss}[part]


def check_weighted_cce_dice_loss(fn: Callable[..., Any], random_cases: int = 3, seed: int = 0,
                                 atol: float = 2e-4) -> None:
    """Check ``fn(y_true, y_pred, class_weights) -> scalar``: the class-weighted cross-entropy
    ``sum(w * ce) / sum(w)`` over every pixel of the batch, where ``ce`` is a pixel's
    categorical cross-entropy and ``w`` the weight of its *true* class, plus the unweighted
    Dice loss of ``cce_dice_loss`` (classes 1..C-1). Inputs are asymmetric (H != W, batches
    of several images, distinct weights per class); the loss must not change when all
    weights are multiplied by one number, must equal ``cce_dice_loss`` for equal weights,
    and must run traced in a graph with a finite gradient, as inside ``model.fit``.

    Raises:
        AssertionError: naming the case, expected and got values and the usual mistake.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        atol: absolute tolerance of the comparison with the reference.
    """
    name = "weighted_cce_dice_loss"
    rng = np.random.default_rng(seed)
    weights = np.array([1.0, 8.0, 2.0, 3.5], np.float32)
    cases = {}
    labels = np.zeros((2, 5, 7), int)
    labels[0, 1:3, 2:6], labels[0, 3, 1] = 2, 1
    labels[1, 2:4, 0:3], labels[1, 0, 6] = 3, 1
    y_true = np.eye(4, dtype=np.float32)[labels]
    y_pred = _softmax(rng.normal(0, 1.5, size=y_true.shape) + 1.5 * y_true).astype(np.float32)
    cases["a batch (2, 5, 7, 4) with a rare class 1, weights [1, 8, 2, 3.5]"] = (y_true, y_pred, weights)
    for k in range(random_cases):
        batch = int(rng.integers(1, 4))
        labels = rng.choice(4, size=(batch, 6, 9), p=[0.7, 0.05, 0.15, 0.1])
        y_true = np.eye(4, dtype=np.float32)[labels]
        y_pred = _softmax(rng.normal(0, 2, size=y_true.shape) + 2 * y_true).astype(np.float32)
        random_weights = rng.uniform(0.5, 12.0, size=4).astype(np.float32)
        cases[f"random batch #{k + 1} ({batch}, 6, 9, 4), weights {np.round(random_weights, 1).tolist()}"] = (
            y_true, y_pred, random_weights)
    exact = np.eye(4, dtype=np.float32)[np.arange(24).reshape(1, 4, 6) % 4]
    cases["an exact one-hot prediction (1, 4, 6, 4), exact zeros in y_pred"] = (exact, exact.copy(), weights)
    def value(y_true, y_pred, w, case):
        return call_loss(fn, name, case, y_true, y_pred, w)

    for case, (y_true, y_pred, w) in cases.items():
        got = value(y_true, y_pred, w, case)
        options = [_weighted_reference(y_true, y_pred, w, pooled=pooled) for pooled in (False, True)]
        if any(abs(got - option) <= atol for option in options):
            continue
        expected = options[0]
        t, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
        dice_loss = _weighted_reference(t, p, w, part="dice")
        ce = -(t * np.log(np.clip(p, 1e-7, 1.0))).sum(-1)
        w_true = (t * w).sum(-1)
        w_pred = (p * w).sum(-1)
        guesses = {
            "class_weights have no effect on the loss: each pixel's cross-entropy should count with the weight "
            "of its true class": _cce_dice_reference(t, p, False),
            "you seem to take the plain mean of weight times cross-entropy, which is not a weighted mean: a "
            "weighted mean divides by the total weight, so that only the ratios of the weights matter":
                float((w_true * ce).mean()) + dice_loss,
            "you seem to weigh the pixels by the predicted class; the weight belongs to the true class, whose "
            "error it should make more costly": float((w_pred * ce).sum() / w_pred.sum()) + dice_loss,
            "you seem to divide by the sum of class_weights; the total weight is that of the pixel weights "
            "of the batch, every pixel counted with the weight of its own class":
                float((w_true * ce).sum() / w.sum()) + dice_loss,
            "the weights go to the cross-entropy only; the Dice loss stays unweighted, over classes 1..C-1":
                _weighted_reference(t, p, w, part="cce") + 1.0 - float(
                    np.sum(w[1:] * ((2 * np.sum(t * p, axis=(1, 2)) + 1) / (np.sum(t + p, axis=(1, 2)) + 1))[:, 1:].mean(0))
                    / w[1:].sum()),
            "the Dice loss averages classes 1..C-1 only, not the background":
                _weighted_reference(t, p, w, part="cce") + 1.0 - float(np.mean(
                    (2 * np.sum(t * p, axis=(1, 2)) + 1) / (np.sum(t + p, axis=(1, 2)) + 1))),
        }
        hint = next((text for text, guess in guesses.items() if abs(got - guess) <= atol),
                    "the value is not a weighted mean of the pixels' cross-entropies (each with the weight of its "
                    "true class) plus the Dice loss of the tumour classes; try the two terms alone on this case")
        if not np.isfinite(got):
            hint = (f"{got} where y_pred holds exact 0s: the log of 0 is -inf, and 0 times -inf is nan; the "
                    "cross-entropy must stay finite for any prediction a softmax can round to")
        fail(name, case, f"expected {expected:.4f}, got {got:.4f}.", hint)
    y_true, y_pred, w = next(iter(cases.values()))
    plain = _cce_dice_reference(y_true, y_pred, False)
    for case, scaled in (("all weights equal to 1", np.ones(4, np.float32)),
                         ("all weights equal to 5", np.full(4, 5.0, np.float32))):
        got = value(y_true, y_pred, scaled, case)
        if abs(got - plain) > atol:
            fail(name, case, f"with equal weights the loss should equal cce_dice_loss, {plain:.4f}; got {got:.4f}.",
                 "with equal weights a weighted mean is the plain mean; yours is not a weighted mean.")
    base = value(y_true, y_pred, w, "weights [1, 8, 2, 3.5]")
    got = value(y_true, y_pred, 10 * w, "weights multiplied by 10")
    if abs(got - base) > atol:
        fail(name, "weights multiplied by 10", f"the loss changed from {base:.4f} to {got:.4f}.",
             "only the ratios of the weights may matter: a weighted mean does not change when every weight is "
             "multiplied by the same number.")
    _check_loss_in_graph(lambda t, p: fn(t, p, w), y_true, y_pred, name=name)
    ok(f"{name} weighs each pixel's cross-entropy by its true class (a weighted mean) plus the Dice loss.")


def call_loss(fn, name, case, y_true, y_pred, weights) -> float:
    """``fn(y_true, y_pred, weights)`` on tensors, as one float; a failure names the case."""
    import keras

    try:
        got = fn(keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(y_pred), weights)
    except NotImplementedError:
        fail(name, case, "raised NotImplementedError.", "replace `raise NotImplementedError()` with your code.")
    except AssertionError:
        raise
    except Exception as error:  # noqa: BLE001 - the learner's error, reported with its case
        fail(name, case, f"raised {type(error).__name__}: {str(error).strip()[:200]}",
             "compute with keras.ops on the tensors; class_weights may be a list, an array or a tensor "
             "(keras.ops.convert_to_tensor).")
    if got is None:
        fail(name, case, "returned None.", "add the `return` statement.")
    got = np.asarray(keras.ops.convert_to_numpy(got), dtype=np.float64)
    if got.size != 1:
        fail(name, case, f"expected one number (a scalar loss), got an array of shape {got.shape}.",
             "sum the weighted cross-entropy over every pixel and divide by the sum of the weights; "
             "average the Dice over images and classes.")
    return float(got.reshape(()))


def check_loss_choice(choice: Any, validation: dict, criterion: str = "mean region Dice") -> None:
    """Check the loss chosen from validation evidence: ``choice`` must be a key of
    ``validation`` (``{"plain": score, "weighted": score}``, the criterion measured on the
    validation cases) and the one with the highest score.

    Raises:
        AssertionError: the choice is not an option, or not the validation optimum.

    Args:
        choice: the learner's choice, a key of ``validation``.
        validation: option -> its score on the validation cases.
        criterion: what the scores measure, for the messages.
    """
    from helpers.checks._common import check_best_choice

    check_best_choice("LOSS_CHOICE", choice, validation, criterion=criterion, higher_is_better=True)


def best_loss_choice(validation: dict) -> str:
    """The validation optimum of Exercise 8.5: the key of ``validation`` with the highest score.

    The lesson's fallback after the check uses it when ``LOSS_CHOICE`` is not set, so that
    the cells after the exercise do not spell the answer out.

    Args:
        validation: option -> its score on the validation cases (higher is better).

    Returns:
        The best option.
    """
    return max(validation, key=lambda option: validation[option])


def _check_loss_in_graph(fn, y_true, y_pred, name: str = "cce_dice_loss") -> None:
    """The loss runs inside ``model.fit``: traced by ``tf.function`` on symbolic tensors, with
    a finite gradient with respect to ``y_pred``.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    def value_and_gradient(t, p):
        with tf.GradientTape() as tape:
            tape.watch(p)
            loss = fn(t, p)
        return loss, tape.gradient(loss, p)

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        loss, gradient = tf.function(value_and_gradient)(tf.constant(y_true), tf.constant(y_pred))
    except Exception as error:
        fail(name, None,
             f"works on concrete arrays but not inside model.fit, which traces the loss into a "
             f"graph ({type(error).__name__}: {str(error).strip().splitlines()[-1][:160]}).",
             "use keras.ops (keras.ops.sum, keras.ops.log, keras.ops.clip, keras.ops.mean) instead of NumPy "
             "or float(...).", cause=error)
    finally:
        logger.setLevel(level)
    if gradient is None or not np.all(np.isfinite(np.asarray(gradient))) or not np.any(np.asarray(gradient)):
        fail(name, None, "has no usable gradient with respect to y_pred (None, zero or not finite), so "
             "training cannot learn from it.", "compute it with keras.ops on the tensors themselves (no NumPy "
             "round trip) and clip y_pred before the log.")


# --------------------------------------------------------------------------- region Dice

def _dice(a, b):
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def _region_reference(true_labels, pred_labels):
    return {region: _dice(np.isin(true_labels, labels), np.isin(pred_labels, labels))
            for region, labels in REGIONS.items()}


def check_region_dice(fn: Callable[..., Any], random_cases: int = 4, seed: int = 0, atol: float = 1e-6) -> None:
    """Check ``fn(true_labels, pred_labels) -> {"WT": .., "TC": .., "ET": ..}`` on remapped
    label volumes (0, 1, 2, 3): WT = 1+2+3, TC = 1+3, ET = 3, Dice 1.0 when a region is
    empty in both.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        atol: absolute tolerance of the comparison with the reference.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    rng = np.random.default_rng(seed)
    base = _remap_reference(_random_brats(rng, (6, 6, 4)))
    swapped = base.copy()
    swapped[base == 1], swapped[base == 2] = 2, 1                    # necrosis <-> oedema
    cases = {
        "identical volumes": (base, base.copy()),
        "necrosis and oedema swapped": (base, swapped),
        "enhancing tumour predicted as necrosis": (base, np.where(base == 3, 1, base)),
        "no tumour in either": (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)),
        "no enhancing tumour in truth, none predicted": (np.array([[0, 1], [2, 2]], np.uint8),
                                                          np.array([[0, 2], [2, 0]], np.uint8)),
    }
    for k in range(random_cases):
        shape = tuple(int(s) for s in rng.integers(4, 10, size=3))
        cases[f"random volumes #{k + 1}"] = (_remap_reference(_random_brats(rng, shape)),
                                             _remap_reference(_random_brats(rng, shape)))
    for name, (truth, prediction) in cases.items():
        got = fn(truth, prediction)
        if not isinstance(got, dict) or set(got) != set(REGIONS):
            fail('region_dice', name, f"expected a dict with keys 'WT', 'TC', "
                                      f"'ET', got {got!r:.80}.")
        expected = _region_reference(truth, prediction)
        for region in ("WT", "TC", "ET"):
            value = float(np.asarray(got[region]))
            if np.isnan(value) or abs(value - expected[region]) > atol:
                hint = {"WT": "WT is every tumour label: 1, 2 and 3",
                        "TC": "TC is necrosis and enhancing tumour: labels 1 and 3 (not oedema)",
                        "ET": "ET is the enhancing tumour only: label 3 after the remap"}[region]
                if np.isnan(value):
                    hint = "a region absent from both volumes should score 1.0, not 0/0"
                fail('region_dice', name, f"{region} expected "
                                          f"{expected[region]:.4f}, got {value:.4f}; {hint}.")
    ok("region_dice gives the BraTS Dice of WT, TC and ET.")


# --------------------------------------------------------------------------- per-class scores

def _scores_reference(truth, prediction, n_classes):
    rows = []
    for c in range(n_classes):
        t, p = truth == c, prediction == c
        tp = np.sum(t & p)
        fp = np.sum(~t & p)
        fn = np.sum(t & ~p)
        tn = np.sum(~t & ~p)
        with np.errstate(divide="ignore", invalid="ignore"):
            rows.append([tp / (tp + fp) if tp + fp else np.nan,
                         tp / (tp + fn) if tp + fn else np.nan,
                         tn / (tn + fp) if tn + fp else np.nan])
    return np.asarray(rows, dtype=np.float64)


def check_per_class_scores(fn: Callable[..., Any], n_classes: int = 4, random_cases: int = 4, seed: int = 0,
                           atol: float = 1e-6) -> None:
    """Check ``fn(true_labels, pred_labels, n_classes) -> array (n_classes, 3)`` with columns
    precision, sensitivity (recall) and specificity of each class, nan where undefined
    (0/0, e.g. precision of a class never predicted).

    Args:
        fn: the function to check (the learner's, or the reference).
        n_classes: the number of classes passed to ``fn``.
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        atol: absolute tolerance of the comparison with the reference.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    rng = np.random.default_rng(seed)
    truth = np.array([[0, 0, 1, 1], [2, 2, 3, 3], [0, 2, 2, 3]], dtype=np.uint8)
    prediction = np.array([[0, 1, 1, 1], [2, 0, 3, 2], [0, 2, 2, 3]], dtype=np.uint8)
    cases = {"a 3x4 example": (truth, prediction),
             "a perfect prediction": (truth, truth.copy()),
             "class 1 never predicted": (truth, np.where(truth == 1, 0, truth))}
    for k in range(random_cases):
        shape = tuple(int(s) for s in rng.integers(3, 9, size=3))
        cases[f"random volumes #{k + 1}"] = (rng.integers(0, n_classes, shape).astype(np.uint8),
                                             rng.integers(0, n_classes, shape).astype(np.uint8))
    for name, (t, p) in cases.items():
        got = _to_numpy(fn(t, p, n_classes), "per_class_scores").astype(np.float64)
        expected = _scores_reference(t, p, n_classes)
        if got.shape != expected.shape:
            fail('per_class_scores', name, f"expected shape {expected.shape} "
                                           f"(one row per class, columns precision, sensitivity, "
                                           f"specificity), got {got.shape}.")
        same = np.isclose(got, expected, atol=atol, equal_nan=True)
        if not same.all():
            c, j = (int(i) for i in np.argwhere(~same)[0])
            column = SCORE_NAMES[j]
            hints = {"precision": "precision = TP / (TP + FP): of the pixels predicted as the class, the right ones",
                     "sensitivity": "sensitivity = TP / (TP + FN): of the pixels of the class, the ones found",
                     "specificity": "specificity = TN / (TN + FP): of the pixels not of the class, the ones left out"}
            hint = hints[column]
            if np.isnan(expected[c, j]):
                hint = "the ratio is 0/0 here; return nan (np.nan) rather than 0 or 1"
            elif np.isnan(got[c, j]):
                hint = f"got nan although the denominator is not 0; {hint}"
            fail('per_class_scores', name, f"class {c} {column} expected "
                                           f"{expected[c, j]:.4f}, got {got[c, j]:.4f}; {hint}.")
    ok("per_class_scores gives precision, sensitivity and specificity of every class.")
