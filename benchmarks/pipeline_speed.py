"""How much does reading batches from disk cost compared with training on them?

Prints, for the default chest X-ray set at the course's training size, the time per batch of
(1) indexing arrays already in memory (the baseline), (2) ``SegmentationDataset`` reading
PNGs per batch, (3) the same with augmentation, and (4) one training step of the reference
U-Net, each as a ratio to the baseline measured in the same run. Timings on a shared
machine are noisy: compare the ratios, not the seconds.

    python benchmarks/pipeline_speed.py [--batches 20] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import os
import time


def _per_batch(function, repeats: int) -> float:
    function(0)  # warm-up (imports, graph tracing)
    start = time.perf_counter()
    for index in range(repeats):
        function(index)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    import numpy as np

    from helpers.tools import kernels

    kernels.apply_kernel_env()  # TensorFlow settings of the lessons' kernels
    from helpers import config, data, generator, losses, metrics, models

    pairs = data.load_pairs(data.ensure_dataset("cxr_synthetic"))
    size = (config.CXR_TRAIN_SIZE,) * 2
    plain = generator.SegmentationDataset(pairs, batch_size=args.batch_size, image_size=size, shuffle=False)
    augmented = generator.SegmentationDataset(pairs, batch_size=args.batch_size, image_size=size,
                                              shuffle=False, augment=True)
    n = min(args.batches, len(plain))
    preloaded = [plain[i] for i in range(n)]
    x_all = np.concatenate([x for x, _ in preloaded])
    y_all = np.concatenate([y for _, y in preloaded])

    def in_memory(i):
        j = (i % n) * args.batch_size
        return x_all[j:j + args.batch_size].copy(), y_all[j:j + args.batch_size].copy()

    model = models.build_unet(size + (1,))
    model.compile(optimizer="adam", loss=losses.bce_dice_loss, metrics=[metrics.dice_coefficient])

    def train_step(i):
        x, y = preloaded[i % n]
        model.train_on_batch(x, y)

    rows = [
        ("arrays in memory (baseline)", _per_batch(in_memory, n)),
        ("SegmentationDataset, PNG per batch", _per_batch(lambda i: plain[i % n], n)),
        ("  ... with augmentation", _per_batch(lambda i: augmented[i % n], n)),
        ("one training step of build_unet()", _per_batch(train_step, max(3, n // 4))),
    ]
    baseline = rows[0][1]
    print(f"batch of {args.batch_size} at {size[0]}x{size[1]}, {n} batches, {os.cpu_count()} CPUs")
    print(f"{'what':40s} {'ms/batch':>10s} {'x baseline':>11s}")
    for name, seconds in rows:
        print(f"{name:40s} {seconds * 1000:10.2f} {seconds / baseline:11.1f}")
    reading, step = rows[2][1], rows[3][1]
    print(f"\nreading + augmenting a batch costs {reading / step:.2f} of a training step")


if __name__ == "__main__":
    main()
