"""Devices: which ``tf.distribute`` strategy trains the models, and the batch and
learning-rate rule that goes with it.

* :func:`choose_strategy` picks the strategy: ``MultiWorkerMirroredStrategy`` when
  ``TF_CONFIG`` describes a cluster of two or more workers, ``MirroredStrategy`` over the
  visible GPUs when there are two or more, else TensorFlow's default strategy (one device,
  nothing changes). :func:`strategy` chooses once per process and, on GPUs, turns on mixed
  precision (``mixed_float16``; the U-Net's output layer and the losses stay float32).
* :func:`distribution_scope` is the scope in which models are built:
  :func:`helpers.models.build_unet` and :func:`helpers.training.load_model` use it, so the
  lessons' cells train on all GPUs of a machine without a change (on a cluster,
  :func:`fit_multi_worker` replaces ``model.fit``, which Keras 3 cannot run under
  ``MultiWorkerMirroredStrategy``).
* :func:`global_batch_size` and :func:`scaled_learning_rate` state the batch and
  learning-rate rule: the recipe's ``batch_size`` is per replica, the global batch is
  ``batch_size × replicas``, and Adam's learning rate grows with the square root of the
  number of replicas (:data:`LEARNING_RATE_RULE`).

It sits below :mod:`helpers.models` in the pipeline (models are built in its scope);
:mod:`helpers.training` re-exports every name, so ``training.strategy()`` and friends keep
working. TensorFlow is imported inside the functions, never at import time.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Sequence

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

__all__ = ["LEARNING_RATE_RULE", "MIXED_PRECISION_VARIABLE", "cluster_workers", "choose_strategy", "strategy",
           "use_strategy", "distribution_scope", "replicas", "is_chief", "global_batch_size",
           "scaled_learning_rate", "fit_multi_worker"]

#: The rules of :func:`scaled_learning_rate` (see :data:`LEARNING_RATE_RULE`).
LearningRateRule = Literal["sqrt", "linear", "none"]
#: How the learning rate follows the number of replicas when the global batch grows with
#: them: ``"sqrt"`` multiplies it by ``sqrt(replicas)`` (the rule for Adam, whose steps are
#: already normalised by the gradient's scale), ``"linear"`` by ``replicas`` (Goyal et al.,
#: 2017, for SGD with momentum, with a few epochs of warm-up), ``"none"`` keeps it.
LEARNING_RATE_RULE: LearningRateRule = "sqrt"

#: Environment variable that turns mixed precision off on GPUs (``0``); it is never used on CPUs.
MIXED_PRECISION_VARIABLE = "UNET_COURSE_MIXED_PRECISION"

_STRATEGY = None


def cluster_workers(tf_config: str | None = None) -> int:
    """Number of workers (chief included) that ``TF_CONFIG`` (default: the environment
    variable) describes; 0 when it is unset or empty.

    Raises ValueError naming the variable and the fix when it is not valid JSON or has no
    ``cluster`` / ``task`` entries.

    Args:
        tf_config: the ``TF_CONFIG`` JSON text; None reads the environment variable.

    Returns:
        The number of ``chief`` and ``worker`` hosts.

    Raises:
        ValueError: the text is not valid JSON, or lacks ``cluster`` or ``task``.
    """
    raw = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not raw.strip():
        return 0
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): set it to e.g. "
                         '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                         '"task": {"type": "worker", "index": 0}} or unset it.') from None
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster"), dict) or "task" not in spec:
        raise ValueError("TF_CONFIG needs a 'cluster' (job name -> list of host:port) and a 'task' "
                         "({'type': 'worker', 'index': i}); see docs/learner-guide.md, section 'GPU and clusters'.")
    return sum(len(spec["cluster"].get(job, [])) for job in ("chief", "worker"))


def choose_strategy(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """The ``tf.distribute.Strategy`` for this machine (a new one on every call).

    * ``TF_CONFIG`` describes two or more workers: ``MultiWorkerMirroredStrategy`` (each
      worker runs the same program; gradients are summed across workers every step).
    * ``devices`` (e.g. ``["/cpu:0", "/cpu:1"]``) names two or more devices, or two or more
      GPUs are visible: ``MirroredStrategy`` over them (one model copy per device).
    * otherwise TensorFlow's default strategy: one device, training as without any strategy.

    Multi-worker strategies must be created at the start of the program, before other
    TensorFlow work; :func:`strategy` creates one per process.

    Args:
        devices: the devices to mirror over; None: the visible GPUs.

    Returns:
        The strategy.

    Raises:
        ValueError: ``TF_CONFIG`` is set but invalid (:func:`cluster_workers`).
    """
    import tensorflow as tf

    if cluster_workers() >= 2:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices is None:
        devices = [device.name for device in tf.config.list_logical_devices("GPU")]
    if len(devices) >= 2:
        return tf.distribute.MirroredStrategy(devices=list(devices))
    return tf.distribute.get_strategy()


def _gpus_used(chosen) -> bool:
    import tensorflow as tf

    try:
        devices = [str(device) for device in chosen.extended.worker_devices]
    except RuntimeError:     # the default strategy: the one device TensorFlow picks (a GPU if any)
        return bool(tf.config.list_logical_devices("GPU"))
    return any("GPU" in device.upper() for device in devices)


def strategy() -> tf.distribute.Strategy:
    """The strategy of this process: :func:`choose_strategy` on the first call (made
    current with :func:`use_strategy`), the same object afterwards. When it trains on
    GPUs, Keras' global dtype policy becomes ``mixed_float16`` (float16 arithmetic, float32
    weights; ``compile`` adds loss scaling) unless ``UNET_COURSE_MIXED_PRECISION=0``; the
    U-Net's last layer is float32, so outputs, losses and metrics stay float32. On CPUs the
    policy stays ``float32``.

    Returns:
        The strategy of this process.

    Raises:
        ValueError: ``TF_CONFIG`` is set but invalid (:func:`cluster_workers`).
    """
    if _STRATEGY is None:
        chosen = choose_strategy()
        if _gpus_used(chosen) and os.environ.get(MIXED_PRECISION_VARIABLE, "1").strip() != "0":
            import keras

            keras.mixed_precision.set_global_policy("mixed_float16")
        use_strategy(chosen)
    return _STRATEGY


def use_strategy(chosen: tf.distribute.Strategy | None) -> None:
    """Make ``chosen`` the strategy of this process (:func:`strategy` returns it).

    A strategy other than the default one also becomes TensorFlow's current strategy
    (``tf.distribute.experimental_set_strategy``), as if the rest of the program ran
    inside ``with chosen.scope():``. That is what lets a notebook's cells train on every
    device unchanged: the optimizer that a cell creates (``keras.optimizers.Adam(...)``)
    must belong to the model's strategy. ``use_strategy(None)`` goes back to one device.

    Args:
        chosen: a strategy, or None for TensorFlow's default one.
    """
    import tensorflow as tf

    global _STRATEGY
    default = chosen is None or chosen is tf.distribute.get_strategy() and not tf.distribute.has_strategy()
    tf.distribute.experimental_set_strategy(None)
    if default:
        _STRATEGY = tf.distribute.get_strategy()
    else:
        tf.distribute.experimental_set_strategy(chosen)
        _STRATEGY = chosen


@contextlib.contextmanager
def distribution_scope() -> Iterator[tf.distribute.Strategy]:
    """Context in which to build (and compile) a model so that it trains on every device.

    Inside a scope that the caller opened (``with some_strategy.scope():``) it keeps that
    strategy; otherwise it opens :func:`strategy`'s scope. On one device this is
    TensorFlow's default strategy and changes nothing. Yields the strategy.

    Yields:
        The strategy in scope.
    """
    import tensorflow as tf

    if tf.distribute.has_strategy():
        yield tf.distribute.get_strategy()
        return
    chosen = strategy()
    with chosen.scope():
        yield chosen


def replicas(chosen: tf.distribute.Strategy | None = None) -> int:
    """Number of model copies trained in step (devices × workers) under ``chosen``
    (default: the strategy in scope, else :func:`strategy`).

    Args:
        chosen: a strategy, or None for the one in scope (else :func:`strategy`).

    Returns:
        ``chosen.num_replicas_in_sync``.
    """
    import tensorflow as tf

    if chosen is None:
        chosen = tf.distribute.get_strategy() if tf.distribute.has_strategy() else strategy()
    return int(chosen.num_replicas_in_sync)


def is_chief(tf_config: str | None = None) -> bool:
    """True for the worker that writes checkpoints and logs: always on one machine; in a
    ``TF_CONFIG`` cluster the ``chief`` task, or worker 0 when there is no chief.

    Args:
        tf_config: the ``TF_CONFIG`` JSON text; None reads the environment variable.

    Returns:
        Whether this process is the chief.

    Raises:
        ValueError: the ``TF_CONFIG`` text is invalid (:func:`cluster_workers`).
    """
    raw = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if cluster_workers(raw) < 2:
        return True
    spec = json.loads(raw)
    task = spec.get("task", {})
    if "chief" in spec["cluster"]:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def global_batch_size(per_replica: int, n_replicas: int | None = None) -> int:
    """The batch that ``fit`` receives: ``per_replica × replicas``. Each replica then
    computes on ``per_replica`` images, as on one device. ``n_replicas`` defaults to
    :func:`replicas`.

    Args:
        per_replica: images per replica.
        n_replicas: the number of replicas; None asks :func:`replicas`.

    Returns:
        ``per_replica × n_replicas``.

    Raises:
        ValueError: either number is below 1.
    """
    n = replicas() if n_replicas is None else int(n_replicas)
    if int(per_replica) < 1 or n < 1:
        raise ValueError(f"per_replica ({per_replica}) and replicas ({n}) must be >= 1.")
    return int(per_replica) * n


def scaled_learning_rate(learning_rate: float, n_replicas: int | None = None,
                         rule: LearningRateRule = LEARNING_RATE_RULE) -> float:
    """The learning rate for ``n_replicas`` (default :func:`replicas`) when the global batch
    is ``per_replica × n_replicas``: ``learning_rate × sqrt(n)`` (``rule="sqrt"``, Adam),
    ``× n`` (``"linear"``, SGD) or unchanged (``"none"``). One replica: unchanged.

    Args:
        learning_rate: the learning rate on one replica.
        n_replicas: the number of replicas; None asks :func:`replicas`.
        rule: ``"sqrt"``, ``"linear"`` or ``"none"``.

    Returns:
        The scaled learning rate.

    Raises:
        ValueError: an unknown ``rule``.
    """
    n = replicas() if n_replicas is None else int(n_replicas)
    factors = {"sqrt": math.sqrt(n), "linear": float(n), "none": 1.0}
    if rule not in factors:
        raise ValueError(f"rule must be one of {sorted(factors)}, got {rule!r}.")
    return float(learning_rate) * factors[rule]


def fit_multi_worker(model: keras.Model, dataset: Any, epochs: int, run_dir: str | Path,
                     chosen: tf.distribute.Strategy | None = None) -> list[float]:
    """Train a compiled ``model`` on ``dataset`` (a ``tf.data.Dataset`` of global batches)
    for ``epochs`` epochs under a ``MultiWorkerMirroredStrategy``; returns the mean loss
    of every epoch, the same on every worker.

    Keras 3's ``Model.fit`` stops with a ``ValueError`` under this strategy (it reduces
    each scalar log along an axis it does not have; keras-team/keras#20585), so this short
    loop does what ``fit`` would: each worker computes the loss and gradients on its share
    of the batch, the optimizer sums the gradients over workers (the course's losses are
    already divided by the number of replicas), every worker applies the same update. The
    chief (:func:`is_chief`) keeps ``run_dir/"checkpoint.keras"``, written after every epoch. Build
    and compile the model in :func:`distribution_scope` first.

    Args:
        model: a compiled Keras model, built in :func:`distribution_scope`.
        dataset: a ``tf.data.Dataset`` of ``(x, y)`` global batches.
        epochs: the number of epochs.
        run_dir: the folder of the chief's checkpoint.
        chosen: the strategy; None: :func:`strategy`.

    Returns:
        The mean loss of every epoch.
    """
    import tensorflow as tf

    chosen = chosen if chosen is not None else strategy()
    run_dir = Path(run_dir)
    loss_fn, optimizer = model.loss, model.optimizer
    with chosen.scope():
        optimizer.build(model.trainable_variables)

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function
    def train_step(x, y):
        return chosen.reduce("SUM", chosen.run(replica_step, args=(x, y)), axis=None)

    history = []
    for _ in range(int(epochs)):
        total, steps = 0.0, 0
        for x, y in chosen.experimental_distribute_dataset(dataset):
            total += float(train_step(x, y))
            steps += 1
        history.append(total / max(steps, 1))
        # Saving reads the variables with collective ops: every worker saves, the others
        # into a temporary folder that is removed at once.
        target = run_dir if is_chief() else Path(tempfile.mkdtemp(prefix="unet-course-worker-"))
        target.mkdir(parents=True, exist_ok=True)
        model.save(str(target / "checkpoint.keras"))
        if target != run_dir:
            shutil.rmtree(target, ignore_errors=True)
    return history
