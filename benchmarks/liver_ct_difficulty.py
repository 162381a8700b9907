"""How hard is the synthetic liver CT set? A threshold baseline for lesson 07.

The classical non-learning approach: keep the voxels in the liver's Hounsfield range,
keep the largest 3D connected component, fill holes slice by slice. The HU range is tuned
on the data itself (the best fixed range over a grid, chosen with the true masks, which
favours the baseline), so the Dice it reaches is an upper bound for this kind of method.
The lesson's 2D U-Net must score clearly above it (course bar: mean fold Dice >= 0.85).

    python benchmarks/liver_ct_difficulty.py [--cases 20] [--folder PATH]

Prints the Dice per case and the mean for the best range and for a textbook range.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import config  # noqa: E402
from helpers.data import liver_ct  # noqa: E402
from helpers.metrics import dice_numpy as dice  # noqa: E402  (the course's one Dice: dice(truth, prediction))

#: A textbook liver range for portal venous phase CT (HU).
TEXTBOOK_RANGE = (40.0, 110.0)


def smooth_volume(volume_hu: np.ndarray) -> np.ndarray:
    """3 x 3 in-plane median filter against noise (the baseline's only pre-processing)."""
    from scipy import ndimage

    return ndimage.median_filter(volume_hu, size=(3, 3, 1))


def threshold_liver(volume_hu: np.ndarray, low: float, high: float, *, smoothed: bool = False) -> np.ndarray:
    """Threshold baseline on a (X, Y, Z) HU volume: ``low <= HU <= high`` after a median
    filter (skipped when ``smoothed``), largest 3D connected component, holes filled per
    axial slice. Returns uint8 {0,1}."""
    from scipy import ndimage

    smooth = volume_hu if smoothed else smooth_volume(volume_hu)
    candidate = (smooth >= low) & (smooth <= high)
    candidate = ndimage.binary_opening(candidate, structure=np.ones((3, 3, 1), bool))
    labels, n = ndimage.label(candidate)
    if n == 0:
        return np.zeros(volume_hu.shape, np.uint8)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = labels == int(np.argmax(sizes))
    for k in range(largest.shape[2]):
        largest[:, :, k] = ndimage.binary_fill_holes(largest[:, :, k])
    return largest.astype(np.uint8)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=liver_ct.DEFAULTS["n_cases"])
    parser.add_argument("--folder", type=Path, default=None,
                        help="a 3D-IRCADb-layout folder (default: the synthetic set, generated if needed)")
    args = parser.parse_args(argv)
    folder = args.folder or liver_ct.generate(config.data_dir() / "liver_ct_synthetic")
    cases = liver_ct.load_cases(folder)[: args.cases]
    volumes = [(smooth_volume(vol), mask) for vol, mask, _ in
               (liver_ct.read_case(orig, liver) for orig, liver in cases)]

    grid = [(low, high) for low in (20.0, 30.0, 40.0, 50.0) for high in (90.0, 100.0, 120.0)]
    best_range, best_mean = None, -1.0
    for low, high in grid:
        mean = float(np.mean([dice(mask, threshold_liver(vol, low, high, smoothed=True)) for vol, mask in volumes]))
        if mean > best_mean:
            best_range, best_mean = (low, high), mean
    textbook = [dice(mask, threshold_liver(vol, *TEXTBOOK_RANGE, smoothed=True)) for vol, mask in volumes]
    best = [dice(mask, threshold_liver(vol, *best_range, smoothed=True)) for vol, mask in volumes]
    print(f"{'case':12s} {'textbook':>9s} {'best':>7s}")
    for (orig, _), a, b in zip(cases, textbook, best):
        print(f"{liver_ct.case_id(orig):12s} {a:9.3f} {b:7.3f}")
    print(f"threshold baseline, textbook range {TEXTBOOK_RANGE}: mean Dice {np.mean(textbook):.3f}")
    print(f"threshold baseline, best range {best_range} (tuned on the masks): mean Dice {best_mean:.3f}")
    print("course bar for the U-Net (lesson 07): mean fold Dice >= 0.85")
    return 0


if __name__ == "__main__":
    sys.exit(main())
