"""The ``--mode``/``--window``/``--flip``/``--scales`` flags shared by ``predict`` and ``eval``."""

from __future__ import annotations

import argparse

MODE_EPILOG = """large images and test-time augmentation:
  --mode slide --window 512 --stride 384   windows of 512 px every 384 px, overlaps averaged;
                                           memory follows the window, not the image
  --mode resize --size 512 --max-size 1024 shorter side to 512 (longer side at most 1024)
  --flip --scales 0.75,1,1.25              average mirrored and resized predictions
Panoptic and instance outputs (and PQ / mask AP) come from one pass of the whole image, so
they are produced only with the default --mode whole and no --flip / --scales.
"""


def add_inference_arguments(p: argparse.ArgumentParser) -> None:
    """Add the inference-mode flags to a subcommand's parser."""
    g = p.add_argument_group("large images and test-time augmentation")
    g.add_argument(
        "--mode",
        choices=["whole", "slide", "resize"],
        default="whole",
        help="whole image in one pass (default), sliding windows, or resize-then-predict",
    )
    g.add_argument("--window", type=int, default=512, help="slide: window side in px (x4)")
    g.add_argument("--stride", type=int, default=384, help="slide: step in px (x4, <= window)")
    g.add_argument("--size", type=int, default=512, help="resize: shorter side in px")
    g.add_argument("--max-size", type=int, default=1024, help="resize: longest longer side")
    g.add_argument("--flip", action="store_true", help="average with the mirrored image")
    g.add_argument(
        "--scales",
        default="1",
        help='comma-separated resize factors to average, e.g. "0.75,1,1.25" (default 1)',
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=4,
        help="windows (slide) or images per forward pass (default 4)",
    )


def inference_options(args: argparse.Namespace):
    """The :class:`~babelseg.inference.windows.InferenceOptions` the flags ask for.

    Raises:
        ValueError: a malformed ``--scales`` or an invalid combination (the message names it).
    """
    from babelseg.inference.windows import InferenceOptions

    try:
        scales = tuple(float(s) for s in str(args.scales).split(",") if s.strip())
    except ValueError as e:
        raise ValueError(
            f'--scales must be comma-separated numbers, e.g. "0.75,1,1.25": {e}'
        ) from e
    return InferenceOptions(
        mode=args.mode,
        window=args.window,
        stride=args.stride,
        size=args.size,
        max_size=args.max_size,
        flip=args.flip,
        scales=scales,
        batch_size=args.batch_size,
    )
