"""Tests of helpers.patches: the foreground fraction it promises (statistically, within
binomial bounds), image/label alignment on asymmetric volumes, padding of small volumes,
determinism under a seed."""

from __future__ import annotations

import itertools
import math

import keras
import numpy as np
import pytest

from helpers import patches

PATCH = (6, 6, 6)


def _coordinates(shape) -> np.ndarray:
    """An image whose every voxel encodes its own index: 10000 x + 100 y + z."""
    grid = np.indices(shape)
    return (grid[0] * 10000 + grid[1] * 100 + grid[2]).astype(np.float32)


def _decode(values: np.ndarray) -> np.ndarray:
    values = np.rint(values).astype(np.int64)
    return np.stack([values // 10000, (values // 100) % 100, values % 100])


def _label_of(x, y, z):
    """An asymmetric label rule: any transposition or flip of the label breaks it."""
    return (x + 2 * y + 3 * z) % 4


def _binomial_bound(n: int, p: float, sigmas: float = 4.0) -> float:
    """Half-width of a +-4 sigma band of the count of successes (the chance of a false
    failure is below 1e-4; the test is deterministic under its seed anyway)."""
    return sigmas * math.sqrt(n * p * (1 - p)) + 1.0


def _fraction_of_random_patches_with_foreground(label: np.ndarray, patch) -> float:
    """Exact: the share of all positions where a patch fits whose patch holds foreground."""
    starts = [range(n - p + 1) for n, p in zip(label.shape, patch)]
    hits = [label[x:x + patch[0], y:y + patch[1], z:z + patch[2]].any() for x, y, z in itertools.product(*starts)]
    return float(np.mean(hits))


def _corner_blob_case():
    shape = (20, 16, 12)
    label = np.zeros(shape, np.uint8)
    label[1:3, 12:14, 9:11] = 1                    # 8 voxels near a corner: random patches rarely see it
    return np.random.default_rng(0).normal(size=shape).astype(np.float32), label


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.7, 1.0])
def test_the_share_of_patches_with_foreground_is_the_promised_one(fraction):
    image, label = _corner_blob_case()
    n = 1500
    dataset = patches.PatchDataset([image], [label], PATCH, batch_size=500, patches_per_epoch=n,
                                   foreground_fraction=fraction, seed=11)
    q = _fraction_of_random_patches_with_foreground(label, PATCH)
    assert 0.0 < q < 0.2
    expected = fraction + (1 - fraction) * q            # foreground patches always hold foreground
    with_foreground = sum(int(y.reshape(len(y), -1).max(axis=1).sum()) for _, y in dataset)
    assert abs(with_foreground - n * expected) <= _binomial_bound(n, expected), \
        f"{with_foreground}/{n} patches hold foreground, expected about {expected:.3f} of them"
    # the draws themselves: foreground patches ~ Binomial(n, fraction), and each holds its voxel
    drawn = [dataset.location(item) for item in range(n)]
    count = sum(where.foreground for where in drawn)
    assert abs(count - n * fraction) <= _binomial_bound(n, fraction)
    for where in drawn[:200]:
        if where.foreground:
            assert patches.crop_patch(label, where.start, PATCH).any()


def test_foreground_patches_are_centred_on_a_foreground_voxel_unless_at_the_border():
    shape = (30, 24, 18)
    label = np.zeros(shape, np.uint8)
    label[12:15, 10:13, 8:10] = 1                          # far from every border
    dataset = patches.PatchDataset([np.zeros(shape)], [label], (7, 6, 5), patches_per_epoch=100,
                                   foreground_fraction=1.0, seed=3)
    for item in range(100):
        where = dataset.location(item)
        centre = tuple(s + p // 2 for s, p in zip(where.start, (7, 6, 5)))
        assert where.foreground and label[centre] == 1
    edge = np.zeros(shape, np.uint8)
    edge[0, 0, 0] = 1                                      # at a corner: shifted inside, still held
    dataset = patches.PatchDataset([np.zeros(shape)], [edge], (7, 6, 5), foreground_fraction=1.0)
    assert dataset.location(0).start == (0, 0, 0)


def test_foreground_patches_come_from_cases_with_foreground_only():
    image, label = _corner_blob_case()
    empty = np.zeros_like(label)
    dataset = patches.PatchDataset([image, image, image], [empty, label, empty], PATCH, patches_per_epoch=300,
                                   foreground_fraction=0.5, seed=5)
    drawn = [dataset.location(item) for item in range(300)]
    assert {where.case for where in drawn if where.foreground} == {1}
    assert {where.case for where in drawn if not where.foreground} == {0, 1, 2}


@pytest.mark.parametrize("n_classes", [1, 4])
def test_image_and_label_stay_aligned_on_asymmetric_volumes(n_classes):
    """Small, asymmetric volumes (one smaller than the patch along two axes): every voxel of
    every patch holds the label of the image voxel it came from; padding is label 0."""
    volumes = [(7, 11, 5), (9, 8, 13)]
    images, labels = [], []
    for shape in volumes:
        x, y, z = np.indices(shape)
        images.append(np.stack([_coordinates(shape), -_coordinates(shape)], axis=-1))   # two channels
        labels.append(_label_of(x, y, z).astype(np.uint8))
    patch = (8, 8, 8)
    dataset = patches.PatchDataset(images, labels, patch, batch_size=5, patches_per_epoch=40,
                                   foreground_fraction=0.5, n_classes=n_classes, pad_value=-1.0, seed=2)
    assert len(dataset) == 8
    seen_padding = 0
    for x_batch, y_batch in dataset:
        assert x_batch.shape[1:] == patch + (2,) and x_batch.dtype == np.float32
        assert y_batch.shape[1:] == patch + (n_classes,) and y_batch.dtype == np.float32
        np.testing.assert_array_equal(x_batch[..., 1][x_batch[..., 0] >= 0], -x_batch[..., 0][x_batch[..., 0] >= 0])
        for x, y in zip(x_batch, y_batch):
            padded = x[..., 0] == -1.0
            seen_padding += int(padded.sum())
            truth = _label_of(*_decode(x[..., 0]))
            truth[padded] = 0
            got = y[..., 0] > 0 if n_classes == 1 else np.argmax(y, axis=-1)
            np.testing.assert_array_equal(got, truth > 0 if n_classes == 1 else truth)
    assert seen_padding > 0


def test_small_volumes_are_padded_evenly_with_the_minimum():
    image = _coordinates((3, 8, 6)) + 5.0
    label = np.ones((3, 8, 6), np.uint8)
    dataset = patches.PatchDataset([image], [label], (6, 4, 9), foreground_fraction=0.0)
    padded, padded_label = dataset.images[0][..., 0], dataset.labels[0]
    assert padded.shape == (6, 8, 9)
    np.testing.assert_array_equal(padded[1:4, :, 1:7], image)        # before = deficit // 2
    assert padded_label[1:4, :, 1:7].all() and padded_label.sum() == label.sum()
    assert (padded[0] == image.min()).all() and (padded[4:] == image.min()).all()
    same, before = patches.pad_to_patch(image, 2)
    assert same is image and before == (0, 0, 0)


def test_the_same_seed_gives_the_same_batches_in_any_order():
    image, label = _corner_blob_case()

    def make(seed):
        return patches.PatchDataset([image], [label], PATCH, batch_size=3, patches_per_epoch=12,
                                    foreground_fraction=0.5, seed=seed)

    a, b = make(1), make(1)
    backwards = [b[i] for i in reversed(range(len(b)))][::-1]
    for (xa, ya), (xb, yb) in zip([a[i] for i in range(len(a))], backwards):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(make(2)[0][0], a[0][0])
    first = a[0][0]
    a.on_epoch_end()
    assert a.epoch == 1 and not np.array_equal(a[0][0], first)
    np.testing.assert_array_equal(a.patch(0, epoch=0)[0], first[0])


def test_augmentation_moves_image_and_label_together():
    shape = (12, 12, 12)
    label = np.zeros(shape, np.uint8)
    label[3:9, 2:10, 4:8] = 1
    image = label.astype(np.float32)
    dataset = patches.PatchDataset([image], [label], (12, 12, 12), patches_per_epoch=4, foreground_fraction=1.0,
                                   augment={"max_rotation": 20, "brightness": 0, "contrast": 0}, seed=4)
    x, y = dataset[0]
    assert not np.array_equal(y[0, ..., 0], label)                # it moved ...
    # ... both alike: linear (image) and nearest (label) interpolation differ only at ties on the edge
    assert np.mean((x[0, ..., 0] > 0.5) != (y[0, ..., 0] > 0.5)) < 0.01


def test_it_is_a_keras_pydataset_and_fits_a_tiny_model():
    image, label = _corner_blob_case()
    dataset = patches.PatchDataset([image], [label], (4, 4, 4), batch_size=4, patches_per_epoch=8)
    assert isinstance(dataset, keras.utils.PyDataset)
    inputs = keras.Input((4, 4, 4, 1))
    model = keras.Model(inputs, keras.layers.Conv3D(1, 1, activation="sigmoid")(inputs))
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("kwargs, message", [
    ({"labels": []}, "1 images but 0 label maps"),
    ({"labels": [np.zeros((5, 4, 4))]}, "case 0: image"),
    ({"foreground_fraction": 1.2}, r"\[0, 1\]"),
    ({"labels": [np.zeros((4, 5, 6))]}, "no label map has any foreground"),
    ({"patch_size": (4, 4)}, "patch_size"),
])
def test_bad_arguments_are_refused_with_the_fix(kwargs, message):
    arguments = {"images": [np.zeros((4, 5, 6))], "labels": [np.ones((4, 5, 6))], "patch_size": 4}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        patches.PatchDataset(**arguments)
    with pytest.raises(ValueError, match="does not fit"):
        patches.crop_patch(np.zeros((4, 4, 4)), (1, 0, 0), 4)
    with pytest.raises(ValueError, match="no volumes"):
        patches.PatchDataset([], [], 4)
