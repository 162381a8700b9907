"""helpers.data: the synthetic chest X-ray generator (determinism, shapes, lung fraction),
the data set store as used by ensure_dataset (reuse, regeneration, no clobbering,
interrupted runs), and the readers (load_pairs on every kind of bad input, PNG, NIfTI)."""

from __future__ import annotations

import hashlib
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from helpers import data
from helpers.data import DatasetError, cxr
from helpers.data.io import encode_png

# sha256 of the decoded pixels (image bytes then mask bytes) of generate_cxr(seed, size),
# recorded for one GENERATOR_VERSION. A change of the pixels means the default data
# changed: bump cxr.GENERATOR_VERSION (so that sets on disk are regenerated) and record
# the new version and hashes here.
RECORDED_VERSION = "4"
EXPECTED_SHA256 = {
    (0, 64): "adbf99b25cb5223e4a84b67a05c20a6fc5f30d48e2b15bca01914158e2d0f0f4",
    (7, 64): "c478ac09818817bb12670e92fe4188b88b995117cbf89ce7fe18410422648528",
    (42, 256): "9fa4cc8d9c4c230f77670a9426861e6c3b3d518ac3db6f24a2d2554442bd39d6",
}
# sha256 of the files a generated set holds (PNG bytes, in plan order), for the same version.
EXPECTED_SET_SHA256 = "8431bb031651ed6040cecb24abfa14d0ee6b3ebcc29532d6dc47d1689fe7f78b"


def _pixels_sha256(seed: int, size: int) -> str:
    image, mask = cxr.generate_cxr(seed, size)
    return hashlib.sha256(image.tobytes() + mask.tobytes()).hexdigest()


# --------------------------------------------------------------------------------------
# generator
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("seed", "size"), sorted(EXPECTED_SHA256))
def test_generated_pixels_match_recorded_hashes(seed, size):
    got = _pixels_sha256(seed, size)
    assert got == EXPECTED_SHA256[(seed, size)], (
        f"generate_cxr({seed}, {size}) changed (sha256 {got}): if intended, bump GENERATOR_VERSION "
        f"and update RECORDED_VERSION and EXPECTED_SHA256"
    )
    assert cxr.GENERATOR_VERSION == RECORDED_VERSION, (
        f"GENERATOR_VERSION is {cxr.GENERATOR_VERSION!r} but these hashes were recorded for "
        f"{RECORDED_VERSION!r}: record the hashes of the new version (RECORDED_VERSION, EXPECTED_SHA256)"
    )


def test_generated_set_files_are_unchanged_unless_version_bumped():
    """The bytes written by ``generate`` (images and masks of the first files of the default
    plan, at a small size) are those recorded for this GENERATOR_VERSION."""
    digest = hashlib.sha256()
    for name, seed, view in cxr.plan(4, seed=42):
        files = cxr._make((name, seed, view, 48))
        for key in sorted(files):
            digest.update(key.encode() + files[key])
    got = digest.hexdigest()
    assert (cxr.GENERATOR_VERSION, got) == (RECORDED_VERSION, EXPECTED_SET_SHA256), (
        f"version {cxr.GENERATOR_VERSION!r} writes files with sha256 {got}, recorded: version "
        f"{RECORDED_VERSION!r}, {EXPECTED_SET_SHA256}. If the generator changed on purpose, bump "
        f"GENERATOR_VERSION and record the new version and hash."
    )


def test_same_seed_gives_same_image_and_other_seed_another():
    first, first_mask = cxr.generate_cxr(5, 64)
    again, again_mask = cxr.generate_cxr(5, 64)
    other, _ = cxr.generate_cxr(6, 64)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first_mask, again_mask)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("size", [32, 64, 100, 256])
def test_shapes_dtypes_and_binary_mask(size):
    image, mask = cxr.generate_cxr(1, size)
    assert image.shape == mask.shape == (size, size)
    assert image.dtype == mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) == {0, 1}
    assert image.std() > 20, "the radiograph should use a good part of the grey range"


def test_lung_fraction_and_lungs_darker_than_surroundings():
    for seed in range(30):
        image, mask = cxr.generate_cxr(seed, 64)
        fraction = mask.mean()
        assert 0.10 <= fraction <= 0.45, f"seed {seed}: lung fraction {fraction:.3f}"
        centre = np.zeros_like(mask, dtype=bool)
        centre[8:-8, 8:-8] = True
        assert image[mask == 1].mean() < image[centre & (mask == 0)].mean(), f"seed {seed}: lungs not darker"


def test_geometry_does_not_depend_on_size():
    _, small = cxr.generate_cxr(3, 64)
    _, large = cxr.generate_cxr(3, 256)
    downsampled = large.reshape(64, 4, 64, 4).mean(axis=(1, 3)) >= 0.5
    agreement = (downsampled == small.astype(bool)).mean()
    assert agreement > 0.97, f"masks at 64 and 256 pixels agree on only {agreement:.1%} of pixels"


def test_second_view_is_the_same_patient_in_another_radiograph():
    image0, mask0 = cxr.generate_cxr(11, 64, view=0)
    image1, mask1 = cxr.generate_cxr(11, 64, view=1)
    assert not np.array_equal(image0, image1)
    ratio = mask1.sum() / mask0.sum()
    assert 0.6 < ratio < 1.6, f"lung area changed by a factor {ratio:.2f} between two views of one patient"


def test_hard_setting_is_deterministic_other_poses_and_denser_opacities():
    """The challenge's setting: the same seed gives the same hard radiograph; its poses reach
    beyond the standard range and its opacities are denser, so the lungs are less dark than
    the standard radiograph of the same patient on average; the standard pixels are unchanged."""
    hard, hard_mask = cxr.generate_cxr(5, 64, setting="hard")
    again, again_mask = cxr.generate_cxr(5, 64, setting="hard")
    assert np.array_equal(hard, again) and np.array_equal(hard_mask, again_mask)
    standard, _ = cxr.generate_cxr(5, 64)
    assert not np.array_equal(hard, standard)
    rotations, strengths, standard_strengths = [], [], []
    for seed in range(40):
        appearance = cxr._appearance(np.random.default_rng(seed))
        harder = cxr.harden(appearance, np.random.default_rng([seed, 0, 7919]))
        rotations.append(abs(harder["rotation"]))
        strengths += [o["strength"] for o in harder["opacities"]]
        standard_strengths += [o["strength"] for o in appearance["opacities"]]
        assert len(harder["opacities"]) > len(appearance["opacities"])
    assert max(rotations) > 10 and np.mean(strengths) > np.mean(standard_strengths) + 0.05
    brighter = []
    for seed in range(6):
        image_s, mask_s = cxr.generate_cxr(seed, 64)
        image_h, mask_h = cxr.generate_cxr(seed, 64, setting="hard")
        brighter.append(image_h[mask_h > 0].mean() - image_s[mask_s > 0].mean())
    assert np.mean(brighter) > 0, f"hard lungs should be brighter (denser) on average: {brighter}"
    with pytest.raises(ValueError, match="setting"):
        cxr.generate_cxr(5, 64, setting="harder")


def test_size_out_of_range_is_refused():
    with pytest.raises(ValueError, match="size"):
        cxr.generate_cxr(0, 1024)


def test_plan_names_count_and_second_views():
    entries = cxr.plan(200, seed=42)
    names = [name for name, _, _ in entries]
    assert len(names) == len(set(names)) == 200
    assert all(re.fullmatch(r"SYN_\d{4}_[01]\.png", name) for name in names)
    patients = {data.patient_id(name) for name in names}
    second = sum(name.endswith("_1.png") for name in names)
    assert 0.15 < second / len(patients) < 0.35, f"{second} of {len(patients)} patients have two images"
    for name, seed, view in entries:
        if view == 1:
            assert (name.replace("_1.png", "_0.png"), seed, 0) in entries
    assert cxr.plan(200, seed=42) == entries and cxr.plan(200, seed=43) != entries


# --------------------------------------------------------------------------------------
# ensure_dataset and the store
# --------------------------------------------------------------------------------------

def _mtimes(folder):
    return {path.name: path.stat().st_mtime_ns for path in folder.rglob("*.png")}


def test_ensure_dataset_writes_layout_and_reuses(tmp_path):
    folder = tmp_path / "cxr"
    out = data.ensure_dataset("cxr_synthetic", folder=folder, n_images=6, size=32, seed=3)
    assert out == folder
    assert sorted(p.name for p in (folder / "images").iterdir()) == sorted(p.name for p in (folder / "masks").iterdir())
    assert len(list((folder / "images").iterdir())) == 6
    mask = np.asarray(Image.open(next((folder / "masks").iterdir())))
    assert mask.dtype == np.uint8 and set(np.unique(mask).tolist()) <= {0, 255}
    metadata = json.loads((folder / "dataset.json").read_text())
    assert metadata["complete"] is True and metadata["params"] == {"n_images": 6, "size": 32, "seed": 3}
    before = _mtimes(folder)
    data.ensure_dataset("cxr_synthetic", folder=folder, n_images=6, size=32, seed=3)
    assert _mtimes(folder) == before, "a second call with the same parameters must not rewrite files"
    pairs = data.load_pairs(folder)
    assert len(pairs) == 6 and all(i.name == m.name for i, m in pairs)
    image, mask = cxr.generate_cxr(cxr.plan(6, 3)[0][1], 32)
    np.testing.assert_array_equal(data.read_image(pairs[0][0]), image)
    np.testing.assert_array_equal(data.read_mask(pairs[0][1]), mask)


def test_changed_parameters_regenerate(tmp_path):
    folder = tmp_path / "cxr"
    data.ensure_dataset("cxr_synthetic", folder=folder, n_images=4, size=32, seed=3)
    data.ensure_dataset("cxr_synthetic", folder=folder, n_images=3, size=48, seed=3)
    pairs = data.load_pairs(folder)
    assert len(pairs) == 3
    assert data.read_image(pairs[0][0]).shape == (48, 48)


def test_foreign_files_are_never_clobbered_unless_forced(tmp_path):
    folder = tmp_path / "cxr"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "my_scan.png").write_bytes(encode_png(np.zeros((8, 8), np.uint8)))
    with pytest.raises(DatasetError, match="my_scan.png"):
        data.ensure_dataset("cxr_synthetic", folder=folder, n_images=3, size=32)
    assert (folder / "images" / "my_scan.png").exists()
    data.ensure_dataset("cxr_synthetic", folder=folder, n_images=3, size=32, force=True)
    assert not (folder / "images" / "my_scan.png").exists()
    assert len(data.load_pairs(folder)) == 3


def test_interrupted_run_is_not_complete_and_is_regenerated(tmp_path, monkeypatch):
    folder = tmp_path / "cxr"
    real_make = cxr._make
    calls = []

    def failing_make(task):
        calls.append(task)
        if len(calls) == 3:
            raise RuntimeError("simulated interruption")
        return real_make(task)

    monkeypatch.setattr(cxr, "_make", failing_make)
    with pytest.raises(RuntimeError, match="simulated"):
        data.ensure_dataset("cxr_synthetic", folder=folder, n_images=5, size=32)
    assert json.loads((folder / "dataset.json").read_text())["complete"] is False
    monkeypatch.setattr(cxr, "_make", real_make)
    data.ensure_dataset("cxr_synthetic", folder=folder, n_images=5, size=32)
    assert json.loads((folder / "dataset.json").read_text())["complete"] is True
    assert len(data.load_pairs(folder)) == 5


# --------------------------------------------------------------------------------------
# load_pairs on bad input
# --------------------------------------------------------------------------------------

def _write_set(folder, names=("A_0001_0.png", "A_0002_0.png", "A_0002_1.png"), size=16):
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / "images" / name).write_bytes(encode_png(np.full((size, size), 100, np.uint8)))
        mask = np.zeros((size, size), np.uint8)
        mask[4:10, 4:10] = 255
        (folder / "masks" / name).write_bytes(encode_png(mask))
    return folder


def test_load_pairs_valid_set_is_sorted(tmp_path):
    pairs = data.load_pairs(_write_set(tmp_path / "set"))
    assert [image.name for image, _ in pairs] == ["A_0001_0.png", "A_0002_0.png", "A_0002_1.png"]
    assert all(mask.parent.name == "masks" for _, mask in pairs)


def _damage_missing_mask(folder):
    (folder / "masks" / "A_0002_0.png").unlink()


def _damage_missing_image(folder):
    (folder / "images" / "A_0002_1.png").unlink()


def _damage_size(folder):
    (folder / "masks" / "A_0002_0.png").write_bytes(encode_png(np.zeros((12, 16), np.uint8)))


def _damage_non_binary(folder):
    (folder / "masks" / "A_0002_0.png").write_bytes(encode_png(np.arange(256, dtype=np.uint8).reshape(16, 16)))


def _damage_corrupt_image(folder):
    (folder / "images" / "A_0002_0.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG")


def _damage_corrupt_mask(folder):
    (folder / "masks" / "A_0002_0.png").write_bytes(b"")


@pytest.mark.parametrize(("damage", "named", "fix"), [
    (_damage_missing_mask, "A_0002_0.png", "add masks/A_0002_0.png"),
    (_damage_missing_image, "A_0002_1.png", "add images/A_0002_1.png"),
    (_damage_size, "A_0002_0.png", "same size"),
    (_damage_non_binary, "A_0002_0.png", "0 and 255"),
    (_damage_corrupt_image, "A_0002_0.png", "cannot be read"),
    (_damage_corrupt_mask, "A_0002_0.png", "cannot be read"),
])
def test_load_pairs_names_the_bad_file_and_the_fix(tmp_path, damage, named, fix):
    folder = _write_set(tmp_path / "set")
    damage(folder)
    with pytest.raises(DatasetError) as error:
        data.load_pairs(folder)
    assert named in str(error.value) and fix in str(error.value), str(error.value)


def test_load_pairs_empty_and_missing_folders(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        data.load_pairs(tmp_path / "nowhere")
    (tmp_path / "only_images" / "images").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no masks/ folder"):
        data.load_pairs(tmp_path / "only_images")
    for sub in ("images", "masks"):
        (tmp_path / "empty" / sub).mkdir(parents=True)
    with pytest.raises(DatasetError, match="empty"):
        data.load_pairs(tmp_path / "empty")


# --------------------------------------------------------------------------------------
# readers and writers
# --------------------------------------------------------------------------------------

def test_read_image_converts_colour_and_16_bit(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    grey = data.read_image(tmp_path / "rgb.png")
    assert grey.shape == (4, 5) and grey.dtype == np.uint8 and 100 < grey.mean() < 130  # 0.587 * 200
    deep = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 200)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    scaled = data.read_image(tmp_path / "deep.png")
    assert scaled.dtype == np.uint8 and scaled.max() == 255 and scaled.min() == 0


def test_read_mask_accepts_0_1_and_0_255(tmp_path):
    ones = np.array([[0, 1], [1, 0]], np.uint8)
    (tmp_path / "a.png").write_bytes(encode_png(ones))
    (tmp_path / "b.png").write_bytes(encode_png(ones * 255))
    np.testing.assert_array_equal(data.read_mask(tmp_path / "a.png"), ones)
    np.testing.assert_array_equal(data.read_mask(tmp_path / "b.png"), ones)
    (tmp_path / "c.png").write_bytes(encode_png(ones * 128))
    with pytest.raises(DatasetError, match=r"c\.png.*0, 128"):
        data.read_mask(tmp_path / "c.png")


@pytest.mark.parametrize("name", ["vol.nii.gz", "vol.nii"])
def test_nifti_round_trip_and_no_overwrite(tmp_path, name):
    volume = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[:3, 3] = [-100.0, -120.0, 30.0]
    path = data.save_nifti(volume, affine, tmp_path / name)
    loaded, loaded_affine = data.load_nifti(path)
    assert loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, volume)
    np.testing.assert_allclose(loaded_affine, affine)
    with pytest.raises(FileExistsError, match="force=True"):
        data.save_nifti(volume, affine, path)
    data.save_nifti(np.zeros((2, 2, 2), bool), affine, path, force=True)
    assert data.load_nifti(path)[0].shape == (2, 2, 2)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_load_nifti_corrupt_file_names_it(tmp_path):
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(DatasetError, match="bad.nii.gz"):
        data.load_nifti(tmp_path / "bad.nii.gz")


@pytest.mark.parametrize(("path", "patient"), [
    ("data/cxr/images/SYN_0007_1.png", "SYN_0007"),
    ("SYN_0007_0.png", "SYN_0007"),
    ("MCUCXR_0001_0.png", "MCUCXR_0001"),
    ("CHNCXR_0042_1.png", "CHNCXR_0042"),
    ("BraTS20_Training_001", "BraTS20_Training_001"),
    ("ircad_e05_orig.nii.gz", "ircad_e05_orig"),
    ("data/lung/LCTSC-Train-S1-001/ct.nii.gz", "LCTSC-Train-S1-001"),
    ("LCTSC-Test-S2-104/lung.nii.gz", "LCTSC-Test-S2-104"),
])
def test_patient_id(path, patient):
    assert data.patient_id(path) == patient
