"""How hard is the synthetic lung CT set? Threshold baselines versus the 3D U-Net.

Generates (or reuses) the default ``lung_ct_synthetic`` set and scores, per case, four
classical pipelines that a reader might try before a U-Net:

1. ``threshold``: voxels below -400 HU;
2. ``+ 2 largest``: the same, keeping the two largest 3-D connected components;
3. ``+ no border, fill``: components touching the volume border removed first (outside air,
   table foam), then the two largest kept and their holes filled (vessels, nodules);
4. ``slice-wise no border``: the border test and hole filling done per axial slice (the
   trachea leaves through the top of the scan, so in 3-D it takes the lungs with it).

It prints the mean volumetric Dice of each next to the U-Net's, read from the lesson 06
summary (``data/runs/summary/06_lung_ct_3d.json``) when the lesson has been run.
Run: ``python benchmarks/lung_ct_difficulty.py [--cases N]``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy import ndimage

from helpers import config, course, data
from helpers.data import lung_ct


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)


def largest(mask: np.ndarray, n: int = 2) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count <= n:
        return mask.astype(bool)
    sizes = ndimage.sum(mask, labels, index=range(1, count + 1))
    keep = 1 + np.argsort(sizes)[::-1][:n]
    return np.isin(labels, keep)


def drop_border(mask: np.ndarray) -> np.ndarray:
    labels, _count = ndimage.label(mask)
    border = np.unique(np.concatenate([
        labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(), labels[:, -1].ravel(),
        labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]))
    return mask & ~np.isin(labels, border[border > 0])


def drop_border_slices(mask: np.ndarray) -> np.ndarray:
    """``drop_border`` applied to every axial slice ``mask[:, :, k]`` (2-D components)."""
    out = np.zeros_like(mask, dtype=bool)
    for k in range(mask.shape[2]):
        labels, _count = ndimage.label(mask[:, :, k])
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        out[:, :, k] = mask[:, :, k] & ~np.isin(labels, border[border > 0])
    return out


def fill_slices(mask: np.ndarray) -> np.ndarray:
    return np.stack([ndimage.binary_fill_holes(mask[:, :, k]) for k in range(mask.shape[2])], axis=2)


def baselines(ct: np.ndarray, threshold: float = -400.0) -> dict[str, np.ndarray]:
    air = ct < threshold
    two = largest(air)
    inside = ndimage.binary_fill_holes(largest(drop_border(air)))
    best = fill_slices(largest(drop_border_slices(air)))
    return {"threshold": air, "+ 2 largest": two, "+ no border, fill": inside,
            "slice-wise no border": best}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=lung_ct.DEFAULTS["n_cases"])
    parser.add_argument("--threshold", type=float, default=-400.0)
    args = parser.parse_args(argv)
    folder = data.ensure_dataset("lung_ct_synthetic")
    pairs = lung_ct.load_cases(folder)[: args.cases]
    import nibabel as nib

    scores: dict[str, list[float]] = {}
    for ct_path, lung_path in pairs:
        ct = np.asarray(nib.load(ct_path).dataobj)
        truth = np.asarray(nib.load(lung_path).dataobj) > 0
        for name, mask in baselines(ct, args.threshold).items():
            scores.setdefault(name, []).append(dice(mask, truth))
    print(f"Synthetic lung CT, {len(pairs)} cases, threshold {args.threshold:g} HU: mean (min) Dice")
    for name, values in scores.items():
        print(f"  {name:<20s} {np.mean(values):.3f}  ({np.min(values):.3f})")
    report = course.summary_dir() / "06_lung_ct_3d.json"
    if report.is_file():
        metrics = json.loads(report.read_text())["metrics"]
        if "volumetric_dice" in metrics:
            print(f"  {'3D U-Net (lesson 06)':<20s} {metrics['volumetric_dice']:.3f}  (held-out cases, scale {config.scale():g})")
    else:
        print(f"  3D U-Net: run lesson 06 first (no {report})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
