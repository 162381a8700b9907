"""Tests for helpers/generator.py: scaling, paired augmentation, SegmentationDataset."""

from __future__ import annotations

import functools

import nibabel
import numpy as np
import pytest
from PIL import Image

from helpers import generator
from helpers.data import DatasetError
from helpers.generator import SegmentationDataset, augment_pair, percentile_stretch, window_hu


# --------------------------------------------------------------------------- fixtures

def _index_image(k: int, size: int = 40):
    """Image whose content encodes k: a bright bar of width 4 + 2k on a dim gradient;
    the mask is the bar."""
    yy, xx = np.mgrid[0:size, 0:size]
    image = 30 + 40 * xx / size
    mask = (yy >= 6) & (yy < size - 6) & (xx >= 4) & (xx < 8 + 2 * k)
    image = np.where(mask, 220, image)
    return image.astype(np.uint8), mask.astype(np.uint8)


@pytest.fixture
def png_pairs(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    pairs = []
    for k in range(7):
        image, mask = _index_image(k)
        ip, mp = tmp_path / "images" / f"SYN_{k:04d}_0.png", tmp_path / "masks" / f"SYN_{k:04d}_0.png"
        Image.fromarray(image).save(ip)
        Image.fromarray(mask * 255).save(mp)
        pairs.append((ip, mp))
    return pairs


def _bar_width(y):
    """Width in pixels of the bar in a (H, W, 1) mask, from its middle row."""
    return int(y[y.shape[0] // 2, :, 0].sum())


# --------------------------------------------------------------------------- intensities

def test_percentile_stretch_range_dtype_and_outliers():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, size=(64, 64))
    image[0, 0] = 10_000  # a hot pixel must not squash the contrast
    out = percentile_stretch(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert out.min() == 0.0 and out.max() == 1.0
    lo, hi = np.percentile(image, [5, 95])
    np.testing.assert_allclose(out, np.clip((image - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert 0.4 < out.mean() < 0.6


def test_percentile_stretch_constant_and_uint8():
    assert not np.isnan(percentile_stretch(np.full((8, 8), 7))).any()
    assert (percentile_stretch(np.full((8, 8), 7)) == 0).all()
    ramp = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    out = percentile_stretch(ramp, low=0, high=100)
    np.testing.assert_allclose(out[0], np.arange(256) / 255, atol=1e-6)
    with pytest.raises(ValueError):
        percentile_stretch(ramp, low=90, high=10)


def test_window_hu():
    out = window_hu(np.array([-2000, -1000, -350, 300, 3000]), (-1000, 300))
    np.testing.assert_allclose(out, [0, 0, 0.5, 1, 1], atol=1e-6)
    assert out.dtype == np.float32
    with pytest.raises(ValueError):
        window_hu(np.zeros(3), (10, -10))


# --------------------------------------------------------------------------- augmentation

def _blob_pair(shape=(64, 64)):
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    centre = [s * 0.45 for s in shape]
    r2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
    inside = (r2 < (min(shape) * 0.25) ** 2) | ((grids[-1] > shape[-1] * 0.7) & (grids[-2] < shape[-2] * 0.3))
    image = np.where(inside, 0.8, 0.2).astype(np.float32)
    return image, inside.astype(np.uint8)


@pytest.mark.parametrize("shape", [(64, 64), (12, 32, 32)])
def test_augment_pair_keeps_alignment_and_binary(shape):
    image, mask = _blob_pair(shape)
    changed = 0
    for seed in range(6):
        img_a, mask_a = augment_pair(image, mask, np.random.default_rng(seed))
        assert img_a.shape == image.shape and mask_a.shape == mask.shape
        assert img_a.dtype == np.float32 and mask_a.dtype == np.uint8
        assert set(np.unique(mask_a)) <= {0, 1}
        agreement = np.mean((img_a > 0.5) == (mask_a > 0))
        assert agreement > 0.97, f"seed {seed}: image and mask disagree on {1 - agreement:.1%}"
        assert img_a.min() >= 0 and img_a.max() <= 1
        changed += int(not np.array_equal(mask_a, mask))
    assert changed >= 5
    # inputs untouched
    assert np.array_equal(mask, _blob_pair(shape)[1])


def test_augment_pair_3d_is_in_plane():
    image, mask = _blob_pair((6, 32, 32))
    image[:] = image[0]  # every slice alike -> every slice transformed alike
    mask[:] = mask[0]
    img_a, mask_a = augment_pair(image, mask, np.random.default_rng(3))
    for d in range(1, 6):
        assert np.array_equal(mask_a[d], mask_a[0])
        np.testing.assert_allclose(img_a[d], img_a[0], atol=1e-6)


def test_augment_pair_deterministic_and_channels():
    image, mask = _blob_pair()
    image3 = np.stack([image, 1 - image, image], axis=-1)
    a = augment_pair(image3, mask[..., None], np.random.default_rng(11))
    b = augment_pair(image3, mask[..., None], np.random.default_rng(11))
    c = augment_pair(image3, mask[..., None], np.random.default_rng(12))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == (64, 64, 3) and a[1].shape == (64, 64, 1)
    # channel 1 is the negative of channel 0 (before jitter): the geometry is the same
    assert np.mean((a[0][..., 0] > a[0][..., 1] + 0.05) == (a[1][..., 0] > 0)) > 0.97


def test_augment_pair_no_op_settings_and_bad_shapes():
    image, mask = _blob_pair()
    img_a, mask_a = augment_pair(image, mask, 0, flip=False, max_rotation=0, max_shift=0,
                                 max_zoom=0, brightness=0, contrast=0)
    np.testing.assert_allclose(img_a, image, atol=1e-5)
    assert np.array_equal(mask_a, mask)
    with pytest.raises(ValueError):
        augment_pair(image, mask[:10], 0)


# --------------------------------------------------------------------------- data set

def test_dataset_shapes_dtypes_and_last_batch(png_pairs):
    ds = SegmentationDataset(png_pairs, batch_size=3, image_size=(32, 32), shuffle=False)
    assert len(ds) == 3
    x, y = ds[0]
    assert x.shape == (3, 32, 32, 1) and y.shape == (3, 32, 32, 1)
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1 and set(np.unique(y)) <= {0.0, 1.0}
    assert ds[2][0].shape == (1, 32, 32, 1) and ds[-1][0].shape == (1, 32, 32, 1)
    with pytest.raises(IndexError):
        ds[3]
    widths = [_bar_width(y) for b in range(len(ds)) for y in ds[b][1]]
    assert widths == sorted(widths) and len(set(widths)) == 7  # file order without shuffle


def _epoch_widths(ds):
    """Bar widths of masks and of bright pixels in the images, in batch order."""
    mask_w, image_w = [], []
    for b in range(len(ds)):
        x, y = ds[b]
        for xi, yi in zip(x, y):
            mask_w.append(_bar_width(yi))
            image_w.append(_bar_width((xi > 0.5).astype(np.float32)))
    return mask_w, image_w


def test_dataset_shuffles_each_epoch_keeps_pairs_and_is_deterministic(png_pairs):
    ds = SegmentationDataset(png_pairs, batch_size=3, image_size=(32, 32), seed=5)
    epochs = []
    for _ in range(3):
        mask_w, image_w = _epoch_widths(ds)
        assert mask_w == image_w  # pairs aligned
        assert sorted(mask_w) == sorted(set(mask_w)) and len(mask_w) == 7  # each once
        epochs.append(mask_w)
        ds.on_epoch_end()
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]
    again = SegmentationDataset(png_pairs, batch_size=3, image_size=(32, 32), seed=5)
    assert _epoch_widths(again)[0] == epochs[0]
    other = SegmentationDataset(png_pairs, batch_size=3, image_size=(32, 32), seed=6)
    assert _epoch_widths(other)[0] != epochs[0]


def test_dataset_augmentation_aligned_and_reproducible(png_pairs):
    kwargs = dict(batch_size=4, image_size=(32, 32), augment=True, seed=1, workers=1)
    ds = SegmentationDataset(png_pairs, **kwargs)
    x, y = ds[0]
    assert set(np.unique(y)) <= {0.0, 1.0}
    assert np.mean((x > 0.6) == (y > 0.5)) > 0.95
    x2, y2 = SegmentationDataset(png_pairs, **kwargs)[0]
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    plain = SegmentationDataset(png_pairs, **{**kwargs, "augment": False})[0]
    assert not np.array_equal(plain[1], y)
    assert ds.workers == 1 and ds.max_queue_size == 10


def test_dataset_nifti_3d_multiclass_multichannel(tmp_path):
    pairs = []
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    rng = np.random.default_rng(0)
    for k in range(3):
        labels = np.zeros((20, 20, 10), np.int16)
        labels[4:10, 4:10, 2:6] = 1
        labels[12:16, 5:15, 3:8] = 2
        labels[6:8, 12:18, 1:4] = 4
        images = []
        for m in range(2):
            volume = rng.normal(-800 + 100 * m, 20, labels.shape) + 300 * (labels > 0)
            path = tmp_path / f"case{k}_mod{m}.nii.gz"
            nibabel.save(nibabel.Nifti1Image(volume.astype(np.float32), affine), path)
            images.append(path)
        seg = tmp_path / f"case{k}_seg.nii.gz"
        nibabel.save(nibabel.Nifti1Image(labels, affine), seg)
        pairs.append((images, seg))
    ds = SegmentationDataset(pairs, batch_size=2, image_size=(16, 16, 8), n_classes=4,
                             label_map={4: 3}, shuffle=False,
                             preprocess=functools.partial(window_hu, window=(-1000, 300)))
    x, y = ds[0]
    assert x.shape == (2, 16, 16, 8, 2) and y.shape == (2, 16, 16, 8, 4)
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(y.sum(axis=-1), 1.0)
    assert all(y[..., c].sum() > 0 for c in range(4))
    assert ds[1][0].shape[0] == 1
    # binary path and augmentation on volumes
    xb, yb = SegmentationDataset(pairs, batch_size=3, image_size=(16, 16, 8), augment=True)[0]
    assert yb.shape == (3, 16, 16, 8, 1) and set(np.unique(yb)) <= {0.0, 1.0}
    # labels beyond n_classes without a label_map: a clear error
    with pytest.raises(ValueError, match="label_map"):
        SegmentationDataset(pairs, batch_size=1, image_size=(16, 16, 8), n_classes=4)[0]
    # a 2D image_size for 3D files: a clear error
    with pytest.raises(ValueError, match="image_size"):
        SegmentationDataset(pairs, batch_size=1, image_size=(16, 16))[0]


def test_dataset_bad_arguments(png_pairs, tmp_path):
    with pytest.raises(ValueError, match="no pairs"):
        SegmentationDataset([])
    with pytest.raises(ValueError):
        SegmentationDataset(png_pairs, batch_size=0)
    with pytest.raises(DatasetError, match="missing.png"):
        SegmentationDataset([(tmp_path / "missing.png", png_pairs[0][1])], image_size=(32, 32))[0]


def test_png_reader_matches(png_pairs):
    image = generator.read_any_image(png_pairs[3][0])
    mask = generator.read_any_mask(png_pairs[3][1])
    expected_image, expected_mask = _index_image(3)
    np.testing.assert_array_equal(image, expected_image.astype(np.float32))
    np.testing.assert_array_equal(mask, expected_mask)


def test_cxr_dataset_is_lesson_01s_reference_and_passes_its_check(png_pairs):
    from helpers import checks
    from helpers.generator import CXRDataset

    dataset = CXRDataset(png_pairs, batch_size=2, image_size=(32, 32), shuffle=False)
    x, y = dataset[0]
    assert x.shape == (2, 32, 32, 1) and y.shape == (2, 32, 32, 1)
    assert x.dtype == np.float32 and set(np.unique(y)) <= {0.0, 1.0}
    checks.check_dataset(CXRDataset)
    checks.check_dataset(CXRDataset, augment=True)
