"""Tests of helpers/slices.py, the reference versions of lesson 07's exercises: the lesson's
checks accept them, they keep the lesson's conventions, and the grader guards them like any
other reference (a learner's function may not hand its work to the reference of the same
name)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from helpers import checks, config, slices


def _mask(shape=(20, 16, 12), first=3, last=7):
    mask = np.zeros(shape, np.uint8)
    mask[5:12, 4:10, first:last + 1] = 1
    return mask


def test_the_lesson_checks_accept_the_references(capsys):
    checks.check_select_slices(slices.select_slices)
    checks.check_volume_to_slices(slices.volume_to_slices)
    checks.check_flip_augmentation(slices.random_flip)
    checks.check_kfold(slices.kfold_by_patient)
    checks.check_predict_liver_volume(slices.predict_volume)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and all(line.startswith("✓ ") for line in lines)


def test_predict_volume_returns_the_model_maps_on_the_volume_grid():
    class Echo:
        def predict(self, x, **kwargs):
            return np.asarray(x)

    volume = np.full((24, 20, 3), -1000.0, np.float32)
    volume[2:6, 12:16, :] = 250.0                # a block near x = 4, y = 14: stays there
    out = slices.predict_volume(Echo(), volume, size=12)
    assert out.shape == volume.shape
    assert out[4, 14].min() > 0.5 and out[14, 4].max() < 0.5 and out[20, 2].max() < 0.5


def test_select_slices_keeps_organ_slices_and_a_fraction_of_empty_ones():
    kept = slices.select_slices(_mask(), empty_fraction=0.5, rng=np.random.default_rng(0))
    assert set(range(3, 8)) <= set(kept.tolist())
    assert len(kept) == 5 + round(0.5 * 7) and np.all(np.diff(kept) > 0)
    assert slices.select_slices(_mask(), 0.0).tolist() == [3, 4, 5, 6, 7]


def test_volume_to_slices_is_in_radiological_view_and_windowed():
    volume = np.full((16, 16, 12), -1000.0, np.float32)
    volume[2, 9, :] = 250.0                     # x = 2, y = 9: row 9, column 2 after the transpose
    images, masks = slices.volume_to_slices(volume, _mask((16, 16, 12)), [4, 5], size=16)
    assert images.shape == masks.shape == (2, 16, 16, 1) and images.dtype == np.float32
    low, high = config.HU_WINDOW_LIVER
    assert images.min() == 0.0 and images.max() == pytest.approx((250 - low) / (high - low))
    assert np.argwhere(images[0, ..., 0] > 0.5).tolist() == [[9, 2]], "not (rows = y, columns = x)"
    assert set(np.unique(masks).tolist()) == {0.0, 1.0}


def test_random_flip_moves_image_and_mask_together_and_copies():
    rng = np.random.default_rng(0)
    images = rng.random((6, 8, 8, 1)).astype(np.float32)
    before = images.copy()
    flipped, flipped_masks = slices.random_flip(images, images > 0.5, np.random.default_rng(1), p=1.0)
    assert np.array_equal(images, before)
    assert np.array_equal(flipped, images[:, :, ::-1]) and np.array_equal(flipped_masks, flipped > 0.5)


def test_kfold_by_patient_validates_every_patient_once():
    ids = [f"ircad_e{i:02d}" for i in range(1, 12)] + ["ircad_e01"]
    folds = slices.kfold_by_patient(ids, k=4, seed=3)
    validated = [case for _, val in folds for case in val]
    assert sorted(validated) == sorted(set(ids))
    assert all(not set(train) & set(val) for train, val in folds)
    assert folds == slices.kfold_by_patient(ids, k=4, seed=3) != slices.kfold_by_patient(ids, k=4, seed=4)
    with pytest.raises(ValueError, match="k-fold needs 2 <= k <= number of patients; got k=5 for 4"):
        slices.kfold_by_patient(["a", "b", "c", "d", "a"], k=5)
    with pytest.raises(ValueError, match="k=1"):
        slices.kfold_by_patient(ids, k=1)


def test_one_reference_per_exercise_name():
    """The collisions are gone: the grading guard finds one reference for kfold_by_patient (lesson
    07's; training folds items with it) and for brats_regions (helpers.metrics; viz plots them)."""
    from helpers import checks, metrics, training, viz  # noqa: F401  (the guard snapshots loaded modules)
    from helpers.grading import guard as grading_guard

    references = grading_guard.Snapshot().reference_objects
    assert references["kfold_by_patient"] == [slices.kfold_by_patient]
    assert references["brats_regions"] == [metrics.brats_regions]
    assert not hasattr(checks, "check_3d_unet")            # lesson 06's model check is check_lung_model
    assert checks.check_lung_model is not checks.check_unet_3d


def test_the_grading_guard_keeps_the_reference_out():
    from helpers.grading import guard as grading_guard
    snapshot = grading_guard.Snapshot()
    learner = {"slices": slices, "__name__": "__main__"}
    exec(compile("def select_slices(mask, empty_fraction=0.1, rng=None):\n"
                 "    return slices.select_slices(mask, empty_fraction, rng)\n"
                 "def my_pipeline(mask):\n"
                 "    return slices.select_slices(mask, 0.0)\n", "<cell 3>", "exec"), learner)
    sys.settrace(snapshot.guard())
    try:
        with pytest.raises(grading_guard.ReferenceCallError, match="calls the course's reference"):
            learner["select_slices"](_mask())
        assert learner["my_pipeline"](_mask()).tolist() == [3, 4, 5, 6, 7]   # other code may use it
    finally:
        sys.settrace(None)
    # while the select_slices exercise is tested, no learner code may reach its reference
    sys.settrace(snapshot.guard(frozenset({"select_slices"}), "<cell 9>"))
    try:
        with pytest.raises(grading_guard.ReferenceCallError):
            learner["my_pipeline"](_mask())
    finally:
        sys.settrace(None)
    assert snapshot.stands_in(learner["select_slices"], "select_slices") is None
    learner["select_slices"] = slices.select_slices
    assert "reference" in snapshot.stands_in(learner["select_slices"], "select_slices")
