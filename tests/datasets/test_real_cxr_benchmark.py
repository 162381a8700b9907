"""benchmarks/real_cxr.py: the zone table that says where a model errs on real radiographs."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def benchmark():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "real_cxr.py"
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


def test_recipe_changes_are_read_as_literals_and_checked(benchmark):
    assert benchmark.parse_recipe(["epochs=10", "learning_rate=1e-3", "loss=bce_dice_loss"]) == {
        "epochs": 10, "learning_rate": 0.001, "loss": "bce_dice_loss"}
    assert benchmark.parse_recipe(None) == {}
    with pytest.raises(SystemExit, match="not a recipe entry"):
        benchmark.parse_recipe(["epoch=10"])
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        benchmark.parse_recipe(["epochs"])


@pytest.mark.slow
def test_a_seed_study_trains_one_model_per_seed_and_scores_its_own_test_split(benchmark, tmp_path, capsys):
    """Two seeds of a one-epoch toy recipe on a small generated set (used as the 'real' set
    too): one row per seed, each with its own model, Dice values in [0, 1], and a summary."""
    from helpers import inference, training
    from helpers.data import cxr

    folder = tmp_path / "cxr"
    cxr.generate(folder, n_images=24, size=64, seed=5)
    pairs = cxr.load_cases(folder)
    rows = benchmark.seed_study(pairs[:6], [3, 4], synthetic_pairs=pairs, run_root=tmp_path / "runs",
                                epochs=1, depth=2, base_filters=4, image_size=32, batch_size=4)
    assert [row["seed"] for row in rows] == [3, 4]
    for row in rows:
        assert row["epochs"] == 1
        for key in ("mean", "median", "worst decile", "synthetic_test"):
            assert 0.0 <= row[key] <= 1.0, (key, row)
        saved = tmp_path / "runs" / f"seed_{row['seed']}" / "best.keras"
        own_test = training.split_by_patient(pairs, training.CXR_RECIPE.fractions, seed=row["seed"])[-1]
        assert inference.evaluate_cxr(training.load_model(saved), own_test) == pytest.approx(row["synthetic_test"], abs=1e-4)
    benchmark.print_seed_study(rows)
    lines = capsys.readouterr().out.splitlines()
    by_first_word = {line.split()[0]: line.split() for line in lines if line.split()}
    for row in rows:
        assert by_first_word[str(row["seed"])][2] == f"{row['mean']:.3f}", lines
    mean = sum(row["mean"] for row in rows) / 2
    assert by_first_word["mean"][1] == f"{mean:.3f}", lines
    assert f"real mean Dice over 2 seed(s): {mean:.3f}" in lines[-1]


def test_seeds_and_model_exclude_each_other(benchmark, tmp_path):
    from helpers.data import cxr

    folder = tmp_path / "cxr"
    cxr.generate(folder, n_images=4, size=64, seed=5)
    with pytest.raises(SystemExit, match="leave out --model"):
        benchmark.main([str(folder), "--seeds", "1", "--model", str(tmp_path / "m.keras")])
    with pytest.raises(SystemExit, match="give --seeds too"):
        benchmark.main([str(folder), "--recipe", "epochs=1"])
