"""Tests of helpers/data/brain_mri.py: the synthetic BraTS-like brain MRI set (lesson 08)."""

from __future__ import annotations

import gzip
import hashlib

import nibabel as nib
import numpy as np
import pytest

from helpers.data import DatasetError, LabelError, brain_mri

SMALL = dict(n_cases=2, shape=(32, 32, 24), seed=3)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    return brain_mri.generate(tmp_path_factory.mktemp("brats") / "set", **SMALL)


@pytest.fixture(scope="module")
def cases():
    """Three default-size cases in memory: ({modality: volume}, seg)."""
    return [brain_mri.make_case(number, seed=42)[:2] for number in (1, 2, 3)]


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.nii.gz"))}


def test_layout_follows_brats_2020(small_set):
    names = sorted(p.relative_to(small_set).as_posix() for p in small_set.rglob("*.nii.gz"))
    expected = sorted(f"BraTS20_Training_{i:03d}/BraTS20_Training_{i:03d}_{s}.nii.gz"
                      for i in (1, 2) for s in ("t1", "t1ce", "t2", "flair", "seg"))
    assert names == expected
    assert (small_set / "dataset.json").is_file()


def test_generation_is_deterministic_and_reused(small_set, tmp_path):
    again = brain_mri.generate(tmp_path / "again", **SMALL)
    assert _digest(again) == _digest(small_set)
    mtimes = {p: p.stat().st_mtime_ns for p in again.rglob("*.nii.gz")}
    brain_mri.generate(tmp_path / "again", **SMALL)          # reused, not rewritten
    assert {p: p.stat().st_mtime_ns for p in again.rglob("*.nii.gz")} == mtimes
    other = brain_mri.generate(tmp_path / "other", **dict(SMALL, seed=4))
    assert _digest(other) != _digest(small_set)


def test_gzip_header_has_no_timestamp(small_set):
    path = next(small_set.rglob("*_seg.nii.gz"))
    assert path.read_bytes()[4:8] == b"\x00\x00\x00\x00"     # gzip MTIME field
    gzip.decompress(path.read_bytes())                        # and it is valid gzip


def test_volumes_dtype_affine_labels_and_background(small_set):
    (modalities, seg_path), _ = brain_mri.load_cases(small_set)
    seg_image = nib.load(seg_path)
    seg = np.asarray(seg_image.dataobj)
    assert seg.dtype == np.uint8 and seg.shape == (32, 32, 24)
    assert set(np.unique(seg).tolist()) <= {0, 1, 2, 4}
    for path in modalities:
        image = nib.load(path)
        data = np.asarray(image.dataobj)
        assert data.dtype == np.float32 and data.shape == seg.shape
        np.testing.assert_allclose(image.affine, brain_mri.brats_affine(seg.shape))
        np.testing.assert_allclose(image.header.get_zooms(), (1.0, 1.0, 1.0))
        assert data.min() >= 0
        assert data[0, 0, 0] == 0 and data[-1, -1, -1] == 0   # skull-stripped corners
    brain = np.asarray(nib.load(modalities[0]).dataobj) > 0
    assert not np.any(seg[~brain]), "tumour labels outside the brain"


def test_affine_is_brats_like():
    affine = brain_mri.brats_affine((64, 64, 48))
    np.testing.assert_allclose(np.abs(np.diag(affine)[:3]), 1.0)
    assert nib.aff2axcodes(affine) == ("L", "P", "S")


def test_every_case_has_all_three_tumour_labels(cases):
    for _, seg in cases:
        assert set(np.unique(seg).tolist()) == {0, 1, 2, 4} or \
            set(np.unique(seg).tolist()) == {0, 2, 4}           # a few tumours are solid
        assert np.count_nonzero(seg == 4) > 50


def _mean(volume, mask):
    return float(volume[mask].mean())


def test_tumour_contrasts_look_like_brats(cases):
    for volumes, seg in cases:
        t1ce, flair, t2, t1 = volumes["t1ce"], volumes["flair"], volumes["t2"], volumes["t1"]
        brain = t1 > 0
        healthy = brain & (seg == 0)
        if np.any(seg == 1):
            assert _mean(t1ce, seg == 4) > 1.5 * _mean(t1ce, seg == 1), "rim should enhance around dark necrosis"
        assert _mean(t1ce, seg == 4) > 1.2 * _mean(t1ce, healthy)
        white = healthy & (t1 > np.percentile(t1[healthy], 70))      # normal white matter: bright on T1
        assert _mean(flair, seg == 2) > 1.4 * _mean(flair, white), "oedema should be bright on FLAIR"
        assert _mean(t2, seg == 2) > 1.4 * _mean(t2, white), "oedema should be bright on T2"
        assert _mean(t1, seg == 2) < 0.9 * _mean(t1, white), "oedema should be dark on T1"


def test_healthy_tissue_contrasts():
    """T1: WM > GM > CSF; T2: CSF brightest; FLAIR: CSF dark (suppressed)."""
    volumes, seg, _ = brain_mri.make_case(1, seed=42)
    t1, t2, flair = volumes["t1"], volumes["t2"], volumes["flair"]
    brain = (t1 > 0) & (seg == 0)
    # use T1 itself to split tissues: CSF is darkest, WM brightest
    low, high = np.percentile(t1[brain], [8, 85])
    csf, wm = brain & (t1 < low), brain & (t1 > high)
    assert _mean(t2, csf) > 1.5 * _mean(t2, wm)
    assert _mean(flair, csf) < 0.7 * _mean(flair, wm)


def test_intensity_scale_differs_between_cases(cases):
    """Scanner units vary per volume, so a fixed threshold cannot work."""
    medians = [np.median(v["flair"][v["flair"] > 0]) for v, _ in cases]
    assert max(medians) / min(medians) > 1.3


def test_tumour_size_and_position_vary(cases):
    sizes = [np.count_nonzero(seg) for _, seg in cases]
    centres = [np.argwhere(seg > 0).mean(axis=0) for _, seg in cases]
    assert max(sizes) / min(sizes) > 1.2
    assert np.linalg.norm(centres[0] - centres[1]) > 3


def test_load_brats_cases_returns_modalities_in_course_order(small_set):
    cases = brain_mri.load_cases(small_set)
    assert len(cases) == 2
    modalities, seg = cases[0]
    assert [p.name.split("_")[-1] for p in modalities] == [f"{m}.nii.gz" for m in brain_mri.MODALITIES]
    assert seg.name == "BraTS20_Training_001_seg.nii.gz"
    image, labels = brain_mri.read_case(modalities, seg)
    assert image.shape == (32, 32, 24, 4) and labels.shape == (32, 32, 24)


def _copy_set(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_missing_modality_is_named(small_set, tmp_path):
    folder = _copy_set(small_set, tmp_path / "copy")
    (folder / "BraTS20_Training_002" / "BraTS20_Training_002_t1ce.nii.gz").unlink()
    with pytest.raises(DatasetError, match=r"BraTS20_Training_002_t1ce\.nii\.gz is missing"):
        brain_mri.load_cases(folder)


def test_missing_seg_is_named(small_set, tmp_path):
    folder = _copy_set(small_set, tmp_path / "copy")
    (folder / "BraTS20_Training_001" / "BraTS20_Training_001_seg.nii.gz").unlink()
    with pytest.raises(DatasetError, match="_seg.nii.gz is missing"):
        brain_mri.load_cases(folder)


def test_shape_mismatch_is_named(small_set, tmp_path):
    folder = _copy_set(small_set, tmp_path / "copy")
    path = folder / "BraTS20_Training_001" / "BraTS20_Training_001_flair.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 20), np.float32), np.eye(4)), path)
    with pytest.raises(DatasetError, match=r"_flair\.nii\.gz has shape \(32, 32, 20\)"):
        brain_mri.load_cases(folder)


def test_unexpected_label_is_named(small_set, tmp_path):
    folder = _copy_set(small_set, tmp_path / "copy")
    path = folder / "BraTS20_Training_002" / "BraTS20_Training_002_seg.nii.gz"
    seg = np.asarray(nib.load(path).dataobj).copy()
    seg[seg == 4] = 3
    nib.save(nib.Nifti1Image(seg, np.eye(4)), path)
    with pytest.raises(LabelError, match=r"_seg\.nii\.gz holds label values \[3\] besides the expected "
                                         r"\[0, 1, 2, 4\]: BraTS segmentations use only"):
        brain_mri.load_cases(folder)
    assert len(brain_mri.load_cases(folder, check_masks=False)) == 2
    with pytest.raises(LabelError, match=r"holds label values \[3\]"):   # read_case: the same check
        brain_mri.read_case(*brain_mri.load_cases(folder, check_masks=False)[1])


def test_empty_or_wrong_folder(tmp_path):
    with pytest.raises(DatasetError, match="No BraTS case folders"):
        brain_mri.load_cases(tmp_path)
    with pytest.raises(DatasetError, match="is not a folder"):
        brain_mri.load_cases(tmp_path / "nowhere")


def test_foreign_files_are_not_clobbered(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="notes.txt"):
        brain_mri.generate(folder, **SMALL)
    assert (folder / "notes.txt").read_text() == "keep me"


def test_bad_parameters():
    with pytest.raises(ValueError, match="n_cases"):
        brain_mri.generate("/nonexistent-never-written", n_cases=0)
    with pytest.raises(ValueError, match="shape"):
        brain_mri.generate("/nonexistent-never-written", shape=(8, 8, 8))


def test_ensure_dataset_dispatches_here(tmp_path):
    from helpers.data import ensure_dataset
    folder = ensure_dataset("brats_synthetic", folder=tmp_path / "b", **SMALL)
    assert len(brain_mri.load_cases(folder)) == 2


# --------------------------------------------------------------------------- lesson 08 checks
# helpers/checks/brain.py belongs to lesson 08 and to this data set; its checks must pass
# the reference answers and catch the usual mistakes.

def _remap(seg):
    out = np.array(seg, copy=True)
    out[out == 4] = 3
    return out


def _region_dice(truth, prediction, regions=None):
    from helpers import metrics
    regions = regions or {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
    return {name: metrics.dice_numpy(np.isin(truth, v), np.isin(prediction, v)) for name, v in regions.items()}


def _scores(truth, prediction, n_classes):
    from helpers import metrics
    return np.array([[r["precision"], r["sensitivity"], r["specificity"]]
                     for r in metrics.per_class_scores(truth, prediction, n_classes)])


def test_brain_checks_accept_reference_answers(capsys):
    from helpers.checks import brain
    brain.check_remap_labels(_remap, random_cases=5)
    brain.check_one_hot(lambda labels, n: np.eye(n, dtype=np.float32)[labels], n_classes=3)
    brain.check_region_dice(_region_dice, random_cases=5)
    brain.check_per_class_scores(_scores, random_cases=5)
    assert capsys.readouterr().out.count("✓") == 4


@pytest.mark.parametrize("check, wrong, message", [
    ("check_remap_labels", lambda seg: seg, "label 4 should become 3"),
    ("check_remap_labels", lambda seg: (seg.__setitem__(seg == 4, 3), seg)[1], "in place"),
    ("check_one_hot", lambda labels, n: np.eye(n)[labels], "float32"),
    ("check_one_hot", lambda labels, n: np.eye(int(labels.max()) + 1, dtype=np.float32)[labels], "expected shape"),
    ("check_region_dice", lambda t, p: _region_dice(t, p, {"WT": (1, 2, 3), "TC": (1, 2, 3), "ET": (3,)}), "TC"),
    ("check_region_dice", lambda t, p: {k: v if np.isin(t, (1, 2, 3)).any() else np.nan
                                        for k, v in _region_dice(t, p).items()}, "not 0/0"),
    ("check_per_class_scores", lambda t, p, n: np.nan_to_num(_scores(t, p, n)), "nan"),
    ("check_per_class_scores", lambda t, p, n: _scores(t, p, n)[:, [1, 0, 2]], "precision"),
])
def test_brain_checks_catch_usual_mistakes(check, wrong, message):
    from helpers.checks import brain
    with pytest.raises(AssertionError, match=message):
        getattr(brain, check)(wrong)


def test_loss_check_accepts_reference_and_names_missing_dice():
    import keras

    from helpers import losses
    from helpers.checks import brain
    brain.check_cce_dice_loss(losses.cce_dice_loss)
    only_cce = lambda t, p: keras.ops.mean(keras.losses.categorical_crossentropy(t, p))  # noqa: E731
    with pytest.raises(AssertionError, match="only the cross-entropy"):
        brain.check_cce_dice_loss(only_cce)
    with_background = lambda t, p: losses.cce_dice_loss(t, p, include_background=True)  # noqa: E731
    with pytest.raises(AssertionError, match="background"):
        brain.check_cce_dice_loss(with_background)


def test_lesson_08_references_pass_their_checks():
    """remap_labels, one_hot and per_class_scores: the references lesson 08 falls back on."""
    import numpy as np

    from helpers import checks, generator, metrics
    from helpers.data import brain_mri

    seg = np.array([[0, 1], [2, 4]], np.uint8)
    remapped = brain_mri.remap_labels(seg)
    assert remapped.tolist() == [[0, 1], [2, 3]] and remapped.dtype == np.uint8 and seg[1, 1] == 4
    checks.check_remap_labels(brain_mri.remap_labels, random_cases=5)
    encoded = generator.one_hot(np.array([0, 3]), 4)
    assert encoded.dtype == np.float32 and encoded.tolist() == [[1, 0, 0, 0], [0, 0, 0, 1]]
    checks.check_one_hot(generator.one_hot, random_cases=5)
    table = metrics.reference_per_class_scores(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 4)
    assert table.shape == (4, 3) and table[1].tolist() == [1.0, 0.5, 1.0] and np.isnan(table[3, 0])
    checks.check_per_class_scores(metrics.reference_per_class_scores, random_cases=5)
    checks.check_region_dice(metrics.brats_region_dice)
