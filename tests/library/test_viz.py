"""Tests of helpers.viz: every figure function returns a Figure and draws what it should."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers import viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _disk(size=32, r=8):
    yy, xx = np.mgrid[:size, :size]
    return ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= r * r).astype(np.uint8)


def test_overlay_contours_draws_truth_and_prediction():
    image = np.random.default_rng(0).random((32, 32))
    fig = viz.overlay_contours(image, _disk(), _disk(r=6).astype(np.float32) * 0.9, title="t")
    ax = fig.axes[0]
    assert ax.get_title() == "t"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["truth", "prediction"]
    assert fig.dpi <= 80
    # empty masks and (H, W, 1) inputs are fine
    viz.overlay_contours(image[..., None], np.zeros((32, 32)), None)


def test_show_batch_montage_and_worst_cases():
    rng = np.random.default_rng(1)
    x = rng.random((6, 32, 32, 1))
    y = np.stack([_disk(r=4 + i) for i in range(6)])[..., None]
    assert len(viz.show_batch(x, y, n=3).axes) == 3
    fig = viz.montage(x[..., 0], y[..., 0], n=5, columns=2)
    assert len(fig.axes) == 6                  # 3 rows x 2 columns, last one blank
    rows = [{"name": f"c{i}", "dice": d} for i, d in enumerate([0.9, 0.5, 0.99, 0.7, 0.95, 0.8])]
    fig = viz.worst_cases(rows, x[..., 0], y[..., 0], y[..., 0], n=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("c1") and titles[1].startswith("c3")
    with pytest.raises(ValueError):
        viz.worst_cases(rows[:2], x, y, y)


def test_plot_learning_curves_from_history_dict_and_csv(tmp_path):
    logs = {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.7], "dice": [0.5, 0.8, 0.9],
            "val_dice": [0.4, 0.85, 0.8], "learning_rate": [1e-3] * 3}
    fig = viz.plot_learning_curves(logs)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "dice"]
    path = tmp_path / "log.csv"
    keys = list(logs)
    path.write_text("epoch," + ",".join(keys) + "\n" + "\n".join(
        f"{i}," + ",".join(str(logs[k][i]) for k in keys) for i in range(3)) + "\n")
    fig = viz.plot_learning_curves(path, metrics=("dice",))
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="logged"):
        viz.plot_learning_curves(logs, metrics=("accuracy",))
    with pytest.raises(FileNotFoundError, match="log.csv"):
        viz.plot_learning_curves(tmp_path / "missing" / "log.csv")


def test_orthogonal_views_and_multiclass_overlay():
    volume = np.random.default_rng(2).random((10, 20, 24))
    mask = np.zeros_like(volume, dtype=np.uint8)
    mask[3:7, 5:15, 6:18] = 1
    fig = viz.orthogonal_views(volume, mask, mask, spacing=(3.0, 1.0, 1.0))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("axial") and "z=" in titles[0]
    assert fig.axes[1].images[0].get_extent() is not None
    with pytest.raises(ValueError, match="volume"):
        viz.orthogonal_views(volume[0])
    labels = np.zeros((20, 20), int)
    labels[2:8, 2:8] = 1
    labels[10:15, 10:15] = 3
    fig = viz.multiclass_overlay(volume[0, :20, :20], labels, legend={1: "necrosis", 2: "oedema", 3: "enhancing"})
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["necrosis", "oedema", "enhancing"]


@pytest.mark.parametrize("shape, depth, block", [((64, 64, 1), 3, "plain"), ((16, 32, 32, 2), 2, "residual")])
def test_plot_unet_draws_every_level_of_the_model(shape, depth, block):
    from helpers import models

    model = models.build_unet(shape, n_classes=2, depth=depth, base_filters=4, block=block)
    info = viz.unet_structure(model)
    assert [channels for _, channels, _ in info["levels"]] == [4 * 2 ** level for level in range(depth)]
    assert [channels for _, _, channels in info["levels"]] == [4 * 2 ** level for level in range(depth)]
    assert info["bottleneck"] == (tuple(s // 2 ** depth for s in shape[:-1]), 4 * 2 ** depth)
    assert info["skips"] == depth and info["output"] == shape[:-1] + (2,)
    fig = viz.plot_unet(model)
    texts = [t.get_text() for t in fig.axes[0].texts]
    boxes = [t for t in texts if t.endswith(" ch")]
    assert len(boxes) == 2 * depth + 1
    assert f"{4 * 2 ** depth} ch" in boxes[-1]
    assert sum("skip" in t for t in texts) == depth


def test_unet_structure_rejects_a_model_without_pooling():
    import keras

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs))
    with pytest.raises(ValueError, match="no pooling"):
        viz.unet_structure(model)


def test_plot_assignment_draws_one_cell_per_item_and_patient_separators():
    rows = [["train", "train", "validation", "test", "train"], ["train", "validation", "validation", "test", "test"]]
    fig = viz.plot_assignment(rows, ["by patient", "by image"], groups=["a", "a", "b", "c", "c"])
    ax = fig.axes[0]
    assert len(ax.patches) == 10
    assert len(ax.lines) == 2                      # separators between a|b and b|c
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation", "test"]


def test_plot_brats_regions_are_nested_and_counted():
    labels = np.zeros((32, 32), np.uint8)
    labels[4:28, 4:28] = 2
    labels[8:24, 8:24] = 4
    labels[12:20, 12:20] = 1
    fig = viz.plot_brats_regions(np.random.default_rng(0).random((32, 32)), labels)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "WT = 1 + 2 + 4: 576 px"
    assert titles[1] == "TC = 1 + 4: 256 px"
    assert titles[2] == "ET = 4: 192 px"
    remapped = np.where(labels == 4, 3, labels)
    fig = viz.plot_brats_regions(np.zeros((32, 32)), remapped)
    assert fig.axes[2].get_title() == "ET = 4: 192 px"
    # one definition of the regions: the figure draws what helpers.metrics.brats_regions scores
    from helpers import metrics

    assert not hasattr(viz, "brats_regions")
    assert int(metrics.brats_regions(labels)["TC"].sum()) == 256
    with pytest.raises(ValueError, match="BraTS labels"):
        viz.plot_brats_regions(np.zeros((32, 32)), np.full((32, 32), 7))
