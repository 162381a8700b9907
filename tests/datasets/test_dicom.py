"""helpers.data.dicom and ``prepare ircad|lctsc`` from DICOM: series written here with pydicom
itself (16 x 16 x N), in shuffled file order, with oblique and flipped orientations and
RescaleSlope/Intercept; duplicated and missing slices, a mask off the CT grid and a contour
on an absent slice are named errors; nothing is written into the source folder."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid

from helpers.data import DatasetError, dicom, registry

SHAPE = (16, 16, 6)                      # (columns, rows, slices)
PIXEL_SPACING = (0.7, 0.9)               # (between rows, between columns) in mm
THICKNESS = 2.5
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
FLIPPED = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0)   # rows run to the patient's right: the normal points to the feet


def _rotation(about_z: float, about_x: float) -> np.ndarray:
    a, b = np.radians(about_z), np.radians(about_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rx @ rz


_R = _rotation(25, -20)
OBLIQUE = tuple(round(float(v), 7) for v in (*_R[:, 0], *_R[:, 1]))  # rotated in-plane, then tilted


def _base(modality: str, sop_class: str, patient: str, study: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.StudyInstanceUID = modality, patient, study
    ds.FrameOfReferenceUID = "1.2.3.4"
    return ds


def _geometry(orientation, origin, k, tilt=(0.0, 0.0, 0.0)):
    """ImagePositionPatient of slice k: ``THICKNESS`` along the normal, plus ``tilt`` mm
    in-plane per slice (a gantry tilt shears the stack)."""
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    return np.round(np.asarray(origin) + k * (THICKNESS * np.cross(row, col) + np.asarray(tilt)), 4)


def write_series(folder: Path, stored: np.ndarray, *, orientation=AXIAL, origin=(-5.0, -7.0, 30.0), slope=1.0,
                 intercept=0.0, patient="P1", study="1.2.3", series=None, modality="CT", seed=0,
                 tilt=(0.0, 0.0, 0.0)) -> list[dict]:
    """Write ``stored`` (columns, rows, slices) as one file per slice, named in shuffled
    order (``image_N`` without extension, as 3D-IRCADb does). Returns per slice (in slice
    order) its path, SOPInstanceUID and ImagePositionPatient."""
    folder.mkdir(parents=True, exist_ok=True)
    series = series or generate_uid()
    names = np.random.default_rng(seed).permutation(stored.shape[2])
    written = []
    for k in range(stored.shape[2]):
        ds = _base(modality, CTImageStorage, patient, study)
        ds.SeriesInstanceUID = series
        ds.Rows, ds.Columns = stored.shape[1], stored.shape[0]
        ds.PixelSpacing = [str(v) for v in PIXEL_SPACING]
        ds.ImageOrientationPatient = [f"{v:.7g}" for v in orientation]
        position = _geometry(orientation, origin, k, tilt)
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = str(slope), str(intercept)
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).astype("<i2").tobytes()
        path = folder / f"image_{names[k]}"
        ds.save_as(path, enforce_file_format=True)
        written.append({"path": path, "uid": ds.SOPInstanceUID, "position": position})
    return written


def _box(shape=SHAPE, i=(3, 9), j=(4, 12), k=(1, 5)) -> np.ndarray:
    mask = np.zeros(shape, np.int16)
    mask[i[0]:i[1], j[0]:j[1], k[0]:k[1]] = 255
    return mask


def _expected_ras(orientation, origin, i, j, k, tilt=(0.0, 0.0, 0.0)) -> np.ndarray:
    """World position (RAS mm) of voxel (column i, row j, slice k), from the DICOM definition."""
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    lps = _geometry(orientation, origin, k, tilt) + i * PIXEL_SPACING[1] * row + j * PIXEL_SPACING[0] * col
    return lps * [-1, -1, 1]


# ---------------------------------------------------------------------------------- the reader

@pytest.mark.parametrize("orientation", [AXIAL, FLIPPED, OBLIQUE], ids=["axial", "flipped", "oblique"])
def test_series_in_shuffled_files_gets_order_values_and_affine_from_the_headers(tmp_path, orientation):
    stored = np.random.default_rng(1).integers(0, 3000, SHAPE).astype(np.int16)
    slices = write_series(tmp_path / "ct", stored, orientation=orientation, slope=2.0, intercept=-1024.0)
    files = sorted((tmp_path / "ct").iterdir())
    assert [p.name for p in files] != [s["path"].name for s in slices], "names must not give the order away"
    series = dicom.read_series(files)
    assert series.files == tuple(s["path"] for s in slices)
    np.testing.assert_array_equal(series.voxels, stored * 2.0 - 1024.0)
    np.testing.assert_allclose(series.spacing, [PIXEL_SPACING[1], PIXEL_SPACING[0], THICKNESS], atol=1e-4)
    for i, j, k in [(0, 0, 0), (15, 0, 0), (3, 11, 5), (15, 15, 2)]:
        np.testing.assert_allclose(series.affine @ [i, j, k, 1], [*_expected_ras(orientation, (-5, -7, 30), i, j, k), 1],
                                   atol=1e-3)
    # nibabel reads the same orientation from the affine: the rows run to the left (R->L is 'L')
    assert nib.aff2axcodes(series.affine)[0] == ("R" if orientation == FLIPPED else "L")


def test_gantry_tilt_keeps_its_shear_in_the_affine(tmp_path):
    stored = np.random.default_rng(2).integers(0, 100, SHAPE).astype(np.int16)
    write_series(tmp_path / "ct", stored, tilt=(0.0, 0.6, 0.0))
    series = dicom.read_series(sorted((tmp_path / "ct").iterdir()))
    np.testing.assert_array_equal(series.voxels, stored)
    for i, j, k in [(0, 0, 5), (7, 13, 4)]:
        np.testing.assert_allclose(series.affine @ [i, j, k, 1],
                                   [*_expected_ras(AXIAL, (-5, -7, 30), i, j, k, (0.0, 0.6, 0.0)), 1], atol=1e-3)


def test_slope_and_intercept_can_differ_per_slice(tmp_path):
    stored = np.full((16, 16, 2), 100, np.int16)
    write_series(tmp_path / "a", stored[:, :, :1], slope=1.0, intercept=-1000.0)
    write_series(tmp_path / "b", stored[:, :, :1], slope=0.5, intercept=-1024.0, origin=(-5.0, -7.0, 32.5))
    for path in (tmp_path / "b").iterdir():
        path.rename(tmp_path / "a" / "second")
    series = dicom.read_series(sorted((tmp_path / "a").iterdir()))
    assert series.voxels[0, 0].tolist() == [-900.0, -974.0]


def test_duplicated_slice_is_named(tmp_path):
    slices = write_series(tmp_path / "ct", np.zeros(SHAPE, np.int16))
    shutil.copy(slices[2]["path"], tmp_path / "ct" / "copy_of_a_slice")
    with pytest.raises(DatasetError, match=r"is a duplicated slice of the CT series: it lies at the same position"):
        dicom.read_series(sorted((tmp_path / "ct").iterdir()))


def test_missing_slice_is_named(tmp_path):
    slices = write_series(tmp_path / "ct", np.zeros(SHAPE, np.int16))
    slices[3]["path"].unlink()
    with pytest.raises(DatasetError, match=rf"has a missing slice: 1 slice missing between {slices[2]['path'].name} "
                                           rf"\(.*\) and {slices[4]['path'].name}"):
        dicom.read_series(sorted((tmp_path / "ct").iterdir()))


def test_file_without_geometry_or_not_dicom_is_named(tmp_path):
    slices = write_series(tmp_path / "ct", np.zeros(SHAPE, np.int16))
    ds = pydicom.dcmread(slices[1]["path"])
    del ds.ImagePositionPatient
    ds.save_as(slices[1]["path"], enforce_file_format=True)
    with pytest.raises(DatasetError, match=rf"{slices[1]['path'].name} has no valid ImagePositionPatient"):
        dicom.read_series(sorted((tmp_path / "ct").iterdir()))
    slices[1]["path"].write_text("not a DICOM file")
    with pytest.raises(DatasetError, match=rf"{slices[1]['path'].name} cannot be read as DICOM"):
        dicom.read_series(sorted((tmp_path / "ct").iterdir()))


# ------------------------------------------------------------------------------ prepare ircad

def make_ircad_dicom(root: Path, numbers=(1, 10), zipped=(10,), mask_origin=(-5.0, -7.0, 30.0)) -> Path:
    """3D-IRCADb as downloaded: 3Dircadb1.N/PATIENT_DICOM/ + MASKS_DICOM/liver/ (and other
    organs), unpacked, or as PATIENT_DICOM.zip / MASKS_DICOM.zip for the patients ``zipped``."""
    for n in numbers:
        patient = root / f"3Dircadb1.{n}"
        ct = np.random.default_rng(n).integers(0, 1400, SHAPE).astype(np.int16)
        write_series(patient / "PATIENT_DICOM", ct, slope=1.0, intercept=-1024.0, seed=n)
        write_series(patient / "MASKS_DICOM" / "liver", _box(), origin=mask_origin, seed=n + 1)
        write_series(patient / "MASKS_DICOM" / "spleen", _box(i=(10, 14)), seed=n + 2)
        if n in zipped:
            for name in ("PATIENT_DICOM", "MASKS_DICOM"):
                with zipfile.ZipFile(patient / f"{name}.zip", "w") as archive:
                    for path in sorted((patient / name).rglob("*")):
                        archive.write(path, path.relative_to(patient))
                shutil.rmtree(patient / name)
    return root


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_prepare_ircad_from_dicom_folders_and_zips(tmp_path):
    raw = make_ircad_dicom(tmp_path / "3Dircadb1")
    before = _snapshot(raw)
    report = registry.prepare("ircad", raw, tmp_path / "out")
    assert report.written == 2 and not report.skipped
    assert _snapshot(raw) == before, "prepare wrote into the source folder"
    assert sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz")) == [
        "ircad_e01_liver.nii.gz", "ircad_e01_orig.nii.gz", "ircad_e10_liver.nii.gz", "ircad_e10_orig.nii.gz"]
    orig = nib.load(tmp_path / "out" / "ircad_e10_orig.nii.gz")
    liver = nib.load(tmp_path / "out" / "ircad_e10_liver.nii.gz")
    expected = np.random.default_rng(10).integers(0, 1400, SHAPE).astype(np.int16) - 1024
    np.testing.assert_array_equal(np.asarray(orig.dataobj), expected)
    assert orig.get_data_dtype() == np.int16 and liver.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(liver.dataobj), _box() // 255)
    np.testing.assert_allclose(orig.affine, liver.affine)
    np.testing.assert_allclose(orig.affine @ [2, 3, 4, 1], [*_expected_ras(AXIAL, (-5, -7, 30), 2, 3, 4), 1], atol=1e-3)
    assert not list(tmp_path.glob(".out.partial-*"))

    from helpers.data import liver_ct

    cases = liver_ct.load_cases(tmp_path / "out")
    assert [orig.name for orig, _ in cases] == ["ircad_e01_orig.nii.gz", "ircad_e10_orig.nii.gz"]


def test_ircad_mask_off_the_ct_grid_is_named_and_skipped(tmp_path):
    raw = make_ircad_dicom(tmp_path / "raw", numbers=(1,), zipped=())
    make_ircad_dicom(tmp_path / "raw", numbers=(2,), zipped=(), mask_origin=(-5.0, -7.0, 31.0))
    with pytest.raises(DatasetError, match=r"3Dircadb1\.2/MASKS_DICOM/liver does not match the CT grid of "
                                           r".*3Dircadb1\.2/PATIENT_DICOM"):
        registry.prepare("ircad", raw, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))
    report = registry.prepare("ircad", raw, tmp_path / "out", skip_bad=True)
    assert report.written == 1 and [name for name, _ in report.skipped] == ["ircad_e02"]


def test_ircad_patient_without_liver_mask_is_named(tmp_path):
    raw = make_ircad_dicom(tmp_path / "raw", numbers=(3,), zipped=())
    shutil.rmtree(raw / "3Dircadb1.3" / "MASKS_DICOM" / "liver")
    with pytest.raises(DatasetError, match=r"3Dircadb1\.3: MASKS_DICOM has no liver/ folder \(found: spleen\)"):
        registry.prepare("ircad", raw, tmp_path / "out")


def test_cli_prepares_ircad_from_a_zip_of_the_download(tmp_path, capsys):
    from helpers.data.__main__ import main

    raw = make_ircad_dicom(tmp_path / "3Dircadb1", numbers=(4,), zipped=(4,))
    archive = tmp_path / "3Dircadb1.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(raw.rglob("*")):
            out.write(path, path.relative_to(tmp_path))
    assert main(["prepare", "ircad", str(archive), "--dest", str(tmp_path / "out")]) == 0
    assert "ircad: 1 cases written" in capsys.readouterr().out
    assert (tmp_path / "out" / "ircad_e04_liver.nii.gz").is_file()


# ------------------------------------------------------------------------------ prepare lctsc

def write_rtstruct(path: Path, ct: list[dict], rois: dict[str, list[tuple[int, tuple, tuple]]], *,
                   orientation=AXIAL, origin=(-5.0, -7.0, 30.0), patient="P1", series="", reference=True) -> None:
    """An RTSTRUCT with one ROI per ``rois`` entry: (slice k, (i0, i1), (j0, j1)) rectangles
    (voxels i0..i1-1, j0..j1-1 of slice k), each contour referencing its CT slice (unless
    not ``reference``; a slice k beyond ``ct`` is drawn where that slice would be)."""
    ds = _base("RTSTRUCT", RTStructureSetStorage, patient, "1.2.3")
    ds.SeriesInstanceUID = generate_uid()
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    referenced = Dataset()
    referenced.SeriesInstanceUID = series
    study = Dataset()
    study.RTReferencedSeriesSequence = Sequence([referenced])
    frame = Dataset()
    frame.FrameOfReferenceUID = "1.2.3.4"
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    ds.StructureSetROISequence, ds.ROIContourSequence = Sequence(), Sequence()
    for number, (name, boxes) in enumerate(rois.items(), start=1):
        item = Dataset()
        item.ROINumber, item.ROIName = number, name
        ds.StructureSetROISequence.append(item)
        contours = Sequence()
        for k, (i0, i1), (j0, j1) in boxes:
            corners = [(i0 - 0.4, j0 - 0.4), (i1 - 0.6, j0 - 0.4), (i1 - 0.6, j1 - 0.6), (i0 - 0.4, j1 - 0.6)]
            points = [_geometry(orientation, origin, k) + i * PIXEL_SPACING[1] * row + j * PIXEL_SPACING[0] * col
                      for i, j in corners]
            contour = Dataset()
            if reference:
                image = Dataset()
                image.ReferencedSOPClassUID, image.ReferencedSOPInstanceUID = CTImageStorage, ct[k]["uid"]
                contour.ContourImageSequence = Sequence([image])
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(points)
            contour.ContourData = [f"{v:.4f}" for point in points for v in point]
            contours.append(contour)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = number
        roi_contour.ContourSequence = contours
        ds.ROIContourSequence.append(roi_contour)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


LUNGS = {"Lung_L": [(k, (9, 14), (3, 12)) for k in range(1, 5)],
         "Lung_R": [(k, (2, 7), (3, 12)) for k in range(1, 5)] + [(3, (3, 6), (5, 8))],   # a hole on slice 3
         "Heart": [(2, (6, 10), (8, 14))]}


def make_lctsc_dicom(root: Path, patients=("LCTSC-Train-S1-001", "LCTSC-Train-S1-002"),
                     orientation=OBLIQUE) -> dict[str, list[dict]]:
    """TCIA layout: <patient>/<study>/<series>/1-NN.dcm (CT) and .../1-1.dcm (RTSTRUCT)."""
    written = {}
    for n, patient in enumerate(patients):
        series = generate_uid()
        ct = np.random.default_rng(n).integers(0, 1400, SHAPE).astype(np.int16)
        slices = write_series(root / patient / "study" / "CT", ct, orientation=orientation, intercept=-1024.0,
                              patient=patient, series=series, seed=n)
        for s in slices:
            s["path"] = s["path"].rename(s["path"].with_name(f"1-{s['path'].name}.dcm"))
        write_rtstruct(root / patient / "study" / "RTSTRUCT" / "1-1.dcm", slices, LUNGS, orientation=orientation,
                       patient=patient, series=series)
        written[patient] = slices
    (root / "metadata.csv").write_text("not DICOM\n")
    return written


def _expected_lungs() -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    mask[9:14, 3:12, 1:5] = 1
    mask[2:7, 3:12, 1:5] = 1
    mask[3:6, 5:8, 3] = 0            # the hole: an inner contour of the same ROI
    return mask


def test_prepare_lctsc_rasterises_the_lung_contours_onto_an_oblique_ct(tmp_path):
    raw = tmp_path / "manifest" / "LCTSC"
    make_lctsc_dicom(raw)
    before = _snapshot(tmp_path / "manifest")
    report = registry.prepare("lctsc", tmp_path / "manifest", tmp_path / "out")
    assert report.written == 2
    assert _snapshot(tmp_path / "manifest") == before, "prepare wrote into the source folder"
    case = tmp_path / "out" / "LCTSC-Train-S1-001"
    ct, lung = nib.load(case / "ct.nii.gz"), nib.load(case / "lung.nii.gz")
    np.testing.assert_array_equal(np.asarray(lung.dataobj), _expected_lungs())
    expected = np.random.default_rng(0).integers(0, 1400, SHAPE).astype(np.int16) - 1024
    np.testing.assert_array_equal(np.asarray(ct.dataobj), expected)
    np.testing.assert_allclose(ct.affine @ [5, 6, 3, 1], [*_expected_ras(OBLIQUE, (-5, -7, 30), 5, 6, 3), 1], atol=1e-3)
    np.testing.assert_allclose(lung.affine, ct.affine)

    from helpers.data import lung_ct

    assert [c.parent.name for c, _ in lung_ct.load_cases(tmp_path / "out")] == ["LCTSC-Train-S1-001",
                                                                                 "LCTSC-Train-S1-002"]


def test_contour_on_an_absent_ct_slice_is_named(tmp_path):
    slices = make_lctsc_dicom(tmp_path / "raw", orientation=AXIAL)
    absent = slices["LCTSC-Train-S1-002"][0]  # the end slice: the series stays regular without it
    absent["path"].unlink()
    rois = {"Lung_L": [(0, (9, 14), (3, 12))]}
    write_rtstruct(tmp_path / "raw" / "LCTSC-Train-S1-002" / "study" / "RTSTRUCT" / "1-1.dcm",
                   slices["LCTSC-Train-S1-002"], rois, patient="LCTSC-Train-S1-002",
                   series=str(pydicom.dcmread(slices["LCTSC-Train-S1-002"][1]["path"]).SeriesInstanceUID))
    with pytest.raises(DatasetError, match=rf"1-1\.dcm: contour 1 of ROI 'Lung_L' references the slice "
                                           rf"{absent['uid']}, which is absent from the CT series"):
        registry.prepare("lctsc", tmp_path / "raw", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    report = registry.prepare("lctsc", tmp_path / "raw", tmp_path / "out", skip_bad=True)
    assert report.written == 1 and [name for name, _ in report.skipped] == ["LCTSC-Train-S1-002"]


def test_rtstruct_without_lungs_or_missing_is_named(tmp_path):
    slices = make_lctsc_dicom(tmp_path / "raw", patients=("A",), orientation=AXIAL)
    rtstruct = tmp_path / "raw" / "A" / "study" / "RTSTRUCT" / "1-1.dcm"
    write_rtstruct(rtstruct, slices["A"], {"Heart": LUNGS["Heart"]}, patient="A")
    with pytest.raises(DatasetError, match=r"1-1\.dcm has no ROI named like .* \(found: Heart\)"):
        registry.prepare("lctsc", tmp_path / "raw", tmp_path / "out")
    rtstruct.unlink()
    with pytest.raises(DatasetError, match=r"patient A .* hold a CT series but no RTSTRUCT"):
        registry.prepare("lctsc", tmp_path / "raw", tmp_path / "out")


def test_contours_without_slice_references_are_placed_by_position(tmp_path):
    slices = write_series(tmp_path / "ct", np.zeros(SHAPE, np.int16), orientation=OBLIQUE)
    ct = dicom.read_series(sorted((tmp_path / "ct").iterdir()))
    write_rtstruct(tmp_path / "rs.dcm", slices, LUNGS, orientation=OBLIQUE, reference=False)
    mask, names = dicom.rasterise_rtstruct(tmp_path / "rs.dcm", ct)
    assert names == ["Lung_L", "Lung_R"]
    np.testing.assert_array_equal(mask, _expected_lungs())
    write_rtstruct(tmp_path / "rs.dcm", slices, {"Lung_R": [(SHAPE[2], (2, 7), (3, 12))]}, orientation=OBLIQUE,
                   reference=False)
    with pytest.raises(DatasetError, match=r"rs\.dcm: contour 1 of ROI 'Lung_R' lies at a position where the CT "
                                           r"series .* has no slice"):
        dicom.rasterise_rtstruct(tmp_path / "rs.dcm", ct)


@pytest.mark.parametrize("name, lung", [("Lung_L", True), ("LUNG_RIGHT", True), ("Lungs", True), ("R Lung", True),
                                        ("Lung_GTV", False), ("Heart", False)])
def test_lung_roi_names(name, lung):
    assert bool(dicom.LUNG_ROI.fullmatch(name)) is lung


@pytest.mark.parametrize("orientation", [FLIPPED, OBLIQUE], ids=["flipped", "oblique"])
def test_series_agrees_with_simpleitk(tmp_path, orientation):
    """An independent reader (ITK/GDCM, installed with medpy) finds the same voxels and geometry."""
    sitk = pytest.importorskip("SimpleITK")
    stored = np.random.default_rng(3).integers(0, 3000, SHAPE).astype(np.int16)
    write_series(tmp_path / "ct", stored, orientation=orientation, slope=1.0, intercept=-1024.0)
    ours = dicom.read_series(sorted((tmp_path / "ct").iterdir()))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path / "ct")))
    image = reader.Execute()
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    np.testing.assert_allclose(ours.affine, dicom.LPS_TO_RAS @ lps, atol=1e-3)
    np.testing.assert_array_equal(ours.voxels, sitk.GetArrayFromImage(image).T)
