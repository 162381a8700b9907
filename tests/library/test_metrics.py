"""Tests for helpers/metrics.py against independent set-counting implementations.

The references below count pixels with Python sets and loops; they never call
helpers.metrics, so a shared mistake cannot hide.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import metrics


# ---------------------------------------------------------------- independent references

def _set(mask):
    """Indices of foreground pixels of one sample, as a Python set."""
    return {tuple(index) for index in np.argwhere(np.asarray(mask) > 0.5)}


def ref_dice_exact(a, b, empty=1.0):
    A, B = _set(a), _set(b)
    if not A and not B:
        return empty
    return 2 * len(A & B) / (len(A) + len(B))


def ref_iou_exact(a, b, empty=1.0):
    A, B = _set(a), _set(b)
    if not A | B:
        return empty
    return len(A & B) / len(A | B)


def ref_soft_dice(t, p, smooth=1.0):
    """Loop over samples and pixels (soft values allowed)."""
    values = []
    for ti, pi in zip(t, p):
        inter = sum(float(x) * float(y) for x, y in zip(ti.ravel(), pi.ravel()))
        total = float(ti.sum(dtype=np.float64)) + float(pi.sum(dtype=np.float64))
        values.append((2 * inter + smooth) / (total + smooth))
    return sum(values) / len(values)


def ref_soft_iou(t, p, smooth=1.0):
    values = []
    for ti, pi in zip(t, p):
        inter = sum(float(x) * float(y) for x, y in zip(ti.ravel(), pi.ravel()))
        union = float(ti.sum(dtype=np.float64)) + float(pi.sum(dtype=np.float64)) - inter
        values.append((inter + smooth) / (union + smooth))
    return sum(values) / len(values)


def ref_counts(a, b):
    A, B = _set(a), _set(b)
    n = int(np.asarray(a).size)
    tp = len(A & B)
    return tp, len(B - A), len(A - B), n - len(A | B)


def ref_batch_ratio(t, p, which, smooth=1e-6):
    values = []
    for ti, pi in zip(t, p):
        tp, fp, fn, tn = ref_counts(ti, pi)
        num, den = {"sensitivity": (tp, tp + fn), "specificity": (tn, tn + fp),
                    "precision": (tp, tp + fp)}[which]
        values.append((num + smooth) / (den + smooth))
    return sum(values) / len(values)


def random_batch(rng, shape=(3, 12, 12, 1), soft=True):
    t = (rng.random(shape) < 0.3).astype(np.float32)
    if soft:
        p = rng.random(shape).astype(np.float32)
        p[np.abs(p - 0.5) < 1e-3] = 0.4
    else:
        p = (rng.random(shape) < 0.3).astype(np.float32)
    return t, p


def value(x):
    """The batch mean of a metric's per-sample values (or a plain number)."""
    return float(np.mean(np.asarray(x, dtype=np.float64)))


# ------------------------------------------------------------------------ edge cases

SQ = np.zeros((1, 8, 8, 1), np.float32)
SQ[0, 2:6, 2:6] = 1
OTHER = np.zeros_like(SQ)
OTHER[0, 4:8, 4:8] = 1
EMPTY = np.zeros_like(SQ)

EDGE_CASES = {
    "both empty": (EMPTY, EMPTY),
    "truth empty": (EMPTY, SQ),
    "prediction empty": (SQ, EMPTY),
    "identical": (SQ, SQ),
    "disjoint": (SQ, np.roll(SQ, 4, axis=1) * (1 - SQ)),
    "partial": (SQ, OTHER),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_soft_dice_and_iou_match_reference_on_edge_cases(case):
    t, p = EDGE_CASES[case]
    assert value(metrics.dice_coefficient(t, p)) == pytest.approx(ref_soft_dice(t, p), abs=1e-6)
    assert value(metrics.iou(t, p)) == pytest.approx(ref_soft_iou(t, p), abs=1e-6)
    assert value(metrics.hard_dice(t, p)) == pytest.approx(ref_soft_dice(t, p), abs=1e-6)


def test_known_values():
    assert value(metrics.dice_coefficient(EMPTY, EMPTY)) == 1.0
    assert value(metrics.dice_coefficient(SQ, SQ)) == pytest.approx(1.0)
    # 16 and 16 pixels, 4 shared: (8 + 1) / (32 + 1)
    assert value(metrics.dice_coefficient(SQ, OTHER)) == pytest.approx(9 / 33, abs=1e-6)
    assert value(metrics.dice_coefficient(SQ, OTHER, smooth=0.0)) == pytest.approx(0.25)
    assert value(metrics.iou(SQ, OTHER, smooth=0.0)) == pytest.approx(4 / 28)
    assert np.isnan(value(metrics.dice_coefficient(EMPTY, EMPTY, smooth=0.0)))


@pytest.mark.parametrize("seed", range(5))
def test_soft_metrics_match_reference_on_random_soft_batches(seed):
    t, p = random_batch(np.random.default_rng(seed))
    assert value(metrics.dice_coefficient(t, p)) == pytest.approx(ref_soft_dice(t, p), abs=1e-5)
    assert value(metrics.iou(t, p)) == pytest.approx(ref_soft_iou(t, p), abs=1e-5)
    hard = (p > 0.5).astype(np.float32)
    assert value(metrics.hard_dice(t, p)) == pytest.approx(ref_soft_dice(t, hard), abs=1e-5)
    assert value(metrics.hard_dice(t, p, threshold=0.8)) == pytest.approx(
        ref_soft_dice(t, (p > 0.8).astype(np.float32)), abs=1e-5)
    for which in ("sensitivity", "specificity", "precision"):
        got = value(getattr(metrics, which)(t, p))
        assert got == pytest.approx(ref_batch_ratio(t, hard, which), abs=1e-5), which


def test_batch_average_is_per_sample_mean_not_pooled():
    big = np.zeros((1, 16, 16, 1), np.float32)
    big[0, 2:12, 2:12] = 1
    small_t = np.zeros_like(big)
    small_t[0, 14:16, 14:16] = 1
    small_p = np.roll(small_t, -4, axis=1)
    t = np.concatenate([big, small_t])
    p = np.concatenate([big, small_p])
    expected = (1.0 + 1.0 / 9.0) / 2
    assert value(metrics.dice_coefficient(t, p)) == pytest.approx(expected, abs=1e-6)
    pooled = (2 * 100 + 1) / (208 + 1)
    assert abs(value(metrics.dice_coefficient(t, p)) - pooled) > 0.3


def test_3d_volumes_and_dtypes():
    rng = np.random.default_rng(3)
    t, p = random_batch(rng, shape=(2, 4, 6, 6, 1))
    assert value(metrics.dice_coefficient(t, p)) == pytest.approx(ref_soft_dice(t, p), abs=1e-5)
    # integer / boolean truth is cast
    assert value(metrics.dice_coefficient(t.astype(np.uint8), p)) == pytest.approx(
        ref_soft_dice(t, p), abs=1e-5)


def test_mismatched_rank_raises_helpful_error():
    with pytest.raises(ValueError, match="channel axis"):
        metrics.dice_coefficient(np.zeros((2, 8, 8)), np.zeros((2, 8, 8, 1)))


def test_confusion_edge_cases_score_one_with_smoothing():
    assert value(metrics.sensitivity(EMPTY, SQ)) == pytest.approx(1.0)
    assert value(metrics.precision(SQ, EMPTY)) == pytest.approx(1.0)
    full = np.ones_like(SQ)
    assert value(metrics.specificity(full, full)) == pytest.approx(1.0)
    # 16 true, 16 predicted, 4 shared: 4/16 each; specificity 64-28=36 of 48 negatives
    assert value(metrics.sensitivity(SQ, OTHER)) == pytest.approx(0.25, abs=1e-6)
    assert value(metrics.precision(SQ, OTHER)) == pytest.approx(0.25, abs=1e-6)
    assert value(metrics.specificity(SQ, OTHER)) == pytest.approx(36 / 48, abs=1e-6)
    assert metrics.recall is metrics.sensitivity and metrics.jaccard is metrics.iou


# ----------------------------------------------------------------------- multi-class

def ref_per_class(t_onehot, p, smooth=1.0):
    n_classes = t_onehot.shape[-1]
    out = []
    for c in range(n_classes):
        out.append(ref_soft_dice(t_onehot[..., c:c + 1], p[..., c:c + 1], smooth))
    return np.array(out)


def random_onehot(rng, shape=(2, 6, 6), n_classes=4):
    labels = rng.integers(0, n_classes, size=shape)
    t = np.eye(n_classes, dtype=np.float32)[labels]
    logits = rng.normal(size=t.shape) + 2 * t
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return labels, t, p.astype(np.float32)


@pytest.mark.parametrize("seed", range(3))
def test_multiclass_dice_matches_per_class_reference(seed):
    _, t, p = random_onehot(np.random.default_rng(seed))
    per_class = ref_per_class(t, p)
    got = np.asarray(metrics.per_class_dice(t, p))
    assert got.shape == (4,)
    np.testing.assert_allclose(got, per_class, atol=1e-5)
    assert value(metrics.multiclass_dice(t, p)) == pytest.approx(per_class[1:].mean(), abs=1e-5)
    assert value(metrics.multiclass_dice(t, p, include_background=True)) == pytest.approx(
        per_class.mean(), abs=1e-5)


def test_multiclass_absent_class_scores_one():
    labels = np.zeros((1, 4, 4), int)
    labels[0, :2] = 1
    t = np.eye(3, dtype=np.float32)[labels]
    scores = np.asarray(metrics.per_class_dice(t, t))
    np.testing.assert_allclose(scores, [1.0, 1.0, 1.0], atol=1e-6)


# ----------------------------------------------------------------------------- NumPy

@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_numpy_versions_match_set_counting(case):
    t, p = EDGE_CASES[case]
    assert metrics.dice_numpy(t, p) == pytest.approx(ref_dice_exact(t, p))
    assert metrics.iou_numpy(t, p) == pytest.approx(ref_iou_exact(t, p))
    tp, fp, fn, tn = ref_counts(t, p)
    assert metrics.confusion_counts(t, p) == {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    sens = metrics.sensitivity_numpy(t, p)
    assert (math.isnan(sens) if tp + fn == 0 else sens == pytest.approx(tp / (tp + fn)))
    prec = metrics.precision_numpy(t, p)
    assert (math.isnan(prec) if tp + fp == 0 else prec == pytest.approx(tp / (tp + fp)))
    assert metrics.specificity_numpy(t, p) == pytest.approx(tn / (tn + fp))


def test_numpy_random_and_empty_value():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.random((5, 7, 9)) < 0.4
        b = rng.random((5, 7, 9)) < 0.4
        assert metrics.dice_numpy(a, b) == pytest.approx(ref_dice_exact(a, b))
        assert metrics.iou_numpy(a, b) == pytest.approx(ref_iou_exact(a, b))
    empty = np.zeros((4, 4), bool)
    assert metrics.dice_numpy(empty, empty) == 1.0
    assert np.isnan(metrics.dice_numpy(empty, empty, empty=np.nan))
    with pytest.raises(ValueError, match="shape"):
        metrics.dice_numpy(np.zeros((4, 4)), np.zeros((4, 5)))


def test_brats_regions_and_region_dice():
    labels = np.array([0, 1, 2, 4, 4, 2, 0, 1])
    regions = metrics.brats_regions(labels)
    assert regions["ET"].tolist() == [l == 4 for l in labels]
    assert regions["TC"].tolist() == [l in (1, 4) for l in labels]
    assert regions["WT"].tolist() == [l in (1, 2, 4) for l in labels]
    remapped = np.where(labels == 4, 3, labels)
    for key, mask in metrics.brats_regions(remapped).items():
        assert mask.tolist() == regions[key].tolist()
    pred = np.array([0, 1, 1, 4, 0, 2, 2, 0])
    scores = metrics.brats_region_dice(labels, pred)
    assert set(scores) == {"ET", "TC", "WT"}
    for key in scores:
        t = metrics.brats_regions(labels)[key]
        p = metrics.brats_regions(pred)[key]
        assert scores[key] == pytest.approx(ref_dice_exact(t, p))
    assert scores["ET"] == pytest.approx(2 / 3)
    # remapped prediction (ET = 3) against original truth (ET = 4) gives the same scores
    assert metrics.brats_region_dice(labels, np.where(pred == 4, 3, pred)) == scores
    mapped = metrics.brats_region_dice(labels, np.where(pred == 4, 7, pred), label_map={7: 4})
    assert mapped == scores
    with pytest.raises(ValueError, match="label_map"):
        metrics.brats_regions(np.array([0, 5]))


def test_per_class_scores_table():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 3, size=(6, 6))
    pred = true.copy()
    pred[0] = (pred[0] + 1) % 3
    rows = metrics.per_class_scores(true, pred, n_classes=4)
    assert [row["class"] for row in rows] == [0, 1, 2, 3]
    for row in rows[:3]:
        c = row["class"]
        tp, fp, fn, tn = ref_counts(true == c, pred == c)
        assert row["support"] == tp + fn
        assert row["precision"] == pytest.approx(tp / (tp + fp))
        assert row["sensitivity"] == pytest.approx(tp / (tp + fn))
        assert row["specificity"] == pytest.approx(tn / (tn + fp))
        assert row["dice"] == pytest.approx(ref_dice_exact(true == c, pred == c))
    absent = rows[3]
    assert absent["support"] == 0 and absent["dice"] == 1.0 and math.isnan(absent["precision"])
    text = metrics.format_scores(rows, names={0: "background"})
    assert "background" in text and "sensitivity" in text and len(text.splitlines()) == 5


def test_keras_names_and_configured():
    assert metrics.dice_coefficient.__name__ == "dice"
    for function_name, log_name in metrics.KERAS_METRIC_NAMES.items():
        assert getattr(metrics, function_name).__name__ == log_name
    fn = metrics.configured(metrics.hard_dice, threshold=0.3)
    assert fn.__name__ == "hard_dice_threshold0.3"
    t, p = random_batch(np.random.default_rng(0))
    assert value(fn(t, p)) == pytest.approx(value(metrics.hard_dice(t, p, threshold=0.3)))


# ------------------------------------------- per-sample values and Keras' epoch average

KERAS_METRICS = [metrics.dice_coefficient, metrics.hard_dice, metrics.iou,
                 metrics.sensitivity, metrics.specificity, metrics.precision]


@pytest.mark.parametrize("fn", KERAS_METRICS, ids=lambda fn: fn.__name__)
def test_keras_metrics_return_one_value_per_sample(fn):
    t, p = random_batch(np.random.default_rng(4), shape=(5, 8, 8, 1))
    got = np.asarray(fn(t, p))
    assert got.shape == (5,)
    for i in range(5):
        assert got[i] == pytest.approx(value(fn(t[i:i + 1], p[i:i + 1])), abs=1e-6)
    _, t_onehot, p_onehot = random_onehot(np.random.default_rng(4), shape=(5, 6, 6))
    assert np.asarray(metrics.multiclass_dice(t_onehot, p_onehot)).shape == (5,)


def test_keras_averages_the_metrics_over_samples_not_batches():
    """7 samples in batches of 4: a batch mean would give the last 3 samples the weight
    of 4; per-sample values make the logged metric the mean over all 7 samples."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.random((7, 8, 8, 1)).astype(np.float32)
    y = (rng.random((7, 8, 8, 1)) < 0.3).astype(np.float32)
    y[4:] = 1.0            # the short last batch differs a lot from the first
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))
    model.compile(loss="binary_crossentropy", metrics=[metrics.dice_coefficient, metrics.iou])
    result = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    p = model.predict(x, batch_size=4, verbose=0)
    assert result["dice"] == pytest.approx(ref_soft_dice(y, p), abs=1e-5)
    assert result["iou"] == pytest.approx(ref_soft_iou(y, p), abs=1e-5)
    batch_means = (ref_soft_dice(y[:4], p[:4]) + ref_soft_dice(y[4:], p[4:])) / 2
    assert abs(batch_means - ref_soft_dice(y, p)) > 1e-3      # the two differ on this data


# ------------------------------------- definitions and other libraries, asymmetric masks

def asymmetric_pair():
    """Truth of 20 pixels; a prediction that finds 18 of them (2 false negatives) and
    adds 30 false positives, so any swap of FP and FN changes the result."""
    t = np.zeros((1, 10, 10, 1), np.float32)
    t[0, 0:4, 0:5] = 1                                   # 20 true pixels
    p = t.copy()
    p[0, 0, 0:2] = 0                                     # 2 false negatives
    p[0, 5:10, 0:6] = 1                                  # 30 false positives
    return t, p


ASYM_TP, ASYM_FP, ASYM_FN = 18, 30, 2


def test_asymmetric_pair_has_the_counts_it_claims():
    t, p = asymmetric_pair()
    tp, fp, fn, _ = ref_counts(t, p)
    assert (tp, fp, fn) == (ASYM_TP, ASYM_FP, ASYM_FN)


def test_dice_and_iou_follow_their_definitions_on_asymmetric_masks():
    t, p = asymmetric_pair()
    dice = 2 * ASYM_TP / (2 * ASYM_TP + ASYM_FP + ASYM_FN)
    iou = ASYM_TP / (ASYM_TP + ASYM_FP + ASYM_FN)
    assert value(metrics.dice_coefficient(t, p, smooth=0.0)) == pytest.approx(dice, abs=1e-6)
    assert value(metrics.hard_dice(t, p, smooth=0.0)) == pytest.approx(dice, abs=1e-6)
    assert value(metrics.iou(t, p, smooth=0.0)) == pytest.approx(iou, abs=1e-6)
    assert metrics.dice_numpy(t, p) == pytest.approx(dice)
    assert metrics.iou_numpy(t, p) == pytest.approx(iou)
    # hard IoU: the soft IoU of thresholded masks
    soft = np.where(p > 0, 0.9, 0.2).astype(np.float32)
    assert value(metrics.iou((t > 0.5).astype(np.float32), (soft > 0.5).astype(np.float32),
                             smooth=0.0)) == pytest.approx(iou, abs=1e-6)
    assert value(metrics.precision(t, p, smooth=0.0)) == pytest.approx(18 / 48, abs=1e-6)
    assert value(metrics.sensitivity(t, p, smooth=0.0)) == pytest.approx(18 / 20, abs=1e-6)


def test_metrics_agree_with_scipy_dice_and_jaccard():
    from scipy.spatial import distance

    rng = np.random.default_rng(11)
    t, p = asymmetric_pair()
    pairs = [(t.ravel() > 0, p.ravel() > 0)]
    for _ in range(5):
        a = rng.random(200) < 0.1
        pairs.append((a, a | (rng.random(200) < 0.3)))       # many more FP than FN
    for a, b in pairs:
        assert metrics.dice_numpy(a, b) == pytest.approx(1 - distance.dice(a, b))
        assert metrics.iou_numpy(a, b) == pytest.approx(1 - distance.jaccard(a, b))
        batch = (a.reshape(1, -1, 1).astype(np.float32), b.reshape(1, -1, 1).astype(np.float32))
        assert value(metrics.hard_dice(*batch, smooth=0.0)) == pytest.approx(
            1 - distance.dice(a, b), abs=1e-6)
        assert value(metrics.iou(*batch, smooth=0.0)) == pytest.approx(
            1 - distance.jaccard(a, b), abs=1e-6)


def test_metrics_agree_with_keras_dice_and_binary_iou():
    import keras

    t, p = asymmetric_pair()
    rng = np.random.default_rng(5)
    soft = np.clip(p * 0.8 + 0.15 * rng.random(p.shape), 0, 1).astype(np.float32)
    t2 = np.concatenate([t, np.roll(t, 3, axis=2)])
    p2 = np.concatenate([soft, np.roll(soft, 2, axis=1)])
    keras_dice = np.asarray(keras.losses.dice(t2, p2, axis=(1, 2, 3)))     # per sample
    np.testing.assert_allclose(1 - np.asarray(metrics.dice_coefficient(t2, p2, smooth=0.0)),
                               keras_dice, atol=1e-5)
    binary_iou = keras.metrics.BinaryIoU(target_class_ids=[1], threshold=0.5)
    for i in range(2):
        binary_iou.reset_state()
        binary_iou.update_state(t2[i], p2[i])
        expected = float(binary_iou.result())
        assert metrics.iou_numpy(t2[i] > 0.5, p2[i] > 0.5) == pytest.approx(expected, abs=1e-6)
        hard = (p2[i:i + 1] > 0.5).astype(np.float32)
        assert value(metrics.iou(t2[i:i + 1], hard, smooth=0.0)) == pytest.approx(
            expected, abs=1e-6)


# ------------------------------------------------------------------------ boundary distances
# hausdorff_distance and average_surface_distance against medpy (an independent
# implementation, test-only dependency), hand-computed cases, symmetry and spacing.

def _medpy_directed(a, b, spacing):
    """medpy's directed surface distances from a's surface to b's (4/6-connected borders)."""
    from medpy.metric import binary

    return getattr(binary, "__surface_distances")(a, b, voxelspacing=spacing, connectivity=1)


def random_blobs(rng, shape, fill=0.45):
    """A binary mask of a few smooth blobs (some touching the array's edge)."""
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=max(shape) / 8)
    return noise > np.quantile(noise, 1 - fill)


BOUNDARY_CASES = [(2, seed) for seed in range(4)] + [(3, seed) for seed in range(3)]


@pytest.mark.parametrize("ndim,seed", BOUNDARY_CASES)
def test_boundary_distances_match_medpy_with_anisotropic_spacing(ndim, seed):
    from medpy.metric import binary

    rng = np.random.default_rng(seed)
    shape = (40, 33) if ndim == 2 else (14, 18, 11)
    truth, pred = random_blobs(rng, shape), random_blobs(rng, shape, fill=0.35)
    spacing = tuple(rng.uniform(0.4, 3.0, ndim))
    forward, backward = _medpy_directed(pred, truth, spacing), _medpy_directed(truth, pred, spacing)
    np.testing.assert_allclose(np.sort(metrics.surface_distances(pred, truth, spacing)), np.sort(forward))
    assert metrics.hausdorff_distance(truth, pred, spacing, percentile=100) == pytest.approx(
        binary.hd(pred, truth, voxelspacing=spacing))
    assert metrics.hausdorff_distance(truth, pred, spacing) == pytest.approx(
        max(np.percentile(forward, 95), np.percentile(backward, 95)))      # MONAI's HD95
    assert metrics.average_surface_distance(truth, pred, spacing, symmetric=False) == pytest.approx(
        binary.asd(pred, truth, voxelspacing=spacing))
    assert metrics.average_surface_distance(truth, pred, spacing) == pytest.approx(
        np.concatenate([forward, backward]).mean())                     # MONAI's pooled mean


def test_hd95_takes_the_larger_directed_percentile_not_the_pooled_one():
    """MONAI's HD95 (ours) and medpy's hd95 (both directions pooled) differ when the far
    part holds more than 5 % of one surface but less than 5 % of both: a documented choice."""
    from medpy.metric import binary

    truth = np.zeros((100, 100), bool)
    truth[10:50, 10:50] = True          # 156 surface pixels
    pred = truth.copy()
    pred[85:89, 85:89] = True           # + a far 4x4 blob: 12 of 168 (7 %), 12 of 324 pooled (4 %)
    ours = metrics.hausdorff_distance(truth, pred)
    forward, backward = _medpy_directed(pred, truth, None), _medpy_directed(truth, pred, None)
    assert ours == pytest.approx(max(np.percentile(forward, 95), np.percentile(backward, 95)))
    assert ours > 40 and binary.hd95(pred, truth) == 0.0


def test_boundary_distances_hand_computed_2d():
    a = np.zeros((10, 10), np.uint8)
    a[2:6, 2:6] = 1
    b = np.roll(a, 1, axis=1)          # the same square one column to the right
    # b's surface: 12 pixels; the 6 in a's top and bottom rows (and left column overlap) are
    # at 0 or 1: distances [0,0,0,1] top, [0,0,0,1] bottom, [1,1] left, [1,1] right
    np.testing.assert_array_equal(np.sort(metrics.surface_distances(b, a)), [0] * 6 + [1] * 6)
    assert metrics.hausdorff_distance(a, b) == 1.0
    assert metrics.average_surface_distance(a, b) == 0.5
    # two single pixels 3 rows and 4 columns apart: 5 pixels; with 2 mm rows, 0.5 mm columns
    p = np.zeros((8, 8), bool)
    q = np.zeros((8, 8), bool)
    p[1, 1], q[4, 5] = True, True
    assert metrics.hausdorff_distance(p, q) == pytest.approx(5.0)
    assert metrics.hausdorff_distance(p, q, spacing=(2.0, 0.5)) == pytest.approx(math.hypot(6.0, 2.0))
    assert metrics.average_surface_distance(p, q, spacing=(2.0, 0.5)) == pytest.approx(math.hypot(6.0, 2.0))


def test_hd95_interpolates_the_percentile_and_ignores_a_small_outlier():
    """A 40x40 square (156 surface pixels) and the same square plus one far pixel: the maximum
    Hausdorff distance is the pixel's distance, HD95 stays 0, and a blob big enough to hold
    more than 5 % of the surface moves HD95 too."""
    truth = np.zeros((100, 100), bool)
    truth[10:50, 10:50] = True
    pred = truth.copy()
    pred[90, 90] = True                # 40 rows and 40 columns beyond the corner (49, 49)
    assert metrics.hausdorff_distance(truth, pred, percentile=100) == pytest.approx(math.hypot(41, 41))
    assert metrics.hausdorff_distance(truth, pred) == 0.0
    assert metrics.dice_numpy(truth, pred) > 0.999
    blob = truth.copy()
    blob[85:95, 85:95] = True          # 36 surface pixels of 192: more than 5 %
    forward = np.sort(metrics.surface_distances(blob, truth))
    assert forward.size == 156 + 36
    assert metrics.hausdorff_distance(truth, blob) == pytest.approx(np.percentile(forward, 95))
    assert metrics.hausdorff_distance(truth, blob) > 40


def test_boundary_distances_hand_computed_3d_with_spacing():
    a = np.zeros((4, 5, 6), bool)
    b = np.zeros_like(a)
    a[0, 0, 0], b[1, 2, 2] = True, True
    assert metrics.hausdorff_distance(a, b, spacing=(3.0, 1.0, 1.0)) == pytest.approx(math.sqrt(17))
    cube = np.zeros((7, 7, 7), bool)
    cube[1:6, 1:6, 1:6] = True
    assert int(metrics.mask_surface(cube).sum()) == 125 - 27      # the 3x3x3 core has no outside neighbour
    shifted = np.roll(cube, 1, axis=0)
    assert metrics.hausdorff_distance(cube, shifted, spacing=(2.5, 1.0, 1.0), percentile=100) == pytest.approx(2.5)


def test_surface_uses_4_connected_neighbours_and_counts_the_array_edge():
    plus = np.zeros((5, 5), bool)
    plus[1:4, 1:4] = True
    plus[1, 1] = plus[3, 3] = False   # centre's outside neighbours would be diagonal only
    assert not metrics.mask_surface(plus)[2, 2]
    full = np.ones((4, 5), bool)
    np.testing.assert_array_equal(metrics.mask_surface(full), ~np.pad(np.ones((2, 3), bool), 1, constant_values=False))


@pytest.mark.parametrize("fn", [metrics.hausdorff_distance, metrics.average_surface_distance])
def test_boundary_distances_empty_masks_follow_monai(fn):
    empty = np.zeros((6, 6), bool)
    square = empty.copy()
    square[1:4, 1:4] = True
    assert math.isnan(fn(empty, empty))
    assert fn(square, empty) == math.inf and fn(empty, square) == math.inf
    if fn is metrics.average_surface_distance:
        assert fn(square, empty, symmetric=False) == math.inf and fn(empty, square, symmetric=False) == math.inf
    assert fn(square, square) == 0.0


@pytest.mark.parametrize("ndim,seed", BOUNDARY_CASES[:3] + BOUNDARY_CASES[-1:])
def test_boundary_distances_are_symmetric_and_scale_with_spacing(ndim, seed):
    rng = np.random.default_rng(100 + seed)
    shape = (30, 26) if ndim == 2 else (12, 10, 9)
    a, b = random_blobs(rng, shape), random_blobs(rng, shape, fill=0.3)
    for fn in (metrics.hausdorff_distance, metrics.average_surface_distance):
        assert fn(a, b) == pytest.approx(fn(b, a))
        assert fn(a, b, spacing=2.5) == pytest.approx(2.5 * fn(a, b))
    spacing = tuple(rng.uniform(0.5, 2.0, ndim))
    order = tuple(reversed(range(ndim)))       # transposed arrays with the spacing reordered
    assert metrics.hausdorff_distance(a, b, spacing) == pytest.approx(
        metrics.hausdorff_distance(a.transpose(order), b.transpose(order), spacing[::-1]))
    assert metrics.hausdorff_distance(a, b, spacing) != pytest.approx(
        metrics.hausdorff_distance(a.transpose(order), b.transpose(order), spacing)) or len(set(spacing)) == 1


def test_boundary_distances_refuse_bad_input_with_a_hint():
    a = np.zeros((5, 5), bool)
    with pytest.raises(ValueError, match="different shapes"):
        metrics.hausdorff_distance(a, np.zeros((5, 6), bool))
    with pytest.raises(ValueError, match="one case"):
        metrics.hausdorff_distance(np.zeros((1, 5, 5, 1)), np.zeros((1, 5, 5, 1)))
    with pytest.raises(ValueError, match="spacing"):
        metrics.average_surface_distance(a, a, spacing=(1.0, 0.0))
    with pytest.raises(ValueError, match="spacing"):
        metrics.hausdorff_distance(a, a, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="percentile"):
        metrics.hausdorff_distance(a, a, percentile=120)


def test_batch_mean_makes_a_per_sample_metric_a_scalar_with_the_same_name():
    """Lesson 03 falls back on metrics.batch_mean(reference): one number, like the exercises."""
    import numpy as np

    from helpers import checks, metrics

    rng = np.random.default_rng(0)
    t = (rng.random((3, 8, 8, 1)) > 0.5).astype("float32")
    p = rng.random((3, 8, 8, 1)).astype("float32")
    averaged = metrics.batch_mean(metrics.dice_coefficient)
    assert averaged.__name__ == metrics.dice_coefficient.__name__
    assert np.ndim(np.asarray(averaged(t, p))) == 0
    assert float(averaged(t, p, smooth=0.0)) == pytest.approx(float(np.mean(metrics.dice_coefficient(t, p, smooth=0.0))))
    checks.check_dice(averaged)
    checks.check_multiclass_dice(metrics.batch_mean(metrics.multiclass_dice))


# ------------------------------------------------------------------ reliability (lesson 05)

def test_bootstrap_interval_brackets_the_mean_and_is_reproducible():
    values = np.array([0.91, 0.95, 0.97, 0.93, 0.99, 0.96, 0.88, 0.94])
    first = metrics.bootstrap_interval(values, n_resamples=3000, seed=3)
    assert first == metrics.bootstrap_interval(values, n_resamples=3000, seed=3)
    assert first.mean == pytest.approx(values.mean())
    assert first.low < first.mean < first.high
    # independent implementation: a loop of resamples with the same generator
    rng = np.random.default_rng(3)
    index = rng.integers(0, values.size, size=(3000, values.size))
    means = np.array([values[row].mean() for row in index])
    assert (first.low, first.high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    # a wider confidence gives a wider interval; the normal approximation agrees roughly
    wide = metrics.bootstrap_interval(values, n_resamples=3000, confidence=0.99, seed=3)
    assert wide.low <= first.low and wide.high >= first.high
    half = 1.96 * values.std(ddof=0) / np.sqrt(values.size)
    assert (first.high - first.low) / 2 == pytest.approx(half, rel=0.25)


def test_bootstrap_interval_of_constant_values_has_no_width_and_refuses_bad_input():
    assert tuple(metrics.bootstrap_interval([0.5, 0.5, 0.5])) == pytest.approx((0.5, 0.5, 0.5))
    for bad, word in (([], "1-D"), ([[0.1, 0.2]], "1-D"), ([0.1, float("nan")], "non-finite")):
        with pytest.raises(ValueError, match=word):
            metrics.bootstrap_interval(bad)
    with pytest.raises(ValueError, match="confidence"):
        metrics.bootstrap_interval([0.1, 0.2], confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        metrics.bootstrap_interval([0.1, 0.2], n_resamples=0)


def test_calibration_bins_and_ece_against_a_hand_count():
    probs = np.array([[0.05, 0.05, 0.15, 0.95], [0.95, 0.95, 0.55, 1.0]])
    truth = np.array([[0, 1, 0, 1], [1, 0, 1, 1]])
    bins = metrics.calibration_bins(probs, truth, n_bins=10)
    assert bins["count"].tolist() == [2, 1, 0, 0, 0, 1, 0, 0, 0, 4]
    assert bins["frequency"][0] == pytest.approx(0.5) and bins["confidence"][0] == pytest.approx(0.05)
    assert bins["frequency"][9] == pytest.approx(0.75) and bins["confidence"][9] == pytest.approx(0.9625)
    assert np.isnan(bins["frequency"][2])
    expected = (2 * 0.45 + 1 * 0.15 + 1 * 0.45 + 4 * 0.2125) / 8
    assert metrics.expected_calibration_error(probs, truth, n_bins=10) == pytest.approx(expected)
    # a list of cases is the same as their pixels pooled; transposing the truth changes it
    assert metrics.expected_calibration_error([probs[0], probs[1]], [truth[0], truth[1]]) == pytest.approx(expected)
    assert metrics.expected_calibration_error(probs.T, truth.T) == pytest.approx(expected)
    assert metrics.expected_calibration_error(probs, truth[::-1]) != pytest.approx(expected)


def test_ece_is_zero_for_calibrated_bins_and_refuses_bad_input():
    rng = np.random.default_rng(0)
    p = np.repeat([0.05, 0.25, 0.75, 0.95], 400)
    truth = rng.random(p.size) < p
    assert metrics.expected_calibration_error(p, truth) < 0.03
    assert metrics.expected_calibration_error(p, ~truth) > 0.4
    with pytest.raises(ValueError, match="resize"):
        metrics.calibration_bins(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.calibration_bins(np.full((2, 2), 255.0), np.ones((2, 2)))
    with pytest.raises(ValueError, match="one mask per map"):
        metrics.calibration_bins([np.zeros((2, 2))] * 2, [np.zeros((2, 2))])


def test_errors_in_most_uncertain_counts_error_pixels_in_the_top_region():
    truth = np.zeros((10, 10), np.uint8)
    truth[2:6, 2:8] = 1
    pred = truth.copy()
    pred[5, 2:8] = 0                  # 6 missed pixels on the lower border
    uncertainty = np.zeros((10, 10))
    uncertainty[5, 2:5] = 1.0         # 3 of them are the 3 % most uncertain... of 100 pixels
    assert metrics.errors_in_most_uncertain(uncertainty, truth, pred, fraction=0.03) == pytest.approx(0.5)
    assert metrics.errors_in_most_uncertain(uncertainty.T, truth, pred, fraction=0.03) == pytest.approx(0.0)
    assert np.isnan(metrics.errors_in_most_uncertain(uncertainty, truth, truth))
    with pytest.raises(ValueError, match="fraction"):
        metrics.errors_in_most_uncertain(uncertainty, truth, pred, fraction=5)
    with pytest.raises(ValueError, match="shape"):
        metrics.errors_in_most_uncertain(uncertainty[:5], truth, pred)


# --------------------------------------------------------------------------------------
# bootstrap_interval: the interval of a mean over a few cases
# --------------------------------------------------------------------------------------

def test_bootstrap_interval_of_six_cases_brackets_the_mean():
    values = [0.91, 0.88, 0.95, 0.79, 0.93, 0.90]
    mean, low, high = metrics.bootstrap_interval(values, seed=3)
    assert mean == pytest.approx(np.mean(values))
    assert min(values) <= low <= mean <= high <= max(values)
    assert metrics.bootstrap_interval(values, seed=3) == (mean, low, high)
    assert metrics.bootstrap_interval(values, seed=4) != (mean, low, high)


def test_bootstrap_interval_matches_an_independent_percentile_bootstrap():
    rng = np.random.default_rng(0)
    values = rng.normal(0.85, 0.05, size=12)
    _, low, high = metrics.bootstrap_interval(values, n_resamples=20000, seed=1)
    # independent: scipy's percentile bootstrap of the mean
    from scipy import stats
    reference = stats.bootstrap((values,), np.mean, n_resamples=20000, method="percentile",
                                confidence_level=0.95, random_state=2).confidence_interval
    assert low == pytest.approx(reference.low, abs=0.004)
    assert high == pytest.approx(reference.high, abs=0.004)


def test_bootstrap_interval_narrows_with_more_cases_and_lower_confidence():
    rng = np.random.default_rng(5)
    few, many = rng.normal(0, 1, 5), rng.normal(0, 1, 500)
    width = lambda v, **kw: np.subtract(*metrics.bootstrap_interval(v, **kw)[:0:-1])  # noqa: E731
    assert width(many) < width(few)
    assert width(few, confidence=0.5) < width(few, confidence=0.95)


def test_bootstrap_interval_of_one_case_or_constant_values_has_no_width():
    assert metrics.bootstrap_interval([0.7]) == (0.7, 0.7, 0.7)
    mean, low, high = metrics.bootstrap_interval([2.0, 2.0, 2.0])
    assert mean == low == high == pytest.approx(2.0)


@pytest.mark.parametrize("values, kwargs", [([], {}), ([[0.1, 0.2]], {}), ([0.5, float("nan")], {}),
                                            ([1.0, float("inf")], {}), ([0.5], {"n_resamples": 0}),
                                            ([0.5], {"confidence": 1.0}), ([0.5], {"confidence": 0.0})])
def test_bootstrap_interval_rejects_bad_input(values, kwargs):
    with pytest.raises(ValueError):
        metrics.bootstrap_interval(values, **kwargs)
