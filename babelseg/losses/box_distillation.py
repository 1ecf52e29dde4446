"""L_WD: box-level embedding distillation, for datasets annotated with boxes only.

SentenceLabels.txt eq. 6-7: the region of the pixel-embedding map under a box is RoI-pooled,
passed through a 1x1 convolution (here an ``nn.Linear`` after pooling, which is the same linear
map: the mean of ``W x + b`` is ``W mean(x) + b``), L2-normalised and pulled towards the
L2-normalised embedding a teacher gives the box, with an L1 distance:
``L_WD = 1/P sum_r ||v*_r - v_r||_1``.

Teachers (the target ``v*_r`` of a box):

- text (the offline default, no image model): the text embedding of the box's label,
  :func:`text_targets`;
- CLIP vision (the paper): the CLIP image embedding of the box crop,
  ``babelseg.labels.encoders.clip_vision.ClipVisionTeacher``.

RoI pooling without torchvision: ``pooled_size x pooled_size`` sample points at the centres of a
regular grid of bins over the box, read by bilinear interpolation
(``torch.nn.functional.grid_sample``) and averaged into one vector per box. This is RoIAlign
(``aligned=True``, one sample per bin) followed by a global average. A point samples the 2 x 2
nearest cells, so the samples stay inside the box when it spans at least ``pooled_size`` cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class BoxDistillationHead(nn.Module):
    """The paper's 1x1 convolution on pooled box embeddings, ``D_in -> D_out``.

    Args:
        dim_in: Pixel-embedding dimension D.
        dim_out: Teacher dimension (the CLIP projection dim P); ``dim_in`` when None.
        identity_start: A square head starts as the identity (the pooled embedding itself, so
            distillation starts from the model's own embedding space); False keeps
            ``nn.Linear``'s random initialisation (a fresh 1x1 convolution, as in the paper),
            which does not pull the pooled embedding itself towards the teacher from step 0.
            Non-square heads always start random.
    """

    def __init__(
        self, dim_in: int, dim_out: int | None = None, *, identity_start: bool = True
    ) -> None:
        super().__init__()
        dim_out = dim_in if dim_out is None else dim_out
        if int(dim_in) < 1 or int(dim_out) < 1:
            raise ValueError(f"BoxDistillationHead dims must be >= 1, got {dim_in} -> {dim_out}.")
        self.proj = nn.Linear(int(dim_in), int(dim_out))
        if identity_start and dim_in == dim_out:
            with torch.no_grad():
                self.proj.weight.copy_(torch.eye(int(dim_in)))
                self.proj.bias.zero_()

    @property
    def dim_in(self) -> int:
        return self.proj.in_features

    @property
    def dim_out(self) -> int:
        return self.proj.out_features

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """``pooled float[N, D_in]`` -> ``float[N, D_out]``."""
        return self.proj(pooled)


def text_targets(classes: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
    """The text teacher: each box's target is the text embedding of its label.

    Args:
        classes: ``int64[N]`` class index of each box in the dataset's label space.
        text_embeddings: ``float[K, D]`` that label space's text embeddings.
    Returns:
        ``float[N, D]`` targets (detached: the teacher is not trained by this loss).
    Raises:
        ValueError: a class index is outside ``[0, K)``.
    """
    classes = torch.as_tensor(classes, dtype=torch.long, device=text_embeddings.device).reshape(-1)
    k = text_embeddings.shape[0]
    if classes.numel() and (int(classes.min()) < 0 or int(classes.max()) >= k):
        bad = classes[(classes < 0) | (classes >= k)].unique().tolist()
        raise ValueError(
            f"Box classes {bad} are outside the label space of {k} classes; the boxes must use "
            "the class indices of the dataset's own label space."
        )
    return text_embeddings.detach().index_select(0, classes)


def _feature_size_ok(size: int, image: int, stride: int) -> bool:
    return size in (image // stride, math.ceil(image / stride))


def roi_average(
    embeddings: torch.Tensor,
    boxes: torch.Tensor,
    *,
    stride: int,
    pooled_size: int,
) -> torch.Tensor:
    """Average of ``pooled_size x pooled_size`` bilinear samples at the bin centres of each box.

    Args:
        embeddings: ``float[D, h, w]`` one image's embedding map; cell ``(i, j)`` covers input
            pixels ``[i*stride, (i+1)*stride) x [j*stride, (j+1)*stride)``.
        boxes: ``float[N, 4]`` boxes ``(x0, y0, x1, y1)`` in input pixels, non-degenerate.
        stride: Input pixels per embedding cell.
        pooled_size: Sample points per side (S), S*S per box.
    Returns:
        ``float[N, D]`` pooled embeddings.
    """
    d, h, w = embeddings.shape
    n = boxes.shape[0]
    s = int(pooled_size)
    fb = boxes.to(embeddings.dtype) / stride  # box in cell units
    steps = (torch.arange(s, device=embeddings.device, dtype=embeddings.dtype) + 0.5) / s  # [S]
    xs = fb[:, 0:1] + steps[None] * (fb[:, 2:3] - fb[:, 0:1])  # [N, S]
    ys = fb[:, 1:2] + steps[None] * (fb[:, 3:4] - fb[:, 1:2])  # [N, S]
    # align_corners=False: normalised -1 and 1 are the outer edges of the first and last cells
    gx = (2.0 * xs / w - 1.0)[:, None, :].expand(n, s, s)
    gy = (2.0 * ys / h - 1.0)[:, :, None].expand(n, s, s)
    grid = torch.stack([gx, gy], dim=-1).reshape(1, n, s * s, 2)
    sampled = F.grid_sample(
        embeddings[None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )  # [1, D, N, S*S]
    return sampled[0].mean(dim=-1).transpose(0, 1)


def _check_inputs(
    pixel_embeddings: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    image_size: tuple[int, int],
    stride: int,
    pooled_size: int,
) -> None:
    """ValueError for the shape problems :func:`box_embedding_distillation` documents."""
    if pixel_embeddings.dim() != 4:
        raise ValueError(
            f"pixel_embeddings must be [B, D, h, w], got {tuple(pixel_embeddings.shape)}."
        )
    bsz, dim, h, w = pixel_embeddings.shape
    if len(boxes) != bsz or len(targets) != bsz:
        raise ValueError(
            f"Expected one boxes tensor and one targets tensor per image ({bsz}); got "
            f"{len(boxes)} and {len(targets)}."
        )
    if int(stride) < 1 or int(pooled_size) < 1:
        raise ValueError(f"stride and pooled_size must be >= 1, got {stride} and {pooled_size}.")
    height, width = int(image_size[0]), int(image_size[1])
    if not (_feature_size_ok(h, height, stride) and _feature_size_ok(w, width, stride)):
        raise ValueError(
            f"An embedding map of {h}x{w} does not fit images of {height}x{width} at stride "
            f"{stride} (expected ceil or floor of the image size / stride); pass the padded "
            "batch size as image_size and the model's output stride."
        )


def box_embedding_distillation(
    pixel_embeddings: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    image_size: tuple[int, int],
    targets: Sequence[torch.Tensor],
    *,
    stride: int = 4,
    pooled_size: int = 1,
    projection: nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed L1 distance between normalised pooled box embeddings and teacher embeddings.

    Boxes are clipped to the image first; boxes narrower or lower than 1 input pixel after
    clipping are skipped and not counted.

    Args:
        pixel_embeddings: ``float[B, D, h, w]`` the model's embedding map at ``stride``
            (``h`` is ``ceil(H / stride)`` or ``floor(H / stride)``, likewise ``w``).
        boxes: B tensors ``float[N_b, 4]``, ``(x0, y0, x1, y1)`` in input-image pixels.
        image_size: ``(H, W)`` of the (padded) input images.
        targets: B tensors ``float[N_b, P]``, the teacher embedding of each box (normalised here).
        stride: Input pixels per embedding cell.
        pooled_size: Bilinear sample points per box side (S, S*S per box); 1 reads the box centre
            only, so a value around the box size in cells (e.g. 4-7) pools more of the region.
        projection: Optional module ``float[N, D] -> float[N, P]`` (``BoxDistillationHead``);
            needed when ``P != D``.
    Returns:
        ``(loss_sum, num_boxes)``: 0-d float (differentiable) and 0-d int64 count of boxes used;
        eq. 7 divides by ``P = num_boxes`` in the caller. With no usable box, the sum is a 0 that
        still touches ``projection``'s parameters (so DDP sees them used).
    Raises:
        ValueError: mismatched lengths or shapes, or a map size that does not fit
            ``image_size / stride``.
    """
    _check_inputs(pixel_embeddings, boxes, targets, image_size, stride, pooled_size)
    bsz, dim = pixel_embeddings.shape[:2]
    height, width = int(image_size[0]), int(image_size[1])
    device = pixel_embeddings.device
    limits = torch.tensor([width, height, width, height], dtype=torch.float32, device=device)
    pooled: list[torch.Tensor] = []
    wanted: list[torch.Tensor] = []
    for b in range(bsz):
        bx = torch.as_tensor(boxes[b], dtype=torch.float32, device=device).reshape(-1, 4)
        tg = torch.as_tensor(targets[b], device=device)
        if tg.dim() != 2 or tg.shape[0] != bx.shape[0]:
            raise ValueError(
                f"Image {b}: {bx.shape[0]} boxes but targets of shape {tuple(tg.shape)}; expected "
                f"[{bx.shape[0]}, P]."
            )
        bx = torch.minimum(bx.clamp(min=0.0), limits)
        keep = ((bx[:, 2] - bx[:, 0]) >= 1.0) & ((bx[:, 3] - bx[:, 1]) >= 1.0)
        if not bool(keep.any()):
            continue
        emb = pixel_embeddings[b].float()
        pooled.append(roi_average(emb, bx[keep], stride=int(stride), pooled_size=pooled_size))
        wanted.append(tg[keep].float())
    if pooled:
        pred = torch.cat(pooled, dim=0)
        target = torch.cat(wanted, dim=0)
    else:
        pred = pixel_embeddings.new_zeros((0, dim), dtype=torch.float32)
        target = None
    if projection is not None:
        pred = projection(pred).float()
    if target is None:
        return pred.sum() * 0.0, torch.zeros((), dtype=torch.long, device=device)
    if target.shape[1] != pred.shape[1]:
        raise ValueError(
            f"Teacher embeddings have {target.shape[1]} dims but the pooled box embeddings have "
            f"{pred.shape[1]}: pass projection=BoxDistillationHead({dim}, {target.shape[1]})."
        )
    v_pred = F.normalize(pred, dim=1)
    v_target = F.normalize(target.detach(), dim=1)
    loss_sum = (v_target - v_pred).abs().sum()
    return loss_sum, torch.tensor(pred.shape[0], dtype=torch.long, device=device)
