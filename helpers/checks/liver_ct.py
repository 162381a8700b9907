"""Checks for lesson 07 (liver CT, 2D slices from 3D volumes, k-fold cross-validation).

Each check runs the learner's function on small synthetic volumes and masks, compares
with the reference implementation in :mod:`helpers.slices`, and raises ``AssertionError`` naming the
case, what was expected, what came back and a hint; it prints one success line when all
is well.

Conventions of the lesson: volumes and masks are ``(X, Y, Z)`` arrays as stored in NIfTI
(x towards the patient's left, y towards the back, axial slices along the last axis);
2D slices are ``(n, H, W, 1)`` float32 arrays in radiological view (rows = y, columns = x),
images windowed to [0, 1] with ``config.HU_WINDOW_LIVER``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from helpers import config, slices
from helpers.checks._common import call, check_best_choice, fail, name_of, ok

__all__ = ["check_select_slices", "check_volume_to_slices", "check_flip_augmentation",
           "check_kfold", "check_predict_liver_volume", "check_empty_fraction_choice"]


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

def _toy_mask(rng, shape=(24, 20, 16), first=None, last=None):
    """A blob mask present in slices first..last (inclusive), empty elsewhere."""
    x, y, z = shape
    first = int(rng.integers(1, z // 3)) if first is None else first
    last = int(rng.integers(z // 2, z - 1)) if last is None else last
    mask = np.zeros(shape, np.uint8)
    for k in range(first, last + 1):
        cx, cy = rng.integers(5, x - 5), rng.integers(5, y - 5)
        r = int(rng.integers(2, 5))
        mask[cx - r:cx + r, cy - r:cy + r, k] = 1
    return mask


def _toy_volume(rng, shape=(40, 32, 6)):
    """HU volume with an asymmetric liver-like block and its mask (x, y, z)."""
    volume = rng.normal(-100, 30, shape).astype(np.float32)
    volume[: shape[0] // 2, : shape[1] // 3] = 1000.0        # bright corner: shows orientation
    mask = np.zeros(shape, np.uint8)
    mask[4: shape[0] // 2, shape[1] // 2: shape[1] - 3] = 1
    volume[mask == 1] = rng.normal(60, 10, int(mask.sum()))
    volume[-3:, :, :] = -1000.0
    return volume, mask


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------

def check_select_slices(select_slices: Callable[..., Any], random_cases: int = 5, seed: int = 0) -> None:
    """Check ``select_slices(mask, empty_fraction, rng) -> sorted slice indices``: all liver
    slices, the right number of empty ones, no duplicates, reproducible with a seeded rng.

    Args:
        select_slices: the function to check.
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    rng = np.random.default_rng(seed)
    cases = [("liver in slices 3..9 of 16", _toy_mask(rng, first=3, last=9), 0.0),
             ("liver in slices 3..9 of 16, empty_fraction=0.5", _toy_mask(rng, first=3, last=9), 0.5),
             ("liver in every slice", _toy_mask(rng, first=0, last=15), 0.3),
             ("no liver at all, empty_fraction=0.25", np.zeros((8, 8, 12), np.uint8), 0.25)]
    for i in range(random_cases):
        cases.append((f"random mask {i}", _toy_mask(rng), float(rng.choice([0.0, 0.1, 0.2, 0.5, 1.0]))))
    for case, mask, fraction in cases:
        out = call(select_slices, name_of(select_slices), case, mask.copy(), fraction, np.random.default_rng(7))
        got = np.asarray(out)
        if got.ndim != 1 or got.dtype.kind not in "iu":
            fail('select_slices', case, f"expected a 1D array of integer slice indices, got "
                                        f"{type(out).__name__} of shape {got.shape} and dtype {got.dtype}: slice numbers, "
                                        f"not a True/False value per slice.")
        has_liver = mask.any(axis=(0, 1))
        liver = np.flatnonzero(has_liver)
        n_empty = int(round(fraction * (~has_liver).sum()))
        missing = sorted(set(liver.tolist()) - set(got.tolist()))
        if missing:
            fail('select_slices', case, f"liver slices {missing[:8]} are missing. Expected every "
                                        f"slice that holds at least one liver voxel; got {got.tolist()}. Hint: the axial slices "
                                        f"are the LAST axis of an (X, Y, Z) volume.")
        if len(np.unique(got)) != len(got):
            fail('select_slices', case, f"indices repeat ({got.tolist()}): a slice may be kept only "
                                        f"once, so no empty slice may be drawn twice.")
        if np.any(np.diff(got) < 0):
            fail('select_slices', case, f"indices should be sorted in increasing order, got {got.tolist()}.")
        if got.size and (got.min() < 0 or got.max() >= mask.shape[-1]):
            fail('select_slices', case, f"index out of range 0..{mask.shape[-1] - 1}: {got.tolist()}.")
        extra = len(got) - len(liver)
        if extra != n_empty:
            fail('select_slices', case, f"expected {len(liver)} liver slices + round({fraction} * "
                                        f"{int((~has_liver).sum())} empty) = {n_empty} empty slices = {len(liver) + n_empty} "
                                        f"indices, got {len(got)}: the share applies to the slices WITHOUT liver, rounded "
                                        f"to the nearest integer.")
        again = np.asarray(call(select_slices, name_of(select_slices), case, mask.copy(), fraction, np.random.default_rng(7)))
        if not np.array_equal(again, got):
            fail('select_slices', case, "two calls with the same seeded rng gave different "
                                        "indices: the randomness must come from the rng argument alone, not from a "
                                        "global random generator.")
    mask = _toy_mask(np.random.default_rng(seed + 1), first=6, last=9)   # 12 empty slices on both sides
    draws = {tuple(np.asarray(call(select_slices, name_of(select_slices), "empty_fraction=0.25, ten seeds", mask.copy(), 0.25,
                                    np.random.default_rng(k))).tolist()) for k in range(10)}
    if len(draws) == 1:
        fail('select_slices', 'empty_fraction=0.25 with ten different rng seeds', "every seed gave the same "
                                                                                  f"slices {sorted(draws)[0]}. Hint: the empty slices must be a random sample "
                                                                                  "of all the empty slices, not the first ones: the first "
                                                                                  "empty slices all lie at one end of the volume (the lung bases), so the model would "
                                                                                  "never see the pelvis without liver.")
    ok(f"select_slices keeps every liver slice and the right number of empty ones "
             f"({len(cases)} cases).")


def check_volume_to_slices(volume_to_slices: Callable[..., Any], size: int = 32, seed: int = 0) -> None:
    """Check ``volume_to_slices(volume, mask, indices, size) -> (images, masks)``: shapes
    (n, size, size, 1) float32, HU window to [0, 1], radiological orientation, resizing.

    Args:
        volume_to_slices: the function to check.
        size: the output size passed to it.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    rng = np.random.default_rng(seed)
    volume, mask = _toy_volume(rng)
    for case, indices in (("slices [1, 3, 4]", [1, 3, 4]), ("one slice [0]", [0]),
                          ("all slices", list(range(volume.shape[2])))):
        out = call(volume_to_slices, name_of(volume_to_slices), case, volume.copy(), mask.copy(), np.array(indices), size)
        if not isinstance(out, tuple) or len(out) != 2:
            fail('volume_to_slices', case, f"expected a tuple (images, masks), got {type(out).__name__}.")
        images, masks = (np.asarray(a) for a in out)
        expected_shape = (len(indices), size, size, 1)
        for what, array in (("images", images), ("masks", masks)):
            if array.shape != expected_shape:
                fail('volume_to_slices', case, f"{what} should have shape {expected_shape} (slices, H, W, channel), "
                                               f"got {array.shape}. Hint: the slice axis comes first, then the size x size "
                                               f"rows and columns, then a channel axis of length 1.")
            if array.dtype != np.float32:
                fail('volume_to_slices', case, f"{what} should be float32, got {array.dtype}.")
        ref_images, ref_masks = slices.volume_to_slices(volume, mask, indices, size)
        if images.min() < -1e-6 or images.max() > 1 + 1e-6:
            fail('volume_to_slices', case, f"images should lie in [0, 1] after the HU window "
                                           f"{config.HU_WINDOW_LIVER}, got {images.min():.3f}..{images.max():.3f}. "
                                           f"Hint: the window maps low to 0 and high to 1, and nothing lies outside.")
        if not set(np.unique(masks).tolist()) <= {0.0, 1.0}:
            fail('volume_to_slices', case, f"masks should hold only 0 and 1 after resizing, got "
                                           f"{np.unique(masks)[:6]}: resampling leaves fractions at the border; the masks must "
                                           f"come back binary.")
        transposed = np.swapaxes(ref_images, 1, 2)
        error = float(np.abs(images - ref_images).mean())
        if error > 0.03:
            if float(np.abs(images - transposed).mean()) < 0.03:
                fail('volume_to_slices', case, "the images are transposed. NIfTI stores (x, y) but "
                                               "an image is (rows, cols) = (y, x) in radiological view.")
            fail('volume_to_slices', case, f"images differ from the expected windowed, resized slices "
                                           f"(mean |difference| {error:.3f}, expected < 0.03). Hint: window with "
                                           f"config.HU_WINDOW_LIVER = {config.HU_WINDOW_LIVER}, and resample by "
                                           f"linear interpolation, smoothing the images as they shrink.")
        overlap = 2 * float((masks * ref_masks).sum()) / max(float(masks.sum() + ref_masks.sum()), 1.0)
        if overlap < 0.9:
            fail('volume_to_slices', case, f"masks do not match the expected resized masks "
                                           f"(Dice {overlap:.2f}, expected > 0.9). Hint: the masks must be oriented "
                                           f"and resampled like the images.")
    ok(f"volume_to_slices windows, orients and resizes slices to (n, {size}, {size}, 1).")


def check_flip_augmentation(random_flip: Callable[..., Any], n: int = 200, seed: int = 0) -> None:
    """Check ``random_flip(images, masks, rng, p) -> (images, masks)``: the same left-right
    flip for an image and its mask, about p of the pairs flipped, inputs unchanged.

    Args:
        random_flip: the function to check.
        n: the number of image/mask pairs flipped.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    rng = np.random.default_rng(seed)
    images = rng.random((n, 8, 6, 1)).astype(np.float32)
    masks = (rng.random((n, 8, 6, 1)) > 0.5).astype(np.float32)
    for p in (0.0, 0.5, 1.0):
        before = images.copy(), masks.copy()
        out = call(random_flip, name_of(random_flip), f"p={p}", images, masks, np.random.default_rng(1), p)
        if not isinstance(out, tuple) or len(out) != 2:
            fail('random_flip', f"p={p}", f"expected a tuple (images, masks), got {type(out).__name__}.")
        got_images, got_masks = (np.asarray(a) for a in out)
        if not (np.array_equal(images, before[0]) and np.array_equal(masks, before[1])):
            fail('random_flip', f"p={p}", "it changed its input arrays in place.",
                 "return new arrays, so that the original training set stays as it was.")
        if got_images.shape != images.shape or got_masks.shape != masks.shape:
            fail('random_flip', f"p={p}", f"expected shapes {images.shape} and {masks.shape}, got "
                                         f"{got_images.shape} and {got_masks.shape}.")
        flipped_images = np.array([np.array_equal(g, x[:, ::-1]) and not np.array_equal(g, x)
                                   for g, x in zip(got_images, images)])
        same_images = np.array([np.array_equal(g, x) for g, x in zip(got_images, images)])
        flipped_masks = np.array([np.array_equal(g, x[:, ::-1]) for g, x in zip(got_masks, masks)])
        same_masks = np.array([np.array_equal(g, x) for g, x in zip(got_masks, masks)])
        if not np.all(flipped_images | same_images):
            upside = np.array_equal(got_images[0], images[0, ::-1]) or np.array_equal(got_images[-1], images[-1, ::-1])
            fail('random_flip', f"p={p}", "some images are neither unchanged nor flipped left-right"
                 + (" (they were flipped upside down)." if upside else "."),
                 "left-right mirrors the W axis of (n, H, W, C): the columns, not the rows.")
        if not np.all((flipped_images & flipped_masks) | (same_images & same_masks)):
            fail('random_flip', f"p={p}", "an image and its mask were not flipped together.",
                 "each pair gets ONE random decision, and it holds for the image and its mask alike.")
        share = flipped_images.mean()
        low, high = {0.0: (0, 0), 0.5: (0.35, 0.65), 1.0: (1, 1)}[p]
        if not low <= share <= high:
            fail('random_flip', f"p={p}", f"expected a share of flipped pairs in [{low}, {high}], got {share:.2f}.",
                 "each pair is mirrored with probability p, independently of the others.")
    ok("random_flip flips each image together with its mask, with probability p.")


def check_kfold(kfold_by_patient: Callable[..., Any], n_cases: int = 20, k: int = 3, seed: int = 0) -> None:
    """Check ``kfold_by_patient(case_ids, k, seed) -> [(train_ids, val_ids), ...]``: a
    partition of the patients into k validation folds of near-equal size, no leak between
    train and validation, shuffled and reproducible.

    Args:
        kfold_by_patient: the function to check.
        n_cases: the number of patients.
        k: the number of folds.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    ids = [f"ircad_e{i:02d}" for i in range(1, n_cases + 1)]
    with_repeats = [pid for pid in ids for _ in range(3)]      # several slices per patient
    for case, case_ids, kk in ((f"{n_cases} patients, k={k}", ids, k),
                               (f"{n_cases} patients listed once per slice, k={k}", with_repeats, k),
                               ("7 patients, k=2", ids[:7], 2), ("5 patients, k=5", ids[:5], 5)):
        folds = call(kfold_by_patient, name_of(kfold_by_patient), case, list(case_ids), kk, seed)
        folds = list(folds)
        patients = sorted(set(case_ids))
        if len(folds) != kk:
            fail('kfold_by_patient', case, f"expected {kk} folds, got {len(folds)}.")
        vals = []
        for number, fold in enumerate(folds, start=1):
            try:
                train, val = (list(part) for part in fold)
            except (TypeError, ValueError):
                fail('kfold_by_patient', case, f"fold {number} should be a pair (train_ids, val_ids), "
                                               f"got {fold!r:.80}")
            if set(train) & set(val):
                fail('kfold_by_patient', case, f"fold {number} has patients both in train and validation: "
                                               f"{sorted(set(train) & set(val))[:5]}. This leaks slices of one patient "
                                               f"into both sets. Hint: a patient listed several times is still one patient.")
            if set(train) | set(val) != set(patients) or len(set(val)) != len(val) or len(set(train)) != len(train):
                fail('kfold_by_patient', case, f"fold {number}: train + validation should hold every "
                                               f"patient exactly once ({len(patients)}), got {len(train)} + {len(val)} "
                                               f"ids. Hint: a patient listed several times is still one patient.")
            vals.append(val)
        all_val = [pid for val in vals for pid in val]
        if sorted(all_val) != patients:
            fail('kfold_by_patient', case, f"every patient must be in exactly one validation fold; "
                                           f"got validation folds of sizes {[len(v) for v in vals]} covering "
                                           f"{len(set(all_val))} of {len(patients)} patients.")
        sizes = [len(v) for v in vals]
        if max(sizes) - min(sizes) > 1:
            fail('kfold_by_patient', case, f"validation fold sizes should differ by at most 1, got {sizes}. "
                                           f"With 20 patients and k=3 the sizes are 7, 7 and 6.")
        again = [(sorted(t), sorted(v)) for t, v in call(kfold_by_patient, name_of(kfold_by_patient), case, list(case_ids), kk, seed)]
        if again != [(sorted(t), sorted(v)) for t, v in folds]:
            fail('kfold_by_patient', case, "two calls with the same seed gave different folds. "
                                           "Hint: the draw must depend on the seed argument alone.")
    contiguous = [sorted(ids[i * len(ids) // k:(i + 1) * len(ids) // k]) for i in range(k)]
    strided = [sorted(ids[i::k]) for i in range(k)]
    folds = [sorted(v) for _, v in kfold_by_patient(list(ids), k, seed)]
    if folds in (contiguous, strided):
        fail('kfold_by_patient', None, "the folds follow the order of the case numbers.",
             "shuffle the patients with the seed first (cases are often sorted by hospital or date).")
    other = [sorted(v) for _, v in kfold_by_patient(list(ids), k, seed + 1)]
    if other == folds:
        fail('kfold_by_patient', None, "seed has no effect on the folds.",
             "the random draw must use the seed argument.")
    ok(f"kfold_by_patient makes {k} patient-level folds with no leak between train and validation.")


class _OneMinusModel:
    """A stand-in for a trained 2D model: its "probability" is one minus the input image, so
    that a transposed, mirrored, unwindowed or unresized slice shows in the values. It answers
    ``predict`` and ``predict_on_batch`` with NumPy arrays and a call with a tensor, as a Keras
    model does, and traces nothing.
    """

    def predict(self, x: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        """``1 - x`` as float32 (``batch_size``, ``verbose`` and the like are accepted)."""
        return (1.0 - np.asarray(x, dtype=np.float32)).astype(np.float32)

    def predict_on_batch(self, x: Any) -> np.ndarray:
        """``1 - x`` as float32."""
        return self.predict(x)

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """``1 - x`` as a tensor, as ``model(x)`` gives."""
        import keras

        return keras.ops.convert_to_tensor(self.predict(x))


def check_predict_liver_volume(predict_volume: Callable[..., Any], seed: int = 0) -> None:
    """Check ``predict_volume(model, volume_hu, size) -> (X, Y, Z)`` probabilities: every axial
    slice prepared as in training, run through the model, and its probabilities resampled back
    onto the volume's grid in NIfTI orientation.

    The model is a stand-in whose "probability" is one minus its input image, so that a
    transposed, mirrored, unwindowed or unresized slice shows in the values.

    Args:
        predict_volume: the function to check.
        seed: seed of the toy volumes.

    Raises:
        AssertionError: the check fails; the message names the case, what was expected and
            what came back, with a hint.
    """
    from skimage.transform import resize

    model = _OneMinusModel()
    rng = np.random.default_rng(seed)
    cases = [("volume (40, 32, 6), size 16", _toy_volume(rng, (40, 32, 6))[0], 16),
             ("volume (32, 32, 4), size 16", _toy_volume(rng, (32, 32, 4))[0], 16),
             ("volume (28, 36, 5), size 24", _toy_volume(rng, (28, 36, 5))[0], 24)]
    for case, volume, size in cases:
        before = volume.copy()
        out = call(predict_volume, name_of(predict_volume), case, model, volume, size)
        got = np.asarray(out, dtype=np.float64) if out is not None else None
        if got is None or got.shape != volume.shape:
            shape = None if got is None else got.shape
            hint = ("the slices are the LAST axis of the volume, as in the input."
                    if shape is not None and sorted(shape) == sorted(volume.shape) else
                    "the probabilities must come back on the volume's own grid, every slice at its full size.")
            fail('predict_volume', case, f"expected an array of the volume's shape {volume.shape} (X, Y, Z), "
                                         f"got {shape}.", hint)
        if not np.array_equal(volume, before):
            fail('predict_volume', case, "it changed the input volume.", "leave the CT as it was.")
        if not np.all(np.isfinite(got)) or got.min() < -1e-4 or got.max() > 1 + 1e-4:
            fail('predict_volume', case, f"expected probabilities in [0, 1], got values "
                                         f"{np.nanmin(got):.3f}..{np.nanmax(got):.3f}.")
        if set(np.unique(got).tolist()) <= {0.0, 1.0}:
            fail('predict_volume', case, "it returns a 0/1 mask; expected the model's probabilities "
                                         "(the threshold comes later, when the Dice is computed).")
        reference = slices.predict_volume(model, volume, size)
        error = float(np.abs(got - reference).mean())
        if error > 0.03:
            x, y, z = volume.shape
            small = model.predict(slices.volume_to_slices(volume, np.zeros(volume.shape, np.uint8),
                                                          np.arange(z), size)[0])[..., 0]       # (Z, S, S)
            transposed = resize(small, (z, x, y), order=1).transpose(1, 2, 0)      # rows taken as x
            if float(np.abs(got - (1.0 - reference)).mean()) < 0.03:
                fail('predict_volume', case, "it returns the prepared slices themselves, not what the model "
                                             "predicts from them.", "run the model on the prepared slices.")
            if float(np.abs(got - transposed).mean()) < 0.03 or (
                    x == y and float(np.abs(got - np.swapaxes(reference, 0, 1)).mean()) < 0.03):
                fail('predict_volume', case, "the slices come back transposed: the model sees (rows, columns) "
                                             "= (y, x), the volume stores (x, y).")
            mirrored = [name for name, other in (("left-right", reference[::-1]), ("front-back", reference[:, ::-1]))
                        if float(np.abs(got - other).mean()) < 0.03]
            if mirrored:
                fail('predict_volume', case, f"the slices come back mirrored {mirrored[0]}.")
            fail('predict_volume', case, f"the probabilities differ from the expected ones (mean |difference| "
                                         f"{error:.3f}, expected < 0.03).",
                 "prepare every slice exactly as for training (window, view, size), and resample each "
                 "probability map back linearly to its slice's grid.")
    ok(f"predict_volume returns the model's probabilities on the volume's (X, Y, Z) grid ({len(cases)} volumes).")


def check_empty_fraction_choice(choice: Any, study: dict) -> None:
    """Check the empty-slice fraction chosen from the lesson's measurement: ``study`` maps
    each fraction tried to its fold-1 *validation* scores (``{"dice": ..., "hd95": ...}``);
    ``choice`` must be one of the fractions and the one with the highest mean validation
    Dice (the criterion the lesson states).

    Raises:
        AssertionError: the choice is unset, not a fraction that was measured, or not the
            validation optimum.

    Args:
        choice: the learner's choice, a fraction of ``study``.
        study: fraction -> its fold-1 validation scores.
    """
    if isinstance(choice, str):
        fail("EMPTY_FRACTION", None, f"got the text {choice!r}.", "use the number itself, e.g. 0.2, not a string.")
    evidence = {fraction: float(scores["dice"]) for fraction, scores in study.items()}
    check_best_choice("EMPTY_FRACTION", choice, evidence, criterion="mean Dice of fold 1",
                      higher_is_better=True)
