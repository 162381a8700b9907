"""Checks for lesson 05 (prediction and evaluation): threshold, per-image metrics table,
keeping the largest components, filling holes, the whole post-processing, the
threshold chosen on validation data, and the post-processing and test-time augmentation
decisions taken from the validation measurements.

Each check compares the learner's function with the reference of
:mod:`helpers.inference` on fixed and random masks and raises ``AssertionError`` naming
the case, expected versus got and a hint; it prints one success line when all is well.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from helpers.checks._common import call, fail, ok

__all__ = ["check_threshold", "check_metrics_table", "check_keep_largest_components",
           "check_fill_holes", "check_postprocess", "check_choose_threshold", "check_postprocessing_choice",
           "check_tta_choice", "best_postprocessing_choice", "best_tta_choice"]


def _random_blobs(shape=(64, 64), n_blobs: int = 4, holes: int = 2, seed: int = 0) -> np.ndarray:
    """The checks' random input: a binary uint8 mask with ``n_blobs`` disks of different radii (some may touch) and
    ``holes`` small holes punched inside them, for the post-processing checks.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    mask = np.zeros(shape, bool)
    centres = []
    for _ in range(n_blobs):
        r = rng.uniform(0.04, 0.18) * min(h, w)
        cy, cx = rng.uniform(r + 1, h - r - 1), rng.uniform(r + 1, w - r - 1)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        centres.append((cy, cx, r))
    for cy, cx, r in centres[:holes]:
        if r > 4:
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= (r / 3) ** 2] = False
    return mask.astype(np.uint8)


def _as_binary(result, name, case, shape):
    if result is None:
        fail(name, case, "returned None.", "did you forget `return`?")
    result = np.asarray(result)
    if result.shape != tuple(shape):
        fail(name, case, f"expected shape {tuple(shape)}, got {result.shape}.")
    values = set(np.unique(result).tolist())
    if not values <= {0, 1, True, False}:
        fail(name, case, f"expected a binary mask of 0 and 1, got values "
                         f"{sorted(values)[:6]}; a mask holds only 0 and 1 (or False and True).")
    return result.astype(bool)


def _compare(got, expected, name, case, hint):
    if not np.array_equal(got, expected):
        diff = int(np.count_nonzero(got != expected))
        fail(name, case, f"{diff} pixel(s) differ from the expected mask "
                         f"(expected {int(expected.sum())} foreground pixels, got {int(got.sum())}). {hint}")


def check_threshold(fn: Callable[..., Any], cases: int = 3, seed: int = 0, dtype: str | None = "uint8") -> None:
    """Check ``fn(probs, value)``: a binary mask of ``probs``' shape and of ``dtype``
    (``None`` accepts any), 1 where the probability is strictly above ``value``, on fixed
    and ``cases`` random arrays.

    Args:
        fn: the function to check (the learner's, or the reference).
        cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        dtype: the dtype the mask must have; None accepts any.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    from helpers import inference

    fixed = np.array([[0.0, 0.2, 0.5], [0.51, 0.8, 1.0]], dtype=np.float32)
    expected = np.array([[0, 0, 0], [1, 1, 1]], bool)
    raw = fn(fixed, 0.5)
    got = _as_binary(raw, "threshold", "[[0, 0.2, 0.5], [0.51, 0.8, 1]] at 0.5", fixed.shape)
    if np.array_equal(got, ~expected) or np.array_equal(got, fixed < 0.5) or np.array_equal(got, fixed <= 0.5):
        fail('threshold', None, "threshold is inverted: foreground is where the probability is ABOVE the value.")
    if np.array_equal(got, fixed >= 0.5):
        fail('threshold', "[[0, 0.2, 0.5], [0.51, 0.8, 1]] at 0.5", "a probability of exactly 0.5 gave 1. "
                                                                    "'Above' is strict: use probs > value, not >=.")
    _compare(got, expected, "threshold", "[[0, 0.2, 0.5], [0.51, 0.8, 1]] at 0.5", "Use probs > value.")
    if dtype is not None and np.asarray(raw).dtype != np.dtype(dtype):
        fail('threshold', None, f"returned dtype {np.asarray(raw).dtype}, expected {dtype} (0 and 1): masks are "
                                f"saved and counted as {dtype}. Convert with (probs > value).astype(np.{dtype}).")
    got = _as_binary(fn(fixed, 0.9), "threshold", "the same array at 0.9", fixed.shape)
    _compare(got, fixed > 0.9, "threshold", "the same array at 0.9",
             "Use the `value` argument, not a fixed 0.5.")
    rng = np.random.default_rng(seed)
    for i in range(int(cases)):
        shape = tuple(int(s) for s in rng.integers(3, 40, size=int(rng.integers(2, 4))))
        probs = rng.random(shape).astype(np.float32)
        value = float(rng.uniform(0.1, 0.9))
        case = f"random probabilities of shape {shape} at {value:.2f}"
        got = _as_binary(fn(probs, value), "threshold", case, shape)
        _compare(got, inference.threshold(probs, value) > 0, "threshold", case,
                 "Compare every element: probs > value, keeping the shape.")
    ok(f"threshold: {int(cases) + 2} cases passed.")


def _row_value(row, key, index):
    if not isinstance(row, dict):
        fail('metrics table', None, f"Row {index} is a {type(row).__name__}; make one dict per image, "
                                    f"e.g. {{'name': ..., 'dice': ..., 'iou': ...}}.")
    if key not in row:
        fail('metrics table', None, f"Row {index} has no {key!r} (keys: {sorted(row)}).")
    return row[key]


def check_metrics_table(fn: Callable[..., Any], cases: int = 1, seed: int = 0,
                        keys: Sequence[str] = ("dice", "iou")) -> None:
    """Check ``fn(true_masks, predicted_masks, names)`` -> list of dicts with ``name`` and
    the per-image ``keys`` (Dice and IoU by default), against the exact NumPy metrics, on
    a fixed set (identical, disjoint, empty, half overlap) and ``cases`` random sets.

    Args:
        fn: the function to check (the learner's, or the reference).
        cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        keys: the metric keys each row must hold.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    from helpers import metrics

    square = np.zeros((8, 8), np.uint8)
    square[2:6, 2:6] = 1
    half = np.zeros((8, 8), np.uint8)
    half[2:6, 4:8] = 1
    other = np.zeros((8, 8), np.uint8)
    other[0:2, 0:2] = 1
    empty = np.zeros((8, 8), np.uint8)
    sets = [("fixed masks (identical, half overlap, disjoint, both empty)",
             [square, square, square, empty], [square, half, other, empty],
             ["same", "half", "disjoint", "empty"])]
    rng = np.random.default_rng(seed)
    for i in range(int(cases)):
        n = int(rng.integers(3, 8))
        truth = [(rng.random((16, 20)) < rng.uniform(0.1, 0.6)).astype(np.uint8) for _ in range(n)]
        pred = [np.where(rng.random(t.shape) < 0.2, 1 - t, t).astype(np.uint8) for t in truth]
        sets.append((f"random set {i + 1} of {n} masks", truth, pred, [f"img_{j}" for j in range(n)]))
    reference = {"dice": metrics.dice_numpy, "iou": metrics.iou_numpy,
                 "sensitivity": lambda t, p: metrics.sensitivity_numpy(t, p, empty=1.0),
                 "precision": lambda t, p: metrics.precision_numpy(t, p, empty=1.0)}
    for label, truth, pred, names in sets:
        rows = fn(truth, pred, names)
        if rows is None:
            fail('metrics table', label, "the function returned None; return the list of rows.")
        rows = list(rows)
        if len(rows) != len(truth):
            fail('metrics table', label, f"expected {len(truth)} rows (one per image), got {len(rows)}.")
        for i, row in enumerate(rows):
            if _row_value(row, "name", i) != names[i]:
                fail('metrics table', label, f"row {i} is named {row['name']!r}, expected {names[i]!r}; keep the "
                                             f"order of the images.")
            for key in keys:
                got = float(_row_value(row, key, i))
                expected = reference[key](truth[i], pred[i])
                if not np.isclose(got, expected, atol=1e-6):
                    hint = ""
                    if names[i] == "empty":
                        hint = " Two empty masks agree perfectly (nothing to find, nothing found): Dice and IoU are 1.0."
                    elif key == "iou" and np.isclose(got, metrics.dice_numpy(truth[i], pred[i])):
                        hint = " That is the Dice: IoU = |A∩B| / |A∪B|."
                    fail('metrics table', label, f"{key} of {names[i]!r} is {got:.4f}, expected {expected:.4f}.{hint}")
    ok(f"metrics table: {', '.join(keys)} per image, {len(sets)} set(s) match.")


def check_keep_largest_components(fn: Callable[..., Any], cases: int = 3, seed: int = 0) -> None:
    """Check ``fn(mask, n)``: keeps the ``n`` largest connected components (8-connected in
    2D) of a binary mask and removes the rest, keeps an empty mask empty, on fixed and
    ``cases`` random masks.

    Args:
        fn: the function to check (the learner's, or the reference).
        cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    from helpers import inference

    mask = np.zeros((20, 30), np.uint8)
    mask[2:12, 2:10] = 1        # 80 px, the largest
    mask[2:10, 14:20] = 1       # 48 px
    mask[14:17, 24:27] = 1      # 9 px speck
    mask[18, 2] = 1             # 1 px speck
    expected = mask.copy()
    expected[14:17, 24:27] = 0
    expected[18, 2] = 0
    label = "two rectangles (80 and 48 px) and two specks (9 and 1 px), n=2"
    got = _as_binary(fn(mask, 2), "keep_largest_components", label, mask.shape)
    if np.array_equal(got, mask > 0):
        fail('keep_largest_components', label, "nothing was removed; only the n components with the most "
                                               "pixels may stay.")
    if got.sum() == 80 + 48 + 9 and not got[18, 2]:
        fail('keep_largest_components', label, "the 9-pixel speck is still there, as if the "
                                               "background counted as one of the n components: it is never a component.")
    _compare(got, expected > 0, "keep_largest_components", label,
             "Only the n components with the most pixels may stay, and the background is not one of them.")
    got = _as_binary(fn(mask, 1), "keep_largest_components", label.replace("n=2", "n=1"), mask.shape)
    only = np.zeros_like(mask)
    only[2:12, 2:10] = 1
    _compare(got, only > 0, "keep_largest_components", label.replace("n=2", "n=1"), "Use the `n` argument.")
    diagonal = np.eye(6, dtype=np.uint8)
    got = _as_binary(fn(diagonal, 1), "keep_largest_components", "a diagonal line, n=1", diagonal.shape)
    _compare(got, diagonal > 0, "keep_largest_components", "a diagonal line, n=1",
             "The pixels of a diagonal line touch by their corners: they are ONE component (8-connectivity), kept whole.")
    few = np.zeros((10, 10), np.uint8)
    few[2:5, 2:5] = 1
    got = _as_binary(fn(few, 2), "keep_largest_components", "a mask with a single component, n=2", few.shape)
    _compare(got, few > 0, "keep_largest_components", "a mask with a single component, n=2",
             "With fewer than n components keep them all.")
    empty = np.zeros((5, 5), np.uint8)
    got = _as_binary(call(fn, "keep_largest_components", "an empty mask, n=2", empty, 2),
                     "keep_largest_components", "an empty mask, n=2", empty.shape)
    if got.any():
        fail('keep_largest_components', "an empty mask, n=2",
             f"an empty mask must stay empty, got {int(got.sum())} foreground pixels of {got.size}.",
             "a mask without foreground has no component at all: is the background counted as one?")
    for i in range(int(cases)):
        case = _random_blobs((48, 56), n_blobs=5, holes=0, seed=seed + i)
        n = 1 + i % 3
        label = f"random blobs {i + 1}, n={n}"
        got = _as_binary(fn(case, n), "keep_largest_components", label, case.shape)
        _compare(got, inference.keep_largest_components(case, n) > 0, "keep_largest_components",
                 label, "Keep the n largest components.")
    ok(f"keep_largest_components: {int(cases) + 5} cases passed.")


def check_fill_holes(fn: Callable[..., Any], cases: int = 3, seed: int = 0) -> None:
    """Check ``fn(mask)``: holes (background not connected to the border) become
    foreground; nothing else changes.

    Args:
        fn: the function to check (the learner's, or the reference).
        cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    from helpers import inference

    ring = np.zeros((12, 12), np.uint8)
    ring[2:10, 2:10] = 1
    ring[4:8, 4:8] = 0
    cup = ring.copy()
    cup[4:8, 8:10] = 0          # open to the right: not a hole
    for label, mask in (("a square ring", ring), ("a cup open to the side", cup)):
        got = _as_binary(fn(mask), "fill_holes", label, mask.shape)
        _compare(got, inference.fill_holes(mask) > 0, "fill_holes", label,
                 "Only background that does not touch the image border is a hole, and every hole is filled.")
    for i in range(int(cases)):
        mask = _random_blobs((40, 40), n_blobs=3, holes=3, seed=seed + 100 + i)
        label = f"random blobs with holes {i + 1}"
        got = _as_binary(fn(mask), "fill_holes", label, mask.shape)
        _compare(got, inference.fill_holes(mask) > 0, "fill_holes", label, "Fill every hole.")
    ok(f"fill_holes: {int(cases) + 2} cases passed.")


_POSTPROCESS_HINT = "The result must be the n largest components of the mask, with their holes filled."


def check_postprocess(fn: Callable[..., Any], cases: int = 3, seed: int = 0, n_components: int = 2) -> None:
    """Check ``fn(mask)``: keep the ``n_components`` largest components, then fill holes,
    like :func:`helpers.inference.postprocess`; ``fn(mask, n_components=3)`` must keep three.

    Args:
        fn: the function to check (the learner's, or the reference).
        cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        n_components: the components ``fn`` keeps by default.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    from helpers import inference

    mask = np.zeros((24, 32), np.uint8)
    mask[2:20, 2:12] = 1
    mask[8:12, 5:8] = 0          # a hole in the left "lung"
    mask[2:18, 16:28] = 1
    mask[20:22, 20:22] = 1       # a speck
    label = "two lungs, one with a hole, and a speck"
    got = _as_binary(fn(mask), "postprocess", label, mask.shape)
    expected = inference.postprocess(mask, n_components) > 0
    if got[21, 21]:
        fail('postprocess', label, f"the speck is still there; keep only the "
                                   f"{n_components} largest components.")
    if not got[10, 6]:
        fail('postprocess', label, "the hole inside a kept component is still "
                                   "there; the result must have no holes.")
    _compare(got, expected, "postprocess", label, _POSTPROCESS_HINT)
    label = f"{label}, n_components=3"
    got = _as_binary(fn(mask, n_components=3), "postprocess", label, mask.shape)
    if not got[21, 21]:
        fail('postprocess', label, "the speck was removed although n_components=3 keeps three components.",
             "the `n_components` argument must decide how many components stay, not a fixed number.")
    _compare(got, inference.postprocess(mask, 3) > 0, "postprocess", label, _POSTPROCESS_HINT)
    for i in range(int(cases)):
        mask = _random_blobs((48, 48), n_blobs=5, holes=2, seed=seed + 200 + i)
        label = f"random blobs with holes {i + 1}"
        got = _as_binary(fn(mask), "postprocess", label, mask.shape)
        _compare(got, inference.postprocess(mask, n_components) > 0, "postprocess", label, _POSTPROCESS_HINT)
    ok(f"postprocess: {int(cases) + 2} cases passed.")


#: The candidate thresholds of the fixed cases of :func:`check_choose_threshold`.
_CANDIDATES = (0.2, 0.35, 0.5, 0.65, 0.8)


def _threshold_case(seed: int, n: int = 4, shape=(10, 12)) -> tuple[list, list]:
    """A small validation set for :func:`check_choose_threshold`: ``n`` probability maps
    (rounded to 0.01) and their masks, the last mask empty, each map shifted up or down by
    its own amount so that the images disagree on their best threshold.
    """
    rng = np.random.default_rng(seed)
    probs, masks = [], []
    for i in range(n):
        truth = np.zeros(shape, np.uint8)
        if i < n - 1:
            y, x = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
            h, w = rng.integers(3, shape[0] - y + 1), rng.integers(3, shape[1] - x + 1)
            truth[y:y + h, x:x + w] = 1
        shift = rng.uniform(-0.35, 0.35)
        p = np.where(truth > 0, rng.uniform(0.3, 1.0, shape), rng.uniform(0.0, 0.7, shape)) + shift
        probs.append(np.round(np.clip(p, 0, 1), 2))
        masks.append(truth)
    return probs, masks


def _mean_dice_table(probs, masks, candidates, empty=1.0, strict=True) -> np.ndarray:
    from helpers import metrics

    return np.array([[metrics.dice_numpy(m, (p > c) if strict else (p >= c), empty=empty)
                      for p, m in zip(probs, masks)] for c in candidates])


def _threshold_hint(got: float, probs, masks, candidates) -> str:
    """The usual mistake that gives ``got`` on this set, or a general hint."""
    from helpers import metrics

    table = _mean_dice_table(probs, masks, candidates)
    pick = lambda scores: candidates[int(np.argmax(scores))]  # noqa: E731 - a one-line rule
    pooled = [metrics.dice_numpy(np.concatenate([np.ravel(m) for m in masks]),
                                 np.concatenate([np.ravel(p) > c for p in probs])) for c in candidates]
    with np.errstate(invalid="ignore"):
        mistakes = [
            (candidates[int(np.argmin(table.mean(axis=1)))], "that is the threshold with the WORST mean Dice: the lowest instead of the highest."),
            (pick(table.max(axis=1)), "that candidate has the best single image; choose by the MEAN Dice over the images, not the max."),
            (pick(np.median(table, axis=1)), "that candidate has the best median; the exercise asks for the mean over the images."),
            (pick(pooled), "that is the best Dice of all pixels pooled together; compute one Dice per image, then average."),
            (pick(_mean_dice_table(probs, masks, candidates, strict=False).mean(axis=1)),
             "that is what `probs >= t` gives; foreground is strictly above the threshold, as in `threshold`."),
            (pick(_mean_dice_table(probs, masks, candidates, empty=0.0).mean(axis=1)),
             "an image with an empty mask and an empty prediction has Dice 1.0 (nothing to find, nothing found), not 0."),
        ]
    expected = pick(table.mean(axis=1))
    matching = [hint for value, hint in mistakes if value != expected and np.isclose(got, value)]
    if len(matching) == 1:
        return matching[0]
    if matching:
        return "one of these mistakes gives this choice: " + " Or: ".join(matching)
    return ("the answer is the candidate whose masks (`p > t`) have the highest mean, over the images given, of "
            "their per-image Dice.")


def _chosen(fn, probs, masks, candidates, label) -> float:
    raw = call(fn, "choose_threshold", label, [np.array(p) for p in probs], [np.array(m) for m in masks],
               list(candidates))
    try:
        value = float(np.asarray(raw).item())
    except (TypeError, ValueError):
        fail("choose_threshold", label, f"returned {raw!r}; expected one threshold, a number.",
             "return the chosen candidate itself, one number.")
    if not any(np.isclose(value, c) for c in candidates):
        table = _mean_dice_table(probs, masks, candidates).mean(axis=1)
        if float(value).is_integer() and 0 <= value < len(candidates):
            hint = "that looks like an index into the candidates: return candidates[index], the threshold itself."
        elif np.isclose(value, table.max()):
            hint = "that is the best mean Dice itself; return the threshold that gives it."
        else:
            hint = "return one of the candidates you were given, the one with the best mean Dice."
        fail("choose_threshold", label, f"returned {value}, which is not one of the candidates {list(candidates)}.",
             hint)
    return value


def check_choose_threshold(fn: Callable[..., Any], cases: int = 0, seed: int = 0, data: tuple | None = None) -> None:
    """Check ``fn(probabilities, masks, candidates)``: the candidate with the best mean
    per-image Dice (masks ``p > t``; two empty masks have Dice 1.0), the first of tied
    candidates in their given order, computed from the data it is given.

    Fixed sets (two with different optima, so a function that ignores its arguments fails;
    one with a tie), ``cases`` random sets, and, with ``data=(probabilities, masks,
    candidates)``, the lesson's validation data: the choice must be the reference's
    (:func:`helpers.inference.choose_threshold`) there too.

    Args:
        fn: the function to check (the learner's, or the reference).
        cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.
        data: the lesson's ``(probabilities, masks, candidates)``, or None.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    from helpers import inference

    sets: list[tuple[str, Any, Any, tuple[float, ...]]] = [
        (f"fixed validation set {i + 1} of 4 maps", *_threshold_case(s), _CANDIDATES) for i, s in enumerate((18, 24))]
    tie_probs = [np.array([[0.1, 0.3, 0.6], [0.9, 0.2, 0.7]]), np.array([[0.8, 0.25, 0.1], [0.95, 0.3, 0.05]])]
    tie_masks = [np.array([[0, 1, 1], [1, 0, 1]], np.uint8), np.array([[1, 0, 0], [1, 1, 0]], np.uint8)]
    sets.append(("a tie: 0.35 and 0.5 give the same masks (no probability lies between them)",
                 tie_probs, tie_masks, (0.35, 0.5, 0.75)))
    rng = np.random.default_rng(seed)
    for i in range(int(cases)):
        candidates = tuple(np.round(np.sort(rng.uniform(0.05, 0.95, size=int(rng.integers(3, 8)))), 3))
        probs, masks = _threshold_case(int(rng.integers(1000, 10**6)), n=int(rng.integers(2, 7)))
        sets.append((f"random validation set {i + 1}", probs, masks, candidates))
    if data is not None:
        probs, masks, candidates = data
        sets.append(("the lesson's validation data", list(probs), list(masks), tuple(candidates)))
    for label, probs, masks, candidates in sets:
        got = _chosen(fn, probs, masks, candidates, label)
        if label == "the lesson's validation data":
            expected = inference.choose_threshold(probs, masks, candidates)
        else:
            expected = candidates[int(np.argmax(_mean_dice_table(probs, masks, candidates).mean(axis=1)))]
        if not np.isclose(got, expected):
            scores = _mean_dice_table(probs, masks, candidates).mean(axis=1) if len(probs) < 20 else None
            shown = (" (mean Dice per candidate: " + ", ".join(f"{c:g}: {s:.3f}" for c, s in zip(candidates, scores))
                     + ")") if scores is not None else ""
            if label.startswith("a tie"):
                hint = ("on a tie keep the FIRST of the tied candidates, in the order given; yours kept "
                        "another of them.")
            else:
                hint = _threshold_hint(got, probs, masks, candidates)
            fail("choose_threshold", label, f"chose {got:g}, expected {expected:g}{shown}.",
                 hint + " Use only the probabilities and masks passed in: the test set must not decide.")
    ok(f"choose_threshold: {len(sets)} validation set(s), the best mean Dice chosen in each.")


def check_postprocessing_choice(choice: Any, dice: Sequence[float], dice_clean: Sequence[float],
                                hd95: Sequence[float], hd95_clean: Sequence[float]) -> None:
    """Check the post-processing decision taken from the lesson's validation measurement:
    ``choice`` (``USE_POSTPROCESSING``) must be ``True`` exactly when the step changed at
    least one image's Dice and made neither the mean Dice nor the mean HD95 worse (the rule
    the lesson states before the measurement).

    Args:
        choice: the learner's ``USE_POSTPROCESSING``, True or False.
        dice: per-image validation Dice without post-processing.
        dice_clean: the same images' Dice with post-processing.
        hd95: per-image validation HD95 without post-processing.
        hd95_clean: the same images' HD95 with post-processing.

    Raises:
        AssertionError: the choice is unset, not a bool, or not what the rule gives on this
            measurement; the message names which part of the rule it breaks, never the value.
    """
    name = "USE_POSTPROCESSING"
    if choice is None or choice is Ellipsis:
        fail(name, None, "is not set yet.", "set it to True or False by the rule stated above the measurement.")
    if not isinstance(choice, (bool, np.bool_)):
        fail(name, None, f"got {choice!r}; expected True or False (a bool, not text or a number).")
    changed, dice_ok, hd_ok = _postprocessing_conditions(dice, dice_clean, hd95, hd95_clean)
    expected = changed and dice_ok and hd_ok
    if bool(choice) != expected:
        if not expected and not changed:
            reason = "the step changed no validation image's Dice: there is no evidence that it does anything here."
        elif not expected and not dice_ok:
            reason = "with the step the mean validation Dice is lower, and the rule keeps it only if neither mean gets worse."
        elif not expected:
            reason = "with the step the mean validation HD95 is higher, and the rule keeps it only if neither mean gets worse."
        else:
            reason = ("the measurement meets every condition of the rule (images changed, neither mean worse); "
                      "read the printed lines again.")
        fail(name, None, f"{choice} does not follow the rule on this validation measurement: {reason}")
    ok(f"{name} = {bool(choice)}: the rule applied to the validation measurement.")


def _postprocessing_conditions(dice: Sequence[float], dice_clean: Sequence[float], hd95: Sequence[float],
                               hd95_clean: Sequence[float]) -> tuple[bool, bool, bool]:
    """The three conditions of lesson 05's post-processing rule: some image changed, the mean
    Dice is not lower, the mean HD95 is not higher.
    """
    dice_raw, dice_post = np.asarray(dice, float), np.asarray(dice_clean, float)
    hd95_raw, hd95_post = np.asarray(hd95, float), np.asarray(hd95_clean, float)
    return (bool(np.any(np.abs(dice_post - dice_raw) > 1e-6)), bool(dice_post.mean() >= dice_raw.mean()),
            bool(hd95_post.mean() <= hd95_raw.mean()))


def best_postprocessing_choice(dice: Sequence[float], dice_clean: Sequence[float], hd95: Sequence[float],
                               hd95_clean: Sequence[float]) -> bool:
    """The decision of Exercise 5.6 by the lesson's rule (what the fallback after its check uses).

    Args:
        dice: per-image validation Dice without post-processing.
        dice_clean: the same images' Dice with post-processing.
        hd95: per-image validation HD95 without post-processing.
        hd95_clean: the same images' HD95 with post-processing.

    Returns:
        True when the step changed an image and made neither mean worse.
    """
    return all(_postprocessing_conditions(dice, dice_clean, hd95, hd95_clean))


def best_tta_choice(evidence: dict) -> str:
    """The decision of Exercise 5.7 by the lesson's rule (what the fallback after its check uses).

    Args:
        evidence: variant name -> ``{"dice_gain", "dice_low", "hd95_change"}`` on validation.

    Returns:
        Among the variants whose Dice-gain interval lies above 0 and whose mean HD95 change is not
        positive, the one with the largest mean gain; ``"none"`` when no variant qualifies.
    """
    eligible = {variant: float(e["dice_gain"]) for variant, e in evidence.items()
                if float(e["dice_low"]) > 0 and float(e["hd95_change"]) <= 0}
    return max(eligible, key=lambda variant: eligible[variant]) if eligible else "none"


def check_tta_choice(choice: Any, evidence: dict) -> None:
    """Check the test-time augmentation variant chosen from the lesson's validation table:
    among the variants whose Dice gain has a 95 % interval entirely above zero and whose mean
    HD95 change is not positive, the one with the largest mean Dice gain; ``"none"`` when
    no variant qualifies (the rule the lesson states before the measurement).

    Args:
        choice: the learner's ``TTA``, a variant's name or ``"none"``.
        evidence: variant name -> ``{"dice_gain": mean, "dice_low": interval's low end,
            "hd95_change": mean}``, measured on validation images against no TTA.

    Raises:
        AssertionError: the choice is unset, not a variant that was measured, or not the one
            the rule picks; the message names the condition it breaks, never the answer.
    """
    name = "TTA"
    options = ["none", *evidence]
    if choice is None or choice is Ellipsis:
        fail(name, None, "is not set yet.", f"set it to one of {options}, read from the validation table above.")
    if not isinstance(choice, str) or choice not in options:
        fail(name, None, f"{choice!r} is not one of the variants measured: {options}.",
             "spell the variant's name as the table does.")
    expected = best_tta_choice(evidence)
    if choice != expected:
        if choice == "none":
            reason = ("at least one variant passes the rule on validation (a Dice interval entirely above zero, "
                      "mean HD95 not worse).")
        elif float(evidence[choice]["dice_low"]) <= 0:
            reason = f"the Dice gain of {choice!r} has an interval that does not lie entirely above zero: it may be noise."
        elif float(evidence[choice]["hd95_change"]) > 0:
            reason = f"{choice!r} makes the mean HD95 worse on validation."
        else:
            reason = "another variant that passes the rule has a larger mean Dice gain on validation."
        fail(name, None, f"you chose {choice!r}, but {reason}", "never look at the test data.")
    ok(f"{name} = {choice!r}: the variant the rule picks on the validation data.")
