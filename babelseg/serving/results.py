"""Recent predictions kept in memory, and what the page reads from them: the scores under
one pixel (hover) and one class's score map (heat map).

Both read the stride-4 scores through the same bilinear upsampling (by exactly 4, pixel
centres aligned) that produced the label map (``babelseg.inference.full_resolution``), so the
top label under a pixel is the label shown there.
"""

from __future__ import annotations

import io
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image

from babelseg.inference.full_resolution import probabilities
from babelseg.inference.result import SegmentationResult
from babelseg.inference.windows import STRIDE
from babelseg.serving.uploads import UploadRejected

HEAT_KINDS = ("score", "probability")
"""``score``: the recipe's class score; ``probability``: the scores normalised over the
vocabulary (softmax for per-pixel recipes, class masses for mask recipes)."""


@dataclass(frozen=True)
class StoredResult:
    """What hover and heat maps need of one prediction.

    Attributes:
        scores: ``float32[K, ceil(H/4), ceil(W/4)]`` class scores on the model's stride-4 grid.
        size: ``(H, W)`` of the image.
        names: The K class names.
        normalisation: How scores become probabilities (``softmax`` or ``sum``).
    """

    scores: torch.Tensor
    size: tuple[int, int]
    names: list[str]
    normalisation: str

    @classmethod
    def of(cls, result: SegmentationResult) -> StoredResult:
        """What to keep of an API result (not its image)."""
        return cls(
            scores=result.scores.float().cpu(),
            size=tuple(result.label_map.shape),
            names=list(result.labels),
            normalisation=result.normalisation,
        )

    @property
    def nbytes(self) -> int:
        return self.scores.element_size() * self.scores.numel()


class ResultStore:
    """A thread-safe least-recently-used store bounded by the bytes of its scores.

    Args:
        max_bytes: Total score bytes kept; the oldest results are dropped beyond it (a single
            larger result is not kept at all).
    """

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, StoredResult] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, result: StoredResult) -> str | None:
        """Keep ``result``; returns its id, or None when it alone exceeds the budget."""
        if result.nbytes > self.max_bytes:
            return None
        key = uuid.uuid4().hex
        with self._lock:
            self._items[key] = result
            while sum(r.nbytes for r in self._items.values()) > self.max_bytes:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> StoredResult:
        """The result ``key``; UploadRejected 404 when unknown or dropped."""
        with self._lock:
            if key not in self._items:
                raise UploadRejected(
                    404,
                    f"Result '{key}' is not (or no longer) kept by this server; predict the "
                    "image again.",
                )
            self._items.move_to_end(key)
            return self._items[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def _source_coordinate(position: int, n_in: int) -> tuple[int, int, float]:
    """``(i0, i1, w1)`` of upsampling ``n_in`` cells by exactly ``STRIDE`` (bilinear,
    ``align_corners=False``) at output index ``position``."""
    src = max((position + 0.5) / STRIDE - 0.5, 0.0)
    i0 = min(int(np.floor(src)), n_in - 1)
    return i0, min(i0 + 1, n_in - 1), src - i0


def scores_at(result: StoredResult, *, x: int, y: int) -> torch.Tensor:
    """``float[K]`` class scores under image pixel ``(x, y)`` (column, row).

    Raises:
        UploadRejected: 400 when the pixel is outside the image.
    """
    height, width = result.size
    if not (0 <= x < width and 0 <= y < height):
        raise UploadRejected(
            400, f"Pixel ({x}, {y}) is outside the {width}x{height} image (x < width, y < height)."
        )
    _, h, w = result.scores.shape
    y0, y1, wy = _source_coordinate(y, h)
    x0, x1, wx = _source_coordinate(x, w)
    s = result.scores
    top = (1 - wx) * s[:, y0, x0] + wx * s[:, y0, x1]
    bottom = (1 - wx) * s[:, y1, x0] + wx * s[:, y1, x1]
    return (1 - wy) * top + wy * bottom


def top_labels(result: StoredResult, *, x: int, y: int, top: int) -> list[dict]:
    """The ``top`` classes under a pixel, best first: index, name, score, probability."""
    scores = scores_at(result, x=x, y=y)
    probs = probabilities(scores.double(), result.normalisation)
    values, indices = scores.topk(min(max(top, 1), len(scores)))
    return [
        {
            "index": int(k),
            "name": result.names[int(k)],
            "score": float(v),
            "probability": float(probs[int(k)]),
        }
        for v, k in zip(values, indices)
    ]


def heat_map(result: StoredResult, *, class_index: int, kind: str) -> tuple[bytes, float, float]:
    """One class's map at the image's resolution as a PNG (colour map ``inferno``).

    Args:
        result: The prediction.
        class_index: Which class (0..K-1).
        kind: ``"score"`` (stretched from its minimum to its maximum) or ``"probability"``
            (0 to 1).
    Returns:
        ``(png_bytes, low, high)``: the image and the values its darkest and brightest colours
        stand for.
    Raises:
        UploadRejected: 400 for an unknown class or kind.
    """
    k = len(result.names)
    if not 0 <= class_index < k:
        raise UploadRejected(400, f"class_index {class_index} is outside 0..{k - 1}.")
    if kind not in HEAT_KINDS:
        raise UploadRejected(400, f"kind must be one of {list(HEAT_KINDS)}, got '{kind}'.")
    if kind == "probability":
        channel = probabilities(result.scores, result.normalisation)[class_index]
    else:
        channel = result.scores[class_index]
    height, width = result.size
    up = F.interpolate(channel[None, None], scale_factor=STRIDE, mode="bilinear")
    values = up[0, 0, :height, :width].cpu().numpy()
    if kind == "probability":
        low, high = 0.0, 1.0
    else:
        low, high = float(values.min()), float(values.max())
    unit = (values - low) / (high - low) if high > low else np.zeros_like(values)
    rgb = colormaps["inferno"](np.clip(unit, 0.0, 1.0), bytes=True)[..., :3]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG")
    return buffer.getvalue(), low, high
