"""Data sets of the course: the embedded synthetic sets, loading and validation.

``ensure_dataset(name)`` generates a synthetic set on first use (deterministically, from
the course seed) into ``data/<name>/`` in the file layout of the matching public data
set, and reuses it afterwards. Which generator makes which set:

=====================  ==========================================  ===========================
name                   layout                                      like
=====================  ==========================================  ===========================
``cxr_synthetic``      ``images/*.png`` + ``masks/*.png``          Montgomery / Shenzhen CXR
``lung_ct_synthetic``  ``<case>/ct.nii.gz`` + ``<case>/lung.nii.gz``  LCTSC (converted)
``liver_ct_synthetic`` ``ircad_eNN_orig.nii.gz`` + ``ircad_eNN_liver.nii.gz``  3D-IRCADb
``brats_synthetic``    ``BraTS20_Training_NNN/..._{t1,t1ce,t2,flair,seg}.nii.gz``  BraTS 2020
=====================  ==========================================  ===========================

Modules: :mod:`~helpers.data.io` reads, writes and checks every file (PNG, masks, NIfTI) and
documents the ``(x, y, z)`` axis convention of volumes; the generators ``cxr``, ``lung_ct``,
``liver_ct``, ``brain_mri``; for the public sets :mod:`~helpers.data.catalogue` (what is
known), :mod:`~helpers.data.download`, :mod:`~helpers.data.archives` (extraction),
:mod:`~helpers.data.converters` (raw layout -> course layout) and
:mod:`~helpers.data.registry` (``prepare``, ``fetch``); :mod:`~helpers.data._store` writes
generated sets safely (atomic files, a lock that dies with its owner).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from helpers import config
from helpers.data._store import DatasetError
from helpers.data.io import (from_depth_first, load_nifti, load_pairs, patient_id, read_image, read_mask,
                             save_nifti, to_depth_first)

#: Synthetic data set name -> module of ``helpers.data`` that generates it. Each module
#: has ``generate(folder, *, force=False, **params) -> Path`` and a ``DEFAULTS`` dict.
GENERATORS = {
    "cxr_synthetic": "cxr",
    "lung_ct_synthetic": "lung_ct",
    "liver_ct_synthetic": "liver_ct",
    "brats_synthetic": "brain_mri",
}

__all__ = [
    "DatasetError", "GENERATORS", "dataset_dir", "ensure_dataset",
    "from_depth_first", "load_nifti", "load_pairs", "patient_id", "read_image", "read_mask", "save_nifti",
    "to_depth_first",
]


def dataset_dir(name: str) -> Path:
    """Folder of data set ``name`` under the course data folder (``data/<name>``)."""
    return config.data_dir() / name


def ensure_dataset(name: str = "cxr_synthetic", *, folder: Path | None = None,
                   force: bool = False, **params) -> Path:
    """Return the folder of data set ``name``, generating it first if needed.

    Synthetic sets are generated into ``data/<name>/`` (or ``folder``) on first use and
    reused afterwards; ``params`` (e.g. ``n_images=100, size=128, seed=1``) override the
    generator's defaults, and a request with other parameters than the set on disk
    regenerates it. Files the generator did not write are never deleted or overwritten
    unless ``force=True``. For a real data set, pass its name as prepared with
    ``python -m helpers data prepare`` and the prepared folder is checked and returned.
    """
    if name in GENERATORS:
        module = importlib.import_module(f"helpers.data.{GENERATORS[name]}")
        return module.generate(Path(folder) if folder else dataset_dir(name), force=force, **params)
    target = Path(folder) if folder else dataset_dir(name)
    if target.is_dir() and any(target.iterdir()):
        return target  # prepared with `python -m helpers data prepare`, or copied in by hand
    from helpers.data import registry

    if name in registry.DATASETS:
        entry = registry.DATASETS[name]
        how = (f"python -m helpers data download {name} --prepare" if entry.url
               else f"python -m helpers data prepare {name} PATH/TO/DOWNLOAD")
        raise DatasetError(
            f"The public data set {name!r} is not prepared in {target}. Run `{how}` "
            f"(`python -m helpers data info {name}` says where to get it), or set DATASET back to a "
            f"synthetic set: {', '.join(sorted(GENERATORS))}."
        )
    known = ", ".join(sorted(GENERATORS) + sorted(registry.DATASETS))
    raise DatasetError(
        f"Unknown data set {name!r}: known names are {known}. To use a folder of your own in the "
        f"course layout, pass folder=PATH."
    )
