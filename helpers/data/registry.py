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

Every case is validated, values as well as shapes. A bad case raises
:class:`~helpers.data.DatasetError` naming the file and the fix or, with ``skip_bad=True``, is
left out and listed in the returned report:

* a missing image, mask, modality or CT volume (a mask without its image too);
* a file that cannot be read: damaged, not an image/NIfTI, larger than
  :data:`MAX_IMAGE_PIXELS` (a decompression bomb), not 2D (images) or not 3D (volumes;
  trailing axes of length 1 are dropped), unreadable for lack of permission;
* NaN or infinite values in any image or volume;
* CT values outside the int16 range (-32768..32767) in which prepared CT is stored: the rule
  is to refuse, not clip, since such values mean the file is not in Hounsfield units;
  fractional CT values are rounded to the nearest integer;
* labels that are not integers or not in the expected set, checked before any cast (masks:
  0/1 or 0/255; BraTS: 0, 1, 2, 4); a mask of image and mask size mismatch.

Masks may be empty or full in a single case, but at least one case must hold both
background and foreground. OS metadata files (``._*``, ``.DS_Store``, ``Thumbs.db``,
``desktop.ini``, ``__MACOSX/``) are ignored.

The source is never modified: a destination equal to, inside or containing the source is
refused whatever ``force`` says. Archives are extracted, and the output written, inside one
scratch folder next to the destination (``.<dest>.partial-XXXX``), which is removed on any
exit the process survives and renamed into place only when everything succeeded; the
scratch folders of a killed run are removed by the next run (and by ``data list``). An
existing non-empty ``dest`` is replaced only with ``force=True``. A local problem (disk
full, quota, permissions, a path too long) is reported as such, not as a damaged archive.
"""

from __future__ import annotations

import errno
import io
import json
import re
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers import config
from helpers.data._store import DatasetError, atomic_write_bytes, owned_scratch, remove_leftovers
from helpers.data.io import nifti_bytes

NIFTI_SUFFIXES = (".nii.gz", ".nii")

#: Largest raster image ``prepare`` decodes, in pixels (width x height). Montgomery's
#: radiographs have 4892 x 4020 = 19.7 million; a file that declares more is refused as a
#: probable decompression bomb (a tiny file that would expand to gigabytes).
MAX_IMAGE_PIXELS = 80_000_000

#: Names of operating-system metadata files that are never data (macOS, Windows).
OS_METADATA = (".DS_Store", "Thumbs.db", "desktop.ini")

# Python releases before 3.10.12 / 3.11.4 have no extraction filters (and never raise this).
_TAR_FILTER_ERROR = getattr(tarfile, "FilterError", ())

#: Int16 range in which prepared CT volumes are stored (Hounsfield units).
HU_RANGE = (-32768, 32767)


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
    two_valued: int = 0  # cases whose mask holds background and foreground

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

def is_os_metadata(path: str | Path) -> bool:
    """True for macOS/Windows metadata files (``._name``, ``.DS_Store``, ``Thumbs.db``,
    ``desktop.ini``) and anything inside a ``__MACOSX`` folder."""
    parts = Path(path).parts
    return bool(parts) and (parts[-1].startswith("._") or parts[-1] in OS_METADATA or "__MACOSX" in parts)


def _files(folder: Path, pattern: str, recursive: bool = False) -> list[Path]:
    """Sorted files matching ``pattern`` in ``folder``, OS metadata files left out."""
    found = folder.rglob(pattern) if recursive else folder.glob(pattern)
    return sorted(p for p in found if p.is_file() and not is_os_metadata(p))


_LOCAL_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "your disk quota is exceeded",
                 errno.EFBIG: "the file is too large for this file system",
                 errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                 errno.EROFS: "the file system is read-only",
                 errno.ENAMETOOLONG: "the path or a file name is longer than this system allows",
                 errno.EMFILE: "too many open files", errno.ENOTDIR: "a part of the path is a file, not a folder",
                 errno.EISDIR: "it is a folder, not a file"}


def _local_problem(error: OSError) -> str:
    """A sentence for a local OSError (disk, quota, permissions, path length), naming the file."""
    what = _LOCAL_ERRNOS.get(error.errno, error.strerror or str(error))
    where = error.filename or "a file"
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        fix = "free some space, or choose a destination (--dest) on another disk"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "fix the permissions, or choose a destination (--dest) you can write to"
    elif error.errno == errno.ENAMETOOLONG:
        fix = "use shorter folder names (or a destination closer to the root of the disk)"
    else:
        fix = "check the path and try again"
    return f"{where}: {what} (a problem of this computer's disk or permissions, not of the data): {fix}."


@contextmanager
def _opened_source(source: Path, scratch: Path) -> Iterator[Path]:
    """Yield a folder for ``source``: the folder itself, or an archive extracted into
    ``scratch/extract`` (beside the destination, never the system temp folder). OS metadata
    members are not extracted; unsafe tar members (absolute paths, links leaving the
    archive) are refused."""
    source = Path(source)
    if source.is_dir():
        yield source
        return
    if not source.is_file():
        raise DatasetError(f"{source} does not exist: pass the downloaded archive or the folder it extracts to.")
    target = Path(scratch) / "extract"
    target.mkdir()
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                members = [m for m in archive.namelist() if not is_os_metadata(m)]
                archive.extractall(target, members=members)
        elif tarfile.is_tarfile(source):
            with tarfile.open(source) as archive:
                members = [m for m in archive.getmembers() if not is_os_metadata(m.name)]
                archive.extractall(target, members=members, filter="data")
        else:
            raise DatasetError(f"{source} is neither a folder nor a .zip/.tar archive: pass the "
                               f"downloaded archive or the folder it extracts to.")
    except _TAR_FILTER_ERROR as error:
        raise DatasetError(f"{source} holds an unsafe member ({error}): it would be written outside the "
                           f"extraction folder, so nothing was extracted. Use the official archive.") from None
    except OSError as error:
        if error.errno is not None:  # zipfile/tarfile errors carry no errno; the OS's do
            raise DatasetError(f"Extracting {source} failed: {_local_problem(error)}") from None
        raise DatasetError(f"{source} is a damaged archive ({error}): download it again.") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as error:
        raise DatasetError(f"{source} is a damaged archive ({error}): download it again.") from None
    yield target


def _find_dir(root: Path, names: tuple[str, ...], what: str, entry: PublicDataset) -> Path:
    """The first folder under ``root`` (root included) whose name is one of ``names``."""
    wanted = {n.lower() for n in names}
    candidates = [root] + sorted(p for p in root.rglob("*") if p.is_dir() and not is_os_metadata(p))
    for candidate in candidates:
        if candidate.name.lower() in wanted:
            return candidate
    raise DatasetError(f"no {what} folder ({'/'.join(names)}) found in {root}. Expected layout for "
                       f"{entry.name}: {entry.raw_layout}")


def _read_grey(path: Path) -> np.ndarray:
    """Read a raster image as float32 grey values (any bit depth, RGB averaged); refuse
    decompression bombs, arrays that are not 2D and non-finite values."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise DatasetError(
                        f"{path} declares {width}x{height} pixels, more than the limit of {MAX_IMAGE_PIXELS:,} "
                        f"(helpers.data.registry.MAX_IMAGE_PIXELS): it is probably a decompression bomb or "
                        f"not a radiograph; remove it.")
                array = np.asarray(image)
    except DatasetError:
        raise
    except Image.DecompressionBombError as error:
        raise DatasetError(f"{path} is refused as a decompression bomb ({error}): remove it.") from None
    except PermissionError as error:
        raise DatasetError(_local_problem(error)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise DatasetError(f"{path} cannot be decoded as an image ({error}): re-download or remove it.") from None
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3].astype(np.float64).mean(axis=-1)
    elif array.ndim == 3 and array.shape[-1] in (1, 2):
        array = array[..., 0]
    if array.ndim != 2:
        raise DatasetError(f"{path} has shape {array.shape}, expected a 2D image (grey or RGB): remove it or "
                           f"save it as a grey PNG.")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise DatasetError(f"{path} holds NaN or infinite values: it is damaged; re-export or remove it.")
    return array


def _read_binary(path: Path) -> np.ndarray:
    """Read a mask file that holds only 0/1 or only 0/255 as a boolean array."""
    values = _read_grey(path)
    unique = np.unique(values)
    found = set(unique.tolist())
    if not (found <= {0.0, 1.0} or found <= {0.0, 255.0}):
        shown = ", ".join(f"{v:g}" for v in unique[:6]) + (", ..." if unique.size > 6 else "")
        raise DatasetError(f"{path} is not a binary mask (values {shown}): masks must hold 0 for background "
                           f"and one value (1 or 255) for the lung.")
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


def _cxr_cases(entry: PublicDataset, root: Path) -> list[tuple[str, Path | None, list[Path | None]]]:
    """(case name, image, [mask parts]) for the raw CXR layouts; a missing image or mask
    part is None (a mask without its image is a case too, so that it is reported)."""
    if entry.name == "montgomery":
        images = _find_dir(root, ("CXR_png",), "image", entry)
        left = _find_dir(root, ("leftMask",), "left-lung mask", entry)
        right = _find_dir(root, ("rightMask",), "right-lung mask", entry)
        by_name = {p.name: p for p in _files(images, "*.png")}
        lefts = {p.name: p for p in _files(left, "*.png")}
        rights = {p.name: p for p in _files(right, "*.png")}
        return [(Path(name).stem, by_name.get(name), [lefts.get(name), rights.get(name)])
                for name in sorted(set(by_name) | set(lefts) | set(rights))]
    images = _find_dir(root, ("CXR_png", "images", "image", "img"), "image", entry)
    masks = _find_dir(root, ("masks", "mask", "ManualMask"), "mask", entry)
    by_stem = {p.stem: p for p in _files(images, "*.png")}
    masks_by_stem = {re.sub(r"_mask$", "", p.stem): p for p in _files(masks, "*.png")}
    return [(stem, by_stem.get(stem), [masks_by_stem.get(stem)])
            for stem in sorted(set(by_stem) | set(masks_by_stem))]


def _cxr_case(image_path: Path | None, parts: list[Path | None], size: int, name: str,
              root: Path) -> tuple[np.ndarray, np.ndarray, bool]:
    """Read, check and preprocess one radiograph; (image, mask, mask holds both values)."""
    if image_path is None:
        shown = ", ".join(str(p) for p in parts if p is not None)
        raise DatasetError(f"{shown} has no image ({name}.png) in {root}: add the image, or pass --skip-bad "
                           f"to leave this mask out.")
    missing = [i for i, p in enumerate(parts) if p is None]
    if missing:
        raise DatasetError(f"{image_path} has no mask" + (
            f" ({'left' if missing == [0] else 'right' if missing == [1] else 'left and right'} lung mask "
            f"missing)" if len(parts) > 1 else "") + ": add it, or pass --skip-bad to leave this image out.")
    image = _read_grey(image_path)
    mask = np.zeros(image.shape, dtype=bool)
    for part in parts:
        piece = _read_binary(part)
        if piece.shape != image.shape:
            raise DatasetError(f"{part} is {piece.shape[1]}x{piece.shape[0]} but its image {image_path} "
                               f"is {image.shape[1]}x{image.shape[0]}: they must match; fix or remove the pair.")
        mask |= piece
    image8, mask8 = preprocess_cxr(image, mask, size)
    return image8, mask8, bool(mask.any() and not mask.all())


def _prepare_cxr(entry, root, out, size, skip_bad, report):
    from tqdm.auto import tqdm

    cases = _cxr_cases(entry, root)
    if not cases:
        raise DatasetError(f"no .png images found in {root} for {entry.name}. Expected layout: {entry.raw_layout}")
    for name, image_path, parts in tqdm(cases, desc=f"prepare {entry.name}", unit="image"):
        try:
            image8, mask8, two_valued = _cxr_case(image_path, parts, size, name, root)
        except DatasetError as error:
            if not skip_bad:
                raise
            report.skipped.append((name, str(error)))
            continue
        atomic_write_bytes(out / "images" / f"{name}.png", _png_bytes(image8))
        atomic_write_bytes(out / "masks" / f"{name}.png", _png_bytes(mask8))
        report.written += 1
        report.two_valued += two_valued


# ------------------------------------------------------------------------------------- volumes

def _load_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The voxel values (the file's stored type, scaled if the header says so) and affine of
    a 3D NIfTI file; trailing axes of length 1 are dropped, any other shape is refused."""
    import nibabel as nib

    try:
        image = nib.load(str(path))
        array = np.asarray(image.dataobj)
        affine = image.affine
    except PermissionError as error:
        raise DatasetError(_local_problem(error)) from None
    except Exception as error:  # nibabel raises many types for damaged files
        raise DatasetError(f"{path} cannot be read as NIfTI ({type(error).__name__}: {error}): "
                           f"re-download or remove it.") from None
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise DatasetError(f"{path} has shape {array.shape} ({array.ndim}D), expected one 3D volume: it may hold "
                           f"several volumes or time points; save the one you mean as 3D, or remove the case.")
    return array, affine


def _find_nifti(folder: Path, stem: str) -> Path | None:
    for suffix in NIFTI_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _check_finite(path: Path, array: np.ndarray) -> None:
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        count = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise DatasetError(f"{path} holds {count} NaN or infinite voxels: they have no value to learn from; "
                           f"fix the file (e.g. numpy.nan_to_num with the background value) or remove the case.")


def _labels(path: Path, array: np.ndarray, allowed: set[int] | tuple[set[int], ...]) -> np.ndarray:
    """Check label values before any cast (finite, integer, in ``allowed``, or in one of the
    sets of a tuple) and return them as uint8."""
    _check_finite(path, array)
    values = np.unique(array)
    fractional = values[values != np.round(values)]
    if fractional.size:
        raise DatasetError(f"{path} holds non-integer label values ({', '.join(f'{v:g}' for v in fractional[:5])}"
                           f"{', ...' if fractional.size > 5 else ''}): labels must be whole numbers; this may be an "
                           f"image rather than a label file, or a resampled mask (use nearest-neighbour).")
    found = {int(v) for v in values}
    choices = allowed if isinstance(allowed, tuple) else (allowed,)
    if not any(found <= choice for choice in choices):
        expected = " or ".join(str(sorted(choice)) for choice in choices)
        extra = sorted(found - set().union(*choices)) or sorted(found)
        raise DatasetError(f"{path} holds label values {extra} besides the expected {expected}: check that this "
                           f"is the right file, or remove the case.")
    return array.astype(np.uint8)


def _hounsfield(path: Path, array: np.ndarray) -> np.ndarray:
    """CT values as int16 (rounded); refuse non-finite values and values outside int16."""
    _check_finite(path, array)
    low, high = float(array.min()), float(array.max())
    if low < HU_RANGE[0] or high > HU_RANGE[1]:
        raise DatasetError(f"{path} holds values from {low:g} to {high:g}, outside the int16 range "
                           f"{HU_RANGE[0]}..{HU_RANGE[1]} in which CT is stored: these are not Hounsfield units "
                           f"(check the file's scl_slope/scl_inter, or convert it again), or remove the case.")
    if array.dtype.kind in "fc":
        array = np.rint(array)
    return array.astype(np.int16)


_BINARY = ({0, 1}, {0, 255})


def _check_shape(path: Path, array: np.ndarray, reference: Path, shape: tuple) -> None:
    if array.shape != tuple(shape):
        raise DatasetError(f"{path} has shape {array.shape} but {reference} has {shape}: image and mask "
                           f"must share one voxel grid; fix or remove the case.")


def _nifti_stem(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


BRATS_MODALITIES = ("t1", "t1ce", "t2", "flair")


def _volume_cases(entry: PublicDataset, root: Path):
    """Yield (case name, callable that returns ({relative path: bytes}, mask has foreground)).
    Cases are found from any of their files, so a case that lacks its image or one
    modality is reported, not silently dropped."""
    if entry.kind == "lung_ct":
        names = ("ct", "lung", "Lung_L", "Lung_R")
        found = [p for p in _files(root, "*.nii*", recursive=True) if _nifti_stem(p) in names]
        for case in sorted({p.parent for p in found}):
            def make(case=case):
                ct = _find_nifti(case, "ct")
                lung = _find_nifti(case, "lung")
                parts = [lung] if lung else [_find_nifti(case, "Lung_L"), _find_nifti(case, "Lung_R")]
                if ct is None:
                    raise DatasetError(f"{case} has a lung mask but no ct.nii.gz (the CT volume): add it, or "
                                       f"pass --skip-bad to leave the case out.")
                if any(p is None for p in parts):
                    raise DatasetError(f"{case} has ct but no lung mask (lung.nii.gz, or Lung_L and Lung_R): "
                                       f"add it, or pass --skip-bad to leave the case out.")
                volume, affine = _load_volume(ct)
                hu = _hounsfield(ct, volume)
                mask = np.zeros(volume.shape, dtype=np.uint8)
                for part in parts:
                    labels, _ = _load_volume(part)
                    _check_shape(part, labels, ct, volume.shape)
                    mask |= (_labels(part, labels, _BINARY) > 0).astype(np.uint8)
                return ({f"{case.name}/ct.nii.gz": nifti_bytes(hu, affine),
                         f"{case.name}/lung.nii.gz": nifti_bytes(mask, affine)}, bool(mask.any() and not mask.all()))
            yield case.name, make
    elif entry.kind == "liver_ct":
        found = [p for p in _files(root, "ircad_e*.nii*", recursive=True)
                 if re.fullmatch(r"ircad_e.*_(orig|liver)", _nifti_stem(p))]
        stems = sorted({(p.parent, re.sub(r"_(orig|liver)$", "", _nifti_stem(p))) for p in found})
        for folder, stem in stems:
            def make(folder=folder, stem=stem):
                orig = _find_nifti(folder, f"{stem}_orig")
                liver = _find_nifti(folder, f"{stem}_liver")
                if orig is None:
                    raise DatasetError(f"{liver} has no {stem}_orig.nii.gz (the CT volume) beside it: add it, or "
                                       f"pass --skip-bad to leave the case out.")
                if liver is None:
                    raise DatasetError(f"{orig} has no {stem}_liver.nii.gz beside it: add it, or pass "
                                       f"--skip-bad to leave the case out.")
                volume, affine = _load_volume(orig)
                hu = _hounsfield(orig, volume)
                labels, _ = _load_volume(liver)
                _check_shape(liver, labels, orig, volume.shape)
                mask = (_labels(liver, labels, _BINARY) > 0).astype(np.uint8)
                return ({f"{stem}_orig.nii.gz": nifti_bytes(hu, affine),
                         f"{stem}_liver.nii.gz": nifti_bytes(mask, affine)}, bool(mask.any() and not mask.all()))
            yield stem, make
    else:  # brain_mri
        pattern = re.compile(r".*_(t1|t1ce|t2|flair|seg)|.*Segm")
        found = [p for p in _files(root, "*.nii*", recursive=True) if pattern.fullmatch(_nifti_stem(p))]
        for case in sorted({p.parent for p in found}):
            name = case.name
            def make(case=case, name=name):
                files = {}
                reference = None
                missing = [m for m in BRATS_MODALITIES if _find_nifti(case, f"{name}_{m}") is None]
                if missing:
                    raise DatasetError(f"{case} has no {', '.join(f'{name}_{m}.nii.gz' for m in missing)}: a BraTS "
                                       f"case needs all four modalities ({', '.join(BRATS_MODALITIES)}); add "
                                       f"{'it' if len(missing) == 1 else 'them'}, or pass --skip-bad to leave the "
                                       f"case out.")
                for modality in BRATS_MODALITIES:
                    path = _find_nifti(case, f"{name}_{modality}")
                    volume, affine = _load_volume(path)
                    if reference is None:
                        reference = (path, volume.shape)
                    _check_shape(path, volume, *reference)
                    _check_finite(path, volume)
                    volume = volume.astype(np.float32)
                    _check_finite(path, volume)  # float64 beyond float32's range becomes inf
                    files[f"{name}/{name}_{modality}.nii.gz"] = nifti_bytes(volume, affine)
                seg = _find_nifti(case, f"{name}_seg") or next(iter(_files(case, "*Segm.nii*")), None)
                if seg is None:
                    raise DatasetError(f"{case} has no {name}_seg.nii.gz (label file): add it, or pass "
                                       f"--skip-bad to leave the case out.")
                labels, affine = _load_volume(seg)
                _check_shape(seg, labels, *reference)
                labels = _labels(seg, labels, set(config.BRATS_LABELS))
                files[f"{name}/{name}_seg.nii.gz"] = nifti_bytes(labels, affine)
                return files, bool(labels.any() and not labels.all())
            yield name, make


def _prepare_volumes(entry, root, out, size, skip_bad, report):
    from tqdm.auto import tqdm

    cases = list(_volume_cases(entry, root))
    if not cases:
        raise DatasetError(f"no cases found in {root} for {entry.name}. Expected layout: {entry.raw_layout}")
    for name, make in tqdm(cases, desc=f"prepare {entry.name}", unit="case"):
        try:
            files, two_valued = make()
        except DatasetError as error:
            if not skip_bad:
                raise
            report.skipped.append((name, str(error)))
            continue
        for relative, payload in files.items():
            atomic_write_bytes(out / relative, payload)
        report.written += 1
        report.two_valued += two_valued


# ---------------------------------------------------------------------------------------- main

def _check_destination(source: Path, dest: Path, force: bool) -> None:
    """Refuse a destination that would touch the source, is a file, or is not empty (unless
    ``force``). Raises DatasetError; changes nothing."""
    src, dst = source.resolve(), dest.resolve()
    if dst == src or dst.is_relative_to(src) or src.is_relative_to(dst):
        relation = ("is the source" if dst == src else "is inside the source" if dst.is_relative_to(src)
                    else "contains the source")
        raise DatasetError(f"The destination {dest} {relation} {source}: preparing there would overwrite or delete "
                           f"the raw download, so nothing was changed (--force does not override this). "
                           f"Choose a destination outside {source}.")
    for folder in (dest, *dest.parents):
        if folder.exists() and not folder.is_dir():
            raise DatasetError(f"The destination {dest} cannot be created: {folder} is a file, not a folder. "
                               f"Choose another destination (--dest) or move that file away.")
        if folder.exists():
            break
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise DatasetError(f"{dest} is not empty: nothing was changed. Pass --force (force=True) to replace it, "
                           f"or choose another destination.")


def prepare(name: str, source: Path, dest: Path | None = None, *, size: int = config.CXR_IMAGE_SIZE,
            skip_bad: bool = False, force: bool = False) -> PrepareReport:
    """Convert the raw download ``source`` (archive or folder) of data set ``name`` into the
    course layout in ``dest`` (default ``data/<name>``) and return a :class:`PrepareReport`.

    Args:
        name: a registry name (``python -m helpers data list``).
        source: the downloaded archive or the folder it extracts to; never modified.
        dest: output folder; refused when it is, is inside or contains ``source``, or is a file.
        size: side in pixels of the prepared chest X-rays (volumes keep their grid).
        skip_bad: leave bad cases out and list them in the report instead of failing.
        force: replace a non-empty ``dest``.

    Returns:
        The report: cases written, cases skipped and why.

    Raises:
        DatasetError: a bad case (without ``skip_bad``), no usable case, masks that are all
            constant, a refused destination, or a local disk/permission/path problem; the
            message names the file. Nothing is left in ``dest`` or beside it when it fails.
    """
    entry = get(name)
    source = Path(source)
    dest = Path(dest) if dest else config.data_dir() / name
    if not 16 <= size <= 2048:
        raise DatasetError(f"size {size} is outside 16..2048 pixels.")
    try:
        _check_destination(source, dest, force)
        dest.parent.mkdir(parents=True, exist_ok=True)
        for leftover in remove_leftovers(dest.parent, f".{dest.name}.partial-*"):
            print(f"removed {leftover}, left by an interrupted run")
        report = PrepareReport(dataset=name, dest=dest)
        with owned_scratch(dest.parent, f".{dest.name}.partial-") as scratch:
            out = scratch / "out"
            out.mkdir()
            with _opened_source(source, scratch) as root:
                if entry.kind == "cxr":
                    _prepare_cxr(entry, root, out, size, skip_bad, report)
                else:
                    _prepare_volumes(entry, root, out, size, skip_bad, report)
            if report.written == 0:
                raise DatasetError(f"no usable case in {source} for {name}: nothing was written. "
                                   + "\n".join(f"{n}: {r}" for n, r in report.skipped[:5]))
            if report.two_valued == 0:
                what = "mask" if entry.kind != "brain_mri" else "label file"
                raise DatasetError(f"every {what} in {source} is constant (all background or all foreground): "
                                   f"these are not segmentations of {entry.title}; check that the mask files are "
                                   f"the right ones. Nothing was written.")
            metadata = {"prepared": name, "source": str(source), "size": size if entry.kind == "cxr" else None,
                        "written": report.written, "skipped": [list(s) for s in report.skipped]}
            (out / "prepared.json").write_text(json.dumps(metadata, indent=2) + "\n")
            if dest.exists():
                dest.rename(scratch / "replaced")  # removed with the scratch folder
            out.rename(dest)
    except OSError as error:
        raise DatasetError(f"prepare {name} failed: {_local_problem(error)}") from None
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
