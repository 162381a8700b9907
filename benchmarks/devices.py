"""Images per second of U-Net training on 1 and N devices (``tf.distribute``).

Trains the core lessons' U-Net (128 x 128, depth 4, 8 base filters, BCE + Dice) on random
images with (1) one device and (2) ``MirroredStrategy`` over N devices, at the same
per-replica batch (so the global batch of (2) is N times larger), and prints images per
second for both and their ratio, measured in the same run. Each case runs in a fresh
process because devices are configured before TensorFlow starts.

On a GPU machine N is the number of visible GPUs and the strategy is the one
``helpers.training.strategy()`` picks (mixed precision included). On a CPU-only machine N
logical CPU devices share the same cores: expect a ratio near or below 1 (the strategy's
overhead, no new hardware); the figure only shows that the path works.

    python benchmarks/devices.py [--devices 2] [--steps 20] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _child(n_devices: int, steps: int, batch: int) -> dict:
    """Train ``steps`` batches (after one warm-up epoch) and return images per second."""
    import time

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and n_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n_devices)
    import keras
    import numpy as np

    from helpers import losses, models, training

    kind = "GPU" if gpus else "CPU"
    devices = [d.name for d in tf.config.list_logical_devices(kind)][:n_devices]
    training.use_strategy(training.choose_strategy(devices) if n_devices > 1 else None)
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
    replicas = training.replicas(training.strategy())
    global_batch = training.global_batch_size(batch, replicas)
    rng = np.random.default_rng(0)
    x = rng.random((global_batch * steps, 128, 128, 1), dtype=np.float32)
    y = (x > 0.5).astype("float32")
    keras.utils.set_random_seed(0)
    model = models.build_unet((128, 128, 1), depth=4, base_filters=8, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(training.scaled_learning_rate(3e-3, replicas)),
                  loss=losses.bce_dice_loss)
    model.fit(x[:global_batch * 2], y[:global_batch * 2], batch_size=global_batch, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=global_batch, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    return {"devices": devices, "replicas": replicas, "global_batch": global_batch,
            "images_per_s": len(x) / seconds, "policy": keras.config.dtype_policy().name}


def _run(n_devices: int, steps: int, batch: int) -> dict:
    from helpers.tools import kernels

    env = kernels.kernel_env()
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    completed = subprocess.run([sys.executable, __file__, "--child", str(n_devices), "--steps", str(steps),
                                "--batch", str(batch)], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark child with {n_devices} device(s) failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=0,
                        help="N (default: the number of GPUs, or 2 logical CPU devices)")
    parser.add_argument("--steps", type=int, default=20, help="timed batches per case")
    parser.add_argument("--batch", type=int, default=8, help="images per replica per batch")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.steps, args.batch)))
        return 0
    sys.path.insert(0, str(REPO_ROOT))
    n = args.devices
    if n < 1:
        probe = subprocess.run([sys.executable, "-c", "import tensorflow as tf; "
                                "print(len(tf.config.list_physical_devices('GPU')))"],
                               capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        n = max(2, int(probe.stdout.strip().splitlines()[-1]))
    one = _run(1, args.steps, args.batch)
    many = _run(n, args.steps, args.batch)
    for row in (one, many):
        print(f"{row['replicas']} device(s) {row['devices']}: global batch {row['global_batch']:3d}, "
              f"{row['images_per_s']:7.1f} images/s ({row['policy']})")
    print(f"ratio {n} devices / 1 device: {many['images_per_s'] / one['images_per_s']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
