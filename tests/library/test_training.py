"""Tests of helpers.training and of the lesson 04 checks (helpers.checks.training)."""

from __future__ import annotations

import csv
import random

import numpy as np
import pytest
from support.fakes import fake_cxr_pairs

from helpers import inference, training
from helpers.checks import training as checks_training
from helpers.data import patient_id


def _write_tiny_pairs(folder, n_patients=12, size=32, seed=0):
    """Tiny PNG pairs named like the chest X-ray set: a bright disk on noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    yy, xx = np.mgrid[:size, :size]
    pairs = []
    for patient in range(1, n_patients + 1):
        for view in range(1 + (patient % 3 == 0)):
            cy, cx, r = rng.uniform(10, size - 10, 2).tolist() + [rng.uniform(4, 8)]
            mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)
            image = np.clip(60 + 120 * mask + rng.normal(0, 20, mask.shape), 0, 255).astype(np.uint8)
            name = f"SYN_{patient:04d}_{view}.png"
            Image.fromarray(image).save(folder / "images" / name)
            Image.fromarray(mask * 255).save(folder / "masks" / name)
            pairs.append((folder / "images" / name, folder / "masks" / name))
    return pairs


# --------------------------------------------------------------------------- splits

def test_split_by_patient_has_no_leakage_and_right_sizes():
    pairs = fake_cxr_pairs(300, seed=3)
    train, val, test = training.split_by_patient(pairs, (0.7, 0.15, 0.15), seed=1)
    assert sorted(train + val + test) == sorted(pairs)
    patients = [{patient_id(a) for a, _ in part} for part in (train, val, test)]
    assert not patients[0] & patients[1] and not patients[0] & patients[2] and not patients[1] & patients[2]
    n = len(pairs)
    for part, fraction in zip((train, val, test), (0.7, 0.15, 0.15)):
        assert abs(len(part) - fraction * n) <= 2


def test_split_by_patient_is_deterministic_and_seed_dependent():
    pairs = fake_cxr_pairs(50)
    assert training.split_by_patient(pairs, seed=5) == training.split_by_patient(pairs, seed=5)
    assert training.split_by_patient(pairs, seed=5) != training.split_by_patient(pairs, seed=6)
    # keeps the input order inside each part and accepts plain paths
    train, val, test = training.split_by_patient([a for a, _ in pairs], seed=5)
    assert train == sorted(train)


def test_split_by_patient_small_sets_and_bad_fractions():
    pairs = fake_cxr_pairs(4, second_view=0.0)
    parts = training.split_by_patient(pairs)
    assert all(len(part) >= 1 for part in parts)
    with pytest.raises(ValueError, match="sum"):
        training.split_by_patient(pairs, (0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="patient"):
        training.split_by_patient(pairs[:2], (0.7, 0.15, 0.15))


def test_kfold_items_by_patient_validates_each_item_once():
    pairs = fake_cxr_pairs(37, seed=2)
    folds = training.kfold_items_by_patient(pairs, k=5, seed=0)
    assert len(folds) == 5
    validated = [item for _, val in folds for item in val]
    assert sorted(validated) == sorted(pairs)
    for train, val in folds:
        assert not {patient_id(a) for a, _ in train} & {patient_id(a) for a, _ in val}
        assert len(train) + len(val) == len(pairs)
    sizes = [len({patient_id(a) for a, _ in val}) for _, val in folds]
    assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError, match="k-fold"):
        training.kfold_items_by_patient(pairs[:3], k=5)
    # one implementation: the patients are folded as lesson 07's slices.kfold_by_patient folds them
    from helpers import slices

    patients = [patient_id(a) for a, _ in pairs]
    assert [sorted({patient_id(a) for a, _ in val}) for _, val in folds] == \
        [sorted(val) for _, val in slices.kfold_by_patient(patients, 5, 0)]
    assert not hasattr(training, "kfold_by_patient")   # one name per concept


# --------------------------------------------------------------------------- the recipe

def test_cxr_recipe_is_a_frozen_dataclass_with_the_tuned_values():
    import dataclasses

    recipe = training.CXR_RECIPE
    assert isinstance(recipe, training.CxrRecipe) and dataclasses.is_dataclass(recipe)
    # lesson 04 and 09 print this dict: its order and values are part of their saved outputs
    assert recipe.as_dict() == {
        "image_size": 128, "depth": 4, "base_filters": 8, "dropout": 0.0, "batch_norm": True, "batch_size": 8,
        "epochs": 16, "learning_rate": 3e-3, "loss": "bce_dice_loss",
        "augment": {"flip": False, "max_rotation": 5, "max_shift": 0.04, "max_zoom": 0.05,
                    "brightness": 0.05, "contrast": 0.05},
        "fractions": (0.7, 0.15, 0.15), "patience_lr": 1, "patience_stop": 5}
    assert list(recipe.as_dict()) == [f.name for f in dataclasses.fields(recipe)]
    assert type(recipe.as_dict()["augment"]) is dict
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.epochs = 3
    with pytest.raises(TypeError, match="frozen.*replace"):
        recipe.augment["flip"] = True
    assert str(recipe.augment) == str(dict(recipe.augment))        # prints as a plain dict
    changed = recipe.replace(epochs=8, base_filters=16)
    assert (changed.epochs, changed.base_filters, recipe.epochs) == (8, 16, 16)
    assert hash(changed) != hash(recipe) and changed == recipe.replace(base_filters=16, epochs=8)
    # the loss names are functions of helpers.losses
    from typing import get_args

    from helpers import losses

    assert all(callable(getattr(losses, name)) for name in get_args(training.CxrLoss))


@pytest.mark.parametrize("changes, error, message", [
    (dict(depth=0), ValueError, "depth must be an integer >= 1, got 0"),
    (dict(image_size=100), ValueError, "image_size must be divisible by 2\\*\\*depth = 16"),
    (dict(epochs=2.5), TypeError, "epochs must be an integer"),
    (dict(epochs=True), TypeError, "epochs must be an integer"),
    (dict(dropout=1.0), ValueError, "dropout must be a rate in \\[0, 1\\)"),
    (dict(learning_rate=0), ValueError, "learning_rate must be a positive number"),
    (dict(loss="dice"), ValueError, "loss must be one of .*bce_dice_loss"),
    (dict(loss=3), TypeError, "loss must be a loss name or a function"),
    (dict(augment=[("flip", True)]), TypeError, "augment must be True, False or a dict"),
    (dict(fractions=(0.5, 0.2)), ValueError, "fractions must be two or more positive shares summing to 1"),
    (dict(fractions="abc"), TypeError, "fractions must be a sequence of numbers"),
    (dict(batch_norm=1), TypeError, "batch_norm must be True or False"),
    (dict(epoch=3), TypeError, "Unknown recipe keys \\['epoch'\\]; known: .*'epochs'"),
])
def test_cxr_recipe_rejects_bad_values_naming_the_field(changes, error, message):
    with pytest.raises(error, match=message):
        training.CXR_RECIPE.replace(**changes)
    if "epoch" not in changes:
        with pytest.raises(error, match=message):
            training.CxrRecipe(**changes)


def test_recipe_callers_take_a_recipe_or_a_dict_of_changes():
    assert training._recipe(None) is training.CXR_RECIPE
    assert training._recipe({"epochs": 3}) == training.CXR_RECIPE.replace(epochs=3)
    assert training._recipe(training.CXR_RECIPE.replace(depth=3), epochs=2).depth == 3
    assert training.CXR_RECIPE.replace(augment=None).augment is False
    with pytest.raises(TypeError, match="Unknown recipe keys"):
        training._recipe({"filters": 3})


# --------------------------------------------------------------------------- callbacks

def test_standard_callbacks_types_and_paths(tmp_path):
    callbacks = training.standard_callbacks(tmp_path / "run")
    names = [type(cb).__name__ for cb in callbacks]
    assert names == ["ModelCheckpoint", "ReduceLROnPlateau", "EarlyStopping", "CSVLogger"]
    assert callbacks[0].filepath == str(tmp_path / "run" / "best.keras")
    assert callbacks[0].save_best_only
    assert callbacks[2].restore_best_weights
    assert callbacks[3].filename == str(tmp_path / "run" / "log.csv")
    assert all(cb.monitor == "val_dice" and cb.mode == "max" for cb in callbacks[:3])
    checks_training.check_callbacks(callbacks, tmp_path / "run")
    checks_training.check_callbacks(training.standard_callbacks, tmp_path / "other")
    with pytest.raises(ValueError, match="mode"):
        training.standard_callbacks(tmp_path, mode="maximum")


# --------------------------------------------------------------------------- checks fail on wrong code

def test_check_split_accepts_reference_and_rejects_leaky_split():
    checks_training.check_split_by_patient(training.split_by_patient, cases=4)

    def by_image(items, fractions=(0.7, 0.15, 0.15), seed=42):
        items = list(items)
        random.Random(seed).shuffle(items)
        a = int(fractions[0] * len(items))
        b = a + int(fractions[1] * len(items))
        return items[:a], items[a:b], items[b:]

    with pytest.raises(AssertionError, match="patient"):
        checks_training.check_split_by_patient(by_image)

    def unseeded(items, fractions=(0.7, 0.15, 0.15), seed=42):
        return training.split_by_patient(items, fractions, seed=0)

    with pytest.raises(AssertionError, match="seed"):
        checks_training.check_split_by_patient(unseeded)


def test_check_callbacks_rejects_wrong_settings(tmp_path):
    import keras

    good = training.standard_callbacks(tmp_path)
    with pytest.raises(AssertionError, match="stops the run"):     # the missing early stopping, by its role
        checks_training.check_callbacks(good[:2] + good[3:], tmp_path)
    wrong_mode = list(good)
    wrong_mode[2] = keras.callbacks.EarlyStopping(monitor="val_dice", patience=8, restore_best_weights=True)
    with pytest.raises(AssertionError, match="mode"):
        checks_training.check_callbacks(wrong_mode, tmp_path)
    h5 = list(good)
    h5[0] = keras.callbacks.ModelCheckpoint(str(tmp_path / "best.weights.h5"), monitor="val_dice",
                                            mode="max", save_best_only=True, save_weights_only=True)
    with pytest.raises(AssertionError, match=".keras"):
        checks_training.check_callbacks(h5, tmp_path)


def test_check_compile_accepts_reference_and_rejects_other_loss():
    import keras

    from helpers import metrics

    model = training.build_cxr_model({"image_size": 32, "depth": 2, "base_filters": 4})
    checks_training.check_compile(model, learning_rate=training.CXR_RECIPE.learning_rate)
    with pytest.raises(AssertionError, match="learning rate"):
        checks_training.check_compile(model, learning_rate=1e-4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  metrics=[metrics.dice_coefficient])
    with pytest.raises(AssertionError, match="BCE"):
        checks_training.check_compile(model)
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    with pytest.raises(AssertionError, match="Adam"):
        checks_training.check_compile(model)


def test_compile_model_and_train_step_are_lesson_04s_references():
    import keras

    from helpers import losses, models

    model = training.compile_model(models.build_unet((32, 32, 1), depth=2, base_filters=4), learning_rate=1e-3)
    checks_training.check_compile(model, learning_rate=1e-3)      # dice and hard_dice logged
    checks_training.check_train_step(training.train_step)
    keras.utils.set_random_seed(0)
    small = models.build_unet((16, 16, 1), depth=1, base_filters=2, dropout=0.0)
    x = np.random.default_rng(0).random((2, 16, 16, 1)).astype("float32")
    y = (x > 0.5).astype("float32")
    before = float(losses.bce_dice_loss(y, small(x, training=True)))
    loss = float(training.train_step(small, keras.optimizers.Adam(1e-2), losses.bce_dice_loss, x, y))
    assert loss == pytest.approx(before, rel=1e-4)


def test_lesson_04_checks_ask_for_what_the_hidden_tests_ask(tmp_path):
    """hard_dice must be compiled in and logged, fit stays within EPOCHS, make_callbacks gets a new folder."""
    import keras

    from helpers import losses, metrics, models

    model = models.build_unet((32, 32, 1), depth=2, base_filters=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.bce_dice_loss,
                  metrics=[metrics.dice_coefficient])
    with pytest.raises(AssertionError, match="hard_dice"):
        checks_training.check_compile(model, learning_rate=1e-3)
    seen = []

    def remembers(run_dir):
        seen.append(run_dir)
        return training.standard_callbacks(run_dir)

    checks_training.check_callbacks(remembers)
    assert seen and seen[0].name == "run" and seen[0].parent.name == "new"


# --------------------------------------------------------------------------- a tiny training run

@pytest.mark.slow
def test_tiny_training_run_saves_loads_and_evaluates(tmp_path):
    pairs = _write_tiny_pairs(tmp_path / "data")
    run_dir = tmp_path / "run"
    model, history = training.train_cxr_reference(
        run_dir=run_dir, pairs=pairs, epochs=1, image_size=32, depth=2, base_filters=4,
        batch_size=4, verbose=0)
    assert {"loss", "dice", "val_loss", "val_dice"} <= set(history.history)
    assert (run_dir / "best.keras").is_file()
    with (run_dir / "log.csv").open() as stream:
        assert len(list(csv.DictReader(stream))) == len(history.history["loss"])
    checks_training.check_training_run(history, run_dir)
    loaded = training.load_or_train_cxr_model(run_dir)
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)
    dice = inference.evaluate_cxr(loaded, pairs[:4])
    assert 0.0 <= dice <= 1.0
    with pytest.raises(FileNotFoundError, match="best.keras"):
        training.load_model(tmp_path / "nowhere" / "best.keras")
    with pytest.raises(TypeError, match="Unknown recipe"):
        training.train_cxr_reference(run_dir=run_dir, pairs=pairs, epoch=1)
