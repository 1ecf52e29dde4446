"""Arg-max labels at the image's full resolution from low-resolution class scores, in bounded
memory for any vocabulary size and image size.

The scores of K classes at ``h x w`` (a quarter of the image) take ``4 h w K`` bytes and their
bilinear upsampling ``4 H W K``: 10,000 labels on a 6000 x 4000 image would need 60 GB at the
low resolution alone. :func:`labels_at_full_resolution` never upsamples more than ``full_below``
score maps; :func:`labels_in_bands` also computes the scores a band of rows at a time (through
a callback), so memory stays within ``budget_bytes`` whatever K, H and W are. ``Predictor``
(``babelseg predict`` and ``eval``) labels images this way; :mod:`babelseg.inference.
full_resolution` serves the result API's stride-4 windows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Taps = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def bilinear_taps(n_in: int, n_out: int, device: torch.device) -> Taps:
    """Source indices and weights of ``interpolate(mode="bilinear", align_corners=False)``.

    Returns:
        ``(i0 int64[n_out], i1 int64[n_out], w1 float[n_out])``: output j reads
        ``(1 - w1) * x[i0] + w1 * x[i1]``.
    """
    src = ((torch.arange(n_out, device=device) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0.0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return i0, i1, src - i0


def _labels_from_taps(
    logits: torch.Tensor, ytaps: Taps, xtaps: Taps, *, per_pixel: int, full_below: int, exact: bool
) -> torch.Tensor:
    """Labels ``int64[len(y), len(x)]`` of the output pixels whose taps are given (indices into
    ``logits float[h, w, K]``); see :func:`labels_at_full_resolution` for the method."""
    y0, y1, wy = ytaps
    x0, x1, wx = xtaps
    big_h, big_w, k = len(y0), len(x0), logits.shape[-1]
    taps = [
        (y0[:, None], x0[None, :], (1 - wy)[:, None] * (1 - wx)[None, :]),
        (y0[:, None], x1[None, :], (1 - wy)[:, None] * wx[None, :]),
        (y1[:, None], x0[None, :], wy[:, None] * (1 - wx)[None, :]),
        (y1[:, None], x1[None, :], wy[:, None] * wx[None, :]),
    ]
    if k <= max(full_below, 2 * per_pixel):
        return sum(tw[..., None] * logits[ty, tx] for ty, tx, tw in taps).argmax(-1)
    top_val, top_idx = logits.topk(per_pixel, dim=-1)  # [h, w, P], contiguous over classes
    top_val, top_idx = top_val.permute(2, 0, 1), top_idx.permute(2, 0, 1)  # [P, h, w]
    # candidates of each output pixel: the 4 neighbours' top lists -> [4P, H, W]
    cand = torch.cat([top_idx[:, ty, tx] for ty, tx, _ in taps], dim=0)
    score = torch.zeros(cand.shape, dtype=logits.dtype, device=logits.device)
    bound = torch.zeros((big_h, big_w), dtype=logits.dtype, device=logits.device)
    for ty, tx, tw in taps:
        score += tw * logits[ty.expand(big_h, big_w), tx.expand(big_h, big_w), cand]
        bound += tw * top_val[-1, ty, tx]
    best, where = score.max(dim=0)
    labels = cand.gather(0, where[None])[0]
    if not exact:
        return labels
    unsure = torch.nonzero(best < bound)
    chunk = max(1, (1 << 24) // k)  # ~64 MB of scores per chunk
    for start in range(0, len(unsure), chunk):
        ys, xs = unsure[start : start + chunk].unbind(1)
        full = sum(tw[ys, xs, None] * logits[ty[ys, 0], tx[0, xs]] for ty, tx, tw in taps)
        labels[ys, xs] = full.argmax(1)
    return labels


def labels_at_full_resolution(
    logits: torch.Tensor,
    size: tuple[int, int],
    *,
    per_pixel: int = 4,
    full_below: int = 64,
    exact: bool = False,
) -> torch.Tensor:
    """Arg-max labels at ``size`` from low-resolution logits, for any vocabulary size.

    Up to ``full_below`` classes: ``interpolate(logits, size, bilinear).argmax``, exactly.
    Beyond: each output pixel is a convex combination of 4 low-resolution pixels, so only the
    classes in those pixels' top ``per_pixel`` lists are scored there; the result is certified
    equal to the full computation wherever the best score reaches the bound
    ``sum_i w_i * (per_pixel-th largest logit at pixel i)`` that no other class can beat.
    Where it does not (near-ties, e.g. near-synonyms in a huge vocabulary) the best candidate
    is kept, or, with ``exact=True``, the pixel is scored over all K classes (slow when ties
    are common). The cost after the low-resolution matmul barely grows with K.

    Args:
        logits: ``float[h, w, K]``, pixel-major (``semantic_logits(..., pixel_major=True)``).
        size: ``(H, W)`` output size.
        per_pixel: Classes kept per low-resolution pixel.
        full_below: Vocabulary size up to which all K maps are upsampled.
        exact: Score uncertified pixels over all classes.
    Returns:
        ``int64[H, W]`` class indices into the K classes.
    """
    logits = logits.float()
    h, w, k = logits.shape
    big_h, big_w = int(size[0]), int(size[1])
    if k <= max(full_below, 2 * per_pixel):
        maps = logits.permute(2, 0, 1)[None]
        up = F.interpolate(maps, size=(big_h, big_w), mode="bilinear", align_corners=False)
        return up[0].argmax(0)
    ytaps = bilinear_taps(h, big_h, logits.device)
    xtaps = bilinear_taps(w, big_w, logits.device)
    return _labels_from_taps(
        logits, ytaps, xtaps, per_pixel=per_pixel, full_below=full_below, exact=exact
    )


def labels_in_bands(
    scores_of_rows: Callable[[int, int], torch.Tensor],
    low_size: tuple[int, int],
    size: tuple[int, int],
    num_classes: int,
    *,
    budget_bytes: int = 1 << 28,
    per_pixel: int = 4,
    full_below: int = 64,
) -> torch.Tensor:
    """:func:`labels_at_full_resolution` with the scores computed a band of rows at a time.

    Args:
        scores_of_rows: ``(r0, r1) -> float[r1 - r0, w, K]``: the low-resolution scores of rows
            ``r0..r1-1`` (e.g. the recipe's ``semantic_logits`` on those rows of its output).
        low_size: ``(h, w)`` of the scores.
        size: ``(H, W)`` output size.
        num_classes: K.
        budget_bytes: Working memory per band (scores and candidates); when everything fits,
            one call computes all rows, exactly as :func:`labels_at_full_resolution`.
        per_pixel / full_below: As in :func:`labels_at_full_resolution`.
    Returns:
        ``int64[H, W]`` class indices.
    """
    h, w = int(low_size[0]), int(low_size[1])
    big_h, big_w, k = int(size[0]), int(size[1]), int(num_classes)
    small = k <= max(full_below, 2 * per_pixel)
    per_output_row = 4 * big_w * (k if small else 12 * per_pixel)  # upsampled or candidates
    per_low_row = 4 * w * k
    if h * per_low_row + big_h * per_output_row <= budget_bytes:
        return labels_at_full_resolution(
            scores_of_rows(0, h).float(), size, per_pixel=per_pixel, full_below=full_below
        )
    scale = max(1.0, big_h / max(h, 1))
    rows = max(1, int(budget_bytes // (per_output_row + (per_low_row / scale))) - int(2 * scale))
    y0, y1, wy = bilinear_taps(h, big_h, torch.device("cpu"))
    labels = torch.empty((big_h, big_w), dtype=torch.long)
    xtaps: Taps | None = None
    for start in range(0, big_h, rows):
        stop = min(big_h, start + rows)
        a, b = int(y0[start]), int(y1[stop - 1]) + 1
        band = scores_of_rows(a, b).float()
        if xtaps is None:
            xtaps = bilinear_taps(w, big_w, band.device)
        ytaps = tuple(t[start:stop].to(band.device) for t in (y0 - a, y1 - a, wy))
        labels[start:stop] = _labels_from_taps(
            band, ytaps, xtaps, per_pixel=per_pixel, full_below=full_below, exact=False
        ).cpu()
    return labels
