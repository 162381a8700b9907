"""Made-up inputs shared by several test modules (not part of the course's public ``helpers``).

``fake_cxr_pairs`` is the made-up chest X-ray file list that lesson 04's split check feeds to
the learner's function; the check keeps it private, and the tests use the same one.
"""

from __future__ import annotations

from helpers.checks.training import _fake_cxr_pairs as fake_cxr_pairs

__all__ = ["fake_cxr_pairs"]
