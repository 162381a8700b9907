"""Made-up inputs shared by several test modules (not part of the course's ``helpers``)."""

from __future__ import annotations

import numpy as np


def fake_cxr_pairs(n_patients: int = 40, second_view: float = 0.3, seed: int = 0,
                   prefix: str = "SYN") -> list[tuple[str, str]]:
    """Made-up ``(image, mask)`` path pairs named like the chest X-ray set
    (``images/SYN_0007_0.png``, about ``second_view`` of the patients with a second view
    ``_1``). No file is created: the split functions only look at the names."""
    rng = np.random.default_rng(seed)
    pairs = []
    for patient in range(1, n_patients + 1):
        views = 2 if rng.random() < second_view else 1
        for view in range(views):
            name = f"{prefix}_{patient:04d}_{view}.png"
            pairs.append((f"images/{name}", f"masks/{name}"))
    return pairs
