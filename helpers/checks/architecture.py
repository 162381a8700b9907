"""Checks for lesson 02 (architecture): conv block, encoder and decoder steps, the U-Net in
2D and 3D, the residual block.

Each check builds the learner's block on small ``keras.Input`` tensors, inspects the
layers it made (kinds, order, kernel sizes), compares output shapes and parameter counts
with the reference in :mod:`helpers.models` (convolutions with or without bias are both
accepted), runs it on random numbers where wiring matters (is the skip connection used?
is the pooled tensor the max-pooled skip?), and raises ``AssertionError`` naming the case,
expected versus got and the usual mistake. One success line otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from helpers.checks._common import call, fail, ok

__all__ = ["check_conv_block", "check_encoder_block", "check_decoder_block", "check_unet",
           "check_layers_for", "check_unet_3d", "check_max_depth", "check_residual_block",
           "check_noise_verdict"]


def _model(inputs, outputs):
    import keras

    return keras.Model(inputs, outputs)


def _kinds(model):
    return [type(layer).__name__ for layer in model.layers]


def _is_conv(layer):
    kind = type(layer).__name__
    return kind in ("Conv2D", "Conv3D")


def _is_relu(layer):
    kind = type(layer).__name__
    if kind == "ReLU":
        return True
    if kind == "Activation":
        return getattr(layer.activation, "__name__", "") == "relu"
    return False


def _activation_name(layer):
    return getattr(getattr(layer, "activation", None), "__name__", "linear")


def _shape(tensor):
    return tuple(tensor.shape)


# Parameter counts computed by formula (as helpers.models builds them; tests compare the
# two), so that a check does not have to build the reference models.

def _conv_params(rank, kernel, c_in, c_out, bias):
    return kernel ** rank * c_in * c_out + (c_out if bias else 0)


def _block_params(rank, c_in, filters, batch_norm=True, use_bias=None):
    bias = (not batch_norm) if use_bias is None else use_bias
    bn = 4 * filters if batch_norm else 0
    return (_conv_params(rank, 3, c_in, filters, bias) + bn
            + _conv_params(rank, 3, filters, filters, bias) + bn)


def _decoder_params(rank, c_in, c_skip, filters, batch_norm=True, use_bias=None):
    return (_conv_params(rank, 2, c_in, filters, True)
            + _block_params(rank, filters + c_skip, filters, batch_norm, use_bias))


def _unet_params(input_shape, n_classes, depth, base_filters, batch_norm=True, use_bias=None):
    rank = len(input_shape) - 1
    channels, total = input_shape[-1], 0
    for level in range(depth):
        total += _block_params(rank, channels, base_filters * 2 ** level, batch_norm, use_bias)
        channels = base_filters * 2 ** level
    total += _block_params(rank, channels, base_filters * 2 ** depth, batch_norm, use_bias)
    channels = base_filters * 2 ** depth
    for level in reversed(range(depth)):
        filters = base_filters * 2 ** level
        total += _decoder_params(rank, channels, filters, filters, batch_norm, use_bias)
        channels = filters
    return total + _conv_params(rank, 1, channels, n_classes, True)


def _counts(fn, *args):
    return {fn(*args, use_bias=False), fn(*args, use_bias=True)}


def _conv_structure(name, case, model, batch_norm, dropout, rank=2):
    """Shared checks of a model that should contain exactly one conv block."""
    convs = [layer for layer in model.layers if _is_conv(layer) and layer.kernel_size != (1,) * rank]
    if len(convs) != 2:
        fail(name, case, f"expected 2 convolutions (Conv{rank}D), found {len(convs)}.",
              "a conv block applies Conv -> BatchNorm -> ReLU twice.")
    for conv in convs:
        if tuple(conv.kernel_size) != (3,) * rank:
            fail(name, case, f"convolution kernels should be {'×'.join(['3'] * rank)}, got {conv.kernel_size}.",
                  "the block's convolutions each look at a 3×3 neighbourhood.")
        if conv.padding != "same":
            fail(name, case, f"the convolutions shrink the feature maps (padding '{conv.padding}').",
                  "a conv block keeps the same height and width as its input: a convolution that drops the "
                  "border loses 2 pixels each time, and the skips no longer fit.")
        if batch_norm and _activation_name(conv) != "linear":
            fail(name, case, f"a convolution has activation='{_activation_name(conv)}' before BatchNorm.",
                  "the convolution itself stays linear: the ReLU comes after the normalisation.")
    kinds = _kinds(model)
    n_bn = kinds.count("BatchNormalization")
    if batch_norm and n_bn != 2:
        fail(name, case, f"expected 2 BatchNormalization layers, found {n_bn}.",
              "one after each convolution (and none when batch_norm=False).")
    if not batch_norm and n_bn:
        fail(name, case, f"batch_norm=False but found {n_bn} BatchNormalization layers.",
              "batch_norm=False asks for a block without normalisation.")
    relus = sum(_is_relu(layer) for layer in model.layers) + sum(
        _activation_name(conv) == "relu" for conv in convs)
    if relus < 2:
        fail(name, case, f"expected 2 ReLU activations, found {relus}.",
              "each convolution's output, once normalised, goes through a ReLU.")
    if batch_norm:
        order = [k for k in kinds if k in (f"Conv{rank}D", "BatchNormalization")
                 or k in ("Activation", "ReLU")]
        first_conv = order.index(f"Conv{rank}D")
        if order[first_conv + 1:first_conv + 3] not in (["BatchNormalization", "Activation"],
                                                        ["BatchNormalization", "ReLU"]):
            fail(name, case, f"layers should go Conv -> BatchNorm -> ReLU, found {order[first_conv:first_conv + 3]}.",
                  "BatchNorm normalises the convolution's output, then ReLU.")
    dropouts = [layer for layer in model.layers if type(layer).__name__.startswith("SpatialDropout")]
    if dropout > 0:
        if not dropouts:
            fail(name, case, f"dropout={dropout} but no layer drops whole feature maps (spatial dropout).",
                  "the block ends with spatial dropout at the rate `dropout` when dropout > 0; ordinary "
                  "dropout zeroes single pixels, not whole maps.")
        if not any(abs(layer.rate - dropout) < 1e-9 for layer in dropouts):
            fail(name, case, f"expected a dropout rate of {dropout}, got {[layer.rate for layer in dropouts]}.",
                  "pass the dropout argument as the rate.")
    elif dropouts and any(layer.rate > 0 for layer in dropouts):
        fail(name, case, "dropout=0 but the block has a dropout layer with rate > 0.",
              "dropout=0 asks for no dropout at all.")


# --------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------

def check_conv_block(fn: Callable[..., Any], random_cases: int = 1, seed: int = 0) -> None:
    """Check ``fn(x, filters, batch_norm=True, dropout=0.0)``: output shape, two 3×3
    'same' convolutions, Conv -> BatchNorm -> ReLU order, spatial dropout, parameter count.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    import keras

    name = "conv_block"
    rng = np.random.default_rng(seed)
    cases = [("16×16×3 input, 8 filters", (16, 16, 3), 8, dict(batch_norm=True, dropout=0.0)),
             ("dropout=0.3", (16, 16, 3), 8, dict(batch_norm=True, dropout=0.3)),
             ("batch_norm=False", (8, 8, 2), 4, dict(batch_norm=False, dropout=0.0))]
    for i in range(random_cases):
        side = int(rng.choice([8, 12, 20]))
        cases.append((f"random {i + 1}", (side, side, int(rng.integers(1, 6))), int(rng.choice([2, 4, 6])),
                      dict(batch_norm=bool(rng.random() < 0.7), dropout=float(rng.choice([0.0, 0.2])))))
    for case, shape, filters, kwargs in cases:
        inputs = keras.Input(shape)
        options: dict[str, Any] = dict(kwargs)
        out = call(fn, name, case, inputs, filters, **options)
        expected = (None,) + shape[:-1] + (filters,)
        if _shape(out) != expected:
            fail(name, case, f"expected output shape {expected}, got {_shape(out)}.",
                  "`filters` channels out, and the same height and width as the input.")
        model = _model(inputs, out)
        _conv_structure(name, case, model, kwargs["batch_norm"], kwargs["dropout"])
        counts = _counts(_block_params, 2, shape[-1], filters, kwargs["batch_norm"])
        if model.count_params() not in counts:
            fail(name, case, f"expected {' or '.join(map(str, sorted(counts)))} parameters, got {model.count_params()}.",
                  "two 3×3 convolutions with `filters` output channels, each followed by batch "
                  "normalisation (4 numbers per channel); a convolution followed by BatchNorm needs no bias.")
    ok(f"{name}: {len(cases)} cases passed")


def check_encoder_block(fn: Callable[..., Any], random_cases: int = 1, seed: int = 0) -> None:
    """Check ``fn(x, filters, batch_norm=True, dropout=0.0) -> (skip, pooled)``: shapes,
    that ``pooled`` is the 2× max-pooled ``skip``, and the parameter count.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    import keras

    name = "encoder_block"
    rng = np.random.default_rng(seed)
    cases = [("16×16×4 input, 8 filters", (16, 16, 4), 8), ("32×24×1 input, 4 filters", (32, 24, 1), 4)]
    for i in range(random_cases):
        cases.append((f"random {i + 1}", (2 * int(rng.integers(3, 10)), 2 * int(rng.integers(3, 10)),
                                          int(rng.integers(1, 5))), int(rng.choice([2, 4, 8]))))
    for case, shape, filters in cases:
        inputs = keras.Input(shape)
        out = call(fn, name, case, inputs, filters, batch_norm=True, dropout=0.0)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            fail(name, case, f"should return a tuple (skip, pooled), got {type(out).__name__}.",
                  "return both: the conv block's output (for the skip connection) and its pooled version.")
        skip, pooled = out
        expected_skip = (None,) + shape[:-1] + (filters,)
        expected_pool = (None,) + tuple(s // 2 for s in shape[:-1]) + (filters,)
        if _shape(skip) == expected_pool and _shape(pooled) == expected_skip:
            fail(name, case, "skip and pooled seem swapped.", "return (skip, pooled) in that order.")
        if _shape(skip) != expected_skip:
            fail(name, case, f"skip should have shape {expected_skip}, got {_shape(skip)}.",
                  "the skip tensor is the conv block's output, before pooling.")
        if _shape(pooled) != expected_pool:
            fail(name, case, f"pooled should have shape {expected_pool}, got {_shape(pooled)}.",
                  "pool the conv block's output with MaxPooling2D(2).")
        model = _model(inputs, [skip, pooled])
        if not any(type(layer).__name__.startswith("MaxPooling") for layer in model.layers):
            fail(name, case, "no MaxPooling layer found.", "downsample with keras.layers.MaxPooling2D(2).")
        x = np.random.default_rng(1).random((2,) + shape).astype("float32")
        skip_v, pooled_v = (np.asarray(a) for a in model(x, training=False))
        h, w = skip_v.shape[1] // 2 * 2, skip_v.shape[2] // 2 * 2
        expected_v = skip_v[:, :h, :w].reshape(2, h // 2, 2, w // 2, 2, -1).max(axis=(2, 4))
        if not np.allclose(pooled_v, expected_v, atol=1e-5):
            fail(name, case, "pooled is not the 2×2 max-pooling of skip.",
                  "compute skip = conv_block(x, ...) first, then pooled = MaxPooling2D(2)(skip).")
        counts = _counts(_block_params, 2, shape[-1], filters, True)
        if model.count_params() not in counts:
            fail(name, case, f"expected {' or '.join(map(str, sorted(counts)))} parameters, got {model.count_params()}.",
                  "an encoder step is one conv block and a pooling layer (no weights).")
    ok(f"{name}: {len(cases)} cases passed")


def check_decoder_block(fn: Callable[..., Any], random_cases: int = 1, seed: int = 0) -> None:
    """Check ``fn(x, skip, filters, batch_norm=True, dropout=0.0)``: output shape, 2×
    upsampling by a 2×2 transposed convolution, concatenation with ``skip`` (the output
    must depend on it), a conv block after it, and the parameter count.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    import keras

    name = "decoder_block"
    rng = np.random.default_rng(seed)
    cases = [("8×8×16 input, 16×16×8 skip, 8 filters", (8, 8, 16), (16, 16, 8), 8),
             ("4×6×8 input, 8×12×4 skip, 4 filters", (4, 6, 8), (8, 12, 4), 4)]
    for i in range(random_cases):
        h, w, f = int(rng.integers(2, 8)), int(rng.integers(2, 8)), int(rng.choice([2, 4, 8]))
        cases.append((f"random {i + 1}", (h, w, 2 * f), (2 * h, 2 * w, f), f))
    for case, x_shape, skip_shape, filters in cases:
        x_in, skip_in = keras.Input(x_shape), keras.Input(skip_shape)
        out = call(fn, name, case, x_in, skip_in, filters, batch_norm=True, dropout=0.0)
        expected = (None,) + skip_shape[:-1] + (filters,)
        if _shape(out) != expected:
            fail(name, case, f"expected output shape {expected}, got {_shape(out)}.",
                  "the output has the height and width of `skip` and `filters` channels: x is upsampled 2× "
                  "before it meets the skip, and a conv block comes last.")
        model = _model([x_in, skip_in], out)
        kinds = _kinds(model)
        if "Concatenate" not in kinds:
            fail(name, case, "the skip connection is missing: nothing joins `skip` to the upsampled x.",
                  "the two are joined along the channel axis, side by side (added, they would mix two "
                  "different things in one channel).")
        rng_v = np.random.default_rng(2)
        x = rng_v.random((1,) + x_shape).astype("float32")
        s1 = rng_v.random((1,) + skip_shape).astype("float32")
        s2 = rng_v.random((1,) + skip_shape).astype("float32")
        o1, o2 = (np.asarray(model([x, s], training=False)) for s in (s1, s2))
        if np.allclose(o1, o2):
            fail(name, case, "the output does not depend on the skip tensor.",
                  "the skip must reach the conv block, joined with the upsampled x along the channels.")
        if not any(k.startswith(("Conv2DTranspose", "UpSampling")) for k in kinds):
            fail(name, case, "no upsampling layer found.",
                  "x must be doubled in size by a learnt upsampling (a transposed convolution) before it "
                  "meets the skip.")
        _conv_structure(name, case, model, True, 0.0)
        counts = _counts(_decoder_params, 2, x_shape[-1], skip_shape[-1], filters, True)
        if model.count_params() not in counts:
            block = _block_params(2, filters + skip_shape[-1], filters, True)
            fail(name, case, f"expected {' or '.join(map(str, sorted(counts)))} parameters, got {model.count_params()}.",
                  f"the conv block (`filters` filters on the joined channels) accounts for {block} of them "
                  f"(without biases); the rest is the upsampling's: `filters` output channels, and a kernel "
                  f"whose size makes the count match.")
    ok(f"{name}: {len(cases)} cases passed")


# --------------------------------------------------------------------------------------
# The U-Net
# --------------------------------------------------------------------------------------

def _check_model(name, case, fn, input_shape, n_classes, depth, base_filters, dropout=0.1):
    model = call(fn, name, case, input_shape, n_classes=n_classes, depth=depth,
                  base_filters=base_filters, dropout=dropout)
    expected = (None,) + tuple(input_shape[:-1]) + (n_classes,)
    output_shape = tuple(model.output_shape)
    if output_shape != expected:
        fail(name, case, f"expected output shape {expected}, got {output_shape}.",
              "the last layer maps each pixel's features to n_classes channels (1×1), and every block "
              "keeps the size of its level.")
    rank = len(input_shape) - 1
    kinds = _kinds(model)
    conv = f"Conv{rank}D"
    if conv not in kinds:
        fail(name, case, f"no {conv} layer in the model (found {sorted(set(kinds))}).",
              f"for {rank}D input every layer must be the {rank}D version: a block or builder that names a "
              f"2D class cannot build it.")
    n_concat = kinds.count("Concatenate")
    if n_concat != depth:
        fail(name, case, f"depth={depth} needs {depth} skip concatenations, found {n_concat}.",
              "every encoder level hands its skip to the decoder step of the same size.")
    n_pool = sum(k.startswith("MaxPooling") for k in kinds)
    if n_pool != depth:
        fail(name, case, f"depth={depth} needs {depth} poolings, found {n_pool}.",
              "one encoder step, and so one pooling, per level.")
    x = np.random.default_rng(0).random((1,) + tuple(input_shape)).astype("float32")
    y = np.asarray(model(x, training=False))
    if not np.isfinite(y).all() or y.min() < 0 or y.max() > 1:
        fail(name, case, f"outputs should be probabilities in [0, 1], got {y.min():.3f} .. {y.max():.3f}.",
              "the last layer needs an activation: sigmoid for one class, softmax for several.")
    if n_classes > 1 and not np.allclose(y.sum(axis=-1), 1.0, atol=1e-4):
        fail(name, case, "with several classes the probabilities of each pixel should sum to 1.",
              "several classes need a softmax over the class channels; a sigmoid is for one class.")
    if n_classes == 1 and _activation_name(model.layers[-1]) not in ("sigmoid", "linear"):
        fail(name, case, f"one class needs a sigmoid output, got {_activation_name(model.layers[-1])}.",
              "softmax over a single channel is always 1: use sigmoid for n_classes == 1.")
    rates = [float(layer.rate) for layer in model.layers if type(layer).__name__.startswith("SpatialDropout")]
    if dropout > 0 and not any(abs(r - dropout) < 1e-9 for r in rates):
        fail(name, case, f"dropout={dropout} was asked for, but the model's dropout rates are {rates or 'none'}.",
              "every block (encoder, bottleneck and decoder) gets the dropout asked for.")
    if dropout == 0 and any(r > 0 for r in rates):
        fail(name, case, f"dropout=0 was asked for, but the model has dropout rates {rates}.",
              "every block gets the dropout asked for, not a fixed rate.")
    counts = _counts(_unet_params, tuple(input_shape), n_classes, depth, base_filters, True)
    if model.count_params() not in counts:
        fail(name, case, f"expected {' or '.join(map(str, sorted(counts)))} parameters, got {model.count_params()}.",
              "level ℓ has base_filters·2^ℓ filters (encoder and decoder), the bottleneck "
              "base_filters·2^depth; a convolution followed by BatchNorm needs no bias.")


def _raised_by_keras(error) -> bool:
    """True when the innermost frame of the traceback lies inside Keras or TensorFlow."""
    tb = error.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    parts = Path(last or "").parts
    return "keras" in parts or "tensorflow" in parts


def _check_bad_shape(name, case, fn, input_shape, depth):
    try:
        fn(input_shape, n_classes=1, depth=depth, base_filters=2, dropout=0.0)
    except ValueError as error:
        if _raised_by_keras(error) or "Concatenate" in str(error):
            fail(name, case, f"the ValueError came from Keras, deep inside the model "
                  f"({str(error).strip().splitlines()[0][:120]}), not from your own size check.",
                  f"check the sizes yourself before building any layer, and raise a ValueError whose "
                  f"message says which sizes work (multiples of {2 ** depth}).")
        return
    except Exception as error:
        fail(name, case, f"expected a ValueError, got {type(error).__name__}: {error}",
              "check every spatial size before building, and raise a ValueError when one does not fit.")
    fail(name, case, f"input_shape {input_shape} with depth={depth} should raise ValueError "
          f"(sizes must be divisible by 2**depth = {2 ** depth}).",
          "check every spatial size first and raise a ValueError whose message says which sizes work.")


def check_unet(fn: Callable[..., Any], random_cases: int = 0, seed: int = 0) -> None:
    """Check ``fn(input_shape, n_classes=1, depth=4, base_filters=16, dropout=0.1)`` in 2D:
    output shape, sigmoid/softmax, skip concatenations, poolings, parameter count against
    :func:`helpers.models.build_unet`, and a ValueError for sizes not divisible by
    ``2**depth``.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    name = "build_unet"
    rng = np.random.default_rng(seed)
    cases = [("64×64×1, depth 3, 8 filters", (64, 64, 1), 1, 3, 8, 0.1),
             ("32×48×3, 3 classes, depth 2, dropout 0.25", (32, 48, 3), 3, 2, 4, 0.25),
             ("16×32×1, depth 1, no dropout", (16, 32, 1), 1, 1, 4, 0.0)]
    for i in range(random_cases):
        depth = int(rng.integers(1, 4))
        factor = 2 ** depth
        shape = (factor * int(rng.integers(2, 5)), factor * int(rng.integers(2, 5)), int(rng.integers(1, 4)))
        cases.append((f"random {i + 1}", shape, int(rng.choice([1, 2, 4])), depth, int(rng.choice([2, 4])),
                      float(rng.choice([0.0, 0.1, 0.3]))))
    for case, shape, n_classes, depth, base, dropout in cases:
        _check_model(name, case, fn, shape, n_classes, depth, base, dropout)
    _check_bad_shape(name, "60×60×1 with depth 3", fn, (60, 60, 1), 3)
    ok(f"{name}: {len(cases) + 1} cases passed")


def check_layers_for(fn: Callable[..., Any]) -> None:
    """Check ``fn(x)``, the layer classes for a tensor ``x``: ``Conv2D``,
    ``Conv2DTranspose``, ``MaxPooling2D``, ``SpatialDropout2D`` for ``(batch, H, W, C)``,
    their 3D versions for ``(batch, D, H, W, C)``, and a ``ValueError`` for any other rank.

    Args:
        fn: the function to check (the learner's, or the reference).

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    import keras

    name = "layers_for"
    L = keras.layers
    expected = {
        "a 2D tensor (batch, 16, 16, 1)": ((16, 16, 1), (L.Conv2D, L.Conv2DTranspose, L.MaxPooling2D,
                                                          L.SpatialDropout2D)),
        "a 3D tensor (batch, 8, 16, 16, 1)": ((8, 16, 16, 1), (L.Conv3D, L.Conv3DTranspose, L.MaxPooling3D,
                                                                L.SpatialDropout3D)),
    }
    for case, (shape, classes) in expected.items():
        got = call(fn, name, case, keras.Input(shape))
        for field, cls in zip(("Conv", "ConvTranspose", "MaxPool", "SpatialDropout"), classes):
            value = getattr(got, field, None)
            if value is not cls:
                fail(name, case, f"{field} is {getattr(value, '__name__', value)!r}, expected keras.layers."
                                 f"{cls.__name__}.",
                     "return SimpleNamespace(Conv=..., ConvTranspose=..., MaxPool=..., SpatialDropout=...) "
                     "with the 3D classes (Conv3D, ...) when len(x.shape) == 5, the 2D ones when it is 4.")
    case = "a 1D tensor (batch, 16, 1)"
    try:
        fn(keras.Input((16, 1)))
    except ValueError:
        pass
    except Exception as error:  # any other error is the learner's to fix
        fail(name, case, f"raised {type(error).__name__}: {error}; expected a ValueError.",
             "keep the final `raise ValueError(...)` for shapes that are neither 2D nor 3D.")
    else:
        fail(name, case, "returned layers; expected a ValueError.",
             "keep the final `raise ValueError(...)` for shapes that are neither 2D nor 3D.")
    ok(f"{name}: 2D and 3D layer classes, a ValueError for other shapes")


def check_unet_3d(fn: Callable[..., Any], random_cases: int = 0, seed: int = 0) -> None:
    """Check the same builder on volumes ``(D, H, W, C)``: Conv3D layers, output shape,
    sigmoid/softmax, parameter count against :func:`helpers.models.build_unet`, and a
    ValueError for sizes not divisible by ``2**depth``.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    name = "build_unet (3D)"
    rng = np.random.default_rng(seed)
    cases = [("16×16×16×1, depth 2, 4 filters", (16, 16, 16, 1), 1, 2, 4, 0.1),
             ("8×16×16×2, 3 classes, depth 3, dropout 0.2", (8, 16, 16, 2), 3, 3, 2, 0.2)]
    for i in range(random_cases):
        depth = int(rng.integers(1, 3))
        factor = 2 ** depth
        shape = tuple(factor * int(rng.integers(1, 4)) for _ in range(3)) + (int(rng.integers(1, 3)),)
        cases.append((f"random {i + 1}", shape, int(rng.choice([1, 2])), depth, 2, float(rng.choice([0.0, 0.1]))))
    for case, shape, n_classes, depth, base, dropout in cases:
        _check_model(name, case, fn, shape, n_classes, depth, base, dropout)
    _check_bad_shape(name, "16×16×12×1 with depth 3", fn, (16, 16, 12, 1), 3)
    ok(f"{name}: {len(cases) + 1} cases passed")


# --------------------------------------------------------------------------------------
# Which input sizes work
# --------------------------------------------------------------------------------------

def _max_depth(input_shape, min_size=4) -> int:
    depth = 0
    while all(size % 2 ** (depth + 1) == 0 and size // 2 ** (depth + 1) >= min_size
              for size in input_shape[:-1]):
        depth += 1
    return depth


def check_max_depth(fn: Callable[..., Any], random_cases: int = 10, seed: int = 0) -> None:
    """Check ``fn(input_shape, min_size=4) -> int``: the largest depth for which every
    spatial size of ``input_shape`` (the last number is the channels) is divisible by
    ``2**depth`` and the bottleneck keeps at least ``min_size`` pixels per side; 0 when
    no pooling is possible.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    name = "max_depth"
    cases = [("(128, 128, 1)", (128, 128, 1), 4), ("(96, 80, 1)", (96, 80, 1), 4),
             ("(24, 24, 24, 1), a 3D volume", (24, 24, 24, 1), 4), ("(100, 100, 3)", (100, 100, 3), 4),
             ("(128, 128, 1) with min_size=16", (128, 128, 1), 16), ("(30, 31, 1)", (30, 31, 1), 4),
             ("(256, 64, 1) with min_size=1", (256, 64, 1), 1)]
    rng = np.random.default_rng(seed)
    for i in range(random_cases):
        rank = int(rng.integers(2, 4))
        shape = tuple(int(2 ** rng.integers(0, 7) * rng.integers(1, 8)) for _ in range(rank)) + (int(rng.integers(1, 5)),)
        cases.append((f"random {shape}", shape, int(rng.choice([1, 2, 4, 8]))))
    for case, shape, min_size in cases:
        try:
            got = fn(shape, min_size=min_size)
        except Exception as error:
            fail(name, case, f"raised {type(error).__name__}: {error}", cause=error)
        expected = _max_depth(shape, min_size)
        if got is None or not float(got).is_integer():
            fail(name, case, f"expected the integer {expected}, got {got!r}.", "return a depth: an int.")
        if int(got) == expected:
            continue
        hint = ("a depth d needs every spatial size divisible by 2**d and at least min_size pixels left per "
                "side after d poolings.")
        if int(got) == _max_depth(shape, 1) and min_size > 1:
            hint = "the bottleneck must keep at least min_size pixels per side: stop before it gets smaller."
        elif int(got) == _max_depth(shape[:1] + (1,), min_size):
            hint = "every spatial size counts, not only the first."
        elif int(got) == _max_depth(tuple(shape) + (1,), min_size):
            hint = "the last number of input_shape is the channels, not a size."
        elif int(got) == expected + 1:
            hint = "one too deep: the depth you return must itself pass both rules."
        fail(name, case, f"expected depth {expected}, got {got}.", hint)
    ok(f"{name}: {len(cases)} cases passed")


# --------------------------------------------------------------------------------------
# The residual block
# --------------------------------------------------------------------------------------

def _np_conv_same(x, kernel, bias=None):
    """'same' convolution of ``x`` (batch, *spatial, C_in) with an odd ``kernel``
    (*k, C_in, C_out), stride 1, in NumPy (float64).
    """
    rank = x.ndim - 2
    k = kernel.shape[:rank]
    pads = [(0, 0)] + [(size // 2, size // 2) for size in k] + [(0, 0)]
    padded = np.pad(x.astype(np.float64), pads)
    spatial = x.shape[1:-1]
    out = np.zeros(x.shape[:-1] + (kernel.shape[-1],))
    for offset in np.ndindex(*k):
        window = padded[(slice(None),) + tuple(slice(o, o + n) for o, n in zip(offset, spatial))]
        out += window @ kernel[offset].astype(np.float64)
    return out if bias is None else out + bias


_BN_GAMMA, _BN_BETA = 2.0, 0.5


def _set_known_weights(model, rng):
    """Give every convolution random weights and every BatchNorm the inference transform
    ``z -> 2 z + 0.5`` (moving mean 0, moving variance 1 - epsilon).
    """
    for layer in model.layers:
        if _is_conv(layer):
            layer.kernel.assign(rng.normal(0, 0.4, tuple(layer.kernel.shape)).astype("float32"))
            if getattr(layer, "bias", None) is not None:
                layer.bias.assign(rng.normal(0, 0.2, tuple(layer.bias.shape)).astype("float32"))
        elif type(layer).__name__ == "BatchNormalization":
            n = int(layer.moving_mean.shape[0])
            if layer.gamma is not None:
                layer.gamma.assign(np.full(n, _BN_GAMMA, "float32"))
            if layer.beta is not None:
                layer.beta.assign(np.full(n, _BN_BETA, "float32"))
            layer.moving_mean.assign(np.zeros(n, "float32"))
            layer.moving_variance.assign(np.full(n, 1.0 - layer.epsilon, "float32"))


def _conv_np(layer, x):
    bias = np.asarray(layer.bias) if getattr(layer, "bias", None) is not None else None
    return _np_conv_same(x, np.asarray(layer.kernel), bias)


def _residual_params(rank, c_in, filters, batch_norm, use_bias, projection_bn):
    total = _block_params(rank, c_in, filters, batch_norm, use_bias)
    if c_in != filters:
        total += _conv_params(rank, 1, c_in, filters, use_bias)
        total += 4 * filters if projection_bn else 0
    return total


def _residual_case(name, case, fn, shape, filters, batch_norm, rng):
    """Build fn on ``shape``, compare its output with a NumPy residual block using the same
    weights, and return the model.
    """
    import keras

    rank = len(shape) - 1
    c_in = shape[-1]
    inputs = keras.Input(shape)
    try:
        out = fn(inputs, filters, batch_norm=batch_norm, dropout=0.0)
    except Exception as error:
        hint = ""
        if rank == 3:
            hint = ("the same function must work for volumes (batch, D, H, W, C): it must not name a "
                    "2D layer class.")
        elif c_in != filters:
            hint = (f"x has {c_in} channels and the block's output {filters}, so x cannot be added "
                    f"as it is: the shortcut is then its 1×1 convolution to `filters` channels.")
        fail(name, case, f"raised {type(error).__name__}: {str(error).strip()[:300]}", hint, cause=error)
    expected_shape = (None,) + tuple(shape[:-1]) + (filters,)
    if _shape(out) != expected_shape:
        got = _shape(out)
        hint = "every convolution keeps the size; `filters` channels at the end."
        if got[:-1] == expected_shape[:-1] and got[-1] in (2 * filters, c_in + filters):
            hint = ("the output has the channels of a concatenation: a residual block *adds* the shortcut "
                    "to the convolutions' output, it does not concatenate it.")
        fail(name, case, f"expected output shape {expected_shape}, got {got}.", hint)
    model = _model(inputs, out)
    convs = [layer for layer in model.layers if _is_conv(layer)]
    big = [c for c in convs if tuple(c.kernel_size) == (3,) * rank]
    small = [c for c in convs if tuple(c.kernel_size) == (1,) * rank]
    other = [c for c in convs if c not in big and c not in small]
    if len(big) != 2 or other:
        fail(name, case, f"expected two {'×'.join('3' * rank)} convolutions (and a 1×1 projection when the "
              f"channels change), found kernels {[tuple(c.kernel_size) for c in convs]}.",
              "the residual branch is the conv block's Conv -> BN -> ReLU -> Conv -> BN; the projection "
              "shortcut is a single 1×1 convolution.")
    if c_in == filters and small:
        fail(name, case, f"x already has {filters} channels, but the shortcut goes through a 1×1 convolution.",
              "when the channels match, the shortcut is x itself (the identity): no weights, and the "
              "gradient passes through unchanged. Project only when the channels differ.")
    if len(small) > 1:
        fail(name, case, f"found {len(small)} 1×1 convolutions; one projection is enough.",
              "one projection of the block's input is enough.")
    _set_known_weights(model, rng)
    x = rng.normal(0, 1, (2,) + tuple(shape)).astype("float32")
    got = np.asarray(model(x, training=False), dtype=np.float64)

    def bn(z):
        return _BN_GAMMA * z + _BN_BETA if batch_norm else z

    relu = lambda z: np.maximum(z, 0.0)  # noqa: E731
    conv1, conv2 = big            # model.layers is in graph order: conv1 feeds conv2
    first = relu(bn(_conv_np(conv1, x)))
    main = bn(_conv_np(conv2, first))
    if small:
        projected = _conv_np(small[0], x)
        shortcuts = [projected, bn(projected)]
    else:
        shortcuts = [x.astype(np.float64)] if c_in == filters else []
    close = lambda a: a.shape == got.shape and np.allclose(got, a, rtol=1e-3, atol=1e-3 * (1 + np.abs(a).max()))  # noqa: E731
    if any(close(relu(main + sc)) for sc in shortcuts):
        return model
    if close(relu(main)):
        if c_in != filters:
            fail(name, case, f"the output is the plain conv block's: there is no shortcut when the "
                  f"channels change ({c_in} -> {filters}).",
                  "when the channels differ, the shortcut is the 1×1 projection of x, and it is added too.")
        fail(name, case, "the output is the plain conv block's: nothing is added to it.",
              "the block computes ReLU(F(x) + s(x)): the shortcut s(x) is missing from the sum.")
    if any(close(relu(main) + sc) for sc in shortcuts):
        fail(name, case, "the shortcut is added after the final ReLU, so the block's output can be negative.",
              "add first, then apply ReLU: relu(F(x) + shortcut).")
    if any(close(main + sc) for sc in shortcuts):
        fail(name, case, "no ReLU after the addition (the output has negative values).",
              "finish with ReLU on the sum: relu(F(x) + shortcut).")
    if any(close(relu(relu(main) + sc)) for sc in shortcuts):
        fail(name, case, "the residual branch ends with a ReLU before the addition.",
              "the second convolution's path is Conv -> BN, then the addition, then the only ReLU: "
              "a ReLU before the sum means the branch can only ever add, never subtract.")
    if filters == first.shape[-1] and close(relu(main + first)):
        fail(name, case, "the shortcut starts after the first convolution, not at the block's input.",
              "the shortcut starts from the block's input, before any convolution.")
    fail(name, case, "with known weights, the output differs from relu(F(x) + shortcut(x)), "
          "F = Conv -> BN -> ReLU -> Conv -> BN.",
          "the shortcut is x itself (or its 1×1 projection when the channels change), added to the second "
          "BatchNorm's output before the final ReLU.")


def _dropped_maps(model, x, training=True):
    y = np.asarray(model(x, training=training))
    maps = y.reshape(y.shape[0], -1, y.shape[-1])
    return float(np.mean(np.all(maps == 0, axis=1)))


def check_residual_block(fn: Callable[..., Any], random_cases: int = 1, seed: int = 0) -> None:
    """Check ``fn(x, filters, batch_norm=True, dropout=0.0)``, a residual block that works
    for 2D ``(batch, H, W, C)`` and 3D ``(batch, D, H, W, C)`` inputs.

    With known weights (random kernels, BatchNorm set to ``z -> 2z + 0.5``) the output must
    equal a NumPy ``relu(F(x) + s(x))`` on asymmetric inputs, where ``F`` is
    Conv -> BN -> ReLU -> Conv -> BN and ``s`` is the identity when ``x`` has ``filters``
    channels and a 1×1 convolution (with or without BatchNorm) otherwise; the parameter
    count matches; with ``dropout > 0`` whole feature maps are dropped at the rate asked
    for during training (after the addition). A Keras functional block runs as a graph
    inside ``fit``; the check calls it the same way.

    Args:
        fn: the function to check (the learner's, or the reference).
        random_cases: the number of random cases tried after the fixed ones.
        seed: seed of the random cases.

    Raises:
        AssertionError: the check fails; the message names the case (where there is one), what was
            expected and what came back, with a hint.
    """
    import keras

    name = "residual_block"
    rng = np.random.default_rng(seed)
    cases = [("2D, 3 -> 8 channels (projection)", (6, 5, 3), 8, True),
             ("2D, 8 -> 8 channels (identity)", (6, 5, 8), 8, True),
             ("2D, 4 -> 6 channels, batch_norm=False", (5, 7, 4), 6, False),
             ("2D, 6 -> 6 channels, batch_norm=False", (7, 5, 6), 6, False),
             ("3D, 2 -> 4 channels (projection)", (4, 5, 3, 2), 4, True),
             ("3D, 4 -> 4 channels (identity)", (3, 5, 4, 4), 4, True)]
    for i in range(random_cases):
        rank = int(rng.integers(2, 4))
        spatial = tuple(int(v) for v in rng.integers(3, 7, rank))
        filters = int(rng.choice([2, 4, 6]))
        c_in = filters if rng.random() < 0.5 else int(rng.integers(1, 7))
        cases.append((f"random {i + 1}: {rank}D, {c_in} -> {filters} channels", spatial + (c_in,), filters,
                      bool(rng.random() < 0.7)))
    for case, shape, filters, batch_norm in cases:
        model = _residual_case(name, case, fn, shape, filters, batch_norm, rng)
        rank = len(shape) - 1
        counts = {_residual_params(rank, shape[-1], filters, batch_norm, bias, projection_bn)
                  for bias in (False, True) for projection_bn in ((False, True) if batch_norm else (False,))}
        if model.count_params() not in counts:
            fail(name, case, f"expected {' or '.join(map(str, sorted(counts)))} parameters, got "
                  f"{model.count_params()}.",
                  "two 3×3 convolutions with `filters` filters and BatchNorm, plus a 1×1 projection only "
                  "when the channels change.")
    # Dropout: whole maps, at the rate asked for, after the addition (2D and 3D).
    for case, shape, filters, rate in (("2D, dropout=0.5", (6, 5, 4), 4, 0.5),
                                       ("3D, dropout=0.25", (4, 3, 5, 2), 4, 0.25)):
        inputs = keras.Input(shape)
        out = call(fn, name, case, inputs, filters, batch_norm=True, dropout=rate)
        model = _model(inputs, out)
        x = rng.normal(0, 1, (16,) + shape).astype("float32")
        dropped = np.mean([_dropped_maps(model, x) for _ in range(2)])
        if dropped < rate / 3:
            fail(name, case, f"during training only {dropped:.0%} of the feature maps are entirely zero, "
                  f"expected about {rate:.0%}.",
                  "spatial dropout comes after the final ReLU, when dropout > 0: dropout before the "
                  "addition is undone by the shortcut, and ordinary dropout zeroes single pixels, not "
                  "whole maps.")
        if abs(dropped - rate) > 0.2:
            fail(name, case, f"during training {dropped:.0%} of the feature maps are dropped, expected "
                  f"about {rate:.0%}.", "pass the `dropout` argument as the rate.")
        if _dropped_maps(model, x, training=False) > 0.05:
            fail(name, case, "feature maps are dropped at inference too.",
                  "use the dropout layer, which is active only in training.")
    inputs = keras.Input((6, 5, 4))
    model = _model(inputs, call(fn, name, "dropout=0", inputs, 4, batch_norm=True, dropout=0.0))
    x = rng.normal(0, 1, (16, 6, 5, 4)).astype("float32")
    if _dropped_maps(model, x) > 0.1:
        fail(name, "dropout=0", "feature maps are dropped although dropout=0.",
              "dropout=0 asks for no dropout at all.")
    ok(f"{name}: {len(cases) + 3} cases passed (2D and 3D, identity and projection shortcuts, dropout)")


# --------------------------------------------------------------------------- beyond the noise?

#: What ``AHEAD`` may say after the plain/residual comparison.
VERDICTS = ("plain", "residual", "neither")


def noise_verdict(curves: dict) -> tuple[str, float, float | None]:
    """The verdict the lesson's rule gives for two validation curves: the block whose last
    validation Dice is higher, if the difference is larger than the largest epoch-to-epoch
    change of either curve in its second half (the run's noise); ``"neither"`` otherwise, or
    when a curve has fewer than 4 epochs (too few to measure the noise).

    Args:
        curves: validation Dice per epoch, ``{"plain": [...], "residual": [...]}``.

    Returns:
        ``(verdict, difference, swing)``: the verdict, residual minus plain at the last epoch,
        and the noise (``None`` when too few epochs).
    """
    plain, residual = (np.asarray(curves[key], dtype=float) for key in ("plain", "residual"))
    difference = float(residual[-1] - plain[-1])
    if min(len(plain), len(residual)) < 4:
        return "neither", difference, None
    swing = max(float(np.max(np.abs(np.diff(c[len(c) // 2:])))) for c in (plain, residual))
    if abs(difference) <= swing:
        return "neither", difference, swing
    return ("residual" if difference > 0 else "plain"), difference, swing


def check_noise_verdict(ahead: Any, curves: dict) -> None:
    """Check the learner's reading of the plain/residual comparison: ``ahead`` must be the
    block that is ahead at the last epoch by more than the run's epoch-to-epoch noise, or
    ``"neither"`` (see :func:`noise_verdict`).

    Args:
        ahead: the learner's verdict, ``"plain"``, ``"residual"`` or ``"neither"``.
        curves: validation Dice per epoch of the two runs, ``{"plain": [...], "residual": [...]}``.

    Raises:
        AssertionError: ``ahead`` is not one of the three words, or not what the curves
            support; the hint names the slip (ignoring the noise, the best instead of the last
            epoch, the sign of the difference) without giving the verdict.
    """
    if ahead is Ellipsis or ahead is None:
        fail("AHEAD", None, f"AHEAD is not set yet: replace the ... by one of {VERDICTS}.")
    if not isinstance(ahead, str) or ahead not in VERDICTS:
        fail("AHEAD", None, f"AHEAD should be one of {VERDICTS} (lower case), got {ahead!r}.")
    expected, difference, swing = noise_verdict(curves)
    if ahead == expected:
        ok(f"AHEAD = {ahead!r}: what the last-epoch difference and this run's noise support.")
        return
    if swing is None:
        hint = ("With fewer than 4 epochs the run cannot measure how much a curve jumps between epochs, "
                "so no difference can be shown to be beyond the noise.")
    elif ahead != "neither" and expected == "neither":
        hint = ("A higher last value is not enough: compare the size of the difference with the largest "
                "epoch-to-epoch change of either curve in its second half.")
    elif expected != "neither" and ahead == "neither":
        hint = ("Compare the size of the last-epoch difference with the noise once more: is it really "
                "within the largest epoch-to-epoch change?")
    else:
        plain, residual = (np.asarray(curves[key], dtype=float) for key in ("plain", "residual"))
        best_first = "residual" if residual.max() > plain.max() else "plain"
        hint = ("Use the Dice after the last epoch of each run, not the best one." if ahead == best_first
                else "Check the sign of the difference: which curve ends higher?")
    fail("AHEAD", None, f"AHEAD = {ahead!r} is not what these curves support.", hint)
