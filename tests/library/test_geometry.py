"""Tests of helpers.geometry: spacing, orientation and resampling, against nibabel's own
functions (orientations, as_closest_canonical, processing.resample_from_to) on flipped,
permuted, rotated and oblique affines."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from nibabel import processing
from nibabel.orientations import aff2axcodes

from helpers import geometry
from helpers.data import lung_ct


def _rotation(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    i, j = [a for a in range(3) if a != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _affine(linear, origin=(10.0, -20.0, 30.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = origin
    return affine


SPACING = np.array([0.7, 0.9, 2.5])
PERMUTE = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float)       # i -> y, j -> z, k -> x

AFFINES = {
    "RAS": _affine(np.diag(SPACING)),
    "LPS (DICOM-like)": _affine(np.diag(SPACING * [-1, -1, 1])),
    "all flipped": _affine(np.diag(-SPACING)),
    "permuted": _affine(PERMUTE @ np.diag(SPACING)),
    "permuted and flipped": _affine(PERMUTE @ np.diag(SPACING * [1, -1, -1])),
    "rotated 30 deg about z": _affine(_rotation(2, 30) @ np.diag(SPACING)),
    "oblique (rotated about two axes), flipped": _affine(
        _rotation(0, 20) @ _rotation(1, -35) @ np.diag(SPACING * [-1, 1, -1])),
    "rotated 120 deg about z, flipped": _affine(_rotation(2, 120) @ np.diag(SPACING * [1, -1, 1])),
}

SHAPE = (5, 7, 4)           # asymmetric on purpose: a transposed axis cannot pass


def _volume(shape=SHAPE, channels: int = 0) -> np.ndarray:
    """Every voxel holds a different value that encodes its index."""
    grid = np.indices(shape).astype(np.float32)
    volume = grid[0] * 100 + grid[1] * 10 + grid[2]
    if channels:
        volume = np.stack([volume + 1000 * c for c in range(channels)], axis=-1)
    return volume


# --------------------------------------------------------------------------- spacing

@pytest.mark.parametrize("name", sorted(AFFINES))
def test_spacing_is_the_column_norms_and_matches_nibabel_zooms(name):
    affine = AFFINES[name]
    spacing = geometry.voxel_spacing(affine)
    np.testing.assert_allclose(spacing, SPACING, rtol=1e-12)
    image = nib.Nifti1Image(np.zeros(SHAPE, np.float32), affine)
    np.testing.assert_allclose(spacing, image.header.get_zooms(), rtol=1e-6)
    # the lung CT module's own spacing agrees (it must not read the diagonal either)
    np.testing.assert_allclose(lung_ct.voxel_spacing(affine), spacing, rtol=1e-12)


def test_spacing_is_not_the_diagonal_of_a_rotated_affine():
    affine = AFFINES["rotated 30 deg about z"]
    wrong = np.abs(np.diag(affine)[:3])
    assert not np.allclose(wrong, SPACING)                       # what a diagonal read gives
    np.testing.assert_allclose(geometry.voxel_spacing(affine), SPACING)
    # a permuted affine has zeros on the diagonal: the spacing is still there
    assert np.diag(AFFINES["permuted"])[:3].tolist() == [0, 0, 0]
    np.testing.assert_allclose(geometry.voxel_spacing(AFFINES["permuted"]), SPACING)


def test_median_spacing():
    affines = [_affine(np.diag([1.0, 2.0, 3.0])), _affine(_rotation(2, 40) @ np.diag([0.5, 0.5, 5.0])),
               _affine(np.diag([-0.8, -0.8, 2.0]))]
    np.testing.assert_allclose(geometry.median_spacing(affines), [0.8, 0.8, 3.0])
    with pytest.raises(ValueError, match="no affines"):
        geometry.median_spacing([])


@pytest.mark.parametrize("bad, message", [(np.eye(3), "4x4"), (np.zeros((4, 4)), "singular"),
                                          (np.full((4, 4), np.nan), "NaN")])
def test_a_bad_affine_is_refused_with_the_reason(bad, message):
    with pytest.raises(ValueError, match=message):
        geometry.voxel_spacing(bad)


# --------------------------------------------------------------------------- orientation

@pytest.mark.parametrize("name", sorted(AFFINES))
def test_orientation_matches_nibabel(name):
    assert geometry.orientation(AFFINES[name]) == "".join(aff2axcodes(AFFINES[name]))


def test_the_course_files_are_lps():
    _, _, affine = lung_ct.make_case(1, shape=(16, 16, 8), seed=3)
    assert geometry.orientation(affine) == "LPS"


@pytest.mark.parametrize("name", sorted(AFFINES))
@pytest.mark.parametrize("channels", [0, 2])
def test_to_canonical_equals_nibabel_as_closest_canonical(name, channels):
    affine = AFFINES[name]
    volume = _volume(channels=channels)
    expected = nib.as_closest_canonical(nib.Nifti1Image(volume, affine))
    array, canonical_affine = geometry.to_canonical(volume, affine)
    np.testing.assert_array_equal(array, np.asarray(expected.dataobj))
    np.testing.assert_allclose(canonical_affine, expected.affine, atol=1e-12)
    assert geometry.orientation(canonical_affine) == "RAS"
    assert array.shape[3:] == volume.shape[3:]


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_every_voxel_keeps_its_place_in_the_world(name):
    affine = AFFINES[name]
    volume = _volume()
    array, new_affine = geometry.to_canonical(volume, affine)
    new_index = np.indices(array.shape).reshape(3, -1)
    value = array.reshape(-1)
    old_index = np.stack([value // 100, (value // 10) % 10, value % 10]).astype(float)
    world_new = new_affine[:3, :3] @ new_index + new_affine[:3, 3:]
    world_old = affine[:3, :3] @ old_index + affine[:3, 3:]
    np.testing.assert_allclose(world_new, world_old, atol=1e-9)


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_from_canonical_undoes_to_canonical_exactly(name):
    affine = AFFINES[name]
    for volume in (_volume(), _volume(channels=3), (_volume() % 3).astype(np.uint8)):
        canonical, canonical_affine = geometry.to_canonical(volume, affine)
        back = geometry.from_canonical(canonical, affine)
        np.testing.assert_array_equal(back, volume)
        assert back.dtype == volume.dtype
        # reorienting to the original codes gives the original affine back as well
        again, again_affine = geometry.reorient(canonical, canonical_affine, geometry.orientation(affine))
        np.testing.assert_array_equal(again, volume)
        np.testing.assert_allclose(again_affine, affine, atol=1e-12)


def test_reorient_to_lps_and_bad_codes():
    array, affine = geometry.reorient(_volume(), AFFINES["RAS"], "lps")
    assert geometry.orientation(affine) == "LPS"
    np.testing.assert_array_equal(array, _volume()[::-1, ::-1, :])
    for codes in ("RAX", "RRS", "RA", "SAR!"):
        with pytest.raises(ValueError, match="L/R, P/A and I/S"):
            geometry.reorient(_volume(), AFFINES["RAS"], codes)
    assert geometry.reorient(_volume(), AFFINES["RAS"], "SAR")[0].shape == SHAPE[::-1]
    with pytest.raises(ValueError, match="three spatial axes"):
        geometry.to_canonical(np.zeros((4, 4)), AFFINES["RAS"])


# --------------------------------------------------------------------------- resampling

def _smooth_volume(shape) -> np.ndarray:
    grid = np.indices(shape).astype(np.float64)
    return (np.sin(grid[0] / 2.0) + np.cos(grid[1] / 3.0) + grid[2] / 4.0).astype(np.float32)


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_resample_to_spacing_sets_the_spacing_and_keeps_the_directions(name):
    affine = AFFINES[name]
    target = (1.4, 0.45, 1.0)
    volume = _smooth_volume((10, 9, 6))
    array, new_affine = geometry.resample_to_spacing(volume, affine, target)
    np.testing.assert_allclose(geometry.voxel_spacing(new_affine), target, rtol=1e-12)
    assert array.shape == (5, 18, 15)                  # round(n * old / new)
    assert array.dtype == np.float32
    directions = affine[:3, :3] / SPACING
    np.testing.assert_allclose(new_affine[:3, :3] / np.asarray(target), directions, atol=1e-12)
    # the centre of the field of view stays where it was
    centre = lambda a, n: a[:3, :3] @ ((np.asarray(n) - 1) / 2) + a[:3, 3]  # noqa: E731
    np.testing.assert_allclose(centre(new_affine, array.shape), centre(affine, volume.shape), atol=1e-9)


@pytest.mark.parametrize("name", sorted(AFFINES))
@pytest.mark.parametrize("order", [0, 1, 3])
def test_resample_to_spacing_equals_nibabel_resample_from_to(name, order):
    affine = AFFINES[name]
    volume = _smooth_volume((10, 9, 6))
    array, new_affine = geometry.resample_to_spacing(volume, affine, (1.1, 0.6, 1.7), order=order)
    expected = np.asarray(processing.resample_from_to(nib.Nifti1Image(volume, affine), (array.shape, new_affine),
                                                      order=order, mode="nearest").dataobj)
    compared = np.ones(array.shape, dtype=bool)
    if order == 0:
        # Nearest neighbour is ambiguous where a sample falls half-way between two voxels:
        # rounding error in the two affine products decides which neighbour wins, differently
        # in nibabel and here. Compare everywhere else, and check the ties took a neighbour's value.
        source = _source_coordinates(array.shape, new_affine, affine)
        tie = np.any(np.abs(source - np.floor(source) - 0.5) < 1e-6, axis=-1)
        assert tie.mean() < 0.25, "the test grid is mostly ties; pick another target spacing"
        compared = ~tie
        assert np.all(np.isin(array[tie], volume)), "a tied sample did not take a voxel's value"
    np.testing.assert_allclose(array[compared], expected[compared], atol=1e-5)


def _source_coordinates(shape, new_affine, affine) -> np.ndarray:
    """Continuous voxel coordinates in the source grid of every voxel of the new grid."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(np.float64)
    mapping = np.linalg.inv(affine) @ new_affine
    return index @ mapping[:3, :3].T + mapping[:3, 3]


def test_resampling_onto_another_orientation_equals_nibabel_and_a_pure_reorientation():
    """The general (non-diagonal) path: onto the canonical grid of a rotated, flipped volume."""
    affine = AFFINES["rotated 120 deg about z, flipped"]
    volume = _volume()
    canonical, canonical_affine = geometry.to_canonical(volume, affine)
    for order in (0, 1):
        got = geometry.resample_to_grid(volume, affine, canonical.shape, canonical_affine, order=order)
        # a permutation with flips is an exact resampling: nothing is interpolated
        np.testing.assert_allclose(got, canonical, atol=1e-3)
    oblique = _affine(_rotation(2, 25) @ np.diag([0.8, 0.8, 2.0]), origin=(3.0, -1.0, 2.0))
    got = geometry.resample_to_grid(volume, affine, (6, 6, 5), oblique, order=1)
    expected = processing.resample_from_to(nib.Nifti1Image(volume, affine), ((6, 6, 5), oblique),
                                           order=1, mode="nearest")
    np.testing.assert_allclose(got, np.asarray(expected.dataobj), atol=1e-3)


def test_linear_interpolation_is_exact_for_a_linear_field():
    """Order 1 reproduces a field that is linear in millimetres at every new voxel whose
    position lies inside the original grid."""
    affine = AFFINES["oblique (rotated about two axes), flipped"]
    shape = (8, 9, 7)
    index = np.indices(shape).reshape(3, -1).astype(float)
    world = affine[:3, :3] @ index + affine[:3, 3:]
    gradient = np.array([0.3, -0.2, 0.5])
    volume = (gradient @ world).reshape(shape)
    array, new_affine = geometry.resample_to_spacing(volume, affine, (0.5, 1.3, 1.9))
    new_index = np.indices(array.shape).reshape(3, -1).astype(float)
    new_world = new_affine[:3, :3] @ new_index + new_affine[:3, 3:]
    source = np.linalg.solve(affine[:3, :3], new_world - affine[:3, 3:])
    inside = np.all((source >= 0) & (source <= (np.asarray(shape) - 1)[:, None]), axis=0)
    assert inside.sum() > 0.5 * inside.size
    np.testing.assert_allclose(array.reshape(-1)[inside], (gradient @ new_world)[inside], atol=1e-4)


def test_labels_keep_their_values_and_dtype_with_order_0():
    rng = np.random.default_rng(0)
    labels = rng.choice(np.array([0, 1, 4], np.uint8), size=(6, 7, 5))
    affine = AFFINES["LPS (DICOM-like)"]
    array, _ = geometry.resample_to_spacing(labels, affine, (0.33, 0.5, 1.1), order=0)
    assert array.dtype == np.uint8 and set(np.unique(array)) <= {0, 1, 4}
    mask, _ = geometry.resample_to_spacing(labels > 0, affine, 1.0, order=0)
    assert mask.dtype == bool
    # integer images interpolated linearly come back as float32
    assert geometry.resample_to_spacing(labels.astype(np.int16), affine, 1.0)[0].dtype == np.float32


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_a_prediction_goes_back_onto_the_original_grid(name):
    """Upsample three times (every original voxel centre is a new voxel centre), then back:
    labels come back exactly, a smooth image closely."""
    affine = AFFINES[name]
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=(5, 6, 4)).astype(np.uint8)
    fine, fine_affine = geometry.resample_to_spacing(labels, affine, SPACING / 3, order=0)
    assert fine.shape == (15, 18, 12)
    back = geometry.resample_to_grid(fine, fine_affine, labels.shape, affine, order=0)
    np.testing.assert_array_equal(back, labels)
    image = _smooth_volume((12, 11, 8))
    working, working_affine = geometry.resample_to_spacing(image, affine, (1.0, 1.0, 1.0))
    probabilities = np.stack([working, 2 * working], axis=-1)       # channels travel along
    back = geometry.resample_to_grid(probabilities, working_affine, image.shape, affine)
    assert back.shape == image.shape + (2,)
    np.testing.assert_allclose(back[1:-1, 1:-1, 1:-1, 0], image[1:-1, 1:-1, 1:-1], atol=0.35)
    np.testing.assert_allclose(back[..., 1], 2 * back[..., 0], rtol=1e-5)


def test_the_whole_pipeline_round_trip_on_a_course_case():
    ct, lung, affine = lung_ct.make_case(1, shape=(24, 20, 10), seed=3)
    canonical, canonical_affine = geometry.to_canonical(lung, affine)
    working, working_affine = geometry.resample_to_spacing(canonical, canonical_affine,
                                                           geometry.voxel_spacing(canonical_affine) / 3, order=0)
    back = geometry.resample_to_grid(working, working_affine, canonical.shape, canonical_affine, order=0)
    np.testing.assert_array_equal(geometry.from_canonical(back, affine), lung)


@pytest.mark.parametrize("kwargs, message", [({"spacing": 0}, "positive"), ({"spacing": (1, 2)}, "three"),
                                             ({"spacing": 1, "order": 7}, "order"),
                                             ({"spacing": 1, "order": 1.5}, "order")])
def test_bad_resampling_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        geometry.resample_to_spacing(_volume(), AFFINES["RAS"], **kwargs)


def test_importing_geometry_has_no_side_effects():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, helpers.geometry; "
                          "print(sorted(m for m in ('keras', 'tensorflow', 'scipy') if m in sys.modules))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("shape, spacing", [((9, 1, 6), (0.4, 0.3, 1.3)), ((2, 7, 5), (2.0, 0.35, 0.8)),
                                            ((6, 5, 4), SPACING)])
def test_the_fast_axis_aligned_path_equals_scipy(shape, spacing):
    """Linear resampling between axis-aligned grids goes one axis at a time; it must give
    scipy's answer, also with a single-voxel axis and with channels."""
    from scipy import ndimage

    affine = AFFINES["LPS (DICOM-like)"]
    volume = np.stack([_smooth_volume(shape), -3 * _smooth_volume(shape)], axis=-1)
    new_shape, new_affine = geometry.resampled_grid(shape, affine, spacing)
    got = geometry.resample_to_grid(volume, affine, new_shape, new_affine)
    voxel_map = np.linalg.solve(affine, new_affine)
    for channel in range(2):
        expected = ndimage.affine_transform(volume[..., channel].astype(np.float64), np.diag(voxel_map[:3, :3]),
                                            offset=voxel_map[:3, 3], output_shape=new_shape, order=1, mode="nearest")
        np.testing.assert_allclose(got[..., channel], expected, atol=1e-5)


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_back_onto_the_file_grid_in_one_step_equals_the_two_step_route(name):
    affine = AFFINES[name]
    image = _smooth_volume((9, 8, 6))
    canonical, canonical_affine = geometry.to_canonical(image, affine)
    working, working_affine = geometry.resample_to_spacing(canonical, canonical_affine, (1.2, 0.5, 2.0))
    for order in (0, 1):
        two_steps = geometry.from_canonical(
            geometry.resample_to_grid(working, working_affine, canonical.shape, canonical_affine, order=order), affine)
        one_step = geometry.resample_to_grid(working, working_affine, image.shape, affine, order=order)
        np.testing.assert_allclose(one_step, two_steps, atol=1e-4)


def test_round_trip_goes_to_the_grid_and_back():
    """geometry.round_trip: the volume's own shape, the two resamplings it stands for."""
    from helpers import geometry

    rng = np.random.default_rng(0)
    volume = rng.random((12, 10, 7)).astype(np.float32)
    affine = np.diag([-0.9, -0.9, 2.5, 1.0])
    shape, grid = geometry.resampled_grid(volume.shape, affine, 2.0)
    back = geometry.round_trip(volume, affine, shape, grid)
    assert back.shape == volume.shape
    expected = geometry.resample_to_grid(geometry.resample_to_grid(volume, affine, shape, grid), grid, volume.shape,
                                         affine)
    np.testing.assert_allclose(back, expected)
