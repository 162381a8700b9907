"""Checks for lesson 02 (architecture): conv block, encoder and decoder steps, the U-Net in
2D and 3D.

Each check builds the learner's block on small ``keras.Input`` tensors, inspects the
layers it made (kinds, order, kernel sizes), compares output shapes and parameter counts
with the reference in :mod:`helpers.models` (convolutions with or without bias are both
accepted), runs it on random numbers where wiring matters (is the skip connection used?
is the pooled tensor the max-pooled skip?), and raises ``AssertionError`` naming the case,
expected versus got and the usual mistake. One success line otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.checks._common import call, fail, ok

__all__ = ["check_conv_block", "check_encoder_block", "check_decoder_block", "check_unet",
           "check_unet_3d", "check_max_depth"]


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
                  "pass kernel_size=3.")
        if conv.padding != "same":
            fail(name, case, f"convolutions should use padding='same', got '{conv.padding}'.",
                  "with padding='valid' the image shrinks by 2 pixels per convolution and the skips no longer fit.")
        if batch_norm and _activation_name(conv) != "linear":
            fail(name, case, f"a convolution has activation='{_activation_name(conv)}' before BatchNorm.",
                  "leave the convolution linear and apply ReLU after BatchNorm: Conv -> BN -> ReLU.")
    kinds = _kinds(model)
    n_bn = kinds.count("BatchNormalization")
    if batch_norm and n_bn != 2:
        fail(name, case, f"expected 2 BatchNormalization layers, found {n_bn}.",
              "one after each convolution (and none when batch_norm=False).")
    if not batch_norm and n_bn:
        fail(name, case, f"batch_norm=False but found {n_bn} BatchNormalization layers.",
              "add BatchNormalization only `if batch_norm:`.")
    relus = sum(_is_relu(layer) for layer in model.layers) + sum(
        _activation_name(conv) == "relu" for conv in convs)
    if relus < 2:
        fail(name, case, f"expected 2 ReLU activations, found {relus}.",
              "apply keras.layers.Activation('relu') after each BatchNorm.")
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
            fail(name, case, f"dropout={dropout} but no SpatialDropout{rank}D layer was found.",
                  f"end the block with keras.layers.SpatialDropout{rank}D(dropout) when dropout > 0 "
                  f"(spatial dropout drops whole feature maps).")
        if not any(abs(layer.rate - dropout) < 1e-9 for layer in dropouts):
            fail(name, case, f"expected a dropout rate of {dropout}, got {[layer.rate for layer in dropouts]}.",
                  "pass the dropout argument as the rate.")
    elif dropouts and any(layer.rate > 0 for layer in dropouts):
        fail(name, case, "dropout=0 but the block has a dropout layer with rate > 0.",
              "add the dropout layer only `if dropout > 0:`.")


# --------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------

def check_conv_block(fn, random_cases: int = 1, seed: int = 0) -> None:
    """Check ``fn(x, filters, batch_norm=True, dropout=0.0)``: output shape, two 3×3
    'same' convolutions, Conv -> BatchNorm -> ReLU order, spatial dropout, parameter count."""
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
        out = call(fn, name, case, inputs, filters, **kwargs)
        expected = (None,) + shape[:-1] + (filters,)
        if _shape(out) != expected:
            fail(name, case, f"expected output shape {expected}, got {_shape(out)}.",
                  "use `filters` filters in both convolutions and padding='same'.")
        model = _model(inputs, out)
        _conv_structure(name, case, model, kwargs["batch_norm"], kwargs["dropout"])
        counts = _counts(_block_params, 2, shape[-1], filters, kwargs["batch_norm"])
        if model.count_params() not in counts:
            fail(name, case, f"expected {' or '.join(map(str, sorted(counts)))} parameters, got {model.count_params()}.",
                  "two Conv(filters, 3, padding='same') layers, each followed by BatchNormalization().")
    ok(f"{name}: {len(cases)} cases passed")


def check_encoder_block(fn, random_cases: int = 1, seed: int = 0) -> None:
    """Check ``fn(x, filters, batch_norm=True, dropout=0.0) -> (skip, pooled)``: shapes,
    that ``pooled`` is the 2× max-pooled ``skip``, and the parameter count."""
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


def check_decoder_block(fn, random_cases: int = 1, seed: int = 0) -> None:
    """Check ``fn(x, skip, filters, batch_norm=True, dropout=0.0)``: output shape, 2×
    upsampling by a 2×2 transposed convolution, concatenation with ``skip`` (the output
    must depend on it), a conv block after it, and the parameter count."""
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
                  "upsample x with Conv2DTranspose(filters, 2, strides=2, padding='same'), concatenate "
                  "with skip, then apply conv_block(..., filters).")
        model = _model([x_in, skip_in], out)
        kinds = _kinds(model)
        if "Concatenate" not in kinds:
            fail(name, case, "no Concatenate layer: the skip connection is missing.",
                  "keras.layers.Concatenate()([upsampled, skip]) brings back the encoder's detail.")
        rng_v = np.random.default_rng(2)
        x = rng_v.random((1,) + x_shape).astype("float32")
        s1 = rng_v.random((1,) + skip_shape).astype("float32")
        s2 = rng_v.random((1,) + skip_shape).astype("float32")
        o1, o2 = (np.asarray(model([x, s], training=False)) for s in (s1, s2))
        if np.allclose(o1, o2):
            fail(name, case, "the output does not depend on the skip tensor.",
                  "concatenate the upsampled tensor with `skip` and feed the result to the conv block.")
        if not any(k.startswith(("Conv2DTranspose", "UpSampling")) for k in kinds):
            fail(name, case, "no upsampling layer found.",
                  "double the size of x with Conv2DTranspose(filters, 2, strides=2, padding='same').")
        _conv_structure(name, case, model, True, 0.0)
        counts = _counts(_decoder_params, 2, x_shape[-1], skip_shape[-1], filters, True)
        if model.count_params() not in counts:
            fail(name, case, f"expected {' or '.join(map(str, sorted(counts)))} parameters, got {model.count_params()}.",
                  "use Conv2DTranspose(filters, kernel_size=2, strides=2) (with `filters` channels), "
                  "then one conv block with `filters` filters.")
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
              "end with a 1×1 convolution to n_classes channels; padding='same' everywhere keeps the size.")
    rank = len(input_shape) - 1
    kinds = _kinds(model)
    conv = f"Conv{rank}D"
    if conv not in kinds:
        fail(name, case, f"no {conv} layer in the model (found {sorted(set(kinds))}).",
              f"for {rank}D input every layer must be the {rank}D version: ask layers_for(x) for the classes.")
    n_concat = kinds.count("Concatenate")
    if n_concat != depth:
        fail(name, case, f"depth={depth} needs {depth} skip concatenations, found {n_concat}.",
              "keep every encoder step's skip tensor in a list and pass them to the decoder steps in "
              "reverse order.")
    n_pool = sum(k.startswith("MaxPooling") for k in kinds)
    if n_pool != depth:
        fail(name, case, f"depth={depth} needs {depth} poolings, found {n_pool}.",
              "loop `for level in range(depth)` over the encoder steps.")
    x = np.random.default_rng(0).random((1,) + tuple(input_shape)).astype("float32")
    y = np.asarray(model(x, training=False))
    if not np.isfinite(y).all() or y.min() < 0 or y.max() > 1:
        fail(name, case, f"outputs should be probabilities in [0, 1], got {y.min():.3f} .. {y.max():.3f}.",
              "the last layer needs an activation: sigmoid for one class, softmax for several.")
    if n_classes > 1 and not np.allclose(y.sum(axis=-1), 1.0, atol=1e-4):
        fail(name, case, "with several classes the probabilities of each pixel should sum to 1.",
              "use activation='softmax' when n_classes > 1 (sigmoid only for n_classes == 1).")
    if n_classes == 1 and _activation_name(model.layers[-1]) not in ("sigmoid", "linear"):
        fail(name, case, f"one class needs a sigmoid output, got {_activation_name(model.layers[-1])}.",
              "softmax over a single channel is always 1: use sigmoid for n_classes == 1.")
    rates = [float(layer.rate) for layer in model.layers if type(layer).__name__.startswith("SpatialDropout")]
    if dropout > 0 and not any(abs(r - dropout) < 1e-9 for r in rates):
        fail(name, case, f"dropout={dropout} was asked for, but the model's dropout rates are {rates or 'none'}.",
              "pass the dropout argument on to every conv_block (encoder, bottleneck and decoder).")
    if dropout == 0 and any(r > 0 for r in rates):
        fail(name, case, f"dropout=0 was asked for, but the model has dropout rates {rates}.",
              "pass the dropout argument on instead of a fixed rate.")
    counts = _counts(_unet_params, tuple(input_shape), n_classes, depth, base_filters, True)
    if model.count_params() not in counts:
        fail(name, case, f"expected {' or '.join(map(str, sorted(counts)))} parameters, got {model.count_params()}.",
              "level l uses base_filters * 2**l filters (encoder and decoder), the bottleneck "
              "base_filters * 2**depth.")


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
                  f"check the sizes yourself before building any layer: `if size % 2**depth: raise "
                  f"ValueError(...)` with a message saying which sizes work (multiples of {2 ** depth}).")
        return
    except Exception as error:
        fail(name, case, f"expected a ValueError, got {type(error).__name__}: {error}",
              "check the sizes before building: `if size % 2**depth: raise ValueError(...)`.")
    fail(name, case, f"input_shape {input_shape} with depth={depth} should raise ValueError "
          f"(sizes must be divisible by 2**depth = {2 ** depth}).",
          "check every spatial size first and raise ValueError with a message saying which sizes work.")


def check_unet(fn, random_cases: int = 0, seed: int = 0) -> None:
    """Check ``fn(input_shape, n_classes=1, depth=4, base_filters=16, dropout=0.1)`` in 2D:
    output shape, sigmoid/softmax, skip concatenations, poolings, parameter count against
    :func:`helpers.models.build_unet`, and a ValueError for sizes not divisible by
    ``2**depth``."""
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


def check_unet_3d(fn, random_cases: int = 0, seed: int = 0) -> None:
    """Check the same builder on volumes ``(D, H, W, C)``: Conv3D layers, output shape,
    sigmoid/softmax, parameter count against :func:`helpers.models.build_unet`, and a
    ValueError for sizes not divisible by ``2**depth``."""
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


def check_max_depth(fn, random_cases: int = 10, seed: int = 0) -> None:
    """Check ``fn(input_shape, min_size=4) -> int``: the largest depth for which every
    spatial size of ``input_shape`` (the last number is the channels) is divisible by
    ``2**depth`` and the bottleneck keeps at least ``min_size`` pixels per side; 0 when
    no pooling is possible."""
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
            raise AssertionError(f"{name} — case '{case}': raised {type(error).__name__}: {error}") from error
        expected = _max_depth(shape, min_size)
        if got is None or not float(got).is_integer():
            fail(name, case, f"expected the integer {expected}, got {got!r}.", "return a depth: an int.")
        if int(got) == expected:
            continue
        hint = ("a depth d needs every spatial size divisible by 2**d and at least min_size pixels left per "
                "side after d poolings; increase d while both hold.")
        if int(got) == _max_depth(shape, 1) and min_size > 1:
            hint = "the bottleneck must keep at least min_size pixels per side: stop before it gets smaller."
        elif int(got) == _max_depth(shape[:1] + (1,), min_size):
            hint = "every spatial size counts, not only the first: use all of input_shape[:-1]."
        elif int(got) == _max_depth(tuple(shape) + (1,), min_size):
            hint = "the last number of input_shape is the channels, not a size: use input_shape[:-1]."
        elif int(got) == expected + 1:
            hint = "one too deep: check depth + 1 before you accept it."
        fail(name, case, f"expected depth {expected}, got {got}.", hint)
    ok(f"{name}: {len(cases)} cases passed")
