"""Plausible beginner mistakes for every graded exercise of every lesson, each of which the
exercise's check must catch with an ``AssertionError`` whose hint names the fault, and
legitimate variants the check must accept.

The wrong solutions are self-contained (they do not call the reference implementations in
``helpers``), so they behave like a learner's code. Inputs are tiny: this file belongs to
the quick tier. ``test_every_graded_exercise_is_covered`` reads the answer notebooks and
fails when a graded exercise has fewer than five wrong solutions here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from keras import ops
from scipy import ndimage
from skimage import measure
from skimage.transform import resize

from helpers import checks, config, data

ROOT = Path(__file__).resolve().parents[2]

WRONG: list = []     # (exercise, label, run, fragments): run() must raise AssertionError
RIGHT: list = []     # (exercise, label, run): run() must pass
#: (exercise, label) -> a function returning the wrong solution's learner objects (the function, class,
#: model or values the visible check cell is called on, in the order of its names there): the witnesses
#: of tests/checks/test_hidden_tests.py run them in the hidden tests
LEARNER: dict = {}


def wrong(exercise: str, label: str, *fragments: str):
    """Register ``run`` (the decorated function) as a wrong solution of ``exercise``."""
    def register(run):
        WRONG.append((exercise, label, run, fragments))
        return run
    return register


def right(exercise: str, label: str):
    def register(run):
        RIGHT.append((exercise, label, run))
        return run
    return register


def _w(exercise, check, fn, label, *fragments, **kwargs):
    """Shorthand: ``check(fn, **kwargs)`` must fail with ``fragments`` in the message."""
    WRONG.append((exercise, label, lambda: check(fn, **kwargs), fragments))
    LEARNER[(exercise, label)] = lambda: (fn,)


def _learner(exercise, label, make):
    """Record ``make() -> (learner objects)`` for a wrong solution registered without ``_w``."""
    LEARNER[(exercise, label)] = make


def _r(exercise, check, fn, label, **kwargs):
    RIGHT.append((exercise, label, lambda: check(fn, **kwargs)))


# ======================================================================================
# 01 data generator
# ======================================================================================

def _stretch(image, low=5, high=95, *, mistake=None):
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, [5, 95] if mistake == "fixed" else [low, high])
    if mistake == "min-max":
        lo, hi = image.min(), image.max()
    if hi <= lo and mistake != "nan":
        return np.zeros_like(image)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (image - lo) / (hi - lo)
    if mistake != "no clip":
        out = np.clip(out, 0, 1)
    return out.astype(np.float64 if mistake == "float64" else np.float32)


def _stretch_in_place(image, low=5, high=95):
    if np.asarray(image).dtype.kind != "f":
        image = np.asarray(image, np.float32)
    lo, hi = np.percentile(image, [low, high])
    if hi <= lo:
        return np.zeros(np.shape(image), np.float32)
    image -= lo                 # modifies the caller's float array
    image /= hi - lo
    return np.clip(image, 0, 1).astype(np.float32)


E = "percentile_stretch_check"
for _m, _frag in (("min-max", "min-max"), ("no clip", "clip"), ("fixed", "low and high"),
                  ("nan", "NaN"), ("float64", "float32")):
    _w(E, checks.check_percentile_stretch, lambda im, low=5, high=95, m=_m: _stretch(im, low, high, mistake=m),
       _m, _frag)
_w(E, checks.check_percentile_stretch, _stretch_in_place, "modifies the input", "in place")
_r(E, checks.check_percentile_stretch, _stretch, "reference-like")
_r(E, checks.check_percentile_stretch,
   lambda im, low=5, high=95: np.interp(np.asarray(im, np.float32), np.percentile(im, [low, high]), [0, 1]).astype(np.float32)
   if np.ptp(np.percentile(im, [low, high])) > 0 else np.zeros(np.shape(im), np.float32), "np.interp")


def _load_pair(image_path, mask_path, image_size, soft=False):
    image = _stretch(data.read_image(image_path))
    mask = data.read_mask(mask_path)
    image = resize(image, image_size, order=1, anti_aliasing=True, preserve_range=True)
    mask = resize(mask.astype(np.float32), image_size, order=1 if soft else 0,
                  anti_aliasing=soft, preserve_range=True)
    return image.astype(np.float32), mask.astype(np.float32)


def _augment(image, mask, rng, flip=False, max_rotation=10, max_shift=0.05, *, mistake=None):
    do_flip = rng.random() < 0.5
    angle = rng.uniform(-max_rotation, max_rotation)
    shift = rng.uniform(-max_shift, max_shift, size=2) * np.array(image.shape)
    if mistake == "global random":
        angle = np.random.uniform(-max_rotation, max_rotation)
    if mistake == "shift in pixels":
        shift = rng.uniform(-max_shift, max_shift, size=2)
    if mistake == "too strong":
        angle, shift = angle * 9, shift * 8
    if (do_flip and flip) or mistake == "flip by default":
        if do_flip:
            image, mask = np.fliplr(image), np.fliplr(mask)
    if mistake == "up-down" and do_flip:
        image, mask = np.flipud(image), np.flipud(mask)
    mask_order = 1 if mistake == "interpolated mask" else 0
    if mistake != "no rotation":
        image = ndimage.rotate(image, angle, reshape=False, order=1, mode="nearest")
        if mistake != "image only":
            mask = ndimage.rotate(mask.astype(np.float32) if mask_order else mask, angle, reshape=False,
                                  order=mask_order, mode="nearest")
    if mistake != "no shift":
        image = ndimage.shift(image, shift, order=1, mode="nearest")
        if mistake != "image only":
            mask = ndimage.shift(mask, shift, order=mask_order, mode="nearest")
    return image, mask


class _Dataset(keras.utils.PyDataset):
    """The lesson's CXRDataset, with a switch for each usual mistake."""

    mistake = None

    def __init__(self, pairs, batch_size=8, image_size=(32, 32), shuffle=True, seed=0, augment=False,
                 **kwargs):
        if self.mistake != "no super":
            super().__init__(**kwargs)
        self.pairs, self.batch_size, self.image_size = list(pairs), batch_size, tuple(image_size)
        self.shuffle, self.augment = shuffle, augment and self.mistake != "ignores augment"
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(self.pairs))
        self._shuffle()

    def _shuffle(self):
        if self.shuffle:
            (np.random if self.mistake == "unseeded" else self.rng).shuffle(self.order)

    def __len__(self):
        n = len(self.pairs) / self.batch_size
        if self.mistake == "exact multiple gets an extra batch":
            return len(self.pairs) // self.batch_size + 1
        return int(n) if self.mistake == "drops last" else math.ceil(n)

    def __getitem__(self, index):
        images, masks = [], []
        for i in self.order[index * self.batch_size:(index + 1) * self.batch_size]:
            size = (config.CXR_TRAIN_SIZE,) * 2 if self.mistake == "the lesson's size, not image_size" else self.image_size
            image, mask = _load_pair(*self.pairs[i], size, soft=self.mistake == "soft masks")
            if self.augment:
                image, mask = _augment(image, mask, self.rng)
            images.append(image[..., None])
            masks.append(mask[..., None])
        x, y = np.stack(images).astype(np.float32), np.stack(masks).astype(np.float32)
        if self.mistake == "separate shuffle" and self.shuffle:
            y = np.roll(y, 1, axis=0)
        return x, y

    def on_epoch_end(self):
        if self.mistake != "no reshuffle":
            self._shuffle()


def _dataset_with(mistake):
    return type(f"Dataset_{mistake}", (_Dataset,), {"mistake": mistake})


E = "cxr_dataset_check"
for _m, _frag in (("separate shuffle", "out of step"), ("drops last", "smaller batch"),
                  ("no reshuffle", "on_epoch_end"), ("unseeded", "seed alone"),
                  ("no super", "super().__init__"), ("soft masks", "interpolated"),
                  # the hidden tests use other sizes: the visible check asks for even divisions too
                  ("exact multiple gets an extra batch", "divides the pairs evenly"),
                  ("the lesson's size, not image_size", "image_size")):
    _w(E, checks.check_dataset, _dataset_with(_m), _m, _frag)
_r(E, checks.check_dataset, _Dataset, "lesson-like")

E = "augment_pair_check"
for _m, _frag in (("flip by default", "flip=False"), ("up-down", "upside down"), ("no shift", "never moved"),
                  ("shift in pixels", "never moved"), ("no rotation", "never turned"),
                  ("global random", "same seed"), ("image only", "line up"),
                  ("interpolated mask", "interpolated"), ("too strong", "too strong")):
    _w(E, checks.check_augment_pair, lambda i, m, r, flip=False, m_=_m: _augment(i, m, r, flip, mistake=m_), _m, _frag)
_w(E, checks.check_augment_pair, lambda image, mask, rng: _augment(image, mask, rng), "no flip parameter",
   "flip=True")
_w(E, checks.check_dataset_augments, _dataset_with("ignores augment"), "data set ignores augment=True", "augment=True")
_r(E, checks.check_augment_pair, _augment, "lesson-like")


def _augment_np_flip(image, mask, rng, flip=False, max_rotation=10, max_shift=0.05):
    """Shift first, rotate second, np.flip on the last axis, random numbers drawn as needed."""
    dy, dx = rng.uniform(-max_shift, max_shift, size=2) * np.array(image.shape)
    image = ndimage.shift(image, (dy, dx), order=1)
    mask = ndimage.shift(mask, (dy, dx), order=0)
    angle = rng.uniform(-max_rotation, max_rotation)
    image = ndimage.rotate(image, angle, reshape=False, order=1)
    mask = ndimage.rotate(mask, angle, reshape=False, order=0)
    if flip and rng.random() < 0.5:
        image, mask = np.flip(image, axis=-1), np.flip(mask, axis=-1)
    return image, mask


_r(E, checks.check_augment_pair, _augment_np_flip, "shift then rotate, np.flip")
_r(E, checks.check_dataset_augments, _Dataset, "data set augments")


def test_unfinished_dataset_costs_no_augmentation_points(capsys):
    checks.check_dataset_augments(_dataset_with("drops last"))
    assert "skipped" in capsys.readouterr().out


# ======================================================================================
# 02 architecture
# ======================================================================================

def _layers(x):
    if len(x.shape) == 4:
        return SimpleNamespace(Conv=keras.layers.Conv2D, ConvTranspose=keras.layers.Conv2DTranspose,
                               MaxPool=keras.layers.MaxPooling2D, SpatialDropout=keras.layers.SpatialDropout2D,
                               Up=keras.layers.UpSampling2D)
    return SimpleNamespace(Conv=keras.layers.Conv3D, ConvTranspose=keras.layers.Conv3DTranspose,
                           MaxPool=keras.layers.MaxPooling3D, SpatialDropout=keras.layers.SpatialDropout3D,
                           Up=keras.layers.UpSampling3D)


def _conv_block(x, filters, batch_norm=True, dropout=0.0, *, mistake=None):
    L = _layers(x)
    for _ in range(1 if mistake == "one conv" else 2):
        x = L.Conv(filters, 3, padding="valid" if mistake == "valid padding" else "same",
                   use_bias=not batch_norm)(x)
        if mistake == "relu before bn":
            x = keras.layers.Activation("relu")(x)
        if batch_norm and mistake != "no batchnorm":
            x = keras.layers.BatchNormalization()(x)
        if mistake != "relu before bn":
            x = keras.layers.Activation("relu")(x)
    if dropout > 0 and mistake != "no dropout":
        x = (keras.layers.Dropout(dropout) if mistake == "plain dropout" else L.SpatialDropout(dropout))(x)
    return x


E = "conv_block_check"
for _m, _frag in (("one conv", ""), ("valid padding", "same"), ("relu before bn", ""),
                  ("no dropout", "spatial dropout"), ("plain dropout", "spatial dropout"),
                  ("no batchnorm", "")):
    _w(E, checks.check_conv_block, lambda x, f, batch_norm=True, dropout=0.0, m=_m: _conv_block(
        x, f, batch_norm, dropout, mistake=m), _m, _frag)
_r(E, checks.check_conv_block, _conv_block, "lesson-like")


def _encoder(x, filters, batch_norm=True, dropout=0.0, *, mistake=None):
    L = _layers(x)
    if mistake == "pool first":
        pooled = L.MaxPool(2)(x)
        skip = _conv_block(pooled, filters, batch_norm, dropout)
        return skip, skip
    skip = _conv_block(x, filters, batch_norm, dropout if mistake != "drops dropout" else 0.0)
    if mistake == "strided conv":
        pooled = L.Conv(filters, 3, strides=2, padding="same")(skip)
    elif mistake == "pool 4":
        pooled = L.MaxPool(4)(skip)
    else:
        pooled = L.MaxPool(2)(skip)
    if mistake == "swapped":
        return pooled, skip
    if mistake == "skip is input":
        return x, pooled
    return skip, pooled


# encoder_block (Exercise 2.2) is an ungraded warm-up: its wrong solutions are in
# tests/checks/test_checks_generator_architecture.py.


def _decoder(x, skip, filters, batch_norm=True, dropout=0.0, *, mistake=None):
    L = _layers(x)
    if mistake == "upsampling, no conv":
        x = L.Up(2)(x)
    else:
        x = L.ConvTranspose(filters, 2, strides=2 if mistake != "stride 1" else 1, padding="same")(x)
    if mistake == "add instead of concatenate":
        x = keras.layers.Add()([x, L.Conv(filters, 1)(skip)])
    elif mistake != "no skip":
        x = keras.layers.Concatenate(axis=-1)([x, skip])
    if mistake == "no conv block":
        return x
    return _conv_block(x, filters * (2 if mistake == "double filters" else 1), batch_norm, dropout)


E = "decoder_block_check"
for _m in ("no skip", "add instead of concatenate", "no conv block", "double filters", "stride 1"):
    _w(E, checks.check_decoder_block, lambda x, s, f, batch_norm=True, dropout=0.0, m=_m: _decoder(
        x, s, f, batch_norm, dropout, mistake=m), _m)
_r(E, checks.check_decoder_block, _decoder, "lesson-like")


def _unet(input_shape, n_classes=1, depth=4, base_filters=16, batch_norm=True, dropout=0.1, *, mistake=None):
    factor = 2 ** depth
    if mistake != "no size check":
        for size in input_shape[:-1]:
            if size % factor:
                raise ValueError(f"size {size} is not divisible by {factor}")
    if mistake == "ignores dropout":
        dropout = 0.1
    inputs = keras.Input(input_shape)
    x, skips = inputs, []
    for level in range(depth):
        skip, x = _encoder(x, base_filters * (2 ** level if mistake != "constant filters" else 1),
                           batch_norm, dropout)
        skips.append(skip)
    x = _conv_block(x, base_filters * 2 ** depth, batch_norm, dropout)
    for level in reversed(range(depth)):
        x = _decoder(x, skips[level], base_filters * 2 ** level, batch_norm, dropout)
    activation = "sigmoid" if (n_classes == 1 or mistake == "always sigmoid") else "softmax"
    if mistake == "no activation":
        activation = None
    outputs = _layers(x).Conv(n_classes, 1, activation=activation)(x)
    return keras.Model(inputs, outputs)


E = "build_unet_check"
for _m, _frag in (("no size check", "your own size check"), ("ignores dropout", "dropout"),
                  ("constant filters", "parameters"), ("always sigmoid", "softmax"),
                  ("no activation", "activation")):
    _w(E, checks.check_unet, lambda s, n_classes=1, depth=4, base_filters=16, batch_norm=True, dropout=0.1, m=_m:
       _unet(s, n_classes, depth, base_filters, batch_norm, dropout, mistake=m), _m, _frag)
_r(E, checks.check_unet, _unet, "lesson-like")


# The 3D U-Net (Exercise 2.6) is an ungraded warm-up: its wrong solutions are in
# tests/checks/test_checks_generator_architecture.py.


def _residual(x, filters, batch_norm=True, dropout=0.0, *, mistake=None):
    """A learner's residual block; ``mistake`` picks one beginner error."""
    L = _layers(x) if mistake != "2D only" else SimpleNamespace(
        Conv=keras.layers.Conv2D, SpatialDropout=keras.layers.SpatialDropout2D)
    shortcut = x
    if x.shape[-1] != filters or mistake == "projection always":
        if mistake == "no projection":
            pass                      # x + shortcut then fails on the channel mismatch
        elif mistake == "skips shortcut when channels differ":
            shortcut = None
        else:
            shortcut = L.Conv(filters, 1, use_bias=not batch_norm)(x)
            if batch_norm:
                shortcut = keras.layers.BatchNormalization()(shortcut)
    for i in (1, 2):
        x = L.Conv(filters, 3, padding="same", use_bias=not batch_norm)(x)
        if batch_norm:
            x = keras.layers.BatchNormalization()(x)
        if i == 1 or mistake in ("relu before add", "add after relu"):
            x = keras.layers.Activation("relu")(x)
        if i == 1 and mistake == "shortcut after first conv":
            shortcut = x
    if dropout > 0 and mistake == "dropout before add":
        x = L.SpatialDropout(dropout)(x)
    if mistake == "no shortcut" or shortcut is None:
        pass
    elif mistake == "concatenate":
        x = keras.layers.Concatenate()([x, shortcut])
    else:
        x = keras.layers.Add()([x, shortcut])
    if mistake not in ("add after relu", "no final relu"):
        x = keras.layers.Activation("relu")(x)
    if dropout > 0 and mistake not in ("dropout before add", "no dropout"):
        x = (keras.layers.Dropout(dropout) if mistake == "plain dropout" else L.SpatialDropout(dropout))(x)
    return x


def _residual_ops(x, filters, batch_norm=True, dropout=0.0):
    """Legitimate variant: operators instead of Add/Activation layers, the projection
    without BatchNorm and with a bias, ReLU layers."""
    L = _layers(x)
    shortcut = x if x.shape[-1] == filters else L.Conv(filters, 1, use_bias=True)(x)
    y = x
    for i in (1, 2):
        y = L.Conv(filters, 3, padding="same", use_bias=True)(y)
        if batch_norm:
            y = keras.layers.BatchNormalization()(y)
        if i == 1:
            y = keras.layers.ReLU()(y)
    y = keras.ops.relu(y + shortcut)
    return L.SpatialDropout(dropout)(y) if dropout > 0 else y


E = "residual_block_check"
for _m, _frag in (("no shortcut", "no shortcut"), ("add after relu", "after the final ReLU"),
                  ("no projection", "1×1 convolution"),
                  ("skips shortcut when channels differ", "no shortcut when the channels change"),
                  ("projection always", "identity"), ("shortcut after first conv", "input"),
                  ("concatenate", "concatenat"), ("2D only", "volumes"),
                  ("relu before add", "ReLU before the addition"), ("no final relu", "no ReLU after"),
                  ("dropout before add", "dropout"), ("plain dropout", "whole maps"),
                  ("no dropout", "spatial dropout")):
    _w(E, checks.check_residual_block, lambda x, f, batch_norm=True, dropout=0.0, m=_m: _residual(
        x, f, batch_norm, dropout, mistake=m), _m, _frag)
_r(E, checks.check_residual_block, _residual, "lesson-like")
_r(E, checks.check_residual_block, _residual_ops, "operators, projection without BatchNorm")


def _depth(input_shape, min_size=4, *, mistake=None):
    sizes = list(input_shape[:-1])
    if mistake == "first size only":
        sizes = sizes[:1]
    if mistake == "channels as a size":
        sizes = list(input_shape)
    if mistake == "log2":
        return int(math.log2(min(sizes)))
    depth = 0
    while all(size % 2 ** (depth + 1) == 0 and (mistake == "ignores min_size" or size // 2 ** (depth + 1) >= min_size)
              for size in sizes):
        depth += 1
    return depth + 1 if mistake == "one too deep" else depth


E = "max_depth_check"
for _m, _frag in (("first size only", "every spatial size"), ("channels as a size", "channels"),
                  ("log2", ""), ("ignores min_size", "min_size"), ("one too deep", "one too deep")):
    _w(E, checks.check_max_depth, lambda shape, min_size=4, m=_m: _depth(shape, min_size, mistake=m), _m, _frag)
_r(E, checks.check_max_depth, _depth, "while loop")
_r(E, checks.check_max_depth, lambda shape, min_size=4: max(
    [d for d in range(0, 20) if all(s % 2 ** d == 0 and s // 2 ** d >= min_size for s in shape[:-1])] or [0]),
   "search over depths")


# ======================================================================================
# 03 loss and metrics
# ======================================================================================

def _axes(t):
    return tuple(range(1, len(t.shape)))


def _dice(t, p, smooth=1.0, *, mistake=None):
    axes = _axes(t)
    if mistake == "pooled":
        axes = None
    inter = ops.sum(t * p, axis=axes)
    total = ops.sum(t, axis=axes) + ops.sum(p, axis=axes)
    two = 1.0 if mistake == "no factor 2" else 2.0
    if mistake == "no smooth":
        smooth = 0.0
    if mistake == "smooth numerator only":
        return ops.mean((two * inter + smooth) / total)
    if mistake == "union":
        return ops.mean((two * inter + smooth) / (total - inter + smooth))
    value = (two * inter + smooth) / (total + smooth)
    if mistake == "vector":
        return value
    if mistake == "numpy":
        return float(np.mean(np.asarray(value)))
    return ops.mean(value)


E = "dice_coefficient_check"
for _m in ("pooled", "no factor 2", "no smooth", "smooth numerator only", "vector", "numpy"):
    _w(E, checks.check_dice, lambda t, p, smooth=1.0, m=_m: _dice(t, p, smooth, mistake=m), _m)
_r(E, checks.check_dice, _dice, "lesson-like")


def _dice_flattened(t, p, smooth=1.0):
    t, p = ops.reshape(t, (ops.shape(t)[0], -1)), ops.reshape(p, (ops.shape(p)[0], -1))
    return ops.mean((2.0 * ops.sum(t * p, axis=1) + smooth) / (ops.sum(t + p, axis=1) + smooth))


_r(E, checks.check_dice, _dice_flattened, "flattened per sample")


def _hard(t, p, threshold=0.5, smooth=1.0, *, mistake=None):
    tt = ops.cast(t > 0.5, "float32")
    pp = ops.cast(p > (0.5 if mistake == "ignores threshold" else threshold), "float32")
    if mistake == "soft":
        pp = p
    if mistake == "round":
        pp = ops.round(p * 0 + ops.cast(p >= 0.5, "float32"))
    if mistake == "inverted":
        pp = 1.0 - pp
    return _dice(tt, pp, 0.0 if mistake == "no smooth" else smooth, mistake="pooled" if mistake == "pooled" else None)


E = "hard_dice_check"
for _m, _frag in (("ignores threshold", "threshold"), ("soft", "soft Dice"), ("inverted", "inverted"),
                  ("no smooth", ""), ("pooled", "")):
    _w(E, checks.check_hard_dice, lambda t, p, threshold=0.5, smooth=1.0, m=_m: _hard(t, p, threshold, smooth, mistake=m),
       _m, _frag)
_r(E, checks.check_hard_dice, _hard, "lesson-like")
_r(E, checks.check_hard_dice, lambda t, p, threshold=0.5, smooth=1.0: _dice_flattened(
    ops.where(t > 0.5, 1.0, 0.0), ops.where(p > threshold, 1.0, 0.0), smooth), "where instead of cast")

# dice_loss (Exercise 3.3) is an ungraded warm-up: its wrong solutions are in tests/checks/test_checks_metrics.py.


def _iou(t, p, smooth=1.0, *, mistake=None):
    axes = None if mistake == "pooled" else _axes(t)
    inter = ops.sum(t * p, axis=axes)
    union = ops.sum(t, axis=axes) + ops.sum(p, axis=axes)
    if mistake != "sum as union":
        union = union - inter
    if mistake == "no smooth":
        smooth = 0.0
    if mistake == "max union":
        union = ops.sum(ops.maximum(t, p), axis=axes) * 2
    return ops.mean((inter + smooth) / (union + smooth))


E = "iou_check"
for _m in ("pooled", "sum as union", "no smooth", "max union"):
    _w(E, checks.check_iou, lambda t, p, smooth=1.0, m=_m: _iou(t, p, smooth, mistake=m), _m)
_w(E, checks.check_iou, lambda t, p, smooth=1.0: _dice(t, p, smooth), "Dice instead of IoU")
_r(E, checks.check_iou, _iou, "lesson-like")
_r(E, checks.check_iou, lambda t, p, smooth=1.0: ops.mean(
    (ops.sum(t * p, axis=[1, 2, 3]) + smooth)
    / (ops.sum(t + p - t * p, axis=[1, 2, 3]) + smooth)), "union as t + p - t*p")


def _bce_dice(t, p, smooth=1.0, *, mistake=None):
    eps = 1e-7
    pc = ops.clip(p, eps, 1 - eps)
    bce = -(t * ops.log(pc) + (1 - t) * ops.log(1 - pc))
    if mistake == "no clip":
        bce = -(t * ops.log(p) + (1 - t) * ops.log(1 - p))
    if mistake == "only positives":
        bce = -(t * ops.log(pc))
    bce = ops.mean(bce) if mistake != "sum" else ops.sum(bce)
    dice_part = 1.0 - _dice(t, p, smooth)
    if mistake == "bce only":
        return bce
    if mistake == "minus dice":
        return bce - _dice(t, p, smooth)
    if mistake == "times":
        return bce * dice_part
    return bce + dice_part


E = "bce_dice_loss_check"
for _m in ("no clip", "only positives", "sum", "bce only", "minus dice", "times"):
    _w(E, checks.check_bce_dice_loss, lambda t, p, smooth=1.0, m=_m: _bce_dice(t, p, smooth, mistake=m), _m)
_r(E, checks.check_bce_dice_loss, _bce_dice, "clipped by hand")
_r(E, checks.check_bce_dice_loss, lambda t, p, smooth=1.0: ops.mean(keras.losses.binary_crossentropy(t, p))
   + 1.0 - _dice(t, p, smooth), "keras.losses.binary_crossentropy")


def _counts(t, p, threshold=0.5):
    axes = _axes(t)
    t = ops.cast(t > 0.5, "float32")
    p = ops.cast(p > threshold, "float32")
    return (ops.sum(t * p, axis=axes), ops.sum((1 - t) * p, axis=axes), ops.sum(t * (1 - p), axis=axes),
            ops.sum((1 - t) * (1 - p), axis=axes))


def _ratio(which, mistake=None):
    def fn(t, p, threshold=0.5, smooth=1e-6):
        if mistake == "soft counts":
            axes = _axes(t)
            tp, fp = ops.sum(t * p, axis=axes), ops.sum((1 - t) * p, axis=axes)
            fn_, tn = ops.sum(t * (1 - p), axis=axes), ops.sum((1 - t) * (1 - p), axis=axes)
        else:
            tp, fp, fn_, tn = _counts(t, p, threshold)
        num, den = {"sensitivity": (tp, tp + fn_), "specificity": (tn, tn + fp), "precision": (tp, tp + fp)}[which]
        if mistake == "swapped":
            num, den = {"sensitivity": (tp, tp + fp), "specificity": (tn, tn + fn_), "precision": (tp, tp + fn_)}[which]
        if mistake == "no smooth":
            return ops.mean(num / den)
        if mistake == "smooth denominator only":
            return ops.mean(num / (den + smooth))
        if mistake == "pooled":
            return (ops.sum(num) + smooth) / (ops.sum(den) + smooth)
        return ops.mean((num + smooth) / (den + smooth))
    return fn


def _count_fn(mistake=None):
    def fn(t, p, threshold=0.5):
        if mistake == "soft counts":
            axes = _axes(t)
            return (ops.sum(t * p, axis=axes), ops.sum((1 - t) * p, axis=axes), ops.sum(t * (1 - p), axis=axes),
                    ops.sum((1 - t) * (1 - p), axis=axes))
        tp, fp, fn_, tn = _counts(t, p, 0.5 if mistake == "ignores threshold" else threshold)
        if mistake == "pooled":
            return ops.sum(tp), ops.sum(fp), ops.sum(fn_), ops.sum(tn)
        if mistake == "fp and fn swapped":
            return tp, fn_, fp, tn
        if mistake == "three counts":
            return tp, fp, fn_
        return tp, fp, fn_, tn
    return fn


def _confusion(mistake=None, which=("sensitivity", "specificity", "precision"), counts=None):
    return lambda: checks.check_confusion_metrics(**{w: _ratio(w, mistake if w in which else None)
                                                     for w in ("sensitivity", "specificity", "precision")},
                                                  counts=counts or _count_fn())


E = "confusion_metrics_check"
for _m, _frag in (("soft counts", "threshold"), ("swapped", "this is the"), ("no smooth", "smooth"),
                  ("smooth denominator only", "only in the denominator"), ("pooled", "")):
    WRONG.append((E, _m, _confusion(_m), (_frag,) if _frag else ()))
WRONG.append((E, "precision and sensitivity swapped", lambda: checks.check_confusion_metrics(
    sensitivity=_ratio("precision"), specificity=_ratio("specificity"), precision=_ratio("sensitivity")), ()))
for _m, _frag in (("soft counts", "thresholded"), ("ignores threshold", "threshold=0.25"),
                  ("pooled", "one count per sample"), ("fp and fn swapped", "fp expected"),
                  ("three counts", "four counts")):
    WRONG.append((E, f"confusion_counts: {_m}", lambda m=_m: _confusion(counts=_count_fn(m))(), (_frag,)))
RIGHT.append((E, "lesson-like", _confusion()))
RIGHT.append((E, "counts with where and logical operators", _confusion(counts=lambda t, p, threshold=0.5: (
    lambda tt, pp, a: (ops.sum(ops.where(tt & pp, 1.0, 0.0), axis=a), ops.sum(ops.where(~tt & pp, 1.0, 0.0), axis=a),
                       ops.sum(ops.where(tt & ~pp, 1.0, 0.0), axis=a), ops.sum(ops.where(~tt & ~pp, 1.0, 0.0), axis=a)))(
        t > 0.5, p > threshold, tuple(range(1, len(t.shape)))))))


def _mc_dice(t, p, include_background=False, smooth=1.0, *, mistake=None):
    axes = tuple(range(1, len(t.shape) - 1))
    if mistake == "pooled over batch":
        axes = tuple(range(0, len(t.shape) - 1))
    inter = ops.sum(t * p, axis=axes)
    total = ops.sum(t, axis=axes) + ops.sum(p, axis=axes)
    per = (2.0 * inter + smooth) / (total + smooth)
    if mistake == "binary dice":
        return ops.mean((2.0 * ops.sum(t * p, axis=_axes(t)) + smooth)
                        / (ops.sum(t, axis=_axes(t)) + ops.sum(p, axis=_axes(t)) + smooth))
    if mistake == "always background":
        include_background = True
    if mistake == "never background":
        include_background = False
    if not include_background:
        per = per[..., 1:] if mistake != "drops last class" else per[..., :-1]
    if mistake == "drops last class" and include_background:
        per = per[..., :-1]
    return ops.mean(per)


E = "multiclass_dice_check"
for _m in ("pooled over batch", "binary dice", "always background", "never background", "drops last class"):
    _w(E, checks.check_multiclass_dice, lambda t, p, include_background=False, smooth=1.0, m=_m: _mc_dice(
        t, p, include_background, smooth, mistake=m), _m)
_r(E, checks.check_multiclass_dice, _mc_dice, "lesson-like")
_r(E, checks.check_multiclass_dice, lambda t, p, include_background=False, smooth=1.0: ops.mean(ops.stack(
    [_dice_flattened(t[..., c], p[..., c], smooth) for c in range(0 if include_background else 1, t.shape[-1])])),
   "a loop over the classes")


_WITHIN = {"plain": [.3, .5, .6, .65, .6, .7], "residual": [.3, .5, .62, .7, .66, .72]}     # 0.02 < noise 0.1
_BEYOND = {"plain": [.3, .4, .5, .55, .56, .57], "residual": [.3, .5, .7, .8, .82, .83]}    # 0.26 > noise 0.02
_BEST_EARLY = {"plain": [.3, .9, .5, .55, .56, .57], "residual": [.3, .5, .6, .7, .71, .72]}
_PLAIN_AHEAD = {"plain": _BEYOND["residual"], "residual": _BEYOND["plain"]}
_SHORT = {"plain": [.3, .5], "residual": [.3, .7]}
E = "noise_verdict_check"
for _ahead, _curves, _label, _frag in (
        ("residual", _WITHIN, "higher last value, noise ignored", "not enough"),
        ("neither", _BEYOND, "a real difference called noise", "once more"),
        ("plain", _BEYOND, "sign of the difference", "sign"),
        ("plain", _BEST_EARLY, "best epoch instead of the last", "last epoch"),
        ("residual", _SHORT, "too few epochs to measure the noise", "fewer than 4 epochs"),
        ("Residual", _BEYOND, "capitalised", "lower case"), (True, _BEYOND, "a boolean", "should be one of"),
        (..., _BEYOND, "left blank", "not set")):
    WRONG.append((E, _label, lambda a=_ahead, c=_curves: checks.check_noise_verdict(a, c), (_frag,)))
for _ahead, _curves, _label in (("neither", _WITHIN, "within the noise"), ("residual", _BEYOND, "residual ahead"),
                                ("plain", _PLAIN_AHEAD, "plain ahead"), ("neither", _SHORT, "too few epochs")):
    RIGHT.append((E, _label, lambda a=_ahead, c=_curves: checks.check_noise_verdict(a, c)))


#: Candidates as lesson 06 prints them (spacing mm, windows, best Dice), budget 30 windows.
_SPACINGS = [(3.0, 216, 0.987), (4.0, 80, 0.979), (5.0, 36, 0.971), (6.0, 27, 0.965), (8.0, 8, 0.959)]
E = "working_spacing_check"
for _choice, _label, _frag in ((3.0, "best Dice, budget ignored", "budget"), (5.0, "just over the budget", "budget"),
                               (8.0, "fewest windows", "finer spacing"), (7.0, "not a candidate", "candidates"),
                               ("6 mm", "a string", "one number"), ((6.0, 6.0, 6.0), "one per axis", "one number"),
                               (..., "left blank", "not set")):
    WRONG.append((E, _label, lambda c=_choice: checks.check_working_spacing(c, _SPACINGS, 30), (_frag,)))
RIGHT.append((E, "finest within budget", lambda: checks.check_working_spacing(6.0, _SPACINGS, 30)))
RIGHT.append((E, "as an int", lambda: checks.check_working_spacing(6, _SPACINGS, 30)))
RIGHT.append((E, "another budget", lambda: checks.check_working_spacing(4.0, _SPACINGS, 100)))


def _verdict_masks():
    """A truth of two 'lungs', a prediction 2 px too tight (A) and one with a far false blob (B):
    Dice prefers B, HD95 prefers A."""
    truth = np.zeros((96, 96), bool)
    truth[10:60, 10:40] = truth[10:60, 55:85] = True
    tight = ndimage.binary_erosion(truth, iterations=2)
    yy, xx = np.indices(truth.shape)
    blob = truth | ((yy - 85) ** 2 + (xx - 48) ** 2 < 16)
    return truth, {"A": tight, "B": blob}


E = "metric_verdicts_check"
for _by_dice, _by_hd, _label, _frag in (("A", "A", "Dice read the wrong way", "larger value wins"),
                                  ("B", "B", "HD95 read as larger is better", "smaller value wins"),
                                  ("A", "B", "both swapped", "larger value wins"),
                                  ("b", "A", "lower-case name", "name of a prediction"),
                                  (0.98, "A", "a Dice value instead of a name", "name of a prediction"),
                                  (..., "A", "left blank", "not set"), ("B", ..., "HD95 left blank", "not set")):
    WRONG.append((E, _label, lambda a=_by_dice, b=_by_hd: checks.check_metric_verdicts(a, b, *_verdict_masks()), (_frag,)))
RIGHT.append((E, "read off the computed values", lambda: checks.check_metric_verdicts("B", "A", *_verdict_masks())))
RIGHT.append((E, "other names", lambda: checks.check_metric_verdicts(
    "blob", "tight", _verdict_masks()[0], {"tight": _verdict_masks()[1]["A"], "blob": _verdict_masks()[1]["B"]})))


# ======================================================================================
# 04 training
# ======================================================================================

def _pairs_of(items, parts):
    return tuple([items[i] for i in part] for part in parts)


def _split(items, fractions=(0.7, 0.15, 0.15), seed=0, *, mistake=None):
    items = list(items)
    rng = np.random.default_rng(seed)
    if mistake in ("by image", "by image, unshuffled"):
        order = rng.permutation(len(items)) if mistake == "by image" else np.arange(len(items))
        ends = np.round(np.cumsum(fractions) * len(items)).astype(int)
        starts = np.concatenate([[0], ends[:-1]])
        return tuple([items[i] for i in order[s:e]] for s, e in zip(starts, ends))
    patients = sorted({data.patient_id(image) for image, _ in items})
    if mistake == "global random":
        np.random.shuffle(patients)
    elif mistake != "no shuffle":
        rng.shuffle(patients)
    ends = np.round(np.cumsum(fractions) * len(patients)).astype(int)
    if mistake == "floor drops patients":
        ends = np.floor(np.cumsum(fractions) * len(patients) - 1e-9).astype(int)
    starts = np.concatenate([[0], ends[:-1]])
    part_of = {}
    for part, (start, end) in enumerate(zip(starts, ends)):
        for patient in patients[start:end]:
            part_of[patient] = part
    parts = [[] for _ in fractions]
    for image, mask in items:
        if data.patient_id(image) in part_of:
            parts[part_of[data.patient_id(image)]].append((image, mask))
    if mistake == "two parts":
        return parts[0], parts[1] + parts[2]
    return tuple(parts)


E = "split_by_patient_check"
for _m in ("by image", "by image, unshuffled", "global random", "no shuffle", "floor drops patients", "two parts"):
    _w(E, checks.check_split_by_patient, lambda items, fractions=(0.7, 0.15, 0.15), seed=0, m=_m: _split(
        items, fractions, seed, mistake=m), _m)
_r(E, checks.check_split_by_patient, _split, "lesson-like")


def _callbacks(run_dir, *, mistake=None):
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=mistake != "mkdir without parents", exist_ok=True)
    if mistake == "ignores run_dir":
        run_dir = Path("runs")
    mode = "min" if mistake == "mode min" else "max"
    monitor = "val_loss" if mistake == "val_loss with mode max" else "val_dice"
    out = [
        keras.callbacks.ModelCheckpoint(str(run_dir / ("best.h5" if mistake == "h5" else "best.keras")),
                                        monitor=monitor, mode=mode, save_best_only=mistake != "saves every epoch")
        if mistake != "h5" else keras.callbacks.ModelCheckpoint(str(run_dir / "best.weights.h5"), monitor=monitor,
                                                                 mode=mode, save_best_only=True, save_weights_only=True),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode="auto" if mistake == "no mode on one" else mode, factor=0.5,
                                          patience=5 if mistake == "stops before lowering" else 2),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=2 if mistake == "stops before lowering" else 5,
                                      restore_best_weights=mistake != "no restore"),
        keras.callbacks.CSVLogger(str(run_dir / "log.csv")),
    ]
    if mistake == "no logger":
        out = out[:3]
    return out


E = "make_callbacks_check"
for _m in ("mode min", "val_loss with mode max", "saves every epoch", "h5", "no restore", "no logger",
           "no mode on one", "stops before lowering"):
    WRONG.append((E, _m, lambda m=_m: checks.check_callbacks(lambda run_dir: _callbacks(run_dir, mistake=m)), ()))
    _learner(E, _m, lambda m=_m: (lambda run_dir: _callbacks(run_dir, mistake=m),))
# the hidden tests call it on the lesson's run folder and on a new nested one: the visible check does too
for _m, _frag in (("ignores run_dir", "expected"), ("mkdir without parents", "does not exist yet")):
    WRONG.append((E, _m, lambda m=_m: checks.check_callbacks(lambda run_dir: _callbacks(run_dir, mistake=m)), (_frag,)))
    _learner(E, _m, lambda m=_m: (lambda run_dir: _callbacks(run_dir, mistake=m),))
RIGHT.append((E, "lesson-like", lambda: checks.check_callbacks(_callbacks)))


E = "monitor_check"
for _monitor, _mode, _frag in (("dice", "max", "validation"), ("val_dice", "min", "worst epoch"),
                               ("val_loss", "max", "worst epoch"), ("val_dice", "maximum", "'max'"),
                               ("val_dice", "auto", "auto"), ("val_accuracy", "max", "not logged"),
                               ("val_dice_coefficient", "max", "not logged"), ("loss", "min", "validation")):
    WRONG.append((E, f"{_monitor} / {_mode}", lambda a=_monitor, b=_mode: checks.check_monitor(a, b), (_frag,)))
    _learner(E, f"{_monitor} / {_mode}", lambda a=_monitor, b=_mode: (a, b))
RIGHT.append((E, "val_dice / max", lambda: checks.check_monitor("val_dice", "max")))
RIGHT.append((E, "val_loss / min", lambda: checks.check_monitor("val_loss", "min")))
RIGHT.append((E, "val_hard_dice / max", lambda: checks.check_monitor("val_hard_dice", "max")))


def test_monitor_hints_do_not_give_the_answer():
    """The decision is the learner's: no failure message names the direction to use."""
    for monitor, mode in (("val_dice", "min"), ("val_loss", "max"), ("val_dice", "auto"), ("dice", "max")):
        with pytest.raises(AssertionError) as info:
            checks.check_monitor(monitor, mode)
        message = str(info.value)
        assert "use 'max'" not in message and "use 'min'" not in message and "'val_dice'." not in message, message


#: A run of 7 epochs where the best validation epoch (3, tied with 5), the best training
#: epoch (6), the last (7) and the worst (1) all differ.
_CURVES = {"loss": [0.9, 0.7, 0.5, 0.4, 0.3, 0.2, 0.25], "dice": [0.5, 0.6, 0.7, 0.8, 0.85, 0.95, 0.9],
           "val_loss": [0.9, 0.6, 0.35, 0.4, 0.3, 0.33, 0.5], "val_dice": [0.5, 0.7, 0.9, 0.85, 0.9, 0.88, 0.8]}
E = "best_epoch_check"
for _value, _label, _frag in ((2, "counted from 0 (np.argmax)", "from 0"), (7, "the last epoch", "last epoch"),
                              (6, "best of the training curve", "training curve"), (1, "worst epoch (wrong direction)", "worst"),
                              (5, "the later of two tied epochs", "first"), (0, "index 0", "from 1"),
                              (3.0, "a float", "whole number"), ("3", "a string", "whole number"),
                              (..., "left blank", "not set")):
    WRONG.append((E, _label, lambda v=_value: checks.check_best_epoch(v, SimpleNamespace(history=_CURVES)), (_frag,)))
RIGHT.append((E, "read off the curve", lambda: checks.check_best_epoch(3, SimpleNamespace(history=_CURVES))))
RIGHT.append((E, "np.argmax + 1", lambda: checks.check_best_epoch(np.argmax(_CURVES["val_dice"]) + 1, _CURVES)))
RIGHT.append((E, "val_loss watched in mode min", lambda: checks.check_best_epoch(
    5, SimpleNamespace(history=_CURVES), monitor="val_loss", mode="min")))


def _step(model, optimizer, loss_fn, x, y, *, mistake=None):
    import tensorflow as tf

    if mistake == "forward pass outside the tape":
        predictions = model(x, training=True)
    with tf.GradientTape() as tape:
        if mistake != "forward pass outside the tape":
            predictions = model(x, training=mistake != "inference mode")
        loss = loss_fn(predictions, y) if mistake == "arguments swapped" else loss_fn(y, predictions)
    gradients = tape.gradient(loss, model.trainable_weights)
    if mistake == "gradient ascent":
        gradients = [-g for g in gradients]
    if mistake != "no update":
        optimizer.apply_gradients(zip(gradients, model.trainable_weights))
    if mistake == "loss after the update":
        return loss_fn(y, model(x, training=True))
    if mistake == "no return":
        return None
    return loss


E = "train_step_check"
for _m, _frag in (("inference mode", "inference mode"), ("no update", "never applied"),
                  ("gradient ascent", "uphill"), ("loss after the update", "before the update"),
                  ("no return", "None"), ("forward pass outside the tape", "recorded"),
                  ("arguments swapped", "")):
    _w(E, checks.check_train_step, lambda model, opt, loss_fn, x, y, m=_m: _step(model, opt, loss_fn, x, y, mistake=m),
       _m, _frag)
_r(E, checks.check_train_step, _step, "lesson-like")


def _step_trainable_variables(model, optimizer, loss_fn, x, y):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    return float(loss)


_r(E, checks.check_train_step, _step_trainable_variables, "trainable_variables, float loss")


# ======================================================================================
# 05 prediction
# ======================================================================================

# threshold_check is an ungraded warm-up: its wrong solutions are in tests/checks/test_checks_prediction.py


def _table(true_masks, pred_masks, names, *, mistake=None):
    rows = []
    for truth, pred, name in zip(true_masks, pred_masks, names):
        a, b = np.asarray(truth) > 0, np.asarray(pred) > 0
        inter = np.count_nonzero(a & b)
        total = np.count_nonzero(a) + np.count_nonzero(b)
        union = np.count_nonzero(a | b)
        dice = 2 * inter / total if total else (0.0 if mistake == "empty is 0" else 1.0)
        iou = inter / union if union else (0.0 if mistake == "empty is 0" else 1.0)
        if mistake == "iou from sum":
            iou = inter / total if total else 1.0
        if mistake == "dice without 2":
            dice = inter / total if total else 1.0
        if mistake == "swapped":
            dice, iou = iou, dice
        rows.append({"name": name, "dice": float(dice), "iou": float(iou)})
    if mistake == "mean only":
        return [{"name": "mean", "dice": float(np.mean([r["dice"] for r in rows])),
                 "iou": float(np.mean([r["iou"] for r in rows]))}]
    return rows


E = "metrics_table_check"
for _m in ("empty is 0", "iou from sum", "dice without 2", "swapped", "mean only"):
    _w(E, checks.check_metrics_table, lambda t, p, n, m=_m: _table(t, p, n, mistake=m), _m)
_r(E, checks.check_metrics_table, _table, "lesson-like")


def _keep(mask, n=2, *, mistake=None):
    labels = measure.label(np.asarray(mask) > 0, connectivity=1 if mistake == "4-connected" else 2)
    sizes = np.bincount(labels.ravel())
    if mistake != "background counted":
        sizes[0] = 0
    order = np.argsort(sizes)[::-1] if mistake != "smallest" else np.argsort(np.where(sizes == 0, 10**9, sizes))
    keep = order[:n if mistake != "off by one" else n - 1]
    if mistake == "first labels":
        keep = np.arange(1, min(n + 1, len(sizes)))
    keep = keep[sizes[keep] > 0]
    return np.isin(labels, keep).astype(np.uint8)


E = "keep_largest_components_check"
for _m in ("4-connected", "background counted", "smallest", "off by one", "first labels"):
    _w(E, checks.check_keep_largest_components, lambda mask, n=2, m=_m: _keep(mask, n, mistake=m), _m)


def _keep_fills_empty(mask, n=2):
    """Right on every mask with a component; with none, the background (label 0) is kept."""
    labels = measure.label(np.asarray(mask) > 0, connectivity=2)
    if labels.max() == 0:
        return np.ones(labels.shape, np.uint8)
    return _keep(mask, n)


# the hidden test wants an empty mask to stay empty: the visible check asks for it
_w(E, checks.check_keep_largest_components, _keep_fills_empty, "an empty mask fills the image", "empty")
_r(E, checks.check_keep_largest_components, _keep, "lesson-like")


def _post(mask, n_components=2, *, mistake=None):
    if mistake == "fill first":
        return _keep(ndimage.binary_fill_holes(np.asarray(mask) > 0).astype(np.uint8), n_components)
    kept = _keep(mask, n_components if mistake != "fixed 2" else 2)
    if mistake == "no fill":
        return kept
    if mistake == "closing instead of fill":
        return ndimage.binary_closing(kept).astype(np.uint8)
    if mistake == "no keep":
        return ndimage.binary_fill_holes(np.asarray(mask) > 0).astype(np.uint8)
    filled = ndimage.binary_fill_holes(kept)
    return filled if mistake == "bool" else filled.astype(np.uint8)


E = "postprocess_check"
for _m in ("no fill", "closing instead of fill", "no keep", "fixed 2", "bool"):
    WRONG.append((E, _m, lambda m=_m: (checks.check_postprocess(lambda mask, n_components=2: _post(
        mask, n_components, mistake=m)), checks.check_fill_holes(lambda mask: _post(mask, 100, mistake=m)),
        checks.check_postprocess(lambda mask, n_components=2: _post(mask, n_components, mistake=m), n_components=3)),
        ()))
    _learner(E, _m, lambda m=_m: (lambda mask, n_components=2: _post(mask, n_components, mistake=m),))
RIGHT.append((E, "lesson-like", lambda: (checks.check_postprocess(_post),
                                         checks.check_fill_holes(lambda mask: _post(mask, 100)))))


def _dice_np(truth, pred, empty=1.0):
    a, b = np.asarray(truth) > 0, np.asarray(pred) > 0
    total = np.count_nonzero(a) + np.count_nonzero(b)
    return 2 * np.count_nonzero(a & b) / total if total else empty


def _choose(probabilities, masks, candidates, *, mistake=None):
    """A learner's choose_threshold: the candidate with the best mean per-image Dice."""
    rule = (lambda p, t: np.asarray(p) >= t) if mistake == ">=" else (lambda p, t: np.asarray(p) > t)
    empty = 0.0 if mistake == "empty is 0" else 1.0
    table = np.array([[_dice_np(m, rule(p, t), empty) for p, m in zip(probabilities, masks)] for t in candidates])
    if mistake == "pooled":
        scores = [_dice_np(np.concatenate([np.ravel(m) for m in masks]),
                           np.concatenate([np.ravel(p) > t for p in probabilities])) for t in candidates]
    elif mistake == "max instead of mean":
        scores = table.max(axis=1)
    else:
        scores = table.mean(axis=1)
    if mistake == "argmin":
        return candidates[int(np.argmin(scores))]
    if mistake == "last of ties":
        return sorted(zip(scores, candidates))[-1][1]
    if mistake == "index":
        return int(np.argmax(scores))
    if mistake == "the Dice":
        return float(np.max(scores))
    return candidates[int(np.argmax(scores))]


# "chooses on test data": a function that decides from other data than it is given (here a
# fixed set standing in for the test images) gives the same answer on every set
_OTHER = ([np.array([[0.9, 0.6, 0.2], [0.7, 0.1, 0.55]])], [np.array([[1, 1, 0], [1, 0, 0]])])

E = "choose_threshold_check"
for _m, _frag in (("argmin", "WORST"), ("max instead of mean", "MEAN Dice"), ("last of ties", "FIRST"),
                  ("index", "index"), ("the Dice", "best mean Dice itself"), ("pooled", "pooled"),
                  (">=", ">="), ("empty is 0", "empty")):
    _w(E, checks.check_choose_threshold, lambda p, m, c, mm=_m: _choose(p, m, c, mistake=mm), _m, _frag)
_w(E, checks.check_choose_threshold, lambda p, m, c: _choose(*_OTHER, c), "decides on other (test) data",
   "Use only the probabilities and masks passed in")
_r(E, checks.check_choose_threshold, _choose, "lesson-like")
_r(E, checks.check_choose_threshold, lambda p, m, c: max(c, key=lambda t: (
    np.mean([_dice_np(mm, np.asarray(pp) > t) for pp, mm in zip(p, m)]), -list(c).index(t))), "max with a key")


# the post-processing decision: the rule (images changed, neither mean worse) on the measurement passed in
_PP_HELPS = ([0.95, 0.90, 0.97], [0.95, 0.93, 0.97], [4.0, 40.0, 3.0], [4.0, 6.0, 3.0])
_PP_NOTHING = ([0.95, 0.90], [0.95, 0.90], [4.0, 9.0], [4.0, 9.0])
_PP_WORSE_HD = ([0.95, 0.90], [0.95, 0.91], [4.0, 9.0], [4.0, 19.0])
E = "postprocessing_choice_check"
for _label, _choice, _evidence, _frag in (
        ("the opposite", False, _PP_HELPS, "every condition"), ("not set", ..., _PP_HELPS, "not set"),
        ("as text", "ON", _PP_HELPS, "True or False"), ("as a number", 1, _PP_HELPS, "True or False"),
        ("on although nothing changed", True, _PP_NOTHING, "changed no"),
        ("on although HD95 got worse", True, _PP_WORSE_HD, "HD95")):
    _w(E, lambda choice, e=_evidence: checks.check_postprocessing_choice(choice, *e), _choice, _label, _frag)
_r(E, lambda choice: checks.check_postprocessing_choice(choice, *_PP_HELPS), True, "the rule's decision")
_r(E, lambda choice: checks.check_postprocessing_choice(choice, *_PP_NOTHING), False, "off when nothing changed")
_r(E, lambda choice: checks.check_postprocessing_choice(choice, *_PP_HELPS), np.True_, "a NumPy bool")

# the TTA decision: among the variants with a Dice interval above zero and no worse HD95, the largest gain
_TTA = {"flip": {"dice_gain": -0.0178, "dice_low": -0.0216, "hd95_change": 8.71},
        "shift": {"dice_gain": 0.0003, "dice_low": 0.0001, "hd95_change": -0.12},
        "flip + shift": {"dice_gain": 0.0019, "dice_low": 0.0016, "hd95_change": -0.24}}
_TTA_WORSE_HD = {**_TTA, "flip + shift": {"dice_gain": 0.0019, "dice_low": 0.0016, "hd95_change": 0.5}}
_TTA_NOISE = {**_TTA, "shift": {"dice_gain": 0.0003, "dice_low": -0.0001, "hd95_change": -0.12},
              "flip + shift": {"dice_gain": 0.0019, "dice_low": -0.0002, "hd95_change": -0.24}}
E = "tta_choice_check"
for _label, _choice, _evidence, _frag in (
        ("not set", ..., _TTA, "not set"), ("none although one passes", "none", _TTA, "at least one"),
        ("the mirror", "flip", _TTA, "interval"), ("a smaller gain", "shift", _TTA, "larger mean Dice gain"),
        ("misspelt", "flip+shift", _TTA, "not one of"), ("the number of views", 6, _TTA, "not one of"),
        ("a worse HD95 ignored", "flip + shift", _TTA_WORSE_HD, "HD95 worse"),
        ("a gain within the noise", "flip + shift", _TTA_NOISE, "interval")):
    _w(E, lambda choice, e=_evidence: checks.check_tta_choice(choice, e), _choice, _label, _frag)
_r(E, lambda choice: checks.check_tta_choice(choice, _TTA), "flip + shift", "the rule's choice")
_r(E, lambda choice: checks.check_tta_choice(choice, _TTA_WORSE_HD), "shift", "the next one when the best fails")
_r(E, lambda choice: checks.check_tta_choice(choice, _TTA_NOISE), "none", "none when none passes")


# ======================================================================================
# 06 lung CT 3D
# ======================================================================================

def _window(volume, window=config.HU_WINDOW_LUNG, *, mistake=None):
    lower, upper = window
    if mistake == "fixed window":
        lower, upper = -1000, 300
    v = np.asarray(volume, dtype=np.float32)
    if mistake == "integer maths":
        v = np.asarray(volume)
        return np.clip((v - lower) // (upper - lower), 0, 1).astype(np.float32)
    scaled = (v - lower) / (upper - lower) if mistake != "divide by upper" else (v - lower) / upper
    if mistake == "min-max":
        scaled = (v - v.min()) / (v.max() - v.min())
    if mistake == "no clip":
        return scaled.astype(np.float32)
    return np.clip(scaled, 0, 1).astype(np.float32)


E = "window_hu_check"
for _m in ("fixed window", "integer maths", "divide by upper", "min-max", "no clip"):
    _w(E, checks.check_window_hu, lambda v, window=config.HU_WINDOW_LUNG, m=_m: _window(v, window, mistake=m), _m)
_r(E, checks.check_window_hu, _window, "lesson-like")
# the hidden test calls window_hu without a window: the visible check does too
_w(E, checks.check_window_hu, lambda v, window=config.HU_WINDOW_LIVER: _window(v, window), "liver window by default",
   "default")
_w(E, checks.check_window_hu, lambda v, window=(-1000, 400): _window(v, window), "another lung window by default",
   "default")


def _volume_ml(mask, affine, *, mistake=None):
    a = np.asarray(affine, dtype=float)
    det = np.linalg.det(a[:3, :3])
    voxel = {"no abs": det, "diagonal product": np.prod(np.diag(a)[:3]), "count only": 1.0,
             "first spacing cubed": abs(a[0, 0]) ** 3}.get(mistake, abs(det))
    count = np.count_nonzero(np.asarray(mask) > 0)
    return float(count * voxel / (1000.0 if mistake != "mm3" else 1.0))


E = "lung_volume_check"
for _m, _frag in (("no abs", "never negative"), ("diagonal product", "diagonal"), ("count only", ""),
                  ("mm3", "1000"), ("first spacing cubed", "")):
    _w(E, checks.check_lung_volume, lambda mask, affine, m=_m: _volume_ml(mask, affine, mistake=m), _m, _frag)
_r(E, checks.check_lung_volume, _volume_ml, "lesson-like")


# volumetric_dice (Exercise 6.3) is an ungraded warm-up: its wrong solutions are in tests/datasets/test_lung_ct.py.


def _grid(shape, affine, spacing, *, mistake=None):
    a = np.asarray(affine, float)
    old = np.abs(np.diag(a)[:3]) if mistake == "diagonal spacing" else np.linalg.norm(a[:3, :3], axis=0)
    new = np.broadcast_to(np.asarray(spacing, float), (3,))
    ratio = new / old if mistake == "inverted ratio" else old / new
    n = np.asarray(shape) * ratio
    n = np.maximum(1, np.floor(n) if mistake == "floor" else np.round(n)).astype(int)
    out = a.copy()
    out[:3, :3] = a[:3, :3] * (new / old)[:, None] if mistake == "rows scaled" else a[:3, :3] * (new / old)
    if mistake != "translation kept":
        centre = a[:3, :3] @ ((np.asarray(shape) - 1) / 2) + a[:3, 3]
        out[:3, 3] = centre - out[:3, :3] @ ((n - 1) / 2)
    return tuple(int(v) for v in n), out


E = "resampled_grid_check"
for _m, _frag in (("diagonal spacing", "column"), ("inverted ratio", "fewer voxels"), ("floor", "round"),
                  ("rows scaled", "column"), ("translation kept", "centre")):
    _w(E, checks.check_resampled_grid, lambda shape, affine, spacing, m=_m: _grid(shape, affine, spacing, mistake=m),
       _m, _frag)
_r(E, checks.check_resampled_grid, _grid, "lesson-like")
_r(E, checks.check_resampled_grid, lambda shape, affine, spacing: (
    list(_grid(shape, affine, spacing)[0]), _grid(shape, affine, spacing)[1].tolist()), "lists instead of arrays")


def _patch_start(voxel, shape, patch_size, *, mistake=None):
    v, n, p = (np.asarray(a) for a in (voxel, shape, patch_size))
    if mistake == "the voxel itself":
        return tuple(int(x) for x in v)
    start = v - ((p - 1) // 2 if mistake == "centre (p - 1) // 2" else p // 2)
    if mistake == "no clip":
        return tuple(int(x) for x in start)
    high = n - 1 if mistake == "clip to shape - 1" else n - p
    if mistake == "low clip only":
        high = np.full(3, 10 ** 6)
    if mistake == "axes reversed":
        return tuple(int(x) for x in np.clip(start, 0, high)[::-1])
    return tuple(int(x) for x in np.clip(start, 0, high))


E = "foreground_patch_start_check"
for _m, _frag in (("the voxel itself", "patch_size // 2"), ("centre (p - 1) // 2", "patch_size // 2"),
                  ("no clip", "clip"), ("clip to shape - 1", "shape - patch_size"), ("low clip only", ""),
                  ("axes reversed", "")):
    _w(E, checks.check_foreground_patch_start, lambda v, s, p, m=_m: _patch_start(v, s, p, mistake=m), _m, _frag)
_r(E, checks.check_foreground_patch_start, _patch_start, "lesson-like")
_r(E, checks.check_foreground_patch_start, lambda v, s, p: np.clip(np.subtract(v, np.floor_divide(p, 2)), 0,
                                                                   np.subtract(s, p)), "numpy array")


def _starts(length, patch, overlap=0.5, *, mistake=None):
    step = patch * overlap if mistake == "step patch * overlap" else patch * (1 - overlap)
    step = max(1, math.ceil(step) if mistake == "ceil" else int(step))
    if mistake == "step can be 0":
        step = int(patch * (1 - overlap)) or 1
        if overlap > 0.85:
            return list(range(0, length - patch + 1, 1))[:1]
    starts = list(range(0, length - patch + 1, step))
    if mistake == "no last window":
        return starts
    if mistake == "last window always added":
        return starts + [length - patch]
    if mistake == "last start = length":
        return starts if starts[-1] == length - patch else starts + [length - patch + 1]
    return starts if starts[-1] == length - patch else starts + [length - patch]


E = "window_starts_check"
for _m, _frag in (("step patch * overlap", "step"), ("ceil", ""), ("no last window", "border"),
                  ("last window always added", "twice"), ("last start = length", "sticks out"),
                  ("step can be 0", "")):
    _w(E, checks.check_window_starts, lambda n, p, o=0.5, m=_m: _starts(n, p, o, mistake=m), _m, _frag)
_r(E, checks.check_window_starts, _starts, "lesson-like")
_r(E, checks.check_window_starts, lambda n, p, o=0.5: np.array(_starts(n, p, o)), "numpy array")


def _blend(patch_size, sigma_scale=0.125, *, mistake=None):
    profiles = []
    for n in patch_size:
        centre = n / 2 if mistake == "centre n / 2" else (n - 1) / 2
        sigma = sigma_scale * (max(patch_size) if mistake == "one sigma" else n)
        profiles.append(np.exp(-(np.arange(n) - centre) ** 2 / (2 * sigma ** 2)))
    w = np.einsum("i,j,k->ijk", *profiles)
    if mistake == "sum to one":
        w = w / w.sum()
    if mistake != "no clamp":
        w = np.maximum(w, 1e-3)
    if mistake == "float64":
        return w
    if mistake == "transposed":
        w = w.transpose(2, 1, 0)
    return w.astype(np.float32)


E = "blending_weights_check"
for _m, _frag in (("centre n / 2", "symmetric"), ("one sigma", "own n"), ("sum to one", "centre"),
                  ("no clamp", "1e-3"), ("float64", "float32"), ("transposed", "shape")):
    _w(E, checks.check_blending_weights, lambda p, sigma_scale=0.125, m=_m: _blend(p, sigma_scale, mistake=m), _m, _frag)
_r(E, checks.check_blending_weights, _blend, "lesson-like")


PATCH_06 = (32, 32, 32, 1)


def _unet3d_cell(model):
    """Lesson 06's visible check (the hidden part adds no requirement: at least 300 000
    weights and residual blocks are asked by the visible check too)."""
    checks.check_lung_model(model, PATCH_06, max_parameters=400_000, min_parameters=300_000, min_depth=2,
                         min_bottleneck=3, dropout_range=(0.01, 0.1))
    checks.check_residual_blocks(model)


def _res(input_shape, **kwargs):
    from helpers import models

    return models.build_unet(input_shape, block="residual", **kwargs)


E = "unet3d_check"
for _label, _make, _frag in (
        ("12 filters, depth 3: over budget", lambda: _res(PATCH_06, depth=3, base_filters=12, dropout=0.05), "400,000"),
        ("depth 1", lambda: _res(PATCH_06, depth=1, base_filters=32, dropout=0.05), "at least 2"),
        ("6 filters, depth 3: budget unused", lambda: _res(PATCH_06, depth=3, base_filters=6, dropout=0.05), "at least 300,000"),
        ("no dropout", lambda: _res(PATCH_06, depth=3, base_filters=8, dropout=0.0), "dropout"),
        ("too much dropout", lambda: _res(PATCH_06, depth=3, base_filters=8, dropout=0.3), "between 0.01 and 0.1"),
        ("plain blocks", lambda: _unet(PATCH_06, depth=3, base_filters=8, dropout=0.05), "residual"),
        ("2D slice model", lambda: _res((32, 32, 1), depth=3, base_filters=8, dropout=0.05), "3D"),
        ("built for another patch", lambda: _res((32, 32, 16, 1), depth=3, base_filters=8, dropout=0.05), "")):
    WRONG.append((E, _label, lambda make=_make: _unet3d_cell(make()), (_frag,) if _frag else ()))
    _learner(E, _label, lambda make=_make: (make(),))
RIGHT.append((E, "depth 3, 8 filters", lambda: _unet3d_cell(_res(PATCH_06, depth=3, base_filters=8, dropout=0.05))))
RIGHT.append((E, "depth 2, 16 filters", lambda: _unet3d_cell(_res(PATCH_06, depth=2, base_filters=16, dropout=0.05))))
RIGHT.append((E, "dropout 0.1", lambda: _unet3d_cell(_res(PATCH_06, depth=3, base_filters=8, dropout=0.1))))


def _save(probabilities, working_affine, reference_path, output_path, *, mistake=None):
    reference, affine = data.load_nifti(reference_path)
    p = np.asarray(probabilities, np.float32)
    if mistake == "transposed":
        p = p.transpose(2, 1, 0)
    if mistake == "resized, affines ignored":
        resampled = resize(p, reference.shape, order=1, preserve_range=True, anti_aliasing=False)
    else:
        to_working = np.linalg.inv(working_affine) @ affine
        if mistake == "inverse mapping":
            to_working = np.linalg.inv(affine) @ working_affine
        resampled = ndimage.affine_transform(p, to_working[:3, :3], to_working[:3, 3], output_shape=reference.shape,
                                             order=1, mode="nearest")
    mask = (resampled > (0.5 if mistake != "threshold 0.1" else 0.1)).astype(np.uint8)
    if mistake == "working affine":
        affine = working_affine
    if mistake == "float mask":
        mask = mask.astype(np.float32)
    return data.save_nifti(mask, affine, output_path, force=True)


E = "save_prediction_check"
for _m, _frag in (("transposed", ""), ("resized, affines ignored", "millimetres"), ("inverse mapping", ""),
                  ("threshold 0.1", ""), ("working affine", "affine"), ("float mask", "uint8")):
    _w(E, checks.check_save_prediction, lambda p, w, r, o, m=_m: _save(p, w, r, o, mistake=m), _m, _frag)
_w(E, checks.check_save_prediction, lambda p, w, r, o: None, "writes nothing", "file")


def _save_normalised(probabilities, working_affine, reference_path, output_path):
    """Divides by the maximum first: an all-zero prediction becomes NaN, then all lung."""
    p = np.asarray(probabilities, np.float32)
    with np.errstate(invalid="ignore"):
        p = np.nan_to_num(p / p.max(), nan=1.0)
    return _save(p, working_affine, reference_path, output_path)


_w(E, checks.check_save_prediction, _save_normalised, "normalised by the maximum", "all-zero")
_r(E, checks.check_save_prediction, _save, "lesson-like")


def _predict_volume(model, volume, patch_size, overlap=0.5, *, mistake=None):
    from helpers import inference

    volume = np.asarray(volume, np.float32)
    starts = [inference.window_starts(n, p, overlap) for n, p in zip(volume.shape, patch_size)]
    if mistake == "no last window":
        starts = [s[:-1] or s for s in starts]
    weights = inference.blending_weights(patch_size)
    if mistake == "plain mean":
        weights = np.ones_like(weights)
    total = np.zeros(volume.shape, np.float32)
    summed = np.zeros(volume.shape, np.float32)
    for x in starts[0]:
        for y in starts[1]:
            for z in starts[2]:
                where = (slice(x, x + patch_size[0]), slice(y, y + patch_size[1]), slice(z, z + patch_size[2]))
                prediction = np.asarray(model.predict_on_batch(volume[where][None, ..., None]))[0, ..., 0]
                total[where] += weights * prediction
                summed[where] += 1.0 if mistake == "divided by the count" else weights
    if mistake == "weighted sum":
        return total
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / summed
    if mistake == "channel axis kept":
        return out[..., None]
    if mistake == "float64":
        return out.astype(np.float64)
    return out


E = "predict_volume_check"
for _m, _frag in (("plain mean", "plain mean"), ("weighted sum", "divided"), ("no last window", "every voxel"),
                  ("divided by the count", ""), ("channel axis kept", "channel"), ("float64", "float32")):
    _w(E, checks.check_predict_volume, lambda m_, v, p, o=0.5, m=_m: _predict_volume(m_, v, p, o, mistake=m), _m, _frag)
_r(E, checks.check_predict_volume, _predict_volume, "lesson-like, one window at a time")


def _course_sliding_window(model, volume, patch_size, overlap=0.5):
    from helpers import inference

    return inference.sliding_window(model, volume, patch_size, overlap, progress=False)


_r(E, checks.check_predict_volume, _course_sliding_window, "the course's sliding window")


# ======================================================================================
# 07 liver CT
# ======================================================================================

def _select(mask, empty_fraction=0.2, rng=None, *, mistake=None):
    rng = np.random.default_rng(0) if rng is None else rng
    axis = (1, 2) if mistake == "wrong axis" else (0, 1)
    has = np.asarray(mask).any(axis=axis)
    liver, empty = np.flatnonzero(has), np.flatnonzero(~has)
    n_empty = int(round(empty_fraction * len(empty)))
    if mistake == "fraction of all":
        n_empty = int(round(empty_fraction * len(has)))
    if mistake == "first empty":
        chosen = empty[:n_empty]
    elif mistake == "with replacement":
        chosen = rng.choice(empty, size=n_empty, replace=True) if n_empty else empty[:0]
    elif mistake == "global random":
        chosen = np.random.choice(empty, size=n_empty, replace=False)
    else:
        chosen = rng.choice(empty, size=n_empty, replace=False)
    out = np.concatenate([liver, chosen]).astype(int)
    return out if mistake == "unsorted" else np.sort(out)


E = "select_slices_check"
for _m, _frag in (("first empty", "random"), ("wrong axis", ""), ("fraction of all", ""),
                  ("with replacement", ""), ("global random", ""), ("unsorted", "sorted")):
    _w(E, checks.check_select_slices, lambda mask, f=0.2, rng=None, m=_m: _select(mask, f, rng, mistake=m), _m, _frag)
_r(E, checks.check_select_slices, _select, "lesson-like")


def _to_slices(volume, mask, indices, size=64, window=config.HU_WINDOW_LIVER, *, mistake=None):
    low, high = window
    indices = np.asarray(indices, dtype=int)
    images = np.moveaxis(np.asarray(volume)[:, :, indices], -1, 0).astype(np.float32)
    labels = np.moveaxis(np.asarray(mask)[:, :, indices], -1, 0).astype(np.float32)
    if mistake != "not transposed":
        images, labels = images.transpose(0, 2, 1), labels.transpose(0, 2, 1)
    if mistake != "no window":
        images = np.clip((images - low) / (high - low), 0, 1)
    shape = (len(indices),) + (64, 64) if mistake == "the lesson's SIZE, not size" else (len(indices), size, size)
    images = resize(images, shape, order=1, anti_aliasing=True, preserve_range=True)
    labels = resize(labels, shape, order=1, anti_aliasing=False, preserve_range=True)
    if mistake != "soft mask":
        labels = labels >= 0.5
    out_i, out_l = images[..., None].astype(np.float32), labels[..., None].astype(np.float32)
    if mistake == "no channel":
        return out_i[..., 0], out_l[..., 0]
    if mistake == "float64":
        return out_i.astype(np.float64), out_l
    return out_i, out_l


E = "volume_to_slices_check"
# "the lesson's SIZE, not size": the hidden tests use other sizes, the visible check one that is not the lesson's
for _m in ("not transposed", "no window", "soft mask", "no channel", "float64", "the lesson's SIZE, not size"):
    _w(E, checks.check_volume_to_slices, lambda v, m_, i, size=64, window=config.HU_WINDOW_LIVER, m=_m: _to_slices(
        v, m_, i, size, window, mistake=m), _m)
_r(E, checks.check_volume_to_slices, _to_slices, "lesson-like")


def _flip(images, masks, rng, p=0.5, *, mistake=None):
    draws = rng.random(len(images)) < p
    images, masks = (images, masks) if mistake == "in place" else (images.copy(), masks.copy())
    other = rng.random(len(images)) < p if mistake == "independent draws" else draws
    ax = 1 if mistake == "up-down" else 2
    sl = (slice(None),) * ax + (slice(None, None, -1),)
    if mistake == "whole batch":
        draws = other = np.full(len(images), rng.random() < p)
    if mistake == "always":
        draws = other = np.ones(len(images), bool)
    images[draws] = images[draws][sl]
    if mistake != "image only":
        masks[other] = masks[other][sl]
    return images, masks


E = "random_flip_check"
for _m in ("in place", "independent draws", "up-down", "whole batch", "always", "image only"):
    _w(E, checks.check_flip_augmentation, lambda i, m_, r, p=0.5, m=_m: _flip(i, m_, r, p, mistake=m), _m)
_r(E, checks.check_flip_augmentation, _flip, "lesson-like")


def _kfold(case_ids, k=3, seed=0, *, mistake=None):
    unique = sorted(set(case_ids)) if mistake != "duplicates kept" else list(case_ids)
    order = np.random.default_rng(seed).permutation(len(unique)) if mistake != "no shuffle" else np.arange(len(unique))
    if mistake == "global random":
        order = np.random.permutation(len(unique))
    shuffled = [unique[i] for i in order]
    folds = []
    size = len(shuffled) // k
    if mistake == "k ignored":
        k = 3
    for i in range(k):
        val = shuffled[i::k] if mistake != "floor blocks" else shuffled[i * size:(i + 1) * size]
        train = [c for c in shuffled if c not in val] if mistake != "train is everything" else list(shuffled)
        folds.append((train, val))
    return folds


E = "kfold_check"
# "k ignored": the hidden tests use k=4, the visible check k=2 and k=5 too
for _m in ("duplicates kept", "no shuffle", "global random", "floor blocks", "train is everything", "k ignored"):
    _w(E, checks.check_kfold, lambda ids, k=3, seed=0, m=_m: _kfold(ids, k, seed, mistake=m), _m)
_r(E, checks.check_kfold, _kfold, "lesson-like")


def _predict_liver_volume(model, volume_hu, size=64, *, mistake=None):
    from helpers import slices

    z_all = np.arange(volume_hu.shape[2])
    images, _ = slices.volume_to_slices(volume_hu, np.zeros(volume_hu.shape, np.uint8), z_all, size)
    if mistake == "raw HU":
        images = resize(np.moveaxis(volume_hu, -1, 0).transpose(0, 2, 1), (len(z_all), size, size), order=1)[..., None]
    maps = images[..., 0] if mistake == "no model" else np.asarray(model(images))[..., 0]    # (Z, S, S)
    x, y, z = volume_hu.shape
    if mistake == "not transposed back":
        return resize(maps, (z, x, y), order=1).transpose(1, 2, 0)
    maps = resize(maps, (z, y, x), order=1)
    if mistake == "slices first":
        return maps.transpose(0, 2, 1)
    out = maps.transpose(2, 1, 0)
    if mistake == "mirrored":
        return out[::-1]
    return (out >= 0.5).astype(np.float32) if mistake == "thresholded" else out


E = "predict_liver_volume_check"
for _m, _frag in (("raw HU", "[0, 1]"), ("no model", "run the model"), ("not transposed back", "transposed"),
                  ("slices first", "LAST axis"), ("mirrored", "mirrored"), ("thresholded", "0/1 mask")):
    _w(E, checks.check_predict_liver_volume, lambda mo, v, size=64, m=_m: _predict_liver_volume(mo, v, size, mistake=m),
       _m, _frag)
_r(E, checks.check_predict_liver_volume, _predict_liver_volume, "model called, one 3D resize")
_r(E, checks.check_predict_liver_volume, lambda mo, v, size=64: np.stack(
    [resize(p, v.shape[1::-1], order=1).T for p in mo.predict(_to_slices(v, np.zeros(v.shape), np.arange(v.shape[2]),
                                                                         size)[0], verbose=0)[..., 0]], axis=-1),
   "model.predict, 2D resize per slice")


_FRACTION_STUDY = {0.0: {"dice": 0.80, "hd95": 58.5}, 0.2: {"dice": 0.834, "hd95": 50.2},
                   0.5: {"dice": 0.871, "hd95": 43.0}}
E = "empty_fraction_choice_check"
for _label, _choice, _frag in (("the default kept", 0.2, "validation"), ("not set", ..., "not set"),
                               ("a fraction not measured", 0.3, "not one of"), ("as text", "0.5", "string"),
                               ("the worst", 0.0, "another option has a higher"), ("a percentage", 50, "not one of")):
    _w(E, lambda choice: checks.check_empty_fraction_choice(choice, _FRACTION_STUDY), _choice, _label, _frag)
# with other evidence the same number is wrong: the check reads the study, not a constant
_w(E, lambda choice: checks.check_empty_fraction_choice(
    choice, {0.0: {"dice": 0.9}, 0.2: {"dice": 0.95}, 0.5: {"dice": 0.93}}), 0.5, "another study's optimum",
   "another option has a higher")
_r(E, lambda choice: checks.check_empty_fraction_choice(choice, _FRACTION_STUDY), 0.5, "the validation optimum")
_r(E, lambda choice: checks.check_empty_fraction_choice(choice, _FRACTION_STUDY), 1 / 2, "written as 1 / 2")


# ======================================================================================
# 08 brain tumour
# ======================================================================================

def _one_hot(labels, n_classes=4, *, mistake=None):
    labels = np.asarray(labels)
    if mistake == "keras to_categorical float64":
        return np.eye(n_classes)[labels]
    if mistake == "channels first":
        return np.moveaxis(np.eye(n_classes, dtype=np.float32)[labels], -1, 0)
    if mistake == "fixed 4":
        return np.eye(4, dtype=np.float32)[labels]
    if mistake == "off by one":
        return np.eye(n_classes + 1, dtype=np.float32)[labels][..., 1:]
    if mistake == "uint8":
        return np.eye(n_classes, dtype=np.uint8)[labels]
    return np.eye(n_classes, dtype=np.float32)[labels]


E = "one_hot_check"
for _m in ("keras to_categorical float64", "channels first", "fixed 4", "off by one", "uint8"):
    WRONG.append((E, _m, lambda m=_m: (checks.check_one_hot(lambda l, n_classes=4: _one_hot(l, n_classes, mistake=m)),
                                       checks.check_one_hot(lambda l, n_classes=4: _one_hot(l, n_classes, mistake=m),
                                                            n_classes=3)), ()))
RIGHT.append((E, "lesson-like", lambda: (checks.check_one_hot(_one_hot), checks.check_one_hot(_one_hot, n_classes=3))))
# the hidden tests use other numbers of classes: the visible check cell asks for n_classes=3 too
_w(E, checks.check_one_hot, lambda l, n_classes=4: _one_hot(l, n_classes, mistake="fixed 4"),
   "fixed 4, visible n_classes=3", "channels", n_classes=3)


REGIONS = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}


def _regions(true_labels, pred_labels, *, mistake=None):
    regions = {"labels as regions": {"WT": (1,), "TC": (2,), "ET": (3,)},
               "TC with edema": {"WT": (1, 2, 3), "TC": (1, 2), "ET": (3,)},
               "BraTS labels": {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}}.get(mistake, REGIONS)
    scores = {}
    for region, classes in regions.items():
        a, b = np.isin(true_labels, classes), np.isin(pred_labels, classes)
        total = a.sum() + b.sum()
        if total == 0:
            scores[region] = 0.0 if mistake == "empty is 0" else 1.0
        else:
            inter = np.logical_and(a, b).sum()
            scores[region] = float((inter / np.logical_or(a, b).sum()) if mistake == "iou" else 2.0 * inter / total)
    return scores


E = "region_dice_check"
for _m in ("labels as regions", "TC with edema", "BraTS labels", "empty is 0", "iou"):
    _w(E, checks.check_region_dice, lambda t, p, m=_m: _regions(t, p, mistake=m), _m)
_r(E, checks.check_region_dice, _regions, "lesson-like")


def _per_class(true_labels, pred_labels, n_classes=4, *, mistake=None):
    scores = np.full((n_classes, 3), np.nan)
    for c in range(n_classes):
        truth, pred = true_labels == c, pred_labels == c
        tp, fp = np.sum(truth & pred), np.sum(~truth & pred)
        fn, tn = np.sum(truth & ~pred), np.sum(~truth & ~pred)
        if mistake == "swapped columns":
            tp, fp, fn = tp, fn, fp
        zero = 0.0 if mistake == "zero for 0/0" else np.nan
        scores[c, 0] = tp / (tp + fp) if tp + fp else zero
        scores[c, 1] = tp / (tp + fn) if tp + fn else zero
        scores[c, 2] = tn / (tn + fp) if tn + fp else zero
        if mistake == "specificity as 1 - sensitivity":
            scores[c, 2] = 1 - scores[c, 1]
        if mistake == "accuracy for specificity":
            scores[c, 2] = (tp + tn) / truth.size
    if mistake == "skip background":
        scores[0] = np.nan
    return scores


E = "per_class_scores_check"
for _m in ("swapped columns", "zero for 0/0", "specificity as 1 - sensitivity", "accuracy for specificity",
           "skip background"):
    _w(E, checks.check_per_class_scores, lambda t, p, n_classes=4, m=_m: _per_class(t, p, n_classes, mistake=m), _m)
_r(E, checks.check_per_class_scores, _per_class, "lesson-like")
# the hidden tests use other numbers of classes: the visible check cell asks for n_classes=3 too
_w(E, checks.check_per_class_scores, lambda t, p, n_classes=4: _per_class(t, p, 4), "fixed 4 classes, visible n_classes=3",
   "shape", n_classes=3)


def _wcce(t, p, class_weights, smooth=1.0, *, mistake=None):
    w = ops.convert_to_tensor(class_weights, dtype=t.dtype)
    if mistake == "numpy":
        t, p = np.asarray(t), np.asarray(p)
    pixel = ops.sum((p if mistake == "weights from y_pred" else t) * w, axis=-1)
    if mistake == "weights ignored":
        pixel = ops.ones_like(pixel)
    ce = -ops.sum(t * ops.log(p if mistake == "unclipped log" else ops.clip(p, 1e-7, 1.0)), axis=-1)
    if mistake == "plain mean of w * ce":
        cce = ops.mean(pixel * ce)
    elif mistake == "divided by the sum of class_weights":
        cce = ops.sum(pixel * ce) / ops.sum(w)
    else:
        cce = ops.sum(pixel * ce) / ops.sum(pixel)
    inter = ops.sum(t * p, axis=(1, 2))
    dice = (2 * inter + smooth) / (ops.sum(t, axis=(1, 2)) + ops.sum(p, axis=(1, 2)) + smooth)
    if mistake == "with background":
        return cce + 1.0 - ops.mean(dice)
    if mistake == "numpy":
        return float(np.asarray(cce + 1.0 - ops.mean(dice[:, 1:])))
    return cce + 1.0 - ops.mean(dice[:, 1:])


E = "weighted_cce_dice_loss_check"
for _m, _frag in (("numpy", "model.fit"), ("weights from y_pred", "true class"), ("weights ignored", "no effect"),
                  ("plain mean of w * ce", "weighted mean"), ("divided by the sum of class_weights", "pixel weights"),
                  ("with background", "background"), ("unclipped log", "exact 0s")):
    _w(E, checks.check_weighted_cce_dice_loss,
       lambda t, p, w, smooth=1.0, m=_m: _wcce(t, p, w, smooth, mistake=m), _m, _frag)
_r(E, checks.check_weighted_cce_dice_loss, _wcce, "lesson-like")
_r(E, checks.check_weighted_cce_dice_loss,
   lambda t, p, w, smooth=1.0: _wcce(t, p, np.asarray(w, np.float32), smooth), "weights as a NumPy array")


_LOSS_EVIDENCE = {"plain": 0.912, "weighted": 0.897}
E = "loss_choice_check"
for _label, _choice, _frag in (("the other loss", "weighted", "validation"), ("not set", ..., "not set"),
                               ("None", None, "not set"), ("capitalised", "Plain", "not one of"),
                               ("a name of the helpers", "cce_dice_loss", "not one of")):
    _w(E, lambda choice: checks.check_loss_choice(choice, _LOSS_EVIDENCE), _choice, _label, _frag)
# the choice the test set would favour is wrong when validation says otherwise
_w(E, lambda choice: checks.check_loss_choice(choice, {"plain": 0.905, "weighted": 0.910}), "plain",
   "the test-set favourite", "another option has a higher")
_r(E, lambda choice: checks.check_loss_choice(choice, _LOSS_EVIDENCE), "plain", "the validation optimum")


# ======================================================================================
# The tests
# ======================================================================================

def _run(run, tmp_path):
    import inspect

    return run(tmp_path) if "tmp_path" in inspect.signature(run).parameters else run()


@pytest.mark.parametrize("exercise, label, run, fragments", WRONG,
                         ids=[f"{e}:{label}" for e, label, _, _ in WRONG])
def test_wrong_solution_is_caught(exercise, label, run, fragments, tmp_path, capsys):
    with pytest.raises(AssertionError) as info:
        _run(run, tmp_path)
    message = str(info.value)
    assert len(message) > 40, f"{exercise} / {label}: the message does not explain the fault: {message!r}"
    for fragment in fragments:
        assert fragment.lower() in message.lower(), f"{exercise} / {label}: expected {fragment!r} in {message!r}"


@pytest.mark.parametrize("exercise, label, run", RIGHT, ids=[f"{e}:{label}" for e, label, _ in RIGHT])
def test_legitimate_variant_passes(exercise, label, run, tmp_path, capsys):
    _run(run, tmp_path)


def _graded_exercises():
    graded = []
    for notebook in sorted((ROOT / "answers").glob("*/*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        for cell in cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            # a written answer (solution and grade, a markdown cell) is graded by hand: no check to fool
            if meta.get("grade") and not meta.get("solution") and meta.get("points", 0) > 0 \
                    and cell.get("cell_type") == "code":
                graded.append(meta["grade_id"])
    return graded


def test_every_graded_exercise_is_covered():
    counts = {}
    for exercise, *_ in WRONG:
        counts[exercise] = counts.get(exercise, 0) + 1
    right_ids = {exercise for exercise, *_ in RIGHT}
    graded = _graded_exercises()
    assert len(graded) >= 24
    # the catalogue is keyed by grade_id: two lessons with one id would share (and mix) their cases
    assert len(graded) == len(set(graded)), sorted({g for g in graded if graded.count(g) > 1})
    thin = {e: counts.get(e, 0) for e in graded if counts.get(e, 0) < 5}
    assert not thin, f"graded exercises with fewer than five wrong solutions here: {thin}"
    assert not set(graded) - right_ids, f"no legitimate variant for {sorted(set(graded) - right_ids)}"
    assert not set(counts) - set(graded), f"wrong solutions for unknown exercises: {sorted(set(counts) - set(graded))}"
