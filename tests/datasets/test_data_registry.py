"""helpers.data.registry: every registered public data set prepares from a fixture in its
raw layout (tiny images and volumes with the real file names, built here), bad input is
reported with the file and the fix, and nothing half-written is left behind."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from helpers.data import DatasetError, registry
from support.raw_datasets import (
    RNG,
    _nifti,
    _png,
    _radiograph,
    _zip,
    make_brats,
    make_ircad,
    make_lctsc,
    make_montgomery,
    make_shenzhen,
)

# ------------------------------------------------------------------------------- chest X-rays

def test_montgomery_from_zip_merges_left_and_right_masks(tmp_path):
    raw = make_montgomery(tmp_path / "raw")
    archive = _zip(raw, tmp_path / "NLM-MontgomeryCXRSet.zip")
    report = registry.prepare("montgomery", archive, tmp_path / "out", size=32)
    assert report.written == 3 and not report.skipped
    images = sorted((tmp_path / "out" / "images").glob("*.png"))
    masks = sorted((tmp_path / "out" / "masks").glob("*.png"))
    assert [p.name for p in images] == [p.name for p in masks] == [
        "MCUCXR_0001_0.png", "MCUCXR_0002_1.png", "MCUCXR_0003_0.png"]
    mask = np.asarray(Image.open(masks[0]))
    image = np.asarray(Image.open(images[0]))
    assert mask.shape == image.shape == (32, 32) and image.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}
    # both lungs are in the merged mask: left and right halves each hold lung pixels
    assert mask[:, :16].any() and mask[:, 16:].any()
    # contrast stretch uses the full 8-bit range
    assert image.min() == 0 and image.max() == 255
    assert json.loads((tmp_path / "out" / "prepared.json").read_text())["written"] == 3


def test_shenzhen_pairs_mask_suffix_and_skips_unmasked_images(tmp_path):
    raw = make_shenzhen(tmp_path / "raw", n=3, unmasked=1)
    with pytest.raises(DatasetError, match=r"CHNCXR_0004_0\.png has no mask.*--skip-bad"):
        registry.prepare("shenzhen", raw, tmp_path / "out", size=32)
    assert not (tmp_path / "out").exists(), "a failed prepare must leave nothing behind"
    report = registry.prepare("shenzhen", raw, tmp_path / "out", size=32, skip_bad=True)
    assert report.written == 3
    assert [name for name, _ in report.skipped] == ["CHNCXR_0004_0"]
    assert "skipped 1" in str(report)


def test_mlinfn_layout_images_and_masks_folders(tmp_path):
    raw = tmp_path / "raw"
    for i in range(2):
        image, lungs = _radiograph()
        _png(raw / "images" / f"img_{i}.png", image)
        _png(raw / "masks" / f"img_{i}.png", lungs.astype(np.uint8))
    assert registry.prepare("mlinfn_cxr", raw, tmp_path / "out", size=48).written == 2
    assert np.asarray(Image.open(tmp_path / "out" / "images" / "img_0.png")).shape == (48, 48)


def test_black_border_crop():
    image = np.zeros((20, 30))
    image[3:17, 5:25] = 1.0
    rows, cols = registry.crop_black_border(image)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (3, 17, 5, 25)


@pytest.mark.parametrize("damage, message", [
    ("size", r"masks/CHNCXR_0001_0_mask\.png is 20x20 but its image .*CHNCXR_0001_0\.png is 50x60"),
    ("corrupt", r"CHNCXR_0001_0\.png cannot be read as an image"),
    ("nonbinary", r"CHNCXR_0001_0_mask\.png is not a binary mask"),
])
def test_bad_cxr_pairs_name_the_file(tmp_path, damage, message):
    raw = make_shenzhen(tmp_path / "raw", n=2, unmasked=0)
    if damage == "size":
        _png(raw / "masks" / "CHNCXR_0001_0_mask.png", np.zeros((20, 20), np.uint8))
    elif damage == "corrupt":
        (raw / "CXR_png" / "CHNCXR_0001_0.png").write_bytes(b"not a png")
    else:
        _png(raw / "masks" / "CHNCXR_0001_0_mask.png", RNG.integers(0, 255, (60, 50)).astype(np.uint8))
    with pytest.raises(DatasetError, match=message):
        registry.prepare("shenzhen", raw, tmp_path / "out", size=32)
    assert not (tmp_path / "out").exists()
    report = registry.prepare("shenzhen", raw, tmp_path / "out", size=32, skip_bad=True)
    assert report.written == 1 and report.skipped[0][0] == "CHNCXR_0001_0"


def test_empty_or_missing_source(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image folder"):
        registry.prepare("montgomery", tmp_path / "empty", tmp_path / "out")
    with pytest.raises(DatasetError, match="does not exist"):
        registry.prepare("montgomery", tmp_path / "nowhere.zip", tmp_path / "out")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DatasetError):
        registry.prepare("montgomery", tmp_path / "broken.zip", tmp_path / "out")


def test_existing_destination_needs_force(tmp_path):
    raw = make_shenzhen(tmp_path / "raw", n=2, unmasked=0)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "mine.txt").write_text("user data")
    with pytest.raises(DatasetError, match="not empty"):
        registry.prepare("shenzhen", raw, dest, size=32)
    assert (dest / "mine.txt").read_text() == "user data"
    registry.prepare("shenzhen", raw, dest, size=32, force=True)
    assert not (dest / "mine.txt").exists() and len(list((dest / "images").iterdir())) == 2


# ------------------------------------------------------------------------------------ volumes

def test_lctsc_merges_left_and_right_lungs(tmp_path):
    raw = make_lctsc(tmp_path / "raw")
    report = registry.prepare("lctsc", raw, tmp_path / "out")
    assert report.written == 2
    case = tmp_path / "out" / "LCTSC-Train-S1-001"
    lung = nib.load(case / "lung.nii.gz")
    ct = nib.load(case / "ct.nii.gz")
    assert set(np.unique(np.asarray(lung.dataobj))) == {0, 1}
    assert np.asarray(lung.dataobj).sum() == 2 * 5 * 9 * 4
    np.testing.assert_allclose(ct.affine, np.diag([0.8, 0.8, 2.5, 1.0]))


def test_ircad_pairs_and_missing_mask(tmp_path):
    raw = make_ircad(tmp_path / "raw", n=2)
    (raw / "ircad_e02_liver.nii.gz").unlink()
    with pytest.raises(DatasetError, match=r"ircad_e02_orig\.nii\.gz has no ircad_e02_liver"):
        registry.prepare("ircad", raw, tmp_path / "out")
    report = registry.prepare("ircad", raw, tmp_path / "out", skip_bad=True)
    assert report.written == 1
    assert sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz")) == [
        "ircad_e01_liver.nii.gz", "ircad_e01_orig.nii.gz"]


def test_brats_keeps_label_4_and_finds_the_misnamed_label_file(tmp_path):
    raw = make_brats(tmp_path / "raw", n=2, quirk=True)
    report = registry.prepare("brats2020", raw, tmp_path / "out")
    assert report.written == 2
    for name in ("BraTS20_Training_001", "BraTS20_Training_002"):
        seg = np.asarray(nib.load(tmp_path / "out" / name / f"{name}_seg.nii.gz").dataobj)
        assert set(np.unique(seg)) == {0, 1, 2, 4}
        for modality in ("t1", "t1ce", "t2", "flair"):
            assert (tmp_path / "out" / name / f"{name}_{modality}.nii.gz").is_file()


def test_brats_unexpected_labels_and_shape_mismatch(tmp_path):
    raw = make_brats(tmp_path / "raw", n=1, quirk=False)
    case = raw / "BraTS20_Training_001"
    seg = np.zeros((16, 16, 8), np.uint8)
    seg[1, 1, 1] = 3
    _nifti(case / "BraTS20_Training_001_seg.nii", seg, spacing=(1, 1, 1), compress=False)
    with pytest.raises(DatasetError, match=r"_seg\.nii holds label values \[3\]"):
        registry.prepare("brats2020", raw, tmp_path / "out")
    _nifti(case / "BraTS20_Training_001_seg.nii", np.zeros((8, 8, 8), np.uint8), spacing=(1, 1, 1), compress=False)
    with pytest.raises(DatasetError, match="must share one voxel grid"):
        registry.prepare("brats2020", raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_every_registered_set_has_page_licence_citation_and_layout():
    for entry in registry.DATASETS.values():
        assert entry.homepage.startswith("https://") and entry.licence and entry.citation and entry.raw_layout
        assert entry.kind in {"cxr", "lung_ct", "liver_ct", "brain_mri"}


def test_cli_list_and_prepare(tmp_path, capsys):
    from helpers.data.__main__ import main

    raw = make_shenzhen(tmp_path / "raw", n=2, unmasked=1)
    assert main(["prepare", "shenzhen", str(raw), "--dest", str(tmp_path / "out"), "--size", "32"]) == 2
    assert "has no mask" in capsys.readouterr().err
    assert main(["prepare", "shenzhen", str(raw), "--dest", str(tmp_path / "out"), "--size", "32",
                 "--skip-bad"]) == 0
    assert "2 cases written" in capsys.readouterr().out
    assert main(["list"]) == 0
    assert "montgomery" in capsys.readouterr().out


# ----------------------------------------------------- prepared sets feed the lessons' data path

@pytest.mark.slow
def test_prepared_cxr_set_trains_one_step_through_the_lesson_data_path(tmp_path, monkeypatch):
    """Lessons 01-05 read `data.ensure_dataset(DATASET)` -> `data.load_pairs` -> SegmentationDataset."""

    from helpers import config, data, generator, losses, metrics, models

    monkeypatch.setenv(config.DATA_VARIABLE, str(tmp_path / "data"))
    with pytest.raises(DatasetError, match="download montgomery --prepare"):
        data.ensure_dataset("montgomery")
    raw = make_montgomery(tmp_path / "raw", n=4)
    registry.prepare("montgomery", raw, size=64)  # default destination: data/montgomery
    folder = data.ensure_dataset("montgomery")
    assert folder == tmp_path / "data" / "montgomery"
    pairs = data.load_pairs(folder)
    assert len(pairs) == 4
    dataset = generator.SegmentationDataset(pairs, batch_size=2, image_size=(32, 32), augment=True)
    model = models.build_unet((32, 32, 1), depth=2, base_filters=4)
    model.compile(optimizer="adam", loss=losses.bce_dice_loss, metrics=[metrics.dice_coefficient])
    history = model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_unknown_name_lists_the_known_ones(tmp_path, monkeypatch):
    from helpers import config, data

    monkeypatch.setenv(config.DATA_VARIABLE, str(tmp_path))
    with pytest.raises(DatasetError, match="known names are .*cxr_synthetic.*montgomery"):
        data.ensure_dataset("nonsense")


def _one_step(model, x, y):
    model.compile(optimizer="adam", loss="binary_crossentropy" if y.shape[-1] == 1 else "categorical_crossentropy")
    loss = model.train_on_batch(x, y)
    assert np.isfinite(np.asarray(loss)).all()


@pytest.mark.slow
def test_prepared_lctsc_feeds_lesson_06(tmp_path, monkeypatch):
    """Lesson 06: ensure_dataset -> lung_ct.load_cases -> load_nifti -> window_hu -> 3D U-Net."""
    from helpers import config, data, generator, models
    from helpers.data import lung_ct

    monkeypatch.setenv(config.DATA_VARIABLE, str(tmp_path / "data"))
    registry.prepare("lctsc", make_lctsc(tmp_path / "raw"))
    cases = lung_ct.load_cases(data.ensure_dataset("lctsc"))
    assert [ct.parent.name for ct, _ in cases] == ["LCTSC-Train-S1-001", "LCTSC-Train-S1-002"]
    ct, _ = data.load_nifti(cases[0][0])
    lung, _ = data.load_nifti(cases[0][1])
    x = generator.window_hu(ct, config.HU_WINDOW_LUNG)[None, ..., None].astype("float32")
    _one_step(models.build_unet(x.shape[1:], depth=2, base_filters=2), x, lung[None, ..., None])


@pytest.mark.slow
def test_prepared_ircad_feeds_lesson_07(tmp_path, monkeypatch):
    """Lesson 07: ensure_dataset -> liver_ct.load_cases -> read_case -> axial slices -> 2D U-Net."""
    from helpers import config, data, generator, models
    from helpers.data import liver_ct

    monkeypatch.setenv(config.DATA_VARIABLE, str(tmp_path / "data"))
    registry.prepare("ircad", make_ircad(tmp_path / "raw"))
    cases = liver_ct.load_cases(data.ensure_dataset("ircad"))
    assert len(cases) == 2
    volume, mask, _ = liver_ct.read_case(*cases[0])
    x = np.moveaxis(generator.window_hu(volume, config.HU_WINDOW_LIVER), -1, 0)[..., None]
    y = np.moveaxis(mask, -1, 0)[..., None].astype("float32")
    _one_step(models.build_unet(x.shape[1:], depth=2, base_filters=2), x, y)


@pytest.mark.slow
def test_prepared_brats_feeds_lesson_08(tmp_path, monkeypatch):
    """Lesson 08: ensure_dataset -> brain_mri.load_cases -> read_case -> remap 4->3, one-hot -> softmax U-Net."""
    from helpers import config, data, models
    from helpers.data import brain_mri

    monkeypatch.setenv(config.DATA_VARIABLE, str(tmp_path / "data"))
    registry.prepare("brats2020", make_brats(tmp_path / "raw", n=2, quirk=True))
    cases = brain_mri.load_cases(data.ensure_dataset("brats2020"))
    assert len(cases) == 2
    image, seg = brain_mri.read_case(*cases[1])
    assert image.shape == (16, 16, 8, 4) and set(np.unique(seg)) == {0, 1, 2, 4}
    labels = np.where(seg == 4, 3, seg)
    x = np.moveaxis(image, 2, 0).astype("float32") / 1000.0
    y = np.eye(4, dtype="float32")[np.moveaxis(labels, 2, 0)]
    _one_step(models.build_unet(x.shape[1:], n_classes=4, depth=2, base_filters=2), x, y)
