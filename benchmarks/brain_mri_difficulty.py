"""How hard is the synthetic BraTS set? Intensity-threshold baselines per tumour region.

Run from the repository root::

    python benchmarks/brain_mri_difficulty.py            # default set (24 cases), ~1 min
    python benchmarks/brain_mri_difficulty.py --folder data/brats_synthetic

A radiologist's first attempt at segmenting a glioma with a threshold is: the whole tumour
(WT) is what is bright on FLAIR, the enhancing tumour (ET) is what is bright on T1ce, and
the tumour core (TC) is the enhancing tumour with the holes it encloses filled. This
script gives those baselines every advantage:

* ``raw``: one threshold on the raw intensities, tuned on the training cases;
* ``z-score``: intensities normalised per volume (mean 0, SD 1 inside the brain, as in
  the lesson), one threshold tuned on the training cases;
* ``oracle``: the best threshold for each test case on its own (chosen with its ground
  truth, an upper bound for any threshold rule).

All are evaluated with the BraTS region Dice on the held-out cases (the last quarter of
the set). The U-Net of lesson 08 is compared with them when its summary is on disk
(``data/runs/summary/08_brain_tumour.json``). The synthetic data are meant to make every
threshold baseline score clearly below the U-Net, WT and ET above all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import config  # noqa: E402
from helpers.data import brain_mri, ensure_dataset  # noqa: E402
from helpers.metrics import brats_regions, dice_numpy  # noqa: E402  (the course's one Dice and regions)

#: The BraTS regions, in the order printed (their labels: helpers.metrics.BRATS_REGION_LABELS).
REGIONS = ("WT", "TC", "ET")
#: Modality whose bright voxels make each region for the threshold rule.
RULE_CHANNEL = {"WT": "flair", "TC": "t1ce", "ET": "t1ce"}


def zscore(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    values = volume[brain]
    return np.where(brain, (volume - values.mean()) / (values.std() + 1e-6), 0.0)


def rule(region: str, channel: np.ndarray, threshold: float, brain: np.ndarray) -> np.ndarray:
    """The threshold rule for one region: bright voxels, holes filled slice by slice for TC."""
    from scipy.ndimage import binary_fill_holes

    mask = (channel > threshold) & brain
    if region == "TC":
        mask = np.stack([binary_fill_holes(mask[:, :, z]) for z in range(mask.shape[2])], axis=2)
    return mask


def load(cases, normalise: bool):
    loaded = []
    for modality_paths, seg_path in cases:
        image, seg = brain_mri.read_case(modality_paths, seg_path)
        brain = image[..., 0] > 0
        channels = {}
        for k, name in enumerate(brain_mri.MODALITIES):
            channels[name] = zscore(image[..., k], brain) if normalise else image[..., k]
        loaded.append((channels, brats_regions(seg), brain))
    return loaded


def candidate_thresholds(loaded, modality: str) -> np.ndarray:
    values = np.concatenate([channels[modality][brain] for channels, _, brain in loaded])
    return np.unique(np.percentile(values, np.linspace(50, 99.9, 60)))


def tune(loaded, region: str) -> float:
    modality = RULE_CHANNEL[region]
    best, best_score = None, -1.0
    for threshold in candidate_thresholds(loaded, modality):
        score = np.mean([dice_numpy(regions[region], rule(region, ch[modality], threshold, brain))
                         for ch, regions, brain in loaded])
        if score > best_score:
            best, best_score = float(threshold), float(score)
    return best


def evaluate(train, test) -> dict[str, float]:
    results = {}
    for region in REGIONS:
        threshold = tune(train, region)
        modality = RULE_CHANNEL[region]
        results[region] = float(np.mean([
            dice_numpy(regions[region], rule(region, ch[modality], threshold, brain))
            for ch, regions, brain in test]))
    return results


def oracle(test) -> dict[str, float]:
    """Mean over cases of the best Dice any threshold reaches on that case alone."""
    results = {}
    for region in REGIONS:
        scores = []
        for case in test:
            threshold = tune([case], region)
            channels, regions, brain = case
            scores.append(dice_numpy(regions[region], rule(region, channels[RULE_CHANNEL[region]], threshold, brain)))
        results[region] = float(np.mean(scores))
    return results


def unet_results() -> dict[str, float] | None:
    path = config.runs_dir() / "summary" / "08_brain_tumour.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())["metrics"]
    return {region: metrics.get(f"dice_{region}") for region in REGIONS}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None,
                        help="BraTS-layout folder (default: the synthetic set, generated if needed)")
    args = parser.parse_args(argv)
    folder = args.folder or ensure_dataset("brats_synthetic")
    cases = brain_mri.load_cases(folder)
    n_test = max(1, len(cases) // 4)
    train_cases, test_cases = cases[:-n_test], cases[-n_test:]
    print(f"{folder}: {len(train_cases)} cases to tune thresholds, {len(test_cases)} held out")
    rows = {}
    raw_train, raw_test = load(train_cases, False), load(test_cases, False)
    rows["raw threshold"] = evaluate(raw_train, raw_test)
    z_train, z_test = load(train_cases, True), load(test_cases, True)
    rows["z-score threshold"] = evaluate(z_train, z_test)
    rows["oracle per-case threshold"] = oracle(z_test)
    unet = unet_results()
    if unet:
        rows["U-Net (lesson 08)"] = unet
    print(f"\n{'method':28s} " + " ".join(f"{r:>6s}" for r in REGIONS))
    for name, values in rows.items():
        print(f"{name:28s} " + " ".join(
            f"{values[r]:6.3f}" if values.get(r) is not None else f"{'-':>6s}" for r in REGIONS))
    if not unet:
        print("\n(run answers/08_brain_tumour to add the U-Net row)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
