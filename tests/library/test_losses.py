"""Tests for helpers/losses.py: values against independent NumPy formulas, range,
finite gradients, and use in model.compile (one training step, saving and loading)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import losses, metrics


def np_soft_dice(t, p, smooth=1.0):
    values = []
    for ti, pi in zip(t.astype(np.float64), p.astype(np.float64)):
        values.append((2 * (ti * pi).sum() + smooth) / (ti.sum() + pi.sum() + smooth))
    return float(np.mean(values))


def np_bce(t, p):
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))


def np_cce(t, p):
    p = np.clip(p.astype(np.float64), 1e-7, 1.0)
    p = p / p.sum(-1, keepdims=True)
    return float(np.mean(-(t * np.log(p)).sum(-1)))


def np_tversky(t, p, alpha, beta, smooth=1.0):
    values = []
    for ti, pi in zip(t.astype(np.float64), p.astype(np.float64)):
        tp = (ti * pi).sum()
        fn = (ti * (1 - pi)).sum()
        fp = ((1 - ti) * pi).sum()
        values.append((tp + smooth) / (tp + alpha * fp + beta * fn + smooth))
    return 1 - float(np.mean(values))


def np_class_dice(t, p, include_background, smooth=1.0):
    scores = [np_soft_dice(t[..., c], p[..., c], smooth) for c in range(t.shape[-1])]
    return float(np.mean(scores if include_background else scores[1:]))


def binary_batch(seed, shape=(3, 10, 10, 1)):
    rng = np.random.default_rng(seed)
    t = (rng.random(shape) < 0.3).astype(np.float32)
    p = np.clip(0.6 * t + 0.4 * rng.random(shape), 0.01, 0.99).astype(np.float32)
    return t, p


def onehot_batch(seed, shape=(2, 6, 6), n_classes=4):
    rng = np.random.default_rng(seed)
    t = np.eye(n_classes, dtype=np.float32)[rng.integers(0, n_classes, size=shape)]
    logits = rng.normal(size=t.shape) + 2 * t
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return t, p.astype(np.float32)


def value(x):
    return float(np.asarray(x))


@pytest.mark.parametrize("seed", range(3))
def test_binary_losses_match_numpy(seed):
    t, p = binary_batch(seed)
    dice = np_soft_dice(t, p)
    assert value(losses.dice_loss(t, p)) == pytest.approx(1 - dice, abs=1e-5)
    assert value(losses.bce_dice_loss(t, p)) == pytest.approx(np_bce(t, p) + 1 - dice, abs=1e-4)
    assert value(losses.bce_dice_loss(t, p, bce_weight=0.5, dice_weight=2.0)) == pytest.approx(
        0.5 * np_bce(t, p) + 2 * (1 - dice), abs=1e-4)
    assert value(losses.tversky_loss(t, p)) == pytest.approx(np_tversky(t, p, 0.3, 0.7), abs=1e-5)
    assert value(losses.tversky_loss(t, p, alpha=0.8, beta=0.2)) == pytest.approx(
        np_tversky(t, p, 0.8, 0.2), abs=1e-5)
    # alpha = beta = 0.5 is the Dice loss
    assert value(losses.tversky_loss(t, p, alpha=0.5, beta=0.5, smooth=0.0)) == pytest.approx(
        1 - np_soft_dice(t, p, smooth=0.0), abs=1e-5)


def test_tversky_alpha_weighs_false_positives_beta_false_negatives():
    """Salehi et al. 2017: alpha multiplies FP, beta FN; the default beta > alpha
    penalises missed foreground more than false alarms."""
    t = np.zeros((1, 8, 8, 1), np.float32)
    t[0, 2:6, 2:6] = 1
    missed = t.copy()
    missed[0, 2:4] = 0                       # 8 false negatives
    extra = t.copy()
    extra[0, 6:8, 2:6] = 1                   # 8 false positives
    assert value(losses.tversky_loss(t, missed)) > value(losses.tversky_loss(t, extra))
    # 16 TP + 8 FP, smooth=0: 1 - 16 / (16 + alpha * 8)
    assert value(losses.tversky_loss(t, extra, alpha=0.9, beta=0.1, smooth=0.0)) == \
        pytest.approx(1 - 16 / (16 + 0.9 * 8), abs=1e-6)
    # 8 TP + 8 FN, smooth=0: 1 - 8 / (8 + beta * 8)
    assert value(losses.tversky_loss(t, missed, alpha=0.9, beta=0.1, smooth=0.0)) == \
        pytest.approx(1 - 8 / (8 + 0.1 * 8), abs=1e-6)


def asymmetric_pair():
    """20 true pixels; the prediction misses 2 (FN) and adds 30 false positives."""
    t = np.zeros((1, 10, 10, 1), np.float32)
    t[0, 0:4, 0:5] = 1
    p = t.copy()
    p[0, 0, 0:2] = 0
    p[0, 5:10, 0:6] = 1
    return t, p


@pytest.mark.parametrize("alpha, beta", [(0.3, 0.7), (0.7, 0.3), (0.5, 0.5), (1.0, 1.0)])
def test_losses_follow_written_out_definitions_on_asymmetric_masks(alpha, beta):
    t, p = asymmetric_pair()
    tp, fp, fn = 18.0, 30.0, 2.0
    assert float(np.sum(t * p)) == tp and float(np.sum((1 - t) * p)) == fp
    assert float(np.sum(t * (1 - p))) == fn
    tversky = tp / (tp + alpha * fp + beta * fn)
    assert value(losses.tversky_loss(t, p, alpha=alpha, beta=beta, smooth=0.0)) == \
        pytest.approx(1 - tversky, abs=1e-6)
    assert value(losses.dice_loss(t, p, smooth=0.0)) == pytest.approx(
        1 - 2 * tp / (2 * tp + fp + fn), abs=1e-6)
    if (alpha, beta) == (1.0, 1.0):          # Tversky with alpha = beta = 1 is the IoU
        assert 1 - tversky == pytest.approx(1 - metrics.iou_numpy(t, p))


def test_dice_and_tversky_losses_agree_with_keras_dice():
    rng = np.random.default_rng(2)
    t, p = asymmetric_pair()
    t = np.concatenate([t, np.roll(t, 4, axis=1)])
    p = np.clip(np.concatenate([p, p]) * 0.7 + 0.2 * rng.random((2, 10, 10, 1)), 0, 1)
    p = p.astype(np.float32)
    keras_dice = float(np.mean(np.asarray(keras.losses.dice(t, p, axis=(1, 2, 3)))))
    assert value(losses.dice_loss(t, p, smooth=0.0)) == pytest.approx(keras_dice, abs=1e-5)
    assert value(losses.tversky_loss(t, p, alpha=0.5, beta=0.5, smooth=0.0)) == \
        pytest.approx(keras_dice, abs=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_multiclass_losses_match_numpy(seed):
    t, p = onehot_batch(seed)
    for include in (False, True):
        expected = 1 - np_class_dice(t, p, include)
        assert value(losses.categorical_dice_loss(t, p, include_background=include)) == \
            pytest.approx(expected, abs=1e-5)
    assert value(losses.cce_dice_loss(t, p)) == pytest.approx(
        np_cce(t, p) + 1 - np_class_dice(t, p, False), abs=1e-4)


BINARY = [losses.dice_loss, losses.tversky_loss]
CATEGORICAL = [losses.categorical_dice_loss]


@pytest.mark.parametrize("loss", BINARY + [losses.bce_dice_loss])
def test_binary_loss_range_and_extremes(loss):
    t, p = binary_batch(5)
    perfect = value(loss(t, t))
    worst = value(loss(t, 1 - t))
    middle = value(loss(t, p))
    assert perfect < middle < worst
    if loss in BINARY:
        assert 0.0 <= perfect <= 1e-6 and 0.0 <= middle <= 1.0 and 0.9 <= worst <= 1.0
    empty = np.zeros_like(t)
    assert np.isfinite(value(loss(empty, empty)))


@pytest.mark.parametrize("loss", CATEGORICAL + [losses.cce_dice_loss])
def test_categorical_loss_range(loss):
    t, p = onehot_batch(1)
    assert value(loss(t, t)) < value(loss(t, p)) < value(loss(t, np.roll(t, 1, axis=-1)))
    if loss in CATEGORICAL:
        assert 0.0 <= value(loss(t, p)) <= 1.0


@pytest.mark.parametrize("loss", [losses.dice_loss, losses.bce_dice_loss, losses.tversky_loss,
                                  losses.categorical_dice_loss, losses.cce_dice_loss])
@pytest.mark.parametrize("case", ["random", "empty", "perfect"])
def test_gradients_are_finite_and_nonzero(loss, case):
    multiclass = loss in (losses.categorical_dice_loss, losses.cce_dice_loss)
    t, p = onehot_batch(2) if multiclass else binary_batch(2)
    if case == "empty":
        t = np.zeros_like(t)
        if multiclass:
            t[..., 0] = 1
        p = np.full_like(p, 1e-3 if not multiclass else 1.0 / p.shape[-1])
    elif case == "perfect":
        p = np.clip(t, 1e-3, 1 - 1e-3)
    variable = tf.Variable(p)
    with tf.GradientTape() as tape:
        result = loss(tf.constant(t), variable)
    grad = np.asarray(tape.gradient(result, variable))
    assert np.all(np.isfinite(grad))
    assert np.any(grad != 0)


def tiny_model(n_classes=1):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    activation = "sigmoid" if n_classes == 1 else "softmax"
    outputs = keras.layers.Conv2D(n_classes, 1, activation=activation)(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("loss", [losses.dice_loss, losses.bce_dice_loss, losses.tversky_loss,
                                  metrics.configured(losses.tversky_loss, alpha=0.9, beta=0.1)])
@pytest.mark.slow
def test_binary_loss_and_metrics_train_one_step(loss, tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((4, 8, 8, 1)).astype(np.float32)
    y = (x > 0.5).astype(np.float32)
    model = tiny_model()
    model.compile(optimizer="adam", loss=loss,
                  metrics=[metrics.dice_coefficient, metrics.hard_dice, metrics.iou,
                           metrics.sensitivity, metrics.specificity, metrics.precision])
    history = model.fit(x, y, validation_data=(x, y), epochs=1, batch_size=4, verbose=0)
    for key in ("loss", "dice", "hard_dice", "iou", "sensitivity", "specificity",
                "precision", "val_dice", "val_loss"):
        assert key in history.history, key
        assert np.isfinite(history.history[key][0])
    if loss is losses.bce_dice_loss:
        path = tmp_path / "tiny.keras"
        model.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                                   atol=1e-6)
        result = loaded.evaluate(x, y, verbose=0, return_dict=True)
        assert "dice" in result


@pytest.mark.parametrize("loss", [losses.categorical_dice_loss, losses.cce_dice_loss])
@pytest.mark.slow
def test_categorical_loss_trains_one_step(loss):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((4, 8, 8, 1)).astype(np.float32)
    labels = np.digitize(x[..., 0], [0.33, 0.66])
    y = np.eye(3, dtype=np.float32)[labels]
    model = tiny_model(3)
    model.compile(optimizer="adam", loss=loss, metrics=[metrics.multiclass_dice])
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert 0.0 <= history.history["multiclass_dice"][0] <= 1.0


# --------------------------------------------------------------------------------------
# Class-weighted cross-entropy (lesson 08's remedy for the rare class)
# --------------------------------------------------------------------------------------

def np_weighted_cce(t, p, weights):
    p = np.clip(p.astype(np.float64), 1e-7, 1.0)
    w = (t * np.asarray(weights, np.float64)).sum(-1)
    ce = -(t * np.log(p)).sum(-1)
    return float((w * ce).sum() / w.sum())


@pytest.mark.parametrize("seed", range(3))
def test_weighted_cce_dice_loss_matches_numpy_on_asymmetric_batches(seed):
    t, p = onehot_batch(seed, shape=(3, 5, 7))
    weights = [1.0, 9.0, 2.5, 4.0]
    assert value(losses.weighted_cce_dice_loss(t, p, weights)) == pytest.approx(
        np_weighted_cce(t, p, weights) + 1 - np_class_dice(t, p, False), abs=1e-4)


def test_weighted_cce_dice_loss_equal_weights_is_cce_dice_and_scale_free():
    t, p = onehot_batch(4)
    plain = value(losses.cce_dice_loss(t, p))
    assert value(losses.weighted_cce_dice_loss(t, p, [1.0] * 4)) == pytest.approx(plain, abs=1e-5)
    assert value(losses.weighted_cce_dice_loss(t, p, [3.0] * 4)) == pytest.approx(plain, abs=1e-5)
    weights = np.array([1.0, 9.0, 2.5, 4.0])
    assert value(losses.weighted_cce_dice_loss(t, p, weights)) == pytest.approx(
        value(losses.weighted_cce_dice_loss(t, p, 10 * weights)), abs=1e-5)


def test_weighted_cce_dice_loss_weighs_the_rare_class_errors_up():
    # a batch with a wrong rare-class pixel: weighting that class raises the loss
    t = np.eye(3, dtype=np.float32)[np.array([[[0, 0, 0, 1]]])]
    p = np.full_like(t, 0.05)
    p[..., 0] = 0.9
    assert value(losses.weighted_cce_dice_loss(t, p, [1.0, 10.0, 1.0])) > value(losses.cce_dice_loss(t, p))


def test_weighted_cce_dice_loss_traces_in_graph_with_a_finite_gradient():
    t, p = onehot_batch(2)
    weights = tf.constant([1.0, 5.0, 2.0, 3.0])

    @tf.function
    def step(y_true, y_pred):
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            loss = losses.weighted_cce_dice_loss(y_true, y_pred, weights)
        return loss, tape.gradient(loss, y_pred)

    loss, gradient = step(tf.constant(t), tf.constant(p))
    assert np.isfinite(loss.numpy()) and np.all(np.isfinite(gradient.numpy())) and np.any(gradient.numpy())


def test_class_weights_from_frequencies():
    weights = losses.class_weights_from_frequencies([0.92, 0.003, 0.06, 0.017])
    assert weights.dtype == np.float32 and weights[0] == pytest.approx(1.0)
    assert weights[1] == pytest.approx((0.92 / 0.003) ** 0.5, rel=1e-5)
    assert np.all(np.diff(np.argsort(weights)) != 0) and weights[1] == weights.max()
    assert losses.class_weights_from_frequencies([0.5, 0.5], power=1.0).tolist() == [1.0, 1.0]
    for bad, kwargs in (([0.5, 0.0], {}), ([0.5, 0.5], {"power": -1.0})):
        with pytest.raises(ValueError):
            losses.class_weights_from_frequencies(bad, **kwargs)
