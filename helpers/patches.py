"""Training on patches: fixed-size 3D crops drawn from whole volumes, foreground-aware.

A CT at a working spacing of 1.5 mm is some 250 x 250 x 200 voxels: too large for one
training step on a CPU, and mostly background. Practitioners train on patches instead
(MONAI's ``RandCropByPosNegLabeld``, nnU-Net's oversampling of foreground): each patch is
centred on a foreground voxel with probability ``foreground_fraction`` and placed anywhere
otherwise, so that the network sees the structure often enough without forgetting what
background looks like. At inference the whole volume is predicted window by window
(:func:`helpers.inference.sliding_window`).

:class:`PatchDataset` is a ``keras.utils.PyDataset`` over volumes already in memory (e.g.
reoriented and resampled with :mod:`helpers.geometry`); :func:`pad_to_patch` pads a volume
smaller than a patch; :func:`crop_patch` cuts one patch. Patches are drawn reproducibly from
``(seed, epoch, item)``, so the batches do not depend on the order Keras asks for them nor
on the number of workers.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import keras
import numpy as np
from numpy.typing import ArrayLike

from helpers import config

__all__ = ["PatchDataset", "PatchLocation", "pad_to_patch", "crop_patch", "foreground_patch_start"]


def _patch_size(patch_size) -> tuple[int, int, int]:
    values = (int(patch_size),) * 3 if np.ndim(patch_size) == 0 else tuple(int(p) for p in patch_size)
    if len(values) != 3 or min(values) < 1:
        raise ValueError(f"patch_size must be three positive sizes (px, py, pz) or one number, got {patch_size!r}.")
    return values  # type: ignore[return-value]


def pad_to_patch(volume: ArrayLike, patch_size: int | Sequence[int],
                 value: float = 0.0) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Pad a volume with ``value`` so that each spatial axis is at least the patch's.

    Padding is split evenly, the extra voxel after (``before = deficit // 2``), as MONAI's
    ``sliding_window_inference`` pads; axes already long enough are left alone, and a volume
    that needs no padding is returned as it is (not copied).

    Args:
        volume: ``(X, Y, Z)`` or ``(X, Y, Z, C)``.
        patch_size: ``(px, py, pz)`` or one number.
        value: the fill value (e.g. the volume's minimum: air).

    Returns:
        ``(padded, before)``: the padded array and the number of voxels added before each
        axis, so that ``padded[bx:bx + X, by:by + Y, bz:bz + Z]`` is the input.

    Raises:
        ValueError: ``volume`` has fewer than 3 axes or ``patch_size`` is invalid.
    """
    array = np.asarray(volume)
    size = _patch_size(patch_size)
    if array.ndim < 3:
        raise ValueError(f"pad_to_patch needs a volume (X, Y, Z[, C]), got shape {array.shape}.")
    deficit = [max(0, p - n) for p, n in zip(size, array.shape[:3])]
    before = tuple(d // 2 for d in deficit)
    if not any(deficit):
        return array, (0, 0, 0)
    widths = [(b, d - b) for b, d in zip(before, deficit)] + [(0, 0)] * (array.ndim - 3)
    return np.pad(array, widths, mode="constant", constant_values=value), before  # type: ignore[return-value]


def crop_patch(volume: np.ndarray, start: Sequence[int], patch_size: int | Sequence[int]) -> np.ndarray:
    """The patch ``volume[x:x + px, y:y + py, z:z + pz]`` of ``start = (x, y, z)``, a view.

    Args:
        volume: ``(X, Y, Z)`` or ``(X, Y, Z, C)``.
        start: the patch's first voxel ``(x, y, z)``.
        patch_size: ``(px, py, pz)`` or one number.

    Returns:
        A view of ``volume``, ``(px, py, pz)`` plus its trailing axes.

    Raises:
        ValueError: the patch does not lie inside the volume (pad it first with
            :func:`pad_to_patch`).
    """
    array = np.asarray(volume)
    size = _patch_size(patch_size)
    start = tuple(int(s) for s in start)
    if len(start) != 3 or any(s < 0 or s + p > n for s, p, n in zip(start, size, array.shape[:3])):
        raise ValueError(f"patch at {start} of size {size} does not fit in a volume of shape {array.shape[:3]}: "
                         f"starts go from 0 to shape - patch_size (pad small volumes with pad_to_patch).")
    return array[start[0]:start[0] + size[0], start[1]:start[1] + size[1], start[2]:start[2] + size[2]]


def foreground_patch_start(voxel: ArrayLike, shape: ArrayLike,
                           patch_size: int | Sequence[int]) -> tuple[int, int, int]:
    """Start of the patch centred on ``voxel``, kept inside a volume of ``shape``.

    The patch is centred when ``voxel`` is its voxel ``patch_size // 2`` along every axis,
    i.e. ``start = voxel - patch_size // 2``; near a border the start is clipped to
    ``[0, shape - patch_size]``, so that the patch stays inside the volume and still
    contains the voxel. This is where :class:`PatchDataset` places a foreground patch.

    Args:
        voxel: ``(x, y, z)`` index of the voxel, inside ``shape``.
        shape: spatial shape ``(X, Y, Z)`` of the (padded) volume, at least ``patch_size``.
        patch_size: ``(px, py, pz)`` or one number.

    Returns:
        ``(x0, y0, z0)`` as Python ints.

    Raises:
        ValueError: the voxel lies outside ``shape`` or the volume is smaller than the patch.
    """
    size = np.asarray(_patch_size(patch_size))
    shape = np.asarray(tuple(int(n) for n in tuple(shape)[:3]))
    voxel = np.asarray(tuple(int(v) for v in voxel))
    if voxel.shape != (3,) or (voxel < 0).any() or (voxel >= shape).any():
        raise ValueError(f"voxel {tuple(voxel.tolist())} is not inside a volume of shape {tuple(shape.tolist())}.")
    if (shape < size).any():
        raise ValueError(f"a volume of shape {tuple(shape.tolist())} is smaller than the patch "
                         f"{tuple(size.tolist())}: pad it first (pad_to_patch).")
    return tuple(int(s) for s in np.clip(voxel - size // 2, 0, shape - size))  # type: ignore[return-value]



def _triple(values: Any) -> tuple[int, int, int]:
    """Three ints from a sequence of three numbers (a patch start)."""
    x, y, z = (int(v) for v in values)
    return x, y, z

class PatchLocation(NamedTuple):
    """Where one patch comes from: ``case`` (index into the data set's volumes), ``start``
    (its first voxel in the padded volume) and ``foreground`` (True if it was drawn around a
    foreground voxel, False if placed anywhere).
    """

    case: int
    start: tuple[int, int, int]
    foreground: bool


class PatchDataset(keras.utils.PyDataset):
    """Batches of random 3D patches ``(x, y)`` drawn from whole volumes, foreground-aware.

    Each patch is drawn on its own: with probability ``foreground_fraction`` a *foreground
    patch* -- a case among those with foreground, then one of its foreground voxels
    (``label > 0``) uniformly, and the patch centred on that voxel (its index
    ``start + patch_size // 2``), shifted just enough to stay inside the volume when the
    voxel is near the border, so it always contains the voxel; otherwise a *random patch*
    -- a case uniformly, then a start uniformly among all positions where the patch fits.
    A random patch may contain foreground too, so the share of patches that do is at least
    ``foreground_fraction`` (MONAI's ``RandCropByPosNegLabeld`` with ``pos / (pos + neg)``
    = ``foreground_fraction``, except that its negative patches are centred on background).

    Volumes smaller than the patch along an axis are padded (:func:`pad_to_patch`): the
    image with ``pad_value`` (default: the volume's own minimum, e.g. air), the label with 0.

    Args:
        images: the volumes, each ``(X, Y, Z)`` or ``(X, Y, Z, C)`` (the same ``C`` for all),
            already scaled (e.g. :func:`helpers.generator.window_hu`) and resampled.
        labels: one label map ``(X, Y, Z)`` per image (integers; 0 is background).
        patch_size: ``(px, py, pz)`` or one number, in voxels.
        batch_size: patches per batch.
        patches_per_epoch: patches per epoch; ``len()`` is ``ceil(patches_per_epoch /
            batch_size)``, the last batch may be smaller.
        foreground_fraction: probability ``p`` in [0, 1] that a patch is a foreground patch.
        seed: patch ``item`` of epoch ``e`` is drawn from ``numpy.random.default_rng([seed,
            e, item])``, so batches are reproducible, whatever the order or the workers.
        n_classes: 1 gives a binary target (label > 0), otherwise one-hot with
            ``n_classes`` channels.
        augment: ``False``, ``True`` or a dict of keyword arguments of
            :func:`helpers.generator.augment_pair`, applied to each patch (seeded like it).
        pad_value: fill value of padded image voxels; None: each image's minimum.
        patch_start: the function that places a foreground patch,
            ``patch_start(voxel, shape, patch_size) -> start`` (default
            :func:`foreground_patch_start`; lesson 06 passes the learner's own).
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` for Keras.

    Returns (``dataset[i]``):
        ``(x, y)``: x float32 ``(B, px, py, pz, C)``, y float32 ``(B, px, py, pz, 1)`` or
        ``(B, px, py, pz, n_classes)``.

    Raises:
        ValueError: no volumes, an image and its label of different shapes (naming the
            case), a ``foreground_fraction`` outside [0, 1], or foreground asked for while
            no label has any.
    """

    def __init__(self, images: Sequence[ArrayLike], labels: Sequence[ArrayLike], patch_size: int | Sequence[int],
                 batch_size: int = 2, patches_per_epoch: int = 32, foreground_fraction: float = 0.5,
                 seed: int = config.SEED, n_classes: int = 1, augment: bool | Mapping[str, Any] = False,
                 pad_value: float | None = None,
                 patch_start: Callable[[tuple[int, ...], tuple[int, ...], tuple[int, int, int]], Sequence[int]]
                 | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.patch_start = foreground_patch_start if patch_start is None else patch_start
        images, labels = list(images), list(labels)
        if not images:
            raise ValueError("PatchDataset got no volumes: pass a list of image volumes and one of label maps.")
        if len(images) != len(labels):
            raise ValueError(f"PatchDataset got {len(images)} images but {len(labels)} label maps: "
                             f"give one label map per image, in the same order.")
        self.patch_size = _patch_size(patch_size)
        if int(batch_size) < 1 or int(patches_per_epoch) < 1:
            raise ValueError(f"batch_size and patches_per_epoch must be >= 1, got {batch_size} and "
                             f"{patches_per_epoch}.")
        if not 0.0 <= float(foreground_fraction) <= 1.0:
            raise ValueError(f"foreground_fraction is a probability in [0, 1], got {foreground_fraction}.")
        if int(n_classes) < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}.")
        self.batch_size = int(batch_size)
        self.patches_per_epoch = int(patches_per_epoch)
        self.foreground_fraction = float(foreground_fraction)
        self.seed = int(seed)
        self.n_classes = int(n_classes)
        self.augment = augment
        self.augment_options = dict(augment) if isinstance(augment, dict) else {}
        self.epoch = 0
        self.images, self.labels, self.foreground = [], [], []
        channels = set()
        for case, (image, label) in enumerate(zip(images, labels)):
            image, label = np.asarray(image), np.asarray(label)
            if image.ndim == 3:
                image = image[..., None]
            if image.ndim != 4 or label.shape != image.shape[:3]:
                raise ValueError(f"case {case}: image {image.shape} and label {label.shape} must share the spatial "
                                 f"shape (X, Y, Z); the image may add one channel axis. Resample both onto one grid.")
            channels.add(image.shape[-1])
            fill = float(image.min()) if pad_value is None else float(pad_value)
            image = pad_to_patch(image.astype(np.float32, copy=False), self.patch_size, fill)[0]
            label = pad_to_patch(label, self.patch_size, 0)[0]
            self.images.append(image)
            self.labels.append(label)
            self.foreground.append(np.flatnonzero(label > 0))
        if len(channels) > 1:
            raise ValueError(f"the images have different numbers of channels {sorted(channels)}: give every "
                             f"case the same channels.")
        self.foreground_cases = [case for case, voxels in enumerate(self.foreground) if voxels.size]
        if self.foreground_fraction > 0 and not self.foreground_cases:
            raise ValueError("no label map has any foreground (label > 0), so no patch can be centred on it: "
                             "check the labels, or pass foreground_fraction=0.")

    def __len__(self) -> int:
        return math.ceil(self.patches_per_epoch / self.batch_size)

    def on_epoch_end(self) -> None:
        """Advance the epoch counter: the next epoch draws new patches."""
        self.epoch += 1

    def location(self, item: int, epoch: int | None = None) -> PatchLocation:
        """Where patch ``item`` (0 .. patches_per_epoch - 1) of ``epoch`` (default: the
        current one) comes from; the same answer every time it is asked.
        """
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else int(epoch), int(item)])
        size = np.asarray(self.patch_size)
        if rng.random() < self.foreground_fraction:
            case = int(self.foreground_cases[int(rng.integers(len(self.foreground_cases)))])
            shape = self.labels[case].shape
            voxels = self.foreground[case]
            voxel = np.unravel_index(int(voxels[int(rng.integers(voxels.size))]), shape)
            start = self.patch_start(tuple(int(v) for v in voxel), shape, self.patch_size)
            return PatchLocation(case, _triple(start), True)
        case = int(rng.integers(len(self.images)))
        shape = np.asarray(self.labels[case].shape)
        start = rng.integers(0, shape - size + 1)
        return PatchLocation(case, _triple(start), False)

    def patch(self, item: int, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Patch ``item`` as arrays: image float32 ``(px, py, pz, C)`` and label map
        ``(px, py, pz)`` (augmented if the data set augments).
        """
        epoch = self.epoch if epoch is None else int(epoch)
        where = self.location(item, epoch)
        image = np.array(crop_patch(self.images[where.case], where.start, self.patch_size), dtype=np.float32)
        label = np.array(crop_patch(self.labels[where.case], where.start, self.patch_size))
        if self.augment:
            from helpers.generator import augment_pair

            rng = np.random.default_rng([self.seed, epoch, int(item), 1])
            image, label = augment_pair(image, label, rng, **self.augment_options)
        return image, label

    def _encode(self, label: np.ndarray) -> np.ndarray:
        if self.n_classes == 1:
            return (label > 0).astype(np.float32)[..., None]
        if label.min() < 0 or label.max() >= self.n_classes:
            raise ValueError(f"a label map holds labels {np.unique(label).tolist()} but n_classes={self.n_classes}: "
                             f"remap them first (e.g. 4 -> 3 for BraTS).")
        return np.eye(self.n_classes, dtype=np.float32)[label.astype(np.int64)]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"batch {index} out of range: this data set has {len(self)} batches.")
        index %= len(self)
        items = range(index * self.batch_size, min((index + 1) * self.batch_size, self.patches_per_epoch))
        xs, ys = [], []
        for item in items:
            image, label = self.patch(item)
            xs.append(image)
            ys.append(self._encode(label))
        return np.stack(xs), np.stack(ys)
