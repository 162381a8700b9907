"""The one data I/O layer of the course: reading, writing and validating PNG images, masks
and NIfTI volumes, image/mask pairs, and patient identifiers. The generators, the lesson
loaders and ``prepare`` all read and check files through these functions.

Every reader checks what it reads and raises :class:`~helpers.data.DatasetError` with a
message that names the file and says how to fix it.

Axis convention for 3D volumes
------------------------------
A volume array is indexed ``volume[x, y, z]``: the NIfTI voxel axes ``(i, j, k)`` in the
order they are stored, as :func:`load_nifti` returns them. In the course's files ``x`` runs
from the patient's right to left, ``y`` from front to back and ``z`` from feet to head
(``affine`` maps ``(i, j, k, 1)`` to millimetres), so an axial slice is ``volume[:, :, k]``
and ``volume[:, :, k].T`` shows it in the usual radiological view. Networks and plots that
want depth first, ``(D, H, W) = (z, y, x)``, convert with :func:`to_depth_first` and back
with :func:`from_depth_first` (the same transpose, its own inverse).
"""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path
from typing import Any

import numpy as np

from helpers.data._store import DatasetError, LabelError, atomic_write_bytes

#: Largest raster image decoded, in pixels (width x height). Montgomery's radiographs have
#: 4892 x 4020 = 19.7 million; a file that declares more is refused as a probable
#: decompression bomb (a tiny file that would expand to gigabytes in memory).
MAX_IMAGE_PIXELS = 80_000_000

#: Int16 range in which CT volumes are stored (Hounsfield units).
HU_RANGE = (-32768, 32767)

#: File name endings that :func:`load_pairs` treats as images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

_VIEW_SUFFIX = re.compile(r"^(.*_\d+)_\d+$")


def _stem(path: Path) -> str:
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", *IMAGE_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def patient_id(path: str | Path) -> str:
    """The patient a file belongs to, from its name: a final ``_<view>`` number after a
    patient number is dropped (``SYN_0007_1.png`` -> ``"SYN_0007"``, ``MCUCXR_0001_0.png``
    -> ``"MCUCXR_0001"``, ``CHNCXR_0042_1.png`` -> ``"CHNCXR_0042"``); any other name is its
    own patient (``BraTS20_Training_001`` -> ``"BraTS20_Training_001"``). A name without
    a digit, as in one-folder-per-case layouts (``LCTSC-Train-S1-001/ct.nii.gz``), belongs to
    the patient named by its folder (``"LCTSC-Train-S1-001"``).

    Args:
        path: a file of the data set.

    Returns:
        The patient's name.
    """
    path = Path(path)
    stem = _stem(path)
    if not any(character.isdigit() for character in stem) and path.parent.name:
        stem = _stem(path.parent)
    match = _VIEW_SUFFIX.match(stem)
    return match.group(1) if match else stem


def open_image(path: str | Path) -> Any:
    """Open a raster image file with Pillow, decoded, after checking that it exists and
    declares at most :data:`MAX_IMAGE_PIXELS` pixels. Raises DatasetError naming the file
    when it is missing, too large (a decompression bomb), unreadable or damaged.

    Args:
        path: the image file.

    Returns:
        The decoded ``PIL.Image.Image``.

    Raises:
        DatasetError: the file is missing, too large, unreadable or damaged.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: check the path, or regenerate the data set.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked just below
            image = Image.open(path)
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            image.close()
            raise DatasetError(
                f"{path} declares {width}x{height} pixels, more than the limit of {MAX_IMAGE_PIXELS:,} "
                f"(helpers.data.io.MAX_IMAGE_PIXELS): it is probably a decompression bomb or not a "
                f"radiograph; remove it.")
        image.load()
    except DatasetError:
        raise
    except Image.DecompressionBombError as error:
        raise DatasetError(f"{path} is refused as a decompression bomb ({error}): remove it.") from None
    except PermissionError as error:
        raise DatasetError(f"{path} cannot be read: permission denied (a problem of this computer's "
                           f"permissions, not of the data): fix the permissions ({error.strerror}).") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise DatasetError(
            f"{path} cannot be read as an image ({error}): the file is damaged or not an image; "
            f"replace it with the original, or delete the data set folder so that it is regenerated."
        ) from None
    return image


_open = open_image


def read_grey(path: str | Path) -> np.ndarray:
    """Read a raster image as float32 grey values at its own bit depth (8- or 16-bit,
    float; RGB channels averaged), shape (H, W). Raises DatasetError naming the file when
    it cannot be read (see :func:`open_image`), is not 2D, or holds NaN or infinite values.

    Args:
        path: the image file.

    Returns:
        float32 ``(H, W)``.

    Raises:
        DatasetError: as described above.
    """
    with open_image(path) as image:
        array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3].astype(np.float64).mean(axis=-1)
    elif array.ndim == 3 and array.shape[-1] in (1, 2):
        array = array[..., 0]
    if array.ndim != 2:
        raise DatasetError(f"{path} has shape {array.shape}, expected a 2D image (grey or RGB): remove it or "
                           f"save it as a grey PNG.")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise DatasetError(f"{path} holds NaN or infinite values: it is damaged; re-export or remove it.")
    return array


def binary_mask(path: str | Path, array: np.ndarray, what: str = "the lung") -> np.ndarray:
    """The one rule for binary masks: ``array`` may hold only 0 and 1, or only 0 and 255
    (an all-0 or all-foreground mask is fine; anything else, e.g. a constant 7 or 0.4, is
    not). Returns a uint8 array of 0/1; raises DatasetError naming ``path`` and the values.

    Args:
        path: the file the mask comes from, for the message.
        array: the mask's values as read.
        what: what the mask shows, for the message.

    Returns:
        uint8 array of 0 and 1, the input's shape.

    Raises:
        DatasetError: values other than 0/1 or 0/255.
    """
    values = np.unique(np.asarray(array))
    found = set(values.tolist())
    if found <= {0, 1} or found <= {0, 255}:
        return (np.asarray(array) > 0).astype(np.uint8)
    shown = ", ".join(f"{value:g}" for value in values[:8]) + (", ..." if len(values) > 8 else "")
    raise DatasetError(
        f"{path} is not a binary mask: it holds the values {shown}, but a mask may only hold 0 and 1 "
        f"or 0 and 255 (0 for background, 1 or 255 for {what}). Save it as binary, e.g. "
        f"((mask > 127) * 255).astype('uint8') (the lossy JPEG format or resizing with interpolation "
        f"usually causes this)."
    )


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale an integer or float grey array linearly from 0..max to 0..255 (uint8)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    values = array.astype(np.float64)
    values = values - min(0.0, float(values.min(initial=0.0)))
    top = float(values.max(initial=0.0))
    if top <= 0:
        return np.zeros(array.shape, np.uint8)
    return np.round(values * (255.0 / top)).astype(np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """Read a 2D image file as 8-bit grey, uint8 array of shape (H, W).

    Colour images (RGB, RGBA, palette) are converted to grey with the ITU-R 601 luma
    weights; 16-bit, 32-bit and float images are scaled linearly so that 0 stays 0 and
    the image's maximum becomes 255 (negative values are shifted to 0 first). Raises
    DatasetError naming the file when it is missing or cannot be decoded.

    Args:
        path: the image file (PNG, JPEG, TIFF, ...).

    Returns:
        uint8 array ``(H, W)``.

    Raises:
        DatasetError: the file is missing, cannot be decoded, holds NaN or infinite values,
            or is not a 2D image.
    """
    image = _open(Path(path))
    if image.mode in ("L", "1"):
        array = np.asarray(image.convert("L"))
    elif image.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr", "PA"):
        array = np.asarray(image.convert("L"))
    else:  # "I;16", "I;16B", "I", "F", ...
        array = np.asarray(image)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise DatasetError(f"{path} holds NaN or infinite values: it is damaged; re-export or replace it.")
        array = _to_uint8(array)
    if array.ndim != 2:
        raise DatasetError(f"{path} has shape {array.shape}, expected a 2D grey image: save it as a grey PNG.")
    return np.ascontiguousarray(array, dtype=np.uint8)


def read_mask(path: str | Path) -> np.ndarray:
    """Read a binary mask file as a uint8 array of shape (H, W) with values 0 and 1.

    The file may hold 0/1 or 0/255 (grey, or colour with equal channels). Any other
    values raise DatasetError naming the file, the values found and the fix.

    Args:
        path: the mask file.

    Returns:
        uint8 array ``(H, W)`` of 0 and 1.

    Raises:
        DatasetError: the file is missing, cannot be decoded, is not 2D, or is not binary.
    """
    path = Path(path)
    image = _open(path)
    if image.mode == "1":
        array = np.asarray(image, dtype=np.uint8)
    elif image.mode in ("RGB", "RGBA", "P", "LA", "PA"):
        array = np.asarray(image.convert("L"))
    else:
        array = np.asarray(image)
    if array.ndim != 2:
        raise DatasetError(f"{path} has shape {array.shape}, expected a 2D mask: save it as a grey PNG.")
    return binary_mask(path, array)


def encode_png(array: np.ndarray) -> bytes:
    """Encode a 2D uint8 array (H, W) as 8-bit grey PNG bytes (deterministic, no metadata).

    Args:
        array: a 2D uint8 array.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: ``array`` is not a 2D uint8 array.
    """
    from PIL import Image

    array = np.asarray(array)
    if array.ndim != 2 or array.dtype != np.uint8:
        raise ValueError(f"encode_png needs a 2D uint8 array, got {array.dtype} with shape {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def write_png(array: np.ndarray, path: str | Path, force: bool = False) -> Path:
    """Write a 2D uint8 array as an 8-bit grey PNG file, atomically; an existing file is
    only replaced when ``force=True`` (else FileExistsError). Returns the path.

    Args:
        array: a 2D uint8 array ``(H, W)``.
        path: the PNG file to write.
        force: replace an existing file.

    Returns:
        ``path``, as a ``Path``.

    Raises:
        FileExistsError: ``path`` exists and ``force`` is False.
        ValueError: ``array`` is not a 2D uint8 array.
    """
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists: choose another name or pass force=True to replace it.")
    atomic_write_bytes(path, encode_png(array))
    return path


_NIFTI_FIX = "replace it, or delete the data set folder so that it is regenerated"


def open_nifti(path: str | Path, fix: str = _NIFTI_FIX) -> Any:
    """The nibabel image of a NIfTI file (``.nii`` or ``.nii.gz``), header read, voxels not
    yet loaded. Raises DatasetError naming the file, ending with ``fix``, when it is missing,
    unreadable (permissions) or not NIfTI.

    Args:
        path: the NIfTI file.
        fix: the end of the error message, the fix it proposes.

    Returns:
        The nibabel image (``nibabel.load``).

    Raises:
        DatasetError: the file is missing, unreadable or not NIfTI.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: check the path, or regenerate the data set.")
    try:
        image = nib.load(str(path))
        image.header.get_data_shape()
    except PermissionError as error:
        raise DatasetError(f"{path} cannot be read: permission denied (a problem of this computer's "
                           f"permissions, not of the data): fix the permissions ({error.strerror}).") from None
    except Exception as error:  # noqa: BLE001 -- nibabel raises many types for damaged files
        raise DatasetError(f"{path} cannot be read as NIfTI ({type(error).__name__}: {error}): the file is "
                           f"damaged or not NIfTI; {fix}.") from None
    return image


def nifti_shape(path: str | Path, fix: str = _NIFTI_FIX) -> tuple[int, ...]:
    """The array shape stored in a NIfTI header (no voxels read); errors as :func:`open_nifti`.

    Args:
        path: the NIfTI file.
        fix: the end of an error message, the fix it proposes.

    Returns:
        The shape, as ints.

    Raises:
        DatasetError: as :func:`open_nifti`.
    """
    return tuple(int(n) for n in open_nifti(path, fix).shape)


def read_nifti(path: str | Path, fix: str = _NIFTI_FIX) -> tuple[np.ndarray, np.ndarray]:
    """``(voxels, affine)`` of a NIfTI file with the voxels in their stored type (scaled to
    float only when the header has a slope/intercept), for checks that must see the values
    before any conversion (labels, Hounsfield units). Errors as :func:`open_nifti`.

    Args:
        path: the NIfTI file (``.nii`` or ``.nii.gz``).
        fix: the end of the error message, the fix it proposes.

    Returns:
        ``(voxels, affine)``: the voxels in the file's axis order ``(x, y, z)`` and the 4x4
        voxel-to-world affine (float64, mm).

    Raises:
        DatasetError: the file is missing, unreadable, damaged or not NIfTI.
    """
    image = open_nifti(path, fix)
    try:
        array = np.asarray(image.dataobj)
    except Exception as error:  # noqa: BLE001 -- nibabel/zlib raise many types for truncated files
        raise DatasetError(f"{path} cannot be read as NIfTI ({type(error).__name__}: {error}): the file is "
                           f"damaged or truncated; {fix}.") from None
    return array, np.asarray(image.affine, dtype=np.float64)


def load_nifti(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Load a NIfTI volume (``.nii`` or ``.nii.gz``) as ``(array, affine)``: the voxel
    values as float32 in the file's axis order, ``(x, y, z)`` (see the axis convention
    above; Hounsfield units for CT, scaled by the header's slope/intercept) and the 4x4
    voxel-to-world affine (mm). Raises DatasetError naming the file when it cannot be read.

    Args:
        path: the NIfTI file (``.nii`` or ``.nii.gz``).

    Returns:
        ``(array, affine)``: float32 voxels ``(x, y, z)`` and the 4x4 affine (float64, mm).

    Raises:
        DatasetError: the file is missing, unreadable, damaged or not NIfTI.
    """
    image = open_nifti(path)
    try:
        array = np.asarray(image.get_fdata(dtype=np.float32), dtype=np.float32)
    except Exception as error:  # noqa: BLE001 -- nibabel/zlib raise many types for truncated files
        raise DatasetError(
            f"{path} cannot be read as NIfTI ({type(error).__name__}: {error}): the file is damaged or not "
            f"NIfTI; {_NIFTI_FIX}."
        ) from None
    return array, np.asarray(image.affine, dtype=np.float64)


def to_depth_first(volume: np.ndarray) -> np.ndarray:
    """``volume[x, y, z, ...]`` -> ``volume[z, y, x, ...]`` (depth, height, width first), a
    view; extra trailing axes (channels) stay last. Its own inverse.

    Args:
        volume: an array with at least 3 axes, ``(x, y, z, ...)``.

    Returns:
        A view ``(z, y, x, ...)`` of ``volume``.

    Raises:
        ValueError: ``volume`` has fewer than 3 axes.
    """
    volume = np.asarray(volume)
    if volume.ndim < 3:
        raise ValueError(f"to_depth_first needs a volume with at least 3 axes, got shape {volume.shape}")
    return np.swapaxes(volume, 0, 2)


#: ``from_depth_first(to_depth_first(v))`` is ``v``: the transpose is its own inverse.
from_depth_first = to_depth_first


def as_3d(path: str | Path, array: np.ndarray) -> np.ndarray:
    """Drop trailing axes of length 1 from a volume; refuse anything that is not then 3D
    (a 4D file with several volumes or time points), naming the file.

    Args:
        path: the file the volume comes from, for the message.
        array: the volume.

    Returns:
        The 3D array (a view).

    Raises:
        DatasetError: the array is not 3D once trailing axes of length 1 are dropped.
    """
    array = np.asarray(array)
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise DatasetError(f"{path} has shape {array.shape} ({array.ndim}D), expected one 3D volume: it may hold "
                           f"several volumes or time points; save the one you mean as 3D, or remove the case.")
    return array


def check_finite(path: str | Path, array: np.ndarray) -> None:
    """Raise DatasetError naming ``path`` when ``array`` holds NaN or infinite values.

    Args:
        path: the file the values come from, for the message.
        array: the values.

    Raises:
        DatasetError: ``array`` holds NaN or infinite values.
    """
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        count = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise DatasetError(f"{path} holds {count} NaN or infinite voxels: they have no value to learn from; "
                           f"fix the file (e.g. numpy.nan_to_num with the background value) or remove the case.")


def check_labels(path: str | Path, array: np.ndarray, allowed: set[int] | tuple[set[int], ...],
                 hint: str = "check that this is the right file, or remove the case.") -> np.ndarray:
    """Check the values of a label volume before any cast: the one label check of the loaders.

    Every volume loader (lung CT, liver CT, brain MRI: ``load_cases`` and ``read_case``) and
    every converter validates its masks and segmentations here.

    Args:
        path: the file the labels come from, for the message.
        array: the label values as read (any dtype, any shape).
        allowed: the allowed label values, or a tuple of alternative sets (all values must lie
            in one of them), e.g. ``({0, 1}, {0, 255})`` (:data:`BINARY_LABELS`) for binary masks.
        hint: the fix the message proposes when values are outside ``allowed``.

    Returns:
        The labels as uint8, same shape.

    Raises:
        LabelError: NaN or infinite values, non-integer values, or values outside ``allowed``;
            the message names the file and the values (a :class:`DatasetError`).
    """
    array = np.asarray(array)
    try:
        check_finite(path, array)
    except DatasetError as error:
        raise LabelError(str(error)) from None
    values = np.unique(array)
    fractional = values[values != np.round(values)]
    if fractional.size:
        raise LabelError(f"{path} holds non-integer label values ({', '.join(f'{v:g}' for v in fractional[:5])}"
                           f"{', ...' if fractional.size > 5 else ''}): labels must be whole numbers; this may be an "
                           f"image rather than a label file, or a resampled mask (use nearest-neighbour).")
    found = {int(v) for v in values}
    choices = allowed if isinstance(allowed, tuple) else (allowed,)
    if not any(found <= choice for choice in choices):
        expected = " or ".join(str(sorted(choice)) for choice in choices)
        extra = sorted(found - set().union(*choices)) or sorted(found)
        raise LabelError(f"{path} holds label values {extra} besides the expected {expected}: {hint}")
    return array.astype(np.uint8)


#: Label sets of a binary mask, for :func:`check_labels`.
BINARY_LABELS = ({0, 1}, {0, 255})


def to_hounsfield(path: str | Path, array: np.ndarray) -> np.ndarray:
    """CT values as int16, rounded to the nearest integer. The rule for values that int16
    cannot hold is to refuse, not clip: such values mean the file is not in Hounsfield
    units. Raises DatasetError naming the file for those and for NaN or infinite values.

    Args:
        path: the file the values come from, for the message.
        array: the CT values.

    Returns:
        int16 array of the input's shape.

    Raises:
        DatasetError: NaN, infinite, or values outside the int16 range.
    """
    array = np.asarray(array)
    check_finite(path, array)
    low, high = float(array.min()), float(array.max())
    if low < HU_RANGE[0] or high > HU_RANGE[1]:
        raise DatasetError(f"{path} holds values from {low:g} to {high:g}, outside the int16 range "
                           f"{HU_RANGE[0]}..{HU_RANGE[1]} in which CT is stored: these are not Hounsfield units "
                           f"(check the file's scl_slope/scl_inter, or convert it again), or remove the case.")
    if array.dtype.kind in "fc":
        array = np.rint(array)
    return array.astype(np.int16)


def nifti_bytes(array: np.ndarray, affine: np.ndarray, compress: bool = True) -> bytes:
    """NIfTI-1 file bytes of ``array`` with the 4x4 ``affine`` (voxel to world, mm): spatial
    units mm, qform and sform code 1 (scanner), gzip-compressed with a zero timestamp when
    ``compress``, so that the same array gives the same bytes on every run.

    Args:
        array: the voxels, any shape.
        affine: the 4x4 voxel-to-world matrix (mm).
        compress: gzip the bytes (for ``.nii.gz``).

    Returns:
        The file's bytes.
    """
    import nibabel as nib

    array = np.asarray(array)
    affine = np.asarray(affine, dtype=np.float64)
    image = nib.Nifti1Image(array, affine)
    image.header.set_data_dtype(array.dtype)
    image.header.set_xyzt_units("mm", "sec")
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    payload = image.to_bytes()
    return gzip.compress(payload, compresslevel=6, mtime=0) if compress else payload


def save_nifti(array: np.ndarray, affine: np.ndarray, path: str | Path, force: bool = False) -> Path:
    """Save ``array`` (any shape, e.g. (X, Y, Z)) with the 4x4 ``affine`` (voxel to world,
    mm) as NIfTI; ``.nii.gz`` is gzip-compressed. The file appears atomically (readers never
    see half a file) and an existing file is only replaced when ``force=True`` (else
    FileExistsError). Booleans are stored as uint8, 64-bit integers as int32 and 64-bit
    floats as float32; other dtypes are kept. Returns the path.

    Args:
        array: the voxels, e.g. ``(X, Y, Z)``.
        affine: the 4x4 voxel-to-world matrix (mm).
        path: the file to write (``.nii`` or ``.nii.gz``).
        force: replace an existing file.

    Returns:
        ``path``, as a ``Path``.

    Raises:
        FileExistsError: ``path`` exists and ``force`` is False.
        ValueError: ``affine`` is not 4x4.
    """
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists: choose another name or pass force=True to replace it.")
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype == np.int64:
        array = array.astype(np.int32)
    elif array.dtype == np.float64:
        array = array.astype(np.float32)
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be a 4x4 matrix, got shape {affine.shape}")
    payload = nifti_bytes(array, affine, compress=path.name.lower().endswith(".gz"))
    atomic_write_bytes(path, payload)
    return path


def _list_files(folder: Path) -> dict[str, Path]:
    return {path.name: path for path in sorted(folder.iterdir())
            if path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES) and not path.name.startswith(".")}


def _shown(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """Check an image/mask data set and return its pairs ``[(image_path, mask_path), ...]``
    sorted by file name, for ``folder/images/NAME`` and ``folder/masks/NAME``.

    Checks that the folders exist and are not empty, that every image has a mask of the
    same name and vice versa, that every file decodes, that image and mask sizes match and
    that every mask is binary (0/1 or 0/255). The first problem found raises DatasetError
    naming the file(s) and the fix. Decodes every file once (about a second for 400 pairs).

    Args:
        folder: the data set folder, holding ``images/`` and ``masks/``.

    Returns:
        ``[(image_path, mask_path), ...]``, sorted by file name.

    Raises:
        DatasetError: a missing or empty folder, an image without mask or a mask without
            image, a file that does not decode, sizes that differ, or a mask that is not binary.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(
            f"{folder} does not exist or is not a folder: check the DATASET cell, or generate the default "
            f"set with helpers.data.ensure_dataset('cxr_synthetic')."
        )
    images_dir, masks_dir = folder / "images", folder / "masks"
    for sub in (images_dir, masks_dir):
        if not sub.is_dir():
            raise DatasetError(
                f"{folder} has no {sub.name}/ folder: an image/mask data set needs {folder}/images/*.png and "
                f"{folder}/masks/*.png with the same file names (prepare a public set with "
                f"`python -m helpers data prepare`)."
            )
    images, masks = _list_files(images_dir), _list_files(masks_dir)
    if not images and not masks:
        raise DatasetError(
            f"{images_dir} and {masks_dir} are empty: put the images and masks there, or delete {folder} "
            f"and call helpers.data.ensure_dataset('cxr_synthetic') to regenerate the default set."
        )
    without_mask = sorted(set(images) - set(masks))
    if without_mask:
        first = without_mask[0]
        raise DatasetError(
            f"{masks_dir} has no mask for images/{first}"
            + (f" (nor for {_shown(without_mask[1:])})" if len(without_mask) > 1 else "")
            + f": add masks/{first} or remove the image."
        )
    without_image = sorted(set(masks) - set(images))
    if without_image:
        first = without_image[0]
        raise DatasetError(
            f"{images_dir} has no image for masks/{first}"
            + (f" (nor for {_shown(without_image[1:])})" if len(without_image) > 1 else "")
            + f": add images/{first} or remove the mask."
        )
    pairs = []
    for name in sorted(images):
        image = read_image(images[name])
        mask = read_mask(masks[name])
        if image.shape != mask.shape:
            raise DatasetError(
                f"images/{name} is {image.shape[1]}x{image.shape[0]} pixels but masks/{name} is "
                f"{mask.shape[1]}x{mask.shape[0]} (in {folder}): an image and its mask must have the same "
                f"size; resize the mask with nearest-neighbour interpolation or regenerate it."
            )
        pairs.append((images[name], masks[name]))
    return pairs
