"""Tests for helpers/models.py: U-Net blocks and builder in 2D and 3D."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from helpers import models


def _layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


def test_conv_block_shapes_and_layers():
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, models.conv_block(inputs, 8, dropout=0.2))
    assert model.output_shape == (None, 16, 16, 8)
    types = _layer_types(model)
    assert types.count("Conv2D") == 2 and types.count("BatchNormalization") == 2
    assert types.index("Conv2D") < types.index("BatchNormalization") < types.index("Activation")
    assert types[-1] == "SpatialDropout2D"
    # 3*3*3*8 + 3*3*8*8 weights without bias + 2 BN layers of 4*8
    assert model.count_params() == 3 * 3 * 3 * 8 + 3 * 3 * 8 * 8 + 2 * 4 * 8


def test_encoder_decoder_blocks_2d_and_3d():
    for shape in [(16, 16, 4), (8, 16, 16, 4)]:
        inputs = keras.Input(shape)
        skip, pooled = models.encoder_block(inputs, 8)
        assert tuple(skip.shape[1:-1]) == shape[:-1] and skip.shape[-1] == 8
        assert tuple(pooled.shape[1:-1]) == tuple(s // 2 for s in shape[:-1])
        for upsampling in ("transpose", "bilinear"):
            up = models.decoder_block(pooled, skip, 4, upsampling=upsampling)
            assert tuple(up.shape[1:]) == shape[:-1] + (4,)
    with pytest.raises(ValueError, match="upsampling"):
        models.decoder_block(pooled, skip, 4, upsampling="cubic")


@pytest.mark.parametrize("input_shape, n_classes, depth", [
    ((64, 64, 1), 1, 3), ((32, 48, 3), 4, 2), ((16, 16, 16, 1), 1, 2), ((8, 16, 16, 2), 3, 3)])
def test_build_unet_output_shape_and_activation(input_shape, n_classes, depth):
    model = models.build_unet(input_shape, n_classes=n_classes, depth=depth, base_filters=4)
    assert model.output_shape == (None,) + input_shape[:-1] + (n_classes,)
    conv = "Conv2D" if len(input_shape) == 3 else "Conv3D"
    types = _layer_types(model)
    assert types.count("Concatenate") == depth
    assert types.count(conv) == 2 * (2 * depth + 1) + 1
    x = np.random.default_rng(0).random((2,) + input_shape).astype("float32")
    y = np.asarray(model(x, training=False))
    assert y.dtype == np.float32 and np.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 1
    if n_classes > 1:
        np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-5)
        assert model.layers[-1].activation.__name__ == "softmax"
    else:
        assert model.layers[-1].activation.__name__ == "sigmoid"


def test_parameter_counts_fixed_configs():
    # Default course model (lessons 02-05): 128x128 grey, depth 4, 16 base filters.
    assert models.count_parameters(models.build_unet((128, 128, 1))) == {
        "total": 1_945_233, "trainable": 1_942_289, "non_trainable": 2_944}
    # Small 2D and 3D configs, counted by hand in test_conv_block_shapes_and_layers' way.
    assert models.count_parameters(models.build_unet((64, 64, 1), depth=3, base_filters=8))["total"] == 121_737
    assert models.count_parameters(
        models.build_unet((16, 16, 16, 1), n_classes=3, depth=2, base_filters=4))["total"] == 21_607
    # Input size does not change the number of weights.
    assert models.build_unet((32, 32, 1), depth=3, base_filters=8).count_params() == 121_737


def test_bad_input_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 16"):
        models.build_unet((100, 100, 1), depth=4)
    with pytest.raises(ValueError, match="divisible"):
        models.build_unet((16, 16, 12, 1), depth=3)
    with pytest.raises(ValueError, match="channel"):
        models.build_unet((128, 128))
    models.build_unet((None, None, 1), depth=2, base_filters=4)  # unknown sizes are allowed


def test_variants_build():
    for kwargs in [dict(upsampling="bilinear"), dict(residual=True), dict(batch_norm=False, dropout=0.0)]:
        for shape in [(32, 32, 1), (16, 16, 16, 1)]:
            model = models.build_unet(shape, depth=2, base_filters=4, **kwargs)
            assert model.output_shape == (None,) + shape
    types = _layer_types(models.build_unet((32, 32, 1), depth=2, base_filters=4, residual=True))
    assert types.count("Add") == 5
    no_bn = models.build_unet((32, 32, 1), depth=2, base_filters=4, batch_norm=False, dropout=0.0)
    assert "BatchNormalization" not in _layer_types(no_bn) and "SpatialDropout2D" not in _layer_types(no_bn)


def test_save_load_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    model = models.build_unet((32, 32, 1), n_classes=2, depth=2, base_filters=4)
    x = np.random.default_rng(1).random((2, 32, 32, 1)).astype("float32")
    expected = np.asarray(model(x, training=False))
    path = tmp_path / "unet.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), expected, atol=1e-6)
    assert loaded.name == "unet"
