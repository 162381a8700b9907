"""Tests of helpers/data/liver_ct.py: the synthetic 3D-IRCADb-like abdominal CT set.

Small grids and few cases keep this file fast; the tissue checks use the label map that
``make_case(..., tissues=True)`` returns before blur and noise.
"""

from __future__ import annotations

import gzip
import json

import nibabel as nib
import numpy as np
import pytest

from helpers import config
from helpers.data import DatasetError, LabelError, ensure_dataset, liver_ct

SMALL = dict(n_cases=3, shape=(64, 64, 20))
T = liver_ct.TISSUES


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    return liver_ct.generate(tmp_path_factory.mktemp("liver") / "set", **SMALL)


@pytest.fixture(scope="module")
def phantoms():
    """Two default-size cases with their tissue label maps."""
    return [liver_ct.make_case(number, seed=config.SEED, tissues=True) for number in (1, 2)]


def _median(hu, label, tissue):
    selected = label == T[tissue]
    assert selected.sum() > 20, f"tissue {tissue} is (almost) absent"
    return float(np.median(hu[selected]))


# ------------------------------------------------------------------ layout and files

def test_layout_names_dtypes_and_metadata(small_set):
    names = sorted(p.name for p in small_set.iterdir())
    assert names == ["dataset.json",
                     "ircad_e01_liver.nii.gz", "ircad_e01_orig.nii.gz",
                     "ircad_e02_liver.nii.gz", "ircad_e02_orig.nii.gz",
                     "ircad_e03_liver.nii.gz", "ircad_e03_orig.nii.gz"]
    orig = nib.load(small_set / "ircad_e01_orig.nii.gz")
    liver = nib.load(small_set / "ircad_e01_liver.nii.gz")
    assert orig.shape == liver.shape == SMALL["shape"]
    assert orig.get_data_dtype() == np.int16
    assert liver.get_data_dtype() == np.uint8
    metadata = json.loads((small_set / "dataset.json").read_text())
    assert metadata["complete"] and metadata["generator"] == "liver_ct_synthetic"
    assert metadata["params"] == {"n_cases": 3, "shape": [64, 64, 20], "seed": config.SEED}


def test_ensure_dataset_dispatches_and_reuses(tmp_path):
    folder = ensure_dataset("liver_ct_synthetic", folder=tmp_path / "set", n_cases=1, shape=(48, 48, 12))
    path = folder / "ircad_e01_orig.nii.gz"
    before = path.stat().st_mtime_ns
    again = ensure_dataset("liver_ct_synthetic", folder=tmp_path / "set", n_cases=1, shape=(48, 48, 12))
    assert again == folder and path.stat().st_mtime_ns == before


def test_generation_is_byte_deterministic_and_gzip_has_no_timestamp(small_set, tmp_path):
    other = liver_ct.generate(tmp_path / "again", **SMALL)
    for name in ("ircad_e02_orig.nii.gz", "ircad_e02_liver.nii.gz"):
        payload = (small_set / name).read_bytes()
        assert payload == (other / name).read_bytes()
        assert payload[4:8] == b"\0\0\0\0"                      # gzip mtime field
    different = liver_ct.generate(tmp_path / "seed7", n_cases=1, shape=SMALL["shape"], seed=7)
    assert (different / "ircad_e01_orig.nii.gz").read_bytes() != (small_set / "ircad_e01_orig.nii.gz").read_bytes()


def test_affine_is_anisotropic_and_round_trips(small_set):
    hu, mask, affine = liver_ct.make_case(2, shape=SMALL["shape"], seed=config.SEED)
    volume, loaded_mask, loaded_affine = liver_ct.read_case(small_set / "ircad_e02_orig.nii.gz",
                                                            small_set / "ircad_e02_liver.nii.gz")
    np.testing.assert_allclose(loaded_affine, affine, atol=1e-3)
    np.testing.assert_array_equal(volume, hu.astype(np.float32))
    np.testing.assert_array_equal(loaded_mask, mask)
    spacing = np.abs(np.diag(affine)[:3])
    assert spacing[2] > 1.3 * spacing[0] and spacing[0] == pytest.approx(spacing[1])
    # DICOM-like storage: x towards the patient's left, y towards the back, z to the head
    assert nib.aff2axcodes(loaded_affine) == ("L", "P", "S")


def test_masks_are_binary_and_liver_only_in_a_range_of_slices(small_set):
    for orig, liver in liver_ct.load_cases(small_set):
        mask = np.asarray(nib.load(liver).dataobj)
        assert set(np.unique(mask).tolist()) == {0, 1}
        with_liver = mask.any(axis=(0, 1))
        assert 0.3 < with_liver.mean() < 0.95, "the liver should appear in some slices only"
        indices = np.flatnonzero(with_liver)
        assert np.all(np.diff(indices) == 1), "liver slices should be contiguous"


# ------------------------------------------------------------------ anatomy and HU

def test_tissue_hounsfield_ranges(phantoms):
    for hu, mask, _, label in phantoms:
        assert hu.dtype == np.int16
        assert -100 - 35 < _median(hu, label, "subcutaneous_fat") < -100 + 35
        assert -100 - 35 < _median(hu, label, "visceral_fat") < -100 + 35
        assert 30 < _median(hu, label, "muscle") < 70
        assert 40 < _median(hu, label, "liver") < 85
        assert _median(hu, label, "aorta") > 120
        assert _median(hu, label, "bone") > 200
        assert _median(hu, label, "stomach_gas") < -600          # small pockets: partial volume
        assert np.percentile(hu[label == T["stomach_gas"]], 10) < -900
        assert _median(hu, label, "air") < -900
        assert _median(hu, label, "kidney") > 80


def test_spleen_has_nearly_the_liver_density(phantoms):
    for hu, _, _, label in phantoms:
        assert abs(_median(hu, label, "spleen") - _median(hu, label, "liver")) < 25


def test_liver_on_the_patients_right_and_spleen_on_the_left(phantoms):
    for _, mask, affine, label in phantoms:
        # first axis points to the patient's left: the liver lies at low x indices
        centre_x = (mask.shape[0] - 1) / 2
        assert np.argwhere(mask)[:, 0].mean() < centre_x
        assert np.argwhere(label == T["spleen"])[:, 0].mean() > centre_x


def test_lesions_and_vessels_are_hypo_and_hyperdense_and_inside_the_mask():
    found = 0
    for index in range(1, 6):
        hu, mask, _, label = liver_ct.make_case(index, shape=(80, 80, 24), seed=config.SEED, tissues=True)
        assert np.all(mask[label == T["lesion"]] == 1)
        assert np.all(mask[label == T["liver_vessel"]] == 1)
        assert np.all(mask[label == T["gallbladder"]] == 0)
        assert np.all(mask[label == T["spleen"]] == 0)
        assert set(np.unique(label[mask == 1]).tolist()) <= {T["liver"], T["lesion"], T["liver_vessel"]}
        if (label == T["lesion"]).sum() > 20:
            found += 1
            assert 0 < _median(hu, label, "lesion") < 45
            assert _median(hu, label, "lesion") < _median(hu, label, "liver") - 10
    assert found >= 2, "most cases should have liver lesions"


def test_cases_differ_in_pose_spacing_and_contrast():
    a = liver_ct.make_case(1, shape=(64, 64, 20), seed=config.SEED, tissues=True)
    b = liver_ct.make_case(2, shape=(64, 64, 20), seed=config.SEED, tissues=True)
    assert not np.allclose(a[2], b[2])
    assert (a[1] != b[1]).mean() > 0.01
    assert _median(a[0], a[3], "liver") != _median(b[0], b[3], "liver")


# ------------------------------------------------------------------ loading and bad input

def test_case_id():
    assert liver_ct.case_id("data/x/ircad_e07_orig.nii.gz") == "ircad_e07"
    assert liver_ct.case_id("ircad_e07_liver.nii") == "ircad_e07"


def _copy_case(src, dst, names=("ircad_e01_orig.nii.gz", "ircad_e01_liver.nii.gz")):
    dst.mkdir()
    for name in names:
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_load_liver_cases_sorted(small_set):
    cases = liver_ct.load_cases(small_set)
    assert [(o.name, m.name) for o, m in cases] == [
        (f"ircad_e0{i}_orig.nii.gz", f"ircad_e0{i}_liver.nii.gz") for i in (1, 2, 3)]


def test_missing_mask_is_named(small_set, tmp_path):
    folder = _copy_case(small_set, tmp_path / "c", names=("ircad_e01_orig.nii.gz",))
    with pytest.raises(DatasetError, match=r"ircad_e01_liver\.nii\.gz is missing"):
        liver_ct.load_cases(folder)


def test_shape_mismatch_is_named(small_set, tmp_path):
    folder = _copy_case(small_set, tmp_path / "c")
    bad = nib.Nifti1Image(np.zeros((64, 64, 19), np.uint8), np.eye(4))
    (folder / "ircad_e01_liver.nii.gz").write_bytes(gzip.compress(bad.to_bytes()))
    with pytest.raises(DatasetError, match=r"ircad_e01_liver\.nii\.gz has shape \(64, 64, 19\)"):
        liver_ct.load_cases(folder)


def test_non_binary_mask_is_named_but_0_255_is_accepted(small_set, tmp_path):
    folder = _copy_case(small_set, tmp_path / "c")
    labels = np.zeros(SMALL["shape"], np.uint8)
    labels[10:20, 10:20, 5:9] = 2
    labels[30:40, 30:40, 5:9] = 1
    (folder / "ircad_e01_liver.nii.gz").write_bytes(gzip.compress(nib.Nifti1Image(labels, np.eye(4)).to_bytes()))
    with pytest.raises(LabelError, match=r"holds label values \[2\] besides the expected \[0, 1\] or \[0, 255\]: "
                                         r"a liver mask must be binary"):
        liver_ct.load_cases(folder)
    # read_case checks the labels through the same function (a loader that skipped the check)
    with pytest.raises(LabelError, match=r"ircad_e01_liver\.nii\.gz holds label values \[2\]"):
        liver_ct.read_case(*liver_ct.load_cases(folder, check_masks=False)[0])
    (folder / "ircad_e01_liver.nii.gz").write_bytes(
        gzip.compress(nib.Nifti1Image((labels > 0).astype(np.uint8) * 255, np.eye(4)).to_bytes()))
    [(orig, liver)] = liver_ct.load_cases(folder)
    _, mask, _ = liver_ct.read_case(orig, liver)
    assert set(np.unique(mask).tolist()) == {0, 1}


def test_unreadable_file_is_named(small_set, tmp_path):
    folder = _copy_case(small_set, tmp_path / "c")
    (folder / "ircad_e01_liver.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(DatasetError, match=r"ircad_e01_liver\.nii\.gz cannot be read"):
        liver_ct.load_cases(folder)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="is not a folder"):
        liver_ct.load_cases(tmp_path / "nope")
    with pytest.raises(DatasetError, match="No CT volumes"):
        liver_ct.load_cases(tmp_path)


def test_generate_refuses_foreign_files_and_bad_parameters(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="notes.txt"):
        liver_ct.generate(tmp_path, n_cases=1, shape=(48, 48, 12))
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="n_cases"):
        liver_ct.generate(tmp_path / "x", n_cases=100)
    with pytest.raises(ValueError, match="shape"):
        liver_ct.generate(tmp_path / "x", shape=(16, 16, 4))
