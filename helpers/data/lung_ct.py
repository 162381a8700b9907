"""Synthetic chest CT volumes with lung masks, in the layout of the converted LCTSC data.

Each case is a folder ``LCTSC-Train-S1-001/`` holding ``ct.nii.gz`` (int16, Hounsfield
units) and ``lung.nii.gz`` (uint8, 1 inside the left or right lung, 0 elsewhere), the
layout that a DICOM-RT to NIfTI conversion of the AAPM Lung CT Segmentation Challenge
(LCTSC) gives. Arrays are indexed ``(i, j, k)``: ``i`` runs from the patient's right to
left, ``j`` from anterior to posterior, ``k`` from feet to head (axial slices are
``volume[:, :, k]``). The affine maps voxel indices to millimetres (RAS, as written by
``dcm2niix``); spacing is anisotropic and varies per case, like a clinical chest CT
resampled to a small grid for CPU training (about 5 mm in-plane, 7-8 mm between slices
at the default 64 x 64 x 48 grid).

The phantom has what makes lung segmentation more than a threshold, as in the lung cancer
patients of LCTSC: air around the body and in the trachea and main bronchi (outside the
mask, as the RTOG 1106 atlas used for LCTSC leaves them out), a stomach gas bubble, a CT
table with a foam core, subcutaneous fat, muscle, ribs, spine and sternum, the heart and the
diaphragm domes; lung parenchyma about -850 HU with a gravity gradient; inside the mask,
branching pulmonary vessels (10-14 mm wide at the hilum) and segmental bronchi, ground-glass
patches, solid nodules, juxtapleural nodules and masses and consolidation with air
bronchograms against the pleura, dependent atelectasis and the collapse of part of a lower
lobe. Pleural effusion (fluid, 0-18 HU, layering behind the lung with a horizontal level) is
*outside* the mask, as in LCTSC-style contours, and the lung it compresses is collapsed
(inside the mask, 25-60 HU): two dense regions side by side with opposite labels. The
scanner adds beam hardening (cupping, streaks between the shoulders and from a dense
source in the mediastinum), the slice profile (partial volume along ``k``, at the diaphragm
domes and the apices), in-plane blur and noise. The best threshold recipe of
``benchmarks/lung_ct_difficulty.py`` (a range of thresholds; outside air removed per slice,
the two largest components, holes filled and closed) scores clearly below the 3D U-Net of
lesson 06.
"""

from __future__ import annotations

from pathlib import Path

from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike

from helpers import config
from helpers.data._store import DatasetError, generate_into
from helpers.data.io import nifti_bytes
from helpers.geometry import voxel_spacing  # one implementation; re-exported for this data set's users

#: Bump when the generated volumes change, so that sets on disk are regenerated.
GENERATOR_VERSION = "2.0"

#: Default parameters of :func:`generate` (``shape`` is ``(i, j, k)`` in voxels).
DEFAULTS: dict[str, Any] = {"n_cases": 24, "shape": (64, 64, 48), "seed": config.SEED}

#: Parameters of the LCTSC-sized set ``lung_ct_synthetic_full`` (lesson 06): 256 x 256 pixels
#: of 1.2-1.4 mm in each slice, 128 slices 2.6-3.0 mm apart (the physical size of the
#: default set, as a planning CT of LCTSC samples it at half its in-plane resolution). The
#: anatomy is drawn on ``design_shape`` (about 3.4 x 3.4 x 5.5 mm) and interpolated onto the
#: fine grid, where the scanner noise is added: a few seconds per case instead of a minute.
FULL = {"n_cases": 16, "shape": (256, 256, 128), "design_shape": (96, 96, 64), "seed": config.SEED}

#: File names inside every case folder (as in the converted LCTSC data).
CT_NAME = "ct.nii.gz"
MASK_NAME = "lung.nii.gz"

#: Hounsfield units of the tissues (centre values; every case varies them a little).
HU = {
    "air": -1000.0,
    "lung": -850.0,
    "fat": -100.0,
    "soft_tissue": 40.0,
    "blood": 45.0,
    "cancellous_bone": 380.0,
    "cortical_bone": 900.0,
}


def case_name(number: int) -> str:
    """LCTSC-like name of case ``number`` (1-based): ``LCTSC-Train-S1-001`` for 1, twelve
    cases per site (``LCTSC-Train-S2-001`` for 13).

    Args:
        number: the case's number, from 1.

    Returns:
        The case's name.
    """
    site = 1 + (number - 1) // 12
    return f"LCTSC-Train-S{site}-{(number - 1) % 12 + 1:03d}"


# --------------------------------------------------------------------------- geometry

def _segment_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance in mm from ``points`` (..., 3) to the segment ``start``-``end``."""
    direction = end - start
    length2 = float(direction @ direction) or 1e-9
    t = np.clip(((points - start) @ direction) / length2, 0.0, 1.0)
    closest = start + t[..., None] * direction
    return np.linalg.norm(points - closest, axis=-1)


def _tube(grid: np.ndarray, spacing: np.ndarray, start, end, radius: float) -> tuple[tuple, np.ndarray]:
    """Boolean mask of a cylinder with round caps, computed in its bounding box only.

    Returns ``(slices, inside)`` where ``inside`` has the shape of ``grid[slices]``.
    """
    start, end = np.asarray(start, float), np.asarray(end, float)
    low = np.minimum(start, end) - radius - spacing
    high = np.maximum(start, end) + radius + spacing
    axes = [grid[..., 0][:, 0, 0], grid[..., 1][0, :, 0], grid[..., 2][0, 0, :]]
    bounds: list[slice] = []
    for axis, (lo, hi) in enumerate(zip(low, high)):
        inside = np.nonzero((axes[axis] >= lo) & (axes[axis] <= hi))[0]
        if inside.size == 0:
            return (slice(0, 0),) * 3, np.zeros((0, 0, 0), bool)
        bounds.append(slice(int(inside[0]), int(inside[-1]) + 1))
    slices = tuple(bounds)
    return slices, _segment_distance(grid[slices], start, end) <= radius


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian-filtered noise (a smooth random field)."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.standard_normal(shape), sigma)
    return field / (field.std() + 1e-9)


def _vessel_tree(rng, hilum, lateral_sign, n_generations=3, root_radius=(3.5, 4.5)):
    """Segments ``(start, end, radius)`` of a branching tree (vessels or bronchi) rooted at
    ``hilum`` (mm): three lobar branches of radius ``root_radius`` mm; every generation splits
    each branch in two, 0.7 times as thick and 0.75 times as long.
    """
    segments = []
    frontier = []
    for _ in range(3):  # upper, middle and lower lobar branches
        direction = np.array([lateral_sign * rng.uniform(0.5, 1.0), rng.uniform(-0.5, 0.6),
                              rng.uniform(-1.0, 1.0)])
        frontier.append((np.asarray(hilum, float), direction / np.linalg.norm(direction),
                         rng.uniform(*root_radius), rng.uniform(35, 50)))
    for _generation in range(n_generations):
        children = []
        for start, direction, radius, length in frontier:
            end = start + direction * length
            segments.append((start, end, radius))
            for _ in range(2):
                turn = rng.normal(0, 0.45, 3)
                child = direction + turn
                child[0] = lateral_sign * abs(child[0]) if rng.random() < 0.8 else child[0]
                children.append((end, child / np.linalg.norm(child), radius * 0.7, length * 0.75))
        frontier = children
    return segments


def make_case(number: int, *, shape: Sequence[int] = DEFAULTS["shape"], seed: int = DEFAULTS["seed"],
              design_shape: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Build synthetic case ``number`` (1-based, as in :func:`case_name`): ``(ct, lung, affine)``.

    ``ct`` is int16 in Hounsfield units and ``lung`` uint8 {0, 1}, both of ``shape``
    ``(i, j, k)`` (right-to-left, anterior-to-posterior, feet-to-head); ``affine`` is the
    4 x 4 voxel-to-millimetre matrix (RAS) with the case's anisotropic spacing.
    Deterministic in ``(number, shape, seed, design_shape)``.

    With ``design_shape`` (LCTSC-sized volumes, :data:`FULL`), the anatomy is drawn on that
    coarser grid of the same field of view and interpolated linearly onto ``shape`` (the
    mask from its lung fraction, > 0.5), before the noise and the reconstruction circle of
    the scanner are added on ``shape``: the same patient as ``make_case(number,
    shape=design_shape)``, at the resolution of ``shape``.

    Args:
        number: the case's number, from 1.
        shape: the volume's grid ``(i, j, k)``.
        seed: the seed of the set.
        design_shape: a coarser grid to draw the anatomy on, or None.

    Returns:
        ``(ct, lung, affine)`` as above.

    Raises:
        ValueError: ``number < 1``.
    """
    from scipy.ndimage import binary_erosion, gaussian_filter

    if int(number) < 1:
        raise ValueError(f"case numbers start at 1, got {number}")
    index = int(number) - 1     # the random streams were numbered from 0: same volumes as before

    rng = np.random.default_rng([int(seed), int(index), 6])
    fine_shape = tuple(int(n) for n in shape)
    if design_shape is not None:
        shape = tuple(int(n) for n in design_shape)
    nx, ny, nz = (int(n) for n in shape)
    fov = rng.uniform(300.0, 350.0)            # in-plane field of view, mm
    extent_z = rng.uniform(330.0, 380.0)       # scan length, mm
    spacing = np.array([fov / nx, fov / ny, extent_z / nz])
    xs = (np.arange(nx) - (nx - 1) / 2) * spacing[0]   # + = patient's left
    ys = (np.arange(ny) - (ny - 1) / 2) * spacing[1]   # + = posterior
    zs = (np.arange(nz) - (nz - 1) / 2) * spacing[2]   # + = superior
    X, Y, Z = np.meshgrid(xs, ys, zs, indexing="ij")
    grid = np.stack([X, Y, Z], axis=-1)

    ct = np.full(shape, HU["air"], dtype=np.float64)
    soft = HU["soft_tissue"] + rng.uniform(-15, 15)
    fat = HU["fat"] + rng.uniform(-15, 15)

    # ---- body: ellipse with a flattened back, fat layer, muscle layer, thoracic cavity
    half = fov / 2
    a = half * rng.uniform(0.80, 0.90)
    b = a * rng.uniform(0.62, 0.74)
    cx = rng.uniform(-8, 8)
    cy = -rng.uniform(8, 22)
    theta = np.arctan2((Y - cy) / b, (X - cx) / a)
    wobble = np.zeros_like(theta)
    for k in (2, 3, 5):
        wobble += rng.uniform(0, 0.025) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    wobble += 0.02 * np.cos(2 * np.pi * Z / rng.uniform(250, 400) + rng.uniform(0, 2 * np.pi))
    radius = np.sqrt(((X - cx) / a) ** 2 + ((Y - cy) / b) ** 2) / (1 + wobble)
    back = cy + 0.92 * b
    body = (radius < 1) & (Y < back)
    fat_mm = rng.uniform(8, 22)
    muscle_mm = rng.uniform(9, 15)
    scale_mean = (a + b) / 2
    inner = radius < 1 - fat_mm / scale_mean
    cavity_edge = 1 - (fat_mm + muscle_mm) / scale_mean
    cavity = (radius < cavity_edge) & (Y < back - fat_mm - muscle_mm)
    ct[body] = fat
    ct[inner & (Y < back - fat_mm)] = soft + 10
    ct[cavity] = soft - 10
    ac, bc = a * cavity_edge, b * cavity_edge  # cavity semi-axes (mm)

    # ---- CT table under the patient: two carbon plates around a foam core
    table_top = back + rng.uniform(0.0, 4.0)
    plate = rng.uniform(2.5, 4.0)
    core = rng.uniform(10.0, 18.0)
    table_half_width = half * (1.1 if rng.random() < 0.5 else rng.uniform(0.75, 0.95))
    curve = rng.uniform(0.0, 12.0) * (X / half) ** 2
    depth = Y - table_top + curve
    across = np.abs(X) < table_half_width
    ct[across & (depth >= 0) & (depth < plate)] = rng.uniform(150, 300)
    ct[across & (depth >= plate) & (depth < plate + core)] = rng.uniform(-880, -750)
    ct[across & (depth >= plate + core) & (depth < 2 * plate + core)] = rng.uniform(150, 300)

    # ---- lungs: one envelope per side, domed bases, tapered apices, heart notch
    lung_length = rng.uniform(230, 275)
    z_apex = extent_z / 2 - rng.uniform(20, 40)
    z_base = z_apex - lung_length
    x_centre = 0.5 * ac
    y_centre = cy + 0.08 * bc
    heart_centre = np.array([cx + 0.18 * ac, cy - 0.25 * bc, z_base + rng.uniform(0.28, 0.36) * lung_length])
    heart_axes = np.array([0.42 * ac, 0.55 * bc, rng.uniform(50, 65)]) * rng.uniform(0.9, 1.1)
    heart = (((X - heart_centre[0]) / heart_axes[0]) ** 2 + ((Y - heart_centre[1]) / heart_axes[1]) ** 2
             + ((Z - heart_centre[2]) / heart_axes[2]) ** 2) < 1
    lungs = np.zeros(shape, bool)
    sides = {}
    for side, sign in (("right", -1.0), ("left", 1.0)):
        ax_ = 0.50 * ac * rng.uniform(0.95, 1.08) * (1.05 if side == "right" else 1.0)
        ay_ = 0.95 * bc * rng.uniform(0.95, 1.05)
        xc = cx + sign * x_centre
        u = (X - xc) / ax_
        v = (Y - y_centre) / ay_
        phi = np.arctan2(v, u)
        bump = 1.0
        for k in (2, 3, 4):
            bump = bump + rng.uniform(0, 0.04) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
        # apex: the cross-section shrinks to a point at z_apex (parabolic cap)
        taper = np.clip((z_apex - Z) / rng.uniform(80, 110), 0, 1) ** 0.6
        # base: diaphragm dome, higher on the right (liver), deeper posteriorly and laterally
        dome_top = z_base + rng.uniform(55, 75) + (12 if side == "right" else 0)
        dome = dome_top - 55 * ((u + sign * 0.15) ** 2 + 0.8 * np.clip(v, 0, None) ** 2
                                + 0.3 * np.clip(-v, 0, None) ** 2)
        envelope = (u ** 2 + v ** 2 < (bump * taper) ** 2) & (Z > np.maximum(dome, z_base))
        medial = sign * (X - cx) > 0.1 * ac + 0.06 * ac * np.clip(v, 0, None)  # mediastinum / spine
        side_mask = envelope & medial & (radius < cavity_edge - 3 / scale_mean) & ~heart
        lungs |= side_mask
        sides[side] = (xc, dome_top)
    # spine and sternum (bone), carved from everything inside the cavity
    spine_y = cy + 0.86 * bc
    spine_r = rng.uniform(16, 20)
    vertebra = ((X - cx) ** 2 + (Y - spine_y) ** 2) < spine_r ** 2
    canal = ((X - cx) ** 2 + (Y - spine_y - spine_r - 6) ** 2) < 7 ** 2
    arch = (((X - cx) ** 2 + (Y - spine_y - spine_r - 6) ** 2) < 13 ** 2) & ~canal
    disc_phase = rng.uniform(0, 25)
    disc = np.abs(((Z + disc_phase) % 25.0) - 12.5) > 10.5
    lungs &= ~(vertebra | arch | canal)
    cancellous = rng.uniform(300, 450)
    ct[vertebra] = np.where(disc[vertebra], soft + 40, cancellous)
    shell = vertebra & ~(((X - cx) ** 2 + (Y - spine_y) ** 2) < (spine_r - 2.5) ** 2)
    ct[shell & ~disc] = rng.uniform(750, 950)
    ct[arch] = rng.uniform(600, 900)
    ct[canal] = 15.0
    sternum = ((((X - cx) / 14) ** 2 + ((Y - (cy - b + fat_mm + 0.6 * muscle_mm)) / 6) ** 2) < 1) & \
        (Z > z_base + 0.3 * lung_length) & (Z < z_apex - 10)
    ct[sternum] = rng.uniform(350, 600)

    # ribs: bands in the chest wall that descend anteriorly
    rib_spacing = rng.uniform(22, 27)
    angle = np.abs(np.arctan2(-(Y - cy), X - cx))            # 0 = patient left, pi = right
    from_spine = np.abs(np.arctan2(X - cx, Y - cy))          # 0 at the spine, pi anteriorly
    rib_shell = (radius > cavity_edge - 0.5 / scale_mean) & (radius < cavity_edge + 9 / scale_mean)
    rib_bone = rng.uniform(500, 800)
    for z_rib in np.arange(z_apex + 10, z_base - 20, -rib_spacing):
        centre = z_rib - 38 * from_spine / np.pi
        band = rib_shell & (np.abs(Z - centre) < 5.0) & (from_spine < 0.82 * np.pi)
        ct[band] = rib_bone
        cortex = band & ((np.abs(Z - centre) > 3.0) | (radius > cavity_edge + 6 / scale_mean))
        ct[cortex] = rib_bone + 250
    del angle

    # mediastinum: heart (blood), aorta, oesophagus
    ct[heart & cavity] = HU["blood"] + rng.uniform(-10, 10)
    pericardial = heart & ~((((X - heart_centre[0]) / (heart_axes[0] - 6)) ** 2
                             + ((Y - heart_centre[1]) / (heart_axes[1] - 6)) ** 2
                             + ((Z - heart_centre[2]) / (heart_axes[2] - 6)) ** 2) < 1)
    ct[pericardial & cavity] = fat
    aorta_x = cx + 0.12 * ac
    aorta_y = spine_y - spine_r - 8
    for sl, inside in [_tube(grid, spacing, (aorta_x + 10, cy - 0.1 * bc, z_apex - 40),
                             (aorta_x, aorta_y, z_apex - 70), 13.0),
                       _tube(grid, spacing, (aorta_x, aorta_y, z_apex - 70),
                             (aorta_x, aorta_y, z_base - 60), 12.0)]:
        region = ct[sl]
        region[inside] = HU["blood"] + 5
        lungs[sl] &= ~inside

    # below the diaphragm: liver (right), stomach with a gas bubble (left)
    below = cavity & ~lungs & (Z < z_base + 70) & ~heart
    liver = below & (X < cx + 0.2 * ac) & (Z < sides["right"][1] - 5) & \
        (Z < sides["right"][1] - 5 - 70 * np.clip((-(X - sides["right"][0]) / (0.5 * ac)), 0, None) ** 2 + 200)
    ct[liver & ~(vertebra | arch)] = rng.uniform(55, 70)
    if rng.random() < 0.7:
        stomach_c = np.array([cx + 0.45 * ac, cy - 0.2 * bc, sides["left"][1] - rng.uniform(25, 35)])
        bubble_r = rng.uniform(14, 26)
        bubble = (((X - stomach_c[0]) / (1.4 * bubble_r)) ** 2 + ((Y - stomach_c[1]) / bubble_r) ** 2
                  + ((Z - stomach_c[2]) / (0.8 * bubble_r)) ** 2 < 1) & cavity & ~lungs
        ct[bubble] = HU["air"]

    # ---- pleural effusion (NOT in the mask): fluid layers behind the lung of a supine
    # patient with a horizontal level, deepest at the base; the lung above it is compressed
    # (atelectasis, in the mask). LCTSC-style contours follow the aerated and collapsed lung
    # and leave the fluid out, so here a dense region is outside the mask and a similar one
    # next to it is inside.
    side_of = {"right": X < cx, "left": X >= cx}
    effusion_all = np.zeros(shape, bool)
    compressed = np.zeros(shape, bool)
    for side, sign in (("right", -1.0), ("left", 1.0)):
        if rng.random() < 0.4:
            top = z_base + rng.uniform(70, 150)
            depth_mm = rng.uniform(18, 45) * np.clip((top - Z) / (top - z_base), 0, 1) ** 0.5
            level = y_centre + 0.95 * bc - depth_mm
            fluid = lungs & side_of[side] & (Y > level) & (depth_mm > 0)
            effusion_all |= fluid
            compressed |= lungs & side_of[side] & ~fluid & (Y > level - rng.uniform(8, 18)) & (depth_mm > 0)
    lungs &= ~effusion_all

    # ---- lung parenchyma with a gravity gradient; vessels, airways, nodules and opacities inside
    lung_hu = HU["lung"] + rng.uniform(-25, 25)
    gradient = rng.uniform(20, 70)
    y_span = max(bc, 1.0)
    texture = _smooth_noise(rng, shape, 1.2) * rng.uniform(10, 25)
    ct[lungs] = (lung_hu + gradient * np.clip((Y[lungs] - y_centre) / y_span + 0.5, 0, 1.5)
                 + texture[lungs])
    ct[effusion_all] = rng.uniform(0, 18)
    hilum_z = z_apex - rng.uniform(85, 110)
    for side, sign in (("right", -1.0), ("left", 1.0)):
        # pulmonary arteries and veins: thick near the hilum (blood, in the mask)
        hilum = np.array([cx + sign * 0.22 * ac, y_centre + 0.05 * bc, hilum_z])
        for start, end, r in _vessel_tree(rng, hilum, sign, n_generations=4, root_radius=(5.0, 7.0)):
            sl, inside = _tube(grid, spacing, start, end, r)
            region = ct[sl]
            within = inside & lungs[sl]
            region[within] = HU["blood"] + rng.uniform(-20, 20)
        # segmental bronchi: air in a soft-tissue wall, in the mask (only the trachea and
        # the main bronchi are outside)
        for start, end, r in _vessel_tree(rng, hilum + np.array([0, -8.0, 4.0]), sign, n_generations=2,
                                          root_radius=(3.0, 4.0)):
            sl, wall = _tube(grid, spacing, start, end, r + 1.5)
            region = ct[sl]
            region[wall & lungs[sl]] = soft
            sl, lumen = _tube(grid, spacing, start, end, r)
            region = ct[sl]
            region[lumen & lungs[sl]] = HU["air"] + 30
    edge = lungs & ~binary_erosion(lungs)
    pleural = np.argwhere(edge & (np.abs(X - cx) > 0.3 * ac))   # chest-wall side of the lungs
    lung_points = np.argwhere(lungs)

    def irregular_ball(centre, r):
        wobble = 1 + 0.25 * texture / max(texture.std(), 1e-9)
        return (np.sum((grid - centre) ** 2, axis=-1) < (r * wobble) ** 2) & lungs

    for _ in range(int(rng.integers(0, 4))):   # solid nodules anywhere in the lung (in the mask)
        centre = grid[tuple(lung_points[rng.integers(len(lung_points))])]
        ball = np.sum((grid - centre) ** 2, axis=-1) < rng.uniform(4, 11) ** 2
        ct[ball & lungs] = rng.uniform(10, 50)
    for _ in range(int(rng.integers(0, 3))):   # juxtapleural nodules and masses (in the mask)
        centre = grid[tuple(pleural[rng.integers(len(pleural))])]
        blob = irregular_ball(centre, rng.uniform(8, 28))
        ct[blob] = rng.uniform(15, 55) + 0.5 * texture[blob]
    for _ in range(int(rng.integers(0, 4))):   # ground-glass patches (in the mask)
        centre = grid[tuple(lung_points[rng.integers(len(lung_points))])]
        blob = irregular_ball(centre, rng.uniform(20, 45))
        ct[blob] = np.maximum(ct[blob], rng.uniform(-450, -200) + texture[blob])

    def air_bronchograms(blob, centre, n=4):
        for _ in range(n):
            direction = rng.normal(0, 1, 3)
            direction /= np.linalg.norm(direction)
            sl, inside = _tube(grid, spacing, centre - 30 * direction, centre + 30 * direction, 2.5)
            region = ct[sl]
            region[inside & blob[sl]] = rng.uniform(-950, -750)

    for _ in range(int(rng.choice([0, 1, 1, 2, 2]))):   # consolidation against the pleura (in the mask)
        centre = grid[tuple(pleural[rng.integers(len(pleural))])]
        blob = irregular_ball(centre, rng.uniform(35, 65))
        ct[blob] = rng.uniform(-80, 40) + texture[blob]
        air_bronchograms(blob, centre)
    if rng.random() < 0.4:   # collapse of part of a lower lobe behind a central tumour (in the mask)
        side = "right" if rng.random() < 0.5 else "left"
        slope = rng.uniform(0.8, 1.4)                       # the oblique fissure, seen from the side
        lobe = lungs & side_of[side] & (Z < hilum_z - rng.uniform(10, 40) + slope * (Y - y_centre))
        ct[lobe] = rng.uniform(10, 50) + texture[lobe]
        if lobe.any():
            air_bronchograms(lobe, grid[tuple(np.argwhere(lobe).mean(axis=0).astype(int))], n=4)
    for side, sign in (("right", -1.0), ("left", 1.0)):   # dependent atelectasis (in the mask)
        if rng.random() < 0.7:
            level = y_centre + rng.uniform(0.1, 0.5) * bc + 12 * texture / max(texture.std(), 1e-9)
            band = lungs & (sign * (X - cx) > 0) & (Y > level) & (Z < z_base + rng.uniform(80, 170))
            ct[band] = rng.uniform(-120, 30) + texture[band]
    if compressed.any():                                    # lung collapsed on the effusion
        compressed &= lungs
        ct[compressed] = rng.uniform(25, 60) + texture[compressed]
        air_bronchograms(compressed, grid[tuple(np.argwhere(compressed).mean(axis=0).astype(int))], n=3)

    # ---- airways: trachea and main bronchi, air with a soft-tissue wall, NOT in the mask
    trachea_x = cx + rng.uniform(-4, 4)
    trachea_y = spine_y - spine_r - rng.uniform(14, 22)
    carina = np.array([trachea_x, trachea_y - 4, hilum_z + rng.uniform(10, 25)])
    airway_r = rng.uniform(7, 9)
    pieces = [((trachea_x, trachea_y, extent_z), carina, airway_r)]
    for sign in (-1.0, 1.0):
        end = np.array([cx + sign * 0.32 * ac, y_centre + 0.02 * bc, hilum_z - rng.uniform(5, 15)])
        pieces.append((carina, end, airway_r * 0.7))
    for start, end, r in pieces:
        sl, wall = _tube(grid, spacing, start, end, r + 2.0)
        region, lung_region = ct[sl], lungs[sl]
        region[wall] = soft
        lung_region[wall] = False
        sl, lumen = _tube(grid, spacing, start, end, r)
        ct[sl][lumen] = HU["air"]
    oesophagus = _tube(grid, spacing, (trachea_x + 8, trachea_y + 14, extent_z),
                       (cx + 0.15 * ac, spine_y - spine_r - 6, z_base), 6.0)
    ct[oesophagus[0]][oesophagus[1] & ~lungs[oesophagus[0]]] = soft

    # ---- scanner: beam hardening (cupping and streaks), slice profile, noise, reconstruction circle
    cupping = rng.uniform(10, 40)                     # the centre of the body reads darker
    ct[body] -= cupping * np.clip(1 - radius[body] ** 2, 0, 1)
    shoulders = Z > z_apex - rng.uniform(30, 60)      # streaks between the shoulders at the apex
    streak_y = cy + rng.uniform(-0.3, 0.3) * bc
    ct -= np.where(body & shoulders, rng.uniform(40, 120) * np.exp(-((Y - streak_y) / rng.uniform(6, 12)) ** 2), 0)
    source = np.array([cx + rng.uniform(0.05, 0.2) * ac, cy - rng.uniform(0.0, 0.3) * bc])  # dense SVC / clip
    z_range = (Z > hilum_z - rng.uniform(0, 40)) & (Z < hilum_z + rng.uniform(30, 80))
    theta = np.arctan2(Y - source[1], X - source[0])
    reach = 1.0 / (1.0 + np.hypot(X - source[0], Y - source[1]) / 40.0)
    streaks = np.zeros(shape)
    for _ in range(int(rng.integers(2, 6))):
        gap = np.angle(np.exp(2j * (theta - rng.uniform(0, np.pi)))) / 2   # lines through the source
        streaks += rng.choice([-1.0, 1.0]) * rng.uniform(60, 180) * np.exp(-(gap / 0.05) ** 2)
    ct += np.where(body & z_range, streaks * reach, 0)
    blur = rng.uniform(0.5, 0.75)                       # in-plane point spread, voxels
    profile = rng.uniform(0.4, 0.55)                    # slice profile: partial volume along k
    ct = gaussian_filter(ct, (blur, blur, profile))
    if fine_shape != tuple(shape):   # LCTSC-sized: from the design grid onto the fine grid
        from helpers import geometry

        coarse = np.diag([spacing[0], spacing[1], spacing[2], 1.0])
        fine_spacing = spacing * np.asarray(shape) / np.asarray(fine_shape)
        fine = np.diag([fine_spacing[0], fine_spacing[1], fine_spacing[2], 1.0])
        for grid_affine, n in ((coarse, shape), (fine, fine_shape)):
            grid_affine[:3, 3] = -grid_affine[:3, :3] @ ((np.asarray(n) - 1) / 2.0)   # centred, like xs, ys, zs
        ct = geometry.resample_to_grid(ct.astype(np.float32), coarse, fine_shape, fine).astype(np.float64)
        lungs = geometry.resample_to_grid(lungs.astype(np.float32), coarse, fine_shape, fine) > 0.5
        shape, spacing, (nx, ny, nz) = fine_shape, fine_spacing, fine_shape
        X, Y = np.meshgrid((np.arange(nx) - (nx - 1) / 2) * spacing[0],  # type: ignore[assignment]
                           (np.arange(ny) - (ny - 1) / 2) * spacing[1], indexing="ij")
        X, Y = X[..., None], Y[..., None]
    ct += rng.normal(0.0, rng.uniform(15, 40), shape)
    if rng.random() < 0.5:   # many scanners pad outside the reconstruction circle
        ct[np.broadcast_to((X ** 2 + Y ** 2) > half ** 2, shape)] = -1024
    ct = np.clip(np.rint(ct), -1024, 3071).astype(np.int16)

    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [spacing[0] * (nx - 1) / 2 + rng.uniform(-10, 10),
                     spacing[1] * (ny - 1) / 2 + rng.uniform(-10, 10) - 150.0,
                     -spacing[2] * (nz - 1) / 2 - rng.uniform(100, 200)]
    return ct, lungs.astype(np.uint8), affine


# --------------------------------------------------------------------------- files

def _make(task) -> dict[str, bytes]:
    number, shape, seed, design_shape = task
    ct, lung, affine = make_case(number, shape=shape, seed=seed, design_shape=design_shape)
    name = case_name(number)
    return {f"{name}/{CT_NAME}": nifti_bytes(ct, affine), f"{name}/{MASK_NAME}": nifti_bytes(lung, affine)}


def generate(folder: Path, *, force: bool = False, n_cases: int = DEFAULTS["n_cases"],
             shape: Sequence[int] = DEFAULTS["shape"], seed: int = DEFAULTS["seed"],
             design_shape: Sequence[int] | None = None, workers: int = 1) -> Path:
    """Generate ``n_cases`` synthetic chest CT cases into ``folder`` unless already there.

    Writes ``<case>/ct.nii.gz`` (int16 HU) and ``<case>/lung.nii.gz`` (uint8 {0, 1}) for
    cases ``LCTSC-Train-S1-001`` ... with volumes of ``shape`` voxels ``(i, j, k)`` and
    anisotropic spacing in the affine; deterministic in ``(n_cases, shape, seed)``; about
    half a second per case at the default grid; ``workers`` processes draw the cases (it does
    not change the result). ``design_shape`` draws the anatomy on that coarser grid and
    interpolates it onto ``shape`` (see :func:`make_case`; :data:`FULL` is the LCTSC-sized
    set, about 4 s per case). Returns ``folder``.

    Args:
        folder: where the set goes.
        force: delete the folder's other files and regenerate.
        n_cases: the number of cases.
        shape: the grid of each volume ``(i, j, k)``.
        seed: the seed of the set.
        design_shape: a coarser grid to draw the anatomy on, or None.
        workers: processes drawing the cases.

    Returns:
        ``folder``.

    Raises:
        ValueError: ``n_cases < 1``, or a shape that is not 3-D with at least 16 voxels per axis.
        DatasetError: ``folder`` holds files the generator did not write and ``force`` is False.
    """
    n_cases = int(n_cases)
    shape = tuple(int(n) for n in shape)
    if n_cases < 1 or len(shape) != 3 or min(shape) < 16:
        raise ValueError(f"need n_cases >= 1 and a 3-D shape of at least 16 voxels per axis, "
                         f"got n_cases={n_cases}, shape={shape}")
    params = {"n_cases": n_cases, "shape": list(shape), "seed": int(seed)}
    if design_shape is not None:
        design_shape = tuple(int(n) for n in design_shape)
        if len(design_shape) != 3 or min(design_shape) < 16:
            raise ValueError(f"design_shape must be a 3-D shape of at least 16 voxels per axis, got {design_shape}")
        params["design_shape"] = list(design_shape)
    planned = [f"{case_name(number)}/{name}" for number in range(1, n_cases + 1) for name in (CT_NAME, MASK_NAME)]
    request = {"generator": "lung_ct", "version": GENERATOR_VERSION, "params": params}
    return generate_into(Path(folder), request=request, planned=planned,
                         tasks=[(number, shape, int(seed), design_shape) for number in range(1, n_cases + 1)],
                         make=_make,
                         force=force, desc="lung CT volumes", workers=workers)


# --------------------------------------------------------------------------- loading

def _header(path: Path):
    from helpers.data.io import open_nifti

    return open_nifti(path, fix="regenerate the synthetic set with ensure_dataset('lung_ct_synthetic', "
                                "force=True) or convert that case again")


def load_cases(folder: Path, *, check_masks: bool = True) -> list[tuple[Path, Path]]:
    """Validated ``(ct_path, lung_path)`` pairs of the case folders in ``folder``, sorted.

    Every sub-folder holding ``ct.nii.gz`` must hold ``lung.nii.gz`` of the same 3-D shape;
    with ``check_masks`` the masks are read and must contain only 0 and 1 (this reads every
    mask: a few seconds for a real data set). Raises ``DatasetError`` naming the file and
    the fix otherwise, or when ``folder`` holds no case at all.

    Args:
        folder: the data set folder, one sub-folder per case.
        check_masks: read every mask and check that it is binary.

    Returns:
        ``[(ct_path, lung_path), ...]``, sorted by case.

    Raises:
        DatasetError: no case, a missing or unreadable file, shapes that differ, or (with
            ``check_masks``) a mask that is not binary.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder} does not exist. Generate the synthetic set with "
                           f"helpers.data.ensure_dataset('lung_ct_synthetic') or fix the path.")
    pairs = []
    for ct_path in sorted(folder.glob(f"*/{CT_NAME}")):
        lung_path = ct_path.parent / MASK_NAME
        if not lung_path.is_file():
            raise DatasetError(f"{ct_path} has no mask: expected {lung_path}. Add the lung mask "
                               f"(left + right lung, 0/1) or remove the folder {ct_path.parent}.")
        ct_image, lung_image = _header(ct_path), _header(lung_path)
        ct_shape, lung_shape = ct_image.shape, lung_image.shape
        if len(ct_shape) != 3 or tuple(ct_shape) != tuple(lung_shape):
            raise DatasetError(f"{lung_path} has shape {tuple(lung_shape)} but {ct_path} has "
                               f"{tuple(ct_shape)}: a mask must be a 3-D volume on the CT's grid. "
                               f"Resample the mask onto the CT (nearest neighbour) when converting.")
        if check_masks:
            from helpers.data.io import check_labels, read_nifti

            check_labels(lung_path, read_nifti(lung_path, fix="convert that case again")[0], {0, 1},
                         hint="a lung mask must hold only 0 and 1. Binarise it when converting, e.g. "
                              "(mask > 0).astype('uint8').")
        pairs.append((ct_path, lung_path))
    if not pairs:
        raise DatasetError(f"{folder} holds no case folder with {CT_NAME}. Expected "
                           f"<case>/{CT_NAME} + <case>/{MASK_NAME}; generate the synthetic set with "
                           f"helpers.data.ensure_dataset('lung_ct_synthetic').")
    return pairs


def read_case(ct_path: str | Path,
              lung_path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Read one case: ``(ct float32 HU (X, Y, Z), lung uint8 {0, 1} (X, Y, Z) or None, affine
    4x4)``, the paths as :func:`load_cases` returns them. Raises DatasetError naming the
    file when it cannot be read or the mask is not binary.

    Args:
        ct_path: the CT's NIfTI file.
        lung_path: the lung mask's NIfTI file, or None for no mask.

    Returns:
        ``(ct, lung, affine)`` as above.

    Raises:
        DatasetError: a file cannot be read, or the mask is not binary.
    """
    from helpers.data.io import BINARY_LABELS, check_labels, load_nifti, read_nifti

    ct, affine = load_nifti(ct_path)
    lung = None
    if lung_path is not None:
        labels = read_nifti(lung_path, fix="convert that case again")[0]
        lung = (check_labels(lung_path, labels, BINARY_LABELS) > 0).astype(np.uint8)
    return ct, lung, affine


def lung_volume_ml(mask: ArrayLike, affine: ArrayLike) -> float:
    """Volume of ``mask > 0`` in millilitres (lesson 06's Exercise 6.2).

    Args:
        mask: a 3D array on the grid of ``affine`` (any dtype; ``> 0`` is foreground).
        affine: the 4 x 4 NIfTI affine of that grid, in millimetres.

    Returns:
        The number of foreground voxels times the volume of one voxel,
        ``|det(affine[:3, :3])|`` mm³, divided by 1000 (1 mL = 1000 mm³).
    """
    voxel_mm3 = abs(float(np.linalg.det(np.asarray(affine, dtype=float)[:3, :3])))
    return float(np.count_nonzero(np.asarray(mask) > 0) * voxel_mm3 / 1000.0)


__all__ = ["CT_NAME", "DEFAULTS", "FULL", "GENERATOR_VERSION", "HU", "MASK_NAME", "case_name",
           "generate", "load_cases", "lung_volume_ml", "make_case", "nifti_bytes", "read_case",
           "voxel_spacing"]
