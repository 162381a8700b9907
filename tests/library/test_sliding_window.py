"""Tests of the sliding-window inference of helpers.inference (window_starts,
window_positions, blending_weights, sliding_window), exact where the answer is known: an
identity or linear model gives its input back everywhere, the normalised weights sum to one
at every voxel, a model whose output depends on the window gives the brute-force weighted
average, and shifting the window grid changes nothing for a model that looks at voxels only.
The window rules are checked against a transcription of MONAI's ``dense_patch_slices``."""

from __future__ import annotations

import itertools
import math

import keras
import numpy as np
import pytest

from helpers import inference

SHAPES = [(8, 8, 8), (11, 9, 7), (5, 13, 3), (3, 2, 4)]     # multiple, not multiple, smaller, tiny
PATCH = (4, 6, 4)


def _monai_starts(length: int, patch: int, overlap: float) -> list[int]:
    """MONAI's _get_scan_interval + dense_patch_slices along one axis (monai/data/utils.py)."""
    if patch == length:
        interval = patch
    else:
        interval = int(patch * (1 - overlap))
        interval = interval if interval > 0 else 1
    num = int(math.ceil(float(length) / interval))
    scan_dim = next((d for d in range(num) if d * interval + patch >= length), None)
    scan_num = scan_dim + 1 if scan_dim is not None else 1
    starts = []
    for idx in range(scan_num):
        start = idx * interval
        start -= max(start + patch - length, 0)
        starts.append(start)
    return starts


def _volume(shape, channels: int = 0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=tuple(shape) + ((channels,) if channels else ())).astype(np.float32)


def _identity(x):
    return x


# --------------------------------------------------------------------------- the window rules

def test_window_starts_examples_of_the_docstring():
    assert inference.window_starts(10, 4, 0.5) == [0, 2, 4, 6]
    assert inference.window_starts(9, 4, 0.5) == [0, 2, 4, 5]
    assert inference.window_starts(4, 4) == [0]
    assert inference.window_starts(10, 4, 0.0) == [0, 4, 6]
    assert inference.window_starts(7, 4, 0.75) == [0, 1, 2, 3]


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.6, 0.75, 0.9])
def test_window_starts_follow_monai_and_cover_every_voxel(overlap):
    for patch in range(1, 9):
        for length in range(patch, 30):
            starts = inference.window_starts(length, patch, overlap)
            assert starts == _monai_starts(length, patch, overlap), (length, patch, overlap)
            covered = np.zeros(length, int)
            for start in starts:
                covered[start:start + patch] += 1
            assert covered.min() >= 1 and starts[0] == 0 and starts[-1] == length - patch
            assert starts == sorted(set(starts))
            steps = np.diff(starts)
            assert (steps <= max(1, int(patch * (1 - overlap)))).all()   # neighbours overlap as asked


def test_window_positions_are_every_combination_and_cover_the_volume():
    shape = (11, 9, 7)
    positions = inference.window_positions(shape, PATCH, 0.5)
    per_axis = [inference.window_starts(n, p, 0.5) for n, p in zip(shape, PATCH)]
    assert positions == list(itertools.product(*per_axis))
    assert len(positions) == len(set(positions)) == math.prod(len(a) for a in per_axis)
    count = np.zeros(shape, int)
    for start in positions:
        count[tuple(slice(s, s + p) for s, p in zip(start, PATCH))] += 1
    # coverage: the count at a voxel is the product over axes of the windows covering it
    per_axis_count = [np.array([sum(s <= i < s + p for s in starts) for i in range(n)])
                      for starts, n, p in zip(per_axis, shape, PATCH)]
    np.testing.assert_array_equal(count, np.einsum("i,j,k->ijk", *per_axis_count))
    assert count.min() >= 1
    assert inference.window_positions((6, 6), 6) == [(0, 0)]


@pytest.mark.parametrize("arguments, message", [((3, 4), "pad the volume"), ((10, 4, 1.0), r"\[0, 1\)"),
                                                ((10, 4, -0.1), r"\[0, 1\)"), ((10, 0), ">= 1")])
def test_window_starts_refuses_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        inference.window_starts(*arguments)
    with pytest.raises(ValueError, match="patch_size"):
        inference.window_positions((8, 8, 8), (4, 4))


# --------------------------------------------------------------------------- blending weights

def test_constant_weights_are_ones():
    weights = inference.blending_weights(PATCH, "constant")
    assert weights.shape == PATCH and weights.dtype == np.float32 and (weights == 1).all()


@pytest.mark.parametrize("patch", [(4, 6, 4), (7, 5, 9), (16, 16, 16), (5, 8)])
def test_gaussian_weights_are_monai_importance_map(patch):
    weights = inference.blending_weights(patch)
    assert weights.shape == patch and weights.dtype == np.float32
    # MONAI's compute_importance_map, transcribed
    expected = np.ones(())
    for n in patch:
        x = np.arange(-(n - 1) / 2.0, (n - 1) / 2.0 + 1)
        expected = np.multiply.outer(expected, np.exp(x ** 2 / (-2 * (0.125 * n) ** 2)))
    expected = np.maximum(expected, max(expected.min(), 1e-3))
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    for axis in range(len(patch)):                               # symmetric along every axis
        np.testing.assert_array_equal(weights, np.flip(weights, axis))
    assert weights.min() >= 1e-3 and weights.max() <= 1.0
    centre = tuple(n // 2 for n in patch)
    assert weights[centre] == weights.max() and weights.min() < weights.max()


def test_blending_weights_refuse_unknown_blends():
    with pytest.raises(ValueError, match="'gaussian' or 'constant'"):
        inference.blending_weights(PATCH, "mean")
    with pytest.raises(ValueError, match="sigma_scale"):
        inference.blending_weights(PATCH, sigma_scale=0)


# --------------------------------------------------------------------------- sliding window

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize("overlap", [0.0, 0.5, 0.75])
def test_an_identity_model_gives_the_input_back_everywhere(shape, blend, overlap):
    volume = _volume(shape, seed=sum(shape))
    out = inference.sliding_window(_identity, volume, PATCH, overlap=overlap, blend=blend, batch_size=3)
    assert out.shape == shape and out.dtype == np.float32
    np.testing.assert_allclose(out, volume, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_known_linear_map_with_channels_is_reproduced_exactly(shape):
    matrix = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]], np.float32)       # 2 channels in, 3 out
    bias = np.array([0.1, -0.2, 0.3], np.float32)
    volume = _volume(shape, channels=2, seed=4)
    out = inference.sliding_window(lambda x: x @ matrix + bias, volume, PATCH, batch_size=2)
    assert out.shape == shape + (3,)
    np.testing.assert_allclose(out, volume @ matrix + bias, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_the_normalised_weights_sum_to_one_at_every_voxel(blend):
    for shape in SHAPES:
        out = inference.sliding_window(lambda x: np.full(x.shape, 0.37, np.float32), np.zeros(shape), PATCH,
                                       blend=blend, overlap=0.6)
        np.testing.assert_allclose(out, 0.37, rtol=1e-6)


def _encoded(shape) -> np.ndarray:
    grid = np.indices(shape)
    return (grid[0] * 10000 + grid[1] * 100 + grid[2]).astype(np.float32)


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_a_model_that_sees_the_window_position_gives_the_weighted_average(blend):
    """The model reads the window's start from its content and answers a value per window:
    at each voxel the result must be sum(w_k * value_k) / sum(w_k) over the windows k that
    cover it, with w_k the blending weight at the voxel's place in window k."""
    shape = (11, 9, 7)
    volume = _encoded(shape)

    def value_of(start):
        return 1.0 + start[0] + 3.0 * start[1] - 0.5 * start[2]

    def model(x):
        starts = [(int(v) // 10000, (int(v) // 100) % 100, int(v) % 100) for v in x[:, 0, 0, 0, 0]]
        return np.stack([np.full(PATCH, value_of(s), np.float32) for s in starts])[..., None]

    out = inference.sliding_window(model, volume, PATCH, blend=blend, batch_size=4)
    weights = inference.blending_weights(PATCH, blend).astype(np.float64)
    numerator, denominator = np.zeros(shape), np.zeros(shape)
    for start in inference.window_positions(shape, PATCH):
        window = tuple(slice(s, s + p) for s, p in zip(start, PATCH))
        numerator[window] += weights * value_of(start)
        denominator[window] += weights
    np.testing.assert_allclose(out, numerator / denominator, rtol=1e-5)


def test_shifting_the_window_grid_leaves_no_seam():
    """A model that looks at voxels only (here a pointwise sigmoid, and a real Keras model of
    1x1x1 convolutions) gives the same value at a voxel whichever windows cover it: cropping
    the volume by one voxel moves every window, yet the results agree, and equal the model
    applied to the whole volume at once."""
    volume = _volume((13, 10, 9), channels=1, seed=7)

    def pointwise(x):
        return 1.0 / (1.0 + np.exp(-3.0 * x + 0.5))

    whole = inference.sliding_window(pointwise, volume, PATCH, batch_size=5)
    shifted = inference.sliding_window(pointwise, volume[1:, 2:, 1:], PATCH, batch_size=5)
    np.testing.assert_allclose(shifted, whole[1:, 2:, 1:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole, pointwise(volume[..., 0]), rtol=1e-5, atol=1e-6)

    inputs = keras.Input((None, None, None, 1))
    hidden = keras.layers.Conv3D(3, 1, activation="tanh", kernel_initializer=keras.initializers.GlorotUniform(1))(inputs)
    outputs = keras.layers.Conv3D(2, 1, activation="softmax",
                                  kernel_initializer=keras.initializers.GlorotUniform(2))(hidden)
    model = keras.Model(inputs, outputs)
    expected = np.asarray(model.predict_on_batch(volume[None]))[0]
    got = inference.sliding_window(model, volume, PATCH, batch_size=4)
    assert got.shape == (13, 10, 9, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-5)


def test_windows_are_batched_and_small_volumes_are_padded_evenly():
    calls = []

    def recording(x):
        calls.append(x.copy())
        return x

    shape = (3, 8, 2)                                  # smaller than the patch along two axes
    volume = _volume(shape, seed=3) + 10.0
    out = inference.sliding_window(recording, volume, PATCH, batch_size=2, pad_value=-5.0)
    np.testing.assert_allclose(out, volume, rtol=1e-6)
    n_windows = len(inference.window_positions((4, 8, 4), PATCH))
    assert len(calls) == math.ceil(n_windows / 2)
    assert all(c.shape == (2,) + PATCH + (1,) for c in calls)          # the last batch is filled up too
    first = calls[0][0, ..., 0]                        # window at (0, 0, 0) of the padded (4, 8, 4) volume
    assert (first[3] == -5.0).all() and (first[:, :, 0] == -5.0).all() and (first[:, :, 3] == -5.0).all()
    np.testing.assert_array_equal(first[:3, :, 1:3], volume[:, :6, :])   # before = deficit // 2


def test_a_progress_bar_is_shown_for_long_runs(capsys):
    inference.sliding_window(_identity, np.zeros((16, 16, 16)), (4, 4, 4), batch_size=2)
    assert "sliding window" in capsys.readouterr().err
    inference.sliding_window(_identity, np.zeros((16, 16, 16)), (4, 4, 4), batch_size=2, progress=False)
    assert "sliding window" not in capsys.readouterr().err


def test_bad_inputs_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="window's size"):
        inference.sliding_window(lambda x: x[:, :2], np.zeros((8, 8, 8)), PATCH)
    with pytest.raises(ValueError, match="spatial axes"):
        inference.sliding_window(_identity, np.zeros((8, 8)), PATCH)
    with pytest.raises(ValueError, match="batch_size"):
        inference.sliding_window(_identity, np.zeros((8, 8, 8)), PATCH, batch_size=0)
    with pytest.raises(ValueError, match="overlap"):
        inference.sliding_window(_identity, np.zeros((8, 8, 8)), PATCH, overlap=1)


def test_two_dimensional_images_work_too():
    image = _volume((9, 14), seed=5)
    np.testing.assert_allclose(inference.sliding_window(_identity, image, (4, 4)), image, rtol=1e-5, atol=1e-6)


def test_the_benchmark_runs_and_reports_its_ratios(capsys):
    """benchmarks/sliding_window.py on a tiny volume: windows counted, efficiency and the
    whole-volume ratio printed (docs/maintainer-guide.md quotes its full-size run)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "sliding_window.py"
    spec = importlib.util.spec_from_file_location("sliding_window_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--shape", "40", "24", "12", "--patch", "16", "16", "8",
                        "--whole-shape", "16", "16", "8", "--batch-size", "2"]) == 0
    printed = capsys.readouterr().out
    assert "windows" in printed and "efficiency" in printed and "whole-volume forward" in printed, printed
    count = int(printed.split(" windows")[0].rsplit(" ", 1)[-1])
    assert count == 4 * 2 * 2           # starts 0, 8, 16, 24 / 0, 8 / 0, 4 at overlap 0.5
