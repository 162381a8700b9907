"""How hard is the synthetic chest X-ray set? Global Otsu threshold versus the reference U-Net.

Prints the mean Dice, on the held-out (test) patients of the default set, of

* a global Otsu threshold per image, with whichever polarity (dark or bright = lung)
  scores better against the true mask (an optimistic baseline), and
* the reference U-Net of ``helpers.training.CXR_RECIPE`` after its default training
  (skipped with ``--otsu-only``; a few minutes on a laptop CPU),

and writes ``benchmarks/figures/cxr_montage.png``: 16 radiographs with their lung masks
outlined in red. The course needs Otsu clearly below the U-Net (Otsu <= 0.70, U-Net >= 0.95).

    .venv/bin/python benchmarks/cxr_difficulty.py [--otsu-only] [--n-images N] [--size S]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import config, data  # noqa: E402
from helpers.metrics import dice_numpy  # noqa: E402  (the course's one Dice)
from helpers.tools import kernels  # noqa: E402

kernels.apply_kernel_env()  # TensorFlow settings of the lessons' kernels

FIGURE = ROOT / "benchmarks" / "figures" / "cxr_montage.png"


def otsu_dice(pairs) -> tuple[float, float]:
    """Mean Dice of the best-polarity global Otsu threshold, and the fraction of images
    where "dark = lung" was the better polarity."""
    from skimage.filters import threshold_otsu

    scores, dark = [], []
    for image_path, mask_path in pairs:
        image, mask = data.read_image(image_path), data.read_mask(mask_path).astype(bool)
        level = threshold_otsu(image)
        below, above = dice_numpy(mask, image <= level), dice_numpy(mask, image > level)
        scores.append(max(below, above))
        dark.append(below >= above)
    return float(np.mean(scores)), float(np.mean(dark))


def split(pairs, seed: int):
    """Held-out test part of ``pairs``, split by patient as the lessons do."""
    try:
        from helpers import training
    except ImportError:
        training = None
    if training is not None and hasattr(training, "split_by_patient"):
        fractions = training.CXR_RECIPE.fractions
        return training.split_by_patient(pairs, fractions, seed=seed)[-1]
    patients = sorted({data.patient_id(image) for image, _ in pairs})
    rng = np.random.default_rng(seed)
    held_out = set(rng.permutation(patients)[: max(1, round(0.15 * len(patients)))].tolist())
    return [pair for pair in pairs if data.patient_id(pair[0]) in held_out]


def unet_dice(pairs, test_pairs, run_dir: Path, seed: int, **overrides) -> float:
    """Train the reference U-Net (default recipe) on ``pairs`` and return its test Dice."""
    from helpers import inference, training

    model, _ = training.train_cxr_reference(run_dir=run_dir, pairs=pairs, seed=seed, verbose=2, **overrides)
    return inference.evaluate_cxr(model, test_pairs)


def montage(pairs, path: Path, n: int = 16) -> Path:
    """Save ``n`` radiographs (4 x 4) with the mask outlined in red, about 700 x 700 pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    picks = np.linspace(0, len(pairs) - 1, n).round().astype(int)
    side = int(np.ceil(np.sqrt(n)))
    fig, axes = plt.subplots(side, side, figsize=(7, 7), dpi=100)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, picks):
        image_path, mask_path = pairs[index]
        ax.imshow(data.read_image(image_path), cmap="gray", vmin=0, vmax=255, interpolation="lanczos")
        ax.contour(data.read_mask(mask_path), levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(image_path.name, fontsize=7, pad=2)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.97, wspace=0.04, hspace=0.12)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas = fig.canvas
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    plt.close(fig)
    # a 256-colour palette keeps the file small (noisy radiographs compress badly)
    Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--otsu-only", action="store_true", help="skip training the U-Net")
    parser.add_argument("--n-images", type=int, default=config.CXR_N_IMAGES, help="size of the generated set")
    parser.add_argument("--size", type=int, default=config.CXR_IMAGE_SIZE, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=config.SEED)
    parser.add_argument("--folder", type=Path, default=None,
                        help="data folder (default: data/cxr_synthetic for the default set, else a temporary one)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--no-figure", action="store_true", help="do not write the montage")
    args = parser.parse_args(argv)

    defaults = (args.n_images, args.size, args.seed) == (config.CXR_N_IMAGES, config.CXR_IMAGE_SIZE, config.SEED)
    with tempfile.TemporaryDirectory(prefix="cxr_difficulty_") as scratch:
        folder = args.folder or (None if defaults else Path(scratch) / "cxr")
        start = time.perf_counter()
        folder = data.ensure_dataset("cxr_synthetic", folder=folder, n_images=args.n_images, size=args.size,
                                     seed=args.seed)
        made = time.perf_counter() - start
        pairs = data.load_pairs(folder)
        test_pairs = split(pairs, args.seed)
        n_patients = len({data.patient_id(image) for image, _ in test_pairs})
        print(f"data: {folder} ({len(pairs)} images, ready in {made:.1f} s); "
              f"test part: {len(test_pairs)} images of {n_patients} patients")
        rows = []
        otsu, dark = otsu_dice(test_pairs)
        rows.append(("global Otsu (best polarity per image)", otsu, "<= 0.70"))
        print(f"  (Otsu: 'dark = lung' was the better polarity on {dark:.0%} of the images)")
        if not args.otsu_only:
            overrides = {} if args.epochs is None else {"epochs": args.epochs}
            start = time.perf_counter()
            score = unet_dice(pairs, test_pairs, Path(scratch) / "run", args.seed, **overrides)
            rows.append((f"reference U-Net ({time.perf_counter() - start:.0f} s training)", score, ">= 0.95"))
        if not args.no_figure:
            print(f"montage: {montage(pairs, FIGURE)}")

    width = max(len(row[0]) for row in rows)
    print(f"\n{'method'.ljust(width)}  test Dice  target")
    for name, score, target in rows:
        print(f"{name.ljust(width)}  {score:9.3f}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
