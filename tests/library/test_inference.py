"""Tests of helpers.inference and of the lesson 05 checks (helpers.checks.prediction)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from helpers import inference, metrics
from helpers.checks import prediction as checks_prediction


def test_threshold_is_strict_and_binary():
    probs = np.array([[0.2, 0.5], [0.51, 0.9]], np.float32)
    out = inference.threshold(probs, 0.5)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 0], [1, 1]])
    with pytest.raises(ValueError):
        inference.threshold(probs, 1.5)


def test_keep_largest_components_removes_small_ones():
    mask = np.zeros((20, 20), np.uint8)
    mask[1:9, 1:9] = 1      # 64
    mask[1:7, 12:18] = 1    # 36
    mask[15:17, 15:17] = 1  # 4
    out = inference.keep_largest_components(mask, 2)
    assert out.sum() == 100 and out[16, 16] == 0
    assert inference.keep_largest_components(mask, 1).sum() == 64
    assert inference.keep_largest_components(mask, 5).sum() == 104
    # corner-touching pixels are one component
    assert inference.keep_largest_components(np.eye(5), 1).sum() == 5
    # 3D works too
    volume = np.zeros((6, 6, 6), np.uint8)
    volume[:3, :3, :3] = 1
    volume[5, 5, 5] = 1
    assert inference.keep_largest_components(volume, 1).sum() == 27


def test_fill_holes_and_postprocess():
    mask = np.zeros((12, 12), np.uint8)
    mask[2:10, 2:10] = 1
    mask[4:6, 4:6] = 0
    assert inference.fill_holes(mask).sum() == 64
    mask[0, 11] = 1
    cleaned = inference.postprocess(mask, n_components=1)
    assert cleaned.sum() == 64 and cleaned[0, 11] == 0
    assert inference.postprocess(mask, n_components=1, fill=False).sum() == 60


def test_resize_to_keeps_mask_values():
    mask = np.zeros((4, 4), np.uint8)
    mask[:2] = 1
    big = inference.resize_to(mask, (8, 8))
    assert big.shape == (8, 8) and set(np.unique(big)) == {0, 1} and big.sum() == 32
    probs = inference.resize_to(np.full((4, 4), 0.7, np.float32), (6, 6))
    np.testing.assert_allclose(probs, 0.7, atol=1e-6)


def test_per_case_metrics_against_numpy_metrics():
    rng = np.random.default_rng(0)
    truth = (rng.random((3, 16, 16)) < 0.4).astype(np.uint8)
    probs = rng.random((3, 8, 8)).astype(np.float32)          # half size: resized up
    rows = inference.per_case_metrics(truth, probs, names=["a", "b", "c"])
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    assert list(rows[0]) == list(inference.METRIC_COLUMNS)
    for row, t, p in zip(rows, truth, probs):
        binary = inference.resize_to(p, t.shape) > 0.5
        assert row["dice"] == pytest.approx(metrics.dice_numpy(t, binary))
        assert row["iou"] == pytest.approx(metrics.iou_numpy(t, binary))
    perfect = inference.per_case_metrics(truth, truth)
    assert all(r["dice"] == 1.0 and r["iou"] == 1.0 for r in perfect)
    assert inference.summarise(perfect)["dice"] == 1.0
    with pytest.raises(ValueError, match="predictions"):
        inference.per_case_metrics(truth, probs[:2])


def test_save_table_csv_refuses_to_overwrite(tmp_path):
    rows = [{"name": "a", "dice": 0.91234567}, {"name": "b", "dice": 1.0}]
    path = inference.save_table_csv(rows, tmp_path / "t.csv")
    with path.open() as stream:
        read = list(csv.DictReader(stream))
    assert read[0] == {"name": "a", "dice": "0.912346"}
    with pytest.raises(FileExistsError, match="t.csv"):
        inference.save_table_csv(rows, path)
    inference.save_table_csv(rows[:1], path, force=True)
    assert len(path.read_text().splitlines()) == 2


def test_save_masks_png_refuses_to_overwrite_and_round_trips(tmp_path):
    from helpers.data import read_mask

    masks = [np.eye(8, dtype=np.uint8), np.zeros((8, 8), bool)]
    paths = inference.save_masks_png(masks, ["x", "y.png"], tmp_path / "out")
    assert [p.name for p in paths] == ["x.png", "y.png"]
    np.testing.assert_array_equal(read_mask(paths[0]), masks[0])
    with pytest.raises(FileExistsError, match="x.png"):
        inference.save_masks_png(masks, ["x", "z"], tmp_path / "out")
    assert not (tmp_path / "out" / "z.png").exists()     # nothing written on refusal
    inference.save_masks_png(masks, ["x", "z"], tmp_path / "out", force=True)
    with pytest.raises(ValueError, match="binary"):
        inference.save_masks_png([np.full((4, 4), 0.3)], ["p"], tmp_path / "other")


def test_predict_dataset_keeps_pair_order(tmp_path):
    """A fake 'model' that returns the mean of its input shows the row order."""
    from PIL import Image

    from helpers.generator import SegmentationDataset

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    pairs = []
    for i in range(7):
        image = np.zeros((16, 16), np.uint8)
        image[: i + 1] = 255                      # a different image per case
        name = f"SYN_{i:04d}_0.png"
        Image.fromarray(image).save(tmp_path / "images" / name)
        Image.fromarray(image).save(tmp_path / "masks" / name)
        pairs.append((tmp_path / "images" / name, tmp_path / "masks" / name))

    class Echo:
        input_shape = (None, 16, 16, 1)

        def predict_on_batch(self, x):
            return np.asarray(x)

    expected = np.stack([SegmentationDataset(pairs, image_size=(16, 16), shuffle=False).load(i)[0][..., 0]
                         for i in range(7)])
    np.testing.assert_allclose(inference.predict_dataset(Echo(), pairs, batch_size=3), expected)
    shuffled = SegmentationDataset(pairs, batch_size=3, image_size=(16, 16), shuffle=True, seed=1)
    assert list(shuffled.order) != list(range(7))
    np.testing.assert_allclose(inference.predict_dataset(Echo(), shuffled), expected)


# --------------------------------------------------------------------------- checks

def test_prediction_checks_accept_references():
    checks_prediction.check_threshold(inference.threshold, cases=5)
    checks_prediction.check_keep_largest_components(inference.keep_largest_components, cases=5)
    checks_prediction.check_fill_holes(inference.fill_holes, cases=5)
    checks_prediction.check_postprocess(inference.postprocess, cases=5)
    checks_prediction.check_metrics_table(
        lambda t, p, names: inference.per_case_metrics(t, p, names=names), cases=3)


def test_prediction_checks_reject_wrong_implementations():
    with pytest.raises(AssertionError, match="inverted"):
        checks_prediction.check_threshold(lambda p, v: p < v)
    with pytest.raises(AssertionError, match="value"):
        checks_prediction.check_threshold(lambda p, v: p > 0.5)

    def four_connected(mask, n=2):
        from skimage.measure import label

        labels = label(mask, connectivity=1)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        return np.isin(labels, np.argsort(sizes)[::-1][:n]).astype(np.uint8)

    with pytest.raises(AssertionError, match="corner"):
        checks_prediction.check_keep_largest_components(four_connected)

    def with_background(mask, n=2):
        from skimage.measure import label

        labels = label(mask, connectivity=2)
        sizes = np.bincount(labels.ravel())
        return np.isin(labels, np.argsort(sizes)[::-1][:n]).astype(np.uint8) * (mask > 0)

    with pytest.raises(AssertionError, match="background"):
        checks_prediction.check_keep_largest_components(with_background)
    with pytest.raises(AssertionError, match="hole"):
        checks_prediction.check_postprocess(lambda m: inference.keep_largest_components(m, 2))

    def dice_as_iou(t, p, names):
        return [{"name": n, "dice": metrics.dice_numpy(a, b), "iou": metrics.dice_numpy(a, b)}
                for a, b, n in zip(t, p, names)]

    with pytest.raises(AssertionError, match="IoU"):
        checks_prediction.check_metrics_table(dice_as_iou)

    def empty_zero(t, p, names):
        rows = []
        for a, b, n in zip(t, p, names):
            inter, total = np.sum((a > 0) & (b > 0)), np.sum(a > 0) + np.sum(b > 0)
            dice = 2 * inter / total if total else 0.0
            rows.append({"name": n, "dice": dice, "iou": metrics.iou_numpy(a, b)})
        return rows

    with pytest.raises(AssertionError, match="empty"):
        checks_prediction.check_metrics_table(empty_zero)


# --------------------------------------------------------------------------- one radiograph

class DarkIsLung:
    """Stub model: lung probability high where the (stretched) input is dark."""

    input_shape = (None, 64, 64, 1)

    def __init__(self):
        self.seen = []

    def predict_on_batch(self, x):
        x = np.asarray(x)
        self.seen.append(x)
        return 1.0 / (1.0 + np.exp(20.0 * (x - 0.45)))


def _phantom(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A crude radiograph in [0, 1]: soft tissue, two dark lungs, a bright mediastinum; and
    the lung mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    y, x = (yy + 0.5) / height, (xx + 0.5) / width
    lungs = np.zeros((height, width), bool)
    for cx in (0.28, 0.72):
        lungs |= ((x - cx) / 0.16) ** 2 + ((y - 0.5) / 0.32) ** 2 < 1
    image = np.full((height, width), 0.7)
    image[np.abs(x - 0.5) < 0.06] = 0.95
    image[lungs] = 0.2
    image += 0.02 * rng.standard_normal(image.shape)
    return np.clip(image, 0, 1), lungs.astype(np.uint8)


def _save(path, array, mode=None):
    from PIL import Image

    Image.fromarray(array, mode=mode).save(path)
    return path


def _dice(a, b):
    return metrics.dice_numpy(np.asarray(a) > 0, np.asarray(b) > 0)


def test_segment_radiograph_8bit_grey(tmp_path):
    image, truth = _phantom(200, 200)
    path = _save(tmp_path / "cxr.png", (image * 255).astype(np.uint8))
    model = DarkIsLung()
    result = inference.segment_radiograph(model, path)
    assert result.mask.shape == (200, 200) and result.mask.dtype == np.uint8
    assert set(np.unique(result.mask)) <= {0, 1}
    assert result.probability.shape == (200, 200)
    assert _dice(result.mask, truth) > 0.95
    assert result.lung_pixels == int(result.mask.sum())
    assert result.lung_fraction == pytest.approx(result.mask.mean())
    assert not result.inverted
    assert result.image.shape == (200, 200) and result.image.dtype == np.uint8
    (x,) = model.seen
    assert x.shape == (1, 64, 64, 1) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1


def test_segment_radiograph_16bit_matches_8bit(tmp_path):
    image, truth = _phantom(180, 180, seed=1)
    eight = inference.segment_radiograph(DarkIsLung(), _save(tmp_path / "a.png", (image * 255).astype(np.uint8)))
    # 12-bit detector values in a 16-bit file: a plain /255 or /65535 reading would be wrong
    sixteen_path = _save(tmp_path / "b.png", (image * 4095).astype(np.uint16))
    from PIL import Image

    assert Image.open(sixteen_path).mode.startswith("I")
    sixteen = inference.segment_radiograph(DarkIsLung(), sixteen_path)
    assert _dice(sixteen.mask, truth) > 0.95
    assert _dice(sixteen.mask, eight.mask) > 0.98


def test_segment_radiograph_rgb_jpeg_non_square(tmp_path):
    image, truth = _phantom(300, 220, seed=2)
    rgb = np.repeat((image * 255).astype(np.uint8)[..., None], 3, axis=-1)
    path = tmp_path / "photo.jpg"
    from PIL import Image

    Image.fromarray(rgb, mode="RGB").save(path, quality=90)
    result = inference.segment_radiograph(DarkIsLung(), path)
    assert result.mask.shape == (300, 220)
    assert _dice(result.mask, truth) > 0.93


def test_segment_radiograph_negative_image_is_detected(tmp_path):
    image, truth = _phantom(200, 240, seed=3)
    path = _save(tmp_path / "negative.png", ((1.0 - image) * 255).astype(np.uint8))
    result = inference.segment_radiograph(DarkIsLung(), path)
    assert result.inverted
    assert _dice(result.mask, truth) > 0.95
    # the displayed image is inverted back: lungs dark
    assert result.image[truth > 0].mean() < result.image[truth == 0].mean()
    # forcing the wrong polarity segments something else
    wrong = inference.segment_radiograph(DarkIsLung(), path, invert=False)
    assert not wrong.inverted and _dice(wrong.mask, truth) < 0.5
    assert inference.looks_negative((1.0 - image)) and not inference.looks_negative(image)


def test_segment_radiograph_crops_black_border_and_maps_back(tmp_path):
    image, truth = _phantom(160, 160, seed=4)
    padded = np.zeros((220, 200))
    padded[30:190, 25:185] = image
    padded_truth = np.zeros((220, 200), np.uint8)
    padded_truth[30:190, 25:185] = truth
    result = inference.segment_radiograph(DarkIsLung(), _save(tmp_path / "p.png", (padded * 255).astype(np.uint8)))
    assert result.mask.shape == (220, 200)
    assert result.mask[:30].sum() == 0 and result.mask[:, :25].sum() == 0
    assert _dice(result.mask, padded_truth) > 0.95


def test_segment_radiograph_refuses_bad_arguments(tmp_path):
    from helpers.data import DatasetError

    image, _ = _phantom(64, 64)
    path = _save(tmp_path / "c.png", (image * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="invert"):
        inference.segment_radiograph(DarkIsLung(), path, invert="yes")

    class ThreeChannels(DarkIsLung):
        input_shape = (None, 64, 64, 3)

    with pytest.raises(ValueError, match="grey"):
        inference.segment_radiograph(ThreeChannels(), path)
    with pytest.raises(DatasetError, match="missing.png"):
        inference.segment_radiograph(DarkIsLung(), tmp_path / "missing.png")


def test_metrics_table_is_lesson_05s_reference():
    square = np.zeros((8, 8), np.uint8)
    square[2:6, 2:6] = 1
    half = np.zeros((8, 8), np.uint8)
    half[2:6, 4:8] = 1
    empty = np.zeros((8, 8), np.uint8)
    rows = inference.metrics_table([square, square, empty], [square, half, empty], ["a", "b", "c"])
    assert [row["name"] for row in rows] == ["a", "b", "c"]
    assert rows[0] == {"name": "a", "dice": 1.0, "iou": 1.0}
    assert rows[1]["dice"] == pytest.approx(0.5) and rows[1]["iou"] == pytest.approx(1 / 3)
    assert rows[2]["dice"] == 1.0 and rows[2]["iou"] == 1.0      # both empty
    checks_prediction.check_metrics_table(inference.metrics_table, cases=3)


def test_checks_state_and_test_what_the_hidden_tests_ask():
    """An empty mask stays empty, and postprocess honours n_components: both in the visible checks."""
    from skimage.measure import label

    def size_cut_off(mask, n=2):          # the n-th largest size as a cut-off: no size at all when empty
        labels = label(np.asarray(mask) > 0, connectivity=2)
        sizes = np.bincount(labels.ravel())
        cut_off = np.sort(sizes[1:])[::-1][:n].min()
        keep = np.flatnonzero(sizes >= cut_off)
        return np.isin(labels, keep[keep > 0]).astype(np.uint8)

    def fills_empty(mask, n=2):           # the background (label 0) kept when there is nothing else
        labels = label(np.asarray(mask) > 0, connectivity=2)
        if labels.max() == 0:
            return np.ones_like(labels, dtype=np.uint8)
        return size_cut_off(mask, n)

    for wrong in (size_cut_off, fills_empty):
        with pytest.raises(AssertionError, match="an empty mask"):
            checks_prediction.check_keep_largest_components(wrong)
    with pytest.raises(AssertionError, match="n_components=3"):
        checks_prediction.check_postprocess(lambda mask, n_components=2: inference.postprocess(mask, 2))


def test_finest_spacing_within_budget_takes_the_finest_that_fits():
    table = [(3.0, 216, 0.987), (4.0, 80, 0.979), (5.0, 36, 0.971), (6.0, 27, 0.965), (8.0, 8, 0.959)]
    assert inference.finest_spacing_within_budget(table, 30) == 6.0
    assert inference.finest_spacing_within_budget(table, 36) == 5.0      # the budget is inclusive
    assert inference.finest_spacing_within_budget(list(reversed(table)), 100) == 4.0   # any row order
    with pytest.raises(ValueError, match="at most 5 windows"):
        inference.finest_spacing_within_budget(table, 5)


def _tiny_pairs(tmp_path, n=5, size=16):
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    pairs = []
    for i in range(n):
        image = np.zeros((size, size), np.uint8)
        image[: i + 2, : size // 2 + i] = 255     # asymmetric, different per case
        name = f"SYN_{i:04d}_0.png"
        Image.fromarray(image).save(tmp_path / "images" / name)
        Image.fromarray(image).save(tmp_path / "masks" / name)
        pairs.append((tmp_path / "images" / name, tmp_path / "masks" / name))
    return pairs


def test_predict_tta_maps_every_view_back_onto_the_image(tmp_path):
    """An equivariant 'model' (it echoes its input) gives every view the plain prediction back
    (shifts: away from the edge band they repeat); a model that always predicts a left-to-right
    ramp shows that the mirrored view is mirrored back."""
    pairs = _tiny_pairs(tmp_path)

    class Echo:
        input_shape = (None, 16, 16, 1)

        def predict_on_batch(self, x):
            return np.asarray(x)

    class Ramp(Echo):
        def predict_on_batch(self, x):
            return np.broadcast_to(np.linspace(0, 1, x.shape[2])[None, None, :, None], x.shape).astype(np.float32)

    plain = inference.predict_dataset(Echo(), pairs)
    views = inference.predict_tta(Echo(), pairs, inference.TTA_FLIP + ((False, 3, 0), (False, 0, -2)), batch_size=2)
    assert views.shape == (4, 5, 16, 16) and views.dtype == np.float32
    np.testing.assert_allclose(views[0], plain)
    np.testing.assert_allclose(views[1], plain)
    np.testing.assert_allclose(views[2][:, 3:-3], plain[:, 3:-3])
    np.testing.assert_allclose(views[3][:, :, 2:-2], plain[:, :, 2:-2])
    ramp = inference.predict_tta(Ramp(), pairs, inference.TTA_FLIP)
    np.testing.assert_allclose(ramp[1], ramp[0][:, :, ::-1])
    assert not np.allclose(ramp[1], ramp[0])
    with pytest.raises(ValueError, match="smaller than the image"):
        inference.predict_tta(Echo(), pairs, ((False, 16, 0),))


def test_shift_moves_content_and_repeats_the_edge():
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    moved = inference._shift(x, 1, -1)
    np.testing.assert_array_equal(moved[0, 1:, :3], x[0, :2, 1:])
    np.testing.assert_array_equal(moved[0, 0, :3], x[0, 0, 1:])      # the top row repeats
    np.testing.assert_array_equal(inference._shift(x, 0, 0), x)


def test_threshold_sweep_and_choose_threshold_pick_the_best_mean_dice():
    from helpers import checks

    truth = [np.array([[1, 1, 0, 0]]), np.array([[0, 1, 1, 1]]), np.zeros((1, 4), np.uint8)]
    probs = [np.array([[0.9, 0.45, 0.3, 0.1]]), np.array([[0.2, 0.6, 0.42, 0.7]]), np.array([[0.1, 0.2, 0.35, 0.0]])]
    sweep = inference.threshold_sweep(probs, truth, [0.25, 0.4, 0.5])
    expected = [np.mean([metrics.dice_numpy(t, p > c) for p, t in zip(probs, truth)]) for c in (0.25, 0.4, 0.5)]
    np.testing.assert_allclose(sweep, expected)
    assert inference.choose_threshold(probs, truth, [0.25, 0.4, 0.5]) == 0.4
    # transposed probabilities must not pass for the same masks
    with pytest.raises(ValueError, match="resize"):
        inference.threshold_sweep([p.T for p in probs], truth, [0.5])
    with pytest.raises(ValueError, match="candidates"):
        inference.threshold_sweep(probs, truth, [1.5])
    checks.check_choose_threshold(inference.choose_threshold, cases=4, seed=1, data=(probs, truth, [0.25, 0.4, 0.5]))
