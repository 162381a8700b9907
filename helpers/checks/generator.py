"""Checks for lesson 01 (data generator): contrast stretch, the PyDataset, augmentation.

Each check runs the learner's function or class on named cases (a ramp, an image with a
hot pixel and a black border, a constant image, PNG files whose content encodes their
index, masks that must move with their image ...) and on random cases, compares with the
reference in :mod:`helpers.generator`, and raises ``AssertionError`` naming the case,
what was expected, what came back and the usual mistake. One success line otherwise.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from helpers.checks._common import fail, ok

__all__ = ["check_percentile_stretch", "check_dataset", "check_augment_pair", "check_dataset_augments"]

ATOL = 1e-4


def _fmt(array, n: int = 4) -> str:
    flat = np.asarray(array, dtype=np.float64).ravel()
    shown = ", ".join(f"{v:.3f}" for v in flat[:n])
    return f"[{shown}{', ...' if flat.size > n else ''}]"


# --------------------------------------------------------------------------------------
# percentile_stretch
# --------------------------------------------------------------------------------------

def _stretch_cases(random_cases: int, seed: int):
    rng = np.random.default_rng(seed)
    ramp = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    hot = rng.normal(100, 15, size=(48, 48)).clip(0, 255)
    hot[:4] = 0           # black border
    hot[10, 10] = 4000.0  # hot pixel
    cases: list[tuple[str, np.ndarray, dict[str, float]]] = [
        ("uint8 ramp 0..255", ramp, {}),
        ("hot pixel and black border", hot, {}),
        ("constant image", np.full((16, 16), 37, dtype=np.uint8), {}),
        ("low=2, high=98", hot, {"low": 2, "high": 98}),
    ]
    for i in range(random_cases):
        shape = tuple(int(s) for s in rng.integers(8, 40, size=rng.integers(2, 4)))
        image = rng.gamma(2.0, 50.0, size=shape) + rng.uniform(-100, 100)
        low = float(rng.uniform(0, 20))
        cases.append((f"random image {i + 1} {shape}", image, {"low": low, "high": float(rng.uniform(80, 100))}))
    return cases


def check_percentile_stretch(fn: Callable[..., Any], random_cases: int = 2, seed: int = 0) -> None:
    """Check ``fn(image, low=5, high=95)`` against :func:`helpers.generator.percentile_stretch`
    on a ramp, an image with outliers, a constant image, custom percentiles and
    ``random_cases`` random images (any shape).

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    from helpers.generator import percentile_stretch as reference

    name = "percentile_stretch"
    cases = _stretch_cases(random_cases, seed)
    for case, image, kwargs in cases:
        original = image.copy()
        try:
            got = fn(image, **kwargs)       # the case's own array: an in-place change shows below
        except Exception as error:  # report the learner's error with the case
            fail(name, case, f"raised {type(error).__name__}: {error}", cause=error)
        if not np.array_equal(image, original):
            fail(name, case, "the input image was modified in place.",
                  "the caller's image must come back unchanged: compute the result in a new array "
                  "(for float input an in-place subtraction or division changes the caller's array).")
        expected = reference(original, **kwargs)
        got = np.asarray(got)
        if got.shape != expected.shape:
            fail(name, case, f"expected shape {expected.shape}, got {got.shape}.",
                  "return an array of the input's shape (no channel axis added, no resizing).")
        if got.dtype != np.float32:
            fail(name, case, f"expected dtype float32, got {got.dtype}.",
                  "the contract asks for float32 whatever the input's dtype; arithmetic on uint8 or float64 "
                  "input does not give it by itself (and uint8 arithmetic wraps around).")
        if np.isnan(got).any():
            fail(name, case, "the result contains NaN.",
                  "when the two percentiles are equal (a constant image) there is no contrast and the "
                  "formula divides by zero: the contract asks for all zeros there, decided before any division.")
        if got.min() < -ATOL or got.max() > 1 + ATOL:
            fail(name, case, f"values must lie in [0, 1], got min {got.min():.3f}, max {got.max():.3f}.",
                  "grey levels below the low percentile or above the high one fall outside [0, 1] after "
                  "scaling: the stretch clips them to 0 and 1.")
        if not np.allclose(got, expected, atol=ATOL):
            hint = ("the two grey levels should be the low-th and high-th percentiles of the image's values, "
                    "mapped to 0 and 1, with everything in between scaled linearly.")
            lo, hi = float(np.min(image)), float(np.max(image))
            if hi > lo and np.allclose(got, (image - lo) / (hi - lo), atol=ATOL):
                hint = ("this is a min-max scaling: one hot pixel squashes the whole image. "
                        "The stretch maps the low-th and high-th percentiles, not the extremes.")
            elif "low" in kwargs and np.allclose(got, reference(image), atol=ATOL):
                hint = "use the low and high arguments instead of the fixed 5 and 95."
            where = np.unravel_index(np.argmax(np.abs(got - expected)), expected.shape)
            fail(name, case, f"expected {_fmt(expected)} (at {where}: {expected[where]:.4f}), "
                  f"got {_fmt(got)} (at {where}: {got[where]:.4f}).", hint)
        if not np.array_equal(image, original):
            fail(name, case, "the input image was modified in place.",
                  "the caller's image must come back unchanged: compute the result in a new array.")
    ok(f"{name}: {len(cases)} cases passed")


# --------------------------------------------------------------------------------------
# Data set
# --------------------------------------------------------------------------------------

def _index_pair(k: int, size: int = 40):
    """An image whose content encodes ``k``: a bright bar of width 4 + 2k on a dim
    gradient, with a few dark speckles; the mask is the bar.
    """
    yy, xx = np.mgrid[0:size, 0:size]
    bar = (yy >= 6) & (yy < size - 6) & (xx >= 4 + (k % 3)) & (xx < 8 + 3 * k)
    image = 30 + 40 * xx / size + 10 * (yy % (k + 3) == 0)
    image = np.where(bar, 200 + 5 * k, image)
    return image.astype(np.uint8), bar.astype(np.uint8)


def _write_pairs(folder: Path, n: int):
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    pairs = []
    for k in range(n):
        image, mask = _index_pair(k)
        ip = folder / "images" / f"CASE_{k:04d}_0.png"
        mp = folder / "masks" / f"CASE_{k:04d}_0.png"
        Image.fromarray(image).save(ip)
        Image.fromarray(mask * 255).save(mp)
        pairs.append((ip, mp))
    return pairs


def _identify(batch, reference, what):
    """Index of the closest reference item for each sample, and the distance."""
    flat = np.asarray(batch, np.float64).reshape(len(batch), -1)
    ref = np.asarray(reference, np.float64).reshape(len(reference), -1)
    distances = np.abs(flat[:, None, :] - ref[None, :, :]).mean(axis=-1)
    return distances.argmin(axis=1), distances.min(axis=1)


def _epoch(ds, name, case, n, batch_size, size, ref_x, ref_y):
    """Read one epoch; check shapes and values; return the file indices in order."""
    order = []
    n_batches = len(ds)
    for b in range(n_batches):
        try:
            batch = ds[b]
        except Exception as error:
            fail(name, case, f"ds[{b}] raised {type(error).__name__}: {error}", cause=error)
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            fail(name, case, f"ds[{b}] should return a tuple (x, y), got {type(batch).__name__}.",
                  "dataset[index] must return the two batches x and y, as a tuple.")
        x, y = (np.asarray(a) for a in batch)
        expected_len = min(batch_size, n - b * batch_size)
        if b == n_batches - 1 and len(x) != expected_len:
            fail(name, case, f"the last batch (ds[{b}]) should hold {expected_len} pairs "
                  f"({n} pairs, batch_size {batch_size}), got {len(x)}.",
                  "the last batch holds the pairs that are left over: shorter, neither dropped nor "
                  "padded nor wrapped around to the first pairs.")
        shape = (expected_len,) + tuple(size) + (1,)
        for label, array in (("x", x), ("y", y)):
            if array.shape != shape:
                fail(name, case, f"ds[{b}] {label} should have shape {shape} (batch, H, W, 1), got {array.shape}.",
                      "H and W are image_size, and a channel axis of length 1 comes last.")
            if array.dtype != np.float32:
                fail(name, case, f"ds[{b}] {label} should be float32, got {array.dtype}.",
                      "the contract asks for float32 batches, whatever the arrays they are built from.")
        if x.min() < -ATOL or x.max() > 1 + ATOL:
            fail(name, case, f"images should lie in [0, 1], got {x.min():.3f} .. {x.max():.3f}.",
                  "every image should be stretched to [0, 1], as load_pair does.")
        values = set(np.unique(y).tolist())
        if not values <= {0.0, 1.0}:
            fail(name, case, f"masks should hold only 0 and 1, got values like {sorted(values)[:5]}.",
                  "the masks were interpolated somewhere (resizing or augmenting averaged 0s and 1s at "
                  "their edges), or kept the PNG's 255: a mask batch holds 0 and 1 only.")
        idx_y, dist_y = _identify(y, ref_y, "mask")
        idx_x, dist_x = _identify(x, ref_x, "image")
        for i in range(len(x)):
            if dist_y[i] > 0.05:
                fail(name, case, f"sample {i} of ds[{b}]: its mask matches none of the mask files "
                      f"(closest differs on {dist_y[i]:.0%} of the pixels).",
                      "each mask should be its pair's mask file (0/1), at image_size; load_pair gives it.")
            if dist_x[i] > 0.1:
                fail(name, case, f"sample {i} of ds[{b}]: its image matches none of the image files "
                      f"(mean difference {dist_x[i]:.3f}).",
                      "each image should be its pair's image file, stretched and at image_size; load_pair "
                      "gives it.")
            if idx_x[i] != idx_y[i]:
                fail(name, case, f"sample {i} of ds[{b}] pairs image file {idx_x[i]} with mask file "
                      f"{idx_y[i]}: images and masks are out of step.",
                      "shuffle the order of the pairs (indices), never the images and masks separately.")
        order.extend(int(i) for i in idx_y)
    if sorted(order) != list(range(n)):
        fail(name, case, f"one epoch should show every pair exactly once; it showed files {order}.",
              "batch `index` should hold the next batch_size pairs of the epoch's order, so that the "
              "batches together show each pair once: none twice, none left out.")
    return order


def check_dataset(make: Callable[..., Any], n_pairs: int = 7, batch_size: int = 3,
                  image_size: tuple[int, int] = (32, 32), seed: int = 0, epochs: int = 3,
                  augment: bool = False) -> None:
    """Check a ``keras.utils.PyDataset`` class (or a function returning one) called as
    ``make(pairs, batch_size=..., image_size=..., shuffle=..., seed=...)`` on ``n_pairs``
    small PNG pairs written to a temporary folder: length, batch shapes and dtypes, value
    ranges, the last partial batch, image/mask pairing, file order without shuffling,
    a new order every epoch with shuffling, and the same orders for the same seed.
    With ``augment=True`` (once the augmentation is written) it also builds the data set
    with ``augment=True, shuffle=False``: the batches must differ from the unaugmented
    files, with masks still binary and aligned with their images.

    Args:
        make: the data set class, or a function returning a data set.
        n_pairs: the number of image/mask pairs written.
        batch_size: the batch size asked for.
        image_size: the image size asked for, ``(H, W)``.
        seed: the seed passed to the data set.
        epochs: the epochs run through to compare the orders.
        augment: also check the data set with ``augment=True``.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    import keras

    from helpers.generator import SegmentationDataset

    name = "dataset"
    size = tuple(image_size)
    n_cases = 0
    with tempfile.TemporaryDirectory(prefix="check_dataset_") as tmp:
        pairs = _write_pairs(Path(tmp), n_pairs)
        reference = SegmentationDataset(pairs, batch_size=n_pairs, image_size=size, shuffle=False)
        ref_x, ref_y = reference[0]

        def build(case, **kwargs):
            try:
                return make(list(pairs), batch_size=batch_size, image_size=size, **kwargs)
            except Exception as error:
                fail(name, case, f"creating the data set raised {type(error).__name__}: {error}", cause=error)

        case = "no shuffling"
        ds = build(case, shuffle=False, seed=seed)
        if not isinstance(ds, keras.utils.PyDataset):
            fail(name, case, f"expected a keras.utils.PyDataset, got {type(ds).__name__}.",
                  "the class must derive from keras.utils.PyDataset, as in the given code.")
        if "_workers" not in vars(ds):
            fail(name, case, "keras.utils.PyDataset.__init__ was not called.",
                  "keep the given super().__init__(**kwargs) line at the start of __init__ so Keras can use workers.")
        expected_len = math.ceil(n_pairs / batch_size)
        try:
            length = len(ds)
        except Exception as error:
            fail(name, case, f"len(ds) raised {type(error).__name__}: {error}", cause=error)
        if length != expected_len:
            fail(name, case, f"{n_pairs} pairs in batches of {batch_size} make {expected_len} batches, "
                  f"len() gave {length}.",
                  "the last, smaller batch counts too: rounding the division down drops it.")
        # batch sizes that divide the pairs evenly (and one larger than all of them): no extra batch
        for even in sorted({1, n_pairs, n_pairs + 1}):
            even_case = f"{n_pairs} pairs in batches of {even}"
            try:
                even_length = len(make(list(pairs), batch_size=even, image_size=size, shuffle=False, seed=seed))
            except Exception as error:
                fail(name, even_case, f"creating the data set or len() raised {type(error).__name__}: {error}",
                     cause=error)
            if even_length != math.ceil(n_pairs / even):
                fail(name, even_case, f"{n_pairs} pairs in batches of {even} make {math.ceil(n_pairs / even)} "
                     f"batch(es), len() gave {even_length}.",
                     "when the batch size divides the pairs evenly there is no smaller last batch to count "
                     "(and a batch size above the number of pairs makes one batch).")
        order = _epoch(ds, name, case, n_pairs, batch_size, size, ref_x, ref_y)
        if order != list(range(n_pairs)):
            fail(name, case, f"with shuffle=False the pairs should come in file order, got {order}.",
                  "only shuffle when self.shuffle is True.")
        n_cases += 1

        case = f"shuffling, seed {seed}"
        ds = build(case, shuffle=True, seed=seed)
        orders = []
        for epoch in range(epochs):
            orders.append(_epoch(ds, name, f"{case}, epoch {epoch + 1}", n_pairs, batch_size, size, ref_x, ref_y))
            ds.on_epoch_end()
        if all(o == list(range(n_pairs)) for o in orders):
            fail(name, case, f"shuffle=True gave the file order {orders[0]} in every epoch.",
                  "with shuffle=True the first epoch, too, comes in a random order, and each later one in a "
                  "new order.")
        if len({tuple(o) for o in orders}) == 1:
            fail(name, case, f"every epoch came in the same order {orders[0]}.",
                  "reshuffle in on_epoch_end(): Keras calls it after every epoch.")
        n_cases += 1

        case = f"same seed, same orders (seed {seed})"
        again = build(case, shuffle=True, seed=seed)
        again_orders = []
        for epoch in range(epochs):
            again_orders.append(_epoch(again, name, case, n_pairs, batch_size, size, ref_x, ref_y))
            again.on_epoch_end()
        if again_orders != orders:
            fail(name, case, f"two data sets with seed={seed} gave the orders {orders} and {again_orders}.",
                  "the orders should depend on the seed alone; yours seem to come from a random state the data "
                  "set does not own (NumPy's or Python's global one), which any other random draw changes.")
        n_cases += 1

        if augment:
            case = "augment=True"
            ds = build(case, shuffle=False, seed=seed, augment=True)
            changed = 0
            for b in range(len(ds)):
                x, y = (np.asarray(a) for a in ds[b])
                start = b * batch_size
                expected_shape = (min(batch_size, n_pairs - start),) + size + (1,)
                if x.shape != expected_shape or y.shape != expected_shape:
                    fail(name, case, f"ds[{b}] should give x and y of shape {expected_shape}, got {x.shape} "
                          f"and {y.shape}.", "augment the 2D image and mask, then add the channel axis.")
                if not set(np.unique(y).tolist()) <= {0.0, 1.0}:
                    fail(name, case, "augmented masks should hold only 0 and 1.",
                          "the mask was interpolated by the augmentation: it must stay 0/1.")
                agreement = float(np.mean((x > 0.5) == (y > 0.5)))
                if agreement < 0.9:
                    fail(name, case, f"augmented images and masks disagree on {1 - agreement:.0%} of the pixels.",
                          "augment each image together with its own mask, in one call of augment_pair.")
                for i in range(len(y)):
                    changed += int(not np.array_equal(y[i], ref_y[start + i]))
            if changed == 0:
                fail(name, case, "with augment=True every batch equals the unaugmented files.",
                      "with augment=True every pair must go through augment_pair before it is batched.")
            n_cases += 1
    ok(f"{name}: {n_cases} cases passed ({n_pairs} pairs, {epochs} epochs)")


# --------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------

def _blob_pair(rng, size: int = 64):
    """A float image in [0, 1] (0.2 background, 0.8 inside) with an asymmetric shape,
    and the binary uint8 mask of that shape.
    """
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = rng.uniform(0.35, 0.55, size=2) * size
    radius = rng.uniform(0.15, 0.22) * size
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
    inside |= (xx > size * 0.68) & (xx < size * 0.85) & (yy > size * 0.1) & (yy < size * 0.45)
    image = np.where(inside, 0.8, 0.2) + rng.normal(0, 0.02, size=(size, size))
    return image.clip(0, 1).astype(np.float32), inside.astype(np.uint8)


def _dice(a, b) -> float:
    a, b = a > 0, b > 0
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(a, b).sum() / total


def _call_augment(fn, name, case, image, mask, rng, **kwargs):
    try:
        out = fn(image, mask, rng, **kwargs)
    except TypeError as error:
        if kwargs and "flip" in str(error):
            fail(name, case, f"calling it with flip=True raised TypeError: {error}.",
                 "keep the signature augment_pair(image, mask, rng, flip=False, ...).", cause=error)
        fail(name, case, f"raised TypeError: {error}", cause=error)
    except Exception as error:  # report the learner's error with the case
        fail(name, case, f"raised {type(error).__name__}: {error}", cause=error)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(name, case, f"should return a tuple (image, mask), got {type(out).__name__}.",
              "end with `return image, mask`.")
    return tuple(np.asarray(a) for a in out)


def _orientation(mask) -> float:
    """Orientation in degrees of the long axis of a binary shape (second moments)."""
    yy, xx = np.nonzero(mask)
    yy, xx = yy - yy.mean(), xx - xx.mean()
    return float(np.degrees(0.5 * np.arctan2(2 * np.mean(xx * yy), np.mean(xx * xx) - np.mean(yy * yy))))


def check_augment_pair(fn: Callable[..., Any], random_cases: int = 8, seed: int = 0) -> None:
    """Check ``fn(image, mask, rng, flip=False) -> (image, mask)`` on 2D float images with a
    binary mask: shapes, the mask stays binary, image and mask move together, the transform is
    random (uses ``rng``), reproducible for the same ``rng`` seed, small, and leaves the
    inputs unchanged; by default no mirror image at all, with ``flip=True`` about half of
    the pairs mirrored left-right and never upside down; every call rotates (a centred bar
    turns by up to ~10 degrees) and shifts (a centred disc moves by up to ~5 % of the side).
    ``random_cases`` random generators are tried.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    name = "augment_pair"
    rng = np.random.default_rng(seed)
    moved = 0
    n_cases = max(4, int(random_cases))
    for i in range(n_cases):
        image, mask = _blob_pair(rng)
        case = f"random pair {i + 1} (rng seed {seed * 1000 + i})"
        image_in, mask_in = image.copy(), mask.copy()
        image_a, mask_a = _call_augment(fn, name, case, image_in, mask_in, np.random.default_rng(seed * 1000 + i))
        if not (np.array_equal(image_in, image) and np.array_equal(mask_in, mask)):
            fail(name, case, "the input image or mask was modified in place.",
                  "return new arrays and leave the caller's image and mask as they were.")
        if image_a.shape != image.shape or mask_a.shape != mask.shape:
            fail(name, case, f"expected shapes {image.shape} and {mask.shape}, got {image_a.shape} and {mask_a.shape}.",
                  "keep the output size: a rotation must not grow the array to fit the turned corners.")
        values = set(np.unique(mask_a).tolist())
        if not values <= {0, 1}:
            fail(name, case, f"the mask should stay binary (0 and 1), got values like {sorted(values)[:5]}.",
                  "the mask was interpolated: values between 0 and 1 appear at its edge. A mask needs an "
                  "interpolation that only copies values it already holds.")
        agreement = float(np.mean((image_a > 0.5) == (mask_a > 0)))
        if agreement < 0.95:
            fail(name, case, f"image and mask no longer line up: they disagree on {1 - agreement:.0%} of "
                  f"the pixels (expected < 5%).",
                  "apply the same flip, the same angle and the same shift to both: draw the random numbers "
                  "once and use them for image and mask.")
        plain, mirror_lr, mirror_ud = _dice(mask_a, mask), _dice(mask_a, np.fliplr(mask)), _dice(mask_a, np.flipud(mask))
        best = max(plain, mirror_lr, mirror_ud)
        if best < 0.6:
            fail(name, case, f"the transform is too strong: the mask overlaps the original (or its mirror "
                  f"image) with Dice {best:.2f} only.",
                  "rotations stay within ±max_rotation degrees and shifts within max_shift of the image size.")
        if mirror_ud > plain + 0.1:
            fail(name, case, "the result is upside down (flipped along the rows).",
                  "a chest X-ray is never upside down: a flip, when asked for, mirrors left and right "
                  "(the columns), never top and bottom (the rows).")
        if mirror_lr > plain + 0.1:
            fail(name, case, "with the default flip=False the result is mirrored left-right.",
                  "flip only when the `flip` argument is True: no flip by default is part of the exercise's "
                  "specification (whether chest X-rays should be flipped is the question of Exercise 1.4).")
        moved += int(not np.array_equal(mask_a, mask))
        again = fn(image.copy(), mask.copy(), np.random.default_rng(seed * 1000 + i))
        if not (np.array_equal(np.asarray(again[0]), image_a) and np.array_equal(np.asarray(again[1]), mask_a)):
            fail(name, case, "two calls with generators of the same seed gave different results.",
                  "draw every random number from the `rng` argument, not from NumPy's or Python's global "
                  "random state.")
    if moved < n_cases // 2:
        fail(name, f"{n_cases} random pairs", f"only {moved} of {n_cases} masks changed.",
              "rotate and shift by a random amount on every call.")

    # flip=True: about half mirrored left-right, never upside down
    n_flip = max(40, 2 * n_cases)
    mirrored = 0
    for i in range(n_flip):
        image, mask = _blob_pair(rng, size=48)
        case = f"flip=True, pair {i + 1}"
        image_a, mask_a = _call_augment(fn, name, case, image, mask, np.random.default_rng(seed * 7919 + i), flip=True)
        plain, mirror_lr, mirror_ud = _dice(mask_a, mask), _dice(mask_a, np.fliplr(mask)), _dice(mask_a, np.flipud(mask))
        if mirror_ud > max(plain, mirror_lr) + 0.1:
            fail(name, case, "with flip=True the result is upside down (flipped along the rows).",
                  "mirror left-right only (the columns), never upside down (the rows).")
        if float(np.mean((image_a > 0.5) == (mask_a > 0))) < 0.95:
            fail(name, case, "with flip=True image and mask no longer line up.",
                  "flip the image and the mask together, with one random draw.")
        mirrored += int(mirror_lr > plain)
    if not 0.2 * n_flip <= mirrored <= 0.8 * n_flip:
        fail(name, f"flip=True, {n_flip} pairs", f"{mirrored} of {n_flip} results were mirrored left-right "
              f"(expected about half).",
              "with flip=True each call mirrors with probability 1/2, decided by a draw from rng"
              + (" — flip is ignored." if mirrored == 0 else " — not on every call."))

    # a centred disc: rotation leaves it in place, only the shift moves it
    size = 64
    yy, xx = np.mgrid[0:size, 0:size]
    centre = (size - 1) / 2
    disc = ((yy - centre) ** 2 + (xx - centre) ** 2 < (0.2 * size) ** 2).astype(np.uint8)
    bar = ((np.abs(yy - centre) < 0.08 * size) & (np.abs(xx - centre) < 0.35 * size)).astype(np.uint8)
    moves, turns = [], []
    for i in range(12):
        r = np.random.default_rng(seed * 31 + i)
        _, disc_a = _call_augment(fn, name, "centred disc", disc.astype(np.float32) * 0.6 + 0.2, disc, r)
        _, bar_a = _call_augment(fn, name, "centred bar", bar.astype(np.float32) * 0.6 + 0.2, bar,
                                 np.random.default_rng(seed * 37 + i))
        if disc_a.sum() == 0 or bar_a.sum() == 0:
            fail(name, "centred disc and bar", "the mask came back empty.",
                  "keep transforms small; shift by a fraction of the size, not by whole images.")
        cy, cx = np.argwhere(disc_a > 0).mean(axis=0)
        moves.append(float(np.hypot(cy - centre, cx - centre)))
        turn = abs(_orientation(bar_a) - _orientation(bar))
        turns.append(min(turn, 180 - turn))
    limit = 0.05 * size * np.sqrt(2) + 1.5
    if max(moves) < 0.75:
        fail(name, "centred disc", f"in 12 calls the disc never moved (largest centre shift {max(moves):.2f} px).",
              "no shift seems to be applied, or one far below a pixel: each call moves image and mask by "
              "the same random offset of up to max_shift of the size along each axis (a share, not pixels).")
    if max(moves) > limit:
        fail(name, "centred disc", f"the disc moved by up to {max(moves):.1f} px on a {size}-px image "
              f"(at most {limit:.1f} expected for max_shift=0.05).",
              "each offset is at most max_shift times the image's size along its axis.")
    if max(turns) < 1.5:
        fail(name, "centred bar", f"in 12 calls a bar never turned (largest turn {max(turns):.1f} degrees).",
              "no rotation seems to be applied: each call turns image and mask by the same random angle "
              "within ±max_rotation degrees.")
    if max(turns) > 14:
        fail(name, "centred bar", f"a bar turned by {max(turns):.1f} degrees (at most 10 expected).",
              "the angle is in degrees, within ±max_rotation (10 by default).")
    ok(f"{name}: {n_cases + n_flip + 24} cases passed (no flip by default; flip=True mirrors "
             f"{mirrored}/{n_flip} left-right)")


def check_dataset_augments(make: Callable[..., Any], **kwargs: Any) -> None:
    """Check that the data set of Exercise 1.2 augments with ``augment=True`` (see
    :func:`check_dataset`), once the augmentation exists. A data set that does not yet pass
    the plain check is skipped with a note, so that an unfinished Exercise 1.2 costs points
    only there.

    Args:
        make: the data set class, or a function returning a data set.
        **kwargs: keyword arguments of :func:`check_dataset`.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            check_dataset(make, **kwargs)
    except AssertionError:
        print("dataset with augment=True: skipped, the data set does not pass the check of Exercise 1.2 yet.")
        return
    check_dataset(make, augment=True, **kwargs)
