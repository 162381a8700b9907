"""`prepare` under bad input and faults (issue 13): values are validated, not just shapes; the
source is never touched; every failure is a sentence naming the file; no litter survives a
failure, SIGTERM or kill -9; files follow the umask. Fixtures are tiny and built here."""

from __future__ import annotations

import errno
import os
import signal
import stat
import struct
import subprocess
import sys
import tarfile
import textwrap
import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from support.raw_datasets import _nifti, _png, _radiograph, _zip, make_brats, make_ircad, make_lctsc, make_shenzhen

from helpers.data import DatasetError, registry
from helpers.data import io as data_io

REPO = Path(__file__).resolve().parents[2]


def _fails_then_skips(name, raw, tmp_path, message, case, written, **kwargs):
    """The bad case stops prepare with ``message`` and leaves nothing; --skip-bad lists it."""
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=message):
        registry.prepare(name, raw, out, **kwargs)
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))
    report = registry.prepare(name, raw, out, skip_bad=True, **kwargs)
    assert report.written == written and [n for n, _ in report.skipped] == [case]
    assert case in str(report)
    return report


# ------------------------------------------------------------------ 1. values, not just shapes

def _lctsc_ct(raw, array, case="LCTSC-Train-S1-001"):
    _nifti(raw / case / "ct.nii.gz", array)


def test_ct_nan_voxels_are_refused_not_written_as_zero(tmp_path):
    raw = make_lctsc(tmp_path / "raw")
    ct = np.full((16, 16, 8), -500, np.float32)
    ct[0, 0, 0] = np.nan
    _lctsc_ct(raw, ct)
    _fails_then_skips("lctsc", raw, tmp_path, r"LCTSC-Train-S1-001/ct\.nii\.gz holds 1 NaN or infinite voxels",
                      "LCTSC-Train-S1-001", 1)


def test_ct_beyond_int16_is_refused_not_wrapped(tmp_path):
    raw = make_lctsc(tmp_path / "raw")
    ct = np.full((16, 16, 8), -500, np.float32)
    ct[1, 1, 1] = 40000
    _lctsc_ct(raw, ct)
    _fails_then_skips("lctsc", raw, tmp_path, r"ct\.nii\.gz holds values from -500 to 40000, outside the int16",
                      "LCTSC-Train-S1-001", 1)


def test_fractional_ct_is_rounded_not_truncated(tmp_path):
    raw = make_lctsc(tmp_path / "raw", n=1)
    ct = np.full((16, 16, 8), -999.6, np.float32)
    ct[2, 2, 2] = 40.7
    _lctsc_ct(raw, ct)
    registry.prepare("lctsc", raw, tmp_path / "out")
    written = np.asarray(nib.load(tmp_path / "out" / "LCTSC-Train-S1-001" / "ct.nii.gz").dataobj)
    assert written.dtype == np.int16 and written[0, 0, 0] == -1000 and written[2, 2, 2] == 41


@pytest.mark.parametrize("value", [0.4, 1.6])
def test_fractional_lung_mask_is_refused_before_any_cast(tmp_path, value):
    raw = make_lctsc(tmp_path / "raw")
    mask = np.zeros((16, 16, 8), np.float32)
    mask[2:7, 3:12, 2:6] = value
    case = raw / "LCTSC-Train-S1-001"
    (case / "Lung_L.nii.gz").unlink()
    (case / "Lung_R.nii.gz").unlink()
    _nifti(case / "lung.nii.gz", mask)
    _fails_then_skips("lctsc", raw, tmp_path, rf"lung\.nii\.gz holds non-integer label values \({value:g}\)",
                      "LCTSC-Train-S1-001", 1)


def test_brats_fractional_labels_are_refused_not_truncated(tmp_path):
    raw = make_brats(tmp_path / "raw", n=2, quirk=False)
    seg = np.zeros((16, 16, 8), np.float32)
    seg[4:8, 4:8, 2:4], seg[8:10, 8:10, 2:4] = 1.6, 4.9
    _nifti(raw / "BraTS20_Training_001" / "BraTS20_Training_001_seg.nii", seg, spacing=(1, 1, 1), compress=False)
    _fails_then_skips("brats2020", raw, tmp_path, r"_seg\.nii holds non-integer label values \(1\.6, 4\.9\)",
                      "BraTS20_Training_001", 1)


def test_brats_nan_modality_is_refused(tmp_path):
    raw = make_brats(tmp_path / "raw", n=2, quirk=False)
    flair = np.ones((16, 16, 8), np.float32)
    flair[3, 3, 3] = np.nan
    _nifti(raw / "BraTS20_Training_002" / "BraTS20_Training_002_flair.nii", flair, spacing=(1, 1, 1), compress=False)
    _fails_then_skips("brats2020", raw, tmp_path, r"BraTS20_Training_002_flair\.nii holds 1 NaN",
                      "BraTS20_Training_002", 1)


def test_constant_mask_of_7_is_not_a_mask(tmp_path):
    raw = make_shenzhen(tmp_path / "raw", n=2, unmasked=0)
    _png(raw / "masks" / "CHNCXR_0001_0_mask.png", np.full((60, 50), 7, np.uint8))
    _fails_then_skips("shenzhen", raw, tmp_path, r"CHNCXR_0001_0_mask\.png is not a binary mask: it holds the values 7,",
                      "CHNCXR_0001_0", 1, size=32)


def test_masks_must_hold_both_values_in_at_least_one_case(tmp_path):
    raw = make_shenzhen(tmp_path / "raw", n=2, unmasked=0)
    for name in ("CHNCXR_0001_0", "CHNCXR_0002_0"):
        _png(raw / "masks" / f"{name}_mask.png", np.full((60, 50), 255, np.uint8))
    with pytest.raises(DatasetError, match="every mask in .* is constant"):
        registry.prepare("shenzhen", raw, tmp_path / "out", size=32)
    assert not (tmp_path / "out").exists()
    _png(raw / "masks" / "CHNCXR_0002_0_mask.png", _radiograph()[1].astype(np.uint8) * 255)
    assert registry.prepare("shenzhen", raw, tmp_path / "out", size=32).written == 2  # one full mask is fine


@pytest.mark.parametrize("dataset, damage, message, case", [
    ("brats2020", "flair", r"BraTS20_Training_001_flair\.nii\.gz: a BraTS case needs all four", "BraTS20_Training_001"),
    ("lctsc", "ct", r"LCTSC-Train-S1-002 has a lung mask but no ct\.nii\.gz", "LCTSC-Train-S1-002"),
    ("ircad", "orig", r"ircad_e02_liver\.nii\.gz has no ircad_e02_orig\.nii\.gz", "ircad_e02"),
    ("shenzhen", "image", r"CHNCXR_0002_0_mask\.png has no image", "CHNCXR_0002_0"),
    ("montgomery", "image", r"MCUCXR_0002_1\.png.* has no image", "MCUCXR_0002_1"),
])
def test_a_missing_modality_or_image_is_a_bad_case_not_a_silent_drop(tmp_path, dataset, damage, message, case):
    from support.raw_datasets import make_montgomery

    root = tmp_path / "raw"
    if dataset == "brats2020":
        make_brats(root, n=2, quirk=False)
        (root / "BraTS20_Training_001" / "BraTS20_Training_001_flair.nii").unlink()
    elif dataset == "lctsc":
        make_lctsc(root)
        (root / "LCTSC-Train-S1-002" / "ct.nii.gz").unlink()
    elif dataset == "ircad":
        make_ircad(root)
        (root / "ircad_e02_orig.nii.gz").unlink()
    elif dataset == "shenzhen":
        make_shenzhen(root, n=2, unmasked=0)
        (root / "CXR_png" / "CHNCXR_0002_0.png").unlink()
    else:
        root = make_montgomery(root, n=2)
        (root / "CXR_png" / "MCUCXR_0002_1.png").unlink()
    _fails_then_skips(dataset, root, tmp_path, message, case, 1, size=32)


# -------------------------------------------------------------------- 2. never destroy the source

def test_destination_equal_inside_or_containing_the_source_is_refused_even_with_force(tmp_path):
    raw = make_shenzhen(tmp_path / "raw", n=2, unmasked=0)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for dest, relation in ((raw, "is the source"), (raw / "masks" / "out", "is inside the source"),
                           (tmp_path, "contains the source")):
        with pytest.raises(DatasetError, match=f"{relation}.*--force does not override"):
            registry.prepare("shenzhen", raw, dest, size=32, force=True)
    archive = _zip(raw, tmp_path / "shenzhen.zip")
    with pytest.raises(DatasetError, match="contains the source"):
        registry.prepare("shenzhen", archive, tmp_path, size=32, force=True)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p != archive) == before


def test_destination_that_is_a_file_is_refused(tmp_path):
    raw = make_shenzhen(tmp_path / "raw", n=2, unmasked=0)
    (tmp_path / "file").write_text("mine")
    for dest in (tmp_path / "file", tmp_path / "file" / "sub"):
        with pytest.raises(DatasetError, match=r"file is a file, not a folder"):
            registry.prepare("shenzhen", raw, dest, size=32, force=True)
    assert (tmp_path / "file").read_text() == "mine"


# --------------------------------------------------------- 3. every failure names the file

def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares width x height pixels but holds no pixel data (a bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))


def test_decompression_bomb_is_named_and_skippable(tmp_path, monkeypatch, capsys):
    raw = make_shenzhen(tmp_path / "raw", n=2, unmasked=0)
    _png_header_only(raw / "CXR_png" / "CHNCXR_0001_0.png", 40000, 40000)
    _fails_then_skips("shenzhen", raw, tmp_path, r"CHNCXR_0001_0\.png .*decompression bomb", "CHNCXR_0001_0", 1,
                      size=32)
    (raw / "CXR_png" / "CHNCXR_0001_0.png").unlink()
    (raw / "masks" / "CHNCXR_0001_0_mask.png").unlink()
    monkeypatch.setattr(data_io, "MAX_IMAGE_PIXELS", 2000)  # the course's own, documented limit
    with pytest.raises(DatasetError, match=r"CHNCXR_0002_0\.png declares 50x60 pixels, more than the limit"):
        registry.prepare("shenzhen", raw, tmp_path / "out2", size=32)


def test_4d_mask_is_refused_and_trailing_singleton_axes_are_dropped(tmp_path):
    raw = make_ircad(tmp_path / "raw")
    liver = np.zeros((16, 16, 8, 1), np.uint8)
    liver[3:10, 4:12, 1:7] = 1
    _nifti(raw / "ircad_e01_liver.nii.gz", liver)
    assert registry.prepare("ircad", raw, tmp_path / "ok").written == 2
    _nifti(raw / "ircad_e01_liver.nii.gz", np.repeat(liver, 2, axis=-1))
    _fails_then_skips("ircad", raw, tmp_path, r"ircad_e01_liver\.nii\.gz has shape \(16, 16, 8, 2\) \(4D\)",
                      "ircad_e01", 1)


def test_over_long_paths_are_a_sentence(tmp_path):
    raw = make_shenzhen(tmp_path / "raw", n=2, unmasked=0)
    with pytest.raises(DatasetError, match="longer than this system allows"):
        registry.prepare("shenzhen", raw, tmp_path / ("x" * 300), size=32)
    archive = tmp_path / "long.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("CXR_png/" + "y" * 300 + ".png", b"data")
    with pytest.raises(DatasetError, match=r"Extracting .*long\.zip failed: .*longer than this system allows.*"
                                           r"not of the data") as error:
        registry.prepare("shenzhen", archive, tmp_path / "out", size=32)
    assert "damaged" not in str(error.value)
    assert not list(tmp_path.glob(".out.partial-*"))


def test_disk_quota_is_not_called_a_damaged_archive(tmp_path, monkeypatch):
    archive = _zip(make_shenzhen(tmp_path / "raw", n=2, unmasked=0), tmp_path / "s.zip")

    def full(self, path=None, members=None, pwd=None):
        raise OSError(errno.EDQUOT, "Disk quota exceeded", str(Path(path) / "CXR_png" / "x.png"))

    monkeypatch.setattr(zipfile.ZipFile, "extractall", full)
    with pytest.raises(DatasetError, match="disk quota is exceeded.*free some space") as error:
        registry.prepare("shenzhen", archive, tmp_path / "out", size=32)
    assert "damaged" not in str(error.value)


def test_unsafe_tar_member_is_refused_by_name(tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as out:
        info = tarfile.TarInfo("../../escape.png")
        info.size = 4
        out.addfile(info, __import__("io").BytesIO(b"evil"))
    with pytest.raises(DatasetError, match=r"evil\.tar holds an unsafe member .*escape\.png") as error:
        registry.prepare("shenzhen", archive, tmp_path / "a" / "out", size=32)
    assert "damaged" not in str(error.value)
    assert not (tmp_path / "escape.png").exists()


def test_os_metadata_files_are_ignored(tmp_path):
    raw = make_shenzhen(tmp_path / "raw", n=2, unmasked=0)
    (raw / "CXR_png" / "._CHNCXR_0001_0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (raw / "CXR_png" / ".DS_Store").write_bytes(b"\x00")
    (raw / "masks" / "Thumbs.db").write_bytes(b"\x00")
    archive = _zip(raw, tmp_path / "s.zip")
    with zipfile.ZipFile(archive, "a") as out:
        out.writestr("__MACOSX/raw/CXR_png/._CHNCXR_0002_0.png", b"\x00\x05\x16\x07")
    for source in (raw, archive):
        report = registry.prepare("shenzhen", source, tmp_path / "out", size=32, force=True)
        assert report.written == 2 and not report.skipped


def test_cli_skip_bad_skips_what_used_to_be_tracebacks(tmp_path, capsys):
    from helpers.data.__main__ import main

    raw = make_shenzhen(tmp_path / "raw", n=2, unmasked=0)
    _png_header_only(raw / "CXR_png" / "CHNCXR_0002_0.png", 40000, 40000)
    args = ["prepare", "shenzhen", str(raw), "--dest", str(tmp_path / "out"), "--size", "32"]
    assert main(args) == 2
    assert "CHNCXR_0002_0.png" in capsys.readouterr().err
    assert main([*args, "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "1 cases written" in out and "skipped 1" in out and "CHNCXR_0002_0" in out


# --------------------------------------------------------------------------------- 4. no litter

def test_archives_are_extracted_beside_the_destination_not_in_the_system_temp(tmp_path, monkeypatch):
    import tempfile

    system_temp = tmp_path / "systemp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    archive = _zip(make_shenzhen(tmp_path / "raw", n=2, unmasked=0), tmp_path / "s.zip")
    registry.prepare("shenzhen", archive, tmp_path / "out", size=32)
    with pytest.raises(DatasetError):
        registry.prepare("shenzhen", tmp_path / "s.zip", tmp_path / "out", size=4096, force=True)
    assert list(system_temp.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw", "s.zip", "systemp"]


_SLOW_PREPARE = """
    import sys, time
    from helpers.data import registry
    from helpers.data.__main__ import main

    from helpers.data import converters
    real, calls = converters.preprocess_cxr, []
    def slow(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            print("ready", flush=True)
            time.sleep(120)
        return real(*args, **kwargs)
    converters.preprocess_cxr = slow
    sys.exit(main(["prepare", "shenzhen", sys.argv[1], "--dest", sys.argv[2], "--size", "32", "--force"]))
"""


def _start_prepare(tmp_path: Path, source: Path, dest: Path) -> subprocess.Popen:
    script = tmp_path / "slow_prepare.py"
    script.write_text(textwrap.dedent(_SLOW_PREPARE))
    env = dict(os.environ, PYTHONPATH=str(REPO), UNET_COURSE_BOOTSTRAPPED="1")
    child = subprocess.Popen([sys.executable, str(script), str(source), str(dest)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def test_sigterm_during_prepare_leaves_nothing(tmp_path):
    archive = _zip(make_shenzhen(tmp_path / "raw", n=3, unmasked=0), tmp_path / "s.zip")
    child = _start_prepare(tmp_path, archive, tmp_path / "data" / "shenzhen")
    try:
        assert len(list((tmp_path / "data").glob(".shenzhen.partial-*"))) == 1
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        child.kill()
        child.wait()
    assert list((tmp_path / "data").iterdir()) == []


def test_leftovers_of_a_killed_prepare_are_removed_by_the_next_run_and_by_list(tmp_path, monkeypatch, capsys):
    from helpers import config
    from helpers.data.__main__ import main

    monkeypatch.setenv(config.DATA_VARIABLE, str(tmp_path / "data"))
    archive = _zip(make_shenzhen(tmp_path / "raw", n=3, unmasked=0), tmp_path / "s.zip")
    for remover in ("prepare", "list"):
        child = _start_prepare(tmp_path, archive, tmp_path / "data" / "shenzhen")
        child.kill()
        child.wait()
        left = list((tmp_path / "data").glob(".shenzhen.partial-*"))
        assert len(left) == 1 and (left[0] / "extract").is_dir(), "kill -9 leaves the scratch folder"
        if remover == "prepare":
            report = registry.prepare("shenzhen", archive, force=True, size=32)
            assert report.written == 3
        else:
            assert main(["list"]) == 0
            assert f"removed {left[0]}" in capsys.readouterr().out
        assert not left[0].exists()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["shenzhen"]


# ---------------------------------------------------------------------------- 7. permissions

def test_prepared_files_follow_the_umask(tmp_path):
    raw = make_shenzhen(tmp_path / "raw", n=2, unmasked=0)
    old = os.umask(0o002)
    try:
        registry.prepare("shenzhen", raw, tmp_path / "out", size=32)
    finally:
        os.umask(old)
    out = tmp_path / "out"
    assert stat.S_IMODE(out.stat().st_mode) == 0o775
    for path in (out / "prepared.json", out / "images" / "CHNCXR_0001_0.png", out / "masks" / "CHNCXR_0001_0.png"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o664, path


def test_tar_gz_source_with_os_metadata_prepares(tmp_path):
    raw = make_shenzhen(tmp_path / "raw", n=2, unmasked=0)
    (raw / "masks" / "._CHNCXR_0001_0_mask.png").write_bytes(b"\x00\x05\x16\x07")
    archive = tmp_path / "s.tar.gz"
    with tarfile.open(archive, "w:gz") as out:
        out.add(raw, arcname="raw")
    report = registry.prepare("shenzhen", archive, tmp_path / "out", size=32)
    assert report.written == 2 and not report.skipped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw", "s.tar.gz"]
