"""The ledger of what each lesson's prose says about its run (see ``tests/claims.py``).

One list per answer notebook. A :class:`Claim` binds a sentence to the output that shows
it; a :class:`Given` names a number of the prose that is not about the run (a definition,
a worked example, an exercise's expected value for a fixed input, a recipe constant, a
target) and says why. ``tests/test_claims.py`` checks both against the committed outputs.
When a re-run changes an output, rewrite the sentence, then its claim here.
"""

import re

from claims import Claim, Given

DEFINITION = "a definition or worked example, true whatever the run prints"
EXPECTED = "an exercise's expected value for a fixed input, asserted by its check"
CONSTANT = "a setting the lesson's code uses, visible in the cell it describes"
TARGET = "a target or a rule of thumb, not a measurement of this run"
BENCHMARK = "measured by a script in benchmarks/ (the sentence names it), not by this run"
TIME = "the lesson's Time line, checked by tests/test_release.py against the measured course run"


def _number(outputs: str, pattern: str) -> float | None:
    match = re.search(pattern, outputs)
    return float(match.group(1)) if match else None


def _at_least(outputs: str, pattern: str, bound: float) -> str | None:
    value = _number(outputs, pattern)
    if value is None:
        return f"no output matches {pattern!r}"
    return None if value >= bound else f"the run printed {value}, below {bound}"


def _falls(pattern: str):
    """The first printed value of ``pattern`` is at least 1.5 times its last (a loss that falls fast)."""
    def check(outputs: str, said: tuple[str, ...]) -> str | None:
        match = re.search(pattern, outputs)
        if not match:
            return f"no output matches {pattern!r}"
        first, last = (float(value) for value in match.groups())
        return None if last <= first / 1.5 else f"the loss went from {first} to {last} only"
    return check


def _above_in_first_half(outputs: str, said: tuple[str, ...]) -> str | None:
    """The fit log's ``val_dice`` passes the stated value by the middle epoch."""
    values = [float(value) for value in re.findall(r" - val_dice: ([\d.]+)", outputs)]
    if not values:
        return "no val_dice in the outputs"
    first = next((epoch for epoch, value in enumerate(values, 1) if value > float(said[0])), None)
    if first is None or first > len(values) / 2:
        return f"val_dice first passes {said[0]} at epoch {first} of {len(values)}"
    return None


def _reductions(outputs: str, said: tuple[str, ...]) -> str | None:
    """The epochs the prose says the learning rate was reduced at are the log's."""
    logged = [int(epoch) for epoch in re.findall(r"Epoch (\d+): ReduceLROnPlateau reducing", outputs)]
    stated = [int(epoch) for epoch in re.findall(r"\d+", said[0])]
    return None if logged == stated else f"the log reduces the rate at epochs {logged}, the prose says {stated}"


def _all_epochs_ran(outputs: str, said: tuple[str, ...]) -> str | None:
    """Every epoch of ``fit`` ran (no early-stopping line) and there were as many as the prose says."""
    runs = re.findall(r"^Epoch (\d+)/(\d+)$", outputs, flags=re.M)
    if not runs:
        return "no fit log in the outputs"
    last, total = (int(value) for value in runs[-1])
    if re.search(r"Epoch \d+: early stopping", outputs) or last != total:
        return f"training stopped at epoch {last} of {total}"
    return None if total == int(said[0]) else f"the log ran {total} epochs, the prose says {said[0]}"


def _val_loss_near_lowest(margin: float):
    """The fit log's last ``val_loss`` is within ``margin`` of its lowest."""
    def check(outputs: str, said: tuple[str, ...]) -> str | None:
        losses = [float(value) for value in re.findall(r" - val_loss: ([\d.]+)", outputs)]
        if not losses:
            return "no val_loss in the outputs"
        return None if losses[-1] <= min(losses) * (1 + margin) else (
            f"the last val_loss {losses[-1]} is more than {margin:.0%} above the lowest {min(losses)}")
    return check


def _spacing_times(factor: float):
    """Lesson 06: the coarse grid's spacing (``factor`` 2) or half of it (1), in mm, from the
    CT spacing the lesson prints; the prose's values, as a set, must match."""
    def check(outputs: str, stated: tuple[str, ...]) -> str | None:
        match = re.search(r"spacing \[([\d.]+), ([\d.]+), ([\d.]+)\] mm", outputs)
        if not match:
            return "the case's spacing is not printed"
        measured = sorted({round(float(value) * factor, 1) for value in match.groups()})
        said = sorted({float(value) for value in stated})
        return None if measured == said else f"the printed spacing gives {measured} mm, the prose {said}"
    return check


def _tumour_specificity(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 08's table: every tumour class's specificity >= 0.99, the background's lower."""
    rows = dict(re.findall(r"^(background|necrosis \(1\)|oedema \(2\)|enhancing \(4\))\s+[\d.]+\s+[\d.]+\s+([\d.]+)",
                           outputs, flags=re.M))
    if len(rows) != 4:
        return f"the per-class table is not in the outputs (found {sorted(rows)})"
    tumour = {name: float(value) for name, value in rows.items() if name != "background"}
    low = {name: value for name, value in tumour.items() if value < 0.99}
    if low:
        return f"tumour classes with specificity below 0.99: {low}"
    if float(rows["background"]) >= min(tumour.values()):
        return f"the background's specificity {rows['background']} is not below the tumour classes'"
    return None


def _small_post_processing_gain(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 05: post-processing moves the mean Dice by at most 0.01 and makes no image worse."""
    match = re.search(r"mean Dice: (\d\.\d+) -> (\d\.\d+) after post-processing", outputs)
    changed = re.search(r"(\d+) of \d+ images changed: (\d+) better, (\d+) worse", outputs)
    if not match or not changed:
        return "the before/after lines of the post-processing are not in the outputs"
    gain = float(match.group(2)) - float(match.group(1))
    return None if abs(gain) <= 0.01 else f"the mean Dice moved by {gain:+.4f}, not a small gain"

LEDGER: dict[str, list] = {
    "00_start_here": [],
    "01_data_generator": [
        Given(r"`contour` at level 0\.5", DEFINITION),
        Given(r"up to 5 % of the\s+size", CONSTANT),
    ],
    "02_architecture": [
        Given(r"outputs about 0\.5 everywhere", DEFINITION),
        Claim(r"The loss must fall fast", _falls(r"loss: (\d\.\d+) at step 1 -> (\d\.\d+) at step \d+")),
        Claim(r"In this run the residual U-Net came out ahead",
              r"verdict: the residual U-Net is ahead by more than the epoch-to-epoch noise", "shown"),
        Claim(r"the prediction must start to look like lungs",
              lambda out, said: _at_least(out, r"three of the memorised images: (\d\.\d+)", 0.5)),
    ],
    "03_loss_and_metrics": [
        Given(r"the change is below 0\.001", DEFINITION),
        Given(r"\$\(24 \+ 1\)/\(36 \+ 1\) = 0\.6757\$ instead of \$0\.6667\$", EXPECTED),
        Given(r"\(\$p > 0\.5\$\)", DEFINITION),
        Given(r"thresholded at 0\.5 too", DEFINITION),
        Given(r"the 0\.4 pixels", EXPECTED),
        Given(r"\$\(12 \+ 1\)/\(24 \+ 1\) = 0\.52\$ \(exact IoU 0\.5\)", EXPECTED),
        Given(r"the lungs are 20 % of the image", DEFINITION),
        Given(r"exactly 1\.0 for \$z\$", DEFINITION),
        Given(r"scores 1\.0 instead of nan", DEFINITION),
        Claim(r"almost no pixel passes 0\.5", r"training=False: .*share of pixels above 0\.5 (\d\.\d+)", "shown"),
        Claim(r"hard Dice near 0 on every image",
              r"training=False: mean probability [\d.]+, share of pixels above 0\.5 [\d.]+, hard Dice (0\.0\d)",
              "shown"),
    ],
    "04_training": [
        Given(r"\(e\.g\. 70 %, 15 %,\s+15 %\)", CONSTANT),
        Given(r"threshold at 0\.5", CONSTANT),
        Given(r"at\s+least 0\.95 at the default scale", TARGET),
        Given(r"runs differ by up to 0\.03", "measured by benchmarks/real_cxr.py --seeds, quoted in the README"),
        Claim(r"halved at epochs ([\d, and]+) \(the `ReduceLROnPlateau` lines", _reductions),
        Claim(r"early stopping did not fire \(all (\d+) epochs ran\)", _all_epochs_ran),
        Claim(r"the validation loss ended\s+within 10 % of its lowest value", _val_loss_near_lowest(0.10)),
        Claim(r"put back the\s+weights of epoch (\d+)", r"Restoring model weights from the end of the best epoch: (\d+)"),
        Claim(r"climbing above (0\.9) within the first half of the epochs", _above_in_first_half),
    ],
    "05_prediction": [
        Given(r"both are 1\.0 when", DEFINITION),
        Given(r"give 1\.0 and 1\.0, disjoint ones 0\.0 and 0\.0", EXPECTED),
        Given(r"\(0\.1 … 0\.9\): how flat is it around 0\.5", "a suggestion for the learner"),
        Claim(r"the gain is small on average", _small_post_processing_gain),
    ],
    "06_lung_ct_3d": [
        Given(r"slices\s+2\.5–3 mm apart", DEFINITION),
        Given(r"-350 HU gives 0\.5", EXPECTED),
        Given(r"100 voxels of 0\.8 × 0\.8 × 2\.5 mm make 0\.16 mL", EXPECTED),
        Given(r"treat values above 0\.5 as inside", DEFINITION),
        Given(r"perfectly \(1\.0\), one empty and one not give 0\.0", EXPECTED),
        Given(r"gives 2 · 0\.5 / 1\.5 ≈ 0\.667", EXPECTED),
        Given(r"a little dropout \(0\.05\)", CONSTANT),
        Given(r"A momentum of 0\.9", CONSTANT),
        Given(r"threshold at 0\.5 to a uint8", CONSTANT),
        Given(r"resample to about 1\.5 mm", "advice for real data"),
        Claim(r"(9\.4) × (9\.4) × (13\.9) mm voxels",
              _spacing_times(2.0)),
        Claim(r"half a coarse voxel, (4\.7) to (6\.9) mm here",
              _spacing_times(1.0)),
    ],
    "07_liver_ct": [
        Given(r"scores a mean Dice of about 0\.76", BENCHMARK),
        Claim(r"clearly beats an intensity threshold \(about 0\.76 Dice\)",
              lambda out, said: _at_least(out, r"mean over folds: (\d\.\d+)", 0.80)),
        Given(r"`FLIP_P` = 0\.2 of the batches", CONSTANT),
        Given(r"`empty_fraction=0\.2`", CONSTANT),
        Given(r"threshold them at 0\.5", CONSTANT),
        Given(r"down to 5 % of that", CONSTANT),
        Given(r'\(a\s+"2\.5D" U-Net\)', DEFINITION),
    ],
    "08_brain_tumour": [
        Given(r"about 68 / 15 / 17 %", DEFINITION),
        Given(r"cases 17 % would be four", DEFINITION),
        Given(r"over 90 % of the pixels", DEFINITION),
        Given(r"\(0\.25 everywhere\)", DEFINITION),
        Given(r"CCE = ln 4 = 1\.386,\s+plus a Dice loss of 0\.727", DEFINITION),
        Claim(r"it is about (2\.113)", r"loss of a uniform prediction: (\d\.\d+)", "about", 0.005),
        Given(r"\*\*1\.0\*\* for a region", DEFINITION),
        Given(r"~1\.5 min of compute", TIME),
        Claim(r"Specificity is close to 1 for every tumour class", _tumour_specificity),
    ],
    "09_challenge": [
        Given(r"~1\.5 min of compute", TIME),
        Given(r"at least 95 % of the resamples", DEFINITION),
        Given(r"trains on 70 % of the 400", CONSTANT),
    ],
    "10_where_next": [
        Given(r"those of MONAI 1\.5 and nnU-Net v2", "the library versions whose names the lesson quotes"),
    ],
}
