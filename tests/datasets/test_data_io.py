"""helpers.data.io is the one data I/O layer: value checks, the axis convention, and no other
module of helpers.data opens PNG or NIfTI files itself."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from helpers import data
from helpers.data import DatasetError
from helpers.data import io as data_io

DATA_PACKAGE = Path(data.__file__).parent


def test_only_io_opens_png_and_nifti_files():
    opener = re.compile(r"\bnib(abel)?\.load\(|\bImage\.open\(")
    offenders = [path.name for path in DATA_PACKAGE.glob("*.py")
                 if path.name != "io.py" and opener.search(path.read_text())]
    assert offenders == [], f"read files through helpers.data.io, not directly, in {offenders}"


def test_depth_first_is_its_own_inverse_and_keeps_channels_last():
    volume = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # (x, y, z, channels)
    zyx = data.to_depth_first(volume)
    assert zyx.shape == (4, 3, 2, 5) and zyx[3, 2, 1, 4] == volume[1, 2, 3, 4]
    np.testing.assert_array_equal(data.from_depth_first(zyx), volume)
    with pytest.raises(ValueError, match="at least 3 axes"):
        data.to_depth_first(np.zeros((4, 4)))


@pytest.mark.parametrize("values, allowed, message", [
    ([0, 1.6, 4.9], {0, 1, 2, 4}, r"non-integer label values \(1\.6, 4\.9\)"),
    ([0, 3], {0, 1, 2, 4}, r"label values \[3\] besides the expected \[0, 1, 2, 4\]"),
    ([0, np.nan], {0, 1}, "NaN or infinite"),
    ([0, 1, 255], data_io.BINARY_LABELS, r"\[0, 1\] or \[0, 255\]"),
])
def test_check_labels_before_any_cast(values, allowed, message):
    from helpers.data._store import LabelError

    with pytest.raises(LabelError, match=f"seg.nii.gz holds .*{message}"):
        data_io.check_labels("seg.nii.gz", np.array(values, dtype=np.float32), allowed)


def test_check_labels_returns_uint8_and_accepts_0_255():
    labels = data_io.check_labels("m.nii", np.array([0.0, 255.0]), data_io.BINARY_LABELS)
    assert labels.dtype == np.uint8 and labels.tolist() == [0, 255]


def test_hounsfield_rule_refuses_out_of_range_and_rounds():
    with pytest.raises(DatasetError, match="outside the int16 range"):
        data_io.to_hounsfield("ct.nii", np.array([-1000.0, 40000.0]))
    with pytest.raises(DatasetError, match="NaN"):
        data_io.to_hounsfield("ct.nii", np.array([-1000.0, np.inf]))
    assert data_io.to_hounsfield("ct.nii", np.array([-999.6, 40.5, 41.5])).tolist() == [-1000, 40, 42]


@pytest.mark.parametrize("values, ok", [([0, 1], True), ([0, 255], True), ([255], True), ([7], False),
                                         ([0, 1, 255], False), ([0, 0.4], False)])
def test_one_binary_mask_rule(values, ok):
    array = np.array(values, dtype=np.float32)
    if ok:
        assert set(data_io.binary_mask("m.png", array).tolist()) <= {0, 1}
    else:
        with pytest.raises(DatasetError, match="m.png is not a binary mask"):
            data_io.binary_mask("m.png", array)


def test_as_3d_drops_trailing_singletons_only():
    assert data_io.as_3d("v.nii", np.zeros((4, 4, 2, 1, 1))).shape == (4, 4, 2)
    with pytest.raises(DatasetError, match=r"v\.nii has shape \(4, 4, 2, 3\) \(4D\)"):
        data_io.as_3d("v.nii", np.zeros((4, 4, 2, 3)))


def test_read_image_refuses_nan_in_float_images_and_bombs(tmp_path, monkeypatch):
    from PIL import Image

    array = np.ones((8, 8), np.float32)
    array[0, 0] = np.nan
    Image.fromarray(array).save(tmp_path / "f.tif")
    with pytest.raises(DatasetError, match=r"f\.tif holds NaN"):
        data.read_image(tmp_path / "f.tif")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setattr(data_io, "MAX_IMAGE_PIXELS", 10)
    with pytest.raises(DatasetError, match=r"a\.png declares 8x8 pixels, more than the limit"):
        data.read_mask(tmp_path / "a.png")


def test_nifti_errors_name_the_file(tmp_path):
    (tmp_path / "x.nii.gz").write_bytes(b"\x1f\x8b not really")
    with pytest.raises(DatasetError, match=r"x\.nii\.gz cannot be read as NIfTI .*regenerate"):
        data_io.read_nifti(tmp_path / "x.nii.gz", fix="regenerate it")
    with pytest.raises(DatasetError, match="does not exist"):
        data_io.nifti_shape(tmp_path / "missing.nii")
