"""Checks for lesson 06 (3D lung CT): HU windowing, lung volume, volumetric Dice, the 3D
U-Net and saving a prediction as NIfTI on the CT's grid.

Each check raises ``AssertionError`` naming the failed case, expected versus got, and a
hint; it prints one success line when all is well.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from helpers.checks._common import call, fail, ok

if TYPE_CHECKING:
    import keras

__all__ = ["check_working_spacing", "check_window_hu", "check_lung_volume", "check_volumetric_dice", "check_lung_model",
           "check_save_prediction", "check_resampled_grid", "check_foreground_patch_start",
           "check_window_starts", "check_blending_weights", "check_residual_blocks", "check_predict_volume"]


def _reference_window(volume, window):
    lower, upper = window
    return np.clip((np.asarray(volume, np.float32) - lower) / (upper - lower), 0, 1).astype(np.float32)


def check_window_hu(fn: Callable[..., Any], random_cases: int = 3, seed: int = 0) -> None:
    """Check ``fn(volume, window=(lower, upper))``: HU mapped linearly to ``[0, 1]``,
    clipped, float32, same shape, input untouched, the lung window by default; on fixed
    values and random volumes.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    fixed = np.array([-3024, -1000, -350, 300, 1500], dtype=np.int16)
    got = np.asarray(fn(fixed.copy(), window=(-1000, 300)))
    expected = np.array([0.0, 0.0, 0.5, 1.0, 1.0], np.float32)
    if got.shape != fixed.shape:
        fail('window_hu', "window (-1000, 300) on 5 values",
             f"expected shape {fixed.shape}, got shape {got.shape}.",
             "the output has one value per input voxel: you seem to reduce or add an axis.")
    if got.dtype != np.float32:
        fail('window_hu', "window (-1000, 300)",
             f"expected dtype float32, got dtype {got.dtype}.",
             "the output must be float32: Keras trains in float32, and int16 HU would "
              "overflow or truncate.")
    if not np.allclose(got, expected, atol=1e-6):
        hint = ("values outside the window must be clipped to 0 and 1: yours leave [0, 1]."
                if got.min() < 0 or got.max() > 1 else
                "inside the window the output must rise linearly from 0 at the lower bound to 1 at the upper "
                "bound: compare your values at the two bounds and midway.")
        fail('window_hu', "HU [-3024, -1000, -350, 300, 1500] with window (-1000, 300)",
             f"expected {expected.tolist()}, got {np.round(got, 4).tolist()}.",
             hint)
    got = np.asarray(fn(fixed.copy()))
    if got.shape != fixed.shape or not np.allclose(got, expected, atol=1e-6):
        fail('window_hu', "no window given: the default",
             f"expected the lung window's {expected.tolist()}, got {np.round(np.asarray(got, float), 4).tolist()}.",
             "called without a window, the function must use the lung window (-1000, 300) HU: keep the default.")
    volume = np.array([[[-1024, -100], [40, 250]]], dtype=np.int16)
    before = volume.copy()
    got = np.asarray(fn(volume, window=(-150, 250)))
    expected = _reference_window(before, (-150, 250))
    if not np.array_equal(volume, before):
        fail('window_hu', "input volume after the call",
             "expected unchanged, got modified in place.",
             "your function writes into the volume it is given: the caller's CT must stay as it was.")
    if got.shape != before.shape or not np.allclose(got, expected, atol=1e-6):
        fail('window_hu', "liver window (-150, 250) on a (1, 2, 2) volume",
             f"expected {np.round(expected, 4).tolist()}, got {np.round(np.asarray(got, float), 4).tolist()}.",
             "you seem to use fixed numbers for the lung window: use the window argument.")
    rng = np.random.default_rng(seed)
    for case in range(random_cases):
        lower = float(rng.uniform(-1200, 0))
        window = (lower, lower + float(rng.uniform(100, 2000)))
        volume = rng.integers(-1024, 3000, size=(6, 7, 5)).astype(np.int16)
        got = np.asarray(fn(volume, window=window))
        expected = _reference_window(volume, window)
        if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-5):
            worst = np.unravel_index(np.argmax(np.abs(np.asarray(got, float) - expected)), expected.shape)
            fail('window_hu', f"random volume {case} with window ({window[0]:.0f}, {window[1]:.0f}) at voxel {worst}",
                 f"expected {expected[worst]:.4f}, got {np.asarray(got, float)[worst]:.4f}.",
                 "linear inside the window (0 at its lower bound, 1 at its upper bound), 0 and 1 outside.")
    ok("window_hu: correct (linear in the window, clipped to [0, 1], float32).")


def _reference_volume_ml(mask, affine):
    return float(np.count_nonzero(np.asarray(mask) > 0) * abs(np.linalg.det(np.asarray(affine)[:3, :3])) / 1000.0)


def check_lung_volume(fn: Callable[..., Any], random_cases: int = 3, seed: int = 0) -> None:
    """Check ``fn(mask, affine) -> float``: the volume of the mask in millilitres, from the
    number of voxels and the voxel volume given by the affine (1 mL = 1000 mm^3).

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    mask = np.zeros((10, 10, 10), np.uint8)
    mask[:5, :4, :5] = 1   # 100 voxels
    affine = np.diag([-0.8, -0.8, 2.5, 1.0])  # 1.6 mm^3 per voxel, flipped axes as in DICOM->NIfTI
    got = fn(mask, affine)
    try:
        got = float(got)
    except (TypeError, ValueError):
        fail('lung_volume_ml', "100 voxels of 0.8 x 0.8 x 2.5 mm",
             f"expected a number (mL), got {repr(got)}.",
             "return a float.")
    if abs(got - 0.16) > 1e-6:
        hint = "a volume is never negative: yours takes the sign of the flipped axes (negative entries)." \
            if abs(got + 0.16) < 1e-6 else ("you seem to return cubic millimetres: 1 mL = 1000 mm^3."
                                           if abs(got - 160) < 1e-3 else
                                           "the volume is the number of voxels where mask > 0 times the volume "
                                           "of one voxel, in mL.")
        fail('lung_volume_ml', "100 voxels of 0.8 x 0.8 x 2.5 mm",
             f"expected 0.16 mL, got {got:g}.",
             hint)
    rotated = np.eye(4)
    c, s = np.cos(0.4), np.sin(0.4)
    rotated[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([0.7, 0.9, 3.0])
    got = float(fn(mask, rotated))
    expected = _reference_volume_ml(mask, rotated)
    if abs(got - expected) > 1e-6:
        fail('lung_volume_ml', "100 voxels with a rotated affine (spacing 0.7, 0.9, 3.0 mm)",
             f"expected {expected:.4f} mL, got {got:.4f}.",
             "you seem to read the voxel size from the affine's diagonal: when the axes are rotated the "
              "diagonal is not the spacing.")
    rng = np.random.default_rng(seed)
    for case in range(random_cases):
        mask = (rng.random((8, 9, 7)) > rng.uniform(0.2, 0.9)).astype(np.uint8)
        affine = np.diag(list(rng.uniform(0.5, 5.0, 3) * rng.choice([-1, 1], 3)) + [1.0])
        got, expected = float(fn(mask, affine)), _reference_volume_ml(mask, affine)
        if abs(got - expected) > 1e-6 * max(1.0, expected):
            fail('lung_volume_ml', f"random mask {case}",
                 f"expected {expected:.5f} mL, got {got:.5f}.",
                 "a volume is never negative: yours is negative when an odd number of axes is flipped."
                  if abs(got + expected) < 1e-6 * max(1.0, expected)
                  else "the number of voxels where mask > 0 times the volume of one voxel (from the affine), "
                       "in mL.")
    ok("lung_volume_ml: correct (mask voxels x the volume of one voxel, in mL).")


def _reference_dice(a, b):
    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def check_volumetric_dice(fn: Callable[..., Any], random_cases: int = 5, seed: int = 0) -> None:
    """Check ``fn(true_mask, pred_mask) -> float``: hard Dice over a whole volume, 1.0 for
    two empty masks, 0.0 when only one is empty, for bool, uint8 and float {0, 1} inputs.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    shape = (6, 8, 5)
    full, empty = np.ones(shape, np.uint8), np.zeros(shape, np.uint8)
    half = empty.copy()
    half[:3] = 1
    cases = [("identical masks", full, full, 1.0), ("two empty masks", empty, empty, 1.0),
             ("empty prediction, non-empty truth", full, empty, 0.0),
             ("half of the truth predicted", full, half, 2 * 120 / (240 + 120)),
             ("bool inputs", full.astype(bool), half.astype(bool), 2 * 120 / 360),
             ("float inputs", full.astype(np.float32), half.astype(np.float32), 2 * 120 / 360)]
    for case, truth, prediction, expected in cases:
        try:
            got = float(fn(truth, prediction))
        except Exception as error:  # show the learner what their function raised
            fail('volumetric_dice', case,
                 f"expected {expected:.4f}, got {type(error).__name__}: {error}.",
                 "the masks may be bool, integer or float: treat values above 0.5 as inside.")
        if not np.isfinite(got):
            fail('volumetric_dice', case,
                 f"expected {expected:.4f}, got {got}.",
                 "two empty masks agree perfectly: return 1.0 when "
                  "both are empty instead of dividing 0 by 0.")
        if abs(got - expected) > 1e-6:
            hint = {"bool inputs": "bool + bool is a logical or, not a count: count each mask's voxels.",
                    "half of the truth predicted": "Dice = 2 |A and B| / (|A| + |B|), summed over the whole volume."
                    }.get(case, "Dice = 2 |A and B| / (|A| + |B|); 1.0 for two empty masks.")
            fail('volumetric_dice', case, f"expected {expected:.4f}, got {got:.4f}.", hint)
    rng = np.random.default_rng(seed)
    for number in range(random_cases):
        truth = rng.random((12, 10, 8)) > rng.uniform(0.1, 0.9)
        prediction = rng.random((12, 10, 8)) > rng.uniform(0.1, 0.9)
        got, expected = float(fn(truth.astype(np.uint8), prediction.astype(np.uint8))), _reference_dice(truth, prediction)
        if abs(got - expected) > 1e-6:
            fail('volumetric_dice', f"random volumes {number}",
                 f"expected {expected:.5f}, got {got:.5f}.",
                 "sum over every voxel of the volume (not per slice, not a mean of slices).")
    ok("volumetric_dice: correct (hard Dice over the whole volume, 1.0 for two empty masks).")


def check_lung_model(model: keras.Model, input_shape: Sequence[int] | None = None, max_parameters: int = 1_500_000,
                     depth: int | None = None, dropout: float | None = None, base_filters: int | None = None,
                     min_depth: int = 1, min_bottleneck: int = 1, min_parameters: int = 0,
                     dropout_range: tuple[float, float] | None = None) -> None:
    """Check a Keras model for 3D binary segmentation: input ``(D, H, W, 1)``, output
    ``(D, H, W, 1)`` with a sigmoid, 3D convolutions, at most ``max_parameters`` weights
    (so that it trains on a laptop CPU) and at least ``min_parameters`` (so that the budget is
    used), at least ``min_depth`` poolings and a bottleneck of
    at least ``min_bottleneck`` voxels per side; if given, exactly ``depth`` poolings, a
    spatial dropout of rate ``dropout`` (or of a rate within ``dropout_range``) and
    ``base_filters`` filters in the first convolution.

    Args:
        model: the learner's Keras model.
        input_shape: the expected input shape ``(D, H, W, 1)``, or None for any.
        max_parameters: the most weights allowed.
        depth: the exact number of poolings, or None for any.
        dropout: the exact spatial dropout rate, or None for any.
        base_filters: the filters of the first convolution, or None for any.
        min_depth: the fewest poolings allowed.
        min_bottleneck: the smallest bottleneck side, in voxels.
        min_parameters: the fewest weights allowed.
        dropout_range: ``(lowest, highest)`` spatial dropout rate allowed, or None.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    import keras

    if not isinstance(model, keras.Model):
        fail('3D U-Net', "the model",
             f"expected a keras.Model, got {type(model).__name__}.",
             "model must be a Keras model (lesson 02's builder returns one).")
    shape_in = tuple(model.input_shape)
    if len(shape_in) != 5:
        fail('3D U-Net', "model input shape",
             f"expected (None, D, H, W, 1): a 3D volume with one channel, got {shape_in}.",
             "the model must take 3D patches with one channel: four numbers in its input shape.")
    if input_shape is not None and tuple(shape_in[1:]) != tuple(input_shape):
        fail('3D U-Net', "model input shape",
             f"expected {tuple(input_shape)}, got {tuple(shape_in[1:])}.",
             "build the model for the patch size plus one channel.")
    shape_out = tuple(model.output_shape)
    if shape_out[1:] != shape_in[1:4] + (1,):
        fail('3D U-Net', "model output shape",
             f"expected {shape_in[1:4] + (1,)}, got {shape_out[1:]}.",
             "one output channel (one class) on the input's grid.")
    if not any(isinstance(layer, keras.layers.Conv3D) for layer in model.layers):
        fail('3D U-Net', "layers",
             "expected Conv3D layers, got none.",
             "a model for 3D patches convolves in 3D.")
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    if activation != "sigmoid":
        fail('3D U-Net', "activation of the last layer",
             f"expected sigmoid, got {activation}.",
             "one class (lung vs background) needs a sigmoid output.")
    pools = sum(type(layer).__name__.startswith("MaxPooling3D") for layer in model.layers)
    if depth is not None and pools != depth:
        fail('3D U-Net', "number of poolings (depth)",
             f"expected {depth}, got {pools}.",
             f"the encoder must halve the volume {depth} times.")
    if pools < min_depth:
        fail('3D U-Net', "number of poolings (depth)",
             f"expected at least {min_depth}, got {pools}.",
             "a U-Net needs a few poolings to see context: a larger depth.")
    bottleneck = min(int(v) for v in shape_in[1:4]) // 2 ** pools
    if bottleneck < min_bottleneck:
        fail('3D U-Net', "smallest side of the bottleneck",
             f"expected at least {min_bottleneck} voxels, got {bottleneck}.",
             f"each pooling halves every side: with {pools} poolings the smallest side of "
              f"{min(int(v) for v in shape_in[1:4])} shrinks to {bottleneck}; use a smaller depth.")
    rates = [float(layer.rate) for layer in model.layers if type(layer).__name__.startswith("SpatialDropout")]
    if dropout is not None and dropout > 0 and not any(abs(r - dropout) < 1e-9 for r in rates):
        fail('3D U-Net', "spatial dropout rate",
             f"expected {dropout}, got {rates or 'no dropout layer'}.",
             f"the text asks for a spatial dropout of rate {dropout}.")
    if dropout_range is not None and not any(dropout_range[0] - 1e-9 <= r <= dropout_range[1] + 1e-9 for r in rates):
        fail('3D U-Net', "spatial dropout rate",
             f"expected a rate between {dropout_range[0]} and {dropout_range[1]}, got {rates or 'no dropout layer'}.",
             "the text asks for a little spatial dropout, within that range.")
    if dropout == 0 and any(r > 0 for r in rates):
        fail('3D U-Net', "spatial dropout rate",
             f"expected 0, got {rates}.",
             "the text asks for no dropout.")
    first = next((layer for layer in model.layers if isinstance(layer, keras.layers.Conv3D)), None)
    if base_filters is not None and first is not None and first.filters != base_filters:
        fail('3D U-Net', "filters of the first convolution (base_filters)",
             f"expected {base_filters}, got {first.filters}.",
             f"the text asks for {base_filters} filters in the first level.")
    count = model.count_params()
    if count > max_parameters:
        fail('3D U-Net', "number of weights",
             f"expected at most {max_parameters:,}, got {count:,}.",
             "a 3D U-Net grows fast with its filters and its levels: this one is over the CPU budget.")
    if count < min_parameters:
        fail('3D U-Net', "number of weights",
             f"expected at least {min_parameters:,}, got {count:,}: most of the budget of "
             f"{max_parameters:,} is unused.",
             "the model can be larger (more filters or one more level) as long as the bottleneck "
             "keeps its size.")
    ok(f"3D U-Net: input {shape_in[1:]}, output {shape_out[1:]}, {count:,} weights.")


def _working_grid_case(folder: Path):
    """A reference CT file stored LPS (30, 26, 14) voxels of 0.9 x 0.9 x 2.5 mm, and
    probabilities of an off-centre ellipsoid with three radii on its canonical (RAS) working
    grid of 1.8 x 1.8 x 2.5 mm: a transposed, flipped or unaligned result does not match.
    """
    from helpers import geometry
    from helpers.data.lung_ct import nifti_bytes

    reference_shape = (30, 26, 14)
    affine = np.array([[-0.9, 0, 0, 120.0], [0, -0.9, 0, 95.0], [0, 0, 2.5, -310.0], [0, 0, 0, 1]])
    reference = folder / "case" / "ct.nii.gz"
    reference.parent.mkdir()
    reference.write_bytes(nifti_bytes(np.full(reference_shape, -1000, np.int16), affine))
    canonical, canonical_affine = geometry.to_canonical(np.zeros(reference_shape, np.uint8), affine)
    working_shape, working_affine = geometry.resampled_grid(canonical.shape, canonical_affine, (1.8, 1.8, 2.5))
    index = np.stack(np.meshgrid(*[np.arange(n) for n in working_shape], indexing="ij"), axis=-1)
    world = index @ working_affine[:3, :3].T + working_affine[:3, 3]
    centre = affine[:3, :3] @ (np.array([0.62, 0.4, 0.55]) * (np.array(reference_shape) - 1)) + affine[:3, 3]
    distance = np.sqrt((((world - centre) / np.array([6.0, 8.0, 9.0])) ** 2).sum(-1))
    probabilities = (1 / (1 + np.exp(8 * (distance - 1.0)))).astype(np.float32)
    return reference, affine, reference_shape, probabilities, working_affine


def check_save_prediction(fn: Callable[..., Any]) -> None:
    """Check ``fn(probabilities, working_affine, reference_path, output_path) -> Path``: the
    probabilities, on a working grid of affine ``working_affine`` (reoriented and resampled),
    are resampled onto the reference CT's grid in millimetres
    (``geometry.resample_to_grid``, linear), thresholded at 0.5 and saved as uint8 {0, 1}
    NIfTI with the reference's affine; an all-zero prediction gives an empty mask.

    Args:
        fn: the function to check (the learner's, or the reference).

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    import nibabel as nib

    from helpers import geometry

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        reference, affine, reference_shape, probabilities, working_affine = _working_grid_case(folder)
        output = folder / "case" / "prediction.nii.gz"
        returned = call(fn, 'save_prediction', "a prediction on the RAS working grid", probabilities.copy(),
                        working_affine.copy(), reference, output, allow_none=True)
        if not output.is_file():
            fail('save_prediction', "after the call",
                 f"expected a file {output.name}, got no file.",
                 "the mask must be written to output_path (replacing a file that is already there).")
        if returned is None or Path(returned) != output:
            fail('save_prediction', "return value",
                 f"expected the output path {output}, got {repr(returned)}.",
                 "return output_path.")
        image = nib.load(str(output))
        saved = np.asarray(image.dataobj)
        if saved.shape != reference_shape:
            fail('save_prediction', "shape of the saved mask",
                 f"expected {reference_shape} (the CT's grid), got {saved.shape}.",
                 "resample the probabilities onto the grid of the reference CT before thresholding: yours "
                 "has another shape.")
        if not np.allclose(image.affine, affine, atol=1e-4):
            fail('save_prediction', "affine of the saved mask",
                 f"expected {np.round(affine, 2).tolist()}, got {np.round(image.affine, 2).tolist()}.",
                 "the mask must carry the reference CT's affine, not the working grid's or an identity: "
                 "otherwise it lands in the wrong place in a viewer.")
        if saved.dtype != np.uint8 or not set(np.unique(saved).tolist()) <= {0, 1}:
            fail('save_prediction', "saved values",
                 f"expected uint8 in {{0, 1}}, got {saved.dtype} {np.unique(saved)[:5].tolist()}.",
                 "the file must hold a 0/1 mask stored as uint8, not probabilities or floats.")
        expected = geometry.resample_to_grid(probabilities, working_affine, reference_shape, affine) > 0.5
        agreement = _reference_dice(expected, saved)
        if agreement < 0.97:
            fail('save_prediction', "saved mask against the probabilities resampled in millimetres",
                 f"expected Dice >= 0.97, got {agreement:.3f}.",
                 "the saved mask is not where the probabilities are in the patient: the working grid is "
                 "reoriented (RAS) and has another spacing, so a resized, transposed or wrongly mapped array "
                 "is flipped or shifted. Every CT voxel needs the probability at its own point in millimetres.")
        empty_output = folder / "case" / "empty.nii.gz"
        call(fn, 'save_prediction', "an all-zero prediction", np.zeros_like(probabilities), working_affine.copy(),
             reference, empty_output, allow_none=True)
        empty = np.asarray(nib.load(str(empty_output)).dataobj) if empty_output.is_file() else None
        if empty is None or empty.shape != reference_shape or empty.any():
            got = "no file" if empty is None else f"{int(np.count_nonzero(empty))} foreground voxels"
            fail('save_prediction', "an all-zero prediction",
                 f"expected an empty mask on the CT's grid, got {got}.",
                 "the threshold is a fixed 0.5, whatever the probabilities are (not relative to their mean "
                 "or maximum): a prediction of no lung is an empty mask.")
    ok("save_prediction: correct (CT grid, CT affine, uint8 {0, 1}).")


# --------------------------------------------------------------------------- geometry, patches, windows

def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def check_resampled_grid(fn: Callable[..., Any], random_cases: int = 3, seed: int = 0) -> None:
    """Check ``fn(shape, affine, spacing) -> (new_shape, new_affine)``: the grid of a
    volume resampled to ``spacing`` mm (:func:`helpers.geometry.resampled_grid`): spacing
    from the affine's column norms, ``round(n * old / new)`` voxels (at least 1), columns
    scaled to the new spacing, the centre of the field of view kept; on a DICOM-like flipped
    affine, a rotated one, one number for all axes and random grids.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    from helpers.geometry import resampled_grid as reference

    name = "resampled_grid"
    lps = np.diag([-0.8, -0.7, 2.5, 1.0])
    lps[:3, 3] = [150.0, 120.0, -300.0]
    rotated = np.eye(4)
    rotated[:3, :3] = _rotation(0.5) @ np.diag([0.9, 1.1, 3.0])
    rotated[:3, 3] = [-20.0, 35.0, 10.0]
    cases: list[tuple[str, tuple[int, ...], np.ndarray, float | tuple[float, ...]]] = [
             ("flipped (LPS) affine, 0.8 x 0.7 x 2.5 mm, shape (50, 60, 21) -> (1.6, 1.4, 5.0) mm",
              (50, 60, 21), lps, (1.6, 1.4, 5.0)),
             ("flipped affine, shape (50, 60, 21) -> (1.0, 2.0, 1.5) mm", (50, 60, 21), lps, (1.0, 2.0, 1.5)),
             ("rotated affine, 0.9 x 1.1 x 3.0 mm, shape (40, 30, 12) -> 2.0 mm for all axes",
              (40, 30, 12), rotated, 2.0)]
    rng = np.random.default_rng(seed)
    for case in range(random_cases):
        affine = np.eye(4)
        affine[:3, :3] = _rotation(rng.uniform(-1, 1)) @ np.diag(rng.uniform(0.5, 4.0, 3) * rng.choice([-1, 1], 3))
        affine[:3, 3] = rng.uniform(-200, 200, 3)
        cases.append((f"random grid {case}", tuple(int(n) for n in rng.integers(5, 80, 3)), affine,
                      tuple(float(s) for s in rng.uniform(0.7, 6.0, 3))))
    for label, shape, affine, spacing in cases:
        expected_shape, expected_affine = reference(shape, affine, spacing)
        got = call(fn, name, label, shape, affine.copy(), spacing)
        try:
            got_shape, got_affine = got
            got_shape = tuple(int(n) for n in got_shape)
        except (TypeError, ValueError):
            fail(name, label, f"expected a pair (new_shape, new_affine), got {type(got).__name__}.",
                 "return new_shape, new_affine.")
        current = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        if got_shape != expected_shape:
            diagonal = np.maximum(1, np.round(np.asarray(shape) * np.abs(np.diag(affine)[:3])
                                             / np.broadcast_to(spacing, (3,)))).astype(int)
            inverted = np.maximum(1, np.round(np.asarray(shape) * np.broadcast_to(spacing, (3,))
                                             / current)).astype(int)
            hint = ("you seem to read the spacing from the diagonal: the spacing of an axis is the length "
                    "of its column, and a rotated affine holds cosines times spacings on the diagonal."
                    if tuple(diagonal) == got_shape else
                    "a coarser spacing must give fewer voxels: yours gives more."
                    if tuple(inverted) == got_shape else
                    "the same field of view, rounded to the nearest whole number of voxels (not rounded down), "
                    "at least 1, per axis in the order i, j, k.")
            fail(name, label, f"expected shape {expected_shape}, got {got_shape}.", hint)
        try:
            got_affine = np.asarray(got_affine, dtype=float)
        except (TypeError, ValueError):
            got_affine = np.zeros(0)
        if got_affine.shape != (4, 4):
            fail(name, label, "expected a 4 x 4 affine as the second result.",
                 "the second result is the new grid's 4 x 4 affine.")
        if not np.allclose(got_affine[:3, :3], expected_affine[:3, :3], atol=1e-6):
            got_spacing = np.sqrt((got_affine[:3, :3] ** 2).sum(axis=0))
            hint = ("each axis is a *column* of affine[:3, :3]: the spacings land on the wrong axes, as if "
                    "rows were scaled."
                    if np.allclose(np.sort(got_spacing), np.sort(np.sqrt((expected_affine[:3, :3] ** 2).sum(axis=0))))
                    or not np.allclose(got_spacing, np.sqrt((expected_affine[:3, :3] ** 2).sum(axis=0)), atol=1e-6)
                    else "every axis keeps its direction (and sign) in the patient: yours changed one.")
            fail(name, label, f"expected affine[:3, :3] =\n{np.round(expected_affine[:3, :3], 4)}\n"
                 f"got\n{np.round(got_affine[:3, :3], 4)}.", hint)
        if not np.allclose(got_affine[:3, 3], expected_affine[:3, 3], atol=1e-4):
            hint = ("the translation is unchanged, so voxel 0 stays put and the grid's centre moves: the centre "
                    "must stay where it was." if np.allclose(got_affine[:3, 3], affine[:3, 3]) else
                    "the grid's centre (midway between its first and last voxel centres, in mm) moved.")
            fail(name, label, f"expected translation {np.round(expected_affine[:3, 3], 3).tolist()}, "
                 f"got {np.round(got_affine[:3, 3], 3).tolist()}.", hint)
        if not np.allclose(got_affine[3], [0, 0, 0, 1]):
            fail(name, label, f"the last row of the affine must stay [0, 0, 0, 1], got {got_affine[3].tolist()}.")
    ok(f"{name}: correct on {len(cases)} grids (flipped, rotated, one spacing for all axes): "
       "directions kept, the new spacing, the same field of view and centre.")


def check_foreground_patch_start(fn: Callable[..., Any], random_cases: int = 20, seed: int = 0) -> None:
    """Check ``fn(voxel, shape, patch_size) -> start``: the patch centred on ``voxel`` (the
    voxel at index ``start + patch_size // 2``), clipped into ``[0, shape - patch_size]``
    (:func:`helpers.patches.foreground_patch_start`); asymmetric shapes and patches, odd and
    even sizes, voxels at both borders.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    from helpers.patches import foreground_patch_start as reference

    name = "foreground_patch_start"
    shape, patch = (40, 30, 20), (16, 12, 9)
    cases: list[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = [
             ("voxel (20, 15, 10) in the middle", (20, 15, 10), shape, patch),
             ("voxel (1, 2, 0) at the low corner", (1, 2, 0), shape, patch),
             ("voxel (39, 29, 19) at the high corner", (39, 29, 19), shape, patch),
             ("voxel (3, 28, 10): low along x, high along y", (3, 28, 10), shape, patch),
             ("a volume exactly the patch's size", (5, 7, 2), (16, 12, 9), patch)]
    rng = np.random.default_rng(seed)
    for case in range(random_cases):
        size = tuple(int(n) for n in rng.integers(2, 20, 3))
        vol = tuple(int(p + rng.integers(0, 30)) for p in size)
        voxel = tuple(int(rng.integers(0, n)) for n in vol)
        cases.append((f"random case {case}: voxel {voxel}, shape {vol}, patch {size}", voxel, vol, size))
    for label, voxel, vol, size in cases:
        expected = reference(voxel, vol, size)
        got = call(fn, name, label, voxel, vol, size)
        try:
            got = tuple(int(s) for s in np.asarray(got).ravel())
        except (TypeError, ValueError):
            fail(name, label, f"expected a start (x0, y0, z0), got {got!r}.", "return three integers.")
        if got == expected:
            continue
        unclipped = tuple(int(v - p // 2) for v, p in zip(voxel, size))
        hint = ("that is the voxel itself: the voxel would sit at the patch's corner, not at its voxel "
                "patch_size // 2." if got == tuple(voxel) else
                "the patch sticks out of the volume near a border: it must be moved (clipped) to lie inside, "
                "its start between 0 and shape - patch_size."
                if got == unclipped else
                "near the upper border the patch still sticks out: the largest start at which it fits is "
                "shape - patch_size." if got == tuple(int(np.clip(u, 0, n - 1)) for u, n in zip(unclipped, vol)) else
                "for an even size the voxel must be the patch's voxel patch_size // 2, the second of the two "
                "middle voxels: yours is one voxel off."
                if got == tuple(int(np.clip(v - (p - 1) // 2, 0, n - p)) for v, p, n in zip(voxel, size, vol)) else
                "compare with the worked cases axis by axis, and keep the order of the axes.")
        fail(name, label, f"expected start {expected}, got {got}.", hint)
    ok(f"{name}: correct on {len(cases)} cases (centred on the voxel, kept inside the volume).")


def check_window_starts(fn: Callable[..., Any], seed: int = 0, random_cases: int = 20) -> None:
    """Check ``fn(length, patch, overlap) -> starts``: windows every ``int(patch * (1 -
    overlap))`` voxels (at least 1) from 0, the last one moved back to end at the border,
    no start twice (:func:`helpers.inference.window_starts`).

    Args:
        fn: the function to check (the learner's, or the reference).
        seed: seed of the random cases.
        random_cases: the number of random cases tried after the fixed ones.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    from helpers.inference import window_starts as reference

    name = "window_starts"
    cases = [("length 10, patch 4, overlap 0.5", 10, 4, 0.5), ("length 9, patch 4, overlap 0.5", 9, 4, 0.5),
             ("length 4, patch 4 (one window)", 4, 4, 0.5), ("length 37, patch 16, overlap 0.25", 37, 16, 0.25),
             ("length 100, patch 32, overlap 0 (no overlap)", 100, 32, 0.0),
             ("length 64, patch 32, overlap 0 (exact tiling)", 64, 32, 0.0),
             ("length 7, patch 3, overlap 0.9 (step at least 1)", 7, 3, 0.9)]
    rng = np.random.default_rng(seed)
    for case in range(random_cases):
        patch = int(rng.integers(1, 40))
        length = patch + int(rng.integers(0, 90))
        overlap = float(rng.choice([0.0, 0.25, 0.5, 0.75, float(rng.uniform(0, 0.95))]))
        cases.append((f"random case {case}: length {length}, patch {patch}, overlap {overlap:.3f}",
                      length, patch, overlap))
    for label, length, patch, overlap in cases:
        expected = reference(length, patch, overlap)
        got = call(fn, name, label, length, patch, overlap)
        try:
            got = [int(s) for s in np.asarray(got).ravel()]
        except (TypeError, ValueError):
            fail(name, label, f"expected a list of starts, got {got!r}.", "return a list of ints.")
        if got == expected:
            continue
        step = max(1, int(patch * (1 - overlap)))
        hint = ("the last window must end exactly at the border: the voxels after the last regular window "
                "are otherwise never predicted." if got == expected[:-1] or
                (got and got[-1] < length - patch) else
                "a window sticks out of the volume: no window may end past the border."
                if got and got[-1] > length - patch
                else "a start appears twice: when a regular window already ends at the border, it is the last one."
                if len(set(got)) < len(got) else
                f"the step between regular windows is {step} voxels here: overlap is the share two consecutive "
                "windows have in common (not the share they advance), and the step is at least 1."
                if got[:2] != expected[:2] else
                "compare with the expected starts: regular steps from 0, then one window ending at the border.")
        fail(name, label, f"expected {expected}, got {got}.", hint)
    ok(f"{name}: correct on {len(cases)} axes (every voxel covered, last window at the border, no repeats).")


def check_blending_weights(fn: Callable[..., Any], seed: int = 0, random_cases: int = 5) -> None:
    """Check ``fn(patch_size, sigma_scale=0.125)``: the Gaussian blending weights of
    :func:`helpers.inference.blending_weights` -- per axis ``exp(-(i - (n - 1) / 2)**2 /
    (2 sigma**2))`` with ``sigma = sigma_scale * n``, their product over the axes, clamped
    below at 1e-3, float32 of shape ``patch_size``; on asymmetric patches, odd and even.

    Args:
        fn: the function to check (the learner's, or the reference).
        seed: seed of the random cases.
        random_cases: the number of random cases tried after the fixed ones.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    from helpers.inference import blending_weights as reference

    name = "blending_weights"
    cases: list[tuple[str, tuple[int, ...], float]] = [
             ("patch (8, 12, 5)", (8, 12, 5), 0.125), ("patch (7, 7, 7)", (7, 7, 7), 0.125),
             ("patch (16, 10, 6), sigma_scale 0.25", (16, 10, 6), 0.25)]
    rng = np.random.default_rng(seed)
    for case in range(random_cases):
        size = tuple(int(n) for n in rng.integers(1, 24, 3))
        cases.append((f"random patch {size}", size, float(rng.uniform(0.08, 0.4))))
    for label, size, sigma_scale in cases:
        expected = reference(size, "gaussian", sigma_scale)
        got = call(fn, name, label, size, sigma_scale=sigma_scale)
        got = np.asarray(got)
        if got.shape != expected.shape:
            fail(name, label, f"expected shape {expected.shape}, got {got.shape}.",
                 "one weight per voxel of the window, its axes in the order of patch_size: yours has another "
                 "shape.")
        if got.dtype != np.float32:
            fail(name, label, f"expected float32, got {got.dtype}.", "the weights must be float32.")
        if np.allclose(got, expected, rtol=1e-4, atol=1e-6):
            continue
        flipped = all(np.allclose(got, np.flip(got, axis)) for axis in range(3))
        one_sigma = [np.exp(-(np.arange(n) - (n - 1) / 2) ** 2 / (2 * (sigma_scale * max(size)) ** 2)) for n in size]
        one_sigma = np.maximum(np.einsum("i,j,k->ijk", *one_sigma), 1e-3)
        hint = ("the weights must be symmetric along every axis: your centre is off by half a voxel (the "
                "centre of an axis lies midway between its first and last voxel)."
                if not flipped else
                "the peak of each profile is 1 at the centre: yours look normalised (to a sum of 1?)."
                if got.max() < 0.5 * expected.max() else
                "no voxel may get (almost) zero weight: none below 1e-3 (a corner voxel covered by one window "
                "only would otherwise be divided by ~0)."
                if got.min() < 0.999e-3 else
                "sigma differs per axis: sigma_scale times each axis's own n, not one sigma for all."
                if np.allclose(got, one_sigma, rtol=1e-4, atol=1e-6) else
                "compare one axis's profile with a Gaussian of peak 1 at the axis's centre and a standard "
                "deviation of sigma_scale * n voxels.")
        worst = np.unravel_index(np.argmax(np.abs(got.astype(float) - expected)), expected.shape)
        fail(name, label, f"at voxel {tuple(int(i) for i in worst)} expected {expected[worst]:.5f}, "
             f"got {float(got[worst]):.5f}.", hint)
    ok(f"{name}: correct on {len(cases)} patches (Gaussian of sigma = sigma_scale x n per axis, 1 at the centre, "
       "at least 1e-3, float32).")


def check_residual_blocks(model: keras.Model) -> None:
    """Check that a U-Net is built of residual blocks: its blocks add a shortcut to their
    output (``keras.layers.Add`` layers, one per block), as ``models.build_unet(...,
    block="residual")`` builds them.

    Args:
        model: the learner's Keras U-Net.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    import keras

    adds = sum(isinstance(layer, keras.layers.Add) for layer in model.layers)
    if adds == 0:
        fail('3D U-Net', "blocks",
             "expected residual blocks (a shortcut added to each block's output), got plain blocks.",
             "the text asks for residual blocks: lesson 02's builder has an option for them.")
    ok(f"3D U-Net: {adds} residual blocks.")


# --------------------------------------------------------------------------- the working spacing

def check_working_spacing(spacing: Any, table: Sequence[Sequence[float]], max_windows: int) -> None:
    """Check the working spacing a learner chose from the table of candidates: the finest
    spacing whose whole-CT prediction needs at most ``max_windows`` windows.

    Args:
        spacing: the learner's choice, one number in millimetres.
        table: rows ``(spacing_mm, n_windows, best_dice)`` as the lesson printed them.
        max_windows: the budget of windows per case.

    Raises:
        AssertionError: ``spacing`` is not one number of the table, breaks the budget, or is
            coarser than needed; the hint says which, without naming the answer.
    """
    from helpers import inference

    import numbers

    name = "WORKING_SPACING"
    rows = [(float(row[0]), int(row[1])) for row in table]
    if spacing is Ellipsis or spacing is None:
        fail(name, None, "WORKING_SPACING is not set yet: replace the ... by a spacing of the table, in mm.")
    if isinstance(spacing, bool) or not isinstance(spacing, numbers.Real):
        fail(name, None, f"WORKING_SPACING should be one number, the spacing in millimetres (as in the table's "
                         f"first column), got {spacing!r}.",
             "One spacing for all three axes: a plain number such as the ones the table lists.")
    windows = {value: count for value, count in rows}
    match = next((value for value in windows if abs(value - float(spacing)) < 1e-6), None)
    if match is None:
        fail(name, None, f"WORKING_SPACING = {spacing!r} mm is not one of the table's candidates "
                         f"{[value for value, _ in rows]}.", "Choose among the spacings the table measured.")
    expected = inference.finest_spacing_within_budget(rows, max_windows)
    if windows[match] > max_windows:
        fail(name, None, f"At {match:g} mm a prediction of the first case needs {windows[match]} windows, more than "
                         f"the budget of {max_windows}.",
             "The budget comes first: only spacings whose windows column is within it are allowed.")
    if match != expected:
        fail(name, None, f"{match:g} mm fits the budget, but a finer spacing of the table fits it too.",
             "Within the budget, the finer grid keeps more of the boundary (see the table's last column): "
             "take the finest that fits.")
    ok(f"WORKING_SPACING = {match:g} mm: the finest spacing of the table within {max_windows} windows per case.")


# --------------------------------------------------------------------------- the whole volume

def _toy_patch_model(seed: int = 0) -> keras.Model:
    """A small fixed 3D model for :func:`check_predict_volume`: one 3 x 3 x 3 convolution
    with zero padding, then a sigmoid, so that a voxel's prediction depends on its neighbours
    and on where it lies in the window (near a window's edge the padding counts): windows
    that overlap disagree, and a wrong blending or a wrong placement shows.

    Args:
        seed: seed of the fixed kernel.

    Returns:
        A Keras model taking ``(B, X, Y, Z, 1)`` of any spatial size, returning the same shape.
    """
    import keras

    inputs = keras.Input((None, None, None, 1))
    layer = keras.layers.Conv3D(1, 3, padding="same", activation="sigmoid")
    model = keras.Model(inputs, layer(inputs), name="toy_patch_model")
    rng = np.random.default_rng(seed)
    kernel = rng.uniform(0.2, 1.0, (3, 3, 3, 1, 1)).astype(np.float32)
    layer.set_weights([kernel * 4.0 / kernel.sum(), np.array([-2.0], np.float32)])
    return model


def check_predict_volume(fn: Callable[..., Any], random_cases: int = 0, seed: int = 0) -> None:
    """Check ``fn(model, volume, patch_size, overlap=0.5) -> probabilities``: a whole volume
    predicted window by window, the windows placed on every combination of
    :func:`helpers.inference.window_starts` along the axes, each window's prediction weighted
    by the Gaussian :func:`helpers.inference.blending_weights`, the weighted sum divided by
    the summed weights at every voxel; float32 ``(X, Y, Z)``, input untouched. A small fixed
    convolutional model whose prediction near a window's edge differs from that at its centre,
    on asymmetric volumes and patches, overlaps 0.5 and 0.25, and one window only.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases and of the model.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    from helpers import inference

    name = "predict_volume"
    model = _toy_patch_model(seed)
    rng = np.random.default_rng(seed)
    cases: list[tuple[str, tuple[int, ...], tuple[int, ...], float]] = [
        ("volume (20, 17, 13), patch (8, 8, 6), overlap 0.5", (20, 17, 13), (8, 8, 6), 0.5),
        ("volume (23, 15, 12), patch (10, 6, 7), overlap 0.25", (23, 15, 12), (10, 6, 7), 0.25),
        ("volume (8, 6, 5) = one window", (8, 6, 5), (8, 6, 5), 0.5)]
    for case in range(random_cases):
        patch = tuple(int(n) for n in rng.integers(4, 10, 3))
        shape = tuple(int(p + rng.integers(0, 12)) for p in patch)
        cases.append((f"random case {case}: volume {shape}, patch {patch}, overlap 0.5", shape, patch, 0.5))
    for label, shape, patch, overlap in cases:
        grid = np.stack(np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij"), -1)
        volume = (0.5 * grid[..., 0] + 0.3 * grid[..., 1] ** 2 + 0.2 * rng.random(shape)).astype(np.float32)
        before = volume.copy()
        expected = inference.sliding_window(model, volume, patch, overlap, progress=False)
        got = call(fn, name, label, model, volume, patch, overlap)
        if not np.array_equal(volume, before):
            fail(name, label, "expected the volume unchanged, got it modified in place.",
                 "your function writes into the volume it is given.")
        try:
            got = np.asarray(got)
        except (TypeError, ValueError):
            fail(name, label, f"expected an array of shape {shape}, got {type(got).__name__}.")
        if got.shape != expected.shape:
            hint = ("one probability per voxel, without a channel axis." if got.shape[:3] == shape else
                    "the probabilities lie on the volume's own grid, its axes in the same order.")
            fail(name, label, f"expected shape {expected.shape}, got {got.shape}.", hint)
        if got.dtype != np.float32:
            fail(name, label, f"expected float32, got {got.dtype}.", "the probabilities must be float32.")
        if np.allclose(got, expected, atol=2e-5):
            continue
        plain = inference.sliding_window(model, volume, patch, overlap, blend="constant", progress=False)
        if not np.all(np.isfinite(got)) or (got == 0).any():
            hint = ("some voxels got no prediction (zero or NaN): the windows must cover every voxel, the last "
                    "one ending at the border of every axis.")
        elif got.max() > 1.0 + 1e-5:
            hint = ("probabilities above 1: every voxel's weighted sum must be divided by the sum of the weights "
                    "it received.")
        elif np.allclose(got, plain, atol=2e-5):
            hint = ("you seem to take a plain mean of the windows: each window's prediction counts with its "
                    "blending weight at the voxel's place in that window.")
        else:
            hint = ("a window's prediction must land where the window was cut from, and every voxel gets the "
                    "weighted mean of all windows that contain it.")
        worst = np.unravel_index(np.argmax(np.abs(got.astype(float) - expected)), expected.shape)
        fail(name, label, f"at voxel {tuple(int(i) for i in worst)} expected {expected[worst]:.5f}, "
             f"got {float(got[worst]):.5f}.", hint)
    ok(f"{name}: correct on {len(cases)} volumes (every window, Gaussian-weighted mean, float32 (X, Y, Z)).")
