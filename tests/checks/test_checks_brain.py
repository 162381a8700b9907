"""Lesson 08's warm-up checks (Exercises 8.1 and 8.3, no points): the check must catch the usual
wrong solutions, naming the mistake, and pass the lesson-like ones. Graded exercises keep their
wrong solutions in ``test_wrong_solutions.py``; these moved here when the two exercises became
ungraded warm-ups (issue 27)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from helpers import checks, losses
from helpers.data import brain_mri


def _remap(seg, *, mistake=None):
    labels = np.array(seg, copy=True) if mistake != "in place" else seg
    if mistake == "4 to 0":
        labels[labels == 4] = 0
    elif mistake == "divide":
        labels = labels // 2 + (labels == 1)
    elif mistake == "float":
        labels = labels.astype(np.float32)
        labels[labels == 4] = 3
    elif mistake == "shift all":
        labels[labels > 0] -= 1
        labels[labels == 3] = 3
    elif mistake == "3 to 4":
        labels[labels == 3] = 4
    else:
        labels[labels == 4] = 3
    return labels


def _cce_dice(t, p, smooth=1.0, *, mistake=None):
    if mistake == "numpy":
        t_, p_ = np.asarray(t), np.clip(np.asarray(p), 1e-7, 1)
        cce = np.mean(-np.sum(t_ * np.log(p_), axis=-1))
        inter = np.sum(t_ * p_, axis=(1, 2))
        dice = (2 * inter + smooth) / (np.sum(t_ + p_, axis=(1, 2)) + smooth)
        return float(cce + 1 - np.mean(dice[:, 1:]))
    if mistake == "unclipped log":
        cce = ops.mean(-ops.sum(t * ops.log(p), axis=-1))
    else:
        cce = ops.mean(keras.losses.categorical_crossentropy(t, p))
    axes = tuple(range(1, len(t.shape) - 1))
    inter = ops.sum(t * p, axis=axes)
    dice = (2.0 * inter + smooth) / (ops.sum(t, axis=axes) + ops.sum(p, axis=axes) + smooth)
    if mistake == "cce only":
        return cce
    if mistake == "dice only":
        return 1.0 - ops.mean(dice[:, 1:])
    if mistake == "with background":
        return cce + 1.0 - ops.mean(dice)
    if mistake == "binary cross-entropy":
        return ops.mean(keras.losses.binary_crossentropy(t, p)) + 1.0 - ops.mean(dice[:, 1:])
    if mistake == "summed cross-entropy":
        return ops.sum(keras.losses.categorical_crossentropy(t, p)) + 1.0 - ops.mean(dice[:, 1:])
    return cce + 1.0 - ops.mean(dice[:, 1:])


@pytest.mark.parametrize("mistake", ["in place", "4 to 0", "divide", "shift all", "3 to 4", "float"])
def test_remap_check_catches(mistake):
    with pytest.raises(AssertionError, match="remap_labels"):
        checks.check_remap_labels(lambda seg: _remap(seg, mistake=mistake), random_cases=5)


def test_remap_check_passes_the_lesson_like_and_the_reference(capsys):
    checks.check_remap_labels(_remap, random_cases=5)
    checks.check_remap_labels(brain_mri.remap_labels, random_cases=5)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, fragment", [
    ("numpy", "model.fit"), ("cce only", "only the cross-entropy"), ("dice only", "only the Dice"),
    ("with background", "background"), ("binary cross-entropy", ""), ("summed cross-entropy", ""),
    ("unclipped log", "exact 0s")])
def test_cce_dice_check_catches(mistake, fragment):
    with pytest.raises(AssertionError) as info:
        checks.check_cce_dice_loss(lambda t, p, smooth=1.0: _cce_dice(t, p, smooth, mistake=mistake))
    message = str(info.value)
    assert len(message) > 40 and fragment.lower() in message.lower(), message


def test_cce_dice_check_passes_the_lesson_like_and_the_reference(capsys):
    checks.check_cce_dice_loss(_cce_dice, random_cases=6)
    checks.check_cce_dice_loss(losses.cce_dice_loss, random_cases=6)
    assert "✓" in capsys.readouterr().out


def test_best_loss_choice_is_the_validation_optimum():
    assert checks.best_loss_choice({"plain": 0.91, "weighted": 0.93}) == "weighted"
    assert checks.best_loss_choice({"plain": 0.93, "weighted": 0.91}) == "plain"
    checks.check_loss_choice(checks.best_loss_choice({"plain": 0.9, "weighted": 0.8}), {"plain": 0.9, "weighted": 0.8})
