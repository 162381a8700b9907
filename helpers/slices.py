"""2D training slices from 3D volumes (lesson 07): which slices, how to cut them, how to
flip them and how to fold the patients.

The reference versions of lesson 07's exercises, so that a learner who could not finish
one of them can run the rest of the lesson with these (as later lessons do with the rest
of ``helpers``):

* :func:`select_slices` — every axial slice with the organ plus a random fraction of the
  empty ones;
* :func:`volume_to_slices` — the chosen slices windowed, in radiological view, resized;
* :func:`random_flip` — a left-right flip of each slice together with its mask;
* :func:`kfold_by_patient` — k folds of patient ids, the one implementation of patient-level
  folds (:func:`helpers.training.kfold_items_by_patient` folds lists of files with it);
* :func:`predict_volume` — a 2D model's probabilities for every slice of a volume, back on
  the volume's grid.

Conventions: volumes and masks are ``(X, Y, Z)`` arrays as stored in NIfTI (see
:mod:`helpers.data.io`: x towards the patient's left, y towards the back, axial slices along
the last axis); 2D slices are ``(n, H, W, 1)`` float32 arrays in radiological view (rows =
y, columns = x), images windowed to ``[0, 1]`` with ``config.HU_WINDOW_LIVER`` by default.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike

from helpers import config

__all__ = ["select_slices", "volume_to_slices", "random_flip", "kfold_by_patient", "predict_volume"]


def select_slices(mask: ArrayLike, empty_fraction: float = 0.1,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """The axial slices of a mask to train on: all with the organ, some without.

    Args:
        mask: ``(X, Y, Z)`` binary mask.
        empty_fraction: fraction of the slices without organ to keep, in ``[0, 1]``;
            ``round(empty_fraction * n_empty)`` of them are drawn without replacement.
        rng: NumPy generator for the draw (default: seeded with ``config.SEED``).

    Returns:
        Sorted int array of slice indices along the last axis.
    """
    rng = np.random.default_rng(config.SEED) if rng is None else rng
    has_organ = np.asarray(mask).reshape(-1, np.shape(mask)[-1]).any(axis=0)
    organ = np.flatnonzero(has_organ)
    empty = np.flatnonzero(~has_organ)
    n_empty = int(round(empty_fraction * len(empty)))
    chosen = rng.choice(empty, size=n_empty, replace=False) if n_empty else np.array([], int)
    return np.sort(np.concatenate([organ, chosen])).astype(int)


def volume_to_slices(volume: ArrayLike, mask: ArrayLike, indices: ArrayLike, size: int = 64,
                     window: Sequence[float] = config.HU_WINDOW_LIVER) -> tuple[np.ndarray, np.ndarray]:
    """Cut axial slices out of a CT volume and its mask, ready for a 2D U-Net.

    Args:
        volume: ``(X, Y, Z)`` CT in Hounsfield units.
        mask: ``(X, Y, Z)`` binary mask on the same grid.
        indices: slice indices along the last axis.
        size: side of the square output slices, in pixels.
        window: ``(lower, upper)`` HU mapped linearly to ``[0, 1]``, then clipped.

    Returns:
        ``(images, masks)``, both float32 ``(len(indices), size, size, 1)``: slices
        transposed to radiological view (rows = y, columns = x), windowed, resized
        (bilinear and anti-aliased; the mask bilinear, then thresholded at 0.5).
    """
    from skimage.transform import resize

    low, high = window
    indices = np.asarray(indices, int)
    images = np.moveaxis(np.asarray(volume, np.float32)[:, :, indices], -1, 0).transpose(0, 2, 1)
    labels = np.moveaxis(np.asarray(mask, np.float32)[:, :, indices], -1, 0).transpose(0, 2, 1)
    images = np.clip((images - low) / (high - low), 0.0, 1.0)
    shape = (len(indices), size, size)
    images = resize(images, shape, order=1, anti_aliasing=True, preserve_range=True)
    labels = resize(labels, shape, order=1, anti_aliasing=False, preserve_range=True) >= 0.5
    return images[..., None].astype(np.float32), labels[..., None].astype(np.float32)


def random_flip(images: ArrayLike, masks: ArrayLike, rng: np.random.Generator,
                p: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Flip each pair ``(images[i], masks[i])`` left-right (along W) with probability ``p``.

    Args:
        images: ``(n, H, W, C)`` slices.
        masks: ``(n, H, W, C)`` masks, flipped with their image.
        rng: NumPy generator deciding which pairs flip.
        p: probability of a flip, in ``[0, 1]``.

    Returns:
        ``(images, masks)``: new arrays; the inputs are not changed.
    """
    flip = rng.random(len(images)) < p
    images, masks = np.array(images, copy=True), np.array(masks, copy=True)
    images[flip] = images[flip, :, ::-1]
    masks[flip] = masks[flip, :, ::-1]
    return images, masks


def kfold_by_patient(case_ids: Sequence[str], k: int = 3,
                     seed: int = config.SEED) -> list[tuple[list[str], list[str]]]:
    """``k`` cross-validation folds of patients.

    Args:
        case_ids: patient ids (duplicates count once).
        k: number of folds.
        seed: seed of the shuffle (``np.random.default_rng(seed).permutation``).

    Returns:
        ``[(train_ids, val_ids), ...]``, one pair per fold: the sorted unique ids are
        shuffled and dealt into ``k`` groups (``shuffled[i::k]``), so every patient is
        validated exactly once, fold sizes differ by at most one, and train and validation
        never share a patient.

    Raises:
        ValueError: ``k < 2`` or fewer patients than folds (a fold would validate on nobody).
    """
    unique = sorted(set(case_ids))
    if int(k) < 2 or len(unique) < int(k):
        raise ValueError(f"k-fold needs 2 <= k <= number of patients; got k={k} for "
                         f"{len(unique)} patient(s).")
    order = np.random.default_rng(seed).permutation(len(unique))
    shuffled = [unique[i] for i in order]
    folds = [shuffled[i::k] for i in range(k)]
    return [([c for c in shuffled if c not in set(val)], list(val)) for val in folds]


def predict_volume(model: Any, volume_hu: ArrayLike, size: int = 64,
                   window: Sequence[float] = config.HU_WINDOW_LIVER) -> np.ndarray:
    """A 2D model's probability for every voxel of a CT volume, slice by slice.

    Every axial slice is cut as for training (:func:`volume_to_slices`: windowed, radiological
    view, ``size × size``), the model predicts them, and each probability map is resized back
    (bilinear) to the slice's ``(y, x)`` grid and oriented back to ``(x, y)``.

    Args:
        model: a Keras model taking ``(n, size, size, 1)`` images to ``(n, size, size, 1)``
            probabilities.
        volume_hu: ``(X, Y, Z)`` CT in Hounsfield units.
        size: side of the square slices the model takes, in pixels.
        window: ``(lower, upper)`` HU mapped to ``[0, 1]``, as in training.

    Returns:
        float ``(X, Y, Z)`` probabilities on the volume's grid.
    """
    from skimage.transform import resize

    volume_hu = np.asarray(volume_hu)
    images, _ = volume_to_slices(volume_hu, np.zeros(volume_hu.shape, np.uint8),
                                 np.arange(volume_hu.shape[2]), size, window)
    probabilities = np.asarray(model.predict(images, batch_size=64, verbose=0))[..., 0]   # (Z, S, S)
    x, y, z = volume_hu.shape
    probabilities = resize(probabilities, (z, y, x), order=1)                            # (Z, Y, X)
    return probabilities.transpose(2, 1, 0)                                              # (X, Y, Z)
