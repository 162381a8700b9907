"""The catalogue of public data sets the course can use: official page, licence, citation,
the raw layout that ``prepare`` expects and, where one is known, a direct download URL.

``python -m helpers data list`` and ``info NAME`` print it; :mod:`helpers.data.registry`
prepares the sets, :mod:`helpers.data.converters` turns each raw layout into the course's.
"""

from __future__ import annotations

from dataclasses import dataclass


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
        licence="Images public, for research and education; lung masks (Stirenko et al.) CC BY-NC-SA 4.0. Cite both papers below.",
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
        name="lctsc", title="Lung CT Segmentation Challenge 2017 (TCIA)", kind="lung_ct",
        lessons="06", homepage="https://www.cancerimagingarchive.net/collection/lctsc/",
        licence="CC BY 3.0 (TCIA); cite the data set and TCIA.",
        citation="Yang J. et al. Data from Lung CT Segmentation Challenge. The Cancer Imaging Archive, 2017. "
                 "doi:10.7937/K9/TCIA.2017.3r3fvz08",
        raw_layout="the TCIA download as it comes (DICOM: per patient a CT series and an RTSTRUCT whose "
                   "Lung_L/Lung_R contours are rasterised onto the CT grid and merged; any folder layout, e.g. "
                   "LCTSC/LCTSC-Train-S1-001/<study>/<series>/1-NNN.dcm), or NIfTI conversions: <case>/ct.nii.gz "
                   "with <case>/lung.nii.gz, or <case>/Lung_L.nii.gz + <case>/Lung_R.nii.gz",
    ),
    "ircad": PublicDataset(
        name="ircad", title="3D-IRCADb-01 liver CT", kind="liver_ct", lessons="07",
        homepage="https://www.ircad.fr/research/data-sets/liver-segmentation-3d-ircadb-01/",
        licence="Free for research and education (CC BY-NC-SA 4.0); cite IRCAD.",
        citation="Soler L. et al. 3D image reconstruction for comparison of algorithm database: "
                 "a patient-specific anatomical and medical image database. IRCAD, 2010.",
        raw_layout="the download as it comes: 3Dircadb1.N/PATIENT_DICOM/ + 3Dircadb1.N/MASKS_DICOM/liver/ "
                   "(DICOM; unpacked, or the PATIENT_DICOM.zip and MASKS_DICOM.zip each patient folder ships), "
                   "or NIfTI conversions: ircad_eNN_orig.nii.gz + ircad_eNN_liver.nii.gz in one folder",
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
