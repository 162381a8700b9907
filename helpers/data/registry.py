"""Registry of the public data sets and converters into the course layouts.

Each :class:`PublicDataset` records the official page, licence, citation, the expected
raw layout and (where one is known) a direct download URL. ``prepare(name, source, dest)``
converts a raw download, an archive (``.zip``, ``.tar``, ``.tar.gz``) or its extracted
folder, into the layout that the lessons read, with a progress bar:

* chest X-rays (lessons 01-05): ``images/<id>.png`` + ``masks/<id>.png`` (0/255), after the
  preprocessing of the ML-INFN course: black-border crop, 5th-95th percentile contrast
  stretch, resize to ``size`` x ``size``; Montgomery's left and right lung masks are merged,
  Shenzhen's ``<id>_mask.png`` files are paired with their images;
* lung CT (lesson 06): ``<case>/ct.nii.gz`` + ``<case>/lung.nii.gz`` (left and right lung
  masks merged when they come separately);
* liver CT (lesson 07): ``ircad_eNN_orig.nii.gz`` + ``ircad_eNN_liver.nii.gz``;
* brain MRI (lesson 08): ``<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz``, labels 0/1/2/4.

Every pair is validated. A bad pair (missing mask, mismatched sizes, unreadable file,
unexpected labels) raises :class:`~helpers.data.DatasetError` naming the file and the fix,
or, with ``skip_bad=True``, is left out and listed in the returned report. The output is
written to a temporary folder and renamed into place at the end, so a failed run never
leaves a half-written data set; an existing non-empty ``dest`` is replaced only with
``force=True``.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers import config
from helpers.data._store import DatasetError, atomic_write_bytes
from helpers.data.io import nifti_bytes

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class PublicDataset:
    """What the course knows about one public data set."""

    name: str
    title: str
    kind: str  # "cxr", "lung_ct", "liver_ct" or "brain_mri"
    lessons: str
    homepage: str
    licence: str
    citation: str
    raw_layout: str
    url: str | None = None
    sha256: str | None = None
    archive_name: str | None = None
    notes: str = ""


DATASETS: dict[str, PublicDataset] = {
    "montgomery": PublicDataset(
        name="montgomery", title="Montgomery County chest X-ray set (NLM)", kind="cxr", lessons="01-05",
        homepage="https://lhncbc.nlm.nih.gov/LHC-downloads/downloads.html#tuberculosis-image-data-sets",
        licence="Public, for research and education; cite the paper below.",
        citation="Jaeger S. et al. Two public chest X-ray datasets for computer-aided screening of "
                 "pulmonary diseases. Quant Imaging Med Surg 2014;4(6):475-477.",
        raw_layout="MontgomerySet/CXR_png/MCUCXR_NNNN_k.png, MontgomerySet/ManualMask/leftMask/"
                   "MCUCXR_NNNN_k.png and .../rightMask/MCUCXR_NNNN_k.png (138 images, 4020x4892 or 4892x4020)",
        url="https://openi.nlm.nih.gov/imgs/collections/NLM-MontgomeryCXRSet.zip",
        archive_name="NLM-MontgomeryCXRSet.zip",
    ),
    "shenzhen": PublicDataset(
        name="shenzhen", title="Shenzhen Hospital chest X-ray set with lung masks", kind="cxr", lessons="01-05",
        homepage="https://lhncbc.nlm.nih.gov/LHC-downloads/downloads.html#tuberculosis-image-data-sets",
        licence="Public, for research and education; cite both papers below.",
        citation="Jaeger S. et al. Quant Imaging Med Surg 2014;4(6):475-477; lung masks: Stirenko S. et al. "
                 "Chest X-Ray Analysis of Tuberculosis by Deep Learning with Segmentation and Augmentation. "
                 "ELNANO 2018.",
        raw_layout="CXR_png/CHNCXR_NNNN_k.png and masks/CHNCXR_NNNN_k_mask.png (lung masks for 566 of "
                   "662 images; the images without a mask are skipped with --skip-bad)",
        notes="The NLM archive (ChinaSet_AllFiles.zip) holds the images only; the lung masks are a "
              "separate download (Kaggle: 'Chest Xray Masks and Labels'), which needs an account.",
    ),
    "mlinfn_cxr": PublicDataset(
        name="mlinfn_cxr", title="ML-INFN hackathon chest X-ray sets (preprocessed, 128/256/512 px)",
        kind="cxr", lessons="01-05",
        homepage="https://github.com/tommasoboccali/ml_infn_hackBase",  # material of the ML-INFN beginner hackathons
        licence="As the original Montgomery/Shenzhen sets; cite them.",
        citation="As Montgomery and Shenzhen.",
        raw_layout="a folder with the images in one subfolder (image/, images/ or CXR_png/) and the masks "
                   "in another (mask/, masks/), same file names (a _mask suffix is accepted)",
    ),
    "lctsc": PublicDataset(
        name="lctsc", title="Lung CT Segmentation Challenge 2017 (TCIA), converted to NIfTI", kind="lung_ct",
        lessons="06", homepage="https://www.cancerimagingarchive.net/collection/lctsc/",
        licence="CC BY 3.0 (TCIA); cite the data set and TCIA.",
        citation="Yang J. et al. Data from Lung CT Segmentation Challenge. The Cancer Imaging Archive, 2017. "
                 "doi:10.7937/K9/TCIA.2017.3r3fvz08",
        raw_layout="<case>/ct.nii.gz with <case>/lung.nii.gz, or <case>/Lung_L.nii.gz + <case>/Lung_R.nii.gz "
                   "(convert the DICOM/RTSTRUCT download first, e.g. with plastimatch or dcmrtstruct2nii)",
    ),
    "ircad": PublicDataset(
        name="ircad", title="3D-IRCADb-01 liver CT (NIfTI conversion)", kind="liver_ct", lessons="07",
        homepage="https://www.ircad.fr/research/data-sets/liver-segmentation-3d-ircadb-01/",
        licence="Free for research and education (CC BY-NC-SA 4.0); cite IRCAD.",
        citation="Soler L. et al. 3D image reconstruction for comparison of algorithm database: "
                 "a patient-specific anatomical and medical image database. IRCAD, 2010.",
        raw_layout="ircad_eNN_orig.nii.gz + ircad_eNN_liver.nii.gz in one folder. The original per-patient "
                   "DICOM folders (PATIENT_DICOM/, MASKS_DICOM/liver/) are not read: convert them to NIfTI "
                   "first (a DICOM reader would add a dependency for one lesson).",
    ),
    "brats2020": PublicDataset(
        name="brats2020", title="BraTS 2020 training set", kind="brain_mri", lessons="08",
        homepage="https://www.med.upenn.edu/cbica/brats2020/data.html",
        licence="Research use after registration; cite the BraTS papers.",
        citation="Menze B. et al. IEEE TMI 2015; Bakas S. et al. Nature Scientific Data 2017; "
                 "Bakas S. et al. arXiv:1811.02629.",
        raw_layout="BraTS20_Training_NNN/BraTS20_Training_NNN_{t1,t1ce,t2,flair,seg}.nii[.gz] "
                   "(case 355's label file is named W39_1998.09.19_Segm.nii; it is found anyway)",
    ),
    "brats2021": PublicDataset(
        name="brats2021", title="BraTS 2021 (RSNA-ASNR-MICCAI) training set", kind="brain_mri", lessons="08",
        homepage="https://www.synapse.org/brats2021",
        licence="Research use after registration; cite the BraTS papers.",
        citation="Baid U. et al. The RSNA-ASNR-MICCAI BraTS 2021 Benchmark. arXiv:2107.02314.",
        raw_layout="BraTS2021_NNNNN/BraTS2021_NNNNN_{t1,t1ce,t2,flair,seg}.nii.gz",
    ),
}


@dataclass
class PrepareReport:
    """What ``prepare`` did: where, how many cases were written, which were skipped and why."""

    dataset: str
    dest: Path
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.dataset}: {self.written} cases written to {self.dest}"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  {name}: {reason}" for name, reason in self.skipped]
        return "\n".join(lines)


def get(name: str) -> PublicDataset:
    """The registry entry ``name``; a KeyError lists the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}") from None


def manual_download_help(entry: PublicDataset) -> str:
    """Where to get a data set by hand and which command converts it."""
    return (f"Get '{entry.title}' by hand from {entry.homepage} ({entry.licence}). Expected layout: "
            f"{entry.raw_layout}. Then run: python -m helpers data prepare {entry.name} PATH/TO/DOWNLOAD")


# ---------------------------------------------------------------------------------------- input

@contextmanager
def _opened_source(source: Path) -> Iterator[Path]:
    """Yield a folder for ``source``: the folder itself, or an archive extracted to a temporary one."""
    source = Path(source)
    if source.is_dir():
        yield source
        return
    if not source.is_file():
        raise DatasetError(f"{source} does not exist: pass the downloaded archive or the folder it extracts to.")
    with tempfile.TemporaryDirectory(prefix="unet-course-extract-") as scratch:
        try:
            if zipfile.is_zipfile(source):
                with zipfile.ZipFile(source) as archive:
                    archive.extractall(scratch)
            elif tarfile.is_tarfile(source):
                with tarfile.open(source) as archive:
                    archive.extractall(scratch, filter="data")
            else:
                raise DatasetError(f"{source} is neither a folder nor a .zip/.tar archive: pass the "
                                   f"downloaded archive or the folder it extracts to.")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
            raise DatasetError(f"{source} is a damaged archive ({error}): download it again.") from None
        yield Path(scratch)


def _find_dir(root: Path, names: tuple[str, ...], what: str, entry: PublicDataset) -> Path:
    """The first folder under ``root`` (root included) whose name is one of ``names``."""
    wanted = {n.lower() for n in names}
    candidates = [root] + sorted(p for p in root.rglob("*") if p.is_dir())
    for candidate in candidates:
        if candidate.name.lower() in wanted:
            return candidate
    raise DatasetError(f"no {what} folder ({'/'.join(names)}) found in {root}. Expected layout for "
                       f"{entry.name}: {entry.raw_layout}")


def _read_grey(path: Path) -> np.ndarray:
    """Read a raster image as float32 grey values (any bit depth, RGB averaged)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError) as error:
        raise DatasetError(f"{path} cannot be decoded as an image ({error}): re-download or remove it.") from None
    if array.ndim == 3:
        array = array[..., :3].mean(axis=-1)
    return array.astype(np.float32)


def _read_binary(path: Path) -> np.ndarray:
    values = _read_grey(path)
    unique = np.unique(values)
    if unique.size > 2 or (unique.size == 2 and unique[0] != 0):
        raise DatasetError(f"{path} is not a binary mask (values {unique[:6].tolist()}...): masks must "
                           f"hold 0 for background and one value (1 or 255) for the lung.")
    return values > 0


def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------------- chest X-rays

def crop_black_border(image: np.ndarray, fraction: float = 0.05) -> tuple[slice, slice]:
    """Rows and columns that remain after removing black borders: the bounding box of the
    rows/columns whose mean exceeds ``fraction`` of the image maximum."""
    limit = fraction * float(image.max()) if image.size else 0.0
    rows = np.flatnonzero(image.mean(axis=1) > limit)
    cols = np.flatnonzero(image.mean(axis=0) > limit)
    if rows.size == 0 or cols.size == 0:
        return slice(None), slice(None)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def preprocess_cxr(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """ML-INFN preprocessing of one radiograph and its mask: black-border crop, resize to
    ``size`` x ``size``, 5th-95th percentile contrast stretch. Returns uint8 image (0-255)
    and uint8 mask (0/255)."""
    from skimage.transform import resize

    rows, cols = crop_black_border(image)
    image, mask = image[rows, cols], mask[rows, cols]
    image = resize(image, (size, size), anti_aliasing=True, preserve_range=True)
    mask = resize(mask.astype(np.float32), (size, size), order=1, anti_aliasing=False) >= 0.5
    low, high = np.percentile(image, (5, 95))
    stretched = np.clip((image - low) / max(high - low, 1e-6), 0, 1)
    return (stretched * 255 + 0.5).astype(np.uint8), mask.astype(np.uint8) * 255


def _cxr_cases(entry: PublicDataset, root: Path) -> list[tuple[str, Path, list[Path | None]]]:
    """(case name, image, [mask parts]) for the raw CXR layouts; a missing part is None."""
    if entry.name == "montgomery":
        images = _find_dir(root, ("CXR_png",), "image", entry)
        left = _find_dir(root, ("leftMask",), "left-lung mask", entry)
        right = _find_dir(root, ("rightMask",), "right-lung mask", entry)
        cases = []
        for image in sorted(images.glob("*.png")):
            parts = [p if p.is_file() else None for p in (left / image.name, right / image.name)]
            cases.append((image.stem, image, parts))
        return cases
    images = _find_dir(root, ("CXR_png", "images", "image", "img"), "image", entry)
    masks = _find_dir(root, ("masks", "mask", "ManualMask"), "mask", entry)
    by_stem = {}
    for mask in sorted(masks.glob("*.png")):
        by_stem[re.sub(r"_mask$", "", mask.stem)] = mask
    return [(image.stem, image, [by_stem.get(image.stem)]) for image in sorted(images.glob("*.png"))]


def _prepare_cxr(entry, root, out, size, skip_bad, report):
    from tqdm.auto import tqdm

    cases = _cxr_cases(entry, root)
    if not cases:
        raise DatasetError(f"no .png images found in {root} for {entry.name}. Expected layout: {entry.raw_layout}")
    for name, image_path, parts in tqdm(cases, desc=f"prepare {entry.name}", unit="image"):
        try:
            missing = [i for i, p in enumerate(parts) if p is None]
            if missing:
                raise DatasetError(f"{image_path} has no mask" + (
                    " (left or right lung mask missing)" if len(parts) > 1 else "") +
                    ": add it, or pass --skip-bad to leave this image out.")
            image = _read_grey(image_path)
            mask = np.zeros(image.shape, dtype=bool)
            for part in parts:
                piece = _read_binary(part)
                if piece.shape != image.shape:
                    raise DatasetError(f"{part} is {piece.shape[1]}x{piece.shape[0]} but its image {image_path} "
                                       f"is {image.shape[1]}x{image.shape[0]}: they must match; fix or remove the pair.")
                mask |= piece
            image8, mask8 = preprocess_cxr(image, mask, size)
        except DatasetError as error:
            if not skip_bad:
                raise
            report.skipped.append((name, str(error)))
            continue
        atomic_write_bytes(out / "images" / f"{name}.png", _png_bytes(image8))
        atomic_write_bytes(out / "masks" / f"{name}.png", _png_bytes(mask8))
        report.written += 1


# ------------------------------------------------------------------------------------- volumes

def _load_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    try:
        image = nib.load(str(path))
        return np.asarray(image.dataobj), image.affine
    except Exception as error:  # nibabel raises many types for damaged files
        raise DatasetError(f"{path} cannot be read as NIfTI ({type(error).__name__}: {error}): "
                           f"re-download or remove it.") from None


def _find_nifti(folder: Path, stem: str) -> Path | None:
    for suffix in NIFTI_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _check_labels(path: Path, labels: np.ndarray, allowed: set[int]) -> None:
    found = set(np.unique(labels).astype(int).tolist())
    if not found <= allowed:
        raise DatasetError(f"{path} holds label values {sorted(found - allowed)} besides the expected "
                           f"{sorted(allowed)}: check that this is the right file, or remove the case.")


def _check_shape(path: Path, array: np.ndarray, reference: Path, shape: tuple) -> None:
    if array.shape[:3] != tuple(shape[:3]):
        raise DatasetError(f"{path} has shape {array.shape} but {reference} has {shape}: image and mask "
                           f"must share one voxel grid; fix or remove the case.")


def _volume_cases(entry: PublicDataset, root: Path):
    """Yield (case name, callable that returns {relative path: bytes}) for a volume layout."""
    if entry.kind == "lung_ct":
        for ct in sorted(root.rglob("ct.nii*")):
            case = ct.parent
            def make(case=case, ct=ct):
                volume, affine = _load_volume(ct)
                lung = _find_nifti(case, "lung")
                parts = [lung] if lung else [_find_nifti(case, "Lung_L"), _find_nifti(case, "Lung_R")]
                if any(p is None for p in parts):
                    raise DatasetError(f"{case} has ct but no lung mask (lung.nii.gz, or Lung_L and Lung_R): "
                                       f"add it, or pass --skip-bad to leave the case out.")
                mask = np.zeros(volume.shape, dtype=np.uint8)
                for part in parts:
                    labels, _ = _load_volume(part)
                    _check_shape(part, labels, ct, volume.shape)
                    _check_labels(part, labels, {0, 1, 255})
                    mask |= (labels > 0).astype(np.uint8)
                return {f"{case.name}/ct.nii.gz": nifti_bytes(volume.astype(np.int16), affine),
                        f"{case.name}/lung.nii.gz": nifti_bytes(mask, affine)}
            yield case.name, make
    elif entry.kind == "liver_ct":
        for orig in sorted(root.rglob("ircad_e*_orig.nii*")):
            stem = orig.name.split("_orig")[0]
            def make(orig=orig, stem=stem):
                volume, affine = _load_volume(orig)
                liver = _find_nifti(orig.parent, f"{stem}_liver")
                if liver is None:
                    raise DatasetError(f"{orig} has no {stem}_liver.nii.gz beside it: add it, or pass "
                                       f"--skip-bad to leave the case out.")
                labels, _ = _load_volume(liver)
                _check_shape(liver, labels, orig, volume.shape)
                _check_labels(liver, labels, {0, 1, 255})
                return {f"{stem}_orig.nii.gz": nifti_bytes(volume.astype(np.int16), affine),
                        f"{stem}_liver.nii.gz": nifti_bytes((labels > 0).astype(np.uint8), affine)}
            yield stem, make
    else:  # brain_mri
        for case in sorted({p.parent for p in root.rglob("*_flair.nii*")}):
            name = case.name
            def make(case=case, name=name):
                files = {}
                reference = None
                for modality in ("t1", "t1ce", "t2", "flair"):
                    path = _find_nifti(case, f"{name}_{modality}")
                    if path is None:
                        raise DatasetError(f"{case} has no {name}_{modality}.nii.gz: add it, or pass "
                                           f"--skip-bad to leave the case out.")
                    volume, affine = _load_volume(path)
                    if reference is None:
                        reference = (path, volume.shape)
                    _check_shape(path, volume, *reference)
                    files[f"{name}/{name}_{modality}.nii.gz"] = nifti_bytes(volume.astype(np.float32), affine)
                seg = _find_nifti(case, f"{name}_seg") or next(iter(sorted(case.glob("*Segm.nii*"))), None)
                if seg is None:
                    raise DatasetError(f"{case} has no {name}_seg.nii.gz (label file): add it, or pass "
                                       f"--skip-bad to leave the case out.")
                labels, affine = _load_volume(seg)
                _check_shape(seg, labels, *reference)
                _check_labels(seg, labels, set(config.BRATS_LABELS))
                files[f"{name}/{name}_seg.nii.gz"] = nifti_bytes(labels.astype(np.uint8), affine)
                return files
            yield name, make


def _prepare_volumes(entry, root, out, size, skip_bad, report):
    from tqdm.auto import tqdm

    cases = list(_volume_cases(entry, root))
    if not cases:
        raise DatasetError(f"no cases found in {root} for {entry.name}. Expected layout: {entry.raw_layout}")
    for name, make in tqdm(cases, desc=f"prepare {entry.name}", unit="case"):
        try:
            files = make()
        except DatasetError as error:
            if not skip_bad:
                raise
            report.skipped.append((name, str(error)))
            continue
        for relative, payload in files.items():
            atomic_write_bytes(out / relative, payload)
        report.written += 1


# ---------------------------------------------------------------------------------------- main

def prepare(name: str, source: Path, dest: Path | None = None, *, size: int = config.CXR_IMAGE_SIZE,
            skip_bad: bool = False, force: bool = False) -> PrepareReport:
    """Convert the raw download ``source`` (archive or folder) of data set ``name`` into the
    course layout in ``dest`` (default ``data/<name>``) and return a :class:`PrepareReport`.

    ``size`` is the side in pixels of the prepared chest X-rays (volumes keep their grid).
    Bad cases raise DatasetError unless ``skip_bad``; an existing non-empty ``dest`` is
    replaced only with ``force``. Nothing is left in ``dest`` when preparation fails.
    """
    entry = get(name)
    dest = Path(dest) if dest else config.data_dir() / name
    if dest.exists() and any(dest.iterdir()) and not force:
        raise DatasetError(f"{dest} is not empty: nothing was changed. Pass --force (force=True) to replace it, "
                           f"or choose another destination.")
    if not 16 <= size <= 2048:
        raise DatasetError(f"size {size} is outside 16..2048 pixels.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    report = PrepareReport(dataset=name, dest=dest)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.partial-", dir=dest.parent) as scratch:
        out = Path(scratch) / "out"
        out.mkdir()
        with _opened_source(Path(source)) as root:
            if entry.kind == "cxr":
                _prepare_cxr(entry, root, out, size, skip_bad, report)
            else:
                _prepare_volumes(entry, root, out, size, skip_bad, report)
        if report.written == 0:
            raise DatasetError(f"no usable case in {source} for {name}: nothing was written. "
                               + "\n".join(f"{n}: {r}" for n, r in report.skipped[:5]))
        metadata = {"prepared": name, "source": str(source), "size": size if entry.kind == "cxr" else None,
                    "written": report.written, "skipped": [list(s) for s in report.skipped]}
        (out / "prepared.json").write_text(json.dumps(metadata, indent=2) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        out.rename(dest)
    return report


def is_prepared(name: str, dest: Path | None = None) -> bool:
    """True when ``data/<name>`` (or ``dest``) holds a complete prepared set."""
    folder = Path(dest) if dest else config.data_dir() / name
    return (folder / "prepared.json").is_file()


def fetch(name: str, downloads: Path | None = None, *, downloader: Callable | None = None) -> Path:
    """Download the raw archive of ``name`` into ``downloads`` (default ``data/downloads``)
    when a direct URL is known; otherwise raise DownloadError saying how to get it by hand."""
    from helpers.data.download import DownloadError, download

    entry = get(name)
    help_text = manual_download_help(entry)
    if entry.url is None:
        raise DownloadError(f"No direct download is known for {entry.name}. {entry.notes} {help_text}".replace("  ", " "))
    folder = Path(downloads) if downloads else config.data_dir() / "downloads"
    target = folder / (entry.archive_name or Path(entry.url).name)
    return (downloader or download)(entry.url, target, sha256=entry.sha256, help_text=help_text)
