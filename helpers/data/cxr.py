"""Synthetic frontal chest radiographs with lung masks (the default data of lessons 01-05).

Each image is drawn procedurally, deterministically from a seed, in the radiological
convention (the patient's left is on the image right). Anatomy: thorax and soft-tissue
outline with shoulders, neck and (sometimes) arms; two lung fields of varied shape with
apices, costophrenic angles and diaphragm domes (the patient's left lung is the smaller
one), over the range of heights and aspect ratios of real adult films; mediastinum,
trachea, spine; a heart shadow that overlaps the left lung and rests on the diaphragm;
clavicles; posterior and anterior ribs crossing the lung fields; vessel markings; breast
shadows; a gastric bubble and bowel gas. Appearance: lung fields that fade towards the
chest wall and under the soft tissue of the apices; uneven soft tissue outside the lungs
(some of it as dark as lung); opacities (consolidation, nodules) inside the lungs, half
of them in the apices and upper zones where tuberculosis - the finding of the public
Shenzhen and Montgomery sets - shows, some dense enough to hide the lung behind them;
intensity bias field, contrast and gamma, noise, pose (rotation, scale, shift),
occasional black collimation borders and an "L"/"R" side marker. Each radiograph then
gets the preprocessing of prepared real sets (``helpers.data.converters.preprocess_cxr``:
black-border crop, resize, 5th-95th percentile stretch), so synthetic and real images
reach the lessons alike. Realism is measured by ``benchmarks/real_cxr.py`` (a model
trained only on this set, evaluated on real radiographs).

The mask holds the *visible* lung fields, as in the Montgomery annotations: lung behind
ribs, vessels and opacities is lung; the part hidden by the heart and the mediastinum
is not. Lung pixels are dark (air), bone and heart bright. As in the real Shenzhen masks
(measured on the development set), the outline runs on the outer end of the lung's edge
(one pixel of the 256-pixel image beyond the middle of the dark-to-bright transition, at
any image size), the apices rise close to
the mediastinum under a flat dome, and the hila and heart widen the mediastinum below
them (version 4).

Two settings: ``"standard"`` (the lessons' data) and ``"hard"`` (:func:`harden`: other poses,
more and denser opacities, stronger noise), from which the capstone challenge draws its hidden
test set from, so that the test set is not a copy of the training distribution.

``generate(folder)`` writes ``images/SYN_<pppp>_<k>.png`` (8-bit grey) and
``masks/SYN_<pppp>_<k>.png`` (0/255). About one patient in four has a second radiograph
(``k = 1``: same anatomy, another pose, exposure and opacities), so data must be split by
patient.
"""

from __future__ import annotations

import math
from pathlib import Path

from typing import Any, Literal

import numpy as np

from helpers import config
from helpers.data._store import generate_into

GENERATOR_VERSION = "4"

#: Default parameters of :func:`generate` (a different value regenerates the set).
DEFAULTS: dict[str, Any] = {"n_images": config.CXR_N_IMAGES, "size": config.CXR_IMAGE_SIZE, "seed": config.SEED}

#: Fraction of patients that have a second radiograph.
SECOND_VIEW_FRACTION = 0.25

#: Settings of :func:`generate_cxr`: the lessons' data, and the harder one of the challenge.
SETTINGS = ("standard", "hard")
#: The type of a setting of :func:`generate_cxr` (one of :data:`SETTINGS`).
Setting = Literal["standard", "hard"]

#: Largest image side supported by :func:`generate_cxr`.
MAX_SIZE = 512

#: Half-width, in normalised anatomical units, of the canonical frame in which anatomy is
#: drawn before the pose transform (the image itself spans -1..1).
_CANON = 1.3

#: Floating-point type of the drawing. float64 keeps the pixels identical across CPUs
#: (float32 transcendental functions differ in the last bit between SIMD implementations).
_DTYPE = np.float64


# --------------------------------------------------------------------------------------
# Random parameters
# --------------------------------------------------------------------------------------

def _anatomy(rng: np.random.Generator) -> dict:
    """Patient anatomy, in normalised units (image spans -1..1, x right, y down)."""
    u = rng.uniform
    a = {
        "body_hw": u(0.80, 0.95),
        "neck_hw": u(0.20, 0.27),
        "shoulder_v": u(-0.84, -0.72),
        "arms": rng.random() < 0.4,
        "arm_gap": u(0.03, 0.10),
        "arm_w": u(0.20, 0.30),
        "apex_v": u(-0.86, -0.64),
        "cp_v": u(0.50, 0.86),
        "lung_w": u(0.62, 0.80),
        "periphery": u(0.08, 0.22),
        "air_floor": u(0.50, 0.75),
        "apex_u": u(0.30, 0.38),
        "apex_k": u(2.4, 3.4),
        "dome_rise": u(0.14, 0.32),
        "dome_u": u(0.34, 0.44),
        "med_top": u(0.11, 0.15),
        "med_bot": u(0.09, 0.13),
        "aortic_knob": u(0.03, 0.07),
        "heart_u": u(0.08, 0.16),
        "heart_a": u(0.34, 0.46),
        "heart_b": u(0.22, 0.30),
        "heart_angle": u(-0.55, -0.25),
        "rib_start": u(-0.80, -0.72),
        "rib_gap": u(0.088, 0.104),
        "rib_th": u(0.020, 0.027),
        "rib_rise": u(0.08, 0.14),
        "rib_fall": u(0.34, 0.46),
        "rib_strength": u(0.75, 1.2, size=12).tolist(),
        "clav_v": u(-0.66, -0.56),
        "clav_tilt": u(0.08, 0.20),
        "breasts": rng.random() < 0.45,
        "breast_v": u(0.05, 0.25),
        "gastric_bubble": rng.random() < 0.6,
        "bubble_u": u(0.28, 0.45),
        "bubble_r": u(0.05, 0.09),
        "wobble": [(u(-0.012, 0.012), u(1.5, 4.0), u(1.5, 4.0), u(0, 2 * math.pi)) for _ in range(4)],
        "vessel_seed": int(rng.integers(2**31)),
    }
    # The patient's right hemidiaphragm (image left) sits higher; the left lung is smaller.
    a["dome_v_right"] = a["cp_v"] - a["dome_rise"] - u(0.02, 0.06)
    a["dome_v_left"] = a["cp_v"] - a["dome_rise"] + u(0.00, 0.03)
    a["lung_w_left"] = a["lung_w"] - u(0.0, 0.04)
    # the heart rests on the left hemidiaphragm; ribs are spaced over the lung height
    a["heart_v"] = a["dome_v_left"] - u(0.02, 0.10)
    a["rib_gap"] *= (a["cp_v"] - a["apex_v"]) / 1.15
    # the apex rises close to the mediastinum under a broad, flat dome (real lungs are
    # widest at the top medially)
    a["apex_u"] = a["med_top"] + 0.08 + 1.4 * (a["apex_u"] - 0.30)
    a["apex_k"] *= 0.6
    return a


def _appearance(rng: np.random.Generator) -> dict:
    """Exposure, pose, opacities and artefacts of one radiograph."""
    u = rng.uniform
    n_opacities = int(rng.choice([0, 1, 1, 2, 3]))
    opacities = []
    for _ in range(n_opacities):
        side = rng.choice([-1, 1])
        n_blobs = int(rng.integers(2, 7))
        if rng.random() < 0.5:
            # tuberculosis favours the apices and upper zones (infiltrates, fibrosis)
            centre = (side * u(0.15, 0.55), u(-0.85, -0.40))
        else:
            centre = (side * u(0.20, 0.65), u(-0.45, 0.65))
        spread = u(0.04, 0.14)
        blobs = [(centre[0] + rng.normal(0, spread), centre[1] + rng.normal(0, spread),
                  u(0.04, 0.13), u(0.5, 1.0)) for _ in range(n_blobs)]
        opacities.append({"blobs": blobs, "strength": u(0.08, 0.30), "texture": u(0.0, 0.6)})
    nodules = [(rng.choice([-1, 1]) * u(0.25, 0.6), u(-0.5, 0.3), u(0.015, 0.035), u(0.06, 0.14))
               for _ in range(int(rng.choice([0, 0, 1, 2])))]
    return {
        "rotation": u(-7.0, 7.0),
        "scale": u(0.86, 1.08),
        "shift": (u(-0.06, 0.06), u(-0.06, 0.06)),
        "lung_air": u(0.22, 0.36),
        "apex_tissue": u(0.02, 0.10),
        "tissue": u(0.42, 0.52),
        "bone": u(0.07, 0.13),
        "heart": u(0.0, 0.03),
        "vessel": u(0.08, 0.14),
        "abdomen": u(0.10, 0.22),
        "mediastinum": u(0.05, 0.12),
        "opacities": opacities,
        "nodules": nodules,
        "bias_add": (u(-0.15, 0.15), u(-0.15, 0.15), u(-0.12, 0.12)),
        "bias_mul": (u(-0.25, 0.25), u(-0.25, 0.25)),
        "gamma": math.exp(u(-0.55, 0.35)),
        "soft_var": u(0.0, 0.10),
        "bowel_gas": [(u(-0.6, 0.6), u(0.0, 0.6), u(0.03, 0.09), u(0.2, 0.6))
                      for _ in range(int(rng.integers(0, 7)))],
        "window": (u(-0.05, 0.10), u(0.85, 1.10)),
        "noise": u(0.008, 0.035),
        "mottle": u(0.0, 0.04),
        "border": rng.random() < 0.3,
        "border_widths": [u(0.02, 0.07) if rng.random() < 0.6 else 0.0 for _ in range(4)],
        "marker": rng.random() < 0.7,
        "marker_letter": "L" if rng.random() < 0.5 else "R",
        "marker_corner": int(rng.integers(2)),
        "marker_size": u(0.05, 0.08),
        "noise_seed": int(rng.integers(2**31)),
    }


def harden(appearance: dict, rng: np.random.Generator) -> dict:
    """The ``"hard"`` setting: a copy of ``appearance`` (from :func:`_appearance`) with other
    poses (rotation up to 14 degrees, scale 0.78-1.14, shift up to 0.10 of the half-width,
    against 7, 0.86-1.08 and 0.06), one to three more opacities, denser (strength 0.20-0.45
    against 0.08-0.30) and wider, one or two more nodules, and stronger noise and gamma.
    The anatomy and the mask's rules are unchanged: lung behind an opacity is still lung.

    Args:
        appearance: the radiograph's appearance, as ``_appearance`` draws it.
        rng: the generator of the changes.

    Returns:
        The harder appearance (a copy).
    """
    u = rng.uniform
    hard = dict(appearance)
    hard["rotation"] = float(rng.choice([-1, 1])) * u(4.0, 14.0)
    hard["scale"] = u(0.78, 1.14)
    hard["shift"] = (u(-0.10, 0.10), u(-0.10, 0.10))
    opacities = list(appearance["opacities"])
    for _ in range(int(rng.integers(1, 4))):
        side = rng.choice([-1, 1])
        centre = (side * u(0.15, 0.60), u(-0.85, 0.60))
        spread = u(0.06, 0.18)
        blobs = [(centre[0] + rng.normal(0, spread), centre[1] + rng.normal(0, spread),
                  u(0.06, 0.16), u(0.6, 1.0)) for _ in range(int(rng.integers(3, 8)))]
        opacities.append({"blobs": blobs, "strength": u(0.20, 0.45), "texture": u(0.0, 0.8)})
    hard["opacities"] = opacities
    hard["nodules"] = list(appearance["nodules"]) + [
        (rng.choice([-1, 1]) * u(0.25, 0.6), u(-0.6, 0.4), u(0.02, 0.045), u(0.10, 0.20))
        for _ in range(int(rng.integers(1, 3)))]
    hard["noise"] = u(0.02, 0.05)
    hard["gamma"] = math.exp(u(-0.75, 0.5))
    hard["mottle"] = u(0.02, 0.06)
    return hard


# --------------------------------------------------------------------------------------
# Drawing helpers. The canonical frame has rows = v and columns = u; ``u`` is passed as a
# row vector (1, W) and ``v`` as a column vector (H, 1) so that 1D terms stay cheap.
# --------------------------------------------------------------------------------------

def _smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth maximum (rounded intersection of two implicit regions), k in normalised units."""
    return 0.5 * (a + b + np.sqrt((a - b) ** 2 + k * k))


def _band(d: np.ndarray, half_width: float, edge: float) -> np.ndarray:
    """1 where ``|d| < half_width``, 0 beyond, linear over ``edge`` in between."""
    return np.clip((half_width - np.abs(d)) / edge + 0.5, 0.0, 1.0)


def _ramp(g: np.ndarray, width: float) -> np.ndarray:
    """1 inside (g < 0), 0 outside, linear over ``width`` around the boundary."""
    return np.clip(0.5 - g / width, 0.0, 1.0)


def _lung_field(u: np.ndarray, v: np.ndarray, a: dict, side: int) -> np.ndarray:
    """Implicit function of one lung (negative inside), heart not yet removed.

    ``side`` is -1 for the image left (the patient's right lung), +1 for the image right.
    """
    x = side * u  # distance from the midline, positive towards this lung's chest wall
    apex_v, cp_v = a["apex_v"], a["cp_v"]
    lung_w = a["lung_w"] if side < 0 else a["lung_w_left"]
    dome_v = a["dome_v_right"] if side < 0 else a["dome_v_left"]
    t = np.clip((v - apex_v) / (cp_v - apex_v), 0.0, 1.0)
    # lateral wall: slopes outwards going down, slightly convex
    lateral = lung_w - 0.10 * (1.0 - t) ** 2 + 0.02 * np.sin(math.pi * t)
    # medial border: mediastinum, aortic knob on the patient's left, right atrium on the right
    medial = a["med_top"] + (a["med_bot"] - a["med_top"]) * t
    # the hila and the heart widen the mediastinum below the apices
    medial = medial + (0.03 + a["aortic_knob"]) * np.exp(-(((t - 0.58) / 0.2) ** 2))
    if side > 0:
        medial = medial + a["aortic_knob"] * np.exp(-(((v + 0.36) / 0.09) ** 2))
    # apex: rounded dome, steeper on the medial side
    dx = x - a["apex_u"]
    top = apex_v + np.where(dx > 0, a["apex_k"], 2.2 * a["apex_k"]) * dx * dx
    # diaphragm dome, dropping into a deep costophrenic recess laterally
    du = x - a["dome_u"]
    bottom = dome_v + 0.55 * du * du + np.where(du > 0, 1.6 * du ** 3, 0.0)
    bottom = np.minimum(bottom, cp_v + 0.02)
    g = _smax(x - lateral, medial - x, 0.10)
    g = _smax(g, top - v, 0.10)
    g = _smax(g, v - bottom, 0.025)  # the costophrenic angle stays sharp
    for amplitude, fu, fv, phase in a["wobble"]:
        # amplitude * sin(fu*pi*u + fv*pi*v + phase), separable
        su, cu = np.sin(fu * math.pi * u + phase), np.cos(fu * math.pi * u + phase)
        sv, cv = np.cos(fv * math.pi * v), np.sin(fv * math.pi * v)
        g = g + amplitude * (su * sv + cu * cv)
    return g


def _heart_field(u: np.ndarray, v: np.ndarray, a: dict) -> np.ndarray:
    """Implicit function of the heart shadow (negative inside), roughly in normalised units."""
    c, s = math.cos(a["heart_angle"]), math.sin(a["heart_angle"])
    du, dv = u - a["heart_u"], v - a["heart_v"]
    p = (c * du + s * dv) / a["heart_a"]
    q = (-s * du + c * dv) / a["heart_b"]
    q = np.where(q > 0, q * 1.15, q)
    g = (np.sqrt(p * p + q * q) - 1.0) * 0.5 * (a["heart_a"] + a["heart_b"])
    # the heart rests on the diaphragm: everything below its outline is heart too (the
    # downward shadow of the ellipse; rows run down the v axis), so no lung wraps under it
    return np.minimum.accumulate(np.broadcast_to(g, (v.shape[0], u.shape[1])), axis=0)


def _ribs(u: np.ndarray, v: np.ndarray, a: dict, px: float) -> np.ndarray:
    """Posterior ribs (from the spine up-and-out, then curving down along the chest wall)
    and fainter anterior ribs (from the chest wall down-and-in), each with a brighter cortex.
    """
    out = np.zeros((v.shape[0], u.shape[1]), _DTYPE)
    vv, uu = v[:, 0], u[0]
    edge = max(px, 0.004)
    wall = a["body_hw"] * 0.95
    for side in (-1, 1):
        x = side * uu
        w = np.clip((x - 0.05) / (wall - 0.05), 0.0, 1.0)  # 0 at the spine .. 1 at the wall
        fade = np.clip((x - 0.05) / 0.04, 0, 1) * np.clip((wall - x) / 0.04, 0, 1)
        for i in range(len(a["rib_strength"])):
            strength = a["rib_strength"][i]
            v0 = a["rib_start"] + i * a["rib_gap"] * (1.0 + 0.03 * i)
            centre = v0 - a["rib_rise"] * w + a["rib_fall"] * w ** 1.6
            th = a["rib_th"] * (1.0 + 0.4 * w)
            rows = np.flatnonzero((vv > centre.min() - 2 * a["rib_th"]) & (vv < centre.max() + 2 * a["rib_th"]))
            if rows.size == 0:
                continue
            sl = slice(rows[0], rows[-1] + 1)
            d = np.abs(vv[sl, None] - centre[None, :])
            cortex = np.clip(1.0 - np.abs(d - th) / (0.3 * th + px), 0.0, 1.0)
            out[sl] += strength * (0.75 * _band(d, th, edge) + 0.35 * cortex) * fade[None, :]
        lateral = np.clip((x - 0.22) / (wall - 0.22), 0.0, 1.0)
        ant_fade = np.clip((x - 0.22) / 0.12, 0, 1) * fade
        for i in range(6):
            v0 = a["rib_start"] + 0.2 + i * a["rib_gap"] * 1.2
            centre = v0 + 0.3 * (1.0 - lateral)
            th = a["rib_th"] * 1.2
            rows = np.flatnonzero((vv > centre.min() - 2 * th) & (vv < centre.max() + 2 * th))
            if rows.size == 0:
                continue
            sl = slice(rows[0], rows[-1] + 1)
            out[sl] += 0.45 * _band(vv[sl, None] - centre[None, :], th, 2 * edge) * ant_fade[None, :]
    return out


def _clavicles(u: np.ndarray, v: np.ndarray, a: dict, px: float) -> np.ndarray:
    out = np.zeros((v.shape[0], u.shape[1]), _DTYPE)
    rows = np.flatnonzero((v[:, 0] > a["clav_v"] - a["clav_tilt"] - 0.15) & (v[:, 0] < a["clav_v"] + 0.12))
    sl = slice(rows[0], rows[-1] + 1)
    vs = v[sl]
    for side in (-1, 1):
        x = side * u
        t = np.clip((x - 0.06) / 0.58, 0.0, 1.0)
        centre = a["clav_v"] - a["clav_tilt"] * t + 0.05 * np.sin(2 * math.pi * t) * (1 - t)
        th = 0.026 + 0.012 * np.exp(-((t / 0.12) ** 2)) + 0.008 * t
        ends = np.clip((x - 0.06) / 0.03, 0, 1) * np.clip((0.66 - x) / 0.04, 0, 1)
        d = np.abs(vs - centre)
        cortex = np.clip(1.0 - np.abs(d - th) / (0.01 + px), 0.0, 1.0)
        out[sl] += (0.8 * _band(d, th, max(px, 0.004)) + 0.4 * cortex) * ends
    return out


def _vessels(a: dict, shape: tuple[int, int], px: float, to_pixel) -> np.ndarray:
    """Branching vessel markings radiating from both hila (splatted, then blurred)."""
    from scipy import ndimage

    rng = np.random.default_rng(a["vessel_seed"])
    segments = []  # (u0, v0, angle, length, bend, weight, depth)
    for side in (-1, 1):
        hilum = (side * rng.uniform(0.18, 0.24), rng.uniform(-0.14, -0.02))
        stack = []
        for angle in np.linspace(-1.3, 1.3, int(rng.integers(5, 8))):
            # angle 0 points laterally, positive downwards
            theta = float(angle + rng.normal(0, 0.12))
            direction = math.atan2(math.sin(theta), side * math.cos(theta))
            stack.append((hilum[0], hilum[1], direction, rng.uniform(0.14, 0.2), 1.0, 0))
        while stack:
            u0, v0, direction, length, weight, depth = stack.pop()
            bend = float(rng.normal(0, 0.25))
            segments.append((u0, v0, direction, length, bend, weight, depth))
            if depth < 4:
                end_angle = direction + bend
                # end point of the arc drawn below (its direction turns by ``bend``)
                if abs(bend) > 1e-6:
                    u1 = u0 + length * (math.sin(end_angle) - math.sin(direction)) / bend
                    v1 = v0 + length * (math.cos(direction) - math.cos(end_angle)) / bend
                else:
                    u1, v1 = u0 + length * math.cos(direction), v0 + length * math.sin(direction)
                for spread in (-1, 1):
                    stack.append((u1, v1, end_angle + spread * rng.uniform(0.25, 0.6),
                                  length * rng.uniform(0.6, 0.8), weight * 0.75, depth + 1))
    seg = np.array(segments, dtype=np.float64)
    k = max(16, int(0.22 / px) + 1)  # points per segment, about one per pixel
    t = np.arange(1, k + 1)[None, :] / k
    angles = seg[:, 2:3] + seg[:, 4:5] * t
    steps = seg[:, 3:4] / k
    us = seg[:, 0:1] + np.cumsum(np.cos(angles), axis=1) * steps
    vs = seg[:, 1:2] + np.cumsum(np.sin(angles), axis=1) * steps
    weights = seg[:, 5:6] * (1.0 - 0.4 * t) * (steps / px)
    rows, cols = to_pixel(us, vs)
    sigma = max(0.6, 0.006 / px)
    out = np.zeros(shape, _DTYPE)
    for thick, gain, blur in ((True, 2.2, 1.6 * sigma), (False, 1.2, sigma)):
        pick = (seg[:, 6] < 2) if thick else (seg[:, 6] >= 2)
        r, c, w = rows[pick].ravel(), cols[pick].ravel(), np.broadcast_to(weights[pick], rows[pick].shape).ravel()
        ok = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
        flat = np.bincount(r[ok] * shape[1] + c[ok], w[ok], minlength=shape[0] * shape[1])
        out += gain * ndimage.gaussian_filter(flat.reshape(shape).astype(_DTYPE), blur)
    return out


def _marker(letter: str, size_px: int) -> np.ndarray:
    """A bright side-marker letter ("L" or "R") on a square float canvas of ``size_px``."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (size_px, size_px), 0)
    draw = ImageDraw.Draw(canvas)
    w = max(1, size_px // 7)
    lo, hi = 0.2 * size_px, 0.8 * size_px
    left = 0.28 * size_px
    draw.line([(left, lo), (left, hi)], fill=255, width=w)
    if letter == "L":
        draw.line([(left, hi), (0.75 * size_px, hi)], fill=255, width=w)
    else:
        mid = 0.5 * size_px
        draw.arc([(left - 0.2 * size_px, lo), (0.75 * size_px, mid)], start=-90, end=90, fill=255, width=w)
        draw.line([(left, lo), (0.5 * size_px, lo)], fill=255, width=w)
        draw.line([(left, mid), (0.5 * size_px, mid)], fill=255, width=w)
        draw.line([(0.5 * size_px, mid), (0.78 * size_px, hi)], fill=255, width=w)
    return np.asarray(canvas, dtype=_DTYPE) / 255.0


# --------------------------------------------------------------------------------------
# One radiograph
# --------------------------------------------------------------------------------------

def _render(a: dict, p: dict, size: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage

    n = int(math.ceil(size * _CANON))  # canonical frame: -_CANON .. _CANON in both axes
    px = 2.0 * _CANON / n
    axis = (-_CANON + (np.arange(n) + 0.5) * px).astype(_DTYPE)
    u, v = axis[None, :], axis[:, None]

    def to_pixel(us, vs):
        return (np.floor((vs + _CANON) / px).astype(np.int64), np.floor((us + _CANON) / px).astype(np.int64))

    # body outline: neck, sloping shoulders, chest; arms at the sides
    shoulder = 1.0 / (1.0 + np.exp(-(v - a["shoulder_v"]) / 0.07))
    body_hw = (a["neck_hw"] + (a["body_hw"] - a["neck_hw"]) * shoulder - 0.08 * np.clip(v - 0.45, 0, None)
               + 0.05 * np.exp(-(((v - a["shoulder_v"] - 0.12) / 0.1) ** 2)))
    body = _ramp(np.abs(u) - body_hw, 3 * px)
    thickness = np.sqrt(np.clip(1.0 - (u / body_hw) ** 2, 0.0, 1.0))
    tissue = body * (0.55 + 0.45 * thickness)
    if a["arms"]:
        arm_centre = a["body_hw"] + a["arm_gap"] + a["arm_w"] / 2
        across = np.clip(1.0 - ((np.abs(u) - arm_centre) / (a["arm_w"] / 2)) ** 2, 0.0, 1.0)
        arm = np.sqrt(across) * _band(np.abs(u) - arm_centre, a["arm_w"] / 2, 3 * px)
        tissue = np.maximum(tissue, 0.85 * arm * np.clip((v - a["shoulder_v"] + 0.1) / 0.15, 0, 1))

    # lungs (mask = visible lung fields: heart and mediastinum excluded), in a box that holds them
    rows = np.flatnonzero((axis > a["apex_v"] - 0.1) & (axis < a["cp_v"] + 0.15))
    cols = np.flatnonzero(np.abs(axis) < max(a["lung_w"], a["lung_w_left"]) + 0.15)
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    ub, vb = u[:, box[1]], v[box[0]]
    g_lungs = np.full((n, n), 1.0, _DTYPE)
    g_lungs[box] = np.minimum(_lung_field(ub, vb, a, -1), _lung_field(ub, vb, a, +1))
    g_heart = np.full((n, n), 1.0, _DTYPE)
    g_heart[box] = _heart_field(ub, vb, a)
    g_visible = np.maximum(g_lungs, -g_heart)
    lung_soft = _ramp(g_visible, px)
    # the chest wall overlaps the lung periphery: air shows less towards the lung edges
    depth = np.clip(-g_visible / a["periphery"], 0.0, 1.0)
    floor = a["air_floor"]
    air_weight = (floor + (1.0 - floor) * np.sqrt(depth)) * _ramp(g_visible, 1.5 * px)
    lungs_all = _ramp(g_lungs, 2 * px)
    retro = 0.12 * lungs_all * (1.0 - lung_soft)  # lung air behind the heart
    heart = _ramp(g_heart, 2.5 * px)

    attenuation = p["tissue"] * tissue
    attenuation -= p["lung_air"] * (air_weight + retro)
    # neck and shoulder soft tissue over the apices
    attenuation += p["apex_tissue"] * np.clip((a["clav_v"] + 0.05 - v) / 0.15, 0, 1) * lungs_all
    # abdomen below the domes is thicker than the chest wall; the heart merges into it
    dome = np.where(u < 0, a["dome_v_right"], a["dome_v_left"]) + 0.4 * u * u
    below = np.clip((v - dome) / 0.08, 0, 1)
    attenuation += p["abdomen"] * below * body * (1.0 - lungs_all)
    attenuation += p["heart"] * heart * (1.0 - below)
    # hila: vessels and nodes, denser around the roots of the lungs
    for side, hv in ((-1, -0.08), (1, -0.12)):
        hilum = np.exp(-((u - side * 0.2) ** 2) / (2 * 0.06 ** 2)) * np.exp(-((v - hv) ** 2) / (2 * 0.09 ** 2))
        attenuation += 0.08 * hilum * lung_soft
    # mediastinum, spine, trachea
    spine = _band(u, 0.065, 2 * px) * np.clip((v + 1.2) / 0.1, 0, 1)
    vertebra = 0.75 + 0.25 * np.cos(2 * math.pi * (v - a["rib_start"]) / (a["rib_gap"] * 0.9))
    attenuation += 0.8 * p["bone"] * spine * vertebra * (1.0 - 0.5 * lung_soft)
    attenuation += p["mediastinum"] * _band(u, 0.16, 0.05) * body
    trachea = _band(u - 0.01, 0.028, 2 * px) * np.clip((-0.28 - v) / 0.08, 0, 1)
    attenuation -= 0.10 * trachea * body
    if a["gastric_bubble"]:
        bubble_v = a["dome_v_left"] + a["bubble_r"] * 0.9 + 0.06
        g_bubble = np.sqrt((u - a["bubble_u"]) ** 2 + ((v - bubble_v) * 1.4) ** 2) - a["bubble_r"]
        g_bubble = np.maximum(g_bubble, a["dome_v_left"] + 0.08 + 0.4 * a["bubble_u"] ** 2 - v)
        attenuation -= 0.5 * p["lung_air"] * _ramp(g_bubble, 2 * px) * (1 - lungs_all)
    if a["breasts"]:
        for side in (-1, 1):
            g_breast = np.sqrt(((u - side * 0.5) / 0.34) ** 2 + ((v - a["breast_v"] - 0.05) / 0.3) ** 2) - 1
            attenuation += 0.05 * _ramp(g_breast * 0.3, 4 * px) * np.clip((v - a["breast_v"] + 0.1) / 0.2, 0, 1)
    # bones: ribs show best through the lungs
    ribs = _ribs(u, v, a, px) * body * (0.2 + 0.8 * lungs_all) * np.clip((a["cp_v"] + 0.2 - v) / 0.25, 0, 1)
    attenuation += p["bone"] * ribs
    attenuation += 1.3 * p["bone"] * _clavicles(u, v, a, px) * body
    # vessels and opacities: inside the lung fields, part of the mask
    vessels = _vessels(a, (n, n), px, to_pixel)
    attenuation += p["vessel"] * np.clip(vessels, 0, 2.0) * (lung_soft + 0.5 * retro)
    interior = np.clip(-g_visible / 0.05, 0.0, 1.0)
    rng = np.random.default_rng(p["noise_seed"])
    # soft tissue outside the lungs is not uniform (axillae, breasts, fat): smooth darker
    # patches, some as dark as a lung, and bowel gas below the diaphragm
    outside = body * (1.0 - lungs_all)
    if p["soft_var"] > 0:
        patches = ndimage.gaussian_filter(rng.standard_normal((n, n)).astype(_DTYPE), 0.08 / px)
        patches *= 1.0 / (patches.std() + 1e-9)
        attenuation -= p["soft_var"] * np.clip(patches, 0, 3) * outside
    for cu, dv, radius, strength in p["bowel_gas"]:
        cv = max(a["dome_v_right"], a["dome_v_left"]) + 0.12 + dv
        gas = np.exp(-(((u - cu) / radius) ** 2 + ((v - cv) / (0.7 * radius)) ** 2))
        attenuation -= strength * p["lung_air"] * np.clip(gas * 1.5, 0, 1) * below * outside
    if p["opacities"]:
        texture = ndimage.gaussian_filter(rng.standard_normal((n, n)).astype(_DTYPE), max(1.0, 0.012 / px))
        texture *= 1.0 / (texture.std() + 1e-9)
        for opacity in p["opacities"]:
            field = np.zeros((n, n), _DTYPE)
            for cu, cv, radius, weight in opacity["blobs"]:
                field += weight * np.exp(-((u - cu) ** 2) / (2 * radius ** 2)) * np.exp(-((v - cv) ** 2) / (2 * radius ** 2))
            field = np.clip(field, 0, 1.2) * (1 + opacity["texture"] * 0.5 * texture)
            attenuation += opacity["strength"] * np.clip(field, 0, 1.5) * lung_soft * (0.45 + 0.55 * interior)
    for cu, cv, radius, strength in p["nodules"]:
        blob = _ramp(np.sqrt((u - cu) ** 2 + (v - cv) ** 2) - radius, 2 * px)
        attenuation += strength * blob * lung_soft

    # pose: rotate, scale and shift the canonical frame into the output image
    theta = math.radians(p["rotation"])
    scale, (shift_x, shift_y) = p["scale"], p["shift"]
    out_px = 2.0 / size
    # output pixel (r, c) -> image coords (Y, X) -> anatomy (v, u) -> canonical pixel
    c, s = math.cos(theta), math.sin(theta)
    matrix = np.array([[c, s], [-s, c]]) * (out_px / scale) / px
    centre_out = np.full(2, (size - 1) / 2.0)
    centre_canon = np.full(2, (n - 1) / 2.0)
    offset = centre_canon - matrix @ (centre_out + np.array([shift_y, shift_x]) / out_px)
    image = ndimage.affine_transform(attenuation.astype(_DTYPE), matrix, offset, output_shape=(size, size),
                                     order=1, mode="nearest")
    # the outline is drawn on the outer end of the lung's edge, as in real masks (Shenzhen's
    # last lung pixel sits at ~80 % of the dark-to-bright ramp, past its steepest step): one
    # pixel of the default image size beyond the middle of the rendered edge, whatever the size
    # (the implicit function g_visible is about the distance to the edge in anatomy units)
    outward = 2.0 / config.CXR_IMAGE_SIZE / scale
    g_out = ndimage.affine_transform(g_visible.astype(_DTYPE), matrix, offset, output_shape=(size, size),
                                     order=1, mode="constant", cval=1.0)
    mask = (g_out <= outward).astype(np.uint8)

    # exposure: bias field, window, gamma, noise
    ramp = np.linspace(-1, 1, size, dtype=_DTYPE)
    xx, yy = ramp[None, :], ramp[:, None]
    ba, bb, bc = p["bias_add"]
    ma, mb = p["bias_mul"]
    image = image * (1.0 + ma * xx + mb * yy) + ba * xx + bb * yy + bc * (xx * xx + yy * yy - 0.66)
    lo, hi = p["window"]
    image = np.clip((image + 0.05 - lo) / (hi - lo), 0.0, 1.0) ** p["gamma"]
    image = image + p["noise"] * rng.standard_normal((size, size)).astype(_DTYPE)
    if p["mottle"] > 0:
        grain = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(_DTYPE), max(1.0, size / 128))
        image += p["mottle"] * grain
    image = np.clip(image, 0.0, 1.0)

    # artefacts: collimation borders, side marker
    if p["border"]:
        top, bottom, left, right = (int(round(w * size)) for w in p["border_widths"])
        for sl in (np.s_[:top, :], np.s_[size - bottom:, :], np.s_[:, :left], np.s_[:, size - right:]):
            if image[sl].size and image[sl].size < image.size:
                image[sl] = 0.0
                mask[sl] = 0
    if p["marker"]:
        m = max(5, int(round(p["marker_size"] * size)))
        letter = _marker(p["marker_letter"], m)
        r0 = int(0.06 * size)
        c0 = int(0.06 * size) if p["marker_corner"] == 0 else size - m - int(0.06 * size)
        region = image[r0:r0 + m, c0:c0 + m]
        region[...] = np.maximum(region, 0.97 * letter)
        mask[r0:r0 + m, c0:c0 + m][letter > 0.5] = 0

    # the preprocessing of prepared real radiographs (``data prepare``): black-border crop,
    # resize back to ``size``, 5th-95th percentile stretch
    from helpers.data.converters import preprocess_cxr

    image8, mask255 = preprocess_cxr(image, mask, size)
    return image8, (mask255 > 0).astype(np.uint8)


def generate_cxr(seed: int, size: int = config.CXR_IMAGE_SIZE, view: int = 0,
                 setting: Setting = "standard") -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic frontal chest radiograph and its lung mask.

    ``seed`` fixes the patient (anatomy) and, with ``view`` (0, 1, ...), the radiograph
    (pose, exposure, opacities): the same arguments always give the same pixels. Returns
    ``(image, mask)``: ``image`` uint8 (size, size), lungs dark; ``mask`` uint8 (size, size)
    with 1 on the visible lung fields and 0 elsewhere. ``size`` is the side in pixels
    (16..512); the geometry does not depend on it. ``setting`` is ``"standard"`` (the lessons'
    data) or ``"hard"`` (the same patient and radiograph made harder by :func:`harden`).

    Args:
        seed: the patient's seed.
        size: the side in pixels, 16 to :data:`MAX_SIZE`.
        view: the radiograph of the patient (0, 1, ...).
        setting: ``"standard"`` or ``"hard"``.

    Returns:
        ``(image, mask)`` as above.

    Raises:
        ValueError: ``size`` out of range or an unknown ``setting``.
    """
    size = int(size)
    if not 16 <= size <= MAX_SIZE:
        raise ValueError(f"size must be between 16 and {MAX_SIZE} pixels, got {size}")
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    rng = np.random.default_rng(seed)
    anatomy = _anatomy(rng)
    appearance_rng = rng if view == 0 else np.random.default_rng([int(seed), int(view)])
    appearance = _appearance(appearance_rng)
    if setting == "hard":
        appearance = harden(appearance, np.random.default_rng([int(seed), int(view), 7919]))
    return _render(anatomy, appearance, size)


# --------------------------------------------------------------------------------------
# The data set
# --------------------------------------------------------------------------------------

def patient_seed(seed: int, patient: int) -> int:
    """Seed of patient number ``patient`` in a set generated with ``seed``.

    Args:
        seed: the seed of the set.
        patient: the patient's number.

    Returns:
        The patient's seed.
    """
    return int(np.random.SeedSequence([int(seed), int(patient)]).generate_state(1)[0])


def plan(n_images: int, seed: int) -> list[tuple[str, int, int]]:
    """The files of a set: ``[(name, patient seed, view), ...]``, ``n_images`` entries,
    about one patient in four with a second view (``SYN_<pppp>_<k>.png``).

    Args:
        n_images: the number of radiographs.
        seed: the seed of the set.

    Returns:
        ``[(file name, patient seed, view), ...]``.
    """
    rng = np.random.default_rng([int(seed), 2024])
    entries: list[tuple[str, int, int]] = []
    patient = 0
    while len(entries) < n_images:
        patient += 1
        views = 2 if rng.random() < SECOND_VIEW_FRACTION and len(entries) + 2 <= n_images else 1
        for view in range(views):
            entries.append((f"SYN_{patient:04d}_{view}.png", patient_seed(seed, patient), view))
    return entries


def _make(task: tuple[str, int, int, int]) -> dict[str, bytes]:
    from helpers.data.io import encode_png

    name, seed, view, size = task
    image, mask = generate_cxr(seed, size, view)
    return {f"images/{name}": encode_png(image), f"masks/{name}": encode_png(mask * 255)}


def generate(folder: Path, *, force: bool = False, n_images: int = DEFAULTS["n_images"],
             size: int = DEFAULTS["size"], seed: int = DEFAULTS["seed"], workers: int = 2) -> Path:
    """Generate the synthetic chest X-ray set into ``folder`` unless it is already there.

    Writes ``n_images`` radiographs ``images/SYN_<pppp>_<k>.png`` (uint8 grey, ``size`` x
    ``size`` pixels) and their masks ``masks/SYN_<pppp>_<k>.png`` (0 background, 255 lung),
    plus ``dataset.json``. Reuses a complete set made with the same parameters; never
    deletes files it did not write unless ``force=True``. ``workers`` processes draw the
    images (it does not change the result). Returns ``folder``.

    Args:
        folder: where the set goes.
        force: delete the folder's other files and regenerate.
        n_images: the number of radiographs.
        size: their side in pixels.
        seed: the seed of the set.
        workers: processes drawing the images.

    Returns:
        ``folder``.

    Raises:
        ValueError: ``n_images < 1`` or a ``size`` out of range.
        DatasetError: ``folder`` holds files the generator did not write and ``force`` is False.
    """
    n_images, size, seed = int(n_images), int(size), int(seed)
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")
    if not 16 <= size <= MAX_SIZE:
        raise ValueError(f"size must be between 16 and {MAX_SIZE} pixels, got {size}")
    entries = plan(n_images, seed)
    planned = [f"{kind}/{name}" for name, _, _ in entries for kind in ("images", "masks")]
    request = {"generator": "cxr_synthetic", "version": GENERATOR_VERSION,
               "params": {"n_images": n_images, "size": size, "seed": seed}}
    tasks = [(name, patient, view, size) for name, patient, view in entries]
    return generate_into(Path(folder), request=request, planned=planned, tasks=tasks, make=_make,
                         force=force, desc="chest X-rays", workers=workers if n_images >= 40 else 1)


# --------------------------------------------------------------------------------------
# The generator contract (helpers.data): case names, one case, loading
# --------------------------------------------------------------------------------------

def case_name(number: int) -> str:
    """Name of patient (case) ``number`` (1-based): ``SYN_0007`` for 7; its radiographs are
    ``SYN_0007_0.png``, ``SYN_0007_1.png``.

    Args:
        number: the patient's number, from 1.

    Returns:
        The patient's name.
    """
    return f"SYN_{number:04d}"


def make_case(number: int, *, size: int = DEFAULTS["size"], seed: int = DEFAULTS["seed"],
              view: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Radiograph ``view`` (0, 1, ...) of patient ``number`` (1-based) of a set generated with
    ``seed``: ``(image uint8 (size, size), mask uint8 {0, 1})``, the pixels of
    ``images/<case_name(number)>_<view>.png`` before PNG encoding. Deterministic in
    ``(number, size, seed, view)``; :func:`generate_cxr` draws it from the patient's seed.

    Args:
        number: the patient's number, from 1.
        size: the side in pixels.
        seed: the seed of the set.
        view: the radiograph of the patient (0, 1, ...).

    Returns:
        ``(image, mask)`` as above.

    Raises:
        ValueError: ``number < 1``, or a ``size`` out of range.
    """
    if int(number) < 1:
        raise ValueError(f"patient numbers start at 1, got {number}")
    return generate_cxr(patient_seed(seed, int(number)), size, view)


def load_cases(folder: str | Path) -> list[tuple[Path, Path]]:
    """The checked ``(image_path, mask_path)`` pairs of a chest X-ray folder
    (``images/`` + ``masks/``), sorted by name: :func:`helpers.data.load_pairs`, which
    decodes every file and raises DatasetError naming the file and the fix.

    Args:
        folder: the data set folder.

    Returns:
        ``[(image_path, mask_path), ...]``, sorted by name.

    Raises:
        DatasetError: as :func:`helpers.data.load_pairs`.
    """
    from helpers.data.io import load_pairs

    return load_pairs(folder)


def read_case(image_path: str | Path, mask_path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read one pair: ``(image uint8 (H, W), mask uint8 {0, 1} (H, W) or None)`` through
    :mod:`helpers.data.io` (DatasetError naming the file when it cannot be read).

    Args:
        image_path: the radiograph's file.
        mask_path: the mask's file, or None for no mask.

    Returns:
        ``(image, mask)`` as above.

    Raises:
        DatasetError: a file cannot be read, or the mask is not binary.
    """
    from helpers.data.io import read_image, read_mask

    return read_image(image_path), None if mask_path is None else read_mask(mask_path)
