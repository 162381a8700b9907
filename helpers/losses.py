"""Segmentation losses for ``model.compile(loss=...)``, written with ``keras.ops``.

All take ``y_true`` (binary or one-hot) and ``y_pred`` (sigmoid or softmax
probabilities) of shape ``(batch, ..., channels)`` and return one scalar, the mean over
the batch of a per-sample loss (Keras logs it as ``loss`` / ``val_loss``). Overlap
terms are the soft Dice of :mod:`helpers.metrics`, so ``dice_loss = 1 - dice``.

* binary (one sigmoid channel): :func:`dice_loss`, :func:`bce_dice_loss`,
  :func:`tversky_loss`;
* multi-class (softmax channels): :func:`categorical_dice_loss`, :func:`cce_dice_loss`,
  :func:`weighted_cce_dice_loss` (class-weighted cross-entropy, lesson 08's remedy for a
  rare class), :func:`class_weights_from_frequencies`.

To compile a loss with other parameters use
``metrics.configured(losses.tversky_loss, alpha=0.2, beta=0.8)``.

The Keras metrics of :mod:`helpers.metrics` return one value per sample; the losses
here take their mean, as Keras weighs the logged loss by the batch size itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from helpers import metrics

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike

__all__ = ["dice_loss", "bce_dice_loss", "tversky_loss", "categorical_dice_loss",
           "cce_dice_loss", "weighted_cce_dice_loss", "class_weights_from_frequencies"]


def _per_replica(loss):
    """``loss`` (a scalar, the batch mean) divided by the number of replicas training in
    step under ``tf.distribute``; unchanged on one device and outside ``fit``.

    Keras divides a per-sample loss by the replicas before their gradients are summed,
    but passes a scalar loss through as it is and still multiplies the logged value by
    the replicas: a scalar loss must divide itself, or the gradients and the logged loss
    come out N times too large (tests/library/test_distribute.py measures it).
    """
    if keras.backend.backend() != "tensorflow":
        return loss
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return loss
    return loss / context.num_replicas_in_sync


def dice_loss(y_true: Any, y_pred: Any, smooth: float = 1.0) -> Any:
    """Soft Dice loss ``1 - dice_coefficient``, a scalar in ``[0, 1]``.

    ``(batch, ..., C)`` tensors; per-sample soft Dice with ``smooth`` in numerator and
    denominator, averaged over the batch. Insensitive to the amount of background,
    which suits small structures; on its own it can be slow to start.

    Args:
        y_true: binary masks ``(batch, ..., C)``.
        y_pred: predicted probabilities of the same shape.
        smooth: added to the Dice's numerator and denominator.

    Returns:
        The loss, a scalar tensor.

    Raises:
        ValueError: the ranks of ``y_true`` and ``y_pred`` differ, or there is no batch axis.
    """
    return _per_replica(1.0 - keras.ops.mean(metrics.dice_coefficient(y_true, y_pred, smooth=smooth)))


def bce_dice_loss(y_true: Any, y_pred: Any, bce_weight: float = 1.0, dice_weight: float = 1.0,
                  smooth: float = 1.0) -> Any:
    """``bce_weight * BCE + dice_weight * (1 - Dice)``, a scalar >= 0.

    BCE is the binary cross-entropy averaged over every pixel of the batch
    (probabilities clipped to ``[1e-7, 1 - 1e-7]``); Dice as in :func:`dice_loss`.
    Cross-entropy gives smooth per-pixel gradients early in training, Dice keeps the
    focus on the overlap: the default loss of the core lessons.

    Args:
        y_true: binary masks ``(batch, ..., C)``.
        y_pred: sigmoid probabilities of the same shape.
        bce_weight: weight of the cross-entropy term.
        dice_weight: weight of the Dice loss term.
        smooth: added to the Dice's numerator and denominator.

    Returns:
        The loss, a scalar tensor.

    Raises:
        ValueError: the ranks of ``y_true`` and ``y_pred`` differ, or there is no batch axis.
    """
    ops = keras.ops
    y_true, y_pred, _ = metrics._prepare(y_true, y_pred)
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
    dice = 1.0 - ops.mean(metrics.dice_coefficient(y_true, y_pred, smooth=smooth))
    return _per_replica(bce_weight * bce + dice_weight * dice)


def tversky_loss(y_true: Any, y_pred: Any, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0) -> Any:
    """Tversky loss ``1 - (TP + s) / (TP + alpha*FP + beta*FN + s)``, scalar in ``[0, 1]``.

    Soft counts per sample over ``(batch, ..., C)`` tensors, averaged over the batch.
    As in Salehi et al. 2017 (arXiv:1706.05721), ``alpha`` weighs false positives
    (``sum((1 - t) * p)``) and ``beta`` false negatives (``sum(t * (1 - p))``, missed
    foreground): ``beta > alpha`` -- the default ``alpha=0.3, beta=0.7`` of the paper --
    favours sensitivity for small lesions, and ``alpha = beta = 0.5`` gives the Dice
    loss (exactly so with ``smooth=0``). Libraries have swapped the two (Keras until
    keras-team/keras pull request 23333), so state the convention when you compare.

    Args:
        y_true: binary masks ``(batch, ..., C)``.
        y_pred: predicted probabilities of the same shape.
        alpha: weight of the false positives.
        beta: weight of the false negatives.
        smooth: added to numerator and denominator.

    Returns:
        The loss, a scalar tensor.

    Raises:
        ValueError: the ranks of ``y_true`` and ``y_pred`` differ, or there is no batch axis.
    """
    ops = metrics._ops()
    y_true, y_pred, axes = metrics._prepare(y_true, y_pred)
    tp = ops.sum(y_true * y_pred, axis=axes)
    fn = ops.sum(y_true * (1.0 - y_pred), axis=axes)
    fp = ops.sum((1.0 - y_true) * y_pred, axis=axes)
    index = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    return _per_replica(1.0 - ops.mean(index))


def categorical_dice_loss(y_true: Any, y_pred: Any, include_background: bool = False, smooth: float = 1.0) -> Any:
    """Multi-class soft Dice loss ``1 - multiclass_dice``, a scalar in ``[0, 1]``.

    One-hot ``y_true`` and softmax ``y_pred`` of shape ``(batch, ..., C)``; the mean
    over classes (without class 0 unless ``include_background``) of the per-class
    soft Dice, each class counting equally however small it is.

    Args:
        y_true: one-hot masks ``(batch, ..., C)``.
        y_pred: softmax probabilities of the same shape.
        include_background: count class 0 too.
        smooth: added to the Dice's numerator and denominator.

    Returns:
        The loss, a scalar tensor.

    Raises:
        ValueError: the ranks differ, the tensors have no spatial axis, or (without
            background) fewer than two channels.
    """
    return _per_replica(1.0 - keras.ops.mean(metrics.multiclass_dice(
        y_true, y_pred, include_background=include_background, smooth=smooth)))


def cce_dice_loss(y_true: Any, y_pred: Any, cce_weight: float = 1.0, dice_weight: float = 1.0,
                  include_background: bool = False, smooth: float = 1.0) -> Any:
    """``cce_weight * CCE + dice_weight * categorical_dice_loss``, a scalar >= 0.

    CCE is the categorical cross-entropy (over the last axis) averaged over every pixel
    of the batch, for one-hot ``y_true`` and softmax ``y_pred`` of shape
    ``(batch, ..., C)``. The multi-class loss of lesson 08 (BraTS).

    Args:
        y_true: one-hot masks ``(batch, ..., C)``.
        y_pred: softmax probabilities of the same shape.
        cce_weight: weight of the cross-entropy term.
        dice_weight: weight of the Dice loss term.
        include_background: count class 0 in the Dice term.
        smooth: added to the Dice's numerator and denominator.

    Returns:
        The loss, a scalar tensor.

    Raises:
        ValueError: the ranks differ, the tensors have no spatial axis, or (without
            background) fewer than two channels.
    """
    ops = keras.ops
    y_true, y_pred, _ = metrics._prepare(y_true, y_pred)
    cce = ops.mean(keras.losses.categorical_crossentropy(y_true, y_pred))
    dice = 1.0 - ops.mean(metrics.multiclass_dice(y_true, y_pred, include_background=include_background,
                                                  smooth=smooth))
    return _per_replica(cce_weight * cce + dice_weight * dice)


def weighted_cce_dice_loss(y_true: Any, y_pred: Any, class_weights: Any, smooth: float = 1.0) -> Any:
    """Class-weighted categorical cross-entropy + multi-class Dice loss, a scalar >= 0.

    Each pixel's cross-entropy ``-sum_c y_true * log(y_pred)`` is weighted by the weight of
    its true class, ``w = sum_c class_weights[c] * y_true[..., c]``, and the weighted
    cross-entropy is ``sum(w * ce) / sum(w)`` over every pixel of the batch (a weighted
    mean, as PyTorch's ``CrossEntropyLoss(weight=...)``: only the ratios of the weights
    matter). The Dice loss is that of :func:`cce_dice_loss` (soft Dice per image and class,
    classes 1..C-1, unweighted). With equal weights it equals :func:`cce_dice_loss`.

    Args:
        y_true: one-hot targets ``(batch, ..., C)``.
        y_pred: softmax probabilities of the same shape.
        class_weights: ``C`` positive weights, one per class (a list, array or tensor).
        smooth: added to the Dice's numerator and denominator.

    Returns:
        The loss, a scalar tensor.

    Raises:
        ValueError: from Keras when the shapes do not match.
    """
    ops = keras.ops
    y_true, y_pred, _ = metrics._prepare(y_true, y_pred)
    weights = ops.cast(ops.convert_to_tensor(class_weights), y_true.dtype)
    pixel_weight = ops.sum(y_true * weights, axis=-1)                     # (batch, ...)
    ce = -ops.sum(y_true * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1)
    cce = ops.sum(pixel_weight * ce) / ops.maximum(ops.sum(pixel_weight), 1e-7)
    dice = 1.0 - ops.mean(metrics.multiclass_dice(y_true, y_pred, smooth=smooth))
    return _per_replica(cce + dice)


def class_weights_from_frequencies(frequencies: ArrayLike, power: float = 0.5) -> np.ndarray:
    """Class weights ``(1 / frequency) ** power``, scaled so that the most common class
    weighs 1.

    ``power=1`` is the inverse frequency (a class of 0.3 % of the pixels would weigh
    about 300 times the background); the default square root softens it, a usual
    compromise.

    Args:
        frequencies: share of the training pixels of each class, ``C`` positive numbers.
        power: exponent of the inverse frequency (>= 0; 0 gives equal weights).

    Returns:
        A float32 NumPy array of ``C`` weights, the largest class's weight 1.

    Raises:
        ValueError: a frequency is not positive, or ``power`` is negative.
    """
    import numpy as np

    frequencies = np.asarray(frequencies, dtype=np.float64)
    if frequencies.ndim != 1 or not np.all(frequencies > 0):
        raise ValueError(f"frequencies must be positive, one per class, got {frequencies.tolist()}.")
    if power < 0:
        raise ValueError(f"power must be >= 0, got {power}.")
    weights = (frequencies.max() / frequencies) ** power
    return weights.astype(np.float32)


for _fn in (dice_loss, bce_dice_loss, tversky_loss, categorical_dice_loss, cce_dice_loss):
    metrics._register(_fn)
