"""Segmentation losses for ``model.compile(loss=...)``, written with ``keras.ops``.

All take ``y_true`` (binary or one-hot) and ``y_pred`` (sigmoid or softmax
probabilities) of shape ``(batch, ..., channels)`` and return one scalar, the mean over
the batch of a per-sample loss (Keras logs it as ``loss`` / ``val_loss``). Overlap
terms are the soft Dice of :mod:`helpers.metrics`, so ``dice_loss = 1 - dice``.

* binary (one sigmoid channel): :func:`dice_loss`, :func:`bce_dice_loss`,
  :func:`tversky_loss`;
* multi-class (softmax channels): :func:`categorical_dice_loss`, :func:`cce_dice_loss`.

To compile a loss with other parameters use
``metrics.configured(losses.tversky_loss, alpha=0.2, beta=0.8)``.

The Keras metrics of :mod:`helpers.metrics` return one value per sample; the losses
here take their mean, as Keras weighs the logged loss by the batch size itself.
"""

from __future__ import annotations

import keras

from helpers import metrics

__all__ = ["dice_loss", "bce_dice_loss", "tversky_loss", "categorical_dice_loss",
           "cce_dice_loss"]


def _per_replica(loss):
    """``loss`` (a scalar, the batch mean) divided by the number of replicas training in
    step under ``tf.distribute``; unchanged on one device and outside ``fit``.

    Keras divides a per-sample loss by the replicas before their gradients are summed,
    but passes a scalar loss through as it is and still multiplies the logged value by
    the replicas: a scalar loss must divide itself, or the gradients and the logged loss
    come out N times too large (tests/test_distribute.py measures it).
    """
    if keras.backend.backend() != "tensorflow":
        return loss
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return loss
    return loss / context.num_replicas_in_sync


def dice_loss(y_true, y_pred, smooth=1.0):
    """Soft Dice loss ``1 - dice_coefficient``, a scalar in ``[0, 1]``.

    ``(batch, ..., C)`` tensors; per-sample soft Dice with ``smooth`` in numerator and
    denominator, averaged over the batch. Insensitive to the amount of background,
    which suits small structures; on its own it can be slow to start.
    """
    return _per_replica(1.0 - keras.ops.mean(metrics.dice_coefficient(y_true, y_pred, smooth=smooth)))


def bce_dice_loss(y_true, y_pred, bce_weight=1.0, dice_weight=1.0, smooth=1.0):
    """``bce_weight * BCE + dice_weight * (1 - Dice)``, a scalar >= 0.

    BCE is the binary cross-entropy averaged over every pixel of the batch
    (probabilities clipped to ``[1e-7, 1 - 1e-7]``); Dice as in :func:`dice_loss`.
    Cross-entropy gives smooth per-pixel gradients early in training, Dice keeps the
    focus on the overlap: the default loss of the core lessons.
    """
    ops = keras.ops
    y_true, y_pred, _ = metrics._prepare(y_true, y_pred)
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
    dice = 1.0 - ops.mean(metrics.dice_coefficient(y_true, y_pred, smooth=smooth))
    return _per_replica(bce_weight * bce + dice_weight * dice)


def tversky_loss(y_true, y_pred, alpha=0.3, beta=0.7, smooth=1.0):
    """Tversky loss ``1 - (TP + s) / (TP + alpha*FP + beta*FN + s)``, scalar in ``[0, 1]``.

    Soft counts per sample over ``(batch, ..., C)`` tensors, averaged over the batch.
    As in Salehi et al. 2017 (arXiv:1706.05721), ``alpha`` weighs false positives
    (``sum((1 - t) * p)``) and ``beta`` false negatives (``sum(t * (1 - p))``, missed
    foreground): ``beta > alpha`` -- the default ``alpha=0.3, beta=0.7`` of the paper --
    favours sensitivity for small lesions, and ``alpha = beta = 0.5`` gives the Dice
    loss (exactly so with ``smooth=0``). Libraries have swapped the two (Keras until
    keras-team/keras pull request 23333), so state the convention when you compare.
    """
    ops = metrics._ops()
    y_true, y_pred, axes = metrics._prepare(y_true, y_pred)
    tp = ops.sum(y_true * y_pred, axis=axes)
    fn = ops.sum(y_true * (1.0 - y_pred), axis=axes)
    fp = ops.sum((1.0 - y_true) * y_pred, axis=axes)
    index = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    return _per_replica(1.0 - ops.mean(index))


def categorical_dice_loss(y_true, y_pred, include_background=False, smooth=1.0):
    """Multi-class soft Dice loss ``1 - multiclass_dice``, a scalar in ``[0, 1]``.

    One-hot ``y_true`` and softmax ``y_pred`` of shape ``(batch, ..., C)``; the mean
    over classes (without class 0 unless ``include_background``) of the per-class
    soft Dice, each class counting equally however small it is.
    """
    return _per_replica(1.0 - keras.ops.mean(metrics.multiclass_dice(
        y_true, y_pred, include_background=include_background, smooth=smooth)))


def cce_dice_loss(y_true, y_pred, cce_weight=1.0, dice_weight=1.0,
                  include_background=False, smooth=1.0):
    """``cce_weight * CCE + dice_weight * categorical_dice_loss``, a scalar >= 0.

    CCE is the categorical cross-entropy (over the last axis) averaged over every pixel
    of the batch, for one-hot ``y_true`` and softmax ``y_pred`` of shape
    ``(batch, ..., C)``. The multi-class loss of lesson 08 (BraTS).
    """
    ops = keras.ops
    y_true, y_pred, _ = metrics._prepare(y_true, y_pred)
    cce = ops.mean(keras.losses.categorical_crossentropy(y_true, y_pred))
    dice = 1.0 - ops.mean(metrics.multiclass_dice(y_true, y_pred, include_background=include_background,
                                                  smooth=smooth))
    return _per_replica(cce_weight * cce + dice_weight * dice)


for _fn in (dice_loss, bce_dice_loss, tversky_loss, categorical_dice_loss, cce_dice_loss):
    metrics._register(_fn)
