"""The challenge's finale end to end, as the instructor guide describes it (lesson 09).

1. ``python -m helpers challenge make``: the hidden test set (100 hard synthetic radiographs)
   from a secret seed into ``--out`` (default: a scratch folder under ``data/``);
2. four teams hand in a folder each into ``<out>/submissions/``:

   * ``baseline``: lesson 09's baseline (its model ``data/runs/09_challenge/best.keras``, or a
     fresh run of ``challenge.BASELINE_CHANGES``), masks post-processed as the lesson decides;
   * ``baseline-raw``: the same model's thresholded masks, not post-processed;
   * ``augmented``: one idea of the lesson's checklist, trained here: lesson 04's recipe for
     16 epochs with augmentation towards the test images' poses (rotation 15 degrees, shift
     0.08, zoom 0.10), post-processed;
   * ``late-team``: masks left at the model's 128 pixels (invalid: the scorer names it);

3. ``python -m helpers challenge score``: the leaderboard (page and CSV);
4. with ``--screenshot PNG``: the page in headless Chromium (``/usr/bin/chromium``), cut to
   its top and stored with a small palette (the instructor guide's figure, docs/instructor-guide.md).

Prints the time of each step and the scorer's summary. Nothing here is needed by a workshop:
it measures the numbers and takes the picture of the finale section of docs/instructor-guide.md.

    .venv/bin/python benchmarks/challenge_finale.py [--out DIR] [--seed SECRET] [--screenshot PNG]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import challenge, config  # noqa: E402
from helpers.tools import kernels  # noqa: E402

kernels.apply_kernel_env()  # TensorFlow settings of the lessons' kernels

#: The checklist idea trained by this script: stronger pose augmentation, lesson 04's 16 epochs.
AUGMENTED = {"epochs": 16, "augment": {"flip": False, "max_rotation": 15, "max_shift": 0.08, "max_zoom": 0.10,
                                       "brightness": 0.05, "contrast": 0.05}}


def _cli(*args: str) -> int:
    started = time.perf_counter()
    code = subprocess.run([sys.executable, "-m", "helpers", "challenge", *args], cwd=ROOT,
                          env={**__import__("os").environ, "UNET_COURSE_BOOTSTRAPPED": "1"}).returncode
    print(f"[{time.perf_counter() - started:.0f} s] python -m helpers challenge {' '.join(args)} -> exit {code}")
    return code


def _model(run_dir: Path, **changes):
    from helpers import training

    path = run_dir / "best.keras"
    if path.is_file():
        print(f"using {path}")
        return training.load_model(path)
    started = time.perf_counter()
    model, _ = training.train_cxr_reference(run_dir=run_dir, verbose=0, **changes)
    print(f"[{time.perf_counter() - started:.0f} s] trained {changes} into {run_dir}")
    return model


def screenshot(page: Path, png: Path, height: int = 1600) -> None:
    """The top ``height`` CSS pixels of ``page`` in headless Chromium, as a small palette PNG."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    raw = png.with_suffix(".raw.png")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        view = browser.new_page(viewport={"width": 1150, "height": height})
        view.goto(page.as_uri())
        view.screenshot(path=str(raw), full_page=False)
        browser.close()
    image = Image.open(raw).convert("RGB")
    image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
    image.quantize(colors=224, method=Image.Quantize.FASTOCTREE).save(png, optimize=True)
    raw.unlink()
    print(f"screenshot: {png} ({png.stat().st_size // 1024} kB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=config.data_dir() / "challenge_finale_demo")
    parser.add_argument("--seed", default="finale-demo-seed-7f3a")
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args(argv)
    from helpers import inference

    shutil.rmtree(args.out, ignore_errors=True)
    started = time.perf_counter()
    if _cli("make", "--seed", args.seed, "--out", str(args.out)) != 0:
        return 1
    images = args.out / "handout" / "images"
    submissions = args.out / "submissions"
    baseline = _model(config.runs_dir("09_challenge"), **challenge.BASELINE_CHANGES)
    names, masks = challenge.predict_images(baseline, images, postprocess=inference.postprocess)
    challenge.write_submission(masks, names, submissions / "baseline", team="Baseline",
                               method="lesson 09's baseline: lesson 04's recipe, 8 epochs; post-processed")
    names, masks = challenge.predict_images(baseline, images)
    challenge.write_submission(masks, names, submissions / "baseline-raw", team="Baseline, raw masks",
                               method="the baseline without post-processing")
    augmented = _model(config.runs_dir("09_challenge_augmented"), **AUGMENTED)
    names, masks = challenge.predict_images(augmented, images, postprocess=inference.postprocess)
    challenge.write_submission(masks, names, submissions / "augmented", team="Pose augmentation",
                               method="lesson 04's recipe, 16 epochs, rotations up to 15 degrees, shifts 0.08, "
                                      "zoom 0.10; post-processed")
    from helpers.data.io import write_png

    late = submissions / "late-team"
    challenge.write_submission(masks, names, late, team="Late team", method="forgot to resize")
    for name, mask in zip(names[:5], masks[:5]):
        write_png(inference.resize_to(mask, (128, 128)) * 255, late / name, force=True)
    code = _cli("score", str(submissions), "--challenge", str(args.out))
    print(f"[{time.perf_counter() - started:.0f} s] the whole finale")
    if args.screenshot:
        screenshot(args.out / "leaderboard" / "index.html", args.screenshot)
    return 0 if code in (0, 1) else code


if __name__ == "__main__":
    sys.exit(main())
