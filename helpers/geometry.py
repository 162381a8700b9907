"""Where the voxels are: spacing, orientation and resampling of 3D volumes in millimetres.

A NIfTI volume is an array ``volume[i, j, k]`` plus a 4 x 4 ``affine`` that maps the voxel
index ``(i, j, k, 1)`` to a point in millimetres in the scanner's frame (NIfTI's RAS+: x grows
towards the patient's right, y towards the front, z towards the head). The course's files
are stored ``"LPS"``, as DICOM: the index ``i`` grows towards the patient's left, ``j``
towards the back (see :mod:`helpers.data.io`). Three things follow from the affine alone:

* :func:`voxel_spacing` -- the size of a voxel along each array axis, the Euclidean norm of
  the affine's columns (never its diagonal: with a rotated or oblique affine the diagonal
  holds cosines times spacings, or even zeros);
* :func:`orientation` -- which world direction each array axis points to, as axis codes
  (``"LPS"``, ``"RAS"``...); :func:`reorient` / :func:`to_canonical` permute and flip the
  array axes so that they point R, A, S (``nibabel.as_closest_canonical`` does the same to
  an image) and :func:`from_canonical` undoes it, exactly;
* :func:`resample_to_spacing` -- the volume on a grid of a chosen spacing in mm (the axes
  keep their directions, the field of view its centre), and :func:`resample_to_grid` -- any
  volume onto any other grid, e.g. a prediction made at the working spacing back onto the
  original CT grid. Images are interpolated linearly (``order=1``), label maps by nearest
  neighbour (``order=0``) so that they keep their label values.

:func:`median_spacing` gives nnU-Net's usual choice of working spacing: the median over the
training cases.

Typical use (the lesson's pipeline)::

    canonical, canonical_affine = geometry.to_canonical(ct, affine)
    working, working_affine = geometry.resample_to_spacing(canonical, canonical_affine, (1.5, 1.5, 3.0))
    ...                                   # predict probabilities on the working grid
    back = geometry.resample_to_grid(probabilities, working_affine, canonical.shape, canonical_affine)
    original = geometry.from_canonical(back, affine)       # on the grid of the file again
    # or in one step, since resampling works in millimetres:
    original = geometry.resample_to_grid(probabilities, working_affine, ct.shape, affine)

Arrays may carry trailing axes after the three spatial ones (channels, classes): they are
carried along untouched. Only NumPy, SciPy and nibabel's orientation helpers are used.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["voxel_spacing", "orientation", "reorient", "to_canonical", "from_canonical",
           "resampled_grid", "resample_to_grid", "resample_to_spacing", "round_trip", "median_spacing", "FillMode"]

#: How :func:`resample_to_grid` fills points outside the source (``scipy.ndimage`` modes).
FillMode = Literal["reflect", "grid-mirror", "constant", "grid-constant", "nearest", "mirror", "grid-wrap", "wrap"]


# --------------------------------------------------------------------------- the affine

def _affine(affine) -> np.ndarray:
    array = np.asarray(affine, dtype=np.float64)
    if array.shape != (4, 4):
        raise ValueError(f"affine must be a 4x4 voxel-to-world matrix (e.g. nibabel's image.affine), "
                         f"got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError("affine holds NaN or infinite values: read it again from the file's header.")
    if abs(np.linalg.det(array[:3, :3])) < 1e-12:
        raise ValueError(f"affine is singular (its 3x3 part has determinant 0): it does not place the "
                         f"voxels in space; check the file's qform/sform.\n{array}")
    return array


def _volume(volume, what: str = "volume") -> np.ndarray:
    array = np.asarray(volume)
    if array.ndim < 3:
        raise ValueError(f"{what} must have three spatial axes (X, Y, Z), optionally followed by channels; "
                         f"got shape {array.shape}.")
    return array


def voxel_spacing(affine: ArrayLike) -> np.ndarray:
    """Voxel size along each array axis, from the affine's column norms.

    Column ``j`` of ``affine[:3, :3]`` is the step in millimetres taken when the index ``j``
    grows by one, so its length is the spacing along that axis, whatever the rotation or
    flip. ``nibabel``'s ``header.get_zooms()`` agrees for a well-formed file.

    Args:
        affine: 4 x 4 voxel-to-world matrix (millimetres).

    Returns:
        float64 array ``(3,)``: spacing in mm along array axes ``(i, j, k)``, all positive.

    Raises:
        ValueError: ``affine`` is not a finite, invertible 4 x 4 matrix.
    """
    return np.sqrt((_affine(affine)[:3, :3] ** 2).sum(axis=0))


def median_spacing(affines: Sequence[ArrayLike]) -> np.ndarray:
    """The median of :func:`voxel_spacing` over cases, axis by axis (nnU-Net's default target
    spacing). Compute it on volumes that share an orientation (e.g. after
    :func:`to_canonical`) so that axis ``j`` means the same direction in every case.

    Args:
        affines: the 4 x 4 affines of the cases.

    Returns:
        float64 array ``(3,)`` in mm.

    Raises:
        ValueError: no affine was given, or one is not a valid 4 x 4 matrix.
    """
    affines = list(affines)
    if not affines:
        raise ValueError("median_spacing got no affines: pass one 4x4 affine per training case.")
    return np.median(np.stack([voxel_spacing(a) for a in affines]), axis=0)


# --------------------------------------------------------------------------- orientation

def orientation(affine: ArrayLike) -> str:
    """Axis codes of the affine: for each array axis the world direction it points to,
    e.g. ``"LPS"`` for a volume stored as DICOM does, ``"RAS"`` after :func:`to_canonical`.
    For an oblique affine each axis gets its closest direction (as
    ``nibabel.orientations.aff2axcodes``).

    Args:
        affine: 4 x 4 voxel-to-world matrix.

    Returns:
        Three letters, one of ``L``/``R``, ``P``/``A``, ``I``/``S`` each.

    Raises:
        ValueError: ``affine`` is not a finite, invertible 4 x 4 matrix.
    """
    from nibabel.orientations import aff2axcodes

    return "".join(aff2axcodes(_affine(affine)))


def _codes(codes) -> tuple[str, str, str]:
    letters = tuple(str(c).upper() for c in codes)
    axes = sorted("LRPAIS".find(c) // 2 for c in letters if c in "LRPAIS")
    if len(letters) != 3 or axes != [0, 1, 2]:
        raise ValueError(f"orientation codes must be three letters naming each of L/R, P/A and I/S once "
                         f"(e.g. 'RAS', 'LPS'), got {codes!r}.")
    return letters  # type: ignore[return-value]


def reorient(volume: ArrayLike, affine: ArrayLike, codes: str = "RAS") -> tuple[np.ndarray, np.ndarray]:
    """Permute and flip the array axes so that they point along ``codes``, and update the
    affine, so that every voxel keeps its place in the world.

    Only whole-axis permutations and flips are applied, never interpolation: the voxel
    values are the input's, in another order. With an oblique affine each axis is matched
    to its closest world direction (``nibabel.orientations.io_orientation``), so the result
    is the closest array to ``codes``; its affine stays oblique.

    Args:
        volume: ``(X, Y, Z)`` or ``(X, Y, Z, ...)``; trailing axes are kept.
        affine: 4 x 4 voxel-to-world matrix of ``volume``.
        codes: target axis codes, e.g. ``"RAS"`` (nibabel's canonical) or ``"LPS"`` (DICOM).

    Returns:
        ``(array, affine)``: the reoriented array (a contiguous copy) and its 4 x 4 affine.

    Raises:
        ValueError: ``volume`` has fewer than 3 axes, ``affine`` is not valid, or ``codes``
            does not name each of L/R, P/A, I/S once.
    """
    from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

    array = _volume(volume)
    matrix = _affine(affine)
    transform = ornt_transform(io_orientation(matrix), axcodes2ornt(_codes(codes)))
    new_array = np.ascontiguousarray(apply_orientation(array, transform))
    new_affine = matrix @ inv_ornt_aff(transform, array.shape[:3])
    return new_array, new_affine


def to_canonical(volume: ArrayLike, affine: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """:func:`reorient` to ``"RAS"``, nibabel's canonical frame: the index of axis 0 grows
    towards the patient's right, axis 1 towards the front (anterior), axis 2 towards the
    head (superior). The same array and affine as ``nibabel.as_closest_canonical(image)``.
    The course's files are stored ``"LPS"`` (as DICOM), so for them this flips axes 0 and 1.

    Args:
        volume: ``(X, Y, Z)`` or ``(X, Y, Z, ...)``.
        affine: its 4 x 4 voxel-to-world matrix.

    Returns:
        ``(array, affine)`` in RAS orientation.

    Raises:
        ValueError: as :func:`reorient`.
    """
    return reorient(volume, affine, "RAS")


def from_canonical(volume: ArrayLike, original_affine: ArrayLike) -> np.ndarray:
    """Undo :func:`to_canonical`: put an array made on the canonical grid of a volume (its
    image, a prediction, a label map) back in the axis order of the original volume, whose
    affine is ``original_affine``. ``from_canonical(to_canonical(v, a)[0], a)`` is ``v``.

    Args:
        volume: ``(X', Y', Z')`` or ``(X', Y', Z', ...)`` on the canonical grid.
        original_affine: the affine of the original volume (as read from the file).

    Returns:
        The array on the original grid; save it with ``original_affine``.

    Raises:
        ValueError: ``volume`` has fewer than 3 axes or ``original_affine`` is not valid.
    """
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

    array = _volume(volume)
    transform = ornt_transform(axcodes2ornt(("R", "A", "S")), io_orientation(_affine(original_affine)))
    return np.ascontiguousarray(apply_orientation(array, transform))


# --------------------------------------------------------------------------- resampling

def _spacing3(spacing) -> np.ndarray:
    values = np.atleast_1d(np.asarray(spacing, dtype=np.float64))
    if values.size == 1:
        values = np.repeat(values, 3)
    if values.shape != (3,) or not np.isfinite(values).all() or (values <= 0).any():
        raise ValueError(f"spacing must be one positive number or three (mm along axes i, j, k), got {spacing!r}.")
    return values


def resampled_grid(shape: Sequence[int], affine: ArrayLike,
                   spacing: float | Sequence[float]) -> tuple[tuple[int, int, int], np.ndarray]:
    """The grid of :func:`resample_to_spacing`: shape and affine of a volume of ``shape``
    and ``affine`` resampled to ``spacing``.

    Each axis keeps its direction; its voxels become ``spacing`` mm long; the number of
    voxels is ``round(n * old / new)`` (at least 1), so the field of view stays about the
    same (as nnU-Net); the centre of the field of view stays where it was, so the grids of
    two spacings are aligned on the volume's centre.

    Args:
        shape: spatial shape ``(X, Y, Z)`` (extra trailing entries are ignored).
        affine: 4 x 4 voxel-to-world matrix.
        spacing: target voxel size in mm, one number or one per axis ``(i, j, k)``.

    Returns:
        ``(shape, affine)`` of the new grid.

    Raises:
        ValueError: invalid affine, shape or spacing.
    """
    matrix = _affine(affine)
    old_shape = np.asarray(tuple(shape)[:3], dtype=np.int64)
    if old_shape.shape != (3,) or (old_shape < 1).any():
        raise ValueError(f"shape must hold three positive sizes (X, Y, Z), got {tuple(shape)}.")
    target = _spacing3(spacing)
    current = voxel_spacing(matrix)
    new_shape = np.maximum(1, np.round(old_shape * current / target)).astype(np.int64)
    new_affine = matrix.copy()
    new_affine[:3, :3] = matrix[:3, :3] * (target / current)
    centre_old = (old_shape - 1) / 2.0
    centre_new = (new_shape - 1) / 2.0
    new_affine[:3, 3] = matrix[:3, :3] @ centre_old + matrix[:3, 3] - new_affine[:3, :3] @ centre_new
    nx, ny, nz = (int(n) for n in new_shape)
    return (nx, ny, nz), new_affine


def _check_order(order: int) -> int:
    if int(order) != order or not 0 <= int(order) <= 5:
        raise ValueError(f"order must be an integer from 0 to 5 (0: nearest neighbour, for label maps; "
                         f"1: linear, for images and probabilities), got {order!r}.")
    return int(order)


def _separable_linear(array: np.ndarray, scale: np.ndarray, offset: np.ndarray, out_shape) -> np.ndarray:
    """Linear interpolation on an axis-aligned grid, one axis at a time (the result of
    ``scipy.ndimage.affine_transform(order=1, mode="nearest")`` with a diagonal matrix, some
    ten times faster on a CT: the axis that shrinks most goes first).
    """
    ratios = [out_shape[axis] / array.shape[axis] for axis in range(3)]
    for axis in sorted(range(3), key=lambda a: ratios[a]):
        n = array.shape[axis]
        source = np.clip(scale[axis] * np.arange(out_shape[axis]) + offset[axis], 0, n - 1)
        low = np.minimum(np.floor(source).astype(np.intp), max(n - 2, 0))
        high = np.minimum(low + 1, n - 1)
        weight = (source - low).astype(np.float32).reshape((-1,) + (1,) * (array.ndim - axis - 1))
        below = np.take(array, low, axis=axis)
        array = below + (np.take(array, high, axis=axis) - below) * weight
    return np.ascontiguousarray(array, dtype=np.float32)


def resample_to_grid(volume: ArrayLike, affine: ArrayLike, shape: Sequence[int], target_affine: ArrayLike,
                     order: int = 1, mode: FillMode = "nearest", cval: float = 0.0) -> np.ndarray:
    """Resample ``volume`` (on the grid of ``affine``) onto the grid ``(shape, target_affine)``:
    each target voxel takes the value of the source at the same point in millimetres. Use it
    to bring a prediction made on the working grid back onto the original volume's grid.

    The same result as ``nibabel.processing.resample_from_to`` (one
    ``scipy.ndimage.affine_transform``; linear interpolation between grids whose axes are
    parallel goes one axis at a time, faster). Since it works in millimetres, a prediction
    made on the working grid of a reoriented volume goes straight back onto the file's
    grid: ``resample_to_grid(probabilities, working_affine, ct.shape, affine)``, no
    :func:`from_canonical` needed.

    Args:
        volume: ``(X, Y, Z)`` or ``(X, Y, Z, C)``; each trailing channel is resampled alone.
        affine: 4 x 4 affine of ``volume``.
        shape: spatial shape of the target grid (trailing entries ignored).
        target_affine: 4 x 4 affine of the target grid.
        order: spline order: 0 (nearest neighbour) for label maps, 1 (linear) for images and
            probabilities.
        mode: how points outside the source are filled (``scipy.ndimage`` modes);
            ``"nearest"`` repeats the edge voxels, ``"constant"`` uses ``cval``.
        cval: fill value for ``mode="constant"``.

    Returns:
        The resampled array ``shape + volume.shape[3:]``: the input's dtype for ``order=0``
        (labels keep their values), float32 otherwise.

    Raises:
        ValueError: invalid volume, affines, shape or order.
    """
    from scipy import ndimage

    array = _volume(volume)
    order = _check_order(order)
    source, target = _affine(affine), _affine(target_affine)
    out_shape = tuple(int(n) for n in tuple(shape)[:3])
    if len(out_shape) != 3 or min(out_shape) < 1:
        raise ValueError(f"shape must hold three positive sizes (X, Y, Z), got {tuple(shape)}.")
    voxel_map = np.linalg.solve(source, target)          # target index -> source index
    matrix, offset = voxel_map[:3, :3], voxel_map[:3, 3]
    if np.allclose(matrix, np.diag(np.diag(matrix)), atol=1e-9):
        matrix = np.diag(matrix)
    dtype = array.dtype if order == 0 else np.float32
    if order == 1 and mode == "nearest" and matrix.ndim == 1:
        return _separable_linear(array.astype(np.float32, copy=False), matrix, offset, out_shape)
    work = array if order == 0 or array.dtype.kind == "f" else array.astype(np.float32)
    if order == 0 and work.dtype == bool:
        work = work.astype(np.uint8)
    flat = work.reshape(work.shape[:3] + (-1,))
    out = np.empty(out_shape + (flat.shape[-1],), dtype=flat.dtype)
    for channel in range(flat.shape[-1]):
        out[..., channel] = ndimage.affine_transform(flat[..., channel], matrix, offset=offset,
                                                     output_shape=out_shape, order=order, mode=mode,
                                                     cval=cval)
    return out.reshape(out_shape + array.shape[3:]).astype(dtype, copy=False)


def round_trip(volume: ArrayLike, affine: ArrayLike, shape: Sequence[int], target_affine: ArrayLike,
               order: int = 1) -> np.ndarray:
    """What of ``volume`` survives a working grid: resampled onto ``(shape, target_affine)``
    and back onto its own grid (lesson 06 measures with it the best Dice that any model
    predicting on a candidate working grid could reach).

    Args:
        volume: ``(X, Y, Z)`` on the grid of ``affine``.
        affine: 4 x 4 voxel-to-world matrix of ``volume``.
        shape: the working grid's shape.
        target_affine: the working grid's 4 x 4 affine.
        order: interpolation order both ways (1: linear).

    Returns:
        float32 (for ``order >= 1``) array of ``volume``'s shape.

    Raises:
        ValueError: as :func:`resample_to_grid`.
    """
    array = _volume(volume)
    there = resample_to_grid(array, affine, shape, target_affine, order=order)
    return resample_to_grid(there, target_affine, array.shape, affine, order=order)


def resample_to_spacing(volume: ArrayLike, affine: ArrayLike, spacing: float | Sequence[float], order: int = 1,
                        mode: FillMode = "nearest") -> tuple[np.ndarray, np.ndarray]:
    """Resample a volume to voxels of ``spacing`` millimetres, keeping its axis directions.

    The new grid is :func:`resampled_grid`: ``round(n * old / new)`` voxels per axis, the
    field of view centred where it was, spacing exactly ``spacing``. Interpolation is
    linear for ``order=1`` (images: HU, intensities) and nearest neighbour for ``order=0``
    (label maps keep their label values, and so a binary mask stays binary). Spacing is read
    from the affine's column norms (:func:`voxel_spacing`), so rotated and flipped affines
    are handled; reorient first (:func:`to_canonical`) if the spacing you pass is meant in
    RAS axis order.

    Args:
        volume: ``(X, Y, Z)`` or ``(X, Y, Z, C)``.
        affine: 4 x 4 voxel-to-world matrix of ``volume``.
        spacing: target voxel size in mm, one number or one per array axis ``(i, j, k)``.
        order: 1 (linear) for images, 0 (nearest) for label maps; up to 5 (splines).
        mode: how the half voxel at the border is filled (``scipy.ndimage`` modes).

    Returns:
        ``(array, affine)``: the resampled volume (float32, or the input's dtype for
        ``order=0``) and its affine, whose column norms are ``spacing``. Bring a
        prediction back with ``resample_to_grid(prediction, affine_new, volume.shape, affine)``.

    Raises:
        ValueError: invalid volume, affine, spacing or order.
    """
    array = _volume(volume)
    new_shape, new_affine = resampled_grid(array.shape, affine, spacing)
    return resample_to_grid(array, affine, new_shape, new_affine, order=order, mode=mode), new_affine
