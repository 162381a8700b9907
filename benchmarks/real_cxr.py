"""How well does the chest X-ray model of lesson 04 segment real radiographs?

Evaluates a trained U-Net on a prepared real set (``python -m helpers data prepare
shenzhen|montgomery|mlinfn_cxr ... --size 256``) and prints, side by side with a global
Otsu threshold (best polarity per image, an optimistic baseline), the mean, the median
and the worst-decile Dice (the mean of the lowest tenth of the per-image scores, at least
one image). The U-Net is scored on its thresholded output as it is and after
``helpers.inference.postprocess`` (two largest components, holes filled). Then it says
*where* the U-Net errs: each true lung's bounding box is cut into a 3 x 3 grid (top, middle,
bottom x lateral, middle, medial; lateral is towards the image border) and the missed and
falsely added pixels of each zone are printed in per cent of all true lung pixels (false
positives belong to the nearest lung). Run it on the synthetic set too (``data/cxr_synthetic``)
to see which zones are hard only on real films. Writes a montage of the worst cases: the
radiograph with the true lung outline in green and the model's in red.

The model is ``--model PATH`` if given, else the lesson-04 model
(``data/runs/04_training/best.keras``), else a fresh reference run of
``helpers.training.CXR_RECIPE`` on the synthetic set at the current ``UNET_COURSE_SCALE``
(about two minutes on two CPU cores at scale 1), which is saved there.

    .venv/bin/python benchmarks/real_cxr.py PREPARED_FOLDER [--model PATH] [--out PNG]

One training run differs from the next by up to a few hundredths of real Dice (the seed
changes the split, the initialisation and the batch order), so compare recipes or
generator versions over several seeds: ``--seeds 42 1 2 3`` trains the reference recipe once
per seed (a few minutes each at scale 1) and prints, per seed and as a mean, the real Dice
and the synthetic test Dice of that seed's own held-out patients; ``--recipe epochs=10
patience_lr=2`` changes recipe entries for such a study:

    .venv/bin/python benchmarks/real_cxr.py PREPARED_FOLDER --seeds 42 1 2 3 [--recipe KEY=VALUE ...]

The montage goes to ``--out`` (default ``data/real_cxr_worst.png``, not committed: real
radiographs must not enter the repository).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import config, data  # noqa: E402
from helpers.metrics import dice_numpy  # noqa: E402  (the course's one Dice)
from helpers.tools import kernels  # noqa: E402

kernels.apply_kernel_env()  # TensorFlow settings of the lessons' kernels


def otsu_scores(pairs) -> list[float]:
    """Per-image Dice of a global Otsu threshold, with whichever polarity scores better."""
    from skimage.filters import threshold_otsu

    scores = []
    for image_path, mask_path in pairs:
        image, mask = data.read_image(image_path), data.read_mask(mask_path).astype(bool)
        level = threshold_otsu(image)
        scores.append(max(dice_numpy(mask, image <= level), dice_numpy(mask, image > level)))
    return scores


def summary(scores) -> dict:
    """Mean, median and worst-decile (mean of the lowest ceil(n/10) scores) of per-image Dice."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    if scores.size == 0:
        raise ValueError("no scores to summarise: the prepared folder holds no images.")
    k = max(1, math.ceil(scores.size / 10))
    return {"mean": float(scores.mean()), "median": float(np.median(scores)),
            "worst decile": float(scores[:k].mean())}


def zone_errors(truth: np.ndarray, predicted: np.ndarray, min_pixels: int = 50) -> tuple[np.ndarray, np.ndarray, int]:
    """Missed and falsely added pixels of one image by zone of the lung they belong to.

    Every connected component of ``truth`` with at least ``min_pixels`` pixels is a lung; its
    bounding box is cut into thirds vertically (top, middle, bottom) and horizontally
    (lateral, middle, medial, where lateral is the side nearer the image border). A missed
    pixel counts in the zone of its own lung, a false positive in the zone of the nearest lung
    (clipped to the box's edge zones when it lies outside the box).

    Args:
        truth: boolean mask ``(H, W)``.
        predicted: boolean mask of the same shape.
        min_pixels: smaller true components (specks) are not lungs.

    Returns:
        ``(false_positives, missed, true_pixels)``: two ``(3, 3)`` integer arrays (rows top to
        bottom, columns lateral to medial) and the number of true pixels.

    Raises:
        ValueError: the masks differ in shape or are not 2-D.
    """
    from scipy import ndimage

    truth, predicted = np.asarray(truth, bool), np.asarray(predicted, bool)
    if truth.ndim != 2 or truth.shape != predicted.shape:
        raise ValueError(f"zone_errors needs two 2-D masks of one shape, got {truth.shape} and {predicted.shape}.")
    false_positives, missed = np.zeros((3, 3), np.int64), np.zeros((3, 3), np.int64)
    labels, count = ndimage.label(truth)
    sizes = ndimage.sum(truth, labels, index=np.arange(1, count + 1))
    lungs = [k + 1 for k, size in enumerate(sizes) if size >= min_pixels]
    if not lungs:
        return false_positives, missed, int(truth.sum())
    kept = np.where(np.isin(labels, lungs), labels, 0)
    nearest_index = ndimage.distance_transform_edt(kept == 0, return_indices=True)[1]
    nearest = kept[tuple(nearest_index)]
    width = truth.shape[1]
    for lung in lungs:
        rows, cols = np.nonzero(kept == lung)
        top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
        on_image_left = cols.mean() < width / 2
        for counts, errors in ((false_positives, predicted & ~truth), (missed, truth & ~predicted)):
            ys, xs = np.nonzero(errors & (nearest == lung))
            vertical = np.clip((ys - top) * 3 // max(1, bottom - top + 1), 0, 2)
            horizontal = np.clip((xs - left) * 3 // max(1, right - left + 1), 0, 2)
            if not on_image_left:
                horizontal = 2 - horizontal      # column 0 is always the lateral third
            np.add.at(counts, (vertical, horizontal), 1)
    return false_positives, missed, int(truth.sum())


def print_zone_errors(pairs, probabilities) -> None:
    """Print the zone table of :func:`zone_errors` summed over a prepared set."""
    from helpers import inference

    false_positives, missed, true_pixels = np.zeros((3, 3)), np.zeros((3, 3)), 0
    for (_, mask_path), probability in zip(pairs, probabilities):
        truth = data.read_mask(mask_path).astype(bool)
        predicted = inference.resize_to(probability, truth.shape) > 0.5
        fp, fn, n = zone_errors(truth, predicted)
        false_positives += fp
        missed += fn
        true_pixels += n
    scale = 100.0 / max(true_pixels, 1)
    print("\nwhere the U-Net errs, % of true lung pixels (lung box in thirds; columns lateral, middle, medial)")
    print(f"{'':8s} {'missed':>22s}   {'false positive':>22s}")
    for row, name in enumerate(("top", "middle", "bottom")):
        cells = lambda a: " ".join(f"{value * scale:6.2f}" for value in a[row])  # noqa: E731
        print(f"{name:8s} {cells(missed)}   {cells(false_positives)}")


def get_model(path: Path | None):
    """The model to evaluate (see the module docstring) and a phrase saying where it came from."""
    from helpers import training

    if path is not None:
        if not path.is_file():
            raise SystemExit(f"{path} does not exist: pass the .keras file of a trained model "
                             f"(lesson 04 saves data/runs/04_training/best.keras).")
        return training.load_model(path), str(path)
    default = config.runs_dir("04_training") / "best.keras"
    if default.is_file():
        return training.load_model(default), "lesson 04 model (data/runs/04_training/best.keras)"
    start = time.perf_counter()
    model = training.load_or_train_cxr_model(verbose=2)
    return model, f"fresh reference run at scale {config.scale():g} ({time.perf_counter() - start:.0f} s)"


def montage(pairs, predictions, scores, path: Path, n: int = 8) -> Path:
    """Save the ``n`` worst cases: radiograph, true outline (green), predicted outline (red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers import inference

    worst = np.argsort(scores, kind="stable")[:n]
    cols = min(4, len(worst))
    rows = int(math.ceil(len(worst) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.5 * cols, 2.7 * rows), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, worst):
        image_path, mask_path = pairs[index]
        image, truth = data.read_image(image_path), data.read_mask(mask_path)
        predicted = inference.resize_to(predictions[index], truth.shape) > 0.5
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.contour(truth, levels=[0.5], colors="lime", linewidths=0.8)
        if predicted.any():
            ax.contour(predicted, levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(f"{Path(image_path).stem}  Dice {scores[index]:.3f}", fontsize=7, pad=2)
    fig.suptitle("worst cases: truth green, model red", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def parse_recipe(items) -> dict:
    """``["epochs=10", "learning_rate=1e-3"]`` -> ``{"epochs": 10, "learning_rate": 0.001}``
    (values read as Python literals, else kept as text); unknown keys are refused."""
    import ast

    from helpers import training

    overrides = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SystemExit(f"--recipe {item!r}: write KEY=VALUE, e.g. epochs=10")
        known = sorted(training.CXR_RECIPE.as_dict())
        if key not in known:
            raise SystemExit(f"--recipe {item!r}: {key!r} is not a recipe entry; known: {known}")
        try:
            overrides[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            overrides[key] = text.strip()
    return overrides


def seed_study(real_pairs, seeds, synthetic_pairs=None, run_root: Path | None = None, **overrides) -> list[dict]:
    """Train the reference recipe once per seed and score each model.

    Each run splits ``synthetic_pairs`` (default: the embedded synthetic set) by patient with
    its own seed, trains on the training part (``helpers.training.train_cxr_reference``,
    ``overrides`` replacing recipe entries) and is scored on ``real_pairs`` and on its own
    held-out synthetic patients. Models go to ``run_root/seed_<seed>`` (default: a temporary
    folder). Returns one row per seed: ``seed``, ``epochs`` (run), ``synthetic_test`` (mean
    Dice), and the real ``mean``, ``median`` and ``worst decile``.
    """
    import tempfile

    from helpers import inference, training

    if synthetic_pairs is None:
        synthetic_pairs = data.load_pairs(data.ensure_dataset("cxr_synthetic"))
    synthetic_pairs = list(synthetic_pairs)
    fractions = overrides.get("fractions", training.CXR_RECIPE.fractions)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(run_root) if run_root is not None else Path(scratch)
        for seed in seeds:
            model, history = training.train_cxr_reference(run_dir=root / f"seed_{seed}", pairs=synthetic_pairs,
                                                          seed=int(seed), verbose=0, **overrides)
            test_pairs = training.split_by_patient(synthetic_pairs, fractions, seed=int(seed))[-1]
            real = [row["dice"] for row in
                    inference.per_case_metrics(real_pairs, inference.predict_dataset(model, real_pairs))]
            rows.append({"seed": int(seed), "epochs": len(history.history["loss"]),
                         "synthetic_test": inference.evaluate_cxr(model, test_pairs), **summary(real)})
            print(f"seed {seed}: real mean Dice {rows[-1]['mean']:.3f}, synthetic test {rows[-1]['synthetic_test']:.3f}",
                  flush=True)
    return rows


def print_seed_study(rows) -> None:
    """Per-seed rows, then the mean over seeds and the range of the real mean Dice."""
    print(f"\n{'seed':>6}  {'epochs':>6}  {'real mean':>9}  {'median':>6}  {'worst decile':>12}  {'synthetic test':>14}")
    for row in rows:
        print(f"{row['seed']:>6}  {row['epochs']:>6}  {row['mean']:9.3f}  {row['median']:6.3f}  "
              f"{row['worst decile']:12.3f}  {row['synthetic_test']:14.3f}")
    means = {key: float(np.mean([row[key] for row in rows]))
             for key in ("mean", "median", "worst decile", "synthetic_test")}
    spread = [row["mean"] for row in rows]
    print(f"{'mean':>6}  {'':>6}  {means['mean']:9.3f}  {means['median']:6.3f}  {means['worst decile']:12.3f}  "
          f"{means['synthetic_test']:14.3f}")
    print(f"real mean Dice over {len(rows)} seed(s): {means['mean']:.3f} (range {min(spread):.3f}-{max(spread):.3f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a prepared real set (images/ and masks/)")
    parser.add_argument("--model", type=Path, default=None, help="a trained .keras model (default: lesson 04's)")
    parser.add_argument("--out", type=Path, default=None,
                        help="montage of the worst cases (default data/real_cxr_worst.png)")
    parser.add_argument("--n-worst", type=int, default=8, help="cases in the montage")
    parser.add_argument("--csv", type=Path, default=None, help="also write the per-image Dice table here")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train the reference recipe once per seed and report each (no montage)")
    parser.add_argument("--recipe", nargs="+", default=None, metavar="KEY=VALUE",
                        help="recipe entries to change for --seeds, e.g. epochs=10 patience_lr=2")
    args = parser.parse_args(argv)

    from helpers import inference

    pairs = data.load_pairs(args.folder)
    if args.recipe and not args.seeds:
        raise SystemExit("--recipe changes the training of --seeds runs: give --seeds too.")
    if args.seeds:
        if args.model is not None:
            raise SystemExit("--seeds trains its own models: leave out --model.")
        overrides = parse_recipe(args.recipe)
        print(f"data: {args.folder.name} ({len(pairs)} images); seeds {args.seeds}; recipe changes {overrides or 'none'}")
        print_seed_study(seed_study(pairs, args.seeds, **overrides))
        return 0
    model, origin = get_model(args.model)
    print(f"model: {origin}")
    print(f"data: {args.folder.name} ({len(pairs)} images)")
    probs = inference.predict_dataset(model, pairs)
    rows = inference.per_case_metrics(pairs, probs)
    unet = [row["dice"] for row in rows]
    cleaned = [row["dice"] for row in inference.per_case_metrics(pairs, probs, postprocess=inference.postprocess)]
    otsu = otsu_scores(pairs)
    table = {"U-Net": summary(unet), "U-Net + postprocess": summary(cleaned), "Otsu (best polarity)": summary(otsu)}
    width = max(len(name) for name in ("Dice", *table))
    print(f"\n{'Dice'.ljust(width)}  {'mean':>6}  {'median':>6}  {'worst decile':>12}")
    for name, stats in table.items():
        print(f"{name.ljust(width)}  {stats['mean']:6.3f}  {stats['median']:6.3f}  {stats['worst decile']:12.3f}")
    print_zone_errors(pairs, probs)
    order = np.argsort(unet, kind="stable")[:args.n_worst]
    print("\nworst images: " + ", ".join(f"{rows[i]['name']} {unet[i]:.3f}" for i in order))
    if args.csv is not None:
        for row, score in zip(rows, otsu):
            row["otsu_dice"] = score
        print(f"table: {inference.save_table_csv(rows, args.csv, force=True)}")
    out = args.out or config.data_dir() / "real_cxr_worst.png"
    print(f"montage: {montage(pairs, probs, unet, out, n=args.n_worst)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
