"""Training a U-Net: patient-level splits, callbacks and the reference chest X-ray run.

Seeds: ``keras.utils.set_random_seed(seed)`` (Python, NumPy and the backend) makes weight
initialisation, shuffling and dropout reproducible; the course has no wrapper of its own.

* :func:`split_by_patient` and :func:`kfold_items_by_patient` split images so that no patient
  has images in two parts (two radiographs of one patient are almost twins: one in the
  training set and one in the test set would flatter the test score).
* :func:`standard_callbacks` returns the four callbacks of every lesson: keep the best
  model (``best.keras``), lower the learning rate on a plateau, stop early, log to CSV.
* :data:`CXR_RECIPE` is the tuned recipe of the core lessons, :func:`train_cxr_reference`
  trains it, :func:`load_or_train_cxr_model` reuses a trained model (so lesson 05 works
  even if lesson 04 was skipped); :func:`helpers.inference.evaluate_cxr` measures its test Dice.

Epochs and the number of training images follow ``UNET_COURSE_SCALE``
(:func:`helpers.config.scaled_epochs`, :func:`helpers.config.scaled_count`).

More than one device (``tf.distribute``, data parallelism; defined in :mod:`helpers.distribute`,
below the models in the pipeline, and re-exported here):

* :func:`choose_strategy` picks the strategy: ``MultiWorkerMirroredStrategy`` when
  ``TF_CONFIG`` describes a cluster of two or more workers, ``MirroredStrategy`` over the
  visible GPUs when there are two or more, else TensorFlow's default strategy (one device,
  nothing changes). :func:`strategy` chooses once per process and, on GPUs, turns on mixed
  precision (``mixed_float16``; the U-Net's output layer and the losses stay float32).
* :func:`distribution_scope` is the scope in which models are built:
  :func:`helpers.models.build_unet` and :func:`load_model` use it, so the lessons' cells
  train on all GPUs of a machine without a change (on a cluster, :func:`fit_multi_worker`
  replaces ``model.fit``, which Keras 3 cannot run under ``MultiWorkerMirroredStrategy``).
* :func:`global_batch_size` and :func:`scaled_learning_rate` state the batch and
  learning-rate rule: the recipe's ``batch_size`` is per replica, the global batch is
  ``batch_size × replicas``, and Adam's learning rate grows with the square root of the
  number of replicas (:data:`LEARNING_RATE_RULE`).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence, get_args

import numpy as np

from helpers import config
# The strategy, the scope models are built in and the batch / learning-rate rule live in
# helpers.distribute (below helpers.models in the pipeline); the lessons use them from here.
from helpers.distribute import (
    LEARNING_RATE_RULE, MIXED_PRECISION_VARIABLE, choose_strategy, cluster_workers, distribution_scope,
    fit_multi_worker, global_batch_size, is_chief, replicas, scaled_learning_rate, strategy, use_strategy,
)

if TYPE_CHECKING:
    import keras

    from helpers.generator import SegmentationDataset

__all__ = [
    "CXR_RECIPE", "CxrRecipe", "CxrLoss", "Mode", "MONITOR", "MODE", "patient_of", "split_by_patient", "kfold_items_by_patient",
    "standard_callbacks", "custom_objects", "load_model", "build_cxr_model", "compile_model", "train_step",
    "cxr_datasets",
    "train_cxr_reference", "load_or_train_cxr_model",
    "LEARNING_RATE_RULE", "cluster_workers", "choose_strategy", "strategy", "distribution_scope",
    "use_strategy", "replicas", "is_chief", "global_batch_size", "scaled_learning_rate", "fit_multi_worker",
    "MIXED_PRECISION_VARIABLE",
]

#: Names of the binary losses of :mod:`helpers.losses` a recipe may name.
CxrLoss = Literal["bce_dice_loss", "dice_loss", "tversky_loss"]
#: Whether a monitored quantity improves upwards (Dice) or downwards (a loss).
Mode = Literal["max", "min"]


class _FrozenDict(dict):
    """A dict that refuses changes: the recipe's ``augment`` (prints as a plain dict)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("The recipe is frozen: make a changed copy with "
                        "RECIPE.replace(augment={**RECIPE.augment, 'max_rotation': 10}).")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def __reduce__(self) -> tuple[Any, ...]:   # copy and pickle without __setitem__
        return (_FrozenDict, (dict(self),))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True)
class CxrRecipe:
    """The training recipe of the core lessons (04, 05, 09) on chest X-rays, frozen.

    Every field is checked when a recipe is made, so a typo or a bad value fails at once
    with a message that names the field. Make a changed copy with :meth:`replace`
    (``CXR_RECIPE.replace(epochs=8)``); read a field as an attribute (``RECIPE.epochs``).

    Attributes:
        image_size: pixels per side fed to the network, divisible by ``2**depth``.
        depth: poolings in the encoder (1 or more).
        base_filters: filters of the first level, doubled per level.
        dropout: spatial dropout rate in every conv block, in ``[0, 1)``.
        batch_norm: BatchNormalization after every convolution.
        batch_size: images per batch and replica (global batch: :func:`global_batch_size`).
        epochs: epochs at ``UNET_COURSE_SCALE=1`` (scaled by :func:`helpers.config.scaled_epochs`).
        learning_rate: Adam's learning rate on one replica (:func:`scaled_learning_rate`).
        loss: the name of a binary loss of :mod:`helpers.losses` (:data:`CxrLoss`), or a
            loss function ``loss(y_true, y_pred)``.
        augment: keyword arguments of :func:`helpers.generator.augment_pair` (read-only),
            ``True`` for its defaults, or ``False`` (or None) for no augmentation.
        fractions: train / validation / test shares, by patient: positive, summing to 1.
        patience_lr: epochs without ``val_dice`` progress before the learning rate halves.
        patience_stop: epochs without progress before training stops.

    Raises:
        ValueError: a field out of its range (the message names it and the range).
        TypeError: a field of the wrong type.
    """

    image_size: int = config.CXR_TRAIN_SIZE
    depth: int = 4
    base_filters: int = 8
    dropout: float = 0.0
    batch_norm: bool = True
    batch_size: int = 8
    epochs: int = 16
    learning_rate: float = 3e-3
    loss: CxrLoss | Callable[..., Any] = "bce_dice_loss"
    augment: Mapping[str, Any] | bool = field(default_factory=lambda: _FrozenDict(
        flip=False, max_rotation=5, max_shift=0.04, max_zoom=0.05, brightness=0.05, contrast=0.05))
    fractions: tuple[float, ...] = (0.7, 0.15, 0.15)
    patience_lr: int = 1
    patience_stop: int = 5

    def __post_init__(self) -> None:
        def bad(name: str, expected: str, error: type[Exception] = ValueError) -> Exception:
            return error(f"CXR recipe: {name} must be {expected}, got {getattr(self, name)!r}.")

        for name, low in (("image_size", 1), ("depth", 1), ("base_filters", 1), ("batch_size", 1),
                          ("epochs", 1), ("patience_lr", 0), ("patience_stop", 0)):
            value = getattr(self, name)
            if not _is_int(value):
                raise bad(name, f"an integer >= {low}", TypeError)
            if value < low:
                raise bad(name, f"an integer >= {low}")
        if self.image_size % 2 ** self.depth:
            raise bad("image_size", f"divisible by 2**depth = {2 ** self.depth} (depth {self.depth})")
        if not _is_number(self.dropout) or not 0 <= self.dropout < 1:
            raise bad("dropout", "a rate in [0, 1)")
        if not isinstance(self.batch_norm, bool):
            raise bad("batch_norm", "True or False", TypeError)
        if not _is_number(self.learning_rate) or not self.learning_rate > 0:
            raise bad("learning_rate", "a positive number")
        if isinstance(self.loss, str):
            if self.loss not in get_args(CxrLoss):
                raise bad("loss", f"one of {get_args(CxrLoss)} (a binary loss of helpers.losses) or a function")
        elif not callable(self.loss):
            raise bad("loss", "a loss name or a function loss(y_true, y_pred)", TypeError)
        if self.augment is None:
            object.__setattr__(self, "augment", False)
        elif not isinstance(self.augment, bool):
            if not isinstance(self.augment, Mapping) or not all(isinstance(k, str) for k in self.augment):
                raise bad("augment", "True, False or a dict of helpers.generator.augment_pair's keyword arguments",
                          TypeError)
            object.__setattr__(self, "augment", _FrozenDict(self.augment))
        try:
            fractions = tuple(float(f) for f in self.fractions)
        except (TypeError, ValueError):
            raise bad("fractions", "a sequence of numbers", TypeError) from None
        if len(fractions) < 2 or any(not f > 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise bad("fractions", "two or more positive shares summing to 1, e.g. (0.7, 0.15, 0.15)")
        object.__setattr__(self, "fractions", tuple(self.fractions))

    def replace(self, **changes: Any) -> CxrRecipe:
        """A copy with some fields changed, checked like a new recipe.

        Args:
            **changes: new values by field name (``epochs=8``, ``base_filters=16``).

        Returns:
            The changed recipe; this one is left as it is.

        Raises:
            TypeError: an unknown field name (the message lists the known ones), or a
                value of the wrong type.
            ValueError: a value out of its range.
        """
        known = [f.name for f in fields(self)]
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise TypeError(f"Unknown recipe keys {unknown}; known: {sorted(known)}.")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict, in their order (``augment`` as a plain dict too)."""
        return {f.name: dict(value) if isinstance(value := getattr(self, f.name), Mapping) else value
                for f in fields(self)}


#: The recipe of the core lessons (04, 05) on the chest X-ray data. Tuned so that at
#: ``UNET_COURSE_SCALE=1`` the held-out test Dice is >= 0.95 in about two minutes on two
#: CPU cores, and so that the model, trained on synthetic images only, segments real
#: radiographs well (``benchmarks/real_cxr.py``): 16 epochs, with the learning rate halved
#: after every epoch without progress, let the model settle instead of stopping while
#: its Dice on real films still swings from epoch to epoch. ``augment`` holds the keyword
#: arguments of :func:`helpers.generator.augment_pair`: no flip (lesson 01 measures that
#: the two halves of a chest X-ray are not mirror images; an up-down flip is never
#: plausible).
CXR_RECIPE = CxrRecipe()

#: What the course's callbacks watch, and the direction in which it improves (lesson 04's
#: Exercise 4.4): the validation Dice, larger is better.
MONITOR = "val_dice"
MODE: Mode = "max"

# --------------------------------------------------------------------------- devices (tf.distribute)

# choose_strategy, strategy, distribution_scope, global_batch_size, scaled_learning_rate,
# fit_multi_worker ...: see helpers.distribute (imported above).


# --------------------------------------------------------------------------- seeds and splits

def patient_of(item: Any) -> str:
    """The patient identifier of an item: a path, or an ``(image, mask)`` pair (the image
    path decides; a multi-channel tuple of images uses its first file).

    Args:
        item: a path, or an ``(image, mask)`` pair.

    Returns:
        The patient, as :func:`helpers.data.patient_id` names it.
    """
    from helpers.data import patient_id

    if isinstance(item, (tuple, list)):
        item = item[0]
        if isinstance(item, (tuple, list)):
            item = item[0]
    return patient_id(item)


def _groups(items) -> tuple[list[str], dict[str, list[int]]]:
    """Patients in order of first appearance and, for each, the indices of its items."""
    order, members = [], {}
    for index, item in enumerate(items):
        patient = patient_of(item)
        if patient not in members:
            members[patient] = []
            order.append(patient)
        members[patient].append(index)
    return order, members


def split_by_patient(items: Sequence[Any], fractions: Sequence[float] = (0.7, 0.15, 0.15),
                     seed: int = config.SEED) -> tuple[list, ...]:
    """Split ``items`` (paths, or ``(image, mask)`` pairs) into parts of about
    ``fractions`` of the items each, with every patient (:func:`helpers.data.patient_id`)
    in exactly one part.

    Patients are shuffled with ``seed`` and dealt out in that order: each goes to the first
    part that has not yet reached its share of images. Returns one list per fraction
    (``(train, val, test)`` by default), each keeping the input order; the same items and
    seed always give the same split. Fractions must be positive and sum to 1; with fewer
    patients than parts some parts would be empty, which raises ValueError.

    Args:
        items: paths, or ``(image, mask)`` pairs.
        fractions: the share of the items of each part, two or more, summing to 1.
        seed: seed of the shuffle of the patients.

    Returns:
        One list of items per fraction, each in input order.

    Raises:
        ValueError: invalid ``fractions``, or fewer patients than parts.
    """
    items = list(items)
    fractions = [float(f) for f in fractions]
    if len(fractions) < 2 or any(not f > 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be two or more positive numbers summing to 1, got "
                         f"{tuple(fractions)}; e.g. (0.7, 0.15, 0.15) for train/val/test.")
    patients, members = _groups(items)
    if len(patients) < len(fractions):
        raise ValueError(f"Cannot split {len(items)} items of {len(patients)} patient(s) into "
                         f"{len(fractions)} parts without sharing a patient: use more data.")
    rng = np.random.default_rng(seed)
    shuffled = [patients[i] for i in rng.permutation(len(patients))]
    targets = np.array(fractions) * len(items)
    counts = np.zeros(len(fractions))
    chosen: list[list[int]] = [[] for _ in fractions]
    for position, patient in enumerate(shuffled):
        empty = [i for i in range(len(fractions)) if counts[i] == 0]
        if len(empty) >= len(shuffled) - position:   # keep a patient for every empty part
            part = empty[0]
        else:
            part = next((i for i in range(len(fractions)) if counts[i] < targets[i] - 0.5),
                        int(np.argmin(counts / targets)))
        chosen[part].extend(members[patient])
        counts[part] += len(members[patient])
    return tuple([items[i] for i in sorted(part)] for part in chosen)


def kfold_items_by_patient(items: Sequence[Any], k: int = 5,
                           seed: int = config.SEED) -> list[tuple[list[Any], list[Any]]]:
    """``k`` cross-validation folds of items (paths or pairs) with no patient in both parts.

    The patients (:func:`patient_of`) are folded by :func:`helpers.slices.kfold_by_patient`,
    the one implementation of patient-level folds; each fold's items follow their patients.

    Args:
        items: paths, or ``(image, mask)`` pairs.
        k: number of folds, 2 or more.
        seed: seed of the shuffle of the patients.

    Returns:
        ``k`` ``(train, val)`` lists of items in input order; every item is validated exactly
        once and the folds' numbers of patients differ by at most one.

    Raises:
        ValueError: ``k < 2`` or fewer patients than folds.
    """
    from helpers.slices import kfold_by_patient

    items = list(items)
    patients = [patient_of(item) for item in items]
    folds = []
    for _, val_ids in kfold_by_patient(patients, k, seed):
        validating = set(val_ids)
        folds.append(([item for item, patient in zip(items, patients) if patient not in validating],
                      [item for item, patient in zip(items, patients) if patient in validating]))
    return folds


# --------------------------------------------------------------------------- callbacks and models

def standard_callbacks(run_dir: str | Path, monitor: str = "val_dice", mode: Mode = "max",
                       patience_lr: int = CXR_RECIPE.patience_lr,
                       patience_stop: int = CXR_RECIPE.patience_stop,
                       factor: float = 0.5, min_lr: float = 1e-5) -> list[keras.callbacks.Callback]:
    """The four callbacks of the course, writing into ``run_dir`` (created if needed).

    ``ModelCheckpoint(run_dir/"best.keras", save_best_only=True)`` keeps the best model;
    ``ReduceLROnPlateau`` multiplies the learning rate by ``factor`` after
    ``patience_lr`` epochs without progress of ``monitor``; ``EarlyStopping`` stops after
    ``patience_stop`` such epochs and restores the best weights;
    ``CSVLogger(run_dir/"log.csv")`` writes one row of metrics per epoch.
    ``monitor`` is a logged quantity (``"val_dice"``, ``"val_loss"``) and ``mode`` says
    whether more (``"max"``) or less (``"min"``) is better. In a ``TF_CONFIG`` cluster only
    the chief (:func:`is_chief`) writes into ``run_dir``; other workers write into a
    temporary folder, so the run keeps one checkpoint.

    Args:
        run_dir: the run's folder.
        monitor: the logged quantity the callbacks watch.
        mode: ``"max"`` if more is better, ``"min"`` if less.
        patience_lr: epochs without progress before the learning rate is cut.
        patience_stop: epochs without progress before training stops.
        factor: what the learning rate is multiplied by on a plateau.
        min_lr: the lowest learning rate.

    Returns:
        ``[ModelCheckpoint, ReduceLROnPlateau, EarlyStopping, CSVLogger]``.

    Raises:
        ValueError: ``mode`` is neither ``"max"`` nor ``"min"``.
    """
    import keras

    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}: 'max' for Dice, 'min' for a loss.")
    run_dir = Path(run_dir)
    if not is_chief():   # in a TF_CONFIG cluster only the chief writes into run_dir
        run_dir = Path(tempfile.mkdtemp(prefix="unet-course-worker-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    return [
        keras.callbacks.ModelCheckpoint(str(run_dir / "best.keras"), monitor=monitor, mode=mode,
                                        save_best_only=True, verbose=0),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=factor,
                                          patience=patience_lr, min_lr=min_lr, verbose=1),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience_stop,
                                      restore_best_weights=True, verbose=1),
        keras.callbacks.CSVLogger(str(run_dir / "log.csv")),
    ]


def custom_objects() -> dict:
    """Losses and metrics of the course by name, for ``keras.models.load_model``.

    Returns:
        ``{name: function}`` for every loss and metric function of the course.
    """
    from helpers import losses, metrics

    objects = {}
    for module in (metrics, losses):
        for name in module.__all__:
            value = getattr(module, name)
            if callable(value) and not isinstance(value, type):
                objects[name] = value
                objects[getattr(value, "__name__", name)] = value
    return objects


def load_model(path: str | Path, compile: bool = True) -> keras.Model:
    """Load a ``.keras`` model saved during the course (custom losses and metrics
    included). Raises FileNotFoundError naming the file and how to make it.

    Args:
        path: the ``.keras`` file.
        compile: compile the model as it was saved (its loss, metrics and optimizer).

    Returns:
        The Keras model.

    Raises:
        FileNotFoundError: there is no file at ``path``.
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model at {path}: train one first (lesson 04, or "
                                f"training.train_cxr_reference(run_dir={str(path.parent)!r})).")
    with distribution_scope():
        return keras.models.load_model(str(path), custom_objects=custom_objects(), compile=compile)


def _recipe(recipe: CxrRecipe | Mapping[str, Any] | None = None, **overrides: Any) -> CxrRecipe:
    """A :class:`CxrRecipe` from a recipe, or from changes to :data:`CXR_RECIPE` (a dict)."""
    if recipe is None:
        recipe = CXR_RECIPE
    elif not isinstance(recipe, CxrRecipe):
        recipe = CXR_RECIPE.replace(**recipe)
    return recipe.replace(**overrides) if overrides else recipe


def build_cxr_model(recipe: CxrRecipe | Mapping[str, Any] | None = None, compile: bool = True) -> Any:
    """The U-Net of :data:`CXR_RECIPE` (or ``recipe``) for ``(size, size, 1)`` inputs,
    built in :func:`distribution_scope` and compiled with Adam (the recipe's learning rate,
    :func:`scaled_learning_rate` for the number of replicas), the recipe's loss and the
    metrics ``dice`` and ``hard_dice``.

    Args:
        recipe: a :class:`CxrRecipe`, a dict of changes to :data:`CXR_RECIPE`, or None for it.
        compile: compile the model.

    Returns:
        The Keras model ``unet_cxr``.

    Raises:
        TypeError: an unknown recipe field, or a value of the wrong type (:meth:`CxrRecipe.replace`).
        ValueError: a recipe value out of its range.
    """
    import keras

    from helpers import losses, metrics, models

    settings = _recipe(recipe)
    size = int(settings.image_size)
    with distribution_scope() as chosen:
        model = models.build_unet((size, size, 1), depth=settings.depth,
                                  base_filters=settings.base_filters, dropout=settings.dropout,
                                  batch_norm=settings.batch_norm, name="unet_cxr")
        if compile:
            loss = getattr(losses, settings.loss) if isinstance(settings.loss, str) else settings.loss
            rate = scaled_learning_rate(settings.learning_rate, replicas(chosen))
            model.compile(optimizer=keras.optimizers.Adam(rate), loss=loss,
                          metrics=[metrics.dice_coefficient, metrics.hard_dice])
    return model


def compile_model(model: keras.Model, learning_rate: float = CXR_RECIPE.learning_rate) -> keras.Model:
    """Lesson 04's ``compile_model`` (Exercise 4.2): compile a binary-segmentation U-Net.

    Args:
        model: a Keras model with a sigmoid output ``(batch, H, W, 1)``.
        learning_rate: Adam's learning rate.

    Returns:
        ``model``, compiled with ``keras.optimizers.Adam(learning_rate)``, the loss
        :func:`helpers.losses.bce_dice_loss` and the metrics ``dice`` and ``hard_dice``
        (logged with ``val_`` in front on validation data).
    """
    import keras

    from helpers import losses, metrics

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=losses.bce_dice_loss,
                  metrics=[metrics.dice_coefficient, metrics.hard_dice])
    return model


def train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer, loss_fn: Callable[[Any, Any], Any],
               x: Any, y: Any) -> Any:
    """Lesson 04's ``train_step`` (Exercise 4.3): one gradient step, as ``fit`` takes it.

    Args:
        model: a Keras model, called in training mode (batch normalisation uses and updates
            the batch statistics, dropout is on).
        optimizer: a Keras optimizer, e.g. ``keras.optimizers.Adam(1e-3)``.
        loss_fn: ``loss_fn(y_true, y_pred)`` -> a scalar tensor.
        x: the batch's images, ``(batch, H, W, C)``.
        y: the batch's masks, ``(batch, H, W, 1)``.

    Returns:
        The loss on the batch before the update (a scalar tensor).
    """
    import tensorflow as tf

    with tf.GradientTape() as tape:
        predictions = model(x, training=True)
        loss = loss_fn(y, predictions)
    gradients = tape.gradient(loss, model.trainable_weights)
    optimizer.apply_gradients(zip(gradients, model.trainable_weights))
    return loss


def cxr_datasets(train_pairs: Sequence[tuple[Path, Path]], val_pairs: Sequence[tuple[Path, Path]],
                 recipe: CxrRecipe | Mapping[str, Any] | None = None,
                 seed: int = config.SEED) -> tuple[SegmentationDataset, SegmentationDataset]:
    """``(train, val)`` :class:`helpers.generator.SegmentationDataset` for the recipe: the
    training set shuffled and augmented, the validation set in file order, unaugmented.
    Batches hold :func:`global_batch_size` images (the recipe's ``batch_size`` per replica).

    Args:
        train_pairs: the training ``(image, mask)`` pairs.
        val_pairs: the validation pairs.
        recipe: a :class:`CxrRecipe`, a dict of changes to :data:`CXR_RECIPE`, or None for it.
        seed: seed of the order and the augmentation.

    Returns:
        ``(train, val)`` data sets.

    Raises:
        TypeError: an unknown recipe field, or a value of the wrong type (:meth:`CxrRecipe.replace`).
        ValueError: a recipe value out of its range, or no pairs.
    """
    from helpers.generator import SegmentationDataset

    settings = _recipe(recipe)
    size = (int(settings.image_size),) * 2
    batch = global_batch_size(settings.batch_size)
    train = SegmentationDataset(train_pairs, batch_size=batch, image_size=size,
                                augment=settings.augment or False, shuffle=True, seed=seed,
                                workers=2)  # read the next batch while the model trains
    val = SegmentationDataset(val_pairs, batch_size=batch, image_size=size,
                              augment=False, shuffle=False, seed=seed)
    return train, val


def _default_pairs():
    from helpers import data

    return data.load_pairs(data.ensure_dataset("cxr_synthetic"))


def train_cxr_reference(run_dir: str | Path | None = None, pairs: Sequence[tuple[Any, Any]] | None = None,
                        seed: int = config.SEED, verbose: int = 2,
                        **overrides: Any) -> tuple[keras.Model, keras.callbacks.History]:
    """Train the reference U-Net of :data:`CXR_RECIPE` on chest X-rays; returns
    ``(model, history)``.

    ``pairs`` defaults to the synthetic set (``data.ensure_dataset("cxr_synthetic")``); it
    is split with :func:`split_by_patient` (``seed``) and the model trains on the training
    part (:func:`helpers.config.scaled_count` of it) for
    :func:`helpers.config.scaled_epochs` epochs, validating on the validation part.
    ``run_dir`` (default ``config.runs_dir("04_training")``) receives ``best.keras`` and
    ``log.csv``. ``overrides`` replace recipe entries (``epochs=5``, ``base_filters=16``).
    The returned model holds the best weights (by ``val_dice``).

    Args:
        run_dir: the run's folder, or None for the default.
        pairs: the ``(image, mask)`` pairs, or None for the synthetic set.
        seed: seed of the split, the weights and the batches.
        verbose: Keras's ``fit`` verbosity.
        **overrides: recipe fields to change.

    Returns:
        ``(model, history)``.

    Raises:
        TypeError: an unknown recipe field, or a value of the wrong type (:meth:`CxrRecipe.replace`).
        ValueError: a recipe value out of its range, or too few patients to split.
    """
    recipe = _recipe(None, **overrides)
    run_dir = Path(run_dir) if run_dir is not None else config.runs_dir("04_training")
    pairs = list(pairs) if pairs is not None else _default_pairs()
    train_pairs, val_pairs, _ = split_by_patient(pairs, recipe.fractions, seed=seed)
    train_pairs = train_pairs[:config.scaled_count(len(train_pairs), minimum=8)]
    val_pairs = val_pairs[:config.scaled_count(len(val_pairs), minimum=4)]
    import keras

    keras.utils.set_random_seed(int(seed))
    train, val = cxr_datasets(train_pairs, val_pairs, recipe, seed=seed)
    model = build_cxr_model(recipe)
    callbacks = standard_callbacks(run_dir, patience_lr=recipe.patience_lr,
                                   patience_stop=recipe.patience_stop)
    history = model.fit(train, validation_data=val, epochs=config.scaled_epochs(recipe.epochs),
                        callbacks=callbacks, verbose=verbose)
    return model, history


def load_or_train_cxr_model(run_dir: str | Path | None = None, pairs: Sequence[tuple[Any, Any]] | None = None,
                            verbose: int = 2, **overrides: Any) -> keras.Model:
    """The chest X-ray model of lesson 04: ``run_dir/best.keras`` if it exists (default
    ``config.runs_dir("04_training")``), else a fresh :func:`train_cxr_reference` run
    (a few minutes) that writes it. Returns the compiled ``keras.Model``.

    Args:
        run_dir: the run's folder, or None for ``config.runs_dir("04_training")``.
        pairs: the pairs to train on if there is no model, or None for the synthetic set.
        verbose: Keras's ``fit`` verbosity.
        **overrides: recipe fields to change for a new run.

    Returns:
        The compiled Keras model.

    Raises:
        DatasetError: another process has been training the model for an hour (its lock
            names the process).
    """
    from helpers.data._store import folder_lock

    run_dir = Path(run_dir) if run_dir is not None else config.runs_dir("04_training")
    path = run_dir / "best.keras"
    # Two processes asking at once (lessons 05 and 09 side by side, two graders) train one
    # model: the second waits and loads it, never a file that the first is still writing.
    with folder_lock(run_dir, timeout=3600):
        if path.is_file():
            return load_model(path)
        print(f"No trained model at {path}: training the reference recipe (a few minutes) ...")
        model, _ = train_cxr_reference(run_dir=run_dir, pairs=pairs, verbose=verbose, **overrides)
    return model
