"""The generator contract of helpers/data/__init__.py, checked on all four generators: the
same names and keyword-only arguments, cases numbered from 1 as in the file names, and
``make_case(number)`` giving exactly what ``generate`` writes and ``load_cases`` /
``read_case`` read back."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from helpers.data import cxr, lung_ct, liver_ct, brain_mri

GENERATORS = {
    "cxr": (cxr, "n_images", "size", 6, 48),
    "lung_ct": (lung_ct, "n_cases", "shape", 2, (32, 32, 24)),
    "liver_ct": (liver_ct, "n_cases", "shape", 2, (48, 48, 12)),
    "brain_mri": (brain_mri, "n_cases", "shape", 2, (32, 32, 24)),
}


@pytest.fixture(scope="module", params=sorted(GENERATORS))
def generated(request, tmp_path_factory):
    module, count, grid, n, size = GENERATORS[request.param]
    folder = module.generate(tmp_path_factory.mktemp(request.param) / "set", **{count: n, grid: size}, seed=5)
    return module, grid, size, folder


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_names_and_keyword_only_arguments(name):
    module, count, grid, _, _ = GENERATORS[name]
    for attribute in ("GENERATOR_VERSION", "DEFAULTS", "generate", "case_name", "make_case", "load_cases",
                      "read_case"):
        assert hasattr(module, attribute), f"helpers.data.{name} has no {attribute}"
    assert {count, grid, "seed"} <= set(module.DEFAULTS)
    generate = inspect.signature(module.generate).parameters
    assert list(generate)[0] == "folder"
    assert all(generate[p].kind is inspect.Parameter.KEYWORD_ONLY
               for p in ("force", count, grid, "seed", "workers"))
    make = inspect.signature(module.make_case).parameters
    assert list(make)[0] == "number"
    assert make[grid].kind is make["seed"].kind is inspect.Parameter.KEYWORD_ONLY
    with pytest.raises((ValueError, TypeError)):
        module.make_case(0, **{grid: GENERATORS[name][4]})


def test_case_one_is_the_first_file_and_make_case_is_what_generate_wrote(generated):
    module, grid, size, folder = generated
    cases = module.load_cases(folder)
    first = cases[0]
    assert module.case_name(1) in str(first[0] if not isinstance(first[0], list) else first[0][0])
    assert module.case_name(2) not in str(first)
    made = module.make_case(1, **{grid: size}, seed=5)
    read = module.read_case(*first)
    if module is cxr:
        image, mask = made
        np.testing.assert_array_equal(read[0], image)
        np.testing.assert_array_equal(read[1], mask)
        return
    image, mask, affine = made
    if module is brain_mri:
        stacked = np.stack([image[m] for m in brain_mri.MODALITIES], axis=-1)
        np.testing.assert_array_equal(read[0], stacked)
        np.testing.assert_array_equal(read[1], mask)
        return
    np.testing.assert_array_equal(read[0], image.astype(np.float32))
    np.testing.assert_array_equal(read[1], mask)
    np.testing.assert_allclose(read[2], affine)
