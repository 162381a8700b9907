"""The ledger of what each lesson's prose says about its run (see ``tests/support/claims.py``).

One list per answer notebook. A :class:`Claim` binds a sentence to the output that shows
it; a :class:`Given` names a number of the prose that is not about the run (a definition,
a worked example, an exercise's expected value for a fixed input, a recipe constant, a
target) and says why. ``tests/lessons/test_claims.py`` checks both against the committed outputs.
When a re-run changes an output, rewrite the sentence, then its claim here.
"""

import re
import statistics

from support.claims import Claim, Given

DEFINITION = "a definition or worked example, true whatever the run prints"
EXPECTED = "an exercise's expected value for a fixed input, asserted by its check"
CONSTANT = "a setting the lesson's code uses, visible in the cell it describes"
TARGET = "a target or a rule of thumb, not a measurement of this run"
BENCHMARK = "measured by a script in benchmarks/ (the sentence names it), not by this run"
TIME = "the lesson's Time line, set by python -m helpers course --record and checked by tests/lessons/test_release.py against docs/results.json"


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


def _demo_validation_epochs(outputs: str) -> list[dict[str, float]]:
    """Lesson 03: the validation metrics of each epoch of the compile demo, in order."""
    return [{name: float(value) for name, value in re.findall(r"(val_\w+): ([\d.]+(?:e[-+]?\d+)?)", line)}
            for line in outputs.splitlines() if re.match(r"\d+/\d+ - .*val_dice_coefficient: ", line)]


def _demo_validation_ends_lower(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 03: every validation metric but the loss ends lower than after the first epoch."""
    epochs = _demo_validation_epochs(outputs)
    if len(epochs) < 2:
        return "the demo's epochs are not in the outputs"
    higher = [name for name, first in epochs[0].items() if name != "val_loss" and epochs[-1][name] >= first]
    return f"these validation metrics did not end lower: {higher}" if higher else None


def _demo_sensitivity_collapses(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 03: the demo's validation sensitivity is low (below 0.1) after the first epoch,
    below 0.001 at epoch 2 and below 0.05 after the last epoch."""
    values = [epoch["val_sensitivity"] for epoch in _demo_validation_epochs(outputs)]
    if len(values) < 2 or values[0] >= 0.1 or values[1] >= 0.001 or values[-1] >= 0.05:
        return f"validation sensitivity by epoch: {values}"
    return None


def _demo_training_rises(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 03: every training metric of the compile demo (the loss aside) ends higher than
    after the first epoch."""
    epochs = [{name: float(value) for name, value in re.findall(r" - ((?!val_)[a-z_]+): ([\d.]+(?:e[-+]?\d+)?)", line)}
              for line in outputs.splitlines() if re.match(r"\d+/\d+ - .*val_dice_coefficient: ", line)]
    if len(epochs) < 2:
        return "the demo's epochs are not in the outputs"
    lower = [name for name, first in epochs[0].items()
             if name not in ("loss", "learning_rate") and epochs[-1][name] <= first]
    return f"these training metrics did not end higher: {lower}" if lower else None


def _demo_steps(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 03: the compile demo ran eighteen training steps (steps per epoch times epochs)."""
    steps = [int(total) for total in re.findall(r"^(\d+)/\1 - .*val_dice_coefficient: ", outputs, flags=re.M)]
    return None if sum(steps) == 18 else f"the demo ran {sum(steps)} steps ({steps} per epoch)"


def _inference_share_a_tenth(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 03: in inference mode a few per cent of the pixels pass 0.5 (under 0.1 of them),
    about a tenth (between a twentieth and a fifth) as many as in training mode."""
    share = {mode: float(value) for mode, value in
             re.findall(r"training=(True|False)\s*: .*share of pixels above 0\.5 (\d\.\d+)", outputs)}
    if len(share) != 2:
        return "the two modes' lines are not in the outputs"
    ratio = share["False"] / share["True"] if share["True"] else float("inf")
    if share["False"] >= 0.1 or not 0.05 <= ratio <= 0.2:
        return f"shares above 0.5 (training: inference) {share['True']}: {share['False']}, ratio {ratio:.2f}"
    return None


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


def _residual_costs_a_few_per_cent(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 02: every residual U-Net the lesson prints has between 0 % and 10 % more parameters
    than its plain twin (the comparison's legend counts and the +x % of the 2D and 3D builds)."""
    counts = dict(re.findall(r"^(plain|residual)\s+([\d,]+) parameters;", outputs, flags=re.M))
    shares = [float(share) / 100 for share in re.findall(r"residual [\d,]+ \(\+(\d+\.\d)%\)", outputs)]
    if set(counts) != {"plain", "residual"} or len(shares) != 2:
        return "the parameter counts of the plain and residual U-Nets are not in the outputs"
    shares.append(int(counts["residual"].replace(",", "")) / int(counts["plain"].replace(",", "")) - 1)
    return None if all(0 < share < 0.10 for share in shares) else f"residual/plain - 1: {shares}"


def _fit_log(outputs: str) -> list[dict[str, float]]:
    """Lesson 04: each epoch of the fit log (``verbose=2``), in order: its seconds and its metrics."""
    return [{"seconds": float(seconds), **{name: float(value) for name, value in re.findall(r"(\w+): ([\d.]+)", rest)}}
            for seconds, rest in re.findall(r"^\d+/\d+ - (\d+)s - \S+ - (dice: .*)$", outputs, flags=re.M)]


def _val_loss_rises(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 04: the validation loss rose at exactly the stated epochs, by less than 0.05 each
    time, and ``val_dice`` fell at each of them."""
    log = _fit_log(outputs)
    if len(log) < 2:
        return "no fit log in the outputs"
    rises = [epoch for epoch in range(2, len(log) + 1) if log[epoch - 1]["val_loss"] > log[epoch - 2]["val_loss"]]
    stated = [int(epoch) for epoch in re.findall(r"\d+", said[0])]
    if rises != stated:
        return f"the validation loss rose at epochs {rises}, the prose says {stated}"
    large = [epoch for epoch in rises if log[epoch - 1]["val_loss"] - log[epoch - 2]["val_loss"] >= 0.05]
    kept = [epoch for epoch in rises if log[epoch - 1]["val_dice"] >= log[epoch - 2]["val_dice"]]
    if large or kept:
        return f"rises of 0.05 or more at epochs {large}; val_dice did not fall at epochs {kept}"
    return None


def _val_loss_never_rose_twice(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 04: the validation loss never rose two epochs in a row, and the training loss fell every epoch."""
    log = _fit_log(outputs)
    if len(log) < 3:
        return "no fit log in the outputs"
    up = [log[i]["val_loss"] > log[i - 1]["val_loss"] for i in range(1, len(log))]
    twice = [i + 2 for i in range(1, len(up)) if up[i] and up[i - 1]]
    train_up = [i + 1 for i in range(1, len(log)) if log[i]["loss"] >= log[i - 1]["loss"]]
    return None if not twice and not train_up else (
        f"the validation loss rose two epochs in a row up to epochs {twice}; training loss did not fall at {train_up}")


def _panels_agree(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 04: the best validation epoch of the loss, the Dice and the hard Dice (first on ties) is the same."""
    log = _fit_log(outputs)
    if not log:
        return "no fit log in the outputs"
    loss = [epoch["val_loss"] for epoch in log]
    best = {"val_loss": loss.index(min(loss)) + 1}
    for name in ("val_dice", "val_hard_dice"):
        values = [epoch[name] for epoch in log]
        best[name] = values.index(max(values)) + 1
    return None if len(set(best.values())) == 1 else f"the panels mark different epochs: {best}"


def _val_dice_best_near_end(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 04: the best ``val_dice`` is within the last three epochs, and it is the printed BEST_EPOCH."""
    log = _fit_log(outputs)
    printed = re.search(r"^BEST_EPOCH = (\d+)$", outputs, flags=re.M)
    if not log or not printed:
        return "no fit log or BEST_EPOCH in the outputs"
    values = [epoch["val_dice"] for epoch in log]
    best = values.index(max(values)) + 1
    if best != int(printed.group(1)) or best < len(log) - 2:
        return f"val_dice is best at epoch {best} of {len(log)}, BEST_EPOCH = {printed.group(1)}"
    return None


def _dice_ends_close(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 04: the training and validation Dice of the last epoch differ by at most 0.01."""
    log = _fit_log(outputs)
    if not log:
        return "no fit log in the outputs"
    gap = abs(log[-1]["dice"] - log[-1]["val_dice"])
    return None if gap <= 0.01 else f"dice {log[-1]['dice']} and val_dice {log[-1]['val_dice']} at the last epoch"


def _first_epoch_slowest(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 04: the first epoch of the fit log took longer than the typical (median) other
    epoch (a timing: a busy machine may slow one later epoch, never the tracing away)."""
    seconds = [epoch["seconds"] for epoch in _fit_log(outputs)]
    if len(seconds) < 2:
        return "no fit log in the outputs"
    return None if seconds[0] > statistics.median(seconds[1:]) else f"seconds per epoch: {seconds}"


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


def _spacing_cost(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 06: the best Dice through the chosen working grid is about two hundredths (0.01 to
    0.03) below the finest candidate's, in the printed table."""
    rows = {float(s): float(d) for s, d in re.findall(r"^\s*(\d+\.\d) mm\s+\([\d, ]+\)\s+[\d,]+\s+\d+\s+(\d\.\d+)$",
                                                     outputs, flags=re.M)}
    chosen = re.search(r"working spacing: ([\d.]+) mm", outputs)
    if not rows or not chosen or float(chosen.group(1)) not in rows:
        return "the spacing table or the chosen working spacing is not printed"
    gap = rows[min(rows)] - rows[float(chosen.group(1))]
    return None if 0.01 <= gap <= 0.03 else f"the best Dice falls by {gap:.3f} from the finest to the chosen spacing"


def _spacing_in_ranges(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 06: the printed case's in-plane and slice spacing lie in the stated ranges
    (to the prose's one decimal)."""
    match = re.search(r"spacing \[([\d.]+), ([\d.]+), ([\d.]+)\] mm", outputs)
    if not match:
        return "the case's spacing is not printed"
    low_xy, high_xy, low_z, high_z = (float(value) for value in said)
    x, y, z = (round(float(value), 1) for value in match.groups())
    inside = low_xy <= x <= high_xy and low_xy <= y <= high_xy and low_z <= z <= high_z
    return None if inside else f"the printed spacing {match.group(0)} is outside the stated ranges"


def _voxel_count_millions(outputs: str, said: tuple[str, ...]) -> str | None:
    match = re.search(r"lung voxels: \d+ of (\d+)", outputs)
    if not match:
        return "the voxel count is not printed"
    millions = round(int(match.group(1)) / 1e6, 1)
    return None if millions == float(said[0]) else f"the run printed {match.group(1)} voxels"


def _patch_share_of_axes(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 06: 32 voxels are the stated share (within 10 points) of every axis of every working grid."""
    grids = re.search(r"working grids at [\d.]+ mm: (.*)", outputs)
    if not grids:
        return "the working grids are not printed"
    sides = [int(side) for side in re.findall(r"\d+", grids.group(1))]
    shares = [100 * 32 / side for side in sides]
    off = [round(share) for share in shares if abs(share - float(said[0])) > 10]
    return None if not off else f"32-voxel patches cover {off} % of some axes"


def _sampling_changes_little(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 06: for 32-voxel patches foreground sampling moves the lung share by under 5
    points; for 16-voxel patches it raises it by more."""
    rows = dict((int(size), (float(anywhere), float(sampled))) for size, anywhere, sampled in re.findall(
        r"patches of \((\d+), \d+, \d+\): lung voxels per patch ([\d.]+)% placed anywhere, ([\d.]+)% with", outputs))
    if 32 not in rows or 16 not in rows:
        return "the two patch lines are not printed"
    big, small = rows[32], rows[16]
    if abs(big[1] - big[0]) >= 5:
        return f"sampling moved 32-voxel patches from {big[0]} % to {big[1]} %"
    return None if small[1] - small[0] > abs(big[1] - big[0]) else "sampling did not help the small patches more"


def _unet_beats_threshold(outputs: str, said: tuple[str, ...]) -> str | None:
    dice = re.search(r"mean volumetric Dice:\s+threshold recipe ([\d.]+)\s+3D U-Net ([\d.]+)", outputs)
    hd95 = re.search(r"mean HD95 \(mm\):\s+threshold recipe ([\d.]+)\s+3D U-Net ([\d.]+)", outputs)
    if not dice or not hd95:
        return "the comparison with the threshold recipe is not printed"
    if float(dice.group(2)) <= float(dice.group(1)) or float(hd95.group(2)) >= float(hd95.group(1)):
        return f"Dice {dice.groups()}, HD95 {hd95.groups()}: the U-Net does not beat the recipe on both"
    return None


def _recipe_below_bar(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 06: no threshold of the recipe's printed range reaches 0.90, the Dice bar that the
    U-Net must reach on the held-out cases (asserted in section 7)."""
    line = re.search(r"the whole recipe at (.*)", outputs)
    scores = [float(value) for value in re.findall(r"HU: (\d\.\d+)", line.group(1))] if line else []
    if not scores:
        return "the recipe's range of thresholds is not printed"
    return None if max(scores) < 0.90 else f"a threshold reaches Dice {max(scores)}: it fixes the recipe"


def _small_patches_see_less_lung(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 06: placed anywhere, 16-voxel patches show a smaller lung share than 32-voxel ones."""
    anywhere = dict((int(size), float(share)) for size, share in re.findall(
        r"patches of \((\d+), \d+, \d+\): lung voxels per patch ([\d.]+)% placed anywhere", outputs))
    if 32 not in anywhere or 16 not in anywhere:
        return "the two patch lines are not printed"
    return None if anywhere[16] < anywhere[32] else (
        f"placed anywhere, 16-voxel patches show {anywhere[16]} % lung, 32-voxel ones {anywhere[32]} %")


def _summed_weights_floor(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 06: the least summed blending weight is the stated value, above 0 (every voxel predicted)."""
    match = re.search(r"summed weights ([\d.]+) \.\. ([\d.]+)", outputs)
    if not match:
        return "the summed weights are not printed"
    low = float(match.group(1))
    if low <= 0:
        return f"some voxel gets no weight: the least sum is {match.group(1)}"
    return None if round(low, 3) == float(said[0]) else f"the least summed weight is {match.group(1)}, not {said[0]}"


def _tumour_specificity(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 08's table: every tumour class's specificity >= the bound the prose states
    (``said[0]``), the background's lower."""
    rows = dict(re.findall(r"^(background|necrosis \(1\)|oedema \(2\)|enhancing \(4\))\s+[\d.]+\s+[\d.]+\s+([\d.]+)",
                           outputs, flags=re.M))
    if len(rows) != 4:
        return f"the per-class table is not in the outputs (found {sorted(rows)})"
    tumour = {name: float(value) for name, value in rows.items() if name != "background"}
    bound = float(said[0])
    low = {name: value for name, value in tumour.items() if value < bound}
    if low:
        return f"tumour classes with specificity below {bound}: {low}"
    if float(rows["background"]) >= min(tumour.values()):
        return f"the background's specificity {rows['background']} is not below the tumour classes'"
    return None


def _fraction_rows(outputs: str) -> dict[float, tuple[float, float]]:
    return {float(f): (float(d), float(h)) for f, d, h in re.findall(
        r"empty fraction (\d\.\d): +\d+ training slices.*?mean Dice (\d\.\d+), mean HD95 +([\d.]+) mm", outputs)}


def _largest_fraction_best(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 07: the largest empty-slice fraction tried has the best fold-1 Dice and HD95."""
    rows = _fraction_rows(outputs)
    if len(rows) < 2:
        return f"the fraction study is not in the outputs (found {rows})"
    largest = max(rows)
    if rows[largest][0] != max(d for d, _ in rows.values()) or rows[largest][1] != min(h for _, h in rows.values()):
        return f"the largest fraction {largest} is not best on both Dice and HD95: {rows}"
    return None


def _largest_fraction_beats_each(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 07: the paired differences of the best fraction against each other are > 0 for
    every patient, with intervals above 0."""
    pairs = re.findall(r"Dice of [\d.]+ minus [\d.]+, paired per patient: [+-][\d.]+ \(95 % interval ([+-][\d.]+) to "
                       r"[+-][\d.]+\); higher for (\d+) of (\d+) patients", outputs)
    if not pairs:
        return "the paired differences of the fraction study are not printed"
    bad = [p for p in pairs if float(p[0]) <= 0 or p[1] != p[2]]
    return None if not bad else f"not above 0 for every patient: {bad}"


def _test_table(outputs: str) -> dict[str, tuple[float, float]]:
    return {name: (float(d), float(h)) for name, d, h in re.findall(
        r"^(fold \d model|ensemble of \d) +(\d\.\d+) \([^)]*\) +([\d.]+) \(", outputs, flags=re.M)}


def _ensemble_hd95_not_best(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 07: the ensemble's mean HD95 is not the lowest, and the paired HD95 interval holds 0."""
    table = _test_table(outputs)
    paired = re.search(r"HD95 [+-][\d.]+ mm \(([+-][\d.]+) to ([+-][\d.]+)\)", outputs)
    ensemble = [name for name in table if name.startswith("ensemble")]
    if not ensemble or not paired:
        return "the test table or the paired HD95 line is not printed"
    if table[ensemble[0]][1] <= min(h for _, h in table.values()):
        return f"the ensemble has the lowest mean HD95: {table}"
    if not float(paired.group(1)) <= 0 <= float(paired.group(2)):
        return f"the paired HD95 interval {paired.groups()} excludes 0"
    return None


def _uncertainty(outputs: str) -> tuple[float, float, float, float] | None:
    mean = re.search(r"mean disagreement: ([\d.]+) on the wrong voxels, ([\d.]+) on the right ones", outputs)
    share = re.search(r"(\d+) % of the wrong voxels are flagged; (\d+) % of the \d+ flagged voxels are wrong", outputs)
    if not mean or not share:
        return None
    return float(mean.group(1)), float(mean.group(2)), float(share.group(1)), float(share.group(2))


def _disagreement_ratio(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 07: "about three times higher" = a ratio between 2.5 and 3.5."""
    values = _uncertainty(outputs)
    if values is None:
        return "the disagreement lines are not printed"
    ratio = values[0] / values[1]
    return None if 2.5 <= ratio <= 3.5 else f"the ratio is {ratio:.2f}, not about three"


def _unflagged_share(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 07: "about a third of the wrong voxels are not flagged" = 25-42 % unflagged."""
    values = _uncertainty(outputs)
    if values is None:
        return "the disagreement lines are not printed"
    unflagged = 100 - values[2]
    return None if 25 <= unflagged <= 42 else f"{unflagged:.0f} % of the wrong voxels are unflagged, not about a third"


def _flagged_right_share(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 07: "about three quarters of the flagged voxels are right" = 65-85 % right."""
    values = _uncertainty(outputs)
    if values is None:
        return "the disagreement lines are not printed"
    right = 100 - values[3]
    return None if 65 <= right <= 85 else f"{right:.0f} % of the flagged voxels are right, not about three quarters"


def _fold_lines(outputs: str) -> dict[int, tuple[float, float]]:
    """Lesson 07: fold number -> (final training Dice as fit logs it, validation Dice), from the fold lines."""
    return {int(n): (float(t), float(v)) for n, t, v in re.findall(
        r"^fold (\d+): \d+ slices, .*\(final training Dice (\d\.\d+)\); validation Dice (\d\.\d+) over",
        outputs, flags=re.M)}


def _fit_dice_far_below(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 07: "far below" = every fold's final training Dice is at least 0.2 below its validation Dice."""
    folds = _fold_lines(outputs)
    if not folds:
        return "the fold lines are not printed"
    close = {n: pair for n, pair in folds.items() if pair[1] - pair[0] < 0.2}
    return None if not close else f"training and validation Dice (training, validation) are close: {close}"


def _worst_trainer_not_worst_validated(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 07: the stated fold ends with the lowest training Dice, at least 0.05 below every other
    fold's ("visibly worse"), and its validation Dice is not the lowest."""
    folds, fold = _fold_lines(outputs), int(said[0])
    if fold not in folds or len(folds) < 3:
        return "the fold lines are not printed"
    others = [pair for n, pair in folds.items() if n != fold]
    if any(folds[fold][0] > training - 0.05 for training, _ in others):
        return f"fold {fold} does not end with a training Dice clearly the lowest: {folds}"
    if folds[fold][1] <= min(validation for _, validation in others):
        return f"fold {fold} has the lowest validation Dice as well: {folds}"
    return None


def _measured_alike(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 07: "score alike" = training and validation patients within 0.05, under both measures."""
    rows = re.findall(r"^(soft Dice per slice \(as fit logs\)|hard Dice per patient volume) +(\d\.\d+) +(\d\.\d+)",
                      outputs, flags=re.M)
    if len(rows) != 2:
        return "the two measures of the last fold are not printed"
    apart = [(name, a, b) for name, a, b in rows if abs(float(a) - float(b)) >= 0.05]
    return None if not apart else f"training and validation patients differ: {apart}"


def _necrosis_rows(measure: str) -> str:
    """Lesson 08: a pattern capturing the plain and then the weighted loss's necrosis
    ``measure`` (``"precision"`` or ``"sensitivity"``) from the test lines."""
    value = {"precision": (r"([\d.]+)", r"[\d.]+"), "sensitivity": (r"[\d.]+", r"([\d.]+)")}[measure]
    return (rf"necrosis, plain +loss: precision {value[0]}, sensitivity {value[1]}\n"
            rf"necrosis, weighted loss: precision {value[0]}, sensitivity {value[1]}")


def _necrosis_trade(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 08: the prediction (more sensitivity, perhaps less precision) held: the weighted
    loss's necrosis sensitivity is higher and its precision lower."""
    rows = dict((name, (float(p), float(s))) for name, p, s in re.findall(
        r"necrosis, (plain|weighted) +loss: precision ([\d.]+), sensitivity ([\d.]+)", outputs))
    if len(rows) != 2:
        return "the necrosis precision and sensitivity lines are not printed"
    if not (rows["weighted"][1] > rows["plain"][1] and rows["weighted"][0] < rows["plain"][0]):
        return f"necrosis (precision, sensitivity): {rows}"
    return None


def _effect_interval(row: str, where: str):
    """Lesson 08: weighted - plain: the paired interval of ``row`` (e.g. ``"Dice WT"``) lies
    where the prose says: ``"contains"`` 0, or wholly ``"above"`` or ``"below"`` 0."""
    def check(outputs: str, said: tuple[str, ...]) -> str | None:
        found = re.search(rf"^{re.escape(row)} +[+-][\d.]+ +([+-][\d.]+) to ([+-][\d.]+)", outputs, flags=re.M)
        if not found:
            return f"the {row} line of the remedy's effect is not printed"
        low, high = (float(value) for value in found.groups())
        holds = {"contains": low <= 0 <= high, "above": low > 0, "below": high < 0}[where]
        return None if holds else f"{row} interval {found.groups()} does not lie {where} 0"
    return check


def _test_regions_not_better(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 08: weighted - plain on the test brains: the mean of the WT, TC and ET Dice
    differences is below 0 (the validation criterion, applied to the test brains, would not
    prefer the weighted loss)."""
    found = [re.search(rf"^Dice {region} +([+-][\d.]+) ", outputs, flags=re.M) for region in ("WT", "TC", "ET")]
    if not all(found):
        return "the region Dice lines of the remedy's effect are not printed"
    mean = sum(float(match.group(1)) for match in found) / 3
    return None if mean < 0 else f"the mean region Dice difference is {mean:+.3f}, not below 0"


def _training_shares(outputs: str) -> list[float]:
    """Lesson 08: the printed share of training pixels of each class (background first)."""
    found = re.search(r"share of training pixels per class: \[([\d.\s]+)\]", outputs)
    return [float(value) for value in found.group(1).split()] if found else []


def _necrosis_rarest(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 08: necrosis (class 1) is the rarest class, under 1 % of the training pixels."""
    shares = _training_shares(outputs)
    if len(shares) != 4:
        return "the training shares per class are not printed"
    return None if shares[1] < 0.01 and shares[1] == min(shares) else f"training shares per class: {shares}"


def _inverse_weighs_hundreds(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 08: the plain inverse frequency (the square of the printed square-root weight, the
    background weighing 1) would weigh necrosis between 100 and 1000 times the background."""
    found = re.search(r"class weights \(background, necrosis, oedema, enhancing\): \[\s*([\d.]+)\s+([\d.]+)", outputs)
    if not found:
        return "the class weights are not printed"
    ratio = (float(found.group(2)) / float(found.group(1))) ** 2
    return None if 100 <= ratio < 1000 else f"the plain inverse would weigh necrosis {ratio:.0f} times the background"


def _tc_et_not_below_wt(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 08: on the test brains the mean TC and ET Dice are at least the mean WT Dice."""
    found = re.search(r"^mean +(\d\.\d{3}) +(\d\.\d{3}) +(\d\.\d{3})$", outputs, flags=re.M)
    if not found:
        return "the test Dice means are not printed"
    wt, tc, et = (float(value) for value in found.groups())
    return None if tc >= wt and et >= wt else f"mean Dice WT {wt}, TC {tc}, ET {et}"


def _rest_within_noise(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 08's rubric: apart from the ET Dice gain and the WT HD95 loss, every paired
    interval of the remedy's effect on the regions contains 0."""
    problems = [problem for row in ("Dice WT", "Dice TC", "HD95 TC (mm)", "HD95 ET (mm)")
                if (problem := _effect_interval(row, "contains")(outputs, said))]
    return "; ".join(problems) or None


def _necrosis_interval_reaches_zero(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 08: weighted - plain: the necrosis Dice interval contains 0."""
    found = re.search(r"Dice necrosis +[+-][\d.]+ +([+-][\d.]+) to ([+-][\d.]+)", outputs)
    if not found:
        return "the necrosis line of the remedy's effect is not printed"
    low, high = (float(value) for value in found.groups())
    return None if low <= 0 <= high else f"necrosis Dice interval {found.groups()} excludes 0"


def _validation_necrosis_weighted(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 08: on validation the weighted loss has the higher necrosis Dice (last column)."""
    plain = re.search(r"^plain +loss +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ +([\d.]+)", outputs, flags=re.M)
    weighted = re.search(r"^weighted loss +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ +([\d.]+)", outputs, flags=re.M)
    if not plain or not weighted:
        return "the validation table is not printed"
    return None if float(weighted.group(1)) > float(plain.group(1)) else "the plain loss has the higher necrosis Dice"


def _small_post_processing_gain(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 05: post-processing moves the mean Dice by at most 0.01 and makes no image worse."""
    match = re.search(r"mean Dice: (\d\.\d+) -> (\d\.\d+) after post-processing", outputs)
    changed = re.search(r"(\d+) of \d+ images changed: (\d+) better, (\d+) worse", outputs)
    if not match or not changed:
        return "the before/after lines of the post-processing are not in the outputs"
    gain = float(match.group(2)) - float(match.group(1))
    return None if abs(gain) <= 0.01 else f"the mean Dice moved by {gain:+.4f}, not a small gain"

def _flat_sweep(low: float, high: float, spread: float):
    """Lesson 05: the printed threshold sweep moves by less than ``spread`` between ``low`` and ``high``."""
    def check(outputs: str, said: tuple[str, ...]) -> str | None:
        rows = [(float(t), float(d)) for t, d in re.findall(r"^  (\d\.\d\d)     (\d\.\d{4})", outputs, flags=re.M)]
        inside = [d for t, d in rows if low - 1e-9 <= t <= high + 1e-9]
        if len(inside) < 2:
            return "the threshold sweep is not in the outputs"
        moved = max(inside) - min(inside)
        return None if moved < spread else f"the sweep moves by {moved:.4f} between {low} and {high}"
    return check


def _under_confident_bins(*lows: str):
    """Lesson 05: in the reliability table, the bins starting at ``lows`` hold more lung than
    their mean prediction (the model is under-confident there: above the diagonal)."""
    def check(outputs: str, said: tuple[str, ...]) -> str | None:
        for low in lows:
            row = re.search(rf"^{re.escape(low)}-\d\.\d\s+\d+\s+([\d.]+)\s+([\d.]+)", outputs, flags=re.M)
            if not row:
                return f"the {low} row of the reliability table is not in the outputs"
            if float(row.group(2)) <= float(row.group(1)):
                return f"the {low} bin is {row.group(2)} lung for a mean prediction of {row.group(1)}"
        return None
    return check


def _post_processing_changed_nothing(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 05: post-processing changed no validation mask, and the rule left it out."""
    changed = re.search(r"(\d+) of \d+ images changed: (\d+) better, (\d+) worse", outputs)
    if not changed:
        return "the post-processing lines are not in the outputs"
    if changed.group(1) != "0":
        return f"post-processing changed {changed.group(1)} masks ({changed.group(2)} better, {changed.group(3)} worse)"
    return None if "decision: post-processing OFF" in outputs else "the decision line does not say OFF"


_VALIDATION_TTA = r"validation, no TTA.*?\n"
_TEST_TTA = r"test, no TTA.*?\n"


def _variant(block: str, name: str):
    return block + re.escape(name) + r"\s+\d\s+([+-]\d\.\d+) \[([+-]\d\.\d+), ([+-]\d\.\d+)\]\s+([+-]\d+\.\d+)"


def _tta_validation(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 05: on validation all six views gain the stated Dice with an interval above 0 and
    no worse HD95, and the recipe takes them."""
    both = re.search(_variant(_VALIDATION_TTA, "flip + shift"), outputs, flags=re.S)
    if not both:
        return "the validation TTA table is not in the outputs"
    if round(float(both.group(1)), 4) != float(said[0]):
        return f"all six views gain {both.group(1)}, the prose says {said[0]}"
    if not (float(both.group(2)) > 0 and float(both.group(4)) <= 0):
        return f"all six views: Dice interval low {both.group(2)}, HD95 change {both.group(4)}"
    return None if "decision: TTA 'flip + shift'" in outputs else "the recipe does not take 'flip + shift'"


def _mirror_costs_a_tenth_at_half(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 05: the mirror's validation Dice cost at the threshold 0.5 without post-processing is
    the stated value and about a tenth (between a twentieth and a fifth) of its cost in the recipe."""
    flip = re.search(_variant(_VALIDATION_TTA, "flip"), outputs, flags=re.S)
    half = re.search(r"the mirror at the threshold 0\.5, no post-processing: Dice gain -(\d\.\d+)", outputs)
    if not flip or not half:
        return "the mirror's lines are not in the outputs (or the mirror gains at 0.5)"
    if half.group(1) != said[0]:
        return f"the mirror costs {half.group(1)} at 0.5, the prose says {said[0]}"
    ratio = float(half.group(1)) / -float(flip.group(1))
    return None if 0.05 <= ratio <= 0.2 else f"at 0.5 the mirror costs {ratio:.2f} of its cost in the recipe"


def _uncertainty_times_chance(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 05: the worst test image's share of error pixels among its most uncertain pixels is
    about nine times the share unrelated uncertainty would catch."""
    found = re.search(r"worst test image \S+: (\d+)% of its .*?unrelated to the errors: about (\d+)%", outputs)
    if not found:
        return "the worst test image's uncertainty line is not in the outputs"
    times = round(int(found.group(1)) / int(found.group(2)))
    return None if times == 9 else f"{found.group(1)}% is {times} times {found.group(2)}%, not nine"


def _shifts_change_little(outputs: str, said: tuple[str, ...]) -> str | None:
    """Lesson 05: on the test images the shifts alone move the Dice by less than 0.001."""
    shift = re.search(_variant(_TEST_TTA, "shift"), outputs, flags=re.S)
    if not shift:
        return "the test TTA table is not in the outputs"
    return None if abs(float(shift.group(1))) < 0.001 else f"the shifts moved the test Dice by {shift.group(1)}"


LEDGER: dict[str, list] = {
    "00_start_here": [],
    "01_data_generator": [
        Given(r"`contour` at level 0\.5", DEFINITION),
        Given(r"up to 5 % of the\s+size", CONSTANT),
        Claim(r"holds more of the lung area in every image", r"masks with more lung on the image's left: 100%", "shown"),
        Claim(r"a mask overlaps its own mirror image far from perfectly",
              lambda out, said: (None if (dice := _number(out, r"its own mirror image: (\d\.\d+) on average")) is not None
                                 and dice <= 0.9 else f"the run printed a mirror Dice of {dice}")),
        Given(r"no numbers: at most 0\.5", "a rubric's points (Exercise 1.4, graded by hand)"),
        Given(r"Only a\s+vague \"try it\": 0\.5", "a rubric's points (Exercise 1.4, graded by hand)"),
    ],
    "02_architecture": [
        Given(r"outputs about 0\.5 everywhere", DEFINITION),
        Claim(r"The loss must fall fast", _falls(r"loss: (\d\.\d+) at step 1 -> (\d\.\d+) at step \d+")),
        Claim(r"In this run the residual U-Net came out ahead", r"^AHEAD = residual$", "shown"),
        Claim(r"the prediction must start to look like lungs",
              lambda out, said: _at_least(out, r"three of the memorised images: (\d\.\d+)", 0.5)),
        Claim(r"the same configuration has about three times the parameters",
              lambda out, said: (None if (ratio := _number(out, r"parameters 3D / 2D = (\d+\.\d+)")) and 2.5 <= ratio <= 3.5
                                 else f"the run printed a 3D / 2D ratio of {ratio}")),
        Claim(r"It\s+has the same structure and parameter count", r"^reference ([\d,]+) parameters, yours \1$", "shown"),
        Claim(r"With matching channels the identity shortcut costs nothing",
              r"^\(16, 16, 8\)\s+-> 8 channels: conv_block\s+([\d,]+) parameters, residual_block\s+\1$", "shown"),
        Claim(r"The price is small: a few per cent more\s+parameters", _residual_costs_a_few_per_cent),
    ],
    "03_loss_and_metrics": [
        Given(r"the change is below 0\.001", DEFINITION),
        Given(r"\$\(24 \+ 1\)/\(36 \+ 1\) = 0\.6757\$ instead of \$0\.6667\$", EXPECTED),
        Given(r"\(\$p > 0\.5\$\)", DEFINITION),
        Given(r"the 0\.4 pixels", EXPECTED),
        Given(r"the truth is foreground where \$t > 0\.5\$", DEFINITION),
        Given(r"the truth where \$t > 0\.5\$", DEFINITION),
        Given(r"tries the thresholds 0\.25 and 0\.75", "the thresholds an exercise's check tries, stated as a requirement"),
        Given(r"tries the thresholds 0\.5 and 0\.25", "the thresholds an exercise's check tries, stated as a requirement"),
        Given(r"\$\(12 \+ 1\)/\(24 \+ 1\) = 0\.52\$ \(exact IoU 0\.5\)", EXPECTED),
        Given(r"the lungs are 20 % of the image", DEFINITION),
        Given(r"exactly 1\.0 for \$z\$", DEFINITION),
        Given(r"score 1\.0 instead of nan", DEFINITION),
        Claim(r"the validation ones end lower than they started", _demo_validation_ends_lower),
        Claim(r"The training metrics rise", _demo_training_rises),
        Claim(r"validation sensitivity that was already low after the first epoch, fell to practically zero at\s+epoch 2",
              _demo_sensitivity_collapses),
        Claim(r"After eighteen steps", _demo_steps),
        Claim(r"only a few pixels pass 0\.5, about a tenth as many as in training mode", _inference_share_a_tenth),
        Claim(r"hard Dice near 0 on every image",
              r"training=False: mean probability [\d.]+, share of pixels above 0\.5 [\d.]+, hard Dice (0\.0\d)",
              "shown"),
    ],
    "04_training": [
        Given(r"~\d+(?:\.5)? min of compute", TIME),
        Given(r"\(e\.g\. 70 %, 15 %,\s+15 %\)", CONSTANT),
        Given(r"threshold at 0\.5", CONSTANT),
        Given(r"at\s+least 0\.95 at the default scale", TARGET),
        Given(r"runs differ by up to 0\.03", "measured by benchmarks/real_cxr.py --seeds, quoted in docs/data.md"),
        Claim(r"halved at epochs ([\d, and]+) \(the `ReduceLROnPlateau` lines", _reductions),
        Claim(r"early stopping did not fire \(all (\d+) epochs ran\)", _all_epochs_ran),
        Claim(r"the validation loss ended\s+within 10 % of its lowest value", _val_loss_near_lowest(0.10)),
        Given(r"numbers without epochs\s+0\.5", "a rubric's points (Exercise 4.8, graded by hand)"),
        Given(r"Only one\s+of the two: 0\.5", "a rubric's points (Exercise 4.8, graded by hand)"),
        Claim(r"climbing above (0\.9) within the first half of the epochs", _above_in_first_half),
        Claim(r"the first epoch is slower \(TensorFlow builds the graph\)", _first_epoch_slowest),
        Claim(r"\(in this run they agree\)", _panels_agree),
        Claim(r"two small rises of\s+the validation loss, at epochs ([\d and]+) \(where `val_dice` fell too", _val_loss_rises),
        Claim(r"it never rose for two\s+epochs in a row while the training loss kept falling", _val_loss_never_rose_twice),
        Claim(r"`val_dice` is best near the end of the run \(the epoch of\s+Exercise 4\.7\), not early on", _val_dice_best_near_end),
        Claim(r"the training and validation Dice end close together", _dice_ends_close),
    ],
    "05_prediction": [
        Claim(r"in `SYN_0088_1` the predicted border", r"worst five:\n(?:.*\n){0,3}\s+SYN_0088_1\.png", "shown"),
        Claim(r"in `SYN_0200_0` it stops short", r"worst five:\n(?:.*\n){0,3}\s+SYN_0200_0\.png", "shown"),
        Claim(r"the worst HD95 of the whole validation set is (11\.0) pixels",
              r"^validation HD95: [^\n]*max (\d+\.\d) pixels"),
        Given(r"at 0\.5 for now", CONSTANT),
        Given(r"at the threshold 0\.5\. For each image", CONSTANT),
        Given(r"both are 1\.0 when", DEFINITION),
        Given(r"give 1\.0 and 1\.0, disjoint ones 0\.0 and 0\.0", EXPECTED),
        Given(r"gives Dice 0\.5 and IoU 0\.333", EXPECTED),
        Given(r"The threshold 0\.5 assumes", DEFINITION),
        Claim(r"the ECE is (0\.0023)", r"expected calibration error \(validation pixels, 10 bins\): (\d\.\d+)"),
        Claim(r"(\d) of the 8 middle bins lie above the diagonal", r"with more lung than predicted: (\d) of 8"),
        Claim(r"between 0\.3 and 0\.5 are lung more often than their score says \((0\.426) and (0\.510)",
              r"^0\.3-0\.4\s+\d+\s+[\d.]+\s+([\d.]+)\n0\.4-0\.5\s+\d+\s+[\d.]+\s+([\d.]+)"),
        Claim(r"the pixels\s+the model scores between 0\.3 and 0\.5 are lung more often than their score says",
              _under_confident_bins("0.3", "0.4")),
        Claim(r"and so are those it scores between 0\.5 and 0\.6 and between 0\.7 and 0\.9",
              _under_confident_bins("0.5", "0.7", "0.8")),
        Given(r"two empty masks have Dice 1\.0", DEFINITION),
        Given(r"the candidates 0\.35 and 0\.5 \(mean\s+Dice 0\.829 for both, 0\.600 at 0\.75\) it returns 0\.35", EXPECTED),
        Claim(r"between 0\.35 and 0\.55 the mean validation Dice moves by less than 0\.001",
              _flat_sweep(0.35, 0.55, 0.001)),
        Claim(r"The validation optimum is (0\.4), a little below the habitual 0\.5", r"chosen threshold (\d\.\d+):"),
        Claim(r"Its gain over 0\.5 is tiny, \+(0\.0003) per image, with an\s+interval that includes zero",
              r"vs [\d.]+ at 0\.5, per-image gain \+(\d\.\d+) \(95% interval -[\d.]+ to \+[\d.]+\)"),
        Claim(r"the gain is small", _small_post_processing_gain),
        Claim(r"the step changed no\s+validation mask at all", _post_processing_changed_nothing),
        Claim(r"the\s+Dice falls by (0\.0268) and HD95 rises by (12\.40) pixels",
              _VALIDATION_TTA + r"flip\s+2\s+-(\d\.\d+) \[[^\]]*\]\s+\+(\d+\.\d+)"),
        Claim(r"at the recipe's threshold (0\.4) the\s+mask takes in both chests", r"^recipe: threshold (\d\.\d+),"),
        Claim(r"at 0\.5, where a pixel must\s+be above one half, without post-processing, the mirror costs (0\.0024), "
              r"about a tenth as much", _mirror_costs_a_tenth_at_half),
        Claim(r"The \*\*shifts\*\* alone gain next to nothing: \+(0\.0002), with an interval\s+"
              r"from \+(0\.0000) to \+(0\.0003)",
              _VALIDATION_TTA + r"shift\s+5\s+\+(\d\.\d+) \[\+(\d\.\d+), \+(\d\.\d+)\]"),
        Claim(r"together gain (0\.0014), with an interval entirely above zero and no worse HD95", _tta_validation),
        Given(r"the middle 95 % of the\s+resampled means", DEFINITION),
        Claim(r"the mirror alone costs (0\.0269) of Dice and worsens HD95 by\s+(12\.30) pixels, both intervals entirely "
              r"away from zero",
              _TEST_TTA + r"flip\s+2\s+-(\d\.\d+) \[-\d\.\d+, -\d\.\d+\]\s+\+(\d+\.\d+) \[\+"),
        Claim(r"the shifts alone change little", _shifts_change_little),
        Claim(r"six views gain (0\.0015) of Dice, with an interval entirely above zero, and lower HD95 by\s+(0\.14) pixels",
              _TEST_TTA + r"flip \+ shift\s+6\s+\+(\d\.\d+) \[\+[\d.]+, \+[\d.]+\]\s+-(\d+\.\d+)"),
        Given(r"take the 5 % most uncertain pixels", DEFINITION),
        Given(r"catch about 5 % of them", DEFINITION),
        Claim(r"(46) % of its error pixels lie in its 5 % most uncertain pixels", r"worst test image \S+: (\d+)% of its"),
        Claim(r"nine times what unrelated\s+uncertainty would catch", _uncertainty_times_chance),
        Claim(r"the median share is (66) %", r"median (\d+)%,"),
        Claim(r"in the worst test image (46) % of the error pixels lie in its most uncertain\s+twentieth",
              r"worst test image \S+: (\d+)% of its"),
        Given(r"Does the best threshold move to 0\.5", "a suggestion for the learner"),
        Given(r"the mirror at the threshold 0\.5", CONSTANT),
    ],
    "06_lung_ct_3d": [
        Claim(r"in this run neither fired", r"ReduceLROnPlateau reducing|[Ee]arly stopping", "not_shown"),
        Claim(r"and all (16) epochs ran", r"Epoch (\d+)/\d+\n(?![\s\S]*Epoch \d+/\d+)"),   # the last epoch logged
        Given(r"~\d+(?:\.5)? min of compute", TIME),
        Claim(r"256 × 256 pixels of (1\.2)–(1\.4) mm in each slice, 128 slices (2\.6)–(3\.0) mm", _spacing_in_ranges),
        Claim(r"holds (8\.4) million of them", _voxel_count_millions),
        Given(r"at 1\.2 mm most voxels", "the data set's spacing, bound by the claim above"),
        Given(r"slices\s+2\.5–3 mm apart", DEFINITION),
        Given(r"-350 HU gives 0\.5", EXPECTED),
        Given(r"50 HU\s+gives 0\.5", EXPECTED),
        Given(r"100 voxels of 0\.8 × 0\.8 × 2\.5 mm make 0\.16 mL", EXPECTED),
        Given(r"treat values above 0\.5 as inside", DEFINITION),
        Given(r"perfectly \(1\.0\), one empty and one not give 0\.0", EXPECTED),
        Given(r"gives 2 · 0\.5 / 1\.5 ≈ 0\.667", EXPECTED),
        Given(r"resampled to 1\.6 × 1\.4 × 5\.0 mm, gets 25 × 30 × 10 voxels\s+\(21 / 2 = 10\.5", EXPECTED),
        Given(r"`foreground_fraction` 0\.5, for our patches", CONSTANT),
        Claim(r"Our 32³ patches cover\s+about (60) % of every axis", _patch_share_of_axes),
        Claim(r"about two hundredths", _spacing_cost),
        Claim(r"so wherever they fall they show lung: sampling\s+changes little", _sampling_changes_little),
        Given(r"a little spatial dropout \(a rate\s+between 0\.01 and 0\.1\)", CONSTANT),
        Given(r"a momentum of 0\.9 rather than 0\.99", CONSTANT),
        Given(r"the centre voxel `\[3, 3, 3\]` has weight 1\.0", EXPECTED),
        Given(r"its neighbour `\[2, 3, 3\]`\s+0\.5205 and the corner `\[0, 0, 0\]` 0\.001", EXPECTED),
        Given(r"the largest is 0\.8348", EXPECTED),
        Given(r"is above a fixed 0\.5", CONSTANT),
        Given(r"overlap 0\.5\)", CONSTANT),
        Claim(r"\(4 mm: (80) windows for the first case", r"^\s*4\.0 mm\s+\([\d, ]+\)\s+[\d,]+\s+(\d+)\s"),
        Claim(r"U-Net beats the tuned threshold recipe on both", _unet_beats_threshold),
        Claim(r"No single threshold fixes this, as the last line shows", _recipe_below_bar),
        Claim(r"With smaller patches \(a finer spacing, a smaller organ, a larger volume\) the\s+share falls when "
              r"patches are placed anywhere", _small_patches_see_less_lung),
        Claim(r"with these large patches it changes little; with smaller ones it keeps the organ in view",
              _sampling_changes_little),
        Claim(r"\((0\.001) at the least, the\s+weights' floor\); it is never zero", _summed_weights_floor),
    ],
    "07_liver_ct": [
        Given(r"scores a mean Dice of about 0\.76", BENCHMARK),
        Claim(r"clearly beats an intensity threshold \(about 0\.76 Dice\)",
              lambda out, said: _at_least(out, r"mean over folds: (\d\.\d+)", 0.80)),
        Given(r"`FLIP_P` = 0\.2 of the slices", CONSTANT),
        Given(r"`empty_fraction=0\.2`", CONSTANT),
        Given(r"\$0\.5 \\cdot 9 = 4\.5\$ gives 4", DEFINITION),
        Given(r"mean absolute difference of 0\.03, the masks\s+with a Dice above 0\.9", EXPECTED),
        Given(r"a mean absolute difference below 0\.03", EXPECTED),
        Given(r"down to 5 % of that", CONSTANT),
        Given(r'\(a\s+"2\.5D" U-Net\)', DEFINITION),
        Given(r"with a 95 % \*\*bootstrap\s+interval\*\*", DEFINITION),
        Given(r"keep the middle 95 % of the resampled means", DEFINITION),
        Given(r"positive on at least 95 % of the resamples", DEFINITION),
        Claim(r"the larger fraction has the better Dice \*\*and\*\* the better\s+HD95", _largest_fraction_best),
        Claim(r"beats the smaller one on every one of the validation patients, with a paired\s+interval that stays above 0",
              _largest_fraction_beats_each),
        Claim(r"the ensemble's mean Dice is above every single model's, and the paired\s+gain's interval excludes 0",
              r"verdict: the ensemble's mean Dice is above every single model's; the paired Dice interval excludes 0",
              "shown"),
        Given(r"~\d+(?:\.5)? min of compute", TIME),
        Claim(r"the ensemble does not have the lowest mean HD95 of\s+the four, and the paired HD95 interval includes 0",
              _ensemble_hd95_not_best),
        Claim(r"mean disagreement is about (three) times higher on the wrong voxels", _disagreement_ratio),
        Claim(r"about a (third) of\s+the wrong voxels are not flagged", _unflagged_share),
        Claim(r"about (three quarters) of the flagged voxels are\s+in fact right", _flagged_right_share),
        Claim(r"The training Dice that `fit` logs is far below the validation Dice", _fit_dice_far_below),
        Claim(r"fold (\d) trains visibly worse than folds \d and \d \(its loss stays higher, its training\s+Dice "
              r"ends lowest\), yet its validation Dice, printed above, is not the lowest of the three",
              _worst_trainer_not_worst_validated),
        Claim(r"Measured the same way, training and validation patients score alike", _measured_alike),
    ],
    "08_brain_tumour": [
        Given(r"about 68 / 15 / 17 %", DEFINITION),
        Given(r"cases 17 % would be four", DEFINITION),
        Claim(r"over 90 % of the pixels",
              lambda out, said: _at_least(out, r"share of training pixels per class: \[\s*(\d\.\d+)", 0.90)),
        Claim(r"necrosis, the rarest, well under one percent", _necrosis_rarest),
        Claim(r"necrosis is a fraction of a percent\s+of the training pixels", _necrosis_rarest),
        Claim(r"the plain inverse would weigh necrosis\s+hundreds of times the background", _inverse_weighs_hundreds),
        Claim(r"scaled so that the background weighs 1",
              r"class weights \(background, necrosis, oedema, enhancing\): \[\s*1\.\s", "shown"),
        Given(r"\(0\.25 everywhere\)", DEFINITION),
        Given(r"CCE = ln 4 = 1\.386,\s+plus a Dice loss of 0\.727", DEFINITION),
        Claim(r"it is about (2\.113)", r"loss of a uniform prediction: (\d\.\d+)", "about", 0.005),
        Given(r"\*\*1\.0\*\* for a region", DEFINITION),
        Given(r"~\d+(?:\.5)? min of compute", TIME),
        Given(r"that 95 % of the border points", DEFINITION),
        Claim(r"Specificity is at least (0\.98) for every tumour class", _tumour_specificity),
        Claim(r"\(precision (0\.781)\), yet its specificity is (0\.983)",
              r"^oedema \(2\) +(\d\.\d+) +[\d.]+ +(\d\.\d+)"),
        Given(r"with a 95 % bootstrap interval over", DEFINITION),
        Claim(r"The prediction made before the run held", _necrosis_trade),
        Claim(r"necrosis sensitivity \((0\.862) to (0\.973) over the six test brains\)", _necrosis_rows("sensitivity")),
        Claim(r"paid for\s+it in precision \((0\.941) to (0\.836)\)", _necrosis_rows("precision")),
        Claim(r"necrosis Dice fell by (0\.161) on average, but its paired interval \(-(0\.499) to \+(0\.022)\) still reaches",
              r"Dice necrosis +-(\d\.\d+) +-(\d\.\d+) to \+(\d\.\d+)"),
        Claim(r"still reaches\s+0", _necrosis_interval_reaches_zero),
        Claim(r"enhancing-tumour Dice rose by (0\.013), a small gain, but its interval \(\+(0\.006) to\s+\+(0\.016)\)",
              r"^Dice ET +\+(\d\.\d+) +\+(\d\.\d+) to \+(\d\.\d+)"),
        Claim(r"a small gain, but its interval \(\+0\.006 to\s+\+0\.016\) excludes 0", _effect_interval("Dice ET", "above")),
        Claim(r"whole-tumour Dice fell by (0\.040), with an interval \(-(0\.088) to \+(0\.010)\)",
              r"^Dice WT +-(\d\.\d+) +-(\d\.\d+) to \+(\d\.\d+)"),
        Claim(r"\(-0\.088 to \+0\.010\) that\s+includes 0", _effect_interval("Dice WT", "contains")),
        Claim(r"its HD95 grew by (3\.21) mm, with an interval \(\+(0\.49) to \+(6\.13)\)",
              r"^HD95 WT \(mm\) +\+(\d\.\d+) +\+(\d\.\d+) to \+(\d\.\d+)"),
        Claim(r"\(\+0\.49 to \+6\.13\) that excludes 0", _effect_interval("HD95 WT (mm)", "above")),
        Claim(r"mean region Dice\s+(\d\.\d+) against (\d\.\d+)",
              r"(?=.*?^weighted loss +(\d\.\d+) )^plain +loss +(\d\.\d+) "),
        Claim(r"and ahead on necrosis too", _validation_necrosis_weighted),
        Claim(r"so the stated criterion chose the weighted loss",
              r"the test brains are segmented with the weighted loss's model", "shown"),
        Claim(r"the test brains do not confirm it: the\s+mean of their three region Dice differences is below 0",
              _test_regions_not_better),
        Claim(r"so TC and ET can come out as high as WT or\s+higher", _tc_et_not_below_wt),
        Claim(r"a small ET gain, a larger WT HD95, the\s+rest within the noise", _rest_within_noise),
    ],
    "09_challenge": [
        Given(r"~\d+(?:\.5)? min of compute", TIME),
        Given(r"at least 95 % of the resamples", DEFINITION),
        Given(r"trains on 70 % of the 400", CONSTANT),
    ],
    "10_where_next": [
        Given(r"those of MONAI 1\.5 and nnU-Net v2", "the library versions whose names the lesson quotes"),
    ],
}
