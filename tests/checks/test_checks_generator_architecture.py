"""Tests for helpers/checks/generator.py and helpers/checks/architecture.py: the checks
pass on the reference implementations and fail, with a helpful message, on the usual
broken ones."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy import ndimage

from helpers import checks, generator, models
from helpers.checks import architecture as arch_checks
from helpers.checks import generator as gen_checks


def _fails(check, fn, *fragments, **kwargs):
    with pytest.raises(AssertionError) as info:
        check(fn, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_checks_are_found_by_name():
    assert checks.check_percentile_stretch is gen_checks.check_percentile_stretch
    assert checks.check_unet_3d is arch_checks.check_unet_3d


# --------------------------------------------------------------------------- percentile_stretch

def test_percentile_stretch_check_passes_reference(capsys):
    checks.check_percentile_stretch(generator.percentile_stretch)
    checks.check_percentile_stretch(generator.percentile_stretch, random_cases=10, seed=3)
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["✓ percentile_stretch: 6 cases passed", "✓ percentile_stretch: 14 cases passed"]


def _min_max(image, low=5, high=95):
    image = np.asarray(image, np.float32)
    return ((image - image.min()) / (image.max() - image.min())).astype(np.float32)


def _no_clip(image, low=5, high=95):
    image = np.asarray(image, np.float32)
    lo, hi = np.percentile(image, [low, high])
    return ((image - lo) / (hi - lo)).astype(np.float32)


def _fixed_percentiles(image, low=5, high=95):
    return generator.percentile_stretch(image)


def _nan_on_constant(image, low=5, high=95):
    image = np.asarray(image, np.float32)
    lo, hi = np.percentile(image, [low, high])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip((image - lo) / (hi - lo), 0, 1).astype(np.float32)


def test_percentile_stretch_check_catches_usual_mistakes():
    _fails(checks.check_percentile_stretch, _min_max, "hot pixel", "min-max")
    _fails(checks.check_percentile_stretch, _no_clip, "[0, 1]", "clip")
    _fails(checks.check_percentile_stretch, _fixed_percentiles, "low=2, high=98", "low and high arguments")
    _fails(checks.check_percentile_stretch, _nan_on_constant, "constant image", "NaN")
    _fails(checks.check_percentile_stretch, lambda im, low=5, high=95: generator.percentile_stretch(
        im, low, high).astype(np.float64), "float32")


# --------------------------------------------------------------------------- dataset

def test_dataset_check_passes_reference(capsys):
    checks.check_dataset(generator.SegmentationDataset)
    assert capsys.readouterr().out.startswith("✓ dataset: 3 cases passed")


class _SeparateShuffle(generator.SegmentationDataset):
    """Shuffles images and masks independently: pairs out of step."""

    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        if self.shuffle and len(y) > 1:
            y = np.roll(y, 1, axis=0)
        return x, y


class _DropsLastBatch(generator.SegmentationDataset):
    def __len__(self):
        return len(self.pairs) // self.batch_size


class _NoReshuffle(generator.SegmentationDataset):
    def on_epoch_end(self):
        pass


class _UnseededShuffle(generator.SegmentationDataset):
    def _make_order(self):
        order = np.arange(len(self.pairs))
        if self.shuffle:
            np.random.shuffle(order)
        return order


class _NoSuper(generator.SegmentationDataset):
    def __init__(self, pairs, **kwargs):
        self.__dict__.update(pairs=[(p, m) for p, m in pairs], batch_size=kwargs["batch_size"],
                             image_size=kwargs["image_size"], shuffle=kwargs["shuffle"],
                             seed=kwargs["seed"], augment=False, augment_options={},
                             preprocess=generator.percentile_stretch, n_classes=1,
                             label_map={}, epoch=0)
        self.order = self._make_order()


def _bilinear_masks(pairs, **kwargs):
    """Resizes masks with interpolation: values between 0 and 1."""

    class Soft(generator.SegmentationDataset):
        def _encode(self, mask, path):
            return ndimage.uniform_filter(mask.astype(np.float32), 3)[..., None]

    return Soft(pairs, **kwargs)


def test_dataset_check_catches_usual_mistakes():
    _fails(checks.check_dataset, _SeparateShuffle, "out of step")
    _fails(checks.check_dataset, _DropsLastBatch, "smaller batch")
    _fails(checks.check_dataset, _NoReshuffle, "on_epoch_end")
    _fails(checks.check_dataset, _UnseededShuffle, "seed alone")
    _fails(checks.check_dataset, _NoSuper, "super().__init__")
    _fails(checks.check_dataset, _bilinear_masks, "only 0 and 1", "interpolated")


# --------------------------------------------------------------------------- augment_pair

def test_augment_pair_check_passes_reference(capsys):
    checks.check_augment_pair(generator.augment_pair)
    checks.check_augment_pair(generator.augment_pair, random_cases=12, seed=5)
    assert capsys.readouterr().out.count("✓ augment_pair") == 2


def _image_only(image, mask, rng):
    return generator.augment_pair(image, mask, rng)[0], mask.copy()


def _independent(image, mask, rng):
    return generator.augment_pair(image, mask, rng)[0], generator.augment_pair(image, mask, rng)[1]


def _interpolated_mask(image, mask, rng):
    angle = rng.uniform(-10, 10)
    return (ndimage.rotate(image, angle, reshape=False, order=1),
            ndimage.rotate(mask.astype(np.float32), angle, reshape=False, order=1))


def _global_random(image, mask, rng):
    return generator.augment_pair(image, mask, np.random.default_rng())


def _too_strong(image, mask, rng):
    return generator.augment_pair(image, mask, rng, max_rotation=90, max_shift=0.4, flip=False)


def test_augment_pair_check_catches_usual_mistakes():
    _fails(checks.check_augment_pair, _image_only, "line up", "same flip")
    _fails(checks.check_augment_pair, _independent, "line up")
    _fails(checks.check_augment_pair, _interpolated_mask, "binary", "interpolated")
    _fails(checks.check_augment_pair, _global_random, "same seed", "rng")
    _fails(checks.check_augment_pair, _too_strong, "too strong")
    _fails(checks.check_augment_pair, lambda image, mask, rng: (image.copy(), mask.copy()), "masks changed")


# --------------------------------------------------------------------------- blocks

def test_block_checks_pass_reference(capsys):
    checks.check_conv_block(models.conv_block)
    checks.check_encoder_block(models.encoder_block)
    checks.check_decoder_block(models.decoder_block)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["✓ conv_block", "✓ encoder_block", "✓ decoder_block"]


def _conv_relu_then_bn(x, filters, batch_norm=True, dropout=0.0):
    for _ in range(2):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization()(x)
    if dropout:
        x = keras.layers.SpatialDropout2D(dropout)(x)
    return x


def _one_conv(x, filters, batch_norm=True, dropout=0.0):
    x = keras.layers.Conv2D(filters, 3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x) if batch_norm else x
    return keras.layers.Activation("relu")(x)


def _valid_padding(x, filters, batch_norm=True, dropout=0.0):
    for _ in range(2):
        x = keras.layers.Conv2D(filters, 3)(x)
        x = keras.layers.BatchNormalization()(x) if batch_norm else x
        x = keras.layers.Activation("relu")(x)
    return x


def _no_dropout(x, filters, batch_norm=True, dropout=0.0):
    return models.conv_block(x, filters, batch_norm=batch_norm, dropout=0.0)


def test_conv_block_check_catches_usual_mistakes():
    _fails(checks.check_conv_block, _conv_relu_then_bn, "before BatchNorm")
    _fails(checks.check_conv_block, _one_conv, "2 convolutions")
    _fails(checks.check_conv_block, _valid_padding, "output shape", "same height and width")
    _fails(checks.check_conv_block, _no_dropout, "dropout=0.3", "spatial dropout")


def test_encoder_block_check_catches_usual_mistakes():
    def pool_first(x, filters, batch_norm=True, dropout=0.0):
        pooled = keras.layers.MaxPooling2D(2)(x)
        return pooled, models.conv_block(pooled, filters)

    def swapped(x, filters, batch_norm=True, dropout=0.0):
        skip, pooled = models.encoder_block(x, filters)
        return pooled, skip

    _fails(checks.check_encoder_block, pool_first, "skip should have shape")
    _fails(checks.check_encoder_block, swapped, "swapped")


def _encoder_with(mistake):
    """A learner's encoder step (Exercise 2.2, an ungraded warm-up) with one beginner error."""
    def encoder(x, filters, batch_norm=True, dropout=0.0):
        if mistake == "pool first":
            pooled = keras.layers.MaxPooling2D(2)(x)
            skip = models.conv_block(pooled, filters, batch_norm=batch_norm, dropout=dropout)
            return skip, skip
        skip = models.conv_block(x, filters, batch_norm=batch_norm, dropout=dropout)
        if mistake == "strided conv":
            pooled = keras.layers.Conv2D(filters, 3, strides=2, padding="same")(skip)
        elif mistake == "pool 4":
            pooled = keras.layers.MaxPooling2D(4)(skip)
        else:
            pooled = keras.layers.MaxPooling2D(2)(skip)
        if mistake == "swapped":
            return pooled, skip
        if mistake == "skip is input":
            return x, pooled
        return skip, pooled
    return encoder


@pytest.mark.parametrize("mistake", ["pool first", "strided conv", "pool 4", "swapped", "skip is input"])
def test_encoder_block_check_catches_the_warm_ups_wrong_solutions(mistake):
    """Exercise 2.2 is an ungraded warm-up, so its wrong solutions live here and not in
    test_wrong_solutions.py (which covers graded exercises); its check must still catch them."""
    message = _fails(checks.check_encoder_block, _encoder_with(mistake))
    assert len(message) > 40


def test_encoder_block_check_accepts_the_warm_ups_answer(capsys):
    checks.check_encoder_block(_encoder_with(None))
    assert capsys.readouterr().out.startswith("✓ encoder_block")


def _no_skip(x, skip, filters, batch_norm=True, dropout=0.0):
    x = keras.layers.Conv2DTranspose(filters, 2, strides=2, padding="same")(x)
    return models.conv_block(x, filters, batch_norm=batch_norm, dropout=dropout)


def _skip_ignored(x, skip, filters, batch_norm=True, dropout=0.0):
    x = keras.layers.Conv2DTranspose(filters, 2, strides=2, padding="same")(x)
    x = keras.layers.Concatenate()([x, x])
    return models.conv_block(x, filters, batch_norm=batch_norm, dropout=dropout)


def test_decoder_block_check_catches_missing_skip():
    _fails(checks.check_decoder_block, _no_skip, "skip connection is missing")
    _fails(checks.check_decoder_block, _skip_ignored, "does not depend on the skip")


# --------------------------------------------------------------------------- U-Net

def test_unet_checks_pass_reference(capsys):
    checks.check_unet(models.build_unet)
    checks.check_unet_3d(models.build_unet)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["✓ build_unet: 4 cases passed", "✓ build_unet (3D): 3 cases passed"]


def _unet_without_skips(input_shape, n_classes=1, depth=4, base_filters=16, dropout=0.1):
    inputs = keras.Input(input_shape)
    x = inputs
    for level in range(depth):
        _, x = models.encoder_block(x, base_filters * 2 ** level, dropout=dropout)
    x = models.conv_block(x, base_filters * 2 ** depth, dropout=dropout)
    for level in reversed(range(depth)):
        x = keras.layers.Conv2DTranspose(base_filters * 2 ** level, 2, strides=2, padding="same")(x)
        x = models.conv_block(x, base_filters * 2 ** level, dropout=dropout)
    out = keras.layers.Conv2D(n_classes, 1, activation="sigmoid" if n_classes == 1 else "softmax")(x)
    return keras.Model(inputs, out)


def _unet_no_size_check(input_shape, **kwargs):
    factor = 2 ** kwargs.get("depth", 4)
    fixed = tuple(s // factor * factor for s in input_shape[:-1]) + (input_shape[-1],)
    return models.build_unet(fixed, **kwargs)


def _unet_always_sigmoid(input_shape, n_classes=1, **kwargs):
    model = models.build_unet(input_shape, n_classes=n_classes, **kwargs)
    model.layers[-1].activation = keras.activations.sigmoid
    return model


def _unet_2d_only(input_shape, **kwargs):
    if len(input_shape) == 4:  # squeezes the volume into channels: a 2D U-Net
        input_shape = input_shape[1:3] + (input_shape[0] * input_shape[3],)
    return models.build_unet(input_shape, **kwargs)


def test_unet_checks_catch_usual_mistakes():
    _fails(checks.check_unet, _unet_without_skips, "skip concatenations")
    _fails(checks.check_unet, _unet_no_size_check, "ValueError")
    _fails(checks.check_unet, _unet_always_sigmoid, "sum to 1", "softmax")
    _fails(checks.check_unet, lambda shape, **kw: models.build_unet(shape, **{**kw, "base_filters": 4}),
           "parameters")
    _fails(checks.check_unet_3d, _unet_2d_only, "output shape")


def _unet_conv2d_for_3d(input_shape, n_classes=1, depth=4, base_filters=16, batch_norm=True, dropout=0.1):
    if len(input_shape) == 4:      # squeezes depth into channels: a 2D network on volumes
        d, h, w, c = input_shape
        inputs = keras.Input(input_shape)
        x = keras.layers.Reshape((h, w, d * c))(inputs)
        model2d = models.build_unet((h, w, d * c), d * n_classes, depth, base_filters, batch_norm, dropout)
        out = keras.layers.Reshape((d, h, w, n_classes))(keras.layers.Permute((3, 1, 2))(model2d(x)))
        return keras.Model(inputs, out)
    return models.build_unet(input_shape, n_classes, depth, base_filters, batch_norm, dropout)


def _unet_only_2d(input_shape, **kwargs):
    if len(input_shape) != 3:
        raise ValueError("2D only")
    return models.build_unet(input_shape, **kwargs)


@pytest.mark.parametrize("wrong, fragment", [
    (_unet_only_2d, "ValueError"),
    (_unet_conv2d_for_3d, "Conv3D"),
    (_unet_no_size_check, ""),
    (lambda shape, **kw: models.build_unet(shape, **{**kw, "dropout": 0.1}), "dropout"),
    (lambda shape, **kw: models.build_unet(shape, **{**kw, "base_filters": kw.get("base_filters", 16) + 1}),
     "parameters"),
], ids=["2D only", "Conv2D on volumes", "no size check", "ignores dropout", "other filters"])
def test_unet_3d_check_catches_the_warm_ups_wrong_solutions(wrong, fragment):
    """Exercise 2.6 (3D U-Net) is an ungraded warm-up, so its wrong solutions live here and not
    in test_wrong_solutions.py (which covers graded exercises); its check must still catch them."""
    _fails(checks.check_unet_3d, wrong, fragment)


@pytest.mark.parametrize("shape, n_classes, depth, base, batch_norm", [
    ((32, 48, 3), 3, 2, 4, True), ((16, 16, 16, 2), 4, 2, 4, True), ((32, 32, 1), 1, 3, 8, False)])
def test_parameter_formula_matches_reference_models(shape, n_classes, depth, base, batch_norm):
    for use_bias in (None, True):
        model = models.build_unet(shape, n_classes=n_classes, depth=depth, base_filters=base,
                                  batch_norm=batch_norm, use_bias=use_bias)
        assert arch_checks._unet_params(shape, n_classes, depth, base, batch_norm, use_bias) == model.count_params()


# --------------------------------------------------------------------------- residual block

def test_residual_block_check_passes_reference_and_variants(capsys):
    checks.check_residual_block(models.residual_block)
    checks.check_residual_block(lambda x, f, batch_norm=True, dropout=0.0: models.residual_block(
        x, f, batch_norm=batch_norm, dropout=dropout, use_bias=True), random_cases=3, seed=4)
    assert capsys.readouterr().out.count("✓ residual_block") == 2


def test_residual_block_check_rejects_the_plain_block():
    _fails(checks.check_residual_block, models.conv_block, "no shortcut")


def test_numpy_convolution_matches_keras():
    rng = np.random.default_rng(0)
    for shape, kernel in (((2, 6, 5, 3), (3, 3, 3, 4)), ((1, 4, 5, 3, 2), (3, 3, 3, 2, 3)),
                          ((1, 4, 5, 3), (1, 1, 3, 2))):
        rank = len(shape) - 2
        layer = (keras.layers.Conv2D if rank == 2 else keras.layers.Conv3D)(
            kernel[-1], kernel[0], padding="same")
        x = rng.normal(size=shape).astype("float32")
        expected = np.asarray(layer(x))
        np.testing.assert_allclose(arch_checks._np_conv_same(x, np.asarray(layer.kernel), np.asarray(layer.bias)),
                                   expected, rtol=1e-4, atol=1e-4)


def test_layers_for_check_passes_the_reference_and_names_the_usual_mistakes(capsys):
    from types import SimpleNamespace

    from helpers import models

    checks.check_layers_for(models.layers_for)
    assert capsys.readouterr().out.startswith("✓ layers_for")

    L = keras.layers
    two_d = SimpleNamespace(Conv=L.Conv2D, ConvTranspose=L.Conv2DTranspose, MaxPool=L.MaxPooling2D,
                            SpatialDropout=L.SpatialDropout2D)

    def only_2d(x):
        if len(x.shape) == 4:
            return two_d
        raise NotImplementedError()

    def always_2d(x):            # forgets the rank: a 3D tensor gets 2D layers
        return two_d

    def no_error(x):             # the 3D classes for everything that is not 2D
        return two_d if len(x.shape) == 4 else models.layers_for(keras.Input((4, 4, 4, 1)))

    def drops_2d(x):             # 3D right, 2D lost
        if len(x.shape) == 5:
            return models.layers_for(x)
        raise ValueError("only 3D")

    for wrong, message in ((only_2d, "not written yet"), (always_2d, "3D tensor.*Conv2D"),
                           (no_error, "1D tensor.*expected a ValueError"), (drops_2d, "2D tensor")):
        with pytest.raises(AssertionError, match=message):
            checks.check_layers_for(wrong)
