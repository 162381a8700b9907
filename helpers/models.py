"""The U-Net, built from three blocks, in 2D and 3D.

``conv_block`` (Conv–BatchNorm–ReLU twice, optional spatial dropout), ``residual_block``
(the same two convolutions plus a shortcut added before the last ReLU), ``encoder_block`` (conv block, then 2× max pooling; returns the skip tensor
too), ``decoder_block`` (2× upsampling, concatenation with the skip tensor, conv block)
and ``build_unet`` which stacks them. Whether the network is 2D or 3D is decided by the
rank of the input: ``(H, W, C)`` builds Conv2D layers, ``(D, H, W, C)`` Conv3D layers.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Literal, get_args

import keras

__all__ = ["layers_for", "conv_block", "residual_block", "encoder_block", "decoder_block",
           "reference_decoder_block", "build_unet", "reference_model", "count_parameters", "BLOCKS",
           "Block", "Upsampling"]

#: The block kinds ``build_unet(block=...)`` knows: :func:`conv_block` or :func:`residual_block`.
Block = Literal["plain", "residual"]
#: How a decoder step doubles the size (:func:`decoder_block`).
Upsampling = Literal["transpose", "bilinear"]
#: The block kinds as a tuple, for messages and loops.
BLOCKS: tuple[str, ...] = get_args(Block)


def layers_for(x: Any) -> SimpleNamespace:
    """Layer classes for a tensor ``x`` of shape ``(batch, H, W, C)`` (2D) or
    ``(batch, D, H, W, C)`` (3D): ``Conv``, ``ConvTranspose``, ``MaxPool``,
    ``SpatialDropout``, ``UpSampling`` and the spatial ``rank`` (2 or 3).

    Args:
        x: a tensor ``(batch, H, W, C)`` or ``(batch, D, H, W, C)``.

    Returns:
        A namespace of the layer classes and ``rank``.

    Raises:
        ValueError: ``x`` is neither 4-D nor 5-D.
    """
    rank = len(x.shape) - 2
    L = keras.layers
    if rank == 2:
        return SimpleNamespace(rank=2, Conv=L.Conv2D, ConvTranspose=L.Conv2DTranspose,
                               MaxPool=L.MaxPooling2D, SpatialDropout=L.SpatialDropout2D,
                               UpSampling=L.UpSampling2D)
    if rank == 3:
        return SimpleNamespace(rank=3, Conv=L.Conv3D, ConvTranspose=L.Conv3DTranspose,
                               MaxPool=L.MaxPooling3D, SpatialDropout=L.SpatialDropout3D,
                               UpSampling=L.UpSampling3D)
    raise ValueError(f"Expected a tensor of shape (batch, H, W, C) or (batch, D, H, W, C), "
                     f"got {tuple(x.shape)}.")


def _name(name: str | None, suffix: str) -> str | None:
    return f"{name}_{suffix}" if name else None


def conv_block(x: Any, filters: int, batch_norm: bool = True, dropout: float = 0.0,
               name: str | None = None, use_bias: bool | None = None) -> Any:
    """Two 3×3 (×3) convolutions, each followed by BatchNorm (if ``batch_norm``) and ReLU,
    then spatial dropout of rate ``dropout`` (if > 0).

    Args:
        x: a tensor ``(batch, H, W, C)`` or ``(batch, D, H, W, C)``.
        filters: output channels of both convolutions.
        batch_norm: BatchNormalization after each convolution.
        dropout: spatial dropout rate at the end of the block (0 for none).
        name: prefix of the layer names (None: Keras's automatic names).
        use_bias: bias in the convolutions; default: only without BatchNorm.

    Returns:
        A tensor of ``x``'s spatial shape with ``filters`` channels.

    Raises:
        ValueError: ``x`` is neither 4-D nor 5-D.
    """
    L = layers_for(x)
    bias = (not batch_norm) if use_bias is None else use_bias
    for i in (1, 2):
        x = L.Conv(filters, 3, padding="same", use_bias=bias, kernel_initializer="he_normal",
                   name=_name(name, f"conv{i}"))(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=_name(name, f"bn{i}"))(x)
        x = keras.layers.Activation("relu", name=_name(name, f"relu{i}"))(x)
    if dropout and dropout > 0:
        x = L.SpatialDropout(dropout, name=_name(name, "dropout"))(x)
    return x


def residual_block(x: Any, filters: int, batch_norm: bool = True, dropout: float = 0.0,
                   name: str | None = None, use_bias: bool | None = None) -> Any:
    """A residual conv block (He et al., 2016), 2D or 3D from the rank of ``x``.

    ``Conv 3×3 → BN → ReLU → Conv 3×3 → BN``, plus a **shortcut**, then ReLU and
    optional spatial dropout: ``relu(F(x) + shortcut(x))``. The shortcut is ``x`` itself
    (the identity, no weights) when ``x`` already has ``filters`` channels, and otherwise a
    1×1 (×1) convolution to ``filters`` channels followed by BatchNorm (if ``batch_norm``)
    — a *projection*. The addition comes before the last ReLU, so the block can pass its
    input on unchanged (``F(x) = 0``) and gradients reach earlier layers through the
    shortcut without crossing the convolutions.

    Args:
        x: a tensor ``(batch, H, W, C)`` or ``(batch, D, H, W, C)``.
        filters: output channels.
        batch_norm: BatchNormalization after each convolution (and the projection).
        dropout: spatial dropout rate after the final ReLU (0 for none).
        name: prefix of the layer names (None: Keras's automatic names).
        use_bias: bias in the convolutions; default: only without BatchNorm.

    Returns:
        A tensor of ``x``'s spatial shape with ``filters`` channels. Compared with
        :func:`conv_block` it has ``C·filters`` more weights (+ ``4·filters`` BatchNorm
        values) when ``C != filters`` and exactly the same number otherwise.

    Raises:
        ValueError: ``x`` is neither 4-D nor 5-D.
    """
    L = layers_for(x)
    bias = (not batch_norm) if use_bias is None else use_bias
    if x.shape[-1] == filters:
        shortcut = x
    else:
        shortcut = L.Conv(filters, 1, padding="same", use_bias=bias, kernel_initializer="he_normal",
                          name=_name(name, "shortcut"))(x)
        if batch_norm:
            shortcut = keras.layers.BatchNormalization(name=_name(name, "shortcut_bn"))(shortcut)
    for i in (1, 2):
        x = L.Conv(filters, 3, padding="same", use_bias=bias, kernel_initializer="he_normal",
                   name=_name(name, f"conv{i}"))(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=_name(name, f"bn{i}"))(x)
        if i == 1:
            x = keras.layers.Activation("relu", name=_name(name, "relu1"))(x)
    x = keras.layers.Add(name=_name(name, "add"))([x, shortcut])
    x = keras.layers.Activation("relu", name=_name(name, "relu2"))(x)
    if dropout and dropout > 0:
        x = L.SpatialDropout(dropout, name=_name(name, "dropout"))(x)
    return x


def _block(x: Any, filters: int, block: Block, **options: Any) -> Any:
    """:func:`conv_block` or :func:`residual_block`, as ``block`` says."""
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {BLOCKS}, got {block!r}.")
    return (residual_block if block == "residual" else conv_block)(x, filters, **options)


def encoder_block(x: Any, filters: int, batch_norm: bool = True, dropout: float = 0.0,
                  block: Block = "plain", name: str | None = None,
                  use_bias: bool | None = None) -> tuple[Any, Any]:
    """One step down: a conv block (``block``), then 2× max pooling.

    Args:
        x: a tensor ``(batch, H, W, C)`` or ``(batch, D, H, W, C)``.
        filters: output channels of the block.
        batch_norm: BatchNormalization after each convolution.
        dropout: spatial dropout rate at the end of the block (0 for none).
        block: ``"plain"`` (:func:`conv_block`) or ``"residual"`` (:func:`residual_block`).
        name: prefix of the layer names (None: Keras's automatic names).
        use_bias: bias in the convolutions; default: only without BatchNorm.

    Returns:
        ``(skip, pooled)``: ``skip`` has the input's spatial size and ``filters`` channels
        (it feeds the decoder), ``pooled`` half the size in every spatial axis.

    Raises:
        ValueError: ``x`` is neither 4-D nor 5-D, or an unknown ``block``.
    """
    L = layers_for(x)
    skip = _block(x, filters, block, batch_norm=batch_norm, dropout=dropout, name=name, use_bias=use_bias)
    pooled = L.MaxPool(2, name=_name(name, "pool"))(skip)
    return skip, pooled


def decoder_block(x: Any, skip: Any, filters: int, upsampling: Upsampling = "transpose",
                  batch_norm: bool = True, dropout: float = 0.0, block: Block = "plain",
                  name: str | None = None, use_bias: bool | None = None) -> Any:
    """One step up: double the size of ``x``, concatenate ``skip``, then a conv block.

    Args:
        x: the tensor from the level below, ``(batch, H/2, W/2, C)`` or ``(batch, D/2, H/2, W/2, C)``.
        skip: the encoder's tensor at this level, ``(batch, H, W, C_skip)`` (3D likewise).
        filters: channels of the upsampling and of the block.
        upsampling: ``"transpose"``: a 2×2 transposed convolution with ``filters`` channels;
            ``"bilinear"``: interpolation (nearest-neighbour repetition in 3D, where Keras has
            no trilinear layer), then a 1×1 convolution.
        batch_norm: as in :func:`encoder_block`.
        dropout: as in :func:`encoder_block`.
        block: as in :func:`encoder_block`.
        name: as in :func:`encoder_block`.
        use_bias: as in :func:`encoder_block`.

    Returns:
        A tensor of ``skip``'s spatial size with ``filters`` channels.

    Raises:
        ValueError: an unknown ``upsampling`` or ``block``.
    """
    L = layers_for(x)
    if upsampling == "transpose":
        x = L.ConvTranspose(filters, 2, strides=2, padding="same", name=_name(name, "up"))(x)
    elif upsampling == "bilinear":
        kwargs = {"interpolation": "bilinear"} if L.rank == 2 else {}
        x = L.UpSampling(2, name=_name(name, "up"), **kwargs)(x)
        x = L.Conv(filters, 1, padding="same", name=_name(name, "up_conv"))(x)
    else:
        raise ValueError(f"upsampling must be 'transpose' or 'bilinear', got {upsampling!r}.")
    x = keras.layers.Concatenate(axis=-1, name=_name(name, "concat"))([x, skip])
    return _block(x, filters, block, batch_norm=batch_norm, dropout=dropout, name=name, use_bias=use_bias)


def reference_decoder_block(x: Any, skip: Any, filters: int, batch_norm: bool = True,
                            dropout: float = 0.0) -> Any:
    """Lesson 02's ``decoder_block(x, skip, filters, batch_norm, dropout)`` (Exercise 2.3), in
    the lesson's argument order: :func:`decoder_block` with a transposed-convolution upsampling.

    Args:
        x: the tensor from the level below, ``(batch, H/2, W/2, C)`` or ``(batch, D/2, H/2, W/2, C)``.
        skip: the encoder's tensor at this level, ``(batch, H, W, C_skip)`` (3D likewise).
        filters: channels of the upsampling and of the conv block.
        batch_norm: as in :func:`conv_block`.
        dropout: as in :func:`conv_block`.

    Returns:
        A tensor of ``skip``'s spatial size with ``filters`` channels.
    """
    return decoder_block(x, skip, filters, upsampling="transpose", batch_norm=batch_norm, dropout=dropout)


def check_input_shape(input_shape: tuple[int | None, ...], depth: int) -> tuple[int | None, ...]:
    """Validate ``input_shape`` ``(H, W, C)`` / ``(D, H, W, C)`` for a U-Net of ``depth``
    poolings: every known spatial size must be divisible by ``2**depth``. Returns it as a
    tuple; raises ValueError with the nearest valid sizes otherwise.
    """
    shape = tuple(input_shape)
    if len(shape) not in (3, 4):
        raise ValueError(f"input_shape must be (H, W, C) for 2D or (D, H, W, C) for 3D, got {shape}: "
                         f"add the channel axis, e.g. (128, 128, 1).")
    if int(depth) < 1:
        raise ValueError(f"depth must be >= 1, got {depth}.")
    factor = 2 ** int(depth)
    for size in shape[:-1]:
        if size is not None and size % factor:
            lower, upper = size // factor * factor, (size // factor + 1) * factor
            raise ValueError(
                f"input_shape {shape}: size {size} is not divisible by 2**depth = {factor}, so the "
                f"decoder could not match the skip connections. Resize or crop to a multiple of "
                f"{factor} (e.g. {lower or upper} or {upper}), or use a smaller depth.")
    return shape


def build_unet(input_shape: tuple[int | None, ...], n_classes: int = 1, depth: int = 4, base_filters: int = 16,
               batch_norm: bool = True, dropout: float = 0.1, upsampling: Upsampling = "transpose",
               name: str = "unet", use_bias: bool | None = None, block: Block = "plain") -> keras.Model:
    """Build a U-Net for inputs ``(H, W, C)`` (2D) or ``(D, H, W, C)`` (3D).

    ``depth`` encoder steps with ``base_filters · 2**level`` filters, a bottleneck with
    ``base_filters · 2**depth``, ``depth`` decoder steps with skip concatenation, and a 1×1
    convolution to ``n_classes`` channels: sigmoid for ``n_classes == 1`` (a probability
    per pixel), softmax over classes otherwise. The model is built in
    :func:`helpers.distribute.distribution_scope`, so it trains on all devices (a no-op on one).

    Args:
        input_shape: ``(H, W, C)`` or ``(D, H, W, C)``; sizes divisible by ``2**depth``
            (None for any size).
        n_classes: output channels.
        depth: number of poolings.
        base_filters: filters of the first level, doubled at each level down.
        batch_norm: BatchNormalization after every convolution of the blocks.
        dropout: spatial dropout rate at the end of every block.
        upsampling: ``"transpose"`` or ``"bilinear"`` (see :func:`decoder_block`).
        name: the model's name.
        use_bias: bias in the blocks' convolutions; default: only without BatchNorm.
        block: ``"plain"`` (:func:`conv_block`) or ``"residual"`` (:func:`residual_block`)
            for every block of the encoder, bottleneck and decoder.

    Returns:
        A ``keras.Model`` from the image to ``(batch, H, W, n_classes)`` /
        ``(batch, D, H, W, n_classes)`` probabilities, float32.

    Raises:
        ValueError: a size not divisible by ``2**depth``, a bad ``input_shape``,
            ``n_classes < 1``, an unknown ``block`` or ``upsampling``.
    """
    shape = check_input_shape(input_shape, depth)
    if int(n_classes) < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}.")
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {BLOCKS}, got {block!r}.")
    options: dict[str, Any] = dict(batch_norm=batch_norm, dropout=dropout, block=block, use_bias=use_bias)
    from helpers.distribute import distribution_scope

    with distribution_scope():   # all devices of this machine/cluster (helpers.distribute)
        inputs = keras.Input(shape, name="image")
        x = inputs
        skips = []
        for level in range(depth):
            skip, x = encoder_block(x, base_filters * 2 ** level, name=f"enc{level + 1}", **options)
            skips.append(skip)
        x = _block(x, base_filters * 2 ** depth, name="bottleneck", **options)
        for level in reversed(range(depth)):
            x = decoder_block(x, skips[level], base_filters * 2 ** level, upsampling=upsampling,
                              name=f"dec{level + 1}", **options)
        activation = "sigmoid" if n_classes == 1 else "softmax"
        outputs = layers_for(x).Conv(n_classes, 1, activation=activation, dtype="float32",
                                     name="mask")(x)
        return keras.Model(inputs, outputs, name=name)


def reference_model(patch_size: tuple[int, int, int] = (32, 32, 32)) -> keras.Model:
    """Lesson 06's ``model``: a residual 3D U-Net for the lung CT training patches.

    Args:
        patch_size: the training patch ``(X, Y, Z)``, each side divisible by 8.

    Returns:
        ``build_unet(patch_size + (1,), depth=3, base_filters=8, dropout=0.05,
        block="residual")``, named ``unet3d``: three poolings, about 358 000 weights (inside
        the lesson's budget of 300 000 to 400 000), a sigmoid output ``(X, Y, Z, 1)``.
    """
    return build_unet(tuple(patch_size) + (1,), n_classes=1, depth=3, base_filters=8, dropout=0.05,
                      block="residual", name="unet3d")


def count_parameters(model: keras.Model) -> dict[str, int]:
    """Number of weights of a Keras model.

    Args:
        model: a built Keras model.

    Returns:
        ``{"total", "trainable", "non_trainable"}`` weight counts (BatchNorm moving means and
        variances are non-trainable).
    """
    trainable = int(sum(int(w.numpy().size) if hasattr(w, "numpy") else int(w.size)
                        for w in model.trainable_weights))
    non_trainable = int(sum(int(w.numpy().size) if hasattr(w, "numpy") else int(w.size)
                            for w in model.non_trainable_weights))
    return {"total": trainable + non_trainable, "trainable": trainable,
            "non_trainable": non_trainable}
