"""Why the course's kernels set ``TF_CPU_ALLOCATOR_USE_BFC=1``.

Trains the small 2D U-Net of lesson 07 (64 x 64 slices, depth 3, 8 base filters) for a few
epochs on random data, fed (1) as NumPy arrays and (2) from a ``keras.utils.PyDataset``,
each in a fresh Python process with TensorFlow's default CPU allocator and with its pooling
("BFC") allocator. Prints seconds per epoch, CPU time spent in the kernel (system time) and
each row's time as a ratio to the first row, measured in the same run. On a 2-core VM the
PyDataset rows with the default allocator spent about as much system time (page faults) as
user time. Timings on a shared machine are noisy: compare ratios, and run it twice.

    python benchmarks/cpu_allocator.py [--epochs 3] [--images 384]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

VARIANTS = [  # (label, feed, extra environment)
    ("arrays, default allocator", "arrays", {"TF_CPU_ALLOCATOR_USE_BFC": "0"}),
    ("PyDataset, default allocator", "pydataset", {"TF_CPU_ALLOCATOR_USE_BFC": "0"}),
    ("arrays, BFC allocator", "arrays", {"TF_CPU_ALLOCATOR_USE_BFC": "1"}),
    ("PyDataset, BFC allocator", "pydataset", {"TF_CPU_ALLOCATOR_USE_BFC": "1"}),
]


def _train(feed: str, epochs: int, images: int) -> dict[str, float]:
    """Child process: train once (warm-up epoch, then ``epochs`` timed ones) and return the
    wall-clock, user and system seconds of the timed part."""
    import resource
    import time

    import keras
    import numpy as np

    from helpers import losses, metrics, models

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((images, 64, 64, 1), dtype=np.float32)
    y = (rng.random((images, 64, 64, 1)) > 0.5).astype(np.float32)

    class Batches(keras.utils.PyDataset):
        def __init__(self, batch_size=16, **kwargs):
            super().__init__(**kwargs)
            self.batch_size = batch_size

        def __len__(self):
            return int(np.ceil(len(x) / self.batch_size))

        def __getitem__(self, index):
            chosen = slice(index * self.batch_size, (index + 1) * self.batch_size)
            return x[chosen], y[chosen]

    model = models.build_unet((64, 64, 1), depth=3, base_filters=8, dropout=0.1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=losses.bce_dice_loss,
                  metrics=[metrics.dice_coefficient])

    def fit(n_epochs):
        if feed == "arrays":
            model.fit(x, y, batch_size=16, epochs=n_epochs, verbose=0)
        else:
            model.fit(Batches(), epochs=n_epochs, verbose=0)

    fit(1)  # graph tracing
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fit(epochs)
    after, seconds = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - start
    return {"wall": seconds / epochs, "user": (after.ru_utime - before.ru_utime) / epochs,
            "system": (after.ru_stime - before.ru_stime) / epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=384)
    parser.add_argument("--child", choices=["arrays", "pydataset"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_train(args.child, args.epochs, args.images)))
        return

    from tqdm import tqdm

    rows = []
    for label, feed, extra in tqdm(VARIANTS, desc="variants", unit="process"):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}
        completed = subprocess.run(
            [sys.executable, __file__, "--child", feed, "--epochs", str(args.epochs),
             "--images", str(args.images)], env=env, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"{label} failed:\n{completed.stderr[-2000:]}")
        rows.append((label, json.loads(completed.stdout.strip().splitlines()[-1])))

    baseline = rows[0][1]["wall"]
    print(f"\n{'variant':<30} {'s/epoch':>8} {'user s':>7} {'system s':>9} {'ratio':>6}")
    for label, timing in rows:
        print(f"{label:<30} {timing['wall']:8.2f} {timing['user']:7.2f} {timing['system']:9.2f} "
              f"{timing['wall'] / baseline:6.2f}")
    print("\nratio: seconds per epoch relative to the first row, in this run.")


if __name__ == "__main__":
    main()
