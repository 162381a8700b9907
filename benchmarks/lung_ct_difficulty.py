"""How hard is the synthetic lung CT set? The best threshold recipe versus the 3D U-Net.

Generates (or reuses) the default ``lung_ct_synthetic`` set and scores, per case, the
classical pipelines a reader might try before a U-Net, each at every threshold of a range
(``--thresholds``, default -800 ... -100 HU in steps of 50):

1. ``threshold``: voxels below the threshold;
2. ``3-D: no border, 2 largest, fill``: dark components touching the volume border removed
   (outside air, table foam), the two largest kept and their holes filled in 3-D;
3. ``slice-wise: no border, 2 largest, fill``: the border test and hole filling per axial
   slice (the trachea leaves through the top of the scan, so in 3-D it takes the lungs
   with it), the two largest 3-D components kept;
4. ``... + closing``: recipe 3 followed by a per-slice morphological closing (a "rolling
   ball" of 2 voxels, about 10 mm) that pulls in vessels and small nodules at the lung edge.

For every recipe it reports the threshold with the best mean volumetric Dice over all
cases (one threshold for the whole set, chosen with the answers: an optimistic baseline),
then the best recipe on the held-out cases of lesson 06 next to the U-Net's Dice, read
from the lesson 06 summary (``data/runs/summary/06_lung_ct_3d.json``) when the lesson has
been run. Run: ``python benchmarks/lung_ct_difficulty.py [--cases N]``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy import ndimage

from helpers import config, course, data
from helpers.data import lung_ct
from helpers.metrics import dice_numpy as dice  # the course's one Dice: dice(truth, prediction)

THRESHOLDS = tuple(float(t) for t in range(-800, -50, 50))


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


def close_slices(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """Per-slice binary closing with a disc of ``radius`` voxels, then holes filled."""
    disc = np.hypot(*np.mgrid[-radius:radius + 1, -radius:radius + 1]) <= radius + 0.01
    padded = np.pad(mask, ((radius, radius), (radius, radius), (0, 0)))
    closed = np.stack([ndimage.binary_closing(padded[:, :, k], disc) for k in range(mask.shape[2])], axis=2)
    return fill_slices(closed[radius:-radius, radius:-radius] | mask)


def baselines(ct: np.ndarray, threshold: float = -400.0) -> dict[str, np.ndarray]:
    """The recipes of the module docstring at one threshold (HU): name -> boolean mask."""
    air = ct < threshold
    inside = ndimage.binary_fill_holes(largest(drop_border(air)))
    slicewise = fill_slices(largest(drop_border_slices(air)))
    return {"threshold": air, "3-D: no border, 2 largest, fill": inside,
            "slice-wise: no border, 2 largest, fill": slicewise,
            "slice-wise ... + closing": close_slices(slicewise)}


def score_thresholds(cases, thresholds=THRESHOLDS) -> dict[str, np.ndarray]:
    """Dice of every recipe at every threshold on ``cases`` [(ct, truth)]: name -> (thresholds, cases)."""
    scores: dict[str, np.ndarray] = {}
    for j, (ct, truth) in enumerate(cases):
        for i, threshold in enumerate(thresholds):
            for name, mask in baselines(ct, threshold).items():
                scores.setdefault(name, np.zeros((len(thresholds), len(cases))))[i, j] = dice(truth, mask)
    return scores


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=lung_ct.DEFAULTS["n_cases"])
    parser.add_argument("--thresholds", type=float, nargs="+", default=THRESHOLDS,
                        help="HU thresholds to try (default: -800 ... -100 in steps of 50)")
    args = parser.parse_args(argv)
    folder = data.ensure_dataset("lung_ct_synthetic")
    pairs = lung_ct.load_cases(folder)[: args.cases]
    cases = []
    for ct_path, lung_path in pairs:
        ct, _ = data.load_nifti(ct_path)
        truth, _ = data.load_nifti(lung_path)
        cases.append((ct, truth > 0))
    thresholds = tuple(args.thresholds)
    scores = score_thresholds(cases, thresholds)
    print(f"Synthetic lung CT (generator {lung_ct.GENERATOR_VERSION}), {len(pairs)} cases; "
          f"thresholds {thresholds[0]:g} ... {thresholds[-1]:g} HU. Best threshold per recipe:")
    print(f"  {'recipe':<42s} {'HU':>6s}  mean   (min)")
    best_name, best_row, best_mean = None, 0, -1.0
    for name, table in scores.items():
        row = int(np.argmax(table.mean(axis=1)))
        mean = float(table[row].mean())
        print(f"  {name:<42s} {thresholds[row]:6g}  {mean:.3f}  ({table[row].min():.3f})")
        if mean > best_mean:
            best_name, best_row, best_mean = name, row, mean
    report = course.summary_dir() / "06_lung_ct_3d.json"
    if report.is_file():
        metrics = json.loads(report.read_text())["metrics"]
        if "volumetric_dice" in metrics:
            print(f"Side by side (mean volumetric Dice), scale {config.scale():g}:")
            rows = [(f"best threshold recipe ({best_name} at {thresholds[best_row]:g} HU), all cases", best_mean)]
            if "threshold_dice" in metrics:
                rows.append(("lesson 06's threshold recipe (threshold chosen on its training cases), "
                             "held-out cases", metrics["threshold_dice"]))
            rows.append(("3D U-Net of lesson 06, held-out cases", metrics["volumetric_dice"]))
            width = max(len(label) for label, _ in rows)
            for label, value in rows:
                print(f"  {label:<{width}s}  {value:.3f}")
    else:
        print(f"  3D U-Net: run lesson 06 first (no {report.name} in the run summaries)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
