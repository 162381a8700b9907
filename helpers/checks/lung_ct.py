"""Checks for lesson 06 (3D lung CT): HU windowing, lung volume, volumetric Dice, the 3D
U-Net and saving a prediction as NIfTI on the CT's grid.

Each check raises ``AssertionError`` naming the failed case, expected versus got, and a
hint; it prints one success line when all is well.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from helpers.checks._common import fail, ok

__all__ = ["check_window_hu", "check_lung_volume", "check_volumetric_dice", "check_3d_unet",
           "check_save_prediction"]


def _reference_window(volume, window):
    lower, upper = window
    return np.clip((np.asarray(volume, np.float32) - lower) / (upper - lower), 0, 1).astype(np.float32)


def check_window_hu(fn, random_cases: int = 3, seed: int = 0) -> None:
    """Check ``fn(volume, window=(lower, upper))``: HU mapped linearly to ``[0, 1]``,
    clipped, float32, same shape, input untouched, the lung window by default; on fixed
    values and random volumes."""
    fixed = np.array([-3024, -1000, -350, 300, 1500], dtype=np.int16)
    got = np.asarray(fn(fixed.copy(), window=(-1000, 300)))
    expected = np.array([0.0, 0.0, 0.5, 1.0, 1.0], np.float32)
    if got.shape != fixed.shape:
        fail('window_hu', "window (-1000, 300) on 5 values",
             f"expected shape {fixed.shape}, got shape {got.shape}.",
             "return an array of the input's shape (no reduction, no channel axis).")
    if got.dtype != np.float32:
        fail('window_hu', "window (-1000, 300)",
             f"expected dtype float32, got dtype {got.dtype}.",
             "convert with .astype(np.float32): Keras trains in float32, and int16 HU would "
              "overflow or truncate.")
    if not np.allclose(got, expected, atol=1e-6):
        hint = ("values outside the window must be clipped to 0 and 1 (np.clip)."
                if got.min() < 0 or got.max() > 1 else
                "subtract the lower bound, then divide by the width (upper - lower).")
        fail('window_hu', "HU [-3024, -1000, -350, 300, 1500] with window (-1000, 300)",
             f"expected {expected.tolist()}, got {np.round(got, 4).tolist()}.",
             hint)
    got = np.asarray(fn(fixed.copy()))
    if got.shape != fixed.shape or not np.allclose(got, expected, atol=1e-6):
        fail('window_hu', "no window given: the default",
             f"expected the lung window's {expected.tolist()}, got {np.round(np.asarray(got, float), 4).tolist()}.",
             "keep the default window=config.HU_WINDOW_LUNG, (-1000, 300) HU.")
    volume = np.array([[[-1024, -100], [40, 250]]], dtype=np.int16)
    before = volume.copy()
    got = np.asarray(fn(volume, window=(-150, 250)))
    expected = _reference_window(before, (-150, 250))
    if not np.array_equal(volume, before):
        fail('window_hu', "input volume after the call",
             "expected unchanged, got modified in place.",
             "work on a float copy, e.g. np.asarray(volume, dtype=np.float32).")
    if got.shape != before.shape or not np.allclose(got, expected, atol=1e-6):
        fail('window_hu', "liver window (-150, 250) on a (1, 2, 2) volume",
             f"expected {np.round(expected, 4).tolist()}, got {np.round(np.asarray(got, float), 4).tolist()}.",
             "use the window argument, not fixed numbers for the lung window.")
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
                 "(HU - lower) / (upper - lower), then clip to [0, 1].")
    ok("window_hu: correct (linear in the window, clipped to [0, 1], float32).")


def _reference_volume_ml(mask, affine):
    return float(np.count_nonzero(np.asarray(mask) > 0) * abs(np.linalg.det(np.asarray(affine)[:3, :3])) / 1000.0)


def check_lung_volume(fn, random_cases: int = 3, seed: int = 0) -> None:
    """Check ``fn(mask, affine) -> float``: the volume of the mask in millilitres, from the
    number of voxels and the voxel volume given by the affine (1 mL = 1000 mm^3)."""
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
        hint = "the affine's diagonal has negative entries: take the absolute value of the determinant." \
            if abs(got + 0.16) < 1e-6 else ("divide mm^3 by 1000 to get millilitres."
                                           if abs(got - 160) < 1e-3 else
                                           "voxel volume = |det(affine[:3, :3])| in mm^3; volume = "
                                           "number of mask voxels x voxel volume / 1000.")
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
             "use the determinant of affine[:3, :3], not its diagonal: the "
              "diagonal is not the spacing when the axes are rotated.")
    rng = np.random.default_rng(seed)
    for case in range(random_cases):
        mask = (rng.random((8, 9, 7)) > rng.uniform(0.2, 0.9)).astype(np.uint8)
        affine = np.diag(list(rng.uniform(0.5, 5.0, 3) * rng.choice([-1, 1], 3)) + [1.0])
        got, expected = float(fn(mask, affine)), _reference_volume_ml(mask, affine)
        if abs(got - expected) > 1e-6 * max(1.0, expected):
            fail('lung_volume_ml', f"random mask {case}",
                 f"expected {expected:.5f} mL, got {got:.5f}.",
                 "a volume is never negative: take the absolute value of the determinant "
                  "(an odd number of flipped axes makes it negative)." if abs(got + expected) < 1e-6 * max(1.0, expected)
                  else "count the voxels where mask > 0 and multiply by |det(affine[:3, :3])| / 1000.")
    ok("lung_volume_ml: correct (voxel count x |det(affine)| / 1000).")


def _reference_dice(a, b):
    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def check_volumetric_dice(fn, random_cases: int = 5, seed: int = 0) -> None:
    """Check ``fn(true_mask, pred_mask) -> float``: hard Dice over a whole volume, 1.0 for
    two empty masks, 0.0 when only one is empty, for bool, uint8 and float {0, 1} inputs."""
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
                 "convert both masks to booleans first (mask > 0.5).")
        if not np.isfinite(got):
            fail('volumetric_dice', case,
                 f"expected {expected:.4f}, got {got}.",
                 "two empty masks agree perfectly: return 1.0 when "
                  "both are empty instead of dividing 0 by 0.")
        if abs(got - expected) > 1e-6:
            hint = {"bool inputs": "bool + bool is logical or: count with np.sum on each mask, or cast to int.",
                    "half of the truth predicted": "Dice = 2 |A and B| / (|A| + |B|), summed over the whole volume."
                    }.get(case, "Dice = 2 |A and B| / (|A| + |B|); 1.0 for two empty masks.")
            fail('volumetric_dice', case, f"expected {expected:.4f}, got {got:.4f}.", hint)
    rng = np.random.default_rng(seed)
    for case in range(random_cases):
        truth = rng.random((12, 10, 8)) > rng.uniform(0.1, 0.9)
        prediction = rng.random((12, 10, 8)) > rng.uniform(0.1, 0.9)
        got, expected = float(fn(truth.astype(np.uint8), prediction.astype(np.uint8))), _reference_dice(truth, prediction)
        if abs(got - expected) > 1e-6:
            fail('volumetric_dice', f"random volumes {case}",
                 f"expected {expected:.5f}, got {got:.5f}.",
                 "sum over every voxel of the volume (not per slice, not a mean of slices).")
    ok("volumetric_dice: correct (hard Dice over the whole volume, 1.0 for two empty masks).")


def check_3d_unet(model, input_shape=None, max_parameters: int = 1_500_000, depth: int | None = None,
                  dropout: float | None = None, base_filters: int | None = None, min_depth: int = 1,
                  min_bottleneck: int = 1, min_parameters: int = 0) -> None:
    """Check a Keras model for 3D binary segmentation: input ``(D, H, W, 1)``, output
    ``(D, H, W, 1)`` with a sigmoid, 3D convolutions, at most ``max_parameters`` weights
    (so that it trains on a laptop CPU) and at least ``min_parameters`` (so that the budget is
    used), at least ``min_depth`` poolings and a bottleneck of
    at least ``min_bottleneck`` voxels per side; if given, exactly ``depth`` poolings, a
    spatial dropout of rate ``dropout`` and ``base_filters`` filters in the first convolution."""
    import keras

    if not isinstance(model, keras.Model):
        fail('3D U-Net', "the model",
             f"expected a keras.Model, got {type(model).__name__}.",
             "return the model built by models.build_unet(...).")
    shape_in = tuple(model.input_shape)
    if len(shape_in) != 5:
        fail('3D U-Net', "model input shape",
             f"expected (None, D, H, W, 1): a 3D volume with one channel, got {shape_in}.",
             "pass a 4-number input_shape (D, H, W, 1) to build_unet: 4 numbers make it 3D.")
    if input_shape is not None and tuple(shape_in[1:]) != tuple(input_shape):
        fail('3D U-Net', "model input shape",
             f"expected {tuple(input_shape)}, got {tuple(shape_in[1:])}.",
             "build the model for the training grid TRAIN_SHAPE plus one channel.")
    shape_out = tuple(model.output_shape)
    if shape_out[1:] != shape_in[1:4] + (1,):
        fail('3D U-Net', "model output shape",
             f"expected {shape_in[1:4] + (1,)}, got {shape_out[1:]}.",
             "one output channel (n_classes=1) on the input's grid.")
    if not any(isinstance(layer, keras.layers.Conv3D) for layer in model.layers):
        fail('3D U-Net', "layers",
             "expected Conv3D layers, got none.",
             "a 4-D input_shape makes build_unet use Conv3D.")
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    if activation != "sigmoid":
        fail('3D U-Net', "activation of the last layer",
             f"expected sigmoid, got {activation}.",
             "one class (lung vs background) needs a sigmoid: n_classes=1.")
    pools = sum(type(layer).__name__.startswith("MaxPooling3D") for layer in model.layers)
    if depth is not None and pools != depth:
        fail('3D U-Net', "number of poolings (depth)",
             f"expected {depth}, got {pools}.",
             f"depth={depth}: the encoder halves the volume {depth} times (pass depth={depth} to build_unet).")
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
             f"pass dropout={dropout} to build_unet.")
    if dropout == 0 and any(r > 0 for r in rates):
        fail('3D U-Net', "spatial dropout rate",
             f"expected 0, got {rates}.",
             "pass dropout=0.0 to build_unet.")
    first = next((layer for layer in model.layers if isinstance(layer, keras.layers.Conv3D)), None)
    if base_filters is not None and first is not None and first.filters != base_filters:
        fail('3D U-Net', "filters of the first convolution (base_filters)",
             f"expected {base_filters}, got {first.filters}.",
             f"pass base_filters={base_filters} to build_unet.")
    count = model.count_params()
    if count > max_parameters:
        fail('3D U-Net', "number of weights",
             f"expected at most {max_parameters:,}, got {count:,}.",
             "a 3D U-Net grows fast: use base_filters=8 and depth=3 for a CPU.")
    if count < min_parameters:
        fail('3D U-Net', "number of weights",
             f"expected at least {min_parameters:,}, got {count:,}: most of the budget of "
             f"{max_parameters:,} is unused.",
             "take more filters (base_filters) or one more level (depth), as long as the bottleneck "
             "keeps its size.")
    ok(f"3D U-Net: input {shape_in[1:]}, output {shape_out[1:]}, {count:,} weights.")


def _reference_resample(probabilities, shape):
    from skimage.transform import resize

    return resize(np.asarray(probabilities, np.float32), shape, order=1, preserve_range=True,
                  anti_aliasing=False)


def check_save_prediction(fn) -> None:
    """Check ``fn(probabilities, reference_path, output_path) -> Path``: the probabilities
    (on the training grid) are resampled to the reference CT's grid, thresholded at 0.5 and
    saved as uint8 {0, 1} NIfTI with the reference's affine; an all-zero prediction gives an
    empty mask."""
    import nibabel as nib

    from helpers.data.lung_ct import nifti_bytes

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        reference_shape = (30, 26, 14)
        affine = np.array([[-0.9, 0, 0, 120.0], [0, -0.9, 0, 95.0], [0, 0, 2.5, -310.0], [0, 0, 0, 1]])
        reference = folder / "case" / "ct.nii.gz"
        reference.parent.mkdir()
        reference.write_bytes(nifti_bytes(np.full(reference_shape, -1000, np.int16), affine))
        # an off-centre ellipsoid with three different radii: a transposed or flipped
        # volume does not match (a symmetric blob would)
        grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 16)] * 3, indexing="ij"))
        centre = np.array([0.35, -0.2, 0.05])[:, None, None, None]
        radii = np.array([0.45, 0.7, 0.3])[:, None, None, None]
        distance = np.sqrt((((grid - centre) / radii) ** 2).sum(0))
        probabilities = (1 / (1 + np.exp(8 * (distance - 1.0)))).astype(np.float32)
        output = folder / "case" / "prediction.nii.gz"
        returned = fn(probabilities.copy(), reference, output)
        if not output.is_file():
            fail('save_prediction', "after the call",
                 f"expected a file {output.name}, got no file.",
                 "write to output_path (e.g. data.save_nifti(mask, affine, output_path, force=True)).")
        if returned is None or Path(returned) != output:
            fail('save_prediction', "return value",
                 f"expected the output path {output}, got {repr(returned)}.",
                 "return output_path.")
        image = nib.load(str(output))
        saved = np.asarray(image.dataobj)
        if saved.shape != reference_shape:
            fail('save_prediction', "shape of the saved mask",
                 f"expected {reference_shape} (the CT's grid), got {saved.shape}.",
                 "resample the probabilities to the shape of the reference CT before thresholding "
                  "(inference.resize_to(probabilities, ct_shape)).")
        if not np.allclose(image.affine, affine, atol=1e-4):
            fail('save_prediction', "affine of the saved mask",
                 f"expected {np.round(affine, 2).tolist()}, got {np.round(image.affine, 2).tolist()}.",
                 "save with the affine of the reference CT (data.load_nifti(reference_path)[1]), not "
                  "np.eye(4): otherwise the mask lands in the wrong place in a viewer.")
        if saved.dtype != np.uint8 or not set(np.unique(saved).tolist()) <= {0, 1}:
            fail('save_prediction', "saved values",
                 f"expected uint8 in {{0, 1}}, got {saved.dtype} {np.unique(saved)[:5].tolist()}.",
                 "threshold at 0.5 and convert with .astype(np.uint8).")
        expected = _reference_resample(probabilities, reference_shape) > 0.5
        agreement = _reference_dice(expected, saved)
        if agreement < 0.97:
            fail('save_prediction', "saved mask against the resampled, thresholded probabilities",
                 f"expected Dice >= 0.97, got {agreement:.3f}.",
                 "resample the probabilities linearly (order 1), then threshold "
                  "at 0.5; do not transpose or flip axes.")
        empty_output = folder / "case" / "empty.nii.gz"
        fn(np.zeros_like(probabilities), reference, empty_output)
        empty = np.asarray(nib.load(str(empty_output)).dataobj) if empty_output.is_file() else None
        if empty is None or empty.shape != reference_shape or empty.any():
            got = "no file" if empty is None else f"{int(np.count_nonzero(empty))} foreground voxels"
            fail('save_prediction', "an all-zero prediction",
                 f"expected an empty mask on the CT's grid, got {got}.",
                 "threshold the probabilities at a fixed 0.5 (not at their mean or after dividing by "
                 "their maximum): a prediction of no lung is an empty mask.")
    ok("save_prediction: correct (CT grid, CT affine, uint8 {0, 1}).")
