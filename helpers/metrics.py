"""Segmentation metrics: Keras metrics for training and NumPy versions for evaluation.

Two families live here.

* **Keras metrics** (``keras.ops``; pass them to ``model.compile(metrics=[...])``). They
  take batches ``y_true``, ``y_pred`` of shape ``(batch, ..., channels)`` -- 2D
  ``(B, H, W, C)`` or 3D ``(B, D, H, W, C)`` -- with ``y_true`` binary (or one-hot) and
  ``y_pred`` probabilities in ``[0, 1]``. Each is computed **per sample** (sums over every
  axis but the batch axis) and returns the per-sample values, shape ``(batch,)``; Keras
  averages them over every sample of the epoch, so a short last batch weighs by its size
  (a batch mean would count it as much as a full batch). Take ``keras.ops.mean`` of the
  result for the mean over one batch -- what the exercises of lesson 03 return. Keras
  logs a metric under its function's ``__name__`` (``val_`` prefixed on validation
  data):

  ==========================  ====================  =========================
  function                    logged as             validation key
  ==========================  ====================  =========================
  ``dice_coefficient``        ``dice``              ``val_dice``
  ``hard_dice``               ``hard_dice``         ``val_hard_dice``
  ``iou`` (= ``jaccard``)     ``iou``               ``val_iou``
  ``sensitivity``             ``sensitivity``       ``val_sensitivity``
  ``specificity``             ``specificity``       ``val_specificity``
  ``precision``               ``precision``         ``val_precision``
  ``multiclass_dice``         ``multiclass_dice``   ``val_multiclass_dice``
  ==========================  ====================  =========================

  so ``EarlyStopping(monitor="val_dice", mode="max")`` watches the soft Dice. Use
  :func:`configured` to compile a metric with other parameters under its own name.

* **NumPy evaluation** on whole masks or label volumes of one case (any shape):
  :func:`dice_numpy`, :func:`iou_numpy`, :func:`confusion_counts`,
  :func:`precision_numpy`, :func:`sensitivity_numpy`, :func:`specificity_numpy`,
  :func:`brats_regions`, :func:`brats_region_dice` and :func:`per_class_scores`; the
  boundary distances :func:`hausdorff_distance` (HD95 by default) and
  :func:`average_surface_distance`, in physical units, from the masks' surfaces
  (:func:`mask_surface`, :func:`surface_distances`).

* **Reliability** of an evaluation: :func:`bootstrap_interval` (a mean over cases with its
  bootstrap interval), :func:`calibration_bins` and :func:`expected_calibration_error` (the
  reliability diagram of pixel probabilities), :func:`errors_in_most_uncertain` (does an
  uncertainty map point at the errors?).

Smoothing: the Keras metrics add ``smooth`` to numerator and denominator. Two empty masks
then score 1.0 (a correct "nothing here") instead of 0/0 = nan, and the soft Dice has a
gradient everywhere. On masks of thousands of pixels ``smooth=1`` changes Dice by less
than 0.001; on tiny toy arrays the bias is visible. The NumPy versions are exact and
return ``empty`` where the ratio is 0/0.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import keras
import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "dice_coefficient", "dice", "hard_dice", "iou", "jaccard", "sensitivity", "recall",
    "specificity", "precision", "multiclass_dice", "per_class_dice", "configured", "batch_mean",
    "dice_numpy", "volumetric_dice", "iou_numpy", "confusion_counts", "precision_numpy", "sensitivity_numpy",
    "specificity_numpy", "brats_regions", "brats_region_dice", "per_class_scores", "reference_per_class_scores",
    "format_scores", "KERAS_METRIC_NAMES", "mask_surface", "surface_distances", "hausdorff_distance",
    "average_surface_distance", "Interval", "bootstrap_interval", "calibration_bins", "expected_calibration_error",
    "errors_in_most_uncertain",
]

#: Smoothing of the ratios computed on thresholded (0/1) masks: tiny, so that the
#: value on small arrays is the exact ratio, yet 0/0 becomes 1.0.
HARD_SMOOTH = 1e-6


#: Package under which the metrics and losses are registered with Keras, so that a model
#: saved with them loads again (``import helpers.losses`` before ``load_model``).
KERAS_PACKAGE = "unet_course"


def _register(fn, name=None):
    """Register ``fn`` for ``.keras`` saving; returns ``fn``."""
    return keras.saving.register_keras_serializable(package=KERAS_PACKAGE, name=name)(fn)


def _ops():
    return keras.ops


def _prepare(y_true, y_pred):
    """Both as float tensors of y_pred's dtype, and the axes of one sample."""
    ops = keras.ops
    y_pred = ops.convert_to_tensor(y_pred)
    if not keras.backend.standardize_dtype(y_pred.dtype).startswith(("float", "bfloat")):
        y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    if len(y_true.shape) != len(y_pred.shape):
        raise ValueError(
            f"y_true has shape {tuple(y_true.shape)} but y_pred has shape "
            f"{tuple(y_pred.shape)}: both must be (batch, ..., channels); add the channel "
            f"axis with y[..., None] or keras.ops.expand_dims(y, -1).")
    if len(y_pred.shape) < 2:
        raise ValueError(f"Expected batches of shape (batch, ..., channels), got shape "
                         f"{tuple(y_pred.shape)}: add a batch axis with y[None].")
    axes = tuple(range(1, len(y_pred.shape)))
    return y_true, y_pred, axes


def _per_sample_dice(y_true, y_pred, axes, smooth):
    ops = _ops()
    intersection = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return (2.0 * intersection + smooth) / (total + smooth)


def dice_coefficient(y_true: Any, y_pred: Any, smooth: float = 1.0) -> Any:
    """Soft Dice coefficient of each sample of two batches (Keras name ``dice``).

    ``y_true`` (binary) and ``y_pred`` (probabilities) have shape ``(batch, ..., C)``.
    Per sample, ``(2 * sum(t * p) + smooth) / (sum(t) + sum(p) + smooth)`` over all
    pixels and channels; returns shape ``(batch,)``, values in ``[0, 1]`` (take
    ``keras.ops.mean`` for the batch mean). ``smooth`` makes two empty masks give 1.0
    and avoids 0/0.

    Args:
        y_true: binary (or one-hot) masks ``(batch, ..., C)``, a tensor or array.
        y_pred: predicted probabilities of the same shape.
        smooth: added to numerator and denominator.

    Returns:
        A tensor of shape ``(batch,)``, the soft Dice of each sample.

    Raises:
        ValueError: the ranks of ``y_true`` and ``y_pred`` differ, or there is no batch axis.
    """
    y_true, y_pred, axes = _prepare(y_true, y_pred)
    return _per_sample_dice(y_true, y_pred, axes, smooth)


# Keras logs a function metric under its __name__: ``dice`` / ``val_dice``. The alias
# ``dice`` keeps the function findable under that name (saving and loading models).
dice_coefficient.__name__ = dice_coefficient.__qualname__ = "dice"
dice = _register(dice_coefficient, "dice")


def hard_dice(y_true: Any, y_pred: Any, threshold: float = 0.5, smooth: float = 1.0) -> Any:
    """Dice of thresholded masks, per sample, shape ``(batch,)`` (Keras name ``hard_dice``).

    ``y_pred`` (probabilities, ``(batch, ..., C)``) becomes 1 where it is above
    ``threshold`` and ``y_true`` where it is above 0.5; then :func:`dice_coefficient`
    with the same ``smooth``. This is the Dice of the masks you would actually deliver.

    Args:
        y_true: binary masks ``(batch, ..., C)`` (above 0.5 is foreground).
        y_pred: predicted probabilities of the same shape.
        threshold: probabilities above it are foreground.
        smooth: added to numerator and denominator.

    Returns:
        A tensor of shape ``(batch,)``, the Dice of the thresholded masks of each sample.

    Raises:
        ValueError: the ranks of ``y_true`` and ``y_pred`` differ, or there is no batch axis.
    """
    ops = _ops()
    y_true, y_pred, axes = _prepare(y_true, y_pred)
    hard_true = ops.cast(y_true > 0.5, y_pred.dtype)
    hard_pred = ops.cast(y_pred > threshold, y_pred.dtype)
    return _per_sample_dice(hard_true, hard_pred, axes, smooth)


def iou(y_true: Any, y_pred: Any, smooth: float = 1.0) -> Any:
    """Soft intersection over union (Jaccard index) per sample (Keras name ``iou``).

    Per sample ``(sum(t * p) + smooth) / (sum(t) + sum(p) - sum(t * p) + smooth)`` for
    ``(batch, ..., C)`` tensors; shape ``(batch,)``, values in ``[0, 1]``. For hard masks
    ``IoU = Dice / (2 - Dice)``, so IoU is never above Dice.

    Args:
        y_true: binary masks ``(batch, ..., C)``.
        y_pred: predicted probabilities of the same shape.
        smooth: added to numerator and denominator.

    Returns:
        A tensor of shape ``(batch,)``, the soft IoU of each sample.

    Raises:
        ValueError: the ranks of ``y_true`` and ``y_pred`` differ, or there is no batch axis.
    """
    ops = _ops()
    y_true, y_pred, axes = _prepare(y_true, y_pred)
    intersection = ops.sum(y_true * y_pred, axis=axes)
    union = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes) - intersection
    return (intersection + smooth) / (union + smooth)


jaccard = iou


def _hard_counts(y_true, y_pred, threshold):
    ops = _ops()
    y_true, y_pred, axes = _prepare(y_true, y_pred)
    t = ops.cast(y_true > 0.5, y_pred.dtype)
    p = ops.cast(y_pred > threshold, y_pred.dtype)
    tp = ops.sum(t * p, axis=axes)
    fp = ops.sum((1.0 - t) * p, axis=axes)
    fn = ops.sum(t * (1.0 - p), axis=axes)
    tn = ops.sum((1.0 - t) * (1.0 - p), axis=axes)
    return tp, fp, fn, tn


def sensitivity(y_true: Any, y_pred: Any, threshold: float = 0.5, smooth: float = HARD_SMOOTH) -> Any:
    """Sensitivity (recall, true-positive rate) ``TP / (TP + FN)`` per sample, ``(batch,)``.

    ``y_pred`` is thresholded at ``threshold``; counts are per sample over all axes but
    the batch axis of ``(batch, ..., C)``. ``smooth`` (tiny) is added to numerator and
    denominator so a sample without foreground scores 1.0. Keras name ``sensitivity``.

    Args:
        y_true: binary masks ``(batch, ..., C)`` (above 0.5 is foreground).
        y_pred: predicted probabilities of the same shape.
        threshold: probabilities above it are foreground.
        smooth: added to numerator and denominator.

    Returns:
        A tensor of shape ``(batch,)``, the sensitivity of each sample.

    Raises:
        ValueError: the ranks of ``y_true`` and ``y_pred`` differ, or there is no batch axis.
    """
    tp, fp, fn, tn = _hard_counts(y_true, y_pred, threshold)
    return (tp + smooth) / (tp + fn + smooth)


recall = sensitivity


def specificity(y_true: Any, y_pred: Any, threshold: float = 0.5, smooth: float = HARD_SMOOTH) -> Any:
    """Specificity (true-negative rate) ``TN / (TN + FP)`` per sample, ``(batch,)``.

    Same conventions as :func:`sensitivity`; measures how much background is left
    alone. It is close to 1 for almost any mask because background dominates, which is
    why Dice, not accuracy or specificity, is the headline number. Keras name
    ``specificity``.

    Args:
        y_true: binary masks ``(batch, ..., C)`` (above 0.5 is foreground).
        y_pred: predicted probabilities of the same shape.
        threshold: probabilities above it are foreground.
        smooth: added to numerator and denominator.

    Returns:
        A tensor of shape ``(batch,)``, the specificity of each sample.

    Raises:
        ValueError: the ranks of ``y_true`` and ``y_pred`` differ, or there is no batch axis.
    """
    tp, fp, fn, tn = _hard_counts(y_true, y_pred, threshold)
    return (tn + smooth) / (tn + fp + smooth)


def precision(y_true: Any, y_pred: Any, threshold: float = 0.5, smooth: float = HARD_SMOOTH) -> Any:
    """Precision (positive predictive value) ``TP / (TP + FP)`` per sample, ``(batch,)``.

    Same conventions as :func:`sensitivity`: the fraction of predicted foreground that is
    right. A sample with an empty prediction scores 1.0. Keras name ``precision``.

    Args:
        y_true: binary masks ``(batch, ..., C)`` (above 0.5 is foreground).
        y_pred: predicted probabilities of the same shape.
        threshold: probabilities above it are foreground.
        smooth: added to numerator and denominator.

    Returns:
        A tensor of shape ``(batch,)``, the precision of each sample.

    Raises:
        ValueError: the ranks of ``y_true`` and ``y_pred`` differ, or there is no batch axis.
    """
    tp, fp, fn, tn = _hard_counts(y_true, y_pred, threshold)
    return (tp + smooth) / (tp + fp + smooth)


def _per_class_per_sample_dice(y_true, y_pred, smooth):
    """(batch, C) soft Dice for one-hot (batch, ..., C) tensors."""
    ops = _ops()
    y_true, y_pred, _ = _prepare(y_true, y_pred)
    axes = tuple(range(1, len(y_pred.shape) - 1))
    if not axes:
        raise ValueError("Multi-class Dice needs (batch, ..., classes) tensors with at "
                         f"least one spatial axis, got shape {tuple(y_pred.shape)}.")
    intersection = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return (2.0 * intersection + smooth) / (total + smooth)


def per_class_dice(y_true: Any, y_pred: Any, smooth: float = 1.0) -> Any:
    """Soft Dice of each class, shape ``(C,)``, averaged over the batch.

    ``y_true`` is one-hot and ``y_pred`` softmax probabilities, both
    ``(batch, ..., C)``; class ``c`` compares channel ``c`` of both, per sample, with
    ``smooth`` in numerator and denominator (a class absent from both scores 1.0).

    Args:
        y_true: one-hot masks ``(batch, ..., C)``.
        y_pred: softmax probabilities of the same shape.
        smooth: added to numerator and denominator.

    Returns:
        A tensor of shape ``(C,)``, the batch mean of each class's soft Dice.

    Raises:
        ValueError: the ranks differ, or the tensors have no spatial axis.
    """
    return _ops().mean(_per_class_per_sample_dice(y_true, y_pred, smooth), axis=0)


def multiclass_dice(y_true: Any, y_pred: Any, include_background: bool = False, smooth: float = 1.0) -> Any:
    """Mean soft Dice over classes of each sample (Keras name ``multiclass_dice``).

    Per sample, the mean over classes of the per-class soft Dice (see
    :func:`per_class_dice`) for one-hot ``y_true`` and softmax ``y_pred`` of shape
    ``(batch, ..., C)``; returns shape ``(batch,)``. Class 0 (background) is left out
    unless ``include_background`` -- background is easy and would hide a poor tumour
    class.

    Args:
        y_true: one-hot masks ``(batch, ..., C)``.
        y_pred: softmax probabilities of the same shape.
        include_background: average over class 0 too.
        smooth: added to numerator and denominator.

    Returns:
        A tensor of shape ``(batch,)``, the mean per-class Dice of each sample.

    Raises:
        ValueError: the ranks differ, the tensors have no spatial axis, or (without
            background) fewer than two channels.
    """
    scores = _per_class_per_sample_dice(y_true, y_pred, smooth)
    if not include_background:
        if scores.shape[-1] is not None and scores.shape[-1] < 2:
            raise ValueError("multiclass_dice(include_background=False) needs at least two "
                             "channels (background + one class).")
        scores = scores[:, 1:]
    return _ops().mean(scores, axis=-1)


for _fn in (hard_dice, iou, sensitivity, specificity, precision, per_class_dice,
            multiclass_dice):
    _register(_fn)

#: Keras log names of the metric functions of this module.
KERAS_METRIC_NAMES = {
    "dice_coefficient": "dice", "hard_dice": "hard_dice", "iou": "iou",
    "sensitivity": "sensitivity", "specificity": "specificity", "precision": "precision",
    "multiclass_dice": "multiclass_dice",
}


def configured(fn: Callable[..., Any], name: str | None = None, **params: Any) -> Callable[[Any, Any], Any]:
    """Return ``fn`` with fixed keyword ``params`` under a name Keras can log.

    ``configured(hard_dice, threshold=0.3)`` logs as ``hard_dice_threshold0.3`` (or
    ``name``). Works for the losses too. A model compiled with such a function is saved
    fine, but load it with ``keras.models.load_model(path, compile=False)``.

    Args:
        fn: a metric or loss ``fn(y_true, y_pred, **params)``.
        name: the name Keras logs it under; default: ``fn``'s name and the parameters.
        **params: keyword arguments fixed for every call.

    Returns:
        A function ``(y_true, y_pred)`` named ``name``.
    """
    label = name or "_".join([fn.__name__] + [f"{k}{v}" for k, v in sorted(params.items())])

    @functools.wraps(fn)
    def wrapped(y_true, y_pred):
        return fn(y_true, y_pred, **params)

    wrapped.__name__ = wrapped.__qualname__ = label
    return wrapped


def batch_mean(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` averaged over the batch: one number, as lesson 03 writes its metrics.

    The Keras metrics here return one value per sample ``(batch,)`` (Keras averages them);
    lesson 03's exercises return the batch mean, a scalar. ``batch_mean(dice_coefficient)``
    is the reference the lesson falls back on when an exercise is unfinished. Same
    arguments, same ``__name__`` (so Keras logs it under the same name).

    Args:
        fn: a metric ``fn(y_true, y_pred, **kwargs)`` returning per-sample values.

    Returns:
        A function ``(y_true, y_pred, **kwargs) -> scalar tensor``, the mean of ``fn``.
    """
    @functools.wraps(fn)
    def averaged(y_true, y_pred, **kwargs):
        return _ops().mean(fn(y_true, y_pred, **kwargs))

    return averaged


# --------------------------------------------------------------------------------------
# NumPy evaluation (one case: a 2D mask or a 3D volume; any shape)
# --------------------------------------------------------------------------------------

def _as_bool_pair(a, b):
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"Masks of different shapes {a.shape} and {b.shape}: resize the "
                         f"prediction to the ground truth's shape before comparing.")
    return a.astype(bool), b.astype(bool)


def confusion_counts(true_mask: ArrayLike, pred_mask: ArrayLike) -> dict[str, int]:
    """Counts ``{"tp", "fp", "fn", "tn"}`` (Python ints) of two binary masks of one shape.

    Non-zero values count as foreground; threshold probabilities first.

    Args:
        true_mask: the true mask, any shape.
        pred_mask: the predicted mask, the same shape.

    Returns:
        ``{"tp": .., "fp": .., "fn": .., "tn": ..}``, pixel counts.

    Raises:
        ValueError: the masks differ in shape.
    """
    t, p = _as_bool_pair(true_mask, pred_mask)
    tp = int(np.count_nonzero(t & p))
    fp = int(np.count_nonzero(~t & p))
    fn = int(np.count_nonzero(t & ~p))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": int(t.size - tp - fp - fn)}


def _ratio(numerator, denominator, empty):
    return float(empty) if denominator == 0 else float(numerator / denominator)


def dice_numpy(true_mask: ArrayLike, pred_mask: ArrayLike, empty: float = 1.0) -> float:
    """Exact Dice ``2|A∩B| / (|A| + |B|)`` of two binary masks of one case (any shape).

    Non-zero values are foreground. Returns ``empty`` when both masks are empty
    (default 1.0: nothing to find and nothing found).

    Args:
        true_mask: the true mask, any shape.
        pred_mask: the predicted mask, the same shape.
        empty: the value when both masks are empty.

    Returns:
        The Dice as a float.

    Raises:
        ValueError: the masks differ in shape.
    """
    c = confusion_counts(true_mask, pred_mask)
    return _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"], empty)


def volumetric_dice(true_mask: ArrayLike, pred_mask: ArrayLike) -> float:
    """Lesson 06's ``volumetric_dice`` (Exercise 6.3): one hard Dice over a whole volume.

    Args:
        true_mask: the reference volume (bool, integer or float; ``> 0.5`` is foreground).
        pred_mask: the predicted volume, same shape and convention.

    Returns:
        ``2|A∩B| / (|A| + |B|)`` summed over every voxel; 1.0 when both are empty.
    """
    return dice_numpy(np.asarray(true_mask) > 0.5, np.asarray(pred_mask) > 0.5, empty=1.0)


def iou_numpy(true_mask: ArrayLike, pred_mask: ArrayLike, empty: float = 1.0) -> float:
    """Exact IoU (Jaccard) ``|A∩B| / |A∪B|`` of two binary masks; ``empty`` if both empty.

    Args:
        true_mask: the true mask, any shape (non-zero is foreground).
        pred_mask: the predicted mask, the same shape.
        empty: the value when both masks are empty.

    Returns:
        The IoU as a float.

    Raises:
        ValueError: the masks differ in shape.
    """
    c = confusion_counts(true_mask, pred_mask)
    return _ratio(c["tp"], c["tp"] + c["fp"] + c["fn"], empty)


def sensitivity_numpy(true_mask: ArrayLike, pred_mask: ArrayLike, empty: float = float("nan")) -> float:
    """Sensitivity (recall) ``TP / (TP + FN)`` of binary masks; ``empty`` (nan) if no
    foreground in ``true_mask``.

    Args:
        true_mask: the true mask, any shape (non-zero is foreground).
        pred_mask: the predicted mask, the same shape.
        empty: the value when ``true_mask`` has no foreground.

    Returns:
        The sensitivity as a float.

    Raises:
        ValueError: the masks differ in shape.
    """
    c = confusion_counts(true_mask, pred_mask)
    return _ratio(c["tp"], c["tp"] + c["fn"], empty)


def specificity_numpy(true_mask: ArrayLike, pred_mask: ArrayLike, empty: float = float("nan")) -> float:
    """Specificity ``TN / (TN + FP)`` of binary masks; ``empty`` (nan) if no background.

    Args:
        true_mask: the true mask, any shape (non-zero is foreground).
        pred_mask: the predicted mask, the same shape.
        empty: the value when ``true_mask`` has no background.

    Returns:
        The specificity as a float.

    Raises:
        ValueError: the masks differ in shape.
    """
    c = confusion_counts(true_mask, pred_mask)
    return _ratio(c["tn"], c["tn"] + c["fp"], empty)


def precision_numpy(true_mask: ArrayLike, pred_mask: ArrayLike, empty: float = float("nan")) -> float:
    """Precision ``TP / (TP + FP)`` of binary masks; ``empty`` (nan) if nothing predicted.

    Args:
        true_mask: the true mask, any shape (non-zero is foreground).
        pred_mask: the predicted mask, the same shape.
        empty: the value when ``pred_mask`` has no foreground.

    Returns:
        The precision as a float.

    Raises:
        ValueError: the masks differ in shape.
    """
    c = confusion_counts(true_mask, pred_mask)
    return _ratio(c["tp"], c["tp"] + c["fp"], empty)


#: BraTS evaluation regions as sets of labels. Enhancing tumour is label 4 in the BraTS
#: files and label 3 after the usual remap 4 -> 3; both are accepted (3 is unused in
#: the original labelling).
BRATS_REGION_LABELS = {"ET": (3, 4), "TC": (1, 3, 4), "WT": (1, 2, 3, 4)}


def brats_regions(labels: ArrayLike, label_map: dict[int, int] | None = None) -> dict[str, np.ndarray]:
    """Boolean masks ``{"ET", "TC", "WT"}`` of a BraTS label array (any shape).

    ET (enhancing tumour) = label 4 (or 3 after remapping 4 -> 3); TC (tumour core) =
    1 + ET; WT (whole tumour) = 1 + 2 + ET. ``label_map`` (e.g. ``{3: 4}``) is applied to
    the labels first, for other label conventions.

    Args:
        labels: an integer label array, any shape.
        label_map: labels to translate first, ``{source: target}``.

    Returns:
        ``{"ET": mask, "TC": mask, "WT": mask}``, bool arrays of the labels' shape.

    Raises:
        ValueError: a label other than 0-4 (after ``label_map``).
    """
    labels = np.asarray(labels)
    if label_map:
        mapped = labels.copy()
        for source, target in label_map.items():
            mapped[labels == source] = target
        labels = mapped
    unknown = set(np.unique(labels).tolist()) - {0, 1, 2, 3, 4}
    if unknown:
        raise ValueError(f"Unexpected BraTS labels {sorted(unknown)}: expected 0, 1, 2 and "
                         f"4 (or 3 after remapping); pass label_map= to translate them.")
    return {region: np.isin(labels, values) for region, values in BRATS_REGION_LABELS.items()}


def brats_region_dice(true_labels: ArrayLike, pred_labels: ArrayLike, label_map: dict[int, int] | None = None,
                      empty: float = 1.0) -> dict[str, float]:
    """Dice of the BraTS regions, ``{"ET": .., "TC": .., "WT": ..}``, for one case.

    ``true_labels`` and ``pred_labels`` are integer label arrays of one shape (labels 0,
    1, 2, 4, or 3 for ET after remapping); see :func:`brats_regions`. A region empty in
    both scores ``empty``.

    Args:
        true_labels: the true label array.
        pred_labels: the predicted label array, the same shape.
        label_map: labels to translate first in both, ``{source: target}``.
        empty: the Dice of a region empty in both.

    Returns:
        ``{"ET": dice, "TC": dice, "WT": dice}``.

    Raises:
        ValueError: an unexpected label, or the arrays differ in shape.
    """
    true_regions = brats_regions(true_labels, label_map)
    pred_regions = brats_regions(pred_labels, label_map)
    return {region: dice_numpy(true_regions[region], pred_regions[region], empty)
            for region in BRATS_REGION_LABELS}


def per_class_scores(true_labels: ArrayLike, pred_labels: ArrayLike, n_classes: int,
                     empty: float = float("nan")) -> list[dict[str, Any]]:
    """One row per class 0 .. n_classes-1 with precision, sensitivity, specificity, Dice.

    ``true_labels`` and ``pred_labels`` are integer label arrays of one shape (e.g.
    ``argmax`` of a softmax output). Each row is a dict ``{"class", "support" (true
    pixels), "precision", "sensitivity", "specificity", "dice"}``; undefined ratios are
    ``empty`` (nan) except Dice, which is 1.0 when the class is absent from both.
    Print with :func:`format_scores`.

    Args:
        true_labels: the true integer labels.
        pred_labels: the predicted labels, the same shape.
        n_classes: the number of classes (rows).
        empty: the value of an undefined precision, sensitivity or specificity.

    Returns:
        A list of ``n_classes`` dicts, one per class.

    Raises:
        ValueError: the label arrays differ in shape.
    """
    true_labels = np.asarray(true_labels)
    pred_labels = np.asarray(pred_labels)
    if true_labels.shape != pred_labels.shape:
        raise ValueError(f"Label arrays of different shapes {true_labels.shape} and "
                         f"{pred_labels.shape}.")
    rows = []
    for c in range(int(n_classes)):
        t, p = true_labels == c, pred_labels == c
        rows.append({
            "class": c,
            "support": int(np.count_nonzero(t)),
            "precision": precision_numpy(t, p, empty),
            "sensitivity": sensitivity_numpy(t, p, empty),
            "specificity": specificity_numpy(t, p, empty),
            "dice": dice_numpy(t, p, 1.0),
        })
    return rows


def reference_per_class_scores(true_labels: ArrayLike, pred_labels: ArrayLike, n_classes: int = 4) -> np.ndarray:
    """Lesson 08's ``per_class_scores`` (Exercise 8.7), as an array.

    Args:
        true_labels: integer class array (values 0 .. n_classes-1).
        pred_labels: predicted classes, same shape.
        n_classes: the number of classes (rows).

    Returns:
        float ``(n_classes, 3)``: precision, sensitivity and specificity of each class
        against all others; ``nan`` where a ratio is 0/0.
    """
    true_labels, pred_labels = np.asarray(true_labels), np.asarray(pred_labels)
    scores = np.full((int(n_classes), 3), np.nan)
    for c in range(int(n_classes)):
        counts = confusion_counts(true_labels == c, pred_labels == c)
        tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
        for column, (numerator, denominator) in enumerate(((tp, tp + fp), (tp, tp + fn), (tn, tn + fp))):
            if denominator:
                scores[c, column] = numerator / denominator
    return scores


def format_scores(rows: list[dict[str, Any]], names: dict[int, str] | None = None, digits: int = 3) -> str:
    """Format :func:`per_class_scores` rows as a fixed-width text table.

    ``names`` optionally maps class numbers to names (``{1: "necrotic core"}``).

    Args:
        rows: the rows of :func:`per_class_scores`.
        names: class number -> name for the first column (default: the numbers).
        digits: decimals of the scores.

    Returns:
        The table, one line per class under a header line.
    """
    columns = ["precision", "sensitivity", "specificity", "dice"]
    names = names or {}
    labels = [str(names.get(row["class"], row["class"])) for row in rows]
    width = max([5] + [len(label) for label in labels])
    lines = ["class".ljust(width) + "  " + "  ".join(f"{c:>11}" for c in columns)
             + "  " + f"{'support':>9}"]
    for label, row in zip(labels, rows):
        cells = "  ".join(f"{row[c]:>11.{digits}f}" for c in columns)
        lines.append(label.ljust(width) + "  " + cells + "  " + f"{row['support']:>9d}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Boundary distances (one case: a 2D mask or a 3D volume), in physical units
# --------------------------------------------------------------------------------------
#
# Conventions, the same as MONAI's ``HausdorffDistanceMetric`` and ``SurfaceDistanceMetric``
# (``monai.metrics``, ``include_background`` does not apply: one binary mask per call):
#
# * the surface of a mask is its voxels that have at least one 4-connected (2D) or
#   6-connected (3D) neighbour outside it; a voxel on the edge of the array counts as having
#   one (``scipy.ndimage.binary_erosion`` with ``border_value=0``, as MONAI's and medpy's);
# * the distance from a surface voxel of one mask to the other is the Euclidean distance,
#   in the units of ``spacing``, to the nearest surface voxel of the other mask;
# * HD95 is the larger of the two *directed* 95th percentiles (``numpy.percentile``, linear
#   interpolation), MONAI's definition (medpy's ``hd95`` pools both directions first);
# * the symmetric average surface distance is the mean of both directions' distances pooled
#   together, MONAI's definition (medpy's ``assd`` averages the two directed means);
# * an empty mask: both empty -> ``nan`` (nothing to measure), exactly one empty -> ``inf``
#   (MONAI's values; it also warns). A challenge or a table that needs a finite number
#   replaces ``inf`` by a stated worst value, e.g. the image diagonal.


def _boundary_pair(y_true, y_pred, spacing) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both masks as bool arrays of one 2D or 3D shape, and the spacing per axis."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"Masks of different shapes {t.shape} and {p.shape}: resize the prediction to the "
                         f"ground truth's shape (nearest neighbour) before measuring distances.")
    if t.ndim not in (2, 3):
        raise ValueError(f"Boundary distances need one 2D mask (H, W) or one 3D volume (D, H, W), got shape "
                         f"{t.shape}: take one case (and one channel) at a time, e.g. y[0, ..., 0].")
    return t.astype(bool), p.astype(bool), _spacing(spacing, t.ndim)


def _spacing(spacing, ndim: int) -> np.ndarray:
    """``spacing`` as one positive float per axis (None: 1.0, i.e. distances in voxels)."""
    if spacing is None:
        return np.ones(ndim)
    values = np.atleast_1d(np.asarray(spacing, dtype=np.float64))
    if values.size == 1:
        values = np.repeat(values, ndim)
    if values.shape != (ndim,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"spacing must be one positive number or {ndim} of them (one per axis of the mask, "
                         f"in its axis order, e.g. millimetres per voxel), got {spacing!r}.")
    return values


def mask_surface(mask: ArrayLike) -> np.ndarray:
    """The surface of a binary mask: its voxels with a 4-connected (2D) or 6-connected (3D)
    neighbour outside the mask, voxels on the array's edge included.

    Args:
        mask: 2D ``(H, W)`` or 3D ``(D, H, W)`` array; non-zero is foreground.

    Returns:
        A bool array of the mask's shape, True on the surface (empty for an empty mask).
    """
    from scipy import ndimage

    mask = np.asarray(mask).astype(bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def surface_distances(y_from: ArrayLike, y_to: ArrayLike, spacing: ArrayLike | None = None) -> np.ndarray:
    """Directed surface distances: for every surface voxel of ``y_from``, the distance to the
    nearest surface voxel of ``y_to`` (see :func:`mask_surface`).

    Args:
        y_from: binary mask, 2D ``(H, W)`` or 3D ``(D, H, W)``; non-zero is foreground.
        y_to: binary mask of the same shape.
        spacing: size of a voxel along each axis, in the order of the array's axes (e.g.
            millimetres; one number for all axes); None measures in voxels.

    Returns:
        float64 array, one distance per surface voxel of ``y_from`` (in the units of
        ``spacing``). Empty when ``y_from`` is empty; all ``inf`` when ``y_to`` is empty
        and ``y_from`` is not (MONAI's convention).

    Raises:
        ValueError: the shapes differ, a mask is not 2D or 3D, or ``spacing`` is not positive.
    """
    a, b, sampling = _boundary_pair(y_from, y_to, spacing)
    return _directed_distances(mask_surface(a), mask_surface(b), sampling)


def _directed_distances(edges_a: np.ndarray, edges_b: np.ndarray, sampling: np.ndarray) -> np.ndarray:
    """Distance from every True voxel of ``edges_a`` to the nearest True voxel of ``edges_b``."""
    from scipy import ndimage

    if not edges_a.any():
        return np.zeros(0)
    if not edges_b.any():
        return np.full(int(edges_a.sum()), np.inf)
    # Crop to the box holding both surfaces (plus a margin of one voxel): every nearest
    # surface voxel lies inside it, so the distances are exact, and 3D volumes stay fast.
    both = np.argwhere(edges_a | edges_b)
    low = np.maximum(both.min(axis=0) - 1, 0)
    high = np.minimum(both.max(axis=0) + 2, edges_a.shape)
    box = tuple(slice(lo, hi) for lo, hi in zip(low, high))
    distance = ndimage.distance_transform_edt(~edges_b[box], sampling=sampling)
    return np.asarray(distance[edges_a[box]], dtype=np.float64)


def _both_directions(y_true, y_pred, spacing) -> tuple[np.ndarray, np.ndarray] | float:
    """``(d(pred -> true), d(true -> pred))``, or MONAI's value when a mask is empty: nan if
    both are, inf if exactly one is.
    """
    t, p, sampling = _boundary_pair(y_true, y_pred, spacing)
    has_true, has_pred = bool(t.any()), bool(p.any())
    if not (has_true and has_pred):
        return float("inf") if has_true or has_pred else float("nan")
    edges_true, edges_pred = mask_surface(t), mask_surface(p)
    return (_directed_distances(edges_pred, edges_true, sampling),
            _directed_distances(edges_true, edges_pred, sampling))


def hausdorff_distance(y_true: ArrayLike, y_pred: ArrayLike, spacing: ArrayLike | None = None,
                       percentile: float | None = 95) -> float:
    """Hausdorff distance between the surfaces of two binary masks of one case, by default
    its 95th percentile (HD95), in physical units.

    ``max(P(d(pred -> true)), P(d(true -> pred)))`` where ``d`` are the directed surface
    distances (:func:`surface_distances`) and ``P`` their ``percentile`` (``numpy.percentile``,
    linear interpolation), as MONAI's ``HausdorffDistanceMetric(percentile=95)``. With
    ``percentile=None`` or 100 it is the classic (maximum) Hausdorff distance. Unlike Dice,
    it punishes a small false blob far from the organ.

    Args:
        y_true: ground-truth mask, 2D ``(H, W)`` or 3D ``(D, H, W)``; non-zero is foreground.
        y_pred: predicted binary mask of the same shape (threshold probabilities first).
        spacing: voxel size per axis in the array's axis order (e.g. millimetres from a
            NIfTI header, in the order of the array's axes), or one number for all axes;
            None measures in pixels/voxels.
        percentile: in [0, 100]; 95 by default, None or 100 for the maximum.

    Returns:
        The distance as a float: ``nan`` when both masks are empty, ``inf`` when exactly one
        is (MONAI's conventions), 0.0 for identical non-empty masks.

    Raises:
        ValueError: shapes differ, a mask is not 2D or 3D, ``spacing`` is not positive, or
            ``percentile`` is outside [0, 100].
    """
    if percentile is not None and not 0 <= float(percentile) <= 100:
        raise ValueError(f"percentile must be between 0 and 100 (95 for HD95, 100 or None for the maximum), "
                         f"got {percentile}.")
    pair = _both_directions(y_true, y_pred, spacing)
    if isinstance(pair, float):
        return pair
    forward, backward = pair
    if percentile is None or float(percentile) == 100:
        return float(max(forward.max(), backward.max()))
    return float(max(np.percentile(forward, float(percentile)), np.percentile(backward, float(percentile))))


def average_surface_distance(y_true: ArrayLike, y_pred: ArrayLike, spacing: ArrayLike | None = None,
                             symmetric: bool = True) -> float:
    """Average surface distance between two binary masks of one case, in physical units.

    With ``symmetric`` (default) the mean of the directed surface distances of both
    directions pooled together (``pred -> true`` and ``true -> pred``, see
    :func:`surface_distances`), as MONAI's ``SurfaceDistanceMetric(symmetric=True)``;
    otherwise the mean distance from the prediction's surface to the truth's.

    Args:
        y_true: ground-truth mask, 2D ``(H, W)`` or 3D ``(D, H, W)``; non-zero is foreground.
        y_pred: predicted binary mask of the same shape.
        spacing: voxel size per axis (array axis order) or one number; None: pixels/voxels.
        symmetric: pool both directions (True) or only prediction -> truth (False).

    Returns:
        The mean distance as a float: ``nan`` when both masks are empty, ``inf`` when
        exactly one is (in either direction; MONAI's conventions), 0.0 for identical
        non-empty masks.

    Raises:
        ValueError: shapes differ, a mask is not 2D or 3D, or ``spacing`` is not positive.
    """
    pair = _both_directions(y_true, y_pred, spacing)
    if isinstance(pair, float):
        return pair
    forward, backward = pair
    return float(np.concatenate([forward, backward]).mean() if symmetric else forward.mean())



# --------------------------------------------------------------------------------------
# Reliability: intervals over cases, calibration, where the uncertainty sits
# --------------------------------------------------------------------------------------

class Interval(NamedTuple):
    """A mean over cases and its bootstrap interval (:func:`bootstrap_interval`)."""

    mean: float
    low: float
    high: float


def bootstrap_interval(values: ArrayLike, n_resamples: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> Interval:
    """The mean of per-case ``values`` and a percentile bootstrap interval for it.

    The cases are resampled with replacement ``n_resamples`` times (each resample as many
    cases as ``values``); the interval runs from the ``(1 - confidence) / 2`` to the
    ``(1 + confidence) / 2`` quantile of the resampled means. It says how much the mean
    would move on another test set of the same size from the same source; it does not cover
    a different source (another hospital, another scanner). For a paired comparison of two
    recipes on the same cases pass the per-case differences.

    Args:
        values: one finite number per case (a 1-D sequence, e.g. the per-image Dice).
        n_resamples: number of bootstrap resamples (at least 1; 2000 gives stable 95 % limits
            to about the third decimal of a Dice).
        confidence: coverage of the interval, strictly between 0 and 1.
        seed: seed of the resampling (the same values and seed give the same interval).

    Returns:
        ``Interval(mean, low, high)``, floats, ``low <= mean <= high`` up to the resampling.

    Raises:
        ValueError: ``values`` is empty, not one-dimensional or not finite (drop or count
            ``nan``/``inf`` cases first, e.g. an HD95 of an empty prediction), ``confidence``
            is not in (0, 1), or ``n_resamples`` < 1.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"bootstrap_interval needs a 1-D sequence of per-case values, got shape {values.shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"bootstrap_interval got {int(np.sum(~np.isfinite(values)))} non-finite value(s) "
                         f"(nan/inf, e.g. the HD95 of an empty prediction): drop them and report their count.")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1 (e.g. 0.95), got {confidence}.")
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be at least 1 (e.g. 2000), got {n_resamples}.")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(int(n_resamples), values.size))].mean(axis=1)
    alpha = (1.0 - float(confidence)) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(float(values.mean()), float(low), float(high))


def _pixels(probabilities, masks) -> tuple[np.ndarray, np.ndarray]:
    probabilities = list(probabilities) if isinstance(probabilities, (list, tuple)) else [probabilities]
    masks = list(masks) if isinstance(masks, (list, tuple)) else [masks]
    if len(probabilities) != len(masks):
        raise ValueError(f"{len(probabilities)} probability maps but {len(masks)} masks: pass one mask per map.")
    p_all, t_all = [], []
    for i, (p, t) in enumerate(zip(probabilities, masks)):
        p, t = np.asarray(p, dtype=np.float64), np.asarray(t)
        if p.shape != t.shape:
            raise ValueError(f"case {i}: probabilities {p.shape} and mask {t.shape} differ in shape; resize the "
                             f"probabilities to the mask's size first (helpers.inference.resize_to).")
        p_all.append(p.ravel())
        t_all.append((t > 0).ravel())
    p, t = np.concatenate(p_all), np.concatenate(t_all)
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"probabilities must lie in [0, 1], got [{p.min():.3g}, {p.max():.3g}]: pass the "
                         f"model's sigmoid output, not logits or a thresholded mask times 255.")
    return p, t


def calibration_bins(probabilities: ArrayLike | list[ArrayLike], masks: ArrayLike | list[ArrayLike],
                     n_bins: int = 10) -> dict[str, np.ndarray]:
    """The numbers of a reliability diagram: pixels binned by predicted probability.

    Args:
        probabilities: one probability map or a list of them (any shape, values in [0, 1]).
        masks: the true binary masks, one per map and of its shape (non-zero is foreground).
        n_bins: equal-width bins over [0, 1]; a probability of exactly 1.0 goes to the last.

    Returns:
        ``{"edges": (n_bins + 1,), "confidence": (n_bins,), "frequency": (n_bins,),
        "count": (n_bins,)}``: per bin the mean predicted probability, the observed share of
        foreground pixels, and the number of pixels (empty bins hold ``nan``).

    Raises:
        ValueError: maps and masks differ in number or shape, probabilities outside [0, 1],
            or ``n_bins`` < 1.
    """
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}.")
    p, t = _pixels(probabilities, masks)
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, int(n_bins) - 1)
    count = np.bincount(index, minlength=int(n_bins)).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(index, weights=p, minlength=int(n_bins)) / count
        frequency = np.bincount(index, weights=t.astype(np.float64), minlength=int(n_bins)) / count
    return {"edges": edges, "confidence": confidence, "frequency": frequency, "count": count}


def expected_calibration_error(probabilities: ArrayLike | list[ArrayLike], masks: ArrayLike | list[ArrayLike],
                               n_bins: int = 10) -> float:
    """Expected calibration error (ECE) of pixel probabilities against the true masks.

    ``sum_b (n_b / N) |frequency_b - confidence_b|`` over the bins of
    :func:`calibration_bins`: 0 when, in every bin, the share of foreground pixels equals
    the mean predicted probability. The many confident background pixels weigh most, so a
    segmentation model's ECE is small even when its border pixels are miscalibrated: read
    it with the diagram.

    Args:
        probabilities: predicted foreground probabilities, as :func:`calibration_bins`.
        masks: the true binary masks, same shape.
        n_bins: number of equal-width probability bins.

    Returns:
        The ECE as a float in [0, 1].

    Raises:
        ValueError: as :func:`calibration_bins`, or no pixels at all.
    """
    bins = calibration_bins(probabilities, masks, n_bins)
    total = int(bins["count"].sum())
    if total == 0:
        raise ValueError("expected_calibration_error got no pixels.")
    used = bins["count"] > 0
    gaps = np.abs(bins["frequency"][used] - bins["confidence"][used])
    return float(np.sum(bins["count"][used] / total * gaps))


def errors_in_most_uncertain(uncertainty: ArrayLike, true_mask: ArrayLike, pred_mask: ArrayLike,
                             fraction: float = 0.05) -> float:
    """Share of the error pixels (prediction differs from the truth) that lie among the
    ``fraction`` most uncertain pixels of one case.

    Uncertainty that points at the errors gives far more than ``fraction`` (the share that
    a region of that size chosen at random would catch on average); uncertainty unrelated to
    the errors gives about ``fraction``.

    Args:
        uncertainty: per-pixel uncertainty (e.g. the variance of test-time-augmented
            probabilities), the masks' shape; larger is less certain.
        true_mask: the true binary mask of that shape (non-zero is foreground).
        pred_mask: the predicted binary mask, same shape.
        fraction: size of the most-uncertain region as a share of the pixels, in (0, 1].

    Returns:
        The share in [0, 1], or ``nan`` when the prediction has no error pixel.

    Raises:
        ValueError: shapes differ or ``fraction`` is not in (0, 1].
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], e.g. 0.05 for the 5 % most uncertain pixels, got {fraction}.")
    t, p = _as_bool_pair(true_mask, pred_mask)
    u = np.asarray(uncertainty, dtype=np.float64)
    if u.shape != t.shape:
        raise ValueError(f"uncertainty {u.shape} and masks {t.shape} differ in shape; resize it to the masks' size.")
    errors = (t != p).ravel()
    if not errors.any():
        return float("nan")
    k = max(1, int(round(float(fraction) * u.size)))
    top = np.zeros(u.size, bool)
    top[np.argsort(-u.ravel(), kind="stable")[:k]] = True
    return float(np.count_nonzero(errors & top) / np.count_nonzero(errors))
