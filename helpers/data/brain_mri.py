"""Synthetic brain MRI with gliomas, in the file layout of BraTS 2020 (lesson 08).

Each case is a skull-stripped brain in four MRI contrasts (T1, T1ce, T2, FLAIR) with a
segmentation of the tumour sub-regions, written as::

    BraTS20_Training_001/BraTS20_Training_001_t1.nii.gz     (float volumes, 0 outside the brain)
    BraTS20_Training_001/BraTS20_Training_001_t1ce.nii.gz
    BraTS20_Training_001/BraTS20_Training_001_t2.nii.gz
    BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz
    BraTS20_Training_001/BraTS20_Training_001_seg.nii.gz    (uint8 labels 0, 1, 2, 4)

Labels follow BraTS: 0 background and healthy tissue, 1 necrotic / non-enhancing tumour
core, 2 peritumoural oedema, 4 GD-enhancing tumour. Volumes are indexed ``(x, y, z)``
(left-right, posterior-anterior, inferior-superior; axial slices along the last axis) on a
1 mm isotropic grid with a BraTS-like affine.

The anatomy has white matter, a folded grey-matter cortex, deep grey nuclei, ventricles,
sulci and the interhemispheric fissure. Contrasts follow the real sequences: on T1 white
matter is brighter than grey matter, CSF dark; on T2 CSF is brightest; on FLAIR CSF is
suppressed and oedema bright; on T1ce the tumour rim enhances around a dark necrotic core.
Each volume has its own bias field, Rician noise, tissue contrasts and arbitrary intensity
scale, and there are look-alikes (white-matter hyperintensities on FLAIR/T2, enhancing
choroid plexus and vessels on T1ce), so a fixed intensity threshold does not segment the
tumour well while a U-Net does.
"""

from __future__ import annotations

import re
from pathlib import Path

from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike

from helpers import config
from helpers.data._store import DatasetError, generate_into
from helpers.data.io import nifti_bytes

GENERATOR_VERSION = "1.0"

#: Modalities in the channel order used by the course (BraTS file suffixes).
MODALITIES = ("t1", "t1ce", "t2", "flair")

#: Label values allowed in a BraTS segmentation.
LABELS = tuple(config.BRATS_LABELS)

#: Default parameters of :func:`generate`.
DEFAULTS: dict[str, Any] = {
    "n_cases": 24,
    "shape": (64, 64, 48),
    "seed": config.SEED,
}

CASE_PREFIX = "BraTS20_Training_"

# Relative tissue intensities per modality (white matter of T1 = 1). Keys: tissue names.
_TISSUE_CONTRAST = {
    #              wm    gm    csf   ncr   ed    et    wmh   plexus
    "t1":   dict(wm=1.00, gm=0.72, csf=0.28, ncr=0.35, ed=0.70, et=0.78, wmh=0.85, plexus=0.55),
    "t1ce": dict(wm=1.00, gm=0.74, csf=0.30, ncr=0.38, ed=0.72, et=1.50, wmh=0.88, plexus=1.45),
    "t2":   dict(wm=0.45, gm=0.68, csf=1.50, ncr=1.35, ed=1.05, et=0.90, wmh=1.00, plexus=0.90),
    "flair": dict(wm=0.55, gm=0.78, csf=0.12, ncr=0.85, ed=1.25, et=1.05, wmh=1.20, plexus=0.40),
}


def brats_affine(shape: Sequence[int]) -> np.ndarray:
    """4x4 voxel-to-world affine (millimetres) like BraTS: 1 mm voxels, x and y flipped
    (LPS-style storage as in the BraTS NIfTI files), origin so that voxel (0, Y-1, 0) is at 0.

    Args:
        shape: the grid ``(x, y, z)``.

    Returns:
        The 4x4 affine (float64).
    """
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[1, 3] = float(shape[1] - 1)
    return affine


def case_name(number: int) -> str:
    """BraTS folder name of case ``number`` (1-based): ``BraTS20_Training_007`` for 7.

    Args:
        number: the case's number, from 1.

    Returns:
        The case's folder name.
    """
    return f"{CASE_PREFIX}{number:03d}"


def case_files(name: str) -> list[str]:
    """Relative paths of the five files of case ``name`` (four modalities, then seg).

    Args:
        name: the case's name (:func:`case_name`).

    Returns:
        The five relative paths.
    """
    return [f"{name}/{name}_{suffix}.nii.gz" for suffix in (*MODALITIES, "seg")]


# --------------------------------------------------------------------------- synthesis

def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise with unit standard deviation (float32)."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return field / (field.std() + 1e-6)


def _rotation(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    """Random 3x3 rotation with angles up to ``max_degrees`` about each axis."""
    angles = np.deg2rad(rng.uniform(-max_degrees, max_degrees, size=3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _ellipsoid(coords, centre, radii, rotation=None) -> np.ndarray:
    """Normalised ellipsoid radius (1 on the surface) of points ``coords`` (3, ...)."""
    offset = coords - np.asarray(centre, dtype=np.float32).reshape(3, *([1] * (coords.ndim - 1)))
    if rotation is not None:
        offset = np.tensordot(rotation.T.astype(np.float32), offset, axes=1)
    radii = np.asarray(radii, dtype=np.float32).reshape(3, *([1] * (coords.ndim - 1)))
    return np.sqrt(np.sum((offset / radii) ** 2, axis=0))


def make_case(number: int, *, shape: Sequence[int] = DEFAULTS["shape"],
              seed: int = DEFAULTS["seed"]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Make case ``number`` (1-based, as in ``BraTS20_Training_001``): ``({modality: float32
    volume}, seg uint8, affine 4x4)``, volumes of ``shape`` (x, y, z), affine
    :func:`brats_affine`.

    Deterministic in ``(number, shape, seed)``. Intensities are arbitrary positive units, 0
    outside the brain; seg holds BraTS labels 0, 1, 2, 4.

    Args:
        number: the case's number, from 1.
        shape: the grid ``(x, y, z)``.
        seed: the seed of the set.

    Returns:
        ``(volumes, seg, affine)`` as above.

    Raises:
        ValueError: ``number < 1``.
    """
    from scipy.ndimage import binary_dilation, gaussian_filter

    if int(number) < 1:
        raise ValueError(f"case numbers start at 1, got {number}")
    rng = np.random.default_rng([int(seed), int(number), 8])
    shape = tuple(int(s) for s in shape)
    size = np.array(shape, dtype=np.float32)
    coords = np.indices(shape, dtype=np.float32)

    # ---- head pose and brain outline
    head_rot = _rotation(rng, 6.0)
    centre = size / 2 + rng.uniform(-2, 2, 3) * size / 64 - np.array([0, 0, 0.03 * size[2]])
    radii = np.array([0.40, 0.45, 0.43]) * size * rng.uniform(0.93, 1.03, 3)
    local = np.tensordot(head_rot.T.astype(np.float32),
                         coords - centre.reshape(3, 1, 1, 1).astype(np.float32), axes=1)
    unit = local / radii.reshape(3, 1, 1, 1).astype(np.float32)   # brain ~ unit ball
    rho = np.sqrt(np.sum(unit ** 2, axis=0))
    rho = rho * (1.0 + 0.035 * _smooth_noise(rng, shape, 6.0))
    # flatter base of the brain
    rho = np.where(unit[2] < -0.55, rho + 0.6 * (-0.55 - unit[2]) ** 2, rho)
    brain = rho < 1.0

    # ---- tissues: 0 outside, 1 WM, 2 GM, 3 CSF
    tissue = np.zeros(shape, dtype=np.uint8)
    tissue[brain] = 1
    folds = _smooth_noise(rng, shape, 1.6)
    cortex = brain & (rho > 0.80 + 0.06 * folds)
    tissue[cortex] = 2
    sulcus_field = _smooth_noise(rng, shape, 1.4)
    sulci = brain & (rho > 0.82) & (np.abs(sulcus_field) < 0.28)
    fissure = brain & (np.abs(unit[0]) < 0.025 + 0.015 * rng.random()) & (rho > 0.5) & (unit[2] > -0.2)
    tissue[sulci | fissure] = 3
    # deep grey nuclei (thalamus, basal ganglia)
    for side in (-1.0, 1.0):
        deep = _ellipsoid(unit, (side * 0.22, -0.05, -0.05), (0.11, 0.18, 0.12)) < 1.0
        tissue[deep & brain] = 2
    # lateral ventricles (size varies between people) and third ventricle
    ventricle_scale = rng.uniform(0.7, 1.35)
    ventricles = np.zeros(shape, dtype=bool)
    for side in (-1.0, 1.0):
        tilt = _rotation(rng, 8.0)
        ventricles |= _ellipsoid(unit, (side * 0.11, 0.02, 0.12),
                                 np.array([0.09, 0.38, 0.12]) * ventricle_scale, tilt) < 1.0
    ventricles |= _ellipsoid(unit, (0.0, -0.05, -0.05), (0.02, 0.14, 0.09)) < 1.0
    ventricles &= brain
    tissue[ventricles] = 3

    # ---- tumour: oedema (2) around a core of enhancing rim (4) and necrosis (1)
    candidates = np.argwhere(brain & (rho < 0.62) & ~ventricles)
    t_centre = candidates[rng.integers(len(candidates))].astype(np.float32)
    t_rot = _rotation(rng, 90.0)
    core_radius = rng.uniform(0.09, 0.18) * size[:2].mean()
    core_radii = core_radius * rng.uniform(0.75, 1.25, 3)
    d_core = _ellipsoid(coords, t_centre, core_radii, t_rot)
    d_core = d_core + 0.20 * _smooth_noise(rng, shape, 2.5)
    core = brain & ~ventricles & (d_core < 1.0)
    oedema_extent = rng.uniform(1.5, 2.3)
    d_ed = _ellipsoid(coords, t_centre, core_radii * oedema_extent, t_rot) \
        + 0.22 * _smooth_noise(rng, shape, 3.0)
    oedema = brain & (tissue != 3) & (d_ed < 1.0)
    # oedema spreads along white matter, less into the cortex
    oedema &= (tissue == 1) | (d_ed < 0.75)
    rim_fraction = rng.uniform(0.25, 0.55) if rng.random() > 0.15 else 1.2  # some are solid
    necrosis = core & (d_core + 0.10 * _smooth_noise(rng, shape, 1.5) < 1.0 - rim_fraction)

    seg = np.zeros(shape, dtype=np.uint8)
    seg[oedema] = 2
    seg[core] = 4
    seg[necrosis] = 1

    # ---- look-alikes that are not tumour
    wmh = np.zeros(shape, dtype=bool)
    white = np.argwhere((tissue == 1) & (seg == 0))
    for _ in range(int(rng.integers(1, 5))):
        point = white[rng.integers(len(white))]
        wmh |= _ellipsoid(coords, point, rng.uniform(1.2, 2.4, 3), _rotation(rng, 90)) < 1.0
    wmh &= (tissue == 1) & (seg == 0)
    # periventricular caps, bright on FLAIR and T2
    wmh |= binary_dilation(ventricles, iterations=1) & (tissue == 1) & (seg == 0) \
        & (_smooth_noise(rng, shape, 2.0) > 0.6)
    plexus = ventricles & (_smooth_noise(rng, shape, 1.2) > 1.0)
    vessels = brain & (tissue != 1) & (seg == 0) & (np.abs(_smooth_noise(rng, shape, 1.2)) < 0.05) \
        & (rho > 0.75)

    # ---- intensities
    volumes: dict[str, np.ndarray] = {}
    hetero = _smooth_noise(rng, shape, 1.2)
    fade = np.clip((d_ed - 0.4) / 0.6, 0.0, 1.0).astype(np.float32)
    for modality in MODALITIES:
        contrast = {k: v * rng.uniform(0.92, 1.08) for k, v in _TISSUE_CONTRAST[modality].items()}
        image = np.zeros(shape, dtype=np.float32)
        image[tissue == 1] = contrast["wm"]
        image[tissue == 2] = contrast["gm"]
        image[tissue == 3] = contrast["csf"]
        image[wmh] = contrast["wmh"]
        image[plexus] = contrast["plexus"]
        # oedema fades into the white matter towards its edge
        image[seg == 2] = (contrast["ed"] + (contrast["wm"] - contrast["ed"]) * 0.4 * fade)[seg == 2]
        image[seg == 4] = contrast["et"]
        image[seg == 1] = contrast["ncr"]
        if modality == "t1ce":
            image[vessels] = contrast["et"] * rng.uniform(0.8, 1.0)
        # fine texture everywhere, stronger heterogeneity inside the tumour
        texture = 1.0 + 0.04 * _smooth_noise(rng, shape, 1.0)
        texture = np.where(seg > 0, texture + 0.10 * hetero, texture)
        image *= texture
        image = gaussian_filter(image, 0.6)           # partial volume
        bias = np.exp(0.10 * _smooth_noise(rng, shape, 12.0))
        image *= bias
        sigma = 0.035 * rng.uniform(0.8, 1.4)
        real = image + sigma * rng.standard_normal(shape).astype(np.float32)
        imaginary = sigma * rng.standard_normal(shape).astype(np.float32)
        image = np.sqrt(real ** 2 + imaginary ** 2)   # Rician magnitude noise
        image *= float(np.exp(rng.uniform(np.log(150.0), np.log(2500.0))))  # scanner units
        image[~brain] = 0.0                           # skull-stripped
        volumes[modality] = image.astype(np.float32)
    return volumes, seg, brats_affine(shape)


# --------------------------------------------------------------------------- files

def _make(task: tuple) -> dict[str, bytes]:
    """Worker for :func:`generate`: all five files of one case."""
    number, shape, seed = task
    name = case_name(number)
    volumes, seg, affine = make_case(number, shape=shape, seed=seed)
    files = case_files(name)
    payload = {path: nifti_bytes(volumes[modality], affine)
               for path, modality in zip(files[:4], MODALITIES)}
    payload[files[4]] = nifti_bytes(seg, affine)
    return payload


def generate(folder: str | Path, *, force: bool = False, n_cases: int = DEFAULTS["n_cases"],
             shape: Sequence[int] = DEFAULTS["shape"], seed: int = DEFAULTS["seed"], workers: int = 1) -> Path:
    """Generate (or reuse) ``n_cases`` synthetic BraTS-like cases in ``folder``; return it.

    Each case is a folder ``BraTS20_Training_NNN`` (NNN = 001, 002, ...) with float32
    T1, T1ce, T2 and FLAIR volumes of ``shape`` voxels (x, y, z; 1 mm isotropic) and a
    uint8 ``seg`` with labels {0, 1, 2, 4}. Same ``seed`` and parameters give byte-identical
    files. An existing complete set with the same parameters is reused; files not written
    by the course are never deleted unless ``force=True``.

    Args:
        folder: where the set goes.
        force: delete the folder's other files and regenerate.
        n_cases: the number of cases, 1 to 999.
        shape: the grid of each volume ``(x, y, z)``.
        seed: the seed of the set.
        workers: processes drawing the cases.

    Returns:
        ``folder``.

    Raises:
        ValueError: ``n_cases`` out of range, or a shape below 24 voxels per axis.
        DatasetError: ``folder`` holds files the generator did not write and ``force`` is False.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 24:
        raise ValueError(f"shape must be three sizes of at least 24 voxels, got {shape}.")
    if int(n_cases) < 1 or int(n_cases) > 999:
        raise ValueError(f"n_cases must be between 1 and 999 (three-digit case numbers), got {n_cases}.")
    names = [case_name(i) for i in range(1, int(n_cases) + 1)]
    request = {
        "generator": "brats_synthetic",
        "version": GENERATOR_VERSION,
        "params": {"n_cases": int(n_cases), "shape": list(shape), "seed": int(seed)},
    }
    planned = [path for name in names for path in case_files(name)]
    tasks = [(number, shape, int(seed)) for number in range(1, int(n_cases) + 1)]
    return generate_into(Path(folder), request=request, planned=planned, tasks=tasks,
                         make=_make, force=force, desc="brain MRI cases", workers=workers)


# --------------------------------------------------------------------------- loading

_CASE_PATTERN = re.compile(r".*_(\d{3,5})$")


def _find(case_dir: Path, suffix: str) -> Path | None:
    for extension in (".nii.gz", ".nii"):
        path = case_dir / f"{case_dir.name}_{suffix}{extension}"
        if path.is_file():
            return path
    return None


def load_cases(folder: str | Path, *, check_masks: bool = True) -> list[tuple[list[Path], Path]]:
    """Find and validate the cases of a BraTS-layout folder.

    Returns one ``([t1, t1ce, t2, flair], seg)`` tuple of paths per case folder
    ``<prefix>_NNN`` (sorted by name); ``.nii.gz`` and ``.nii`` are both accepted. Raises
    :class:`DatasetError` naming the file and the fix when a modality or the segmentation is
    missing, when the five volumes of a case differ in shape, or (``check_masks=True``,
    reads every seg) when a segmentation holds values other than 0, 1, 2, 4.

    Args:
        folder: the data set folder (BraTS layout).
        check_masks: read every segmentation and check its labels.

    Returns:
        ``[([t1, t1ce, t2, flair], seg), ...]``, sorted by case name.

    Raises:
        DatasetError: as described above.
    """
    from helpers.data.io import nifti_shape, read_nifti

    fix = "replace the file or regenerate the data set with force=True"
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder. Generate the synthetic set with "
                           f"data.ensure_dataset('brats_synthetic') or point DATASET at a BraTS folder.")
    case_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and _CASE_PATTERN.match(p.name))
    if not case_dirs:
        raise DatasetError(
            f"No BraTS case folders (e.g. BraTS20_Training_001/) in {folder}. Point the "
            f"lesson at the folder that directly contains the case folders "
            f"(for BraTS 2020: MICCAI_BraTS2020_TrainingData).")
    cases = []
    for case_dir in case_dirs:
        paths = []
        for suffix in (*MODALITIES, "seg"):
            path = _find(case_dir, suffix)
            if path is None:
                raise DatasetError(
                    f"{case_dir / f'{case_dir.name}_{suffix}.nii.gz'} is missing. Every case needs "
                    f"{', '.join(MODALITIES)} and seg; remove the incomplete case folder {case_dir.name} "
                    f"or restore the file (in BraTS 2020, case 355's seg must be renamed to "
                    f"{case_dir.name}_seg.nii).")
            paths.append(path)
        shapes = {}
        for path in paths:
            shapes[path] = nifti_shape(path, fix)
        reference = shapes[paths[0]]
        for path, shape in shapes.items():
            if shape != reference:
                raise DatasetError(
                    f"{path} has shape {shape} but {paths[0].name} has {reference}: the four "
                    f"modalities and the seg of a case must be co-registered on one grid. "
                    f"Resample the file onto the grid of the others or remove the case.")
        if check_masks:
            _check_seg(paths[4], read_nifti(paths[4], fix)[0])
        cases.append((paths[:4], paths[4]))
    return cases


def read_case(modality_paths: Sequence[str | Path],
              seg_path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read one case: ``(image float32 (X, Y, Z, 4) in MODALITIES order, seg uint8 (X, Y, Z) or None)``.

    Args:
        modality_paths: the NIfTI files of the modalities, in :data:`MODALITIES` order.
        seg_path: the segmentation's NIfTI file, or None for no segmentation.

    Returns:
        ``(image, seg)`` as above.

    Raises:
        DatasetError: a file cannot be read, or the segmentation holds labels other than
            0, 1, 2, 4.
    """
    from helpers.data.io import read_nifti

    channels = [np.asarray(read_nifti(path)[0], dtype=np.float32) for path in modality_paths]
    image = np.stack(channels, axis=-1)
    seg = None if seg_path is None else _check_seg(seg_path, read_nifti(seg_path)[0])
    return image, seg


def _check_seg(path: str | Path, labels: np.ndarray) -> np.ndarray:
    """BraTS labels as uint8, checked by :func:`helpers.data.io.check_labels` (0, 1, 2, 4 only)."""
    from helpers.data.io import check_labels

    return check_labels(path, labels, set(LABELS), hint=(
        f"BraTS segmentations use only {list(LABELS)} (1 necrosis, 2 oedema, 4 enhancing tumour). If your "
        f"data already uses 3 for enhancing tumour, map 3 back to 4 before loading, or fix the file."))


def remap_labels(seg: ArrayLike) -> np.ndarray:
    """Lesson 08's ``remap_labels`` (Exercise 8.1): BraTS labels to softmax classes.

    Args:
        seg: a BraTS label array of any shape and integer dtype, values in {0, 1, 2, 4}.

    Returns:
        A new array of the same shape and dtype with 4 replaced by 3 (classes 0..3);
        ``seg`` itself is left unchanged.
    """
    labels = np.array(seg, copy=True)
    labels[labels == 4] = 3
    return labels
