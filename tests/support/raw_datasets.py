"""Small raw data sets in the layouts the public releases ship (Montgomery, Shenzhen, LCTSC,
3D-IRCADb, BraTS 2020), written by the tests that prepare them (``registry.prepare``) and by
the tests of faulty inputs. Drawn from one seeded generator, ``RNG``."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

RNG = np.random.default_rng(0)


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _radiograph(height=60, width=50, border=4, bits16=False):
    image = RNG.uniform(0.3, 1.0, (height, width))
    lungs = np.zeros((height, width), dtype=bool)
    lungs[15:45, 8:22] = True
    lungs[15:45, 28:42] = True
    image[lungs] *= 0.3
    image[:border], image[-border:] = 0, 0
    if bits16:
        return (image * 4095).astype(np.uint16), lungs
    return (image * 255).astype(np.uint8), lungs


def make_montgomery(root: Path, n=3) -> Path:
    base = root / "MontgomerySet"
    for i in range(n):
        name = f"MCUCXR_{i + 1:04d}_{i % 2}.png"
        image, lungs = _radiograph(bits16=True)
        _png(base / "CXR_png" / name, image)
        left, right = lungs.copy(), lungs.copy()
        left[:, 25:], right[:, :25] = False, False
        _png(base / "ManualMask" / "leftMask" / name, left.astype(np.uint8) * 255)
        _png(base / "ManualMask" / "rightMask" / name, right.astype(np.uint8) * 255)
    return base


def make_shenzhen(root: Path, n=3, unmasked=1) -> Path:
    for i in range(n + unmasked):
        name = f"CHNCXR_{i + 1:04d}_0"
        image, lungs = _radiograph()
        _png(root / "CXR_png" / f"{name}.png", np.stack([image] * 3, axis=-1))  # RGB like some releases
        if i < n:
            _png(root / "masks" / f"{name}_mask.png", lungs.astype(np.uint8) * 255)
    return root


def _nifti(path: Path, array: np.ndarray, spacing=(0.8, 0.8, 2.5), compress=True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*spacing, 1.0])
    image = nib.Nifti1Image(array, affine)
    if compress:
        path.write_bytes(gzip.compress(image.to_bytes()))
    else:
        path.write_bytes(image.to_bytes())


def make_lctsc(root: Path, n=2) -> Path:
    for i in range(n):
        case = root / f"LCTSC-Train-S1-{i + 1:03d}"
        ct = RNG.integers(-1000, 400, (16, 16, 8)).astype(np.int16)
        _nifti(case / "ct.nii.gz", ct)
        left = np.zeros(ct.shape, np.uint8)
        left[2:7, 3:12, 2:6] = 1
        right = np.zeros(ct.shape, np.uint8)
        right[9:14, 3:12, 2:6] = 1
        _nifti(case / "Lung_L.nii.gz", left)
        _nifti(case / "Lung_R.nii.gz", right)
    return root


def make_ircad(root: Path, n=2) -> Path:
    for i in range(n):
        ct = RNG.integers(-200, 300, (16, 16, 8)).astype(np.int16)
        liver = np.zeros(ct.shape, np.uint8)
        liver[3:10, 4:12, 1:7] = 1
        _nifti(root / f"ircad_e{i + 1:02d}_orig.nii.gz", ct)
        _nifti(root / f"ircad_e{i + 1:02d}_liver.nii.gz", liver)
    return root


def make_brats(root: Path, n=2, quirk=True) -> Path:
    for i in range(n):
        name = f"BraTS20_Training_{i + 1:03d}"
        case = root / name
        for modality in ("t1", "t1ce", "t2", "flair"):
            _nifti(case / f"{name}_{modality}.nii", RNG.uniform(0, 1000, (16, 16, 8)).astype(np.float32),
                   spacing=(1, 1, 1), compress=False)
        seg = np.zeros((16, 16, 8), np.uint8)
        seg[4:12, 4:12, 2:6] = 2
        seg[6:10, 6:10, 3:5] = 4
        seg[7:9, 7:9, 3:5] = 1
        seg_name = "W39_1998.09.19_Segm.nii" if (quirk and i == n - 1) else f"{name}_seg.nii"
        _nifti(case / seg_name, seg, spacing=(1, 1, 1), compress=False)
    return root


def _zip(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(folder.parent))
    return archive
