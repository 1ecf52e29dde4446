"""Class scores of images of any size: whole, sliding-window or resized, with flip and
multi-scale test-time augmentation.

Every mode returns the scores on the model's stride-4 grid of the ORIGINAL image,
``float[K, ceil(H/4), ceil(W/4)]``, where cell ``(i, j)`` covers pixels ``[4i, 4i+4) x [4j,
4j+4)`` (the grid of :class:`~babelseg.models.pixel_model.PixelEmbeddingModel`), so they can be
averaged across modes and augmentations and upsampled once at the end.

- ``whole``: the image in one forward pass (images of one size are batched together);
- ``slide``: windows of ``window x window`` pixels every ``stride`` pixels; window origins are
  multiples of 4, so each window's cells land exactly on the image's grid and overlapping scores
  are averaged (mmsegmentation's ``slide`` mode). Only the uint8 image and the stride-4 score
  grid are held for the whole image; the network sees one batch of windows at a time, so its
  memory is bounded by the window, not the image;
- ``resize``: the image resized so its shorter side is ``size`` (the longer side at most
  ``max_size``), predicted whole, scores resized back (detectron2's resize-then-predict).

``flip`` averages the scores of the horizontally mirrored input (mirrored back), ``scales``
averages over resized copies of the input (each predicted in the chosen mode).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from babelseg.data.collate import normalize_image

STRIDE = 4
"""Output stride of every babelseg model: one score cell per 4 x 4 pixels."""

MODES = ("whole", "slide", "resize")

LogitsFn = Callable[[torch.Tensor], torch.Tensor]
"""``images float[B, 3, h, w]`` (h, w multiples of 4, on the model's device) ->
``float[B, K, h/4, w/4]`` class scores."""


@dataclass(frozen=True)
class InferenceOptions:
    """How to predict an image (see the module docstring).

    Attributes:
        mode: ``whole``, ``slide`` or ``resize``.
        window: Slide: window side in pixels (a multiple of 4).
        stride: Slide: step between windows in pixels (a multiple of 4, at most ``window``).
        size: Resize: the shorter side after resizing.
        max_size: Resize: the longest the longer side may become.
        flip: Also predict the mirrored image and average.
        scales: Resize factors whose predictions are averaged (1.0 = as given).
        batch_size: Images (whole, resize) or windows (slide) per forward pass.
    """

    mode: str = "whole"
    window: int = 512
    stride: int = 384
    size: int = 512
    max_size: int = 1024
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    batch_size: int = 4

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Unknown mode '{self.mode}'; valid modes: {list(MODES)}.")
        for name in ("window", "stride"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < STRIDE or value % STRIDE:
                raise ValueError(
                    f"{name} must be a positive multiple of {STRIDE} (the model's output "
                    f"stride), got {value!r}; e.g. window=512, stride=384."
                )
        if self.stride > self.window:
            raise ValueError(
                f"stride {self.stride} is larger than window {self.window}: pixels between "
                "windows would get no prediction. Use stride <= window."
            )
        if self.size < 1 or self.max_size < self.size:
            raise ValueError(
                f"resize needs 1 <= size <= max_size, got size={self.size}, "
                f"max_size={self.max_size}."
            )
        scales = tuple(float(s) for s in self.scales)
        if not scales or any(not math.isfinite(s) or s <= 0 for s in scales):
            raise ValueError(
                f"scales must be positive numbers, e.g. (0.75, 1.0, 1.25); got {scales}."
            )
        object.__setattr__(self, "scales", scales)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}.")

    @property
    def single_pass(self) -> bool:
        """One forward pass of the image as given (no slide, resize or augmentation)."""
        return self.mode == "whole" and not self.flip and self.scales == (1.0,)


def grid_size(height: int, width: int) -> tuple[int, int]:
    """The stride-4 score grid ``(ceil(H/4), ceil(W/4))`` of an ``H x W`` image."""
    return -(-height // STRIDE), -(-width // STRIDE)


def network_input(pixels: np.ndarray) -> torch.Tensor:
    """``uint8[h, w, 3]`` -> normalised ``float[3, h', w']``, zero-padded at the bottom and right
    to multiples of 4 (the padding the model itself applies)."""
    x = normalize_image(pixels)
    pad_h, pad_w = (-x.shape[1]) % STRIDE, (-x.shape[2]) % STRIDE
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


def _forward(fn: LogitsFn, x: torch.Tensor, flip: bool) -> torch.Tensor:
    """``fn(x)`` as float on the CPU, averaged with the mirrored prediction when ``flip``."""
    out = fn(x).float()
    if flip:
        out = (out + fn(x.flip(-1)).float().flip(-1)) / 2
    return out.cpu()


def window_origins(length: int, window: int, stride: int) -> list[int]:
    """Window starts along one side: multiples of 4, the last window ending at the side's end
    (rounded up to a multiple of 4)."""
    padded = -(-length // STRIDE) * STRIDE
    if padded <= window:
        return [0]
    count = -(-(padded - window) // stride) + 1
    return sorted({min(i * stride, padded - window) for i in range(count)})


def slide_scores(
    pixels: np.ndarray, fn: LogitsFn, *, options: InferenceOptions, device: torch.device
) -> torch.Tensor:
    """Sliding-window scores of one image.

    Args:
        pixels: ``uint8[H, W, 3]``.
        fn: The network's scores (see :data:`LogitsFn`).
        options: Window, stride, flip and batch size.
        device: Where ``fn`` runs.
    Returns:
        ``float[K, ceil(H/4), ceil(W/4)]`` on the CPU: each cell the mean over the windows that
        cover it.
    """
    height, width = pixels.shape[:2]
    gh, gw = grid_size(height, width)
    win_h, win_w = min(options.window, gh * STRIDE), min(options.window, gw * STRIDE)
    boxes = [
        (y, x)
        for y in window_origins(height, win_h, options.stride)
        for x in window_origins(width, win_w, options.stride)
    ]
    total: torch.Tensor | None = None
    count = torch.zeros((gh, gw), dtype=torch.float32)
    for start in range(0, len(boxes), options.batch_size):
        chunk = boxes[start : start + options.batch_size]
        crops = torch.stack([network_input(pixels[y : y + win_h, x : x + win_w]) for y, x in chunk])
        out = _forward(fn, crops.to(device), options.flip)
        if total is None:
            total = torch.zeros((out.shape[1], gh, gw), dtype=torch.float32)
        for (y, x), scores in zip(chunk, out):
            cells = (
                slice(y // STRIDE, (y + win_h) // STRIDE),
                slice(x // STRIDE, (x + win_w) // STRIDE),
            )
            total[(slice(None), *cells)] += scores
            count[cells] += 1
    assert total is not None
    return total.div_(count)


def resize_rgb(pixels: np.ndarray, factor: float) -> np.ndarray:
    """``uint8[H, W, 3]`` resized by ``factor`` (bilinear, antialiased when shrinking)."""
    height, width = pixels.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    if size == (width, height):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))


def resize_factor(height: int, width: int, options: InferenceOptions) -> float:
    """The factor of ``resize`` mode: shorter side to ``size``, longer side at most
    ``max_size``; 1.0 in the other modes."""
    if options.mode != "resize":
        return 1.0
    return min(options.size / min(height, width), options.max_size / max(height, width))


def _to_grid(scores: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``float[B, K, h, w]`` resized (bilinear) to ``grid`` when it differs."""
    if tuple(scores.shape[-2:]) == tuple(grid):
        return scores
    return F.interpolate(scores, size=grid, mode="bilinear", align_corners=False)


def _slide_batch(
    images: Sequence[np.ndarray], fn: LogitsFn, *, options: InferenceOptions, device: torch.device
) -> torch.Tensor:
    """:func:`slide_scores` of each image, stacked without a second copy of one image's."""
    first = slide_scores(images[0], fn, options=options, device=device)
    if len(images) == 1:
        return first[None]
    out = torch.empty((len(images), *first.shape), dtype=first.dtype)
    out[0] = first
    del first
    for b in range(1, len(images)):
        out[b] = slide_scores(images[b], fn, options=options, device=device)
    return out


def batch_scores(
    images: Sequence[np.ndarray],
    fn: LogitsFn,
    *,
    options: InferenceOptions,
    device: torch.device,
) -> torch.Tensor:
    """Scores of images of ONE size, in the mode and with the augmentation of ``options``.

    Args:
        images: ``uint8[H, W, 3]`` each, all the same ``H x W``.
        fn: The network's scores (see :data:`LogitsFn`).
        options: Mode, windows, resizing, flip, scales.
        device: Where ``fn`` runs.
    Returns:
        ``float[B, K, ceil(H/4), ceil(W/4)]`` on the CPU.
    """
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f"batch_scores needs images of one size, got {sorted(shapes)}.")
    height, width = images[0].shape[:2]
    grid = grid_size(height, width)
    base = resize_factor(height, width, options)
    total: torch.Tensor | None = None
    for scale in options.scales:
        scaled = [resize_rgb(im, base * scale) for im in images]
        if options.mode == "slide":
            scores = _slide_batch(scaled, fn, options=options, device=device)
        else:
            x = torch.stack([network_input(im) for im in scaled]).to(device)
            scores = _forward(fn, x, options.flip)
        scores = _to_grid(scores, grid)
        total = scores if total is None else total.add_(scores)
    assert total is not None
    return total.div_(len(options.scales)) if len(options.scales) > 1 else total
