"""Tests for the ungraded warm-up check of lesson 05 (``helpers/checks/prediction.py``):
``check_threshold`` passes legitimate variants and catches the usual mistakes with a message
that names them. (Graded exercises keep their wrong solutions in ``test_wrong_solutions.py``.)"""

from __future__ import annotations

import numpy as np
import pytest

from helpers import checks


@pytest.mark.parametrize("label, fn, fragment", [
    ("bool", lambda probs, value=0.5: np.asarray(probs) > value, "uint8"),
    (">=", lambda probs, value=0.5: (np.asarray(probs) >= value).astype(np.uint8), "strict"),
    ("fixed 0.5", lambda probs, value=0.5: (np.asarray(probs) > 0.5).astype(np.uint8), "value"),
    ("inverted", lambda probs, value=0.5: (np.asarray(probs) < value).astype(np.uint8), "inverted"),
    ("float", lambda probs, value=0.5: (np.asarray(probs) > value).astype(np.float32), "uint8"),
    ("round", lambda probs, value=0.5: np.round(probs).astype(np.uint8), ""),
])
def test_threshold_check_catches_the_usual_mistakes(label, fn, fragment):
    with pytest.raises(AssertionError) as caught:
        checks.check_threshold(fn)
    assert fragment in str(caught.value), f"{label}: the message does not name the mistake: {caught.value}"


def test_threshold_check_accepts_a_legitimate_variant(capsys):
    checks.check_threshold(lambda probs, value=0.5: np.where(np.asarray(probs) > value, 1, 0).astype("uint8"))
    assert capsys.readouterr().out.startswith("✓ threshold")


def test_the_reference_decisions_are_the_ones_the_checks_accept(capsys):
    """``best_postprocessing_choice`` and ``best_tta_choice`` (the fallbacks after 5.6 and 5.7)
    give the choice their checks accept, and the checks refuse the other one."""
    dice, hd95 = [0.90, 0.80, 0.95], [4.0, 9.0, 2.0]
    for dice_clean, hd95_clean in (([0.90, 0.85, 0.95], [4.0, 6.0, 2.0]),     # helps: keep
                                   ([0.90, 0.70, 0.95], [4.0, 6.0, 2.0]),     # Dice worse: drop
                                   ([0.90, 0.80, 0.95], [4.0, 9.0, 2.0])):    # nothing changed: drop
        best = checks.best_postprocessing_choice(dice, dice_clean, hd95, hd95_clean)
        checks.check_postprocessing_choice(best, dice, dice_clean, hd95, hd95_clean)
        with pytest.raises(AssertionError):
            checks.check_postprocessing_choice(not best, dice, dice_clean, hd95, hd95_clean)
    evidence = {"flip": {"dice_gain": 0.004, "dice_low": 0.001, "hd95_change": 0.1},
                "shift": {"dice_gain": 0.002, "dice_low": 0.0005, "hd95_change": -0.2},
                "flip + shift": {"dice_gain": 0.003, "dice_low": -0.001, "hd95_change": -0.3}}
    assert checks.best_tta_choice(evidence) == "shift"
    checks.check_tta_choice("shift", evidence)
    assert checks.best_tta_choice({"flip": {"dice_gain": 0.01, "dice_low": -0.01, "hd95_change": 0.0}}) == "none"
