"""Tests for helpers/checks/training.py that are not in test_wrong_solutions.py: the checks of
lesson 04's two ungraded warm-ups (Exercise 4.2, compile; Exercise 4.6, fit) must still catch
the usual mistakes with a helpful message and accept a right answer. test_wrong_solutions.py
keeps the graded exercises only."""

from __future__ import annotations

import csv
import time
from types import SimpleNamespace

import keras
import pytest
from keras import ops

from helpers import checks, losses


def _dice(t, p, smooth=1.0):
    axes = tuple(range(1, len(t.shape)))
    return ops.mean((2 * ops.sum(t * p, axis=axes) + smooth) / (ops.sum(t, axis=axes) + ops.sum(p, axis=axes) + smooth))


def _dice_metric(t, p):
    return _dice(t, p)


_dice_metric.__name__ = _dice_metric.__qualname__ = "dice"   # as helpers.metrics logs it


def _hard_dice_metric(t, p):
    return _dice(ops.cast(t > 0.5, "float32"), ops.cast(p > 0.5, "float32"))


_hard_dice_metric.__name__ = _hard_dice_metric.__qualname__ = "hard_dice"


def _tiny_model():
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(x))


def _compiled(optimizer, loss, metrics_):
    model = _tiny_model()
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics_)
    return model


_BOTH = [_dice_metric, _hard_dice_metric]

#: Exercise 4.2 (warm-up): compile mistakes, and a fragment the message must hold.
COMPILE_WRONG = [
    ("SGD", lambda: _compiled(keras.optimizers.SGD(3e-3), losses.bce_dice_loss, _BOTH), ""),
    ("default learning rate", lambda: _compiled("adam", losses.bce_dice_loss, _BOTH), ""),
    ("binary cross-entropy only", lambda: _compiled(keras.optimizers.Adam(3e-3), "binary_crossentropy", _BOTH), ""),
    ("accuracy instead of Dice", lambda: _compiled(keras.optimizers.Adam(3e-3), losses.bce_dice_loss, ["accuracy"]), ""),
    ("Dice metric as loss", lambda: _compiled(keras.optimizers.Adam(3e-3), _dice_metric, _BOTH), ""),
    ("not compiled", _tiny_model, ""),
    # the fit check wants val_hard_dice in the history: the compile check asks for it
    ("no hard_dice metric", lambda: _compiled(keras.optimizers.Adam(3e-3), losses.bce_dice_loss, [_dice_metric]),
     "hard_dice"),
]


@pytest.mark.parametrize("label, make, fragment", COMPILE_WRONG, ids=[c[0] for c in COMPILE_WRONG])
def test_check_compile_catches_the_warm_ups_wrong_solutions(label, make, fragment, capsys):
    """Exercise 4.2 is an ungraded warm-up, so its wrong solutions live here."""
    with pytest.raises(AssertionError) as info:
        checks.check_compile(make(), learning_rate=3e-3)
    assert len(str(info.value)) > 40 and fragment in str(info.value)


def test_check_compile_accepts_the_warm_ups_answer(capsys):
    checks.check_compile(_compiled(keras.optimizers.Adam(3e-3), losses.bce_dice_loss, _BOTH), learning_rate=3e-3)
    assert capsys.readouterr().out.startswith("✓ compile:")


def _fake_run(tmp_path, *, mistake=None, epochs=3):
    """A run folder and a History-like object as fit would leave them; ``mistake`` mimics a
    wrong ``fit`` call. Returns ``(history, run_dir, started)``."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    keys = ["loss", "dice", "hard_dice", "val_loss", "val_dice", "val_hard_dice", "learning_rate"]
    if mistake == "no validation_data":
        keys = ["loss", "dice", "hard_dice"]
    if mistake == "no dice metric":
        keys = ["loss", "val_loss"]
    if mistake == "no hard_dice metric":
        keys = ["loss", "dice", "val_loss", "val_dice", "learning_rate"]
    logs = {k: [0.5 - 0.1 * e for e in range(epochs)] for k in keys}
    stale = mistake == "no callbacks, stale files"
    if mistake not in ("no callbacks", "no validation_data"):
        model = _tiny_model()
        model.save(run_dir / "best.keras")
        rows = epochs if mistake != "log of another run" else epochs + 4
        with (run_dir / "log.csv").open("w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["epoch"] + keys)
            for e in range(rows):
                writer.writerow([e] + [0.5] * len(keys))
    started = time.time() + (5.0 if stale else -5.0)
    return SimpleNamespace(history=logs), run_dir, started


FIT_WRONG = ["no callbacks", "no callbacks, stale files", "no validation_data", "no dice metric",
             "log of another run", "no hard_dice metric"]


@pytest.mark.parametrize("mistake", FIT_WRONG)
def test_check_training_run_catches_the_warm_ups_wrong_solutions(mistake, tmp_path):
    """Exercise 4.6 is an ungraded warm-up, so its wrong solutions live here."""
    history, run_dir, started = _fake_run(tmp_path, mistake=mistake)
    with pytest.raises(AssertionError) as info:
        checks.check_training_run(history, run_dir, started=started, epochs=3)
    assert len(str(info.value)) > 40


def test_check_training_run_catches_more_epochs_than_asked(tmp_path):
    history, run_dir, started = _fake_run(tmp_path)
    with pytest.raises(AssertionError, match="EPOCHS"):
        checks.check_training_run(history, run_dir, started=started, epochs=2)


def test_check_training_run_accepts_a_fresh_run(tmp_path, capsys):
    history, run_dir, started = _fake_run(tmp_path)
    checks.check_training_run(history, run_dir, started=started)
    assert capsys.readouterr().out.startswith("✓ training run:")
