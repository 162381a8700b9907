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
