"""benchmarks/real_cxr.py: the zone table that says where a model errs on real radiographs."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "real_cxr.py"
    saved = dict(os.environ)
    try:
        spec = importlib.util.spec_from_file_location("real_cxr", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:                      # the script sets the lessons' TensorFlow variables on import
        os.environ.clear()
        os.environ.update(saved)
    return module


def two_lungs(shape=(90, 120)) -> np.ndarray:
    """Two 60 x 30 boxes: the image-left lung at columns 15-44, the image-right at 75-104."""
    truth = np.zeros(shape, bool)
    truth[15:75, 15:45] = True
    truth[15:75, 75:105] = True
    return truth


def test_a_missed_corner_lands_in_its_zone_on_either_side(benchmark):
    """Top-medial misses: columns near the image centre, top rows, of both lungs; mirrored
    lungs put them in the same (medial) column."""
    truth = two_lungs()
    predicted = truth.copy()
    predicted[15:25, 35:45] = False          # image-left lung: medial is towards the centre (right)
    predicted[15:25, 75:85] = False          # image-right lung: medial is towards the centre (left)
    false_positives, missed, true_pixels = benchmark.zone_errors(truth, predicted)
    assert true_pixels == truth.sum() == 3600
    assert false_positives.sum() == 0
    expected = np.zeros((3, 3), int)
    expected[0, 2] = 200
    np.testing.assert_array_equal(missed, expected)


def test_false_positives_go_to_the_nearest_lung_and_a_lateral_zone(benchmark):
    """A strip just outside the image-right lung's lateral border, halfway down, counts as a
    middle-lateral false positive of that lung."""
    truth = two_lungs()
    predicted = truth.copy()
    predicted[40:50, 105:108] = True          # 30 pixels beside the image-right lung
    false_positives, missed, _ = benchmark.zone_errors(truth, predicted)
    expected = np.zeros((3, 3), int)
    expected[1, 0] = 30
    np.testing.assert_array_equal(false_positives, expected)
    assert missed.sum() == 0


def test_a_perfect_prediction_has_no_errors_and_shapes_are_checked(benchmark):
    truth = two_lungs()
    false_positives, missed, _ = benchmark.zone_errors(truth, truth)
    assert false_positives.sum() == missed.sum() == 0
    assert benchmark.zone_errors(np.zeros((8, 8), bool), np.ones((8, 8), bool))[0].sum() == 0
    with pytest.raises(ValueError, match="one shape"):
        benchmark.zone_errors(truth, truth[:-1])
