"""How fast is sliding-window inference over a full-size CT, and how much does the windowing
itself cost?

Predicts one volume of ``--shape`` (default 512 x 512 x 128, a chest CT at its own grid) with
``inference.sliding_window`` and a residual 3D U-Net of lesson 06's size on ``--patch``
windows, then prints, all measured in this run:

* the seconds per volume and the number of windows;
* the **efficiency**: the ideal time (number of window forwards x the time of one window in
  a batched forward, measured alone) over the real time; 1.0 means padding, blending and
  accumulating cost nothing;
* the ratio to one whole-volume forward pass of the same network (same weights), on a
  smaller ``--whole-shape`` volume where the whole volume fits in memory, against the
  sliding window over that same volume.

Timings on a shared machine are noisy: compare the ratios, not the seconds, and say whether
the machine was idle.

    python benchmarks/sliding_window.py [--shape 512 512 128] [--patch 64 64 32] [--overlap 0.5]
"""

from __future__ import annotations

import argparse
import time


def _seconds(function, repeats: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 128])
    parser.add_argument("--patch", type=int, nargs=3, default=[64, 64, 32])
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--whole-shape", type=int, nargs=3, default=[128, 128, 64])
    args = parser.parse_args(argv)

    import numpy as np

    from helpers.tools import kernels

    kernels.apply_kernel_env()  # TensorFlow settings of the lessons' kernels
    import keras

    from helpers import config, inference, models

    keras.utils.set_random_seed(config.SEED)
    patch = tuple(args.patch)
    model = models.build_unet(patch + (1,), depth=3, base_filters=8, dropout=0.0, block="residual")
    rng = np.random.default_rng(config.SEED)
    volume = rng.random(tuple(args.shape), dtype=np.float32)

    batch = rng.random((args.batch_size,) + patch + (1,), dtype=np.float32)
    model.predict_on_batch(batch)                                  # warm-up: graph, allocator
    per_batch = _seconds(lambda: model.predict_on_batch(batch), repeats=5)
    windows = len(inference.window_positions(volume.shape, patch, args.overlap))
    forwards = -(-windows // args.batch_size) * args.batch_size    # the last batch is filled up
    ideal = forwards / args.batch_size * per_batch
    real = _seconds(lambda: inference.sliding_window(model, volume, patch, overlap=args.overlap,
                                                     batch_size=args.batch_size, progress=False))

    print(f"volume {tuple(args.shape)}, patch {patch}, overlap {args.overlap}, batch {args.batch_size}: "
          f"{windows} windows")
    print(f"sliding window: {real:.1f} s per volume; ideal {ideal:.1f} s "
          f"({per_batch * 1000:.0f} ms per batch of {args.batch_size}); efficiency {ideal / real:.2f}")

    whole_shape = tuple(max(size, window) for size, window in zip(args.whole_shape, patch))  # at least one window
    whole_model = models.build_unet(whole_shape + (1,), depth=3, base_filters=8, dropout=0.0, block="residual")
    whole_model.set_weights(model.get_weights())
    small = rng.random(whole_shape, dtype=np.float32)
    whole_model.predict_on_batch(small[None, ..., None])            # warm-up
    whole = _seconds(lambda: whole_model.predict_on_batch(small[None, ..., None]), repeats=2)
    windowed = _seconds(lambda: inference.sliding_window(model, small, patch, overlap=args.overlap,
                                                         batch_size=args.batch_size, progress=False))
    print(f"volume {whole_shape}: one whole-volume forward {whole:.2f} s, sliding window {windowed:.2f} s "
          f"({windowed / whole:.1f}x the whole-volume pass; overlap {args.overlap} computes each voxel "
          f"about {len(inference.window_positions(whole_shape, patch, args.overlap)) * np.prod(patch) / np.prod(whole_shape):.1f} times)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
