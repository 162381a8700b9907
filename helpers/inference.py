"""From a trained model to delivered masks: predict, threshold, clean up, measure, save.

* :func:`predict_dataset` returns probabilities ``(N, H, W)`` in the order of the pairs;
* :func:`threshold` turns them into binary masks; :func:`resize_to` brings a prediction
  back to the size of the original image;
* :func:`threshold_sweep` and :func:`choose_threshold` decide the threshold on validation
  data; :func:`predict_tta` predicts mirrored and shifted copies (test-time augmentation);
* :func:`keep_largest_components`, :func:`fill_holes` and :func:`postprocess` remove
  specks and holes (two lungs, no holes);
* :func:`per_case_metrics` gives one row of Dice, IoU, sensitivity and precision per
  image, :func:`summarise` their means, :func:`save_table_csv` writes the table and
  :func:`save_masks_png` the masks (neither overwrites a file unless ``force=True``);
* :func:`segment_radiograph` runs a chest X-ray model on one image file of any size and
  bit depth (the preprocessing of ``python -m helpers data prepare``) and returns the
  mask at the file's size and the lung area;
* :func:`sliding_window` predicts a whole volume (a CT larger than the network's patch)
  window by window and blends the overlapping windows back into probabilities on the
  volume's grid; its two parts are :func:`window_positions` (where the windows go, from
  :func:`window_starts` along each axis) and :func:`blending_weights` (how much each voxel
  of a window counts).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    import keras

__all__ = [
    "predict_dataset", "threshold", "resize_to", "keep_largest_components", "fill_holes",
    "postprocess", "threshold_sweep", "choose_threshold", "predict_tta", "TTA_FLIP", "TTA_SHIFT",
    "metrics_table", "save_prediction", "per_case_metrics", "summarise", "evaluate_cxr", "save_table_csv", "save_masks_png",
    "METRIC_COLUMNS", "RadiographSegmentation", "looks_negative", "segment_radiograph",
    "window_starts", "window_positions", "blending_weights", "sliding_window", "finest_spacing_within_budget",
    "Blend",
]

#: How :func:`sliding_window` weighs the voxels of overlapping windows (:func:`blending_weights`).
Blend = Literal["gaussian", "constant"]

#: Columns of :func:`per_case_metrics` rows, in order.
METRIC_COLUMNS = ("name", "dice", "iou", "sensitivity", "precision", "true_pixels", "predicted_pixels")


# --------------------------------------------------------------------------- prediction

def _model_image_size(model) -> tuple:
    shape = tuple(model.input_shape)
    return tuple(int(s) for s in shape[1:-1])


def predict_dataset(model: keras.Model, dataset: Any, batch_size: int = 16,
                    image_size: Sequence[int] | None = None, progress: bool = True) -> np.ndarray:
    """Predict every case of ``dataset`` and return the probabilities in the order of its
    pairs, float32 ``(N, H, W)`` for one output channel, ``(N, H, W, C)`` otherwise.

    ``dataset`` is a list of ``(image, mask)`` pairs (read, scaled and resized to the
    model's input size ``image_size`` like in training, never augmented) or a
    :class:`helpers.generator.SegmentationDataset` (its own order is undone if it
    shuffles, so row ``i`` always belongs to ``dataset.pairs[i]``) or any Keras
    ``PyDataset`` returning ``x`` or ``(x, y)`` batches (taken in batch order).
    Probabilities stay at the model's size: see :func:`resize_to`. A progress bar is
    shown for more than 8 batches if ``progress``.

    Args:
        model: a Keras model (``predict_on_batch`` is used).
        dataset: ``(image, mask)`` path pairs, a ``SegmentationDataset`` or a ``PyDataset``.
        batch_size: images per forward pass (for a list of pairs).
        image_size: the model's input size ``(H, W)`` for a list of pairs; None reads it
            from the model.
        progress: show a progress bar (for more than 8 batches).

    Returns:
        float32 probabilities ``(N, H, W)`` (one output channel) or ``(N, H, W, C)``.

    Raises:
        ValueError: an empty list of pairs.
    """
    from tqdm.auto import tqdm

    from helpers.generator import SegmentationDataset

    if isinstance(dataset, (list, tuple)):
        if not dataset:
            raise ValueError("predict_dataset got no pairs: pass a list of (image, mask) pairs.")
        size = tuple(image_size) if image_size is not None else _model_image_size(model)
        dataset = SegmentationDataset(list(dataset), batch_size=batch_size, image_size=size,
                                      augment=False, shuffle=False)
    order = None
    if isinstance(dataset, SegmentationDataset):
        order = np.asarray(dataset.order).copy()
    outputs = []
    batches = range(len(dataset))
    if progress and len(dataset) > 8:
        batches = tqdm(batches, desc="predicting", unit="batch", leave=False)
    for index in batches:
        batch = dataset[index]
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        outputs.append(np.asarray(model.predict_on_batch(x), dtype=np.float32))
    probs = np.concatenate(outputs, axis=0)
    if order is not None:
        unshuffled = np.empty_like(probs)
        unshuffled[order[:len(probs)]] = probs
        probs = unshuffled
    if probs.shape[-1] == 1:
        probs = probs[..., 0]
    return probs


def threshold(probs: ArrayLike, value: float = 0.5) -> np.ndarray:
    """Binary mask, uint8 ``{0, 1}`` of the shape of ``probs``: 1 where the probability
    is strictly above ``value`` (the Keras metric ``hard_dice`` uses the same rule).

    Args:
        probs: probabilities, any shape.
        value: the threshold, in [0, 1].

    Returns:
        uint8 ``{0, 1}`` array of the shape of ``probs``.

    Raises:
        ValueError: ``value`` is outside [0, 1].
    """
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"threshold value must be in [0, 1], got {value}.")
    return (np.asarray(probs) > value).astype(np.uint8)


def resize_to(prediction: ArrayLike, shape: Sequence[int]) -> np.ndarray:
    """Resize one prediction ``(h, w)`` (or ``(d, h, w)``) to ``shape``: probabilities
    (float) linearly, masks and label maps (integers, bool) by nearest neighbour so they
    keep their values. Returns the input unchanged when the shape already matches.

    Args:
        prediction: probabilities (float) or a mask or label map (integer, bool).
        shape: the target shape, as many axes as ``prediction``.

    Returns:
        The resized array, of ``prediction``'s dtype.
    """
    prediction = np.asarray(prediction)
    shape = tuple(int(s) for s in shape)
    if prediction.shape == shape:
        return prediction
    from skimage.transform import resize

    if np.issubdtype(prediction.dtype, np.floating):
        return resize(prediction, shape, order=1, preserve_range=True,
                      anti_aliasing=False).astype(prediction.dtype)
    return resize(prediction, shape, order=0, preserve_range=True,
                  anti_aliasing=False).astype(prediction.dtype)


# --------------------------------------------------------------------------- post-processing

def keep_largest_components(mask: ArrayLike, n: int = 2) -> np.ndarray:
    """Keep the ``n`` largest connected components of a binary mask (2D or 3D), and
    remove every other one. Pixels touching by an edge or a corner are connected. Returns
    uint8 ``{0, 1}`` of the mask's shape; a mask with ``n`` components or fewer is
    returned as it is (as uint8).

    Args:
        mask: a binary mask, 2D or 3D (non-zero is foreground).
        n: the number of components to keep.

    Returns:
        uint8 ``{0, 1}`` array of the mask's shape.

    Raises:
        ValueError: ``n < 1``.
    """
    from skimage.measure import label

    mask = np.asarray(mask).astype(bool)
    if int(n) < 1:
        raise ValueError(f"n must be >= 1 (components to keep), got {n}.")
    labels, count = label(mask, connectivity=mask.ndim, return_num=True)
    if count <= n:
        return mask.astype(np.uint8)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    keep = np.argsort(sizes, kind="stable")[::-1][:n]
    return np.isin(labels, keep).astype(np.uint8)


def fill_holes(mask: ArrayLike) -> np.ndarray:
    """Fill the holes of a binary mask: background regions that do not touch the border
    become foreground (``scipy.ndimage.binary_fill_holes``, in 2D or 3D). Returns uint8
    ``{0, 1}`` of the mask's shape.

    Args:
        mask: a binary mask (non-zero is foreground).

    Returns:
        uint8 ``{0, 1}`` array of the mask's shape.
    """
    from scipy import ndimage

    return ndimage.binary_fill_holes(np.asarray(mask).astype(bool)).astype(np.uint8)


def postprocess(mask: ArrayLike, n_components: int = 2, fill: bool = True) -> np.ndarray:
    """Clean a binary lung mask: keep its ``n_components`` largest components (two lungs)
    and, if ``fill``, fill its holes. uint8 ``{0, 1}`` of the mask's shape.

    Args:
        mask: a binary mask, 2D or 3D (non-zero is foreground).
        n_components: the number of largest components to keep.
        fill: fill the holes afterwards.

    Returns:
        uint8 ``{0, 1}`` array of the mask's shape.

    Raises:
        ValueError: ``n_components < 1``.
    """
    cleaned = keep_largest_components(mask, n=n_components)
    return fill_holes(cleaned) if fill else cleaned


# --------------------------------------------------------------------------- decisions on validation data

def threshold_sweep(probabilities: ArrayLike | Sequence[ArrayLike], masks: ArrayLike | Sequence[ArrayLike],
                    candidates: Sequence[float]) -> np.ndarray:
    """Mean per-image Dice of the masks ``probabilities > t`` for every threshold ``t``.

    Run it on **validation** data: the threshold it supports is a decision, and the test
    set is only for the one final measurement.

    Args:
        probabilities: one probability map per image (a list of arrays, or an array
            ``(N, H, W)``), each at the size of its mask (:func:`resize_to` first).
        masks: the true binary masks, one per map (non-zero is foreground).
        candidates: the thresholds to try, each in [0, 1].

    Returns:
        float64 ``(len(candidates),)``: the mean over images of the exact Dice
        (:func:`helpers.metrics.dice_numpy`, 1.0 for two empty masks) at each candidate.

    Raises:
        ValueError: no candidates, a candidate outside [0, 1], no images, a different number
            of maps and masks, or a map and its mask of different shapes.
    """
    from helpers import metrics

    candidates = [float(c) for c in candidates]
    if not candidates or any(not 0.0 <= c <= 1.0 for c in candidates):
        raise ValueError(f"candidates must be a non-empty list of thresholds in [0, 1], got {candidates}.")
    probabilities, masks = list(probabilities), list(masks)
    if not probabilities or len(probabilities) != len(masks):
        raise ValueError(f"threshold_sweep needs one mask per probability map, got {len(probabilities)} maps "
                         f"and {len(masks)} masks.")
    truths = [np.asarray(m) > 0 for m in masks]
    maps = [np.asarray(p) for p in probabilities]
    for i, (p, t) in enumerate(zip(maps, truths)):
        if p.shape != t.shape:
            raise ValueError(f"image {i}: probabilities {p.shape} and mask {t.shape} differ in shape; resize "
                             f"the probabilities to the mask's size first (inference.resize_to).")
    return np.array([np.mean([metrics.dice_numpy(t, p > c) for p, t in zip(maps, truths)])
                     for c in candidates], dtype=np.float64)


def choose_threshold(probabilities: ArrayLike | Sequence[ArrayLike], masks: ArrayLike | Sequence[ArrayLike],
                     candidates: Sequence[float]) -> float:
    """Lesson 05's decision (Exercise 5.3): the candidate threshold with the best mean
    per-image Dice on the data given (validation data); on a tie the first of the tied
    candidates, in the order of ``candidates``.

    Args:
        probabilities: one probability map per image, as :func:`threshold_sweep`.
        masks: the true binary masks, one per map.
        candidates: the thresholds to try, each in [0, 1].

    Returns:
        The chosen threshold, one of ``candidates``, as a float.

    Raises:
        ValueError: as :func:`threshold_sweep`.
    """
    sweep = threshold_sweep(probabilities, masks, candidates)
    return float(list(candidates)[int(np.argmax(sweep))])


# --------------------------------------------------------------------------- test-time augmentation

#: Test-time augmentations for :func:`predict_tta`, each ``(mirror left-right, shift down,
#: shift right)`` with shifts in pixels of the model's input. The first is the plain image.
TTA_FLIP = ((False, 0, 0), (True, 0, 0))
TTA_SHIFT = ((False, 0, 0), (False, 4, 0), (False, -4, 0), (False, 0, 4), (False, 0, -4))


def _shift(batch: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``batch`` ``(B, H, W, ...)`` moved by ``dy`` rows down and ``dx`` columns right; the
    rows and columns that come in repeat the edge (as the augmentation in training does).
    """
    if dy == 0 and dx == 0:
        return batch
    ay, ax = abs(int(dy)), abs(int(dx))
    pad = [(0, 0), (ay, ay), (ax, ax)] + [(0, 0)] * (batch.ndim - 3)
    padded = np.pad(batch, pad, mode="edge")
    h, w = batch.shape[1:3]
    return padded[:, ay - int(dy):ay - int(dy) + h, ax - int(dx):ax - int(dx) + w]


def predict_tta(model: keras.Model, pairs: Sequence[tuple[Any, Any]],
                augmentations: Sequence[tuple[bool, int, int]] = TTA_FLIP,
                batch_size: int = 16, image_size: Sequence[int] | None = None) -> np.ndarray:
    """Test-time augmentation: predict every augmented copy of every image and map each
    prediction back onto the original image.

    Each image is read as in :func:`predict_dataset` (never augmented randomly), then for each
    augmentation ``(flip, dy, dx)`` mirrored left-right if ``flip``, moved by ``dy`` rows and
    ``dx`` columns (edges repeated), predicted, and moved and mirrored back. The mean over the
    first axis is the test-time-augmented probability; the variance a per-pixel uncertainty.

    Args:
        model: a Keras model with one sigmoid output channel (2D images).
        pairs: ``(image, mask)`` path pairs, as for :func:`predict_dataset`.
        augmentations: the copies to predict (:data:`TTA_FLIP`, :data:`TTA_SHIFT`, or your
            own); include ``(False, 0, 0)`` for the plain image.
        batch_size: images per forward pass.
        image_size: the model's input size ``(H, W)``; None reads it from the model.

    Returns:
        float32 ``(len(augmentations), N, H, W)``, in the order of ``augmentations`` and of
        ``pairs``, at the model's size (:func:`resize_to` brings each map to its mask's size).

    Raises:
        ValueError: no pairs or no augmentations, a shift not smaller than the image, or a
            model with more than one output channel.
    """
    from helpers.generator import SegmentationDataset

    pairs = list(pairs)
    augmentations = [(bool(f), int(dy), int(dx)) for f, dy, dx in augmentations]
    if not pairs or not augmentations:
        raise ValueError(f"predict_tta needs pairs and augmentations, got {len(pairs)} pair(s) and "
                         f"{len(augmentations)} augmentation(s).")
    size = tuple(image_size) if image_size is not None else _model_image_size(model)
    if any(abs(dy) >= size[0] or abs(dx) >= size[1] for _, dy, dx in augmentations):
        raise ValueError(f"shifts must be smaller than the image {size}, got {augmentations}.")
    dataset = SegmentationDataset(pairs, batch_size=batch_size, image_size=size, augment=False, shuffle=False)
    x = np.concatenate([dataset[i][0] for i in range(len(dataset))], axis=0)
    out = np.empty((len(augmentations), len(x)) + x.shape[1:3], np.float32)
    for a, (flip, dy, dx) in enumerate(augmentations):
        for start in range(0, len(x), int(batch_size)):
            batch = x[start:start + int(batch_size)]
            batch = _shift(batch[:, :, ::-1] if flip else batch, dy, dx)
            probs = np.asarray(model.predict_on_batch(np.ascontiguousarray(batch)), dtype=np.float32)
            if probs.shape[-1] != 1:
                raise ValueError(f"predict_tta handles one sigmoid output channel, the model gives {probs.shape[-1]}.")
            probs = _shift(probs, -dy, -dx)
            out[a, start:start + len(batch)] = (probs[:, :, ::-1] if flip else probs)[..., 0]
    return out


# --------------------------------------------------------------------------- evaluation

def _case_name(case, index: int) -> str:
    if isinstance(case, (tuple, list)) and case and isinstance(case[0], (str, Path)):
        return Path(case[0]).name
    return f"case_{index:03d}"


def _true_mask(case) -> np.ndarray:
    if isinstance(case, (tuple, list)) and len(case) == 2 and isinstance(case[1], (str, Path)):
        from helpers.generator import read_any_mask

        return read_any_mask(case[1])
    return np.asarray(case)


def metrics_table(true_masks: Sequence[ArrayLike], predicted_masks: Sequence[ArrayLike],
                  names: Sequence[str]) -> list[dict]:
    """Lesson 05's per-image table (Exercise 5.2): one row per image, in order.

    Args:
        true_masks: the true masks, each an array of any shape (0/1 or boolean; > 0 is
            foreground).
        predicted_masks: the predicted masks, the same number and shapes.
        names: one name per image.

    Returns:
        A list of dicts ``{"name": str, "dice": float, "iou": float}``, the exact Dice and
        IoU of each pair; both are 1.0 when both masks are empty.
    """
    from helpers import metrics

    return [{"name": name, "dice": float(metrics.dice_numpy(truth, pred)),
             "iou": float(metrics.iou_numpy(truth, pred))}
            for truth, pred, name in zip(true_masks, predicted_masks, names)]


def save_prediction(probabilities: ArrayLike, working_affine: ArrayLike, reference_path: str | Path,
                    output_path: str | Path, threshold: float = 0.5) -> Path:
    """Save a prediction made on a working grid (reoriented, resampled) as a mask on a CT's
    own grid, with the CT's affine (lesson 06).

    Args:
        probabilities: ``(X, Y, Z)`` probabilities on the working grid.
        working_affine: the 4 x 4 affine of the working grid (millimetres).
        reference_path: the CT's NIfTI file: its shape and affine are the output's.
        output_path: where to write the mask (``.nii.gz``); an existing file is replaced.
        threshold: foreground where the resampled probability is above it.

    Returns:
        ``output_path``: a uint8 ``{0, 1}`` NIfTI mask, the probabilities resampled linearly
        in millimetres onto the CT's grid (:func:`helpers.geometry.resample_to_grid`) and
        thresholded, saved with the CT's affine.
    """
    from helpers import data, geometry

    reference, affine = data.load_nifti(reference_path)
    resampled = geometry.resample_to_grid(np.asarray(probabilities, dtype=np.float32), working_affine,
                                          reference.shape, affine)
    mask = (resampled > threshold).astype(np.uint8)
    return data.save_nifti(mask, affine, output_path, force=True)


def per_case_metrics(cases: Sequence[Any], predictions: Sequence[ArrayLike] | np.ndarray, threshold: float = 0.5,
                     postprocess: Callable | None = None, names: Sequence[str] | None = None) -> list[dict]:
    """One row per case: ``name``, ``dice``, ``iou``, ``sensitivity``, ``precision``,
    ``true_pixels`` and ``predicted_pixels``.

    ``cases`` are ``(image, mask)`` pairs (the mask file is read) or the true masks
    themselves (an array ``(N, H, W)`` or a list of arrays). ``predictions`` hold one
    prediction per case: probabilities (float; resized linearly to the true mask's size,
    then thresholded at ``threshold``) or binary masks (integers or bool; resized by
    nearest neighbour). ``postprocess`` (e.g. :func:`postprocess`) is applied to each
    binary mask. Metrics are the exact NumPy ones of :mod:`helpers.metrics` (an empty
    truth and prediction scores 1.0 Dice). Names come from ``names``, the image file
    names, or ``case_000``...

    Args:
        cases: ``(image, mask)`` path pairs or the true masks.
        predictions: one prediction per case (probabilities or binary masks).
        threshold: probabilities above it are foreground.
        postprocess: a function applied to each binary mask, or None.
        names: one name per case, or None.

    Returns:
        A list of dicts, one per case, with the keys of :data:`METRIC_COLUMNS`.

    Raises:
        ValueError: the numbers of cases, predictions and names differ.
    """
    from helpers import metrics

    cases = list(cases)
    if len(cases) != len(predictions):
        raise ValueError(f"{len(cases)} cases but {len(predictions)} predictions: predict every "
                         f"case once, in the same order (predict_dataset keeps the order).")
    if names is not None and len(names) != len(cases):
        raise ValueError(f"{len(names)} names for {len(cases)} cases.")
    rows = []
    for index, case in enumerate(cases):
        truth = _true_mask(case) > 0
        prediction = np.asarray(predictions[index])
        if prediction.ndim == truth.ndim + 1 and prediction.shape[-1] == 1:
            prediction = prediction[..., 0]
        prediction = resize_to(prediction, truth.shape)
        if np.issubdtype(prediction.dtype, np.floating):
            binary = prediction > threshold
        else:
            binary = prediction > 0
        if postprocess is not None:
            binary = np.asarray(postprocess(binary.astype(np.uint8))) > 0
        rows.append({
            "name": names[index] if names is not None else _case_name(case, index),
            "dice": metrics.dice_numpy(truth, binary),
            "iou": metrics.iou_numpy(truth, binary),
            "sensitivity": metrics.sensitivity_numpy(truth, binary, empty=1.0),
            "precision": metrics.precision_numpy(truth, binary, empty=1.0),
            "true_pixels": int(truth.sum()),
            "predicted_pixels": int(binary.sum()),
        })
    return rows


def summarise(rows: Sequence[dict], keys: Sequence[str] = ("dice", "iou", "sensitivity", "precision")) -> dict:
    """Mean of each of ``keys`` over the rows of :func:`per_case_metrics`, rounded to 4
    digits: ``{"dice": 0.962, ...}``.

    Args:
        rows: the rows of :func:`per_case_metrics`.
        keys: the columns to average.

    Returns:
        ``{key: mean}``.

    Raises:
        ValueError: no rows.
    """
    if not rows:
        raise ValueError("summarise got no rows.")
    return {key: round(float(np.mean([row[key] for row in rows])), 4) for key in keys}


# --------------------------------------------------------------------------- saving

def _refuse_existing(paths: Sequence[Path], force: bool) -> None:
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise FileExistsError(f"{existing[0]}{more} already exists and would be overwritten: "
                              f"pass force=True to replace it, or choose another folder or name.")


def save_table_csv(rows: Sequence[dict], path: str | Path, force: bool = False) -> Path:
    """Write the rows of :func:`per_case_metrics` (any list of dicts with the same keys)
    as a CSV file with a header line; floats with 6 significant digits. Refuses to
    overwrite an existing file unless ``force=True`` (FileExistsError naming it). Returns
    the path.

    Args:
        rows: dicts with the same keys, one per line.
        path: the CSV file to write (its folder is created).
        force: replace an existing file.

    Returns:
        ``path``, as a ``Path``.

    Raises:
        ValueError: no rows.
        FileExistsError: ``path`` exists and ``force`` is False.
    """
    from helpers.data._store import atomic_write_bytes

    path = Path(path)
    rows = list(rows)
    if not rows:
        raise ValueError(f"No rows to write to {path}.")
    _refuse_existing([path], force)
    columns = list(rows[0])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: (f"{value:.6g}" if isinstance(value, float) else value)
                         for key, value in row.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue().encode())
    return path


def save_masks_png(masks: Sequence[ArrayLike] | np.ndarray, names: Sequence[str], folder: str | Path,
                   force: bool = False) -> list[Path]:
    """Save binary masks ``(H, W)`` as 8-bit PNG files (0 background, 255 foreground,
    the layout of the data sets) named ``names`` (``.png`` added if missing) in
    ``folder`` (created). Nothing is written if any target exists, unless ``force=True``
    (FileExistsError naming it). Returns the paths written.

    Args:
        masks: binary masks ``(H, W)`` (0/1, bool or 0/255).
        names: one file name per mask.
        folder: the folder to write into.
        force: replace existing files.

    Returns:
        The paths written, in the order of ``masks``.

    Raises:
        ValueError: the numbers of masks and names differ, two names give one file, or a
            mask is not 2D or not binary.
        FileExistsError: a target exists and ``force`` is False.
    """
    from PIL import Image

    from helpers.data._store import atomic_write_bytes

    folder = Path(folder)
    names = list(names)
    if len(names) != len(masks):
        raise ValueError(f"{len(masks)} masks but {len(names)} names: give one file name per mask.")
    paths = [folder / (name if str(name).lower().endswith(".png") else f"{name}.png") for name in names]
    if len(set(paths)) != len(paths):
        raise ValueError("Two masks would get the same file name: make the names unique.")
    _refuse_existing(paths, force)
    arrays = []
    for path, mask in zip(paths, masks):
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"Mask for {path.name} has shape {mask.shape}; expected (H, W).")
        values = np.unique(mask)
        if not set(values.tolist()) <= {0, 1, True, False} and not set(values.tolist()) <= {0, 255}:
            raise ValueError(f"Mask for {path.name} is not binary (values {values[:5].tolist()}...): "
                             f"threshold the probabilities first (inference.threshold).")
        arrays.append(((mask > 0) * 255).astype(np.uint8))
    folder.mkdir(parents=True, exist_ok=True)
    for path, array in zip(paths, arrays):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        atomic_write_bytes(path, buffer.getvalue())
    return paths


# --------------------------------------------------------------------------- one radiograph

@dataclass
class RadiographSegmentation:
    """What :func:`segment_radiograph` found on one radiograph.

    ``image``: the radiograph as 8-bit grey at the file's size (lungs dark, inverted back
    if the file was a negative), for display. ``mask``: uint8 ``{0, 1}`` at the file's
    size. ``probability``: float32 at the file's size (0 outside the cropped black
    border). ``lung_pixels``: pixels of the mask; ``lung_fraction``: their share of the
    image. ``inverted``: True if the file was read as a negative (white lungs).
    """

    image: np.ndarray
    mask: np.ndarray
    probability: np.ndarray
    lung_pixels: int
    lung_fraction: float
    inverted: bool


def looks_negative(image: ArrayLike) -> bool:
    """True if a frontal chest radiograph looks like a negative (lungs brighter than the
    mediastinum and spine): the central vertical band (columns 45-55 %, rows 25-70 %) is
    compared with the two lung bands (columns 18-35 % and 65-82 %, same rows). On a
    radiograph the spine and heart are brighter than the aerated lungs.

    Args:
        image: a 2D grey radiograph.

    Returns:
        True if the central band is darker than the lung bands.

    Raises:
        ValueError: ``image`` is not 2D.
    """
    array = np.asarray(image, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"looks_negative needs a 2D grey image, got shape {array.shape}.")
    h, w = array.shape
    rows = slice(int(0.25 * h), max(int(0.70 * h), int(0.25 * h) + 1))

    def band(lo: float, hi: float) -> np.ndarray:
        return array[rows, int(lo * w):max(int(hi * w), int(lo * w) + 1)]

    centre = float(np.median(band(0.45, 0.55)))
    lungs = float(np.median(np.concatenate([band(0.18, 0.35).ravel(), band(0.65, 0.82).ravel()])))
    return centre < lungs


def _overlap(a: slice, b: slice, length: int) -> slice:
    start = max(a.indices(length)[0], b.indices(length)[0])
    stop = min(a.indices(length)[1], b.indices(length)[1])
    return slice(start, max(start, stop))


def segment_radiograph(model: keras.Model, path: str | Path, invert: Literal["auto"] | bool = "auto",
                       threshold: float = 0.5, clean: bool = True,
                       prepared_size: int = 256) -> RadiographSegmentation:
    """Segment the lungs of one frontal chest radiograph file with a trained model.

    The file (PNG, JPEG, TIFF, ...; any size; 8 or 16 bit; grey or RGB, whose channels are
    averaged) gets the preprocessing of ``python -m helpers data prepare``: black-border
    crop, resize to ``prepared_size`` pixels, 5th-95th percentile stretch to 8 bit; then
    that of the lessons' data sets (percentile stretch to [0, 1], resize to the model's
    input size). The probabilities are resized back to the cropped region, thresholded at
    ``threshold``, cleaned with :func:`postprocess` if ``clean`` (two largest components,
    holes filled) and placed in a mask of the file's size.

    Args:
        model: a Keras model taking ``(1, H, W, 1)`` images in [0, 1] and returning lung
            probabilities ``(1, H, W, 1)`` (e.g. lesson 04's ``best.keras``).
        path: the image file.
        invert: ``"auto"`` detects a negative (white lungs, :func:`looks_negative`) and
            inverts it; ``True`` always inverts, ``False`` never does.
        threshold: probability above which a pixel is lung.
        clean: apply :func:`postprocess` to the mask.
        prepared_size: side of the intermediate image, as ``prepare --size`` (256 in the
            course).

    Returns:
        A :class:`RadiographSegmentation` (mask and probability at the file's size, lung
        area in pixels and as a fraction of the image, whether it was inverted).

    Raises:
        helpers.data.DatasetError: the file is missing, unreadable or not a 2D image.
        ValueError: ``invert`` is not ``"auto"``, True or False, or the model's input is
            not a single-channel 2D image.
    """
    from helpers.data.converters import crop_black_border, preprocess_cxr
    from helpers.data.io import read_grey
    from helpers.generator import percentile_stretch

    if invert not in ("auto", True, False):
        raise ValueError(f"invert must be 'auto', True or False, got {invert!r}.")
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[-1] != 1:
        raise ValueError(f"segment_radiograph needs a model of 2D grey images (input (None, H, W, 1)), "
                         f"but this model takes {shape}.")
    size = tuple(int(s) if s is not None else int(prepared_size) for s in shape[1:3])
    raw = read_grey(path)
    low, high = float(raw.min()), float(raw.max())
    if invert == "auto":
        # judge the polarity inside any black (or, on a negative, white) padding
        dark_rows, dark_cols = crop_black_border(raw - low)
        white_rows, white_cols = crop_black_border(high - raw)
        inner = raw[_overlap(dark_rows, white_rows, raw.shape[0]), _overlap(dark_cols, white_cols, raw.shape[1])]
        inverted = bool(looks_negative(inner if inner.size else raw))
    else:
        inverted = bool(invert)
    image = (high + low) - raw if inverted else raw
    rows, cols = crop_black_border(image - low)
    cropped = image[rows, cols]
    prepared, _ = preprocess_cxr(cropped, np.zeros(cropped.shape, bool), int(prepared_size))
    x = percentile_stretch(prepared.astype(np.float32))
    if x.shape != size:
        from skimage.transform import resize

        x = resize(x, size, order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)
    probs = np.asarray(model.predict_on_batch(x[None, ..., None]), dtype=np.float32)[0, ..., 0]
    probability = np.zeros(raw.shape, np.float32)
    probability[rows, cols] = np.clip(resize_to(probs, cropped.shape), 0.0, 1.0)
    mask = (probability > threshold).astype(np.uint8)
    if clean:
        mask = postprocess(mask)
    span = max(high - low, 1e-6)
    display = np.clip((image - low) / span * 255.0 + 0.5, 0, 255).astype(np.uint8)
    pixels = int(mask.sum())
    return RadiographSegmentation(image=display, mask=mask, probability=probability, lung_pixels=pixels,
                                  lung_fraction=pixels / mask.size, inverted=inverted)


def evaluate_cxr(model: keras.Model, pairs: Sequence[tuple[Any, Any]], threshold: float = 0.5,
                 batch_size: int = 16) -> float:
    """Mean per-image Dice of ``model`` on ``pairs``: probabilities are predicted at the
    model's input size, resized back to each mask's size, thresholded at ``threshold`` and
    compared with the mask (:func:`helpers.metrics.dice_numpy`). Returns a float in [0, 1].

    Args:
        model: a Keras model with one sigmoid output channel.
        pairs: ``(image, mask)`` path pairs.
        threshold: probabilities above it are foreground.
        batch_size: images per forward pass.

    Returns:
        The mean Dice over the pairs.

    Raises:
        ValueError: no pairs.
    """
    rows = per_case_metrics(pairs, predict_dataset(model, pairs, batch_size=batch_size), threshold=threshold)
    return float(np.mean([row["dice"] for row in rows]))


# --------------------------------------------------------------------------- sliding window
#
# Conventions are MONAI's ``sliding_window_inference`` (monai/inferers/utils.py), so that a
# learner moving on finds the same numbers: the step between windows is
# ``int(patch * (1 - overlap))`` (at least 1), the last window is moved back to end at the
# border (``dense_patch_slices``), a volume smaller than the patch is padded evenly with a
# constant (the extra voxel after), and the Gaussian weights are those of
# ``compute_importance_map``: sigma = ``sigma_scale * patch`` (0.125, as nnU-Net), centred at
# ``(n - 1) / 2`` (symmetric), peak about 1, clamped below at 1e-3 so that no voxel has zero
# weight. MONAI's default overlap is 0.25 and blend "constant"; ours are nnU-Net's 0.5 and
# "gaussian".

def _sizes(patch_size, ndim: int | None = None) -> tuple[int, ...]:
    sizes = (int(patch_size),) * (ndim or 3) if np.ndim(patch_size) == 0 else tuple(int(p) for p in patch_size)
    if not sizes or min(sizes) < 1 or (ndim is not None and len(sizes) != ndim):
        raise ValueError(f"patch_size must hold {ndim or 'one or more'} positive sizes (one per spatial axis), "
                         f"got {patch_size!r}.")
    return sizes


def _check_overlap(overlap: float) -> float:
    if not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"overlap is the fraction of a window shared with the next one, in [0, 1); got {overlap} "
                         f"(0.5 is the usual choice, 0 puts windows edge to edge).")
    return float(overlap)


def window_starts(length: int, patch: int, overlap: float = 0.5) -> list[int]:
    """Start indices of the windows along one axis of ``length`` voxels.

    Windows of ``patch`` voxels are placed every ``step = int(patch * (1 - overlap))``
    voxels (at least 1) from 0, and the last one is moved back to end exactly at the border,
    so every voxel is covered and no window sticks out (MONAI's ``dense_patch_slices``).
    E.g. ``window_starts(10, 4, 0.5) == [0, 2, 4, 6]``, ``window_starts(9, 4, 0.5) == [0,
    2, 4, 5]``, ``window_starts(4, 4) == [0]``.

    Args:
        length: voxels along the axis; at least ``patch`` (pad shorter axes first).
        patch: window size along the axis.
        overlap: fraction of a window shared with the next, in [0, 1).

    Returns:
        The starts, increasing, from 0 to ``length - patch``.

    Raises:
        ValueError: ``patch < 1``, ``length < patch`` or ``overlap`` outside [0, 1).
    """
    length, patch = int(length), int(patch)
    overlap = _check_overlap(overlap)
    if patch < 1:
        raise ValueError(f"patch must be >= 1 voxel, got {patch}.")
    if length < patch:
        raise ValueError(f"an axis of {length} voxels is shorter than the window ({patch}): pad the volume to the "
                         f"window size first (sliding_window does it for you).")
    step = max(1, int(patch * (1 - overlap)))
    return list(range(0, length - patch, step)) + [length - patch]


def finest_spacing_within_budget(table: Sequence[Sequence[float]], max_windows: int) -> float:
    """The finest working spacing whose sliding-window prediction stays within a budget.

    Args:
        table: rows ``(spacing_mm, n_windows, ...)``: a candidate spacing in millimetres and
            the number of windows a prediction of one case needs at that spacing (extra
            columns, e.g. the best reachable Dice, are ignored).
        max_windows: the most windows a prediction of one case may take.

    Returns:
        The smallest spacing (mm) of ``table`` with at most ``max_windows`` windows.

    Raises:
        ValueError: no row of ``table`` fits the budget.
    """
    fitting = [float(row[0]) for row in table if int(row[1]) <= int(max_windows)]
    if not fitting:
        raise ValueError(f"no spacing of the table needs at most {max_windows} windows; "
                         f"add coarser candidates or raise the budget.")
    return min(fitting)


def window_positions(shape: Sequence[int], patch_size: int | Sequence[int],
                     overlap: float = 0.5) -> list[tuple[int, ...]]:
    """The first voxel of every window that tiles a volume of ``shape``: all combinations of
    :func:`window_starts` along each axis, the last axis varying fastest.

    Args:
        shape: spatial shape, e.g. ``(X, Y, Z)``; each axis at least the patch's.
        patch_size: window size per axis (one number: the same for all).
        overlap: fraction of a window shared with its neighbour along each axis, in [0, 1).

    Returns:
        List of start tuples; window ``s`` covers ``volume[s[0]:s[0] + px, s[1]:s[1] + py, ...]``.

    Raises:
        ValueError: as :func:`window_starts`, or ``patch_size`` has another number of axes.
    """
    import itertools

    shape = tuple(int(n) for n in shape)
    sizes = _sizes(patch_size, len(shape))
    return list(itertools.product(*(window_starts(n, p, overlap) for n, p in zip(shape, sizes))))


def blending_weights(patch_size: int | Sequence[int], blend: Blend = "gaussian",
                     sigma_scale: float = 0.125) -> np.ndarray:
    """How much each voxel of a window counts when overlapping windows are averaged.

    ``"constant"``: 1 everywhere (a plain mean of the windows covering a voxel).
    ``"gaussian"``: the product over axes of ``exp(-(i - (n - 1) / 2)**2 / (2 sigma**2))``
    with ``sigma = sigma_scale * n``, i.e. 1 at the centre, falling towards the edges where a
    network sees the least context, then clamped below at 1e-3 so that no voxel gets zero
    weight (MONAI's ``compute_importance_map``; nnU-Net uses the same sigma of 1/8).

    Args:
        patch_size: window size per axis, e.g. ``(px, py, pz)``.
        blend: ``"gaussian"`` or ``"constant"``.
        sigma_scale: sigma as a fraction of the window size (Gaussian only).

    Returns:
        float32 array of shape ``patch_size``, positive, symmetric along every axis.

    Raises:
        ValueError: unknown ``blend``, invalid ``patch_size`` or ``sigma_scale <= 0``.
    """
    sizes = _sizes(patch_size, None if np.ndim(patch_size) else 3)
    if blend == "constant":
        return np.ones(sizes, np.float32)
    if blend != "gaussian":
        raise ValueError(f"blend must be 'gaussian' or 'constant', got {blend!r}.")
    if not float(sigma_scale) > 0:
        raise ValueError(f"sigma_scale must be > 0 (sigma as a fraction of the window), got {sigma_scale}.")
    weights = np.ones((), np.float64)
    for n in sizes:
        offsets = np.arange(n) - (n - 1) / 2.0
        profile = np.exp(-offsets ** 2 / (2.0 * (float(sigma_scale) * n) ** 2))
        weights = np.multiply.outer(weights, profile)
    return np.maximum(weights, 1e-3).astype(np.float32)


def sliding_window(model: keras.Model | Callable[[np.ndarray], Any], volume: ArrayLike,
                   patch_size: int | Sequence[int], overlap: float = 0.5, blend: Blend = "gaussian",
                   batch_size: int = 4, pad_value: float = 0.0, sigma_scale: float = 0.125,
                   progress: bool = True, starts: Callable[[int, int, float], Sequence[int]] | None = None,
                   weights: ArrayLike | None = None) -> np.ndarray:
    """Predict a whole volume with a model that takes fixed-size patches.

    The volume is padded to at least ``patch_size`` (evenly, with ``pad_value``), cut into
    overlapping windows (:func:`window_positions`), predicted ``batch_size`` windows at a
    time (the last batch is filled up with repeats so the model always sees one batch
    shape), and each window's output is added into the full volume weighted by
    :func:`blending_weights`; the sums are divided by the summed weights at every voxel and
    the padding is cut off. Conventions are MONAI's ``sliding_window_inference`` (see the
    comment above), with nnU-Net's defaults of 0.5 overlap and Gaussian weights.

    Args:
        model: a Keras model (``predict_on_batch`` is used) or any callable taking float32
            ``(B, *patch_size, C)`` and returning ``(B, *patch_size, K)`` (or
            ``(B, *patch_size)``) probabilities.
        volume: ``(X, Y, Z)`` or ``(X, Y, Z, C)`` (any number of spatial axes, as many as
            ``patch_size`` has), scaled as in training.
        patch_size: the window, e.g. the training patch ``(px, py, pz)``.
        overlap: fraction of a window shared with its neighbour, in [0, 1).
        blend: ``"gaussian"`` (edges of a window count less) or ``"constant"`` (plain mean).
        batch_size: windows per forward pass.
        pad_value: value of the voxels added around a volume smaller than the window.
        sigma_scale: width of the Gaussian weights as a fraction of the window.
        progress: show a progress bar (for more than 8 batches).
        starts: the function that places the windows along one axis,
            ``starts(length, patch, overlap) -> list`` (default :func:`window_starts`;
            lesson 06 passes the learner's own).
        weights: the blending weights, an array of ``patch_size`` (default
            :func:`blending_weights` of ``blend`` and ``sigma_scale``).

    Returns:
        float32 probabilities on the input's grid: ``(X, Y, Z)`` for a model with one output
        channel, ``(X, Y, Z, K)`` otherwise.

    Raises:
        ValueError: invalid ``overlap``, ``blend``, ``batch_size`` or ``patch_size``, a
            volume whose rank does not match the patch, or a model whose output does not have
            the window's spatial size.
    """
    from tqdm.auto import tqdm

    array = np.asarray(volume, dtype=np.float32)
    sizes = _sizes(patch_size, None if np.ndim(patch_size) else 3)
    spatial = len(sizes)
    if array.ndim == spatial:
        array = array[..., None]
    if array.ndim != spatial + 1:
        raise ValueError(f"volume has shape {np.shape(volume)} but patch_size {sizes} has {spatial} axes: pass a "
                         f"volume of {spatial} spatial axes, optionally with a trailing channel axis.")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    batch_size = int(batch_size)
    if weights is None:
        weights = blending_weights(sizes, blend, sigma_scale)
    weights = np.asarray(weights, np.float32)
    if weights.shape != sizes:
        raise ValueError(f"weights have shape {weights.shape}, the window is {sizes}: give one weight per voxel.")
    weights = weights[..., None]
    original = array.shape[:spatial]
    deficit = [max(0, p - n) for p, n in zip(sizes, original)]
    before = [d // 2 for d in deficit]
    if any(deficit):
        widths = [(b, d - b) for b, d in zip(before, deficit)] + [(0, 0)]
        array = np.pad(array, widths, mode="constant", constant_values=float(pad_value))
    if starts is None:
        positions = window_positions(array.shape[:spatial], sizes, overlap)
    else:
        import itertools

        positions = list(itertools.product(*(list(starts(n, p, overlap))
                                             for n, p in zip(array.shape[:spatial], sizes))))
    predict = getattr(model, "predict_on_batch", model)
    output = None
    total = np.zeros(array.shape[:spatial] + (1,), np.float32)
    batches = range(0, len(positions), batch_size)
    if progress and len(batches) > 8:
        batches = tqdm(batches, desc="sliding window", unit="batch", leave=False)
    for first in batches:
        chunk = positions[first:first + batch_size]
        windows = [tuple(slice(s, s + p) for s, p in zip(start, sizes)) for start in chunk]
        x = np.stack([array[window] for window in windows] + [array[windows[-1]]] * (batch_size - len(chunk)))
        y = np.asarray(predict(x), dtype=np.float32)
        if y.shape[:spatial + 1] != (batch_size,) + sizes or y.ndim not in (spatial + 1, spatial + 2):
            raise ValueError(f"the model returned {y.shape} for windows {x.shape}: sliding_window needs an output "
                             f"of the window's size, (batch, {', '.join(map(str, sizes))}, classes).")
        if y.ndim == spatial + 1:
            y = y[..., None]
        if output is None:
            output = np.zeros(array.shape[:spatial] + (y.shape[-1],), np.float32)
        for window, prediction in zip(windows, y):
            output[window] += prediction * weights
            total[window] += weights
    output /= total
    output = output[tuple(slice(b, b + n) for b, n in zip(before, original))]
    return output[..., 0] if output.shape[-1] == 1 else output
