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
    for kwargs in [dict(upsampling="bilinear"), dict(block="residual"), dict(batch_norm=False, dropout=0.0)]:
        for shape in [(32, 32, 1), (16, 16, 16, 1)]:
            model = models.build_unet(shape, depth=2, base_filters=4, **kwargs)
            assert model.output_shape == (None,) + shape
    types = _layer_types(models.build_unet((32, 32, 1), depth=2, base_filters=4, block="residual"))
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


# ---------------------------------------------------------------------- residual block

def _block_model(shape, filters, **kwargs):
    inputs = keras.Input(shape)
    return keras.Model(inputs, models.residual_block(inputs, filters, **kwargs))


@pytest.mark.parametrize("shape, filters", [((12, 10, 3), 8), ((12, 10, 8), 8), ((6, 8, 10, 2), 4),
                                            ((6, 8, 10, 4), 4)])
def test_residual_block_shapes_and_projection_only_when_channels_differ(shape, filters):
    model = _block_model(shape, filters, dropout=0.2)
    assert model.output_shape == (None,) + shape[:-1] + (filters,)
    rank = len(shape) - 1
    convs = [layer for layer in model.layers if type(layer).__name__ == f"Conv{rank}D"]
    projections = [c for c in convs if tuple(c.kernel_size) == (1,) * rank]
    assert len(convs) - len(projections) == 2
    assert len(projections) == (1 if shape[-1] != filters else 0)
    types = _layer_types(model)
    assert types.count("Add") == 1 and types[-1] == f"SpatialDropout{rank}D"
    plain = keras.Model(model.inputs, models.conv_block(model.inputs[0], filters, dropout=0.2))
    extra = 0 if shape[-1] == filters else shape[-1] * filters + 4 * filters   # 1×1 conv + BatchNorm
    assert model.count_params() == plain.count_params() + extra


@pytest.mark.parametrize("shape, filters", [((6, 5, 4), 4), ((6, 5, 3), 4), ((3, 4, 5, 2), 2)])
def test_residual_block_adds_the_shortcut_before_the_relu(shape, filters):
    """With the 3×3 kernels zeroed (and BatchNorm an identity at inference) the residual
    branch is 0 and the block outputs relu(shortcut): x itself, or its 1×1 projection."""
    model = _block_model(shape, filters, use_bias=False)
    rank = len(shape) - 1
    projection = None
    for layer in model.layers:
        if type(layer).__name__.startswith("Conv") and tuple(layer.kernel_size) == (3,) * rank:
            layer.kernel.assign(np.zeros(layer.kernel.shape, "float32"))
        elif type(layer).__name__.startswith("Conv"):
            projection = layer
        elif type(layer).__name__ == "BatchNormalization":
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 1 - layer.epsilon, "float32"))
    x = np.random.default_rng(3).normal(size=(2,) + shape).astype("float32")
    got = np.asarray(model(x, training=False))
    shortcut = x if projection is None else np.tensordot(x, np.asarray(projection.kernel).reshape(shape[-1], filters), 1)
    assert (shortcut < 0).any()           # so that relu(shortcut) != shortcut
    np.testing.assert_allclose(got, np.maximum(shortcut, 0), rtol=1e-5, atol=1e-5)


def test_build_unet_block_option():
    for shape, kwargs in (((64, 64, 1), dict(depth=3, base_filters=8)), ((16, 16, 16, 1), dict(depth=2, base_filters=4))):
        plain = models.build_unet(shape, **kwargs)
        residual = models.build_unet(shape, block="residual", **kwargs)
        assert residual.output_shape == plain.output_shape
        assert _layer_types(residual).count("Add") == 2 * kwargs["depth"] + 1
        assert "Add" not in _layer_types(plain)
        # every block of a U-Net changes the channels, so each gets a 1×1 projection + BatchNorm
        depth, base = kwargs["depth"], kwargs["base_filters"]
        ins = [1] + [base * 2 ** level for level in range(depth)]
        outs = [base * 2 ** level for level in range(depth + 1)]
        extra = sum(c * f + 4 * f for c, f in zip(ins, outs))
        extra += sum(2 * f * f + 4 * f for f in (base * 2 ** level for level in range(depth)))
        assert residual.count_params() == plain.count_params() + extra
    with pytest.raises(TypeError, match="residual"):   # the legacy residual= flag is gone: block= is the one name
        models.build_unet((32, 32, 1), depth=2, residual=True)
    with pytest.raises(ValueError, match="block"):
        models.build_unet((32, 32, 1), depth=2, block="dense")


def test_reference_decoder_block_has_the_lessons_argument_order():
    """Lesson 02's decoder_block(x, skip, filters, batch_norm, dropout), positional arguments
    included, is the reference decoder step with a transposed convolution."""
    import keras

    from helpers import checks

    x, skip = keras.Input((8, 8, 16)), keras.Input((16, 16, 8))
    out = models.reference_decoder_block(x, skip, 8, False, 0.1)   # positional, as build_unet calls it
    assert tuple(out.shape[1:]) == (16, 16, 8)
    kinds = [type(layer).__name__ for layer in keras.Model([x, skip], out).layers]
    assert "Conv2DTranspose" in kinds and "BatchNormalization" not in kinds and "SpatialDropout2D" in kinds
    checks.check_decoder_block(models.reference_decoder_block)
