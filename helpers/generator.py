"""From files on disk to batches for Keras: intensity scaling, augmentation, the data set.

``percentile_stretch`` and ``window_hu`` map raw intensities (grey levels, Hounsfield
units) to ``[0, 1]``; ``augment_pair`` applies one random geometric transform to an image
and its mask together (plus brightness/contrast jitter to the image only);
``SegmentationDataset`` (and ``CXRDataset``, its chest X-ray form of lesson 01) is a ``keras.utils.PyDataset`` that reads PNG or NIfTI pairs a
batch at a time, resizes, scales, augments and returns ``(x, y)`` float32 batches of
shape ``(batch, H, W, C)`` / ``(batch, D, H, W, C)``. Files are read only through
:mod:`helpers.data.io`, whose errors (:class:`helpers.data.DatasetError`) name the file.

Axes: 3D volumes keep the course's one convention (:mod:`helpers.data.io`): arrays as
stored in the NIfTI files, ``(x, y, z)``. ``(D, H, W)`` here simply names the three array
axes in that order (a U-Net does not care which is which); a caller that wants depth =
axial slices converts first with :func:`helpers.data.to_depth_first`, as
:func:`helpers.viz.orthogonal_views` expects.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np
from numpy.typing import ArrayLike

from helpers import config

__all__ = ["percentile_stretch", "window_hu", "augment_pair", "one_hot", "SegmentationDataset", "CXRDataset",
           "read_any_image", "read_any_mask"]

# --------------------------------------------------------------------------- intensities

def percentile_stretch(image: ArrayLike, low: float = 5, high: float = 95) -> np.ndarray:
    """Linearly map the ``low``-th percentile of ``image`` to 0 and the ``high``-th to 1,
    clipping outside, and return float32 of the same shape in ``[0, 1]``.

    Robust to outliers (hot pixels, black borders) unlike a min-max scaling. A constant
    image (no contrast between the two percentiles) gives zeros, never NaN. Any shape
    (``(H, W)``, ``(D, H, W)``, with or without channels): the percentiles are taken
    over the whole array.

    Args:
        image: an array of any shape.
        low: the percentile mapped to 0.
        high: the percentile mapped to 1.

    Returns:
        float32 array of the image's shape, in ``[0, 1]``.

    Raises:
        ValueError: not ``0 <= low < high <= 100``.
    """
    array = np.asarray(image, dtype=np.float32)
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentile_stretch needs 0 <= low < high <= 100, got low={low}, high={high}.")
    if array.size == 0:
        return array.copy()
    lo, hi = np.percentile(array, [low, high])
    if not hi > lo:
        return np.zeros_like(array, dtype=np.float32)
    return np.clip((array - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def window_hu(volume: ArrayLike, window: Sequence[float] = config.HU_WINDOW_LUNG) -> np.ndarray:
    """Map Hounsfield units in ``window = (lower, upper)`` linearly to ``[0, 1]``, clipping
    outside; returns float32 of the input's shape. E.g. the lung window ``(-1000, 300)``
    maps air to 0 and bone to 1.

    Args:
        volume: CT values in Hounsfield units, any shape.
        window: ``(lower, upper)`` in HU.

    Returns:
        float32 array of the input's shape, in ``[0, 1]``.

    Raises:
        ValueError: ``upper`` is not above ``lower``.
    """
    lower, upper = float(window[0]), float(window[1])
    if not upper > lower:
        raise ValueError(f"window_hu needs window=(lower, upper) with upper > lower, got {tuple(window)}.")
    array = np.asarray(volume, dtype=np.float32)
    return np.clip((array - lower) / (upper - lower), 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- augmentation

def _spatial_rank(image: np.ndarray, mask: np.ndarray) -> int:
    """Number of spatial axes: the mask's rank, not counting a trailing channel of size 1."""
    rank = mask.ndim
    if rank >= 3 and mask.shape[-1] == 1:
        rank -= 1
    if rank not in (2, 3):
        raise ValueError(f"augment_pair expects a mask of shape (H, W) or (D, H, W) "
                         f"(optionally with a trailing channel of 1), got {mask.shape}.")
    if image.shape[:rank] != mask.shape[:rank] or image.ndim not in (rank, rank + 1):
        raise ValueError(f"augment_pair: image {image.shape} and mask {mask.shape} must have "
                         f"the same spatial shape (the image may add a trailing channel axis).")
    return rank


def _affine(array: np.ndarray, rank: int, matrix: np.ndarray, offset: np.ndarray,
            order: int, cval) -> np.ndarray:
    """Apply the in-plane (last two spatial axes) affine map to every slice and channel."""
    from scipy import ndimage

    full = np.eye(array.ndim)
    full_offset = np.zeros(array.ndim)
    a0 = rank - 2                      # first in-plane axis: 0 for 2D, 1 for 3D
    full[a0:a0 + 2, a0:a0 + 2] = matrix
    full_offset[a0:a0 + 2] = offset
    if array.ndim > rank:              # channels last: transform each channel alone
        out = np.empty_like(array)
        for c in range(array.shape[-1]):
            out[..., c] = _affine(array[..., c], rank, matrix, offset, order,
                                  cval[c] if np.ndim(cval) else cval)
        return out
    return ndimage.affine_transform(array, full, offset=full_offset, order=order,
                                    mode="constant", cval=cval, prefilter=False)


def augment_pair(image: ArrayLike, mask: ArrayLike, rng: np.random.Generator | int | None, flip: bool = False,
                 max_rotation: float = 10, max_shift: float = 0.05, max_zoom: float = 0.1, brightness: float = 0.1,
                 contrast: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Apply the same random geometric transform to ``image`` and ``mask``.

    ``image``: ``(H, W)``, ``(H, W, C)``, ``(D, H, W)`` or ``(D, H, W, C)``; ``mask``: the
    same spatial shape (label map, optionally with a trailing channel of 1). The transform
    is a left-right flip (probability 1/2, only if ``flip``: off by default, because the
    heart, the liver and the two lungs are not mirror images; see lesson 01), a rotation of up to
    ``max_rotation`` degrees, a shift of up to ``max_shift`` of the side and a zoom of up to
    ``1 ± max_zoom``, all in the (H, W) plane (every slice of a volume alike). The image is
    interpolated linearly, the mask with nearest neighbour so it keeps its label values
    (a binary mask stays binary). Then brightness (``± brightness`` added) and contrast
    (``× 1 ± contrast`` about the mean) jitter the image only; an image in ``[0, 1]`` is
    clipped back to ``[0, 1]``. ``rng`` is a ``numpy.random.Generator`` (or a seed).
    Returns ``(image float32, mask with the input's dtype)``; the inputs are not modified.

    Args:
        image: the image, 2D or 3D, with or without channels.
        mask: its label map, the same spatial shape.
        rng: a NumPy generator, or a seed for one.
        flip: allow the left-right flip.
        max_rotation: the largest rotation, in degrees.
        max_shift: the largest shift, as a fraction of the side.
        max_zoom: the largest zoom change (``1 ± max_zoom``).
        brightness: the largest brightness change added to the image.
        contrast: the largest relative contrast change of the image.

    Returns:
        ``(image, mask)``: float32 image, mask of the input's dtype.

    Raises:
        ValueError: image and mask do not share a 2D or 3D spatial shape.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    image = np.asarray(image, dtype=np.float32)
    mask = np.asarray(mask)
    rank = _spatial_rank(image, mask)
    # Draw every random number in a fixed order: same rng state -> same result.
    do_flip = bool(rng.random() < 0.5) and flip
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation))
    zoom = rng.uniform(1 - max_zoom, 1 + max_zoom)
    plane = np.array(mask.shape[rank - 2:rank], dtype=float)
    shift = rng.uniform(-max_shift, max_shift, size=2) * plane
    delta_b = rng.uniform(-brightness, brightness)
    factor_c = 1 + rng.uniform(-contrast, contrast)

    if do_flip:
        image = np.flip(image, axis=rank - 1)
        mask = np.flip(mask, axis=rank - 1)
    # output coordinate o -> input coordinate  M (o - c - t) + c,  M = R(-angle) / zoom
    cos, sin = np.cos(angle), np.sin(angle)
    matrix = np.array([[cos, sin], [-sin, cos]]) / zoom
    centre = (plane - 1) / 2
    offset = centre - matrix @ (centre + shift)
    in_unit = image.size > 0 and image.min() >= 0 and image.max() <= 1
    cval = image.reshape(-1, image.shape[-1]).min(axis=0) if image.ndim > rank else image.min()
    image = _affine(np.ascontiguousarray(image), rank, matrix, offset, order=1, cval=cval)
    mask_out = _affine(np.ascontiguousarray(mask), rank, matrix, offset, order=0, cval=0)

    mean = image.mean()
    image = (image - mean) * factor_c + mean + delta_b
    if in_unit:
        image = np.clip(image, 0.0, 1.0)
    return image.astype(np.float32), mask_out.astype(mask.dtype)


# --------------------------------------------------------------------------- reading

def _is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def _drop_trailing_channels(array: np.ndarray) -> np.ndarray:
    while array.ndim > 2 and array.shape[-1] == 1:
        array = array[..., 0]
    return array


def read_any_image(path: str | Path) -> np.ndarray:
    """Read a 2D image (PNG/JPEG/TIFF/BMP, grey levels 0..255) or a NIfTI volume as float32,
    ``(H, W)`` or ``(D, H, W)`` in the file's axis order (a trailing axis of size 1 is
    dropped), through :mod:`helpers.data.io`. Raises :class:`helpers.data.DatasetError`
    naming the file when it is missing, of another type or cannot be read.

    Args:
        path: an image or NIfTI file.

    Returns:
        float32 ``(H, W)`` or ``(D, H, W)``.

    Raises:
        DatasetError: the file is missing, of another type, or cannot be read.
    """
    from helpers.data.io import IMAGE_SUFFIXES, DatasetError, load_nifti, read_image

    path = Path(path)
    if _is_nifti(path):
        array = load_nifti(path)[0]
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        array = read_image(path).astype(np.float32)
    else:
        raise DatasetError(f"Cannot read {path}: expected an image ({', '.join(IMAGE_SUFFIXES)}) or "
                           f".nii/.nii.gz; data.load_pairs(folder) lists the valid pairs of a folder.")
    return _drop_trailing_channels(array)


def read_any_mask(path: str | Path) -> np.ndarray:
    """Read a mask (an image with 0/255 or 0/1 -> {0, 1}; NIfTI: integer labels) as int32,
    ``(H, W)`` or ``(D, H, W)``, through :mod:`helpers.data.io`. Raises
    :class:`helpers.data.DatasetError` naming the file when it is missing, of another type,
    cannot be read or (images) is not binary.

    Args:
        path: a mask image or NIfTI file.

    Returns:
        int32 ``(H, W)`` or ``(D, H, W)``.

    Raises:
        DatasetError: the file is missing, of another type, cannot be read, or (images) is
            not binary.
    """
    from helpers.data.io import IMAGE_SUFFIXES, DatasetError, read_mask, read_nifti

    path = Path(path)
    if _is_nifti(path):
        array = np.rint(np.asarray(read_nifti(path)[0], dtype=np.float32))
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        array = read_mask(path)
    else:
        raise DatasetError(f"Cannot read {path}: expected a mask image ({', '.join(IMAGE_SUFFIXES)}) or "
                           f".nii/.nii.gz; data.load_pairs(folder) lists the valid pairs of a folder.")
    return _drop_trailing_channels(array).astype(np.int32)


def _resize(array: np.ndarray, size: tuple, is_mask: bool) -> np.ndarray:
    if tuple(array.shape) == tuple(size):
        return array
    from skimage.transform import resize

    if is_mask:
        return resize(array, size, order=0, anti_aliasing=False, preserve_range=True).astype(array.dtype)
    return resize(array, size, order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def one_hot(labels: ArrayLike, n_classes: int = 4) -> np.ndarray:
    """Lesson 08's ``one_hot`` (Exercise 8.2): integer labels to one-hot targets.

    Args:
        labels: an integer array of any shape ``(...)``, values in ``0 .. n_classes - 1``.
        n_classes: the number of channels, also when a class is absent.

    Returns:
        float32 ``(..., n_classes)``: 1 in channel ``labels[...]``, 0 in the others.
    """
    return np.eye(int(n_classes), dtype=np.float32)[np.asarray(labels)]


# --------------------------------------------------------------------------- data set

class SegmentationDataset(keras.utils.PyDataset):
    """Batches of ``(image, mask)`` pairs read from disk, a batch at a time.

    ``pairs``: list of ``(image_path, mask_path)``; for multi-channel input (e.g. the four
    BraTS modalities) ``image_path`` may be a list of paths, stacked as channels. PNG
    (grey) and NIfTI files are read, scaled by ``preprocess`` (default
    :func:`percentile_stretch`; pass e.g. ``functools.partial(window_hu,
    window=config.HU_WINDOW_LUNG)`` for CT), resized to ``image_size`` (``(H, W)`` or
    ``(D, H, W)``; ``None`` keeps the files' size), augmented with :func:`augment_pair` if
    ``augment`` (``True`` or a dict of its keyword arguments). Masks: ``label_map`` (e.g.
    ``{4: 3}``) renames labels first; ``n_classes=1`` gives a binary mask (label > 0),
    otherwise one-hot with ``n_classes`` channels. ``x`` is float32 ``(B, H, W, C)`` or
    ``(B, D, H, W, C)``; ``y`` float32 ``(B, ..., 1)`` or ``(B, ..., n_classes)``. The last
    batch may be smaller; ``len()`` is ``ceil(n / batch_size)``. With ``shuffle`` the order
    is permuted at the start and after every epoch, reproducibly from ``seed``; augmentation
    is seeded per (seed, epoch, item), so it is reproducible with several workers too.
    ``workers``, ``use_multiprocessing`` and ``max_queue_size`` go to Keras.

    Args:
        pairs: ``(image_path, mask_path)`` pairs; ``image_path`` may be a list of paths
            (channels).
        batch_size: pairs per batch.
        image_size: ``(H, W)`` or ``(D, H, W)`` to resize to; None keeps the files' size.
        augment: ``False``, ``True`` or a dict of keyword arguments of :func:`augment_pair`.
        shuffle: permute the order at the start and after every epoch.
        seed: seed of the order and of the augmentation.
        preprocess: scaling of each image channel; None: :func:`percentile_stretch`.
        n_classes: 1 for a binary mask, else the number of one-hot channels.
        label_map: labels to rename first, ``{old: new}``.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` for Keras.

    Raises:
        ValueError: no pairs, ``batch_size`` or ``n_classes`` below 1, or an ``image_size``
            of neither 2 nor 3 numbers.
    """

    def __init__(self, pairs: Sequence[tuple[Any, Any]], batch_size: int = 8,
                 image_size: Sequence[int] | None = (config.CXR_TRAIN_SIZE,) * 2,
                 augment: bool | Mapping[str, Any] = False, shuffle: bool = True, seed: int = config.SEED,
                 preprocess: Callable | None = None, n_classes: int = 1,
                 label_map: dict | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pairs = [(self._as_paths(image), Path(mask)) for image, mask in pairs]
        if not self.pairs:
            raise ValueError("SegmentationDataset got no pairs: check the data folder "
                             "(data.load_pairs(folder) returns the (image, mask) pairs).")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if int(n_classes) < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}.")
        self.batch_size = int(batch_size)
        self.image_size = None if image_size is None else tuple(int(s) for s in image_size)
        if self.image_size is not None and len(self.image_size) not in (2, 3):
            raise ValueError(f"image_size must be (H, W) or (D, H, W), got {image_size}.")
        self.augment = augment
        self.augment_options = dict(augment) if isinstance(augment, dict) else {}
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.preprocess = preprocess if preprocess is not None else percentile_stretch
        self.n_classes = int(n_classes)
        self.label_map = dict(label_map or {})
        self.epoch = 0
        self.order = self._make_order()

    @staticmethod
    def _as_paths(image):
        if isinstance(image, (list, tuple)):
            return tuple(Path(p) for p in image)
        return Path(image)

    def _make_order(self) -> np.ndarray:
        order = np.arange(len(self.pairs))
        if self.shuffle:
            np.random.default_rng([self.seed, self.epoch]).shuffle(order)
        return order

    def __len__(self) -> int:
        return math.ceil(len(self.pairs) / self.batch_size)

    def on_epoch_end(self) -> None:
        """Advance the epoch counter and draw the next order (if ``shuffle``)."""
        self.epoch += 1
        self.order = self._make_order()

    def load(self, item: int, augment: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return pair ``item`` (in file order, not the shuffled order) as arrays:
        image ``(..., C)`` float32 and mask label map ``(...)`` int32 after resizing and
        scaling, augmented if ``augment`` (default: the data set's setting).
        """
        image_paths, mask_path = self.pairs[item]
        paths = image_paths if isinstance(image_paths, tuple) else (image_paths,)
        channels = []
        for path in paths:
            array = read_any_image(path)
            self._check_rank(array, path)
            array = np.asarray(self.preprocess(array), dtype=np.float32)
            if self.image_size is not None:
                array = _resize(array, self.image_size, is_mask=False)
            channels.append(array)
        shapes = {c.shape for c in channels}
        if len(shapes) > 1:
            raise ValueError(f"The channels of pair {item} have different shapes {sorted(shapes)}: "
                             f"{[str(p) for p in paths]}. Pass image_size to resize them.")
        image = np.stack(channels, axis=-1)
        mask = read_any_mask(mask_path)
        self._check_rank(mask, mask_path)
        if self.image_size is not None:
            mask = _resize(mask, self.image_size, is_mask=True)
        if mask.shape != image.shape[:-1]:
            raise ValueError(f"Mask {mask_path} has shape {mask.shape} but its image has "
                             f"{image.shape[:-1]}: pass image_size=... to resize both.")
        if self.augment if augment is None else augment:
            rng = np.random.default_rng([self.seed, self.epoch, item, 1])
            image, mask = augment_pair(image, mask, rng, **self.augment_options)
        return image.astype(np.float32), mask.astype(np.int32)

    def _check_rank(self, array: np.ndarray, path: Path) -> None:
        if self.image_size is not None and array.ndim != len(self.image_size):
            raise ValueError(f"{path} has shape {array.shape} but image_size={self.image_size} "
                             f"asks for {len(self.image_size)}D data: pass image_size with "
                             f"{array.ndim} numbers.")

    def _encode(self, mask: np.ndarray, path: Path) -> np.ndarray:
        if self.label_map:
            mapped = mask.copy()
            for old, new in self.label_map.items():
                mapped[mask == old] = new
            mask = mapped
        if self.n_classes == 1:
            return (mask > 0).astype(np.float32)[..., None]
        if mask.min() < 0 or mask.max() >= self.n_classes:
            raise ValueError(f"Mask {path} has labels {np.unique(mask).tolist()} but n_classes="
                             f"{self.n_classes}: remap them with label_map (e.g. {{4: 3}} for BraTS).")
        return np.eye(self.n_classes, dtype=np.float32)[mask]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"batch {index} out of range: this data set has {len(self)} batches.")
        index %= len(self)
        items = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        xs, ys = [], []
        for item in items:
            image, mask = self.load(int(item))
            xs.append(image)
            ys.append(self._encode(mask, self.pairs[item][1]))
        return np.stack(xs), np.stack(ys)


class CXRDataset(SegmentationDataset):
    """The reference of lesson 01's ``CXRDataset`` (Exercise 1.2): chest X-ray batches.

    :class:`SegmentationDataset` with the lesson's signature, ``CXRDataset(pairs,
    batch_size=8, image_size=(H, W), shuffle=True, seed=config.SEED, augment=False)``:
    grey PNG pairs, percentile-stretched, resized to ``image_size``, augmented with
    :func:`augment_pair` when ``augment``. ``x`` and ``y`` are float32 ``(batch, H, W, 1)``,
    ``y`` 0/1. The lesson uses it when the learner's class is not finished yet.

    Args:
        pairs: ``(image_path, mask_path)`` pairs.
        batch_size: pairs per batch.
        image_size: ``(H, W)`` to resize to; None keeps the files' size.
        shuffle: permute the order at the start and after every epoch.
        seed: seed of the order and of the augmentation.
        augment: ``False``, ``True`` or a dict of keyword arguments of :func:`augment_pair`.
        **kwargs: further arguments of :class:`SegmentationDataset` and Keras.

    Raises:
        ValueError: as :class:`SegmentationDataset`.
    """

    def __init__(self, pairs: Sequence[tuple[Any, Any]], batch_size: int = 8,
                 image_size: Sequence[int] | None = (config.CXR_TRAIN_SIZE,) * 2,
                 shuffle: bool = True, seed: int = config.SEED, augment: bool | Mapping[str, Any] = False,
                 **kwargs: Any) -> None:
        super().__init__(pairs, batch_size=batch_size, image_size=image_size, augment=augment,
                         shuffle=shuffle, seed=seed, **kwargs)
