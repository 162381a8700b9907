"""Figures of the course: overlays, batches, montages, worst cases, learning curves,
orthogonal views of volumes, multi-class overlays and reliability diagrams.

Every function draws with matplotlib at a modest resolution (``DPI``) and returns the
``matplotlib.figure.Figure`` (in a notebook it is shown once, as the cell's result).
Colours are fixed across the course: ground truth in green, prediction in red (or
magenta), so a learner reads any overlay the same way.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    import keras
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DPI", "TRUTH_COLOUR", "PREDICTION_COLOUR", "overlay_contours", "show_overlay",
    "show_batch", "montage", "worst_cases", "plot_learning_curves", "orthogonal_views",
    "multiclass_overlay", "unet_structure", "plot_unet", "plot_assignment", "plot_brats_regions", "reliability_diagram",
]

#: Resolution of the course figures (small notebooks).
DPI = 72
#: Contour colours of the ground truth and of the prediction.
TRUTH_COLOUR = "lime"
PREDICTION_COLOUR = "red"
#: Colours of labels 1, 2, 3, ... in :func:`multiclass_overlay`.
LABEL_COLOURS = ("tab:red", "tab:green", "tab:blue", "tab:orange", "tab:purple", "tab:cyan")


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _squeeze(array) -> np.ndarray:
    """A (H, W) array from (H, W), (H, W, 1) or a tensor."""
    array = np.asarray(array)
    while array.ndim > 2 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] > 1:   # several channels: show the first
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"Expected a 2D image (H, W) or (H, W, 1), got shape {array.shape}.")
    return array


def _new_axes(ax, size=(4, 4)):
    if ax is not None:
        return ax.figure, ax
    plt = _plt()
    fig, ax = plt.subplots(figsize=size, dpi=DPI)
    return fig, ax


def _contour(ax, mask, colour, label=None, linewidth=1.2):
    mask = _squeeze(mask)
    if mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=linewidth)
    if label:
        ax.plot([], [], color=colour, label=label)


def overlay_contours(image: ArrayLike, mask: ArrayLike | None = None, prediction: ArrayLike | None = None,
                     ax: Axes | None = None, title: str | None = None, threshold: float = 0.5) -> Figure:
    """Show ``image`` ``(H, W)`` (or ``(H, W, 1)``) in grey with the contour of the true
    ``mask`` in green and of the ``prediction`` in red (probabilities are thresholded at
    ``threshold``; either may be None). Draws into ``ax`` if given. Returns the Figure.

    Args:
        image: a 2D image ``(H, W)`` or ``(H, W, 1)``.
        mask: the true mask of the same size (above 0.5 is foreground), or None.
        prediction: probabilities (float) or a binary mask of the same size, or None.
        ax: the matplotlib Axes to draw into; None makes a new figure.
        title: a title above the image, or None.
        threshold: probabilities above it are foreground.

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: an array is not 2D (after dropping channel axes of size 1).
    """
    fig, ax = _new_axes(ax)
    ax.imshow(_squeeze(image), cmap="gray")
    if mask is not None:
        _contour(ax, np.asarray(mask) > 0.5, TRUTH_COLOUR, "truth")
    if prediction is not None:
        prediction = np.asarray(prediction)
        binary = prediction > threshold if np.issubdtype(prediction.dtype, np.floating) else prediction > 0
        _contour(ax, binary, PREDICTION_COLOUR, "prediction")
    if mask is not None or prediction is not None:
        ax.legend(loc="lower right", fontsize=7, framealpha=0.6)
    if title:
        ax.set_title(title, fontsize=9)
    ax.axis("off")
    return fig


#: Alias used in the design notes.
show_overlay = overlay_contours


def show_batch(x: ArrayLike, y: ArrayLike | None = None, n: int = 4, predictions: ArrayLike | None = None,
               titles: Sequence[str] | None = None) -> Figure:
    """Show the first ``n`` images of a batch ``x`` ``(B, H, W, C)`` with their masks
    ``y`` ``(B, H, W, 1)`` (and ``predictions``) as contours, in one row. Returns the
    Figure.

    Args:
        x: a batch of images ``(B, H, W, C)``.
        y: their masks ``(B, H, W, 1)``, or None.
        n: the number of images shown.
        predictions: predictions of the batch, or None.
        titles: one title per image shown, or None.

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: an empty batch.
    """
    x = np.asarray(x)
    n = int(min(n, len(x)))
    if n < 1:
        raise ValueError("show_batch got an empty batch.")
    plt = _plt()
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.8), dpi=DPI, squeeze=False)
    for i, ax in enumerate(axes[0]):
        overlay_contours(x[i], None if y is None else y[i],
                         None if predictions is None else predictions[i], ax=ax,
                         title=titles[i] if titles else None)
        if ax.get_legend() is not None and i:
            ax.get_legend().remove()
    fig.tight_layout()
    return fig


def montage(images: ArrayLike | Sequence[ArrayLike], masks: ArrayLike | Sequence[ArrayLike] | None = None,
            n: int = 16, columns: int = 4, predictions: ArrayLike | Sequence[ArrayLike] | None = None,
            titles: Sequence[str] | None = None) -> Figure:
    """A grid of the first ``n`` images (``(N, H, W)`` array or list of 2D arrays),
    ``columns`` per row, with mask (green) and prediction (red) contours. Returns the
    Figure.

    Args:
        images: the images, an ``(N, H, W)`` array or a list of 2D arrays.
        masks: one true mask per image, or None.
        n: the number of images shown.
        columns: images per row.
        predictions: one prediction per image, or None.
        titles: one title per image shown, or None.

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: no images.
    """
    n = int(min(n, len(images)))
    if n < 1:
        raise ValueError("montage got no images.")
    columns = int(max(1, min(columns, n)))
    rows = int(np.ceil(n / columns))
    plt = _plt()
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.3 * rows), dpi=DPI,
                             squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.axis("off")
            continue
        overlay_contours(images[i], None if masks is None else masks[i],
                         None if predictions is None else predictions[i], ax=ax,
                         title=titles[i] if titles else None)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.tight_layout()
    return fig


def worst_cases(rows: Sequence[dict], images: Sequence[ArrayLike], masks: Sequence[ArrayLike],
                predictions: Sequence[ArrayLike], n: int = 4, key: str = "dice") -> Figure:
    """The ``n`` cases with the lowest ``key`` (rows of
    :func:`helpers.inference.per_case_metrics`, in the order of ``images``, ``masks`` and
    ``predictions``), as overlays titled with their name and score. Returns the Figure.

    Args:
        rows: one row per case, with ``key`` (and ``name``) in it.
        images: the images, in the order of ``rows``.
        masks: the true masks, in the same order.
        predictions: the predictions, in the same order.
        n: the number of cases shown.
        key: the score to sort by (lowest first).

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: the numbers of rows, images, masks and predictions differ.
    """
    if not len(rows) == len(images) == len(masks) == len(predictions):
        raise ValueError(f"worst_cases needs as many rows ({len(rows)}), images ({len(images)}), "
                         f"masks ({len(masks)}) and predictions ({len(predictions)}), in one order.")
    order = np.argsort([row[key] for row in rows], kind="stable")[:int(n)]
    titles = [f"{rows[i].get('name', i)}\n{key} {rows[i][key]:.3f}" for i in order]
    return montage([images[i] for i in order], [masks[i] for i in order], n=len(order),
                   columns=len(order), predictions=[predictions[i] for i in order], titles=titles)


def _history_dict(history_or_csv) -> dict:
    if hasattr(history_or_csv, "history"):
        return {key: list(values) for key, values in history_or_csv.history.items()}
    if isinstance(history_or_csv, dict):
        return {key: list(values) for key, values in history_or_csv.items()}
    path = Path(history_or_csv)
    if not path.is_file():
        raise FileNotFoundError(f"No training log at {path}: pass model.fit's History or the "
                                f"CSVLogger file (run_dir/'log.csv').")
    with path.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    if not rows:
        raise ValueError(f"{path} holds no epochs yet.")
    return {key: [float(row[key]) for row in rows] for key in rows[0] if key != "epoch"}


def plot_learning_curves(history_or_csv: Any, metrics: Sequence[str] = ("loss", "dice")) -> Figure:
    """Training and validation curves per epoch, one panel per metric (``loss``,
    ``dice``...), from a Keras ``History``, its ``.history`` dict or a CSVLogger file.
    The best validation epoch is marked. Returns the Figure.

    Args:
        history_or_csv: a Keras ``History``, its ``.history`` dict, or the path of a
            CSVLogger file.
        metrics: the metrics to plot, one panel each (those logged).

    Returns:
        The matplotlib Figure.

    Raises:
        FileNotFoundError: the CSV file does not exist.
        ValueError: the CSV file holds no epoch, or none of ``metrics`` was logged.
    """
    logs = _history_dict(history_or_csv)
    shown = [m for m in metrics if m in logs or f"val_{m}" in logs]
    if not shown:
        raise ValueError(f"None of {tuple(metrics)} was logged; logged: {sorted(logs)}.")
    plt = _plt()
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.2), dpi=DPI, squeeze=False)
    for ax, metric in zip(axes[0], shown):
        for key, style, label in ((metric, "-", "training"), (f"val_{metric}", "--", "validation")):
            if key in logs:
                epochs = np.arange(1, len(logs[key]) + 1)
                ax.plot(epochs, logs[key], style, marker=".", label=label)
        if f"val_{metric}" in logs:
            values = np.asarray(logs[f"val_{metric}"])
            best = int(np.argmin(values) if "loss" in metric else np.argmax(values))
            ax.axvline(best + 1, color="grey", lw=0.8, ls=":")
            ax.annotate(f"best {values[best]:.3f}", (best + 1, values[best]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel("epoch")
        ax.set_title(metric, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def orthogonal_views(volume: ArrayLike, mask: ArrayLike | None = None, prediction: ArrayLike | None = None,
                     spacing: Sequence[float] | None = None, index: Sequence[int] | None = None,
                     title: str | None = None) -> Figure:
    """Axial, coronal and sagittal slices through ``volume`` ``(D, H, W)`` (depth = axial
    slices) at ``index`` ``(z, y, x)`` (default: the centre of the mask, else of the
    volume), with mask (green) and prediction (red) contours. ``spacing`` ``(dz, dy, dx)``
    in millimetres sets the aspect ratio so that anisotropic voxels look right. Returns
    the Figure.

    Volumes read with :func:`helpers.data.load_nifti` are ``(x, y, z)`` (the course's axis
    convention, :mod:`helpers.data.io`): pass ``data.to_depth_first(volume)`` (and the same
    for the masks, spacing reversed), the one converter of the course.

    Args:
        volume: a volume ``(D, H, W)`` (trailing axes of size 1 are dropped).
        mask: the true mask of the volume's shape, or None.
        prediction: a prediction of the volume's shape, or None.
        spacing: ``(dz, dy, dx)`` in millimetres, or None for cubic voxels.
        index: the voxel ``(z, y, x)`` the slices go through, or None.
        title: a title above the three views, or None.

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: ``volume`` is not 3D.
    """
    volume = np.asarray(volume)
    while volume.ndim > 3 and volume.shape[-1] == 1:
        volume = volume[..., 0]
    if volume.ndim != 3:
        raise ValueError(f"orthogonal_views expects a volume (D, H, W), got shape {volume.shape}.")
    dz, dy, dx = (1.0, 1.0, 1.0) if spacing is None else tuple(float(s) for s in spacing)
    if index is None:
        reference = mask if mask is not None and np.asarray(mask).any() else None
        if reference is not None:
            index = tuple(int(round(c)) for c in np.argwhere(np.asarray(reference).reshape(volume.shape) > 0).mean(axis=0))
        else:
            index = tuple(s // 2 for s in volume.shape)
    z, y, x = index

    def cut(array, view):
        if array is None:
            return None
        array = np.asarray(array).reshape(volume.shape)
        return {"axial": array[z], "coronal": array[:, y], "sagittal": array[:, :, x]}[view]

    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), dpi=DPI)
    aspects = {"axial": dy / dx, "coronal": dz / dx, "sagittal": dz / dy}
    for ax, view in zip(axes, ("axial", "coronal", "sagittal")):
        ax.imshow(cut(volume, view), cmap="gray", aspect=aspects[view])
        for array, colour in ((cut(mask, view), TRUTH_COLOUR), (cut(prediction, view), PREDICTION_COLOUR)):
            if array is not None and np.any(array > 0.5):
                ax.contour((array > 0.5).astype(float), levels=[0.5], colors=[colour], linewidths=1.0)
        where = {"axial": f"z={z}", "coronal": f"y={y}", "sagittal": f"x={x}"}[view]
        ax.set_title(f"{view} ({where})", fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def multiclass_overlay(image: ArrayLike, labels: ArrayLike, ax: Axes | None = None,
                       legend: dict | Sequence[str] | None = None, alpha: float = 0.4,
                       title: str | None = None) -> Figure:
    """Show ``image`` ``(H, W)`` in grey with the label map ``labels`` ``(H, W)`` (integers,
    0 = background) as translucent colours. ``legend`` names the labels: a dict
    ``{1: "necrosis", 2: "oedema", 3: "enhancing"}`` or a list for labels 1, 2, ....
    Returns the Figure.

    Args:
        image: a 2D image ``(H, W)`` or ``(H, W, 1)``.
        labels: an integer label map of the same size.
        ax: the matplotlib Axes to draw into; None makes a new figure.
        legend: names of the labels (a dict or a list for labels 1, 2, ...), or None.
        alpha: opacity of the colours.
        title: a title above the image, or None.

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: an array is not 2D (after dropping channel axes of size 1).
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    image = _squeeze(image)
    labels = _squeeze(labels).astype(int)
    fig, ax = _new_axes(ax)
    ax.imshow(image, cmap="gray")
    top = max(int(labels.max()), 1)
    colours = [(0, 0, 0, 0)] + [LABEL_COLOURS[(i - 1) % len(LABEL_COLOURS)] for i in range(1, top + 1)]
    ax.imshow(np.ma.masked_equal(labels, 0), cmap=ListedColormap(colours), vmin=-0.5, vmax=top + 0.5,
              alpha=alpha, interpolation="nearest")
    if legend is not None:
        names = dict(legend) if isinstance(legend, dict) else {i + 1: n for i, n in enumerate(legend)}
        handles = [Patch(color=colours[k] if k < len(colours) else "grey", label=str(name))
                   for k, name in sorted(names.items())]
        ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.6)
    if title:
        ax.set_title(title, fontsize=9)
    ax.axis("off")
    return fig


# --------------------------------------------------------------------------- the network

def unet_structure(model: keras.Model) -> dict:
    """Read the levels of a U-Net from its layers: ``{"levels": [(spatial size, encoder
    channels, decoder channels), ...] from the top level down, "bottleneck": (spatial size,
    channels), "skips": number of concatenations, "input": input shape, "output": output
    shape}``. Works for any model made of (strided or pooled) convolutions, up-sampling
    and concatenations, such as :func:`helpers.models.build_unet` in 2D or 3D (plain or
    residual blocks). Raises ValueError for a model without pooling.

    Args:
        model: a Keras U-Net.

    Returns:
        The dict described above.

    Raises:
        ValueError: the model has no pooling layer.
    """
    down, up, order = {}, {}, []
    phase = "down"
    for layer in model.layers:
        kind = type(layer).__name__
        if kind.startswith(("Conv2DTranspose", "Conv3DTranspose", "UpSampling")):
            phase = "up"
            continue
        if kind in ("Conv2D", "Conv3D") and max(layer.kernel_size) > 1:
            shape = tuple(int(v) for v in layer.output.shape[1:])
            spatial, channels = shape[:-1], shape[-1]
            target = down if phase == "down" else up
            if spatial not in target and phase == "down":
                order.append(spatial)
            target[spatial] = channels
    pools = [layer for layer in model.layers if type(layer).__name__.startswith("MaxPooling")]
    if not pools or not order:
        raise ValueError(f"unet_structure: {model.name!r} has no pooling layer, so it is not a U-Net encoder.")
    levels = [(spatial, down[spatial], up.get(spatial)) for spatial in order[:-1]]
    bottleneck = (order[-1], down[order[-1]])
    skips = sum(type(layer).__name__ == "Concatenate" for layer in model.layers)
    return {"levels": levels, "bottleneck": bottleneck, "skips": skips,
            "input": tuple(model.input_shape[1:]), "output": tuple(model.output_shape[1:])}


def plot_unet(model: keras.Model, title: str | None = None) -> Figure:
    """Draw the U of a U-Net from the model itself: one box per level with its feature-map
    size and number of channels (encoder on the left, decoder on the right, the bottleneck
    at the bottom), max-pooling arrows down, up-sampling arrows up and the skip
    connections across. Returns the Figure.

    Args:
        model: a Keras U-Net (see :func:`unet_structure`).
        title: a title; None gives the model's name, depth and parameter count.

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: the model has no pooling layer.
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    info = unet_structure(model)
    levels, (bottom_size, bottom_channels) = info["levels"], info["bottleneck"]
    depth = len(levels)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(2.0 + 1.5 * depth, 1.2 + 0.95 * (depth + 1)), dpi=DPI)
    step, height = 0.9, 0.62

    def size_text(spatial):
        return "×".join(str(v) for v in spatial)

    def box(x, y, text, colour):
        width = 1.35
        ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                    boxstyle="round,pad=0.02", fc=colour, ec="0.3", lw=0.8))
        ax.text(x, y, text, ha="center", va="center", fontsize=8)

    def arrow(start, end, colour, style="-|>", dashed=False):
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=10, color=colour,
                                     lw=1.1, linestyle="--" if dashed else "-"))

    right = 2 * step * depth + 3.2
    for level, (spatial, enc, dec) in enumerate(levels):
        y = -level
        x_left, x_right = level * step, right - level * step
        box(x_left, y, f"{size_text(spatial)}\n{enc} ch", "#dbe9f6")
        box(x_right, y, f"{size_text(spatial)}\n{dec} ch" if dec else size_text(spatial), "#dff2df")
        arrow((x_left + 0.7, y), (x_right - 0.7, y), "0.45", dashed=True)
        ax.text((x_left + x_right) / 2, y + 0.1, "skip: copy, concatenate", ha="center", va="bottom",
                fontsize=7, color="0.4")
        below_left = (level + 1) * step if level + 1 < depth else right / 2
        below_right = right - (level + 1) * step if level + 1 < depth else right / 2
        arrow((x_left, y - height / 2), (below_left - 0.25 if level + 1 == depth else below_left,
                                         y - 1 + height / 2), "tab:red")
        arrow((below_right + 0.25 if level + 1 == depth else below_right, y - 1 + height / 2),
              (x_right, y - height / 2), "tab:green")
    box(right / 2, -depth, f"{size_text(bottom_size)}\n{bottom_channels} ch", "#f6e3c8")
    ax.text(right / 2, -depth - 0.55, "bottleneck", ha="center", va="top", fontsize=7, color="0.4")
    ax.text(0, 0.55, f"input {size_text(info['input'])}", ha="center", va="bottom", fontsize=8)
    ax.text(right, 0.55, f"output {size_text(info['output'])} (1×1 conv)", ha="center", va="bottom", fontsize=8)
    ax.plot([], [], color="tab:red", label="max-pool 2×, conv block")
    ax.plot([], [], color="tab:green", label="up-sample 2×, concat, conv block")
    ax.plot([], [], color="0.45", linestyle="--", label=f"skip connection ({info['skips']})")
    ax.legend(loc="lower left", fontsize=7, frameon=False)
    ax.set_xlim(-1.0, right + 1.0)
    ax.set_ylim(-depth - 1.0, 1.0)
    ax.axis("off")
    ax.set_title(title or f"{model.name}: depth {depth}, {model.count_params():,} parameters", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- splits and folds

#: Colours of the parts of a split, by name (others cycle through the default palette).
PART_COLOURS = {"train": "tab:blue", "training": "tab:blue", "validation": "tab:orange", "val": "tab:orange",
                "test": "0.55"}


def plot_assignment(rows: Sequence[Sequence[str]], row_labels: Sequence[str] | None = None,
                    groups: Sequence | None = None, column_label: str = "image",
                    title: str | None = None) -> Figure:
    """Draw which part (``"train"``, ``"validation"``, ``"test"``, ...) every item goes to, one
    row per split: a patient-level split against an image-level one, or the k folds of a
    cross-validation. ``rows``: sequences of part names, one per column (item);
    ``groups``: the patient of each column, drawn as separators, so an image-level split
    shows one patient's images in two colours. Returns the Figure.

    Args:
        rows: one sequence of part names per split, one name per item.
        row_labels: one label per row; None gives "split 1", "split 2", ...
        groups: the patient (group) of each item, or None.
        column_label: what an item is, for the axis label.
        title: a title above the plot, or None.

    Returns:
        The matplotlib Figure.
    """
    from matplotlib.patches import Patch, Rectangle

    rows = [list(row) for row in rows]
    n_rows, n_cols = len(rows), max(len(row) for row in rows)
    names = list(dict.fromkeys(name for row in rows for name in row))
    palette = iter(["tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive"])
    colours = {name: PART_COLOURS.get(name) or next(palette) for name in names}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(min(11, 1.5 + 0.16 * n_cols), 0.9 + 0.45 * n_rows), dpi=DPI)
    for r, row in enumerate(rows):
        for c, name in enumerate(row):
            ax.add_patch(Rectangle((c, n_rows - 1 - r), 0.92, 0.8, color=colours[name]))
    if groups is not None:
        groups = list(groups)
        for c in range(1, len(groups)):
            if groups[c] != groups[c - 1]:
                ax.axvline(c - 0.04, color="black", lw=0.8)
    ax.set_xlim(-0.2, n_cols + 0.2)
    ax.set_ylim(-0.2, n_rows)
    ax.set_yticks([n_rows - 1 - r + 0.4 for r in range(n_rows)])
    ax.set_yticklabels(row_labels or [f"split {r + 1}" for r in range(n_rows)], fontsize=8)
    ax.set_xticks([])
    ax.set_xlabel(f"{column_label}s" + (" (black lines separate patients)" if groups is not None else ""), fontsize=8)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.legend(handles=[Patch(color=colours[n], label=n) for n in names], fontsize=7, ncol=len(names),
              loc="upper center", bbox_to_anchor=(0.5, -0.25 if groups is not None else -0.1), frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- BraTS regions

def plot_brats_regions(image: ArrayLike, labels: ArrayLike, title: str | None = None) -> Figure:
    """The three nested BraTS regions on one slice, each filled and all three as contours.

    Whole tumour (WT: every tumour label), tumour core (TC: necrosis and enhancing tumour)
    and enhancing tumour (ET), as :func:`helpers.metrics.brats_regions` defines them (the
    same regions the region Dice scores), each as a filled panel, then all three as nested
    contours on the image.

    Args:
        image: a 2D slice ``(H, W)`` (or ``(H, W, 1)``), any intensity scale.
        labels: a 2D label map of the same size with 0/1/2/4 (BraTS) or 0/1/2/3 (remapped).
        title: a title above the panels (None for none).

    Returns:
        The matplotlib Figure (four panels).

    Raises:
        ValueError: ``labels`` holds a value other than 0-4.
    """
    from matplotlib.colors import ListedColormap

    from helpers.metrics import brats_regions

    image = _squeeze(image)
    found = brats_regions(labels)
    regions = {"WT = 1 + 2 + 4": found["WT"], "TC = 1 + 4": found["TC"], "ET = 4": found["ET"]}
    colours = ("yellow", "orange", "red")
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(11, 3), dpi=DPI)
    for ax, (name, region), colour in zip(axes[:3], regions.items(), colours):
        ax.imshow(image, cmap="gray")
        ax.imshow(np.ma.masked_where(~region, region), cmap=ListedColormap([colour]), alpha=0.55,
                  vmin=0, vmax=1)
        ax.set_title(f"{name}: {int(region.sum())} px", fontsize=9)
        ax.axis("off")
    axes[3].imshow(image, cmap="gray")
    for (name, region), colour in zip(regions.items(), colours):
        if region.any():
            axes[3].contour(region.astype(float), levels=[0.5], colors=colour, linewidths=1.2)
        axes[3].plot([], [], color=colour, label=name.split(" ")[0])
    axes[3].legend(fontsize=7, loc="lower right")
    axes[3].set_title("nested: ET ⊂ TC ⊂ WT", fontsize=9)
    axes[3].axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def reliability_diagram(bins: dict, ece: float | None = None, ax: Axes | None = None,
                        title: str = "reliability (validation pixels)") -> Figure:
    """A reliability diagram from :func:`helpers.metrics.calibration_bins`: per bin the
    observed share of foreground pixels against the mean predicted probability (a
    calibrated model lies on the diagonal), with the pixel count of each bin on a log
    scale underneath. Returns the Figure.

    Args:
        bins: the dict of :func:`helpers.metrics.calibration_bins`.
        ece: the expected calibration error, shown in the title, or None.
        ax: the matplotlib Axes to draw into (then without the count panel); None makes
            a new figure.
        title: the title.

    Returns:
        The matplotlib Figure.
    """
    plt = _plt()
    if ax is None:
        fig, (ax, ax_count) = plt.subplots(2, 1, figsize=(3.6, 4.2), dpi=DPI, sharex=True,
                                           gridspec_kw={"height_ratios": (3, 1)})
    else:
        fig, ax_count = ax.figure, None
    used = np.asarray(bins["count"]) > 0
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="calibrated")
    ax.plot(np.asarray(bins["confidence"])[used], np.asarray(bins["frequency"])[used], "o-", color="tab:blue",
            label="model")
    ax.set_ylabel("observed share of lung")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title + (f"\nECE {ece:.4f}" if ece is not None else ""), fontsize=9)
    edges = np.asarray(bins["edges"])
    if ax_count is not None:
        ax_count.bar(edges[:-1], np.maximum(np.asarray(bins["count"]), 1), width=np.diff(edges), align="edge",
                     color="tab:grey", log=True)
        ax_count.set_ylabel("pixels")
        ax_count.set_xlabel("predicted probability")
    else:
        ax.set_xlabel("predicted probability")
    fig.tight_layout()
    return fig
