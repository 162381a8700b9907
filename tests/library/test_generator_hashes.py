"""Golden hashes of the 3D generators (lung CT, liver CT, brain MRI), tied to each one's
``GENERATOR_VERSION``, as tests/datasets/test_data.py does for the chest X-rays.

A set on disk is regenerated only when its recorded version differs from the generator's, so a
generator whose output changes without a version bump leaves users on stale data. These tests
fail on such a change: if it is intended, bump the module's ``GENERATOR_VERSION`` and record
the new version and hash below (the failure prints both).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from helpers.data import brain_mri, liver_ct, lung_ct


def volumes_sha256(*arrays) -> str:
    """sha256 over dtype, shape and bytes of each array; floats rounded to 1e-3 first (the
    generators' float outputs are intensities, where the last bits say nothing)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = np.round(array.astype(np.float64), 3)
        digest.update(str(array.dtype).encode() + str(array.shape).encode() + array.tobytes())
    return digest.hexdigest()


def _lung():
    return volumes_sha256(*lung_ct.make_case(2, shape=(32, 32, 24)))


def _lung_full_design():
    return volumes_sha256(*lung_ct.make_case(1, shape=(48, 48, 32), design_shape=(24, 24, 16)))


def _liver():
    return volumes_sha256(*liver_ct.make_case(3, shape=(48, 48, 16)))


def _brain():
    modalities, seg, affine = brain_mri.make_case(4, shape=(32, 32, 24))
    return volumes_sha256(*(modalities[name] for name in sorted(modalities)), seg, affine)


#: (module, what is hashed, version the hash was recorded for, sha256)
RECORDED = {
    "lung_ct": (lung_ct, _lung, "2.0", "027d6fa61433ca0157fb410f8828acd3bb29c37b26b4953bd640bbe7af64f448"),
    "lung_ct_full": (lung_ct, _lung_full_design, "2.0", "2aa68b1a329e709e8ce60d6aaaff450feaa99fb45bfb169c9b59389aa8d6fce7"),
    "liver_ct": (liver_ct, _liver, "1.0", "25105db832c782c3e860b65d8b0e52c9e718900fd151fae58009d0a5b0fd4abd"),
    "brain_mri": (brain_mri, _brain, "1.0", "37a9c7b3e49c91fdc471d622d324143d676543017df11c5f86c1f63d6cd19da7"),
}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_generator_output_is_tied_to_its_version(name):
    module, compute, version, expected = RECORDED[name]
    got = compute()
    assert (module.GENERATOR_VERSION, got) == (version, expected), (
        f"{module.__name__}: version {module.GENERATOR_VERSION!r} makes volumes with sha256 {got}; recorded: "
        f"version {version!r}, {expected}. If the generator changed on purpose, bump its GENERATOR_VERSION "
        f"(so that sets on disk are regenerated) and record the new version and hash in {__file__}."
    )


def test_the_hash_sees_a_one_voxel_change():
    ct, lung, affine = lung_ct.make_case(2, shape=(32, 32, 24))
    changed = lung.copy()
    changed[0, 0, 0] ^= 1
    assert volumes_sha256(ct, lung, affine) != volumes_sha256(ct, changed, affine)
