"""Tests of the tf.distribute part of helpers/training.py: strategy choice, batch and
learning-rate rule, MirroredStrategy over two logical CPU devices, and a two-worker
MultiWorkerMirroredStrategy run on 127.0.0.1.

Logical devices must be configured before TensorFlow initialises, and a multi-worker
strategy must be the first TensorFlow work of its process, so those runs happen in fresh
Python subprocesses. Tiny U-Nets on 16×16 images: seconds each.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import training
from helpers.tools import kernels

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Common to the subprocess scripts: fixed data and a tiny U-Net without batch norm (with
#: batch norm each replica normalises its own half batch, which changes the loss a little).
_COMMON = """
import json, sys
import numpy as np
rng = np.random.default_rng(0)
x = rng.random((32, 16, 16, 1)).astype("float32")
y = (x > 0.5).astype("float32")

def tiny_unet():
    from helpers import models
    return models.build_unet((16, 16, 1), depth=2, base_filters=4, batch_norm=False, dropout=0.0)
"""

_MIRRORED = _COMMON + """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from helpers import losses, training

def one_epoch(chosen, weights):
    training.use_strategy(chosen)        # what training.strategy() would pick on a 2-GPU machine
    model = tiny_unet()                  # built in training.distribution_scope(), as in the lessons
    assert model.distribute_strategy is training.strategy(), model.distribute_strategy
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=losses.bce_dice_loss)   # as in lesson 04
    start = model.get_weights()
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return start, history.history["loss"][0], float(model.evaluate(x, y, batch_size=8, verbose=0))

start, loss_1, after_1 = one_epoch(None, None)
mirrored = training.choose_strategy(["/cpu:0", "/cpu:1"])
_, loss_2, after_2 = one_epoch(mirrored, start)
print(json.dumps({"strategy": type(mirrored).__name__, "replicas": training.replicas(mirrored),
                  "loss_one_device": loss_1, "loss_two_devices": loss_2,
                  "after_one_device": after_1, "after_two_devices": after_2,
                  "policy": keras.config.dtype_policy().name}))
"""

_WORKER = _COMMON + """
from pathlib import Path
from helpers import training
chosen = training.strategy()             # first TensorFlow work of the process
import keras
import tensorflow as tf
from helpers import losses
run_dir = Path(sys.argv[1])
keras.utils.set_random_seed(0)
model = tiny_unet()
model.compile(optimizer=keras.optimizers.SGD(0.5), loss=losses.bce_dice_loss)
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(training.global_batch_size(4))
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
history = training.fit_multi_worker(model, data.with_options(options), epochs=1, run_dir=run_dir)
print(json.dumps({"multi_worker": isinstance(chosen, tf.distribute.MultiWorkerMirroredStrategy),
                  "replicas": training.replicas(chosen), "chief": training.is_chief(), "loss": history[0]}))
"""


def _env(**extra: str) -> dict[str, str]:
    env = kernels.kernel_env()
    env.pop("TF_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _last_json(completed: subprocess.CompletedProcess) -> dict:
    assert completed.returncode == 0, f"exit {completed.returncode}:\n{completed.stderr[-4000:]}"
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _free_ports(n: int) -> list[int]:
    sockets = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# --------------------------------------------------------------------------- pure functions

def test_cluster_workers_reads_tf_config():
    spec = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
    assert training.cluster_workers(json.dumps(spec)) == 2
    assert training.cluster_workers("") == 0
    with_chief = {"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}
    assert training.cluster_workers(json.dumps(with_chief)) == 2
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        training.cluster_workers("{worker: a}")
    with pytest.raises(ValueError, match="needs a 'cluster'"):
        training.cluster_workers(json.dumps({"task": {"type": "worker"}}))


def test_is_chief():
    spec = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}
    assert training.is_chief(json.dumps(spec))
    spec["task"]["index"] = 1
    assert not training.is_chief(json.dumps(spec))
    with_chief = {"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}
    assert not training.is_chief(json.dumps(with_chief))
    assert training.is_chief("")


def test_batch_and_learning_rate_rule():
    assert training.global_batch_size(8, 1) == 8
    assert training.global_batch_size(8, 4) == 32
    assert training.scaled_learning_rate(3e-3, 1) == pytest.approx(3e-3)
    assert training.scaled_learning_rate(3e-3, 4) == pytest.approx(6e-3)            # sqrt rule (Adam)
    assert training.scaled_learning_rate(0.1, 4, rule="linear") == pytest.approx(0.4)
    assert training.scaled_learning_rate(0.1, 4, rule="none") == pytest.approx(0.1)
    assert training.LEARNING_RATE_RULE == "sqrt"
    assert training.scaled_learning_rate(1.0, 2) == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="rule must be one of"):
        training.scaled_learning_rate(1.0, 2, rule="cubic")
    with pytest.raises(ValueError, match="must be >= 1"):
        training.global_batch_size(0, 2)


def test_one_device_keeps_the_default_strategy_and_float32(monkeypatch):
    import keras
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has a GPU: the one-device defaults are tested on CPU machines")
    chosen = training.choose_strategy()
    assert chosen is tf.distribute.get_strategy()
    assert training.replicas(chosen) == 1
    with training.distribution_scope() as scoped:
        assert scoped.num_replicas_in_sync == 1
    assert keras.config.dtype_policy().name == "float32"


# --------------------------------------------------------------------------- real strategies

@pytest.mark.slow
def test_mirrored_two_cpu_devices_gives_the_one_device_loss():
    completed = subprocess.run([sys.executable, "-c", _MIRRORED], cwd=REPO_ROOT, env=_env(),
                               capture_output=True, text=True, timeout=300)
    result = _last_json(completed)
    assert result["strategy"] == "MirroredStrategy" and result["replicas"] == 2
    assert result["policy"] == "float32", "mixed precision must stay off on CPUs"
    # Same data, same initial weights, same global batch: the gradients are the mean over
    # the batch either way, so the epoch's loss and the weights after it agree.
    assert result["loss_two_devices"] == pytest.approx(result["loss_one_device"], rel=1e-3, abs=1e-4)
    assert result["after_two_devices"] == pytest.approx(result["after_one_device"], rel=1e-3, abs=1e-4)


@pytest.mark.slow
def test_two_workers_on_localhost_train_and_write_one_checkpoint(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    run_dir = tmp_path / "run"
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen([sys.executable, "-c", _WORKER, str(run_dir)], cwd=REPO_ROOT,
                                          env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=300)
            results.append(_last_json(subprocess.CompletedProcess(process.args, process.returncode,
                                                                  stdout, stderr)))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert [r["multi_worker"] for r in results] == [True, True]
    assert [r["replicas"] for r in results] == [2, 2]
    assert [r["chief"] for r in results] == [True, False]
    assert all(math.isfinite(r["loss"]) for r in results)
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-5), \
        "synchronous training: both workers must log the same loss"
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.keras"]
    model = training.load_model(run_dir / "checkpoint.keras", compile=False)
    assert model.output_shape == (None, 16, 16, 1)
