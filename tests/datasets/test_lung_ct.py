"""helpers.data.lung_ct: synthetic chest CT in Hounsfield units, NIfTI layout, validation."""

from __future__ import annotations

import gzip
import hashlib
import json

import nibabel as nib
import numpy as np
import pytest

from helpers.data import DatasetError, LabelError, lung_ct

SHAPE = (40, 40, 32)  # small grid: fast, but every structure is still there


@pytest.fixture(scope="module")
def case():
    return lung_ct.make_case(1, shape=SHAPE, seed=3)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return lung_ct.generate(tmp_path_factory.mktemp("lung") / "set", n_cases=3, shape=SHAPE, seed=3)


def _digest(*arrays):
    h = hashlib.sha256()
    for array in arrays:
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def test_case_is_deterministic_and_seed_dependent(case):
    again = lung_ct.make_case(1, shape=SHAPE, seed=3)
    assert _digest(*case) == _digest(*again)
    other_seed = lung_ct.make_case(1, shape=SHAPE, seed=4)
    other_case = lung_ct.make_case(2, shape=SHAPE, seed=3)
    assert _digest(*other_seed) != _digest(*case)
    assert _digest(*other_case) != _digest(*case)


def test_types_labels_and_lung_fraction(case):
    ct, lung, affine = case
    assert ct.shape == lung.shape == SHAPE
    assert ct.dtype == np.int16 and lung.dtype == np.uint8
    assert set(np.unique(lung).tolist()) == {0, 1}
    assert 0.03 < lung.mean() < 0.20          # both lungs: a few % of a chest CT volume
    assert affine.shape == (4, 4)
    # both lungs: the mask has mass on either side of the mid-sagittal plane
    half = SHAPE[0] // 2
    assert lung[:half].sum() > 0.25 * lung.sum() and lung[half:].sum() > 0.25 * lung.sum()


def test_hounsfield_ranges_per_tissue(case):
    ct, lung, _ = case
    corner = ct[:4, :4, :].astype(float)       # outside the body: air (or -1024 padding)
    assert -1060 < corner.mean() < -960
    lung_hu = ct[lung == 1].astype(float)
    assert -900 < np.median(lung_hu) < -700     # parenchyma about -850 HU (+ vessels, noise)
    assert np.percentile(lung_hu, 5) > -1024
    assert ct.max() > 500                       # ribs / spine: bone
    assert ct.min() >= -1024 and ct.max() < 3072
    # soft tissue and fat are present in the body (between -150 and 100 HU)
    assert ((ct > -150) & (ct < 100)).mean() > 0.15


def test_threshold_alone_does_not_give_the_mask(case):
    ct, lung, _ = case
    air = ct < -400
    dice = 2 * (air & (lung == 1)).sum() / (air.sum() + lung.sum())
    assert dice < 0.5                            # outside air, trachea, table foam are dark too
    # airways are air but not lung: some dark voxels inside the body are outside the mask
    assert ((ct < -900) & (lung == 0))[10:-10, 10:-10, :].any()


@pytest.fixture(scope="module")
def small_set():
    return [lung_ct.make_case(number, shape=SHAPE, seed=3)[:2] for number in range(1, 11)]


def test_dense_lung_at_the_pleura_is_in_the_mask(small_set):
    """Vessels, collapse and consolidation belong to the lung; some of it touches the mask's edge,
    where filling holes cannot bring it back."""
    from scipy import ndimage

    dense_inside, dense_at_edge = 0, 0
    for ct, lung in small_set:
        lung = lung.astype(bool)
        edge = lung & ~ndimage.binary_erosion(lung)
        dense_inside += int((lung & (ct > -300)).sum())
        dense_at_edge += int((edge & (ct > -100)).sum())
    total = sum(int(lung.sum()) for _, lung in small_set)
    assert dense_inside > 0.08 * total, f"only {dense_inside / total:.1%} of the mask is dense lung"
    assert dense_at_edge > 0.02 * total


def test_the_trachea_is_air_outside_the_mask(small_set):
    """In the upper half of the chest, between the lungs, dark voxels that are not lung: the
    trachea and main bronchi."""
    centre = np.zeros(SHAPE, bool)
    centre[SHAPE[0] // 3: -SHAPE[0] // 3, SHAPE[1] // 4: -SHAPE[1] // 4, SHAPE[2] // 2:] = True
    for ct, lung in small_set:
        assert ((ct < -500) & (lung == 0) & centre).sum() >= 20


def test_the_best_threshold_recipe_stays_below_the_unet_bar():
    """benchmarks/lung_ct_difficulty.py: no threshold of its range, with outside air removed,
    two largest components and holes filled and closed, reaches the lesson's bar of 0.90."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "lung_ct_difficulty.py"
    spec = importlib.util.spec_from_file_location("lung_ct_difficulty", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    cases = []
    for number in range(1, 7):
        ct, lung, _ = lung_ct.make_case(number)
        cases.append((ct.astype(np.float32), lung > 0))
    scores = benchmark.score_thresholds(cases, (-400.0, -300.0, -200.0))
    best = max(float(table.mean(axis=1).max()) for table in scores.values())
    assert 0.6 < best < 0.88, f"best threshold recipe on 6 cases: mean Dice {best:.3f}"


def test_spacing_is_anisotropic_and_varies_per_case(case):
    _, _, affine = case
    spacing = lung_ct.voxel_spacing(affine)
    assert spacing[0] == pytest.approx(spacing[1])
    assert spacing[2] > 1.2 * spacing[0]        # slices thicker than the in-plane pixels
    other = lung_ct.voxel_spacing(lung_ct.make_case(2, shape=SHAPE, seed=3)[2])
    assert not np.allclose(spacing, other)
    # physical field of view does not depend on the grid: a finer grid has finer spacing
    fine = lung_ct.voxel_spacing(lung_ct.make_case(1, shape=(80, 80, 64), seed=3)[2])
    assert fine == pytest.approx(spacing / 2, rel=1e-6)


def test_generate_writes_lctsc_layout_and_round_trips(folder, case):
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert names == ["LCTSC-Train-S1-001", "LCTSC-Train-S1-002", "LCTSC-Train-S1-003"]
    pairs = lung_ct.load_cases(folder)
    assert [(c.name, m.name) for c, m in pairs] == [("ct.nii.gz", "lung.nii.gz")] * 3
    ct_image, lung_image = nib.load(pairs[0][0]), nib.load(pairs[0][1])
    ct, lung, affine = case
    assert ct_image.get_data_dtype() == np.int16 and lung_image.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(ct_image.dataobj), ct)
    np.testing.assert_array_equal(np.asarray(lung_image.dataobj), lung)
    np.testing.assert_allclose(ct_image.affine, affine, atol=1e-5)
    np.testing.assert_allclose(ct_image.header.get_zooms(), lung_ct.voxel_spacing(affine), rtol=1e-5)
    metadata = json.loads((folder / "dataset.json").read_text())
    assert metadata["complete"] and metadata["params"]["shape"] == list(SHAPE)


def test_lctsc_sized_mode_is_the_design_patient_on_a_finer_grid(case):
    """LCTSC-sized volumes: the anatomy of the design grid, interpolated onto the fine grid
    of the same field of view; the noise is drawn on the fine grid."""
    from scipy import ndimage

    ct, lung, affine = lung_ct.make_case(1, shape=(80, 80, 48), seed=3, design_shape=SHAPE)
    again = lung_ct.make_case(1, shape=(80, 80, 48), seed=3, design_shape=SHAPE)
    assert _digest(ct, lung) == _digest(*again[:2])
    assert ct.shape == lung.shape == (80, 80, 48) and ct.dtype == np.int16 and lung.dtype == np.uint8
    spacing = lung_ct.voxel_spacing(affine)
    np.testing.assert_allclose(spacing * (80, 80, 48), lung_ct.voxel_spacing(case[2]) * SHAPE, rtol=1e-6)
    down = ndimage.zoom(lung.astype(np.float32), np.divide(SHAPE, lung.shape), order=1, grid_mode=True,
                        mode="grid-constant") > 0.5
    overlap = 2 * np.logical_and(down, case[1] > 0).sum() / (down.sum() + case[1].sum())
    assert overlap > 0.97, overlap                           # the same lungs, not another patient
    assert -900 < np.median(ct[lung > 0]) < -500 and np.median(ct[ct > -500]) > -200


def test_full_preset_is_lctsc_sized():
    """256 px in-plane, slices 2-3 mm apart, 30-35 cm field of view (the preset's numbers)."""
    fov_mm, length_mm = (300.0, 350.0), (330.0, 380.0)   # make_case's ranges
    nx, _, nz = lung_ct.FULL["shape"]
    assert nx >= 256
    assert 2.0 <= length_mm[0] / nz and length_mm[1] / nz <= 3.0
    assert 1.0 <= fov_mm[0] / nx and fov_mm[1] / nx <= 1.4


def test_ensure_dataset_generates_the_full_preset(tmp_path):
    from helpers import data

    folder = data.ensure_dataset("lung_ct_synthetic_full", folder=tmp_path / "full", n_cases=1,
                                 shape=(48, 48, 40), design_shape=(32, 32, 24), workers=1)
    metadata = json.loads((folder / "dataset.json").read_text())
    assert metadata["params"]["design_shape"] == [32, 32, 24]
    (ct_path, _), = lung_ct.load_cases(folder)
    assert nib.load(ct_path).shape == (48, 48, 40)
    with pytest.raises(ValueError, match="design_shape"):
        lung_ct.generate(tmp_path / "bad", n_cases=1, shape=(48, 48, 40), design_shape=(8, 8, 8))


def test_nifti_bytes_are_deterministic(case):
    ct, _, affine = case
    first, second = lung_ct.nifti_bytes(ct, affine), lung_ct.nifti_bytes(ct, affine)
    assert first == second and gzip.decompress(first)[:4] == (348).to_bytes(4, "little")


def test_generate_reuses_a_complete_set(folder):
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*.nii.gz")}
    lung_ct.generate(folder, n_cases=3, shape=SHAPE, seed=3)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.nii.gz")} == before


def test_generate_rejects_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        lung_ct.generate(tmp_path / "x", n_cases=1, shape=(8, 8))


def _copy_set(folder, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def test_missing_mask_is_named(folder, tmp_path):
    target = _copy_set(folder, tmp_path)
    (target / "LCTSC-Train-S1-002" / "lung.nii.gz").unlink()
    with pytest.raises(DatasetError, match=r"LCTSC-Train-S1-002.*no mask"):
        lung_ct.load_cases(target)


def test_shape_mismatch_is_named(folder, tmp_path):
    target = _copy_set(folder, tmp_path)
    path = target / "LCTSC-Train-S1-001" / "lung.nii.gz"
    path.write_bytes(lung_ct.nifti_bytes(np.zeros((10, 10, 10), np.uint8), np.eye(4)))
    with pytest.raises(DatasetError, match=r"LCTSC-Train-S1-001/lung.nii.gz has shape \(10, 10, 10\)"):
        lung_ct.load_cases(target)


def test_non_binary_mask_is_named(folder, tmp_path):
    target = _copy_set(folder, tmp_path)
    path = target / "LCTSC-Train-S1-003" / "lung.nii.gz"
    mask = np.asarray(nib.load(path).dataobj) * 255
    path.write_bytes(lung_ct.nifti_bytes(mask.astype(np.uint8), np.eye(4)))
    with pytest.raises(LabelError, match=r"LCTSC-Train-S1-003/lung.nii.gz holds label values \[255\] besides the "
                                         r"expected \[0, 1\]: a lung mask must hold only 0 and 1.*Binarise"):
        lung_ct.load_cases(target)
    assert len(lung_ct.load_cases(target, check_masks=False)) == 3


def test_unreadable_file_is_named(folder, tmp_path):
    target = _copy_set(folder, tmp_path)
    (target / "LCTSC-Train-S1-001" / "ct.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(DatasetError, match=r"LCTSC-Train-S1-001/ct.nii.gz cannot be read as NIfTI"):
        lung_ct.load_cases(target)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        lung_ct.load_cases(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no case folder"):
        lung_ct.load_cases(tmp_path)


def test_case_names():
    assert lung_ct.case_name(1) == "LCTSC-Train-S1-001"
    assert lung_ct.case_name(12) == "LCTSC-Train-S1-012"
    assert lung_ct.case_name(13) == "LCTSC-Train-S2-001"


# --------------------------------------------------------------------------- checks of lesson 06

def _window(volume, window=(-1000.0, 300.0)):
    lower, upper = window
    return np.clip((np.asarray(volume, np.float32) - lower) / (upper - lower), 0, 1).astype(np.float32)


def _dice(a, b):
    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def _save(probabilities, working_affine, reference, output):
    """In millimetres with scipy alone: every CT voxel's position in the working grid."""
    from scipy import ndimage

    image = nib.load(str(reference))
    to_working = np.linalg.inv(working_affine) @ image.affine
    resampled = ndimage.affine_transform(np.asarray(probabilities, np.float32), to_working[:3, :3],
                                         to_working[:3, 3], output_shape=image.shape, order=1, mode="nearest")
    output.write_bytes(lung_ct.nifti_bytes((resampled > 0.5).astype(np.uint8), image.affine))
    return output


def test_checks_accept_correct_answers(capsys):
    from helpers.checks import lung_ct as lesson_checks

    lesson_checks.check_window_hu(_window, random_cases=5)
    lesson_checks.check_lung_volume(
        lambda mask, affine: float((np.asarray(mask) > 0).sum() * abs(np.linalg.det(affine[:3, :3])) / 1000))
    lesson_checks.check_volumetric_dice(_dice)
    lesson_checks.check_save_prediction(_save)
    assert capsys.readouterr().out.count("correct") == 4


@pytest.mark.parametrize("wrong, message", [
    (lambda v, window=(-1000, 300): (np.asarray(v, np.float32) - window[0]) / (window[1] - window[0]), "clipped"),
    (lambda v, window=(-1000, 300): np.clip((np.asarray(v, float) - window[0]) / (window[1] - window[0]), 0, 1),
     "float32"),
    (lambda v, window=(-1000, 300): _window(v), "use the window argument"),
])
def test_check_window_hu_explains_mistakes(wrong, message):
    from helpers.checks import lung_ct as lesson_checks

    with pytest.raises(AssertionError, match=message):
        lesson_checks.check_window_hu(wrong)


def test_checks_of_volume_dice_and_saving_explain_mistakes(tmp_path):
    from helpers.checks import lung_ct as lesson_checks

    with pytest.raises(AssertionError, match="1000"):
        lesson_checks.check_lung_volume(lambda m, a: float((m > 0).sum() * abs(np.linalg.det(a[:3, :3]))))
    with pytest.raises(AssertionError, match="two empty masks"):
        with np.errstate(invalid="ignore"):
            lesson_checks.check_volumetric_dice(lambda a, b: 2 * (a * b).sum() / (a.sum() + b.sum()))

    def no_resampling(probabilities, working_affine, reference, output):
        output.write_bytes(lung_ct.nifti_bytes((probabilities > 0.5).astype(np.uint8), nib.load(reference).affine))
        return output

    def identity_affine(probabilities, working_affine, reference, output):
        _save(probabilities, working_affine, reference, output)
        image = nib.load(output)
        output.write_bytes(lung_ct.nifti_bytes(np.asarray(image.dataobj), np.eye(4)))
        return output

    with pytest.raises(AssertionError, match="resample the probabilities"):
        lesson_checks.check_save_prediction(no_resampling)
    with pytest.raises(AssertionError, match="affine of the saved mask"):
        lesson_checks.check_save_prediction(identity_affine)


# independent implementations (no helpers): the checks must accept them

def _grid(shape, affine, spacing):
    affine = np.asarray(affine, float)
    old = np.linalg.norm(affine[:3, :3], axis=0)
    new = np.broadcast_to(np.asarray(spacing, float), (3,))
    n = np.maximum(1, np.round(np.asarray(shape) * old / new)).astype(int)
    out = affine.copy()
    out[:3, :3] = affine[:3, :3] * (new / old)
    centre = affine[:3, :3] @ ((np.asarray(shape) - 1) / 2) + affine[:3, 3]
    out[:3, 3] = centre - out[:3, :3] @ ((n - 1) / 2)
    return tuple(int(v) for v in n), out


def _start(voxel, shape, patch_size):
    return tuple(int(min(max(v - p // 2, 0), n - p)) for v, n, p in zip(voxel, shape, patch_size))


def _starts(length, patch, overlap=0.5):
    step = max(1, int(patch * (1 - overlap)))
    starts = list(range(0, length - patch + 1, step))
    return starts if starts[-1] == length - patch else starts + [length - patch]


def _weights(patch_size, sigma_scale=0.125):
    profiles = [np.exp(-(np.arange(n) - (n - 1) / 2) ** 2 / (2 * (sigma_scale * n) ** 2)) for n in patch_size]
    return np.maximum(np.einsum("i,j,k->ijk", *profiles), 1e-3).astype(np.float32)


def test_new_checks_accept_independent_answers(capsys):
    from helpers.checks import lung_ct as lesson_checks

    lesson_checks.check_resampled_grid(_grid, random_cases=10)
    lesson_checks.check_foreground_patch_start(_start, random_cases=50)
    lesson_checks.check_window_starts(_starts, random_cases=50)
    lesson_checks.check_blending_weights(_weights, random_cases=10)
    assert capsys.readouterr().out.count("✓") == 4


def test_patch_dataset_and_sliding_window_use_the_functions_they_are_given():
    from helpers import inference, patches

    image = np.random.default_rng(0).random((20, 18, 12)).astype(np.float32)
    label = np.zeros((20, 18, 12), np.uint8)
    label[15:, 2:5, 3:9] = 1
    corner = patches.PatchDataset([image], [label], (8, 8, 4), foreground_fraction=1.0,
                                  patch_start=lambda voxel, shape, size: (0, 0, 0))
    assert all(corner.location(i).start == (0, 0, 0) for i in range(5))
    default = patches.PatchDataset([image], [label], (8, 8, 4), foreground_fraction=1.0)
    for i in range(5):
        where = default.location(i)
        assert label[where.start[0]:where.start[0] + 8, where.start[1]:where.start[1] + 8,
                     where.start[2]:where.start[2] + 4].any()
    same = inference.sliding_window(lambda x: x, image, (8, 8, 4), starts=_starts,
                                    weights=_weights((8, 8, 4)), progress=False)
    np.testing.assert_allclose(same, image, atol=1e-5)
    with pytest.raises(ValueError, match="weights"):
        inference.sliding_window(lambda x: x, image, (8, 8, 4), weights=np.ones((4, 4, 4)), progress=False)


def test_lesson_06_references_pass_their_checks(tmp_path):
    """lung_volume_ml, volumetric_dice, the 3D U-Net and save_prediction: the references
    that the lesson falls back on pass the lesson's checks (hidden requirements included)."""
    import numpy as np

    from helpers import checks, inference, metrics, models
    from helpers.data import lung_ct

    checks.check_lung_volume(lung_ct.lung_volume_ml, random_cases=5)
    affine = np.diag([2.0, 2.0, 2.5, 1.0])
    assert lung_ct.lung_volume_ml(np.ones((10, 10, 4)), affine) == pytest.approx(4.0)
    checks.check_volumetric_dice(metrics.volumetric_dice, random_cases=5)
    assert metrics.volumetric_dice(np.zeros((3, 3, 3)), np.zeros((3, 3, 3))) == 1.0
    model = models.reference_model((32, 32, 32))
    checks.check_lung_model(model, (32, 32, 32, 1), max_parameters=400_000, min_parameters=300_000, min_depth=2,
                         min_bottleneck=3, dropout_range=(0.01, 0.1))
    checks.check_residual_blocks(model)
    checks.check_save_prediction(inference.save_prediction)
    from helpers import geometry, patches

    checks.check_resampled_grid(geometry.resampled_grid)
    checks.check_foreground_patch_start(patches.foreground_patch_start)
    checks.check_window_starts(inference.window_starts)
    checks.check_blending_weights(lambda p, sigma_scale=0.125: inference.blending_weights(p, "gaussian", sigma_scale))


def test_lesson_06_checks_ask_what_the_hidden_tests_ask(tmp_path):
    """The default window, an empty prediction, the weight floor: in the visible checks."""
    import numpy as np

    from helpers import checks, generator, inference, models

    def no_default(volume, window=(-150, 250)):
        return generator.window_hu(volume, window)

    with pytest.raises(AssertionError, match="default"):
        checks.check_window_hu(no_default)

    def normalised(probabilities, working_affine, reference_path, output_path):   # p / p.max(): nan, then all on
        p = np.asarray(probabilities, np.float32)
        with np.errstate(invalid="ignore"):
            p = np.nan_to_num(p / p.max(), nan=1.0)
        return inference.save_prediction(p, working_affine, reference_path, output_path)

    with pytest.raises(AssertionError, match="all-zero prediction"):
        checks.check_save_prediction(normalised)
    small = models.build_unet((32, 32, 24, 1), depth=3, base_filters=6, dropout=0.05)
    with pytest.raises(AssertionError, match="at least 300,000"):
        checks.check_lung_model(small, (32, 32, 24, 1), max_parameters=400_000, min_parameters=300_000,
                             min_depth=2, min_bottleneck=3, dropout=0.05)


# Exercise 6.3 (volumetric Dice) is an ungraded warm-up: its wrong solutions live here, not in
# tests/checks/test_wrong_solutions.py (graded exercises only).

def _vdice(t, p, *, mistake=None):
    a, b = np.asarray(t) > 0.5, np.asarray(p) > 0.5
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 0.0 if mistake == "empty is 0" else 1.0
    inter = np.logical_and(a, b).sum()
    if mistake == "per slice":
        scores = [(2 * np.logical_and(a[..., k], b[..., k]).sum() + 1) / (a[..., k].sum() + b[..., k].sum() + 1)
                  for k in range(a.shape[-1])]
        return float(np.mean(scores))
    if mistake == "iou":
        return float(inter / np.logical_or(a, b).sum())
    if mistake == "accuracy":
        return float(np.mean(a == b))
    if mistake == "smoothed":
        return float((2.0 * inter + 1.0) / (total + 1.0))
    return float(2.0 * inter / total)


@pytest.mark.parametrize("mistake", ["smoothed", "empty is 0", "per slice", "iou", "accuracy"])
def test_check_volumetric_dice_catches_the_warm_ups_wrong_solutions(mistake):
    from helpers.checks import lung_ct as lesson_checks

    with pytest.raises(AssertionError):
        lesson_checks.check_volumetric_dice(lambda t, p: _vdice(t, p, mistake=mistake))


def test_check_volumetric_dice_accepts_the_warm_ups_answer(capsys):
    from helpers.checks import lung_ct as lesson_checks

    lesson_checks.check_volumetric_dice(_vdice)
    assert "✓ volumetric_dice" in capsys.readouterr().out
