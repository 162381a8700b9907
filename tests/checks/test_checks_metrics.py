"""Tests for helpers/checks/metrics.py: the checks pass on the reference implementations
and fail, with a helpful message, on the usual wrong implementations."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from helpers import checks, losses, metrics
from helpers.checks import metrics as metric_checks

ops = keras.ops


def _axes(x):
    return tuple(range(1, len(x.shape)))


def test_checks_are_found_through_the_package():
    assert checks.check_dice is metric_checks.check_dice
    assert "check_multiclass_dice" in dir(checks)


def test_reference_implementations_pass(capsys):
    metric_checks.check_dice(metrics.dice_coefficient, random_cases=5, seed=3)
    metric_checks.check_hard_dice(metrics.hard_dice, random_cases=5)
    metric_checks.check_dice_loss(losses.dice_loss, random_cases=5)
    metric_checks.check_iou(metrics.iou, random_cases=5)
    metric_checks.check_bce_dice_loss(losses.bce_dice_loss, random_cases=5)
    metric_checks.check_confusion_metrics(metrics.sensitivity, metrics.specificity,
                                          metrics.precision, random_cases=5)
    metric_checks.check_sensitivity(metrics.sensitivity, random_cases=2)
    metric_checks.check_multiclass_dice(metrics.multiclass_dice, random_cases=5)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 8 and all(line.startswith("✓") for line in lines)


# ------------------------------------------------------------------- wrong versions

def dice_no_smooth(t, p, smooth=1.0):
    i = ops.sum(t * p, axis=_axes(t))
    return ops.mean(2 * i / (ops.sum(t, axis=_axes(t)) + ops.sum(p, axis=_axes(t))))


def dice_smooth_numerator_only(t, p, smooth=1.0):
    i = ops.sum(t * p, axis=_axes(t))
    return ops.mean((2 * i + smooth) / (ops.sum(t, axis=_axes(t)) + ops.sum(p, axis=_axes(t))))


def dice_pooled(t, p, smooth=1.0):
    return (2 * ops.sum(t * p) + smooth) / (ops.sum(t) + ops.sum(p) + smooth)


def dice_no_factor_two(t, p, smooth=1.0):
    a = _axes(t)
    return ops.mean((ops.sum(t * p, axis=a) + smooth) / (ops.sum(t, axis=a) + ops.sum(p, axis=a) + smooth))


def dice_per_sample_vector(t, p, smooth=1.0):
    a = _axes(t)
    return (2 * ops.sum(t * p, axis=a) + smooth) / (ops.sum(t, axis=a) + ops.sum(p, axis=a) + smooth)


def dice_numpy_inside(t, p, smooth=1.0):
    t, p = np.asarray(t), np.asarray(p)
    a = _axes(t)
    return float(np.mean((2 * (t * p).sum(a) + smooth) / (t.sum(a) + p.sum(a) + smooth)))


def not_implemented(t, p, smooth=1.0):
    raise NotImplementedError()


def returns_none(t, p, smooth=1.0):
    metrics.dice_coefficient(t, p)


@pytest.mark.parametrize("wrong, message", [
    (dice_no_smooth, "smooth"),
    (dice_smooth_numerator_only, "smooth"),
    (dice_pooled, "per sample"),
    (dice_no_factor_two, "factor 2"),
    (metrics.iou, "IoU"),
    (metrics.hard_dice, "threshold"),
    (dice_per_sample_vector, "one number"),
    (dice_numpy_inside, "keras.ops"),
    (not_implemented, "not written yet"),
    (returns_none, "return"),
])
def test_check_dice_catches_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        metric_checks.check_dice(wrong, random_cases=3)


def test_check_dice_message_style_for_empty_masks():
    with pytest.raises(AssertionError) as info:
        metric_checks.check_dice(dice_no_smooth)
    text = str(info.value)
    assert "two empty masks" in text and "expected 1.0000, got nan" in text
    assert "smooth" in text


def test_check_hard_dice_catches_soft_and_unsmoothed():
    with pytest.raises(AssertionError, match="threshold the prediction"):
        metric_checks.check_hard_dice(metrics.dice_coefficient)

    def hard_no_smooth(t, p, threshold=0.5):
        return dice_no_smooth(ops.cast(t > 0.5, "float32"), ops.cast(p > threshold, "float32"))
    with pytest.raises(AssertionError, match="smooth"):
        metric_checks.check_hard_dice(hard_no_smooth)


def test_check_dice_loss_catches_mistakes():
    with pytest.raises(AssertionError, match="1 - dice"):
        metric_checks.check_dice_loss(metrics.dice_coefficient)
    with pytest.raises(AssertionError, match="1 - dice"):
        metric_checks.check_dice_loss(lambda t, p: -ops.mean(metrics.dice_coefficient(t, p)))
    with pytest.raises(AssertionError, match="per sample"):
        metric_checks.check_dice_loss(lambda t, p: 1 - dice_pooled(t, p))
    with pytest.raises(AssertionError, match="thresholded"):
        metric_checks.check_dice_loss(
            lambda t, p: 1 - ops.mean(metrics.dice_coefficient(t, ops.cast(p > 0.5, "float32"))))
    # right values, but cut off from the graph: no gradient
    with pytest.raises(AssertionError, match="no gradient"):
        metric_checks.check_dice_loss(
            lambda t, p: 1 - ops.stop_gradient(ops.mean(metrics.dice_coefficient(t, p))))


def _dice_loss_base(t, p, smooth=1.0):
    return ops.mean(dice_per_sample_vector(t, p, smooth))


@pytest.mark.parametrize("wrong", [
    lambda t, p, smooth=1.0: -_dice_loss_base(t, p, smooth),                                  # minus Dice
    lambda t, p, smooth=1.0: _dice_loss_base(t, p, smooth),                                   # Dice itself
    lambda t, p, smooth=1.0: 1.0 - _dice_loss_base(ops.cast(t > 0.5, "float32"),
                                                   ops.cast(p > 0.5, "float32"), smooth),     # 1 - hard Dice
    lambda t, p, smooth=1.0: 1.0 - dice_pooled(t, p),                                         # 1 - pooled Dice
    lambda t, p, smooth=1.0: 1.0 - dice_numpy_inside(t, p, smooth),                           # NumPy
    lambda t, p, smooth=1.0: 1.0 / _dice_loss_base(t, p, smooth),                             # 1 / Dice
], ids=["minus Dice", "Dice itself", "1 - hard Dice", "1 - pooled Dice", "NumPy", "1 / Dice"])
def test_check_dice_loss_catches_the_warm_ups_wrong_solutions(wrong):
    """Exercise 3.3 is an ungraded warm-up, so its wrong solutions live here and not in
    test_wrong_solutions.py (which covers graded exercises); its check must still catch them."""
    with pytest.raises(AssertionError):
        metric_checks.check_dice_loss(wrong, random_cases=3)


def test_check_dice_loss_accepts_the_warm_ups_answer(capsys):
    metric_checks.check_dice_loss(lambda t, p, smooth=1.0: 1.0 - _dice_loss_base(t, p, smooth), random_cases=3)


def test_check_iou_catches_dice_and_no_smoothing():
    with pytest.raises(AssertionError, match="union"):
        metric_checks.check_iou(metrics.dice_coefficient)

    def iou_no_smooth(t, p, smooth=1.0):
        i = ops.sum(t * p, axis=_axes(t))
        return ops.mean(i / (ops.sum(t, axis=_axes(t)) + ops.sum(p, axis=_axes(t)) - i))
    with pytest.raises(AssertionError, match="smooth"):
        metric_checks.check_iou(iou_no_smooth)


def test_check_bce_dice_loss_catches_mistakes():
    def bce(t, p):
        return ops.mean(keras.losses.binary_crossentropy(t, p))
    with pytest.raises(AssertionError, match="add the Dice loss"):
        metric_checks.check_bce_dice_loss(bce)
    with pytest.raises(AssertionError, match="add the binary cross-entropy"):
        metric_checks.check_bce_dice_loss(losses.dice_loss)
    with pytest.raises(AssertionError, match="not the Dice coefficient"):
        metric_checks.check_bce_dice_loss(lambda t, p: bce(t, p) + ops.mean(metrics.dice_coefficient(t, p)))


def _ratio_fn(num, den, smooth=1e-6, hard=True):
    def fn(t, p, threshold=0.5, smooth=smooth):
        if hard:
            t = ops.cast(t > 0.5, "float32")
            p = ops.cast(p > threshold, "float32")
        a = _axes(t)
        c = {"tp": ops.sum(t * p, axis=a), "fp": ops.sum((1 - t) * p, axis=a),
             "fn": ops.sum(t * (1 - p), axis=a), "tn": ops.sum((1 - t) * (1 - p), axis=a)}
        return ops.mean((c[num] + smooth) / (c[den[0]] + c[den[1]] + smooth))
    return fn


def test_check_confusion_metrics_catches_swaps_and_soft_counts():
    sens = _ratio_fn("tp", ("tp", "fn"))
    spec = _ratio_fn("tn", ("tn", "fp"))
    prec = _ratio_fn("tp", ("tp", "fp"))
    metric_checks.check_confusion_metrics(sens, spec, prec, random_cases=2)
    with pytest.raises(AssertionError, match="this is the precision"):
        metric_checks.check_confusion_metrics(sensitivity=prec)
    with pytest.raises(AssertionError, match="this is the sensitivity"):
        metric_checks.check_confusion_metrics(specificity=sens)
    with pytest.raises(AssertionError, match="thresholded"):
        metric_checks.check_confusion_metrics(precision=_ratio_fn("tp", ("tp", "fp"), hard=False))
    with pytest.raises(AssertionError, match="smooth"):
        metric_checks.check_confusion_metrics(sensitivity=_ratio_fn("tp", ("tp", "fn"), smooth=0.0))
    with pytest.raises(ValueError):
        metric_checks.check_confusion_metrics()


def test_check_multiclass_dice_catches_mistakes():
    def with_background(t, p, include_background=False, smooth=1.0):
        return ops.mean(metrics.multiclass_dice(t, p, include_background=True))

    def all_channels(t, p, include_background=False, smooth=1.0):
        return ops.mean(metrics.dice_coefficient(t, p))

    def ignores_flag(t, p, include_background=False, smooth=1.0):
        return ops.mean(metrics.multiclass_dice(t, p))

    with pytest.raises(AssertionError, match="background"):
        metric_checks.check_multiclass_dice(with_background)
    with pytest.raises(AssertionError, match="each class"):
        metric_checks.check_multiclass_dice(all_channels)
    with pytest.raises(AssertionError, match="include_background=True"):
        metric_checks.check_multiclass_dice(ignores_flag)
