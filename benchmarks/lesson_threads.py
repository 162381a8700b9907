"""Why ``python -m helpers course`` runs two lessons at a time with one CPU thread each.

Trains two of the course's networks on random data, each in a fresh Python process: the
chest X-ray recipe's U-Net of lessons 04-05 (128 x 128, depth 4, 8 base filters, batch 8)
and lesson 08's four-class U-Net (64 x 64 x 4 channels, depth 3, 16 base filters, batch 16).
Three ways per network:

1. alone, with TensorFlow's default threads (every CPU);
2. alone, with one thread (``TF_NUM_INTRAOP_THREADS=1``, ``TF_NUM_INTEROP_THREADS=1``);
3. two one-thread processes side by side, as ``course --jobs 2`` runs two lessons.

Prints seconds per epoch and the work done per second relative to row 1 (two processes side
by side do two epochs in their time), measured in the same run. On the 2-core VM the course
is developed on, the second thread made an epoch only a few per cent faster, while two
one-thread runs side by side did close to twice the work per second. Timings on a shared
machine are noisy: compare ratios, and run it twice.

    python benchmarks/lesson_threads.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

NETWORKS = ("cxr_recipe", "brain_08")
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}


def _train(network: str, epochs: int) -> float:
    """Child process: build ``network``, train a warm-up epoch (graph tracing), then return
    the wall-clock seconds per epoch of ``epochs`` timed ones."""
    import time

    import keras
    import numpy as np

    from helpers import losses, metrics, models

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    if network == "cxr_recipe":
        x = rng.random((280, 128, 128, 1), dtype=np.float32)
        y = (rng.random((280, 128, 128, 1)) > 0.5).astype(np.float32)
        model = models.build_unet((128, 128, 1), depth=4, base_filters=8, batch_norm=True, dropout=0.0)
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=losses.bce_dice_loss,
                      metrics=[metrics.dice_coefficient])
        batch_size = 8
    else:
        x = rng.normal(size=(576, 64, 64, 4)).astype(np.float32)
        y = keras.utils.to_categorical(rng.integers(0, 4, size=(576, 64, 64)), 4).astype(np.float32)
        model = models.build_unet((64, 64, 4), n_classes=4, depth=3, base_filters=16, dropout=0.1)
        model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="categorical_crossentropy",
                      metrics=[metrics.multiclass_dice])
        batch_size = 16
    model.fit(x[: batch_size * 4], y[: batch_size * 4], batch_size=batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    return (time.perf_counter() - start) / epochs


def _start(network: str, epochs: int, extra: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CPU_ALLOCATOR_USE_BFC": "1", **extra}
    return subprocess.Popen([sys.executable, __file__, "--child", network, "--epochs", str(epochs)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _seconds(process: subprocess.Popen, label: str) -> float:
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{stderr[-2000:]}")
    return float(json.loads(stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--child", choices=NETWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_train(args.child, args.epochs)))
        return

    from tqdm import tqdm

    print(f"{os.cpu_count()} CPUs; {args.epochs} timed epochs per run")
    rows = []
    with tqdm(total=len(NETWORKS) * 3, desc="runs", unit="run") as progress:
        for network in NETWORKS:
            alone = _seconds(_start(network, args.epochs, {}), f"{network}, default threads")
            progress.update()
            one = _seconds(_start(network, args.epochs, ONE_THREAD), f"{network}, one thread")
            progress.update()
            pair = [_start(network, args.epochs, ONE_THREAD) for _ in range(2)]
            side_by_side = [_seconds(process, f"{network}, side by side") for process in pair]
            progress.update()
            rows += [(network, "alone, default threads", alone, 1.0),
                     (network, "alone, one thread", one, alone / one),
                     (network, "two side by side, one thread each", max(side_by_side),
                      2 * alone / max(side_by_side))]
    print(f"\n{'network':<11} {'how':<34} {'s/epoch':>8} {'work/s':>7}")
    for network, how, seconds, throughput in rows:
        print(f"{network:<11} {how:<34} {seconds:8.2f} {throughput:7.2f}")
    print("\nwork/s: epochs completed per second relative to the network's first row, in this run "
          "(two side by side complete two epochs in their time).")


if __name__ == "__main__":
    main()
