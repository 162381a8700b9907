"""Synthetic abdominal CT with liver masks, in the file layout of 3D-IRCADb (lesson 07).

Each case is a contrast-enhanced (portal venous phase) abdominal CT volume in Hounsfield
units and a binary liver mask, both in one folder::

    ircad_e01_orig.nii.gz    int16 HU, (x, y, z) = (right->left, anterior->posterior, inferior->superior)
    ircad_e01_liver.nii.gz   uint8 {0, 1}, same grid
    ircad_e02_orig.nii.gz
    ...

Volumes are stored like DICOM-derived NIfTI files: the first array axis runs towards the
patient's left, the second towards the back, the third towards the head, with a real
affine (anisotropic voxels: about 2.6-3.1 mm in-plane and 4-5 mm between slices at the
default size). An axial slice ``volume[:, :, k]`` shown as ``plt.imshow(slice.T)`` is in
radiological convention: the patient's right (and the liver) on the left of the image,
the front at the top.

The anatomy is what makes the task need learning: a body outline with subcutaneous and
visceral fat (about -100 HU), abdominal wall and back muscles (45-60 HU, as dense as the
liver), the liver (50-75 HU) touching the abdominal wall, the spleen on the other side
with nearly the same density, kidneys, aorta and inferior vena cava (bright with contrast),
pancreas, spine and ribs (bone), a stomach with gas and fluid, bowel and colon loops, a
gallbladder (fluid, outside the liver mask), the lung bases above the diaphragm, and
partial-volume blur and noise. Inside the liver there are bright portal and hepatic vessels
and hypodense lesions (15-35 HU); both belong to the liver mask, as in 3D-IRCADb. The liver
appears only in a range of slices. Every case has its own body size, pose, voxel spacing,
organ shapes, contrast and noise; everything is deterministic in ``(seed, case number)``.
"""

from __future__ import annotations

import re
from pathlib import Path

from typing import Any, Sequence

import numpy as np

from helpers import config
from helpers.data._store import DatasetError, generate_into
from helpers.data.io import nifti_bytes

GENERATOR_VERSION = "1.0"

#: Default parameters of :func:`generate`: 20 cases of 128 x 128 voxels in-plane, 40 slices.
DEFAULTS: dict[str, Any] = {
    "n_cases": 20,
    "shape": (128, 128, 40),
    "seed": config.SEED,
}

#: Integer codes of the tissues in the label map returned by ``make_case(..., tissues=True)``
#: (used by the tests and the benchmark; not written to disk).
TISSUES = {
    "air": 0, "subcutaneous_fat": 1, "muscle": 2, "visceral_fat": 3, "liver": 4, "lesion": 5,
    "liver_vessel": 6, "spleen": 7, "kidney": 8, "aorta": 9, "ivc": 10, "bone": 11,
    "stomach_gas": 12, "stomach_fluid": 13, "bowel": 14, "bowel_gas": 15, "gallbladder": 16,
    "pancreas": 17, "lung": 18, "heart": 19, "table": 20, "spinal_canal": 21,
}

#: Value outside the scanner's reconstruction circle, as in many CT exports.
PADDING_HU = -1024


def case_name(number: int) -> str:
    """IRCAD-style name of case ``number`` (1-based): ``ircad_e07`` for 7.

    Args:
        number: the case's number, from 1.

    Returns:
        The case's name.
    """
    return f"ircad_e{number:02d}"


def case_files(name: str) -> list[str]:
    """Relative paths of the two files of case ``name``: ``[<name>_orig.nii.gz, <name>_liver.nii.gz]``.

    Args:
        name: the case's name (:func:`case_name`).

    Returns:
        The two relative paths.
    """
    return [f"{name}_orig.nii.gz", f"{name}_liver.nii.gz"]


def ct_affine(shape: Sequence[int], spacing: Sequence[float], z_origin: float = 0.0) -> np.ndarray:
    """4x4 voxel-to-world affine (RAS millimetres) of a DICOM-like (x, y, z) volume.

    The first axis runs towards the patient's left and the second towards the back (both
    negative in RAS), the third towards the head; ``spacing`` is (sx, sy, sz) in mm. The
    in-plane centre of the grid is at x = y = 0 and slice 0 at ``z_origin``.

    Args:
        shape: the grid ``(x, y, z)``.
        spacing: ``(sx, sy, sz)`` in mm.
        z_origin: the z of slice 0, in mm.

    Returns:
        The 4x4 affine (float64).
    """
    sx, sy, sz = (float(s) for s in spacing)
    affine = np.diag([-sx, -sy, sz, 1.0])
    affine[0, 3] = sx * (shape[0] - 1) / 2.0
    affine[1, 3] = sy * (shape[1] - 1) / 2.0
    affine[2, 3] = float(z_origin)
    return affine


# --------------------------------------------------------------------------- synthesis

def _waves(rng, x, y, z, n=5, wavelength=(50.0, 140.0)):
    """Smooth random field (about unit amplitude): a sum of ``n`` random plane waves (mm).

    ``x``, ``y`` broadcast to (X, Y, 1) and ``z`` to (1, 1, Z); each wave is computed as
    cos(p + q) = cos p cos q - sin p sin q from an in-plane and a z part (cheap).
    """
    field = np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y), np.shape(z)), np.float32)
    for _ in range(n):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction) + 1e-9
        k = [float(value) for value in direction * (2 * np.pi / rng.uniform(*wavelength))]
        p = (k[0] * x + k[1] * y + float(rng.uniform(0, 2 * np.pi))).astype(np.float32)
        q = (k[2] * z).astype(np.float32)
        field += np.cos(p) * np.cos(q) - np.sin(p) * np.sin(q)
    return field / np.float32(np.sqrt(n / 2.0))


def _scalar(value):
    """Python float for scalars (keeps float32 arithmetic float32), float32 array otherwise."""
    return float(value) if np.ndim(value) == 0 else np.asarray(value, np.float32)


def _ell(x, y, z, centre, radii, angle=0.0):
    """Normalised ellipsoid radius (1 on the surface); ``angle`` (rad) rotates about z."""
    cx, cy, cz = (_scalar(value) for value in centre)
    rx, ry, rz = (_scalar(value) for value in radii)
    dx, dy = x - cx, y - cy
    if angle:
        c, s = float(np.cos(angle)), float(np.sin(angle))
        dx, dy = c * dx + s * dy, -s * dx + c * dy
    return np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2 + ((z - cz) / rz) ** 2)


def _tube(x, y, z, start, end, radius):
    """Boolean mask of a cylinder with rounded ends from ``start`` to ``end`` (mm)."""
    (x0, y0, z0), (x1, y1, z1) = ([float(value) for value in point] for point in (start, end))
    ax, ay, az = x1 - x0, y1 - y0, z1 - z0
    length2 = ax * ax + ay * ay + az * az + 1e-9
    dx, dy, dz = x - x0, y - y0, z - z0
    t = np.clip((dx * ax + dy * ay + dz * az) / length2, 0.0, 1.0)
    return (dx - t * ax) ** 2 + (dy - t * ay) ** 2 + (dz - t * az) ** 2 < float(radius) ** 2


def case_spacing(number: int, *, shape: Sequence[int] = DEFAULTS["shape"],
                 seed: int = DEFAULTS["seed"]) -> tuple[float, float, float]:
    """Voxel spacing (sx, sy, sz) in mm of case ``number`` (1-based): field of view 340-390 mm
    in-plane, 170-200 mm along z, divided by the grid ``shape``.

    Args:
        number: the case's number, from 1.
        shape: the grid ``(x, y, z)``.
        seed: the seed of the set.

    Returns:
        ``(sx, sy, sz)`` in mm.
    """
    rng = np.random.default_rng([int(seed), int(number), 7, 1])
    fov = rng.uniform(340.0, 390.0)
    coverage = rng.uniform(170.0, 200.0)
    sxy = round(fov / shape[0], 3)
    return (sxy, round(fov / shape[1], 3), round(coverage / shape[2], 2))


def make_case(number: int, *, shape: Sequence[int] = DEFAULTS["shape"], seed: int = DEFAULTS["seed"],
              tissues: bool = False) -> tuple[np.ndarray, ...]:
    """Make case ``number`` (1-based, as in ``ircad_e01``): ``(hu int16 (X, Y, Z), liver uint8
    {0,1} (X, Y, Z), affine 4x4)``.

    Deterministic in ``(number, shape, seed)``. Axes as in the files (x towards the patient's left,
    y towards the back, z towards the head), Hounsfield units, spacing from
    :func:`case_spacing`. With ``tissues=True`` a fourth item is returned: a uint8 label map
    with the codes of :data:`TISSUES` (before blur and noise), for tests and benchmarks.

    Args:
        number: the case's number, from 1.
        shape: the volume's grid ``(x, y, z)``.
        seed: the seed of the set.
        tissues: also return the tissue label map.

    Returns:
        ``(hu, liver, affine)``, or ``(hu, liver, affine, tissues)``.

    Raises:
        ValueError: ``number < 1``.
    """
    from scipy.ndimage import gaussian_filter

    if int(number) < 1:
        raise ValueError(f"case numbers start at 1, got {number}")
    shape = tuple(int(s) for s in shape)
    nx, ny, nz = shape
    spacing = case_spacing(number, shape=shape, seed=seed)
    rng = np.random.default_rng([int(seed), int(number), 7])
    sx, sy, sz = spacing

    # world coordinates in mm: x to the patient's left, y to the back, z to the head
    xi = ((np.arange(nx) - (nx - 1) / 2) * sx).astype(np.float32).reshape(nx, 1, 1)
    yi = ((np.arange(ny) - (ny - 1) / 2) * sy).astype(np.float32).reshape(1, ny, 1)
    z = ((np.arange(nz) - (nz - 1) / 2) * sz).astype(np.float32).reshape(1, 1, nz)
    z_top = float(z.max())
    coverage = nz * sz

    # body pose: size, in-plane shift and rotation
    fov = nx * sx
    A = fov * rng.uniform(0.40, 0.46)            # half width (left-right)
    B = A * rng.uniform(0.66, 0.78)              # half depth (front-back)
    angle = np.deg2rad(rng.uniform(-6, 6))
    shift = [float(value) for value in rng.uniform(-0.04, 0.04, 2) * fov]
    c, s = float(np.cos(angle)), float(np.sin(angle))
    x = c * (xi - shift[0]) + s * (yi - shift[1])
    y = -s * (xi - shift[0]) + c * (yi - shift[1]) + 0.04 * B
    # body cross-section changes slowly along z
    body_scale = (1.0 + 0.04 * np.sin(z / coverage * np.pi * rng.uniform(0.5, 1.5) + rng.uniform(0, 6))).astype(np.float32)
    x, y = x.astype(np.float32), y.astype(np.float32)
    u, v = x / (A * body_scale), y / (B * body_scale)
    power = rng.uniform(2.2, 2.6)
    body_rho = (np.abs(u) ** power + np.abs(np.where(v > 0, v * 1.05, v)) ** power) ** (1 / power)
    body_rho = body_rho * (1 + 0.02 * _waves(rng, x, y, z, 3))
    fat_mm = rng.uniform(10.0, 28.0)             # subcutaneous fat thickness
    wall_mm = rng.uniform(10.0, 16.0)            # abdominal wall muscle thickness
    scale_mm = float(min(A, B))
    body = body_rho < 1.0
    inside_fat = body_rho < 1.0 - fat_mm / scale_mm
    cavity = body_rho < 1.0 - (fat_mm + wall_mm) / scale_mm
    cavity_rho = body_rho / (1.0 - (fat_mm + wall_mm) / scale_mm)

    # contrast (HU) of this case
    hu_liver = rng.uniform(45.0, 80.0)
    hu_spleen = hu_liver + rng.uniform(-15.0, 8.0)
    hu_muscle = rng.uniform(40.0, 60.0)
    hu_fat = rng.uniform(-115.0, -85.0)
    hu_aorta = rng.uniform(130.0, 220.0)
    hu_ivc = rng.uniform(90.0, 140.0)
    hu_vessel = rng.uniform(130.0, 190.0)
    hu_kidney = rng.uniform(140.0, 200.0)
    hu_pancreas = rng.uniform(40.0, 60.0)

    label = np.zeros(shape, dtype=np.uint8)
    hu = np.full(shape, -1000.0, dtype=np.float32)

    def paint(mask, tissue, value):
        mask = np.broadcast_to(mask, shape)
        label[mask] = TISSUES[tissue]
        hu[mask] = np.broadcast_to(value, shape)[mask] if np.ndim(value) else value

    # patient table under the back
    table = np.broadcast_to((np.abs(x) < 0.85 * A) & (y > B * 1.08 + 4) & (y < B * 1.08 + 14), shape)
    paint(table, "table", rng.uniform(-300.0, -100.0))
    paint(body, "subcutaneous_fat", hu_fat)
    paint(inside_fat, "muscle", hu_muscle)
    paint(cavity, "visceral_fat", hu_fat + rng.uniform(-5.0, 15.0))

    # liver: the organ's z range
    liver_top = z_top - rng.uniform(0.08, 0.20) * coverage
    height = rng.uniform(0.55, 0.72) * coverage
    liver_bottom = liver_top - height

    # spine and back muscles
    ys = B * rng.uniform(0.48, 0.58)             # centre of the vertebral body
    vr = rng.uniform(15.0, 19.0)
    vertebra = _ell(x, y, z, (0, ys, 0), (vr * 1.1, vr, 1e9)) < 1.0
    canal = _ell(x, y, z, (0, ys + vr + 8, 0), (8, 7, 1e9)) < 1.0
    posterior = ((_ell(x, y, z, (0, ys + vr + 22, 0), (5, 14, 1e9)) < 1.0)
                 | (_ell(x, y, z, (0, ys + vr + 9, 0), (22, 4.5, 1e9)) < 1.0))
    paraspinal = ((_ell(x, y, z, (-30, ys + vr + 14, 0), (25, 20, 1e9)) < 1.0)
                  | (_ell(x, y, z, (30, ys + vr + 14, 0), (25, 20, 1e9)) < 1.0))
    psoas_r = 8.0 + 14.0 * np.clip((liver_bottom + 0.45 * height - z) / (0.6 * height), 0, 1)
    psoas = ((_ell(x, y, z, (-vr - 14, ys - 2, 0), (psoas_r, psoas_r * 0.9, 1e9)) < 1.0)
             | (_ell(x, y, z, (vr + 14, ys - 2, 0), (psoas_r, psoas_r * 0.9, 1e9)) < 1.0))
    paint(body & (paraspinal | psoas), "muscle", hu_muscle + rng.uniform(-5, 5))

    # lungs above the diaphragm (lower behind and at the sides), the heart in front on top
    dome = liver_top - 4 - 30 * np.clip(cavity_rho, 0, 1) ** 3 - 12 * np.clip(v, 0, 1)
    lung = cavity & (z > dome)
    lung_field = _waves(rng, x, y, z, 4, (15.0, 40.0))
    paint(lung, "lung", -860.0 + 30.0 * lung_field)
    heart = _ell(x, y, z, (0.18 * A, -0.3 * B, liver_top + rng.uniform(25, 45)), (0.42 * A, 0.5 * B, 55)) < 1.0
    paint(heart & cavity, "heart", rng.uniform(90.0, 140.0))

    # colon and small bowel loops, lower abdomen mostly
    for _ in range(int(rng.integers(16, 26))):
        radius = rng.uniform(9.0, 22.0)
        centre = (rng.uniform(-0.75, 0.75) * A, rng.uniform(-0.7, 0.35) * B,
                  rng.uniform(z.min() - 10, liver_bottom + 0.55 * height))
        rho = _ell(x, y, z, centre, (radius, radius * rng.uniform(0.7, 1.3), radius * rng.uniform(1.0, 2.5)),
                   rng.uniform(0, np.pi))
        loop = (rho < 1.0) & cavity
        kind = rng.choice(["gas", "fluid", "level"], p=[0.3, 0.4, 0.3])
        paint(loop, "bowel", rng.uniform(55.0, 85.0))
        inner = loop & (rho < 1.0 - 3.0 / radius)
        if kind == "gas":
            paint(inner, "bowel_gas", -1000.0 + rng.uniform(0, 60))
        elif kind == "fluid":
            paint(inner, "bowel", rng.uniform(0.0, 30.0))
        else:
            paint(inner, "bowel", rng.uniform(0.0, 30.0))
            paint(inner & (y < centre[1] - rng.uniform(-0.2, 0.5) * radius), "bowel_gas", -990.0)
    # hepatic flexure of the colon just below the liver tip
    flexure = _ell(x, y, z, (-0.55 * A, -0.05 * B, liver_bottom + rng.uniform(-5, 15)), (22, 18, 28)) < 1.0
    paint(flexure & cavity, "bowel", 70.0)
    paint(flexure & cavity & (_ell(x, y, z, (-0.55 * A, -0.05 * B, liver_bottom + 5), (19, 15, 30)) < 1.0),
          "bowel_gas", -1000.0 + rng.uniform(0, 80))

    # kidneys (right one lower), with medulla and renal sinus fat
    for side, dz in ((-1, rng.uniform(-10, 15)), (1, rng.uniform(10, 35))):
        centre = (side * (vr + rng.uniform(30, 42)), ys + rng.uniform(-8, 6), liver_bottom + dz)
        radii = (rng.uniform(20, 26), rng.uniform(25, 32), rng.uniform(45, 58))
        rho = _ell(x, y, z, centre, radii, side * np.deg2rad(rng.uniform(20, 40)))
        paint((rho < 1.0) & cavity, "kidney", hu_kidney)
        paint((rho < 0.65) & cavity, "kidney", hu_kidney - rng.uniform(30, 70))
        hilum = (rho < 0.45) & ((x - centre[0]) * side < 0)
        paint(hilum & cavity, "visceral_fat", hu_fat + 20)

    # stomach (gas in front, the patient lies on the back), pancreas, spleen
    st_centre = (0.32 * A, -0.32 * B, liver_top - rng.uniform(0.15, 0.35) * height)
    st_radii = (0.26 * A, 0.28 * B, rng.uniform(0.25, 0.35) * height)
    st_rho = _ell(x, y, z, st_centre, st_radii, rng.uniform(-0.4, 0.4)) * (1 + 0.06 * _waves(rng, x, y, z, 4))
    stomach = (st_rho < 1.0) & cavity
    paint(stomach, "bowel", rng.uniform(50.0, 80.0))
    st_inner = stomach & (st_rho < 1.0 - 4.0 / st_radii[1])
    paint(st_inner, "stomach_fluid", rng.uniform(5.0, 35.0))
    paint(st_inner & (y < st_centre[1] - rng.uniform(-0.3, 0.5) * st_radii[1]), "stomach_gas", -1000.0)

    pancreas_z = liver_bottom + rng.uniform(0.35, 0.55) * height
    pancreas = _tube(x, y, z, (-0.12 * A, ys - 38, pancreas_z - 8), (0.5 * A, ys - 5, pancreas_z + 12),
                     rng.uniform(9.0, 13.0)) & cavity & (_waves(rng, x, y, z, 4, (15, 30)) > -0.9)
    paint(pancreas & ~stomach, "pancreas", hu_pancreas)

    sp_centre = (0.66 * A, 0.30 * B, liver_top - rng.uniform(0.2, 0.4) * height)
    sp_radii = (0.22 * A * rng.uniform(0.85, 1.2), 0.45 * B * rng.uniform(0.85, 1.2), rng.uniform(45, 65))
    sp_angle = np.deg2rad(rng.uniform(-45, -20))
    sp_rho = _ell(x, y, z, sp_centre, sp_radii, sp_angle) * (1 + 0.07 * _waves(rng, x, y, z, 4))
    hollow = _ell(x, y, z, (sp_centre[0] - 0.24 * A, sp_centre[1] - 0.05 * B, sp_centre[2]),
                  (0.14 * A, 0.3 * B, 80), sp_angle) < 1.0       # concave side towards the hilum
    spleen = (sp_rho < 1.0) & ~hollow & cavity & (label != TISSUES["kidney"])
    paint(spleen, "spleen", hu_spleen)

    # great vessels
    aorta = _ell(x, y, z, (rng.uniform(6, 18), ys - vr - 9, 0), (11, 11, 1e9)) < 1.0
    ivc = _ell(x, y, z, (-rng.uniform(18, 28), ys - vr - 8, 0), (14, 10, 1e9)) < 1.0

    # the liver: right lobe (large, at the body wall) and left lobe (front, upper part)
    field = _waves(rng, x, y, z, 6, (60.0, 160.0))
    right = _ell(x, y, z, (-0.45 * A, -0.02 * B, liver_bottom + 0.55 * height),
                 (0.48 * A * rng.uniform(0.9, 1.1), 0.68 * B * rng.uniform(0.9, 1.05), 0.55 * height), 0.15)
    left_lobe = _ell(x, y, z, (0.0 * A, -0.5 * B, liver_top - 0.3 * height),
                     (0.4 * A * rng.uniform(0.8, 1.15), 0.25 * B, 0.32 * height), -0.2)
    liver = (np.minimum(right, left_lobe) * (1 + 0.09 * field) < 1.0) & cavity
    liver &= (z < liver_top) & (z > liver_bottom)
    liver &= ~(vertebra | aorta | ivc | stomach | spleen | (label == TISSUES["kidney"]))
    gallbladder = np.zeros(shape, bool)
    if rng.random() < 0.75:
        gallbladder = _ell(x, y, z, (-0.22 * A, -0.34 * B, liver_bottom + rng.uniform(0.1, 0.3) * height),
                           (rng.uniform(11, 17), rng.uniform(14, 22), rng.uniform(22, 35)), rng.uniform(-0.6, 0.6)) < 1.0
        gallbladder &= cavity
        liver &= ~gallbladder
    paint(liver, "liver", hu_liver + 7.0 * _waves(rng, x, y, z, 5, (10.0, 30.0)))

    # vessels inside the liver (part of the liver mask)
    hilum = np.array([-0.2 * A, 0.05 * B, liver_bottom + 0.5 * height], np.float32)
    points = np.argwhere(liver)
    world = lambda ijk: np.array([float(x[ijk[0], ijk[1], 0]), float(y[ijk[0], ijk[1], 0]), float(z[0, 0, ijk[2]])])
    vessels = np.zeros(shape, bool)
    if len(points):
        for _ in range(int(rng.integers(3, 7))):
            target = world(points[rng.integers(len(points))])
            vessels |= _tube(x, y, z, hilum, target, rng.uniform(2.5, 5.0))
        vessels &= liver
        paint(vessels, "liver_vessel", hu_vessel)

    # hypodense lesions (part of the liver mask)
    n_lesions = int(rng.choice([0, 1, 2, 3, 4, 5, 6], p=[0.1, 0.15, 0.2, 0.2, 0.15, 0.1, 0.1]))
    for _ in range(n_lesions if len(points) else 0):
        centre = world(points[rng.integers(len(points))])
        radius = rng.uniform(6.0, 24.0)
        rho = _ell(x, y, z, centre, (radius, radius * rng.uniform(0.75, 1.25), radius * rng.uniform(0.8, 1.3)))
        lesion_hu = min(rng.uniform(15.0, 35.0), hu_liver - 20.0)
        paint((rho < 1.0) & liver, "lesion", lesion_hu)
        if rng.random() < 0.3:
            paint((rho >= 0.85) & (rho < 1.0) & liver, "lesion", lesion_hu + 25.0)

    paint(gallbladder, "gallbladder", rng.uniform(0.0, 20.0))
    paint(aorta & body, "aorta", hu_aorta)
    paint(ivc & body & (z < liver_top + 10), "ivc", hu_ivc)

    # bone: vertebra (cortex + cancellous), posterior elements, ribs
    paint(vertebra & body, "bone", rng.uniform(600.0, 800.0))
    paint((_ell(x, y, z, (0, ys, 0), (vr * 1.1 - 3, vr - 3, 1e9)) < 1.0) & body, "bone", rng.uniform(160.0, 260.0))
    paint(posterior & body, "bone", rng.uniform(350.0, 550.0))
    paint(canal & body, "spinal_canal", rng.uniform(10.0, 30.0))
    rib_zone = (body_rho > 1.0 - (fat_mm + wall_mm) / scale_mm) & inside_fat
    for _ in range(int(rng.integers(10, 16))):
        rib_z = rng.uniform(liver_bottom + 0.15 * height, z_top + 10)
        theta0 = rng.choice([-1, 1]) * rng.uniform(0.2, 2.9) + np.pi / 2     # 0 = front, pi = back
        slope = rng.uniform(-0.01, 0.01)
        theta = theta0 + slope * (z - rib_z)
        rx, ry = A * np.sin(theta), -B * np.cos(theta)
        rib = rib_zone & (np.abs(z - rib_z) < rng.uniform(4, 8)) & ((x - rx * 0.9) ** 2 + (y - ry * 0.9) ** 2 < (0.28 * A) ** 2)
        paint(rib, "bone", rng.uniform(300.0, 700.0))

    # partial-volume blur, correlated noise, reconstruction circle, integers
    sigma_noise = rng.uniform(10.0, 22.0)
    hu = gaussian_filter(hu, sigma=(0.7, 0.7, 0.35))
    noise = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma=(0.5, 0.5, 0.0))
    hu += noise * (sigma_noise / (noise.std() + 1e-6))
    circle = np.broadcast_to(xi ** 2 + yi ** 2 > (0.5 * fov) ** 2, shape)
    hu[circle] = PADDING_HU
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    affine = ct_affine(shape, spacing, z_origin=-rng.uniform(120.0, 220.0))
    mask = liver.astype(np.uint8)
    if tissues:
        return hu, mask, affine, label
    return hu, mask, affine


# --------------------------------------------------------------------------- files

def _make(task: tuple) -> dict[str, bytes]:
    """Worker for :func:`generate`: the volume and the liver mask of one case."""
    number, shape, seed = task
    hu, mask, affine = make_case(number, shape=shape, seed=seed)
    orig, liver = case_files(case_name(number))
    return {orig: nifti_bytes(hu, affine), liver: nifti_bytes(mask, affine)}


def generate(folder: str | Path, *, force: bool = False, n_cases: int = DEFAULTS["n_cases"],
             shape: Sequence[int] = DEFAULTS["shape"], seed: int = DEFAULTS["seed"], workers: int = 1) -> Path:
    """Generate (or reuse) ``n_cases`` synthetic abdominal CT cases in ``folder``; return it.

    Writes ``ircad_eNN_orig.nii.gz`` (int16 Hounsfield units) and ``ircad_eNN_liver.nii.gz``
    (uint8 {0, 1}) for NN = 01, 02, ..., each of ``shape`` voxels (x, y, z) with an
    anisotropic affine in mm. Same ``seed`` and parameters give byte-identical files. An
    existing complete set with the same parameters is reused; files not written by the
    course are never deleted unless ``force=True``.

    Args:
        folder: where the set goes.
        force: delete the folder's other files and regenerate.
        n_cases: the number of cases, 1 to 99.
        shape: the grid of each volume ``(x, y, z)``.
        seed: the seed of the set.
        workers: processes drawing the cases.

    Returns:
        ``folder``.

    Raises:
        ValueError: ``n_cases`` out of range, or a shape below 32 x 32 x 8.
        DatasetError: ``folder`` holds files the generator did not write and ``force`` is False.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape[:2]) < 32 or shape[2] < 8:
        raise ValueError(f"shape must be (x, y, z) with at least 32 x 32 voxels in-plane and 8 slices, got {shape}.")
    if not 1 <= int(n_cases) <= 99:
        raise ValueError(f"n_cases must be between 1 and 99 (two-digit case numbers eNN), got {n_cases}.")
    names = [case_name(i) for i in range(1, int(n_cases) + 1)]
    request = {
        "generator": "liver_ct_synthetic",
        "version": GENERATOR_VERSION,
        "params": {"n_cases": int(n_cases), "shape": list(shape), "seed": int(seed)},
    }
    planned = [path for name in names for path in case_files(name)]
    tasks = [(number, shape, int(seed)) for number in range(1, int(n_cases) + 1)]
    return generate_into(Path(folder), request=request, planned=planned, tasks=tasks,
                         make=_make, force=force, desc="liver CT cases", workers=workers)


# --------------------------------------------------------------------------- loading

_ORIG = re.compile(r"^(?P<case>.+)_orig\.nii(\.gz)?$")


def case_id(path: str | Path) -> str:
    """Patient (case) identifier of a liver CT file: ``ircad_e07`` for
    ``ircad_e07_orig.nii.gz`` or ``ircad_e07_liver.nii.gz``. Slices of one case share it.

    Args:
        path: a volume or mask file of the set.

    Returns:
        The case identifier.
    """
    name = Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    for tail in ("_orig", "_liver"):
        if name.endswith(tail):
            return name[: -len(tail)]
    return name


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


_FIX = "replace the file, or regenerate the synthetic set with data.ensure_dataset('liver_ct_synthetic', force=True)"


def _read_header_shape(path: Path) -> tuple:
    from helpers.data.io import nifti_shape

    return nifti_shape(path, fix=_FIX)


#: What a liver mask that fails the label check should become.
_LIVER_MASK_FIX = ("a liver mask must be binary (0 background, 1 liver). If it is a multi-label segmentation, "
                   "keep only the liver label (mask == liver_label) and save it again.")


def _liver_mask(path: Path, labels: np.ndarray) -> np.ndarray:
    """A liver mask 0/1 (uint8) from stored labels 0/1 or 0/255, checked by :func:`helpers.data.io.check_labels`."""
    from helpers.data.io import BINARY_LABELS, check_labels

    return (check_labels(path, labels, BINARY_LABELS, hint=_LIVER_MASK_FIX) > 0).astype(np.uint8)


def _read_array(path: Path) -> np.ndarray:
    from helpers.data.io import read_nifti

    return read_nifti(path, fix=_FIX)[0]


def load_cases(folder: str | Path, *, check_masks: bool = True) -> list[tuple[Path, Path]]:
    """Find and validate the cases of a 3D-IRCADb-layout folder.

    Returns one ``(orig_path, liver_path)`` tuple per ``<case>_orig.nii.gz`` (or ``.nii``)
    with its ``<case>_liver.nii.gz`` mask, sorted by case number. Raises
    :class:`DatasetError` naming the file and the fix when the folder has no volumes, a
    mask is missing or unreadable, a volume is not 3D, a mask's shape differs from its
    volume's, or (``check_masks=True``, reads every mask) a mask holds values other than
    0 and 1 (0 and 255, as some exports write, is accepted and read as 0/1).

    Args:
        folder: the data set folder (3D-IRCADb layout).
        check_masks: read every mask and check its values.

    Returns:
        ``[(orig_path, liver_path), ...]``, sorted by case number.

    Raises:
        DatasetError: as described above.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder. Generate the synthetic set with "
                           f"data.ensure_dataset('liver_ct_synthetic') or point DATASET at the "
                           f"folder that holds the ircad_eNN_orig.nii.gz files.")
    origs = sorted((p for p in folder.iterdir() if p.is_file() and _ORIG.match(p.name)), key=_natural_key)
    if not origs:
        raise DatasetError(
            f"No CT volumes named <case>_orig.nii.gz in {folder}. The lesson expects the 3D-IRCADb "
            f"layout in one folder: ircad_e01_orig.nii.gz + ircad_e01_liver.nii.gz, ... Rename your "
            f"files to that pattern or point DATASET at the right folder.")
    cases = []
    for orig in origs:
        matched = _ORIG.match(orig.name)
        assert matched is not None   # origs holds only names that match
        case = matched.group("case")
        liver = next((folder / f"{case}_liver{ext}" for ext in (".nii.gz", ".nii")
                      if (folder / f"{case}_liver{ext}").is_file()), None)
        if liver is None:
            raise DatasetError(
                f"{folder / f'{case}_liver.nii.gz'} is missing: every {orig.name} needs its liver "
                f"mask. Add the mask (for 3D-IRCADb: `python -m helpers data prepare ircad DOWNLOAD` "
                f"writes both from PATIENT_DICOM/ and MASKS_DICOM/liver/) or move "
                f"{orig.name} out of the folder.")
        shape = _read_header_shape(orig)
        if len(shape) != 3:
            raise DatasetError(f"{orig} has shape {shape}; a CT volume must be 3D (x, y, z). "
                               f"Remove extra dimensions (e.g. a 4th of size 1) before loading.")
        mask_shape = _read_header_shape(liver)
        if mask_shape != shape:
            raise DatasetError(
                f"{liver} has shape {mask_shape} but {orig.name} has {shape}: a mask must be on the "
                f"grid of its volume. Resample the mask onto the volume (nearest neighbour) or remove the case.")
        if check_masks:
            _liver_mask(liver, _read_array(liver))
        cases.append((orig, liver))
    return cases


def read_case(orig_path: str | Path,
              liver_path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Read one case: ``(volume float32 HU (X, Y, Z), mask uint8 {0,1} (X, Y, Z) or None, affine 4x4)``.

    A mask stored as 0/255 is returned as 0/1. Axial slice ``k`` is ``volume[:, :, k]``;
    show it with ``.T`` for the usual radiological view. Raises DatasetError naming the
    file when it cannot be read.

    Args:
        orig_path: the CT volume's NIfTI file.
        liver_path: the liver mask's NIfTI file, or None for no mask.

    Returns:
        ``(volume, mask, affine)`` as above.

    Raises:
        DatasetError: a file cannot be read, or the mask's values are not binary.
    """
    from helpers.data.io import load_nifti

    volume, affine = load_nifti(orig_path)
    mask = None
    if liver_path is not None:
        mask = _liver_mask(Path(liver_path), _read_array(Path(liver_path)))
    return volume, mask, affine
