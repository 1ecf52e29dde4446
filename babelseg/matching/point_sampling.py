"""Point sampling of mask maps (PointRend / Mask2Former): losses and matching costs on P points
per mask instead of every pixel, so their cost does not grow with the image size.

Coordinates are ``(x, y)`` in ``[0, 1]`` relative to the whole map (``(0, 0)`` is the top-left
corner of the top-left pixel, ``(1, 1)`` the bottom-right corner of the bottom-right pixel), so
one set of points addresses a stride-4 prediction and a full-resolution target alike as long as
both cover the same image extent.

Unlike Mask2Former (zero padding), values within half a pixel of the border are those of the
border pixels (``padding_mode="border"``): every point in ``[0, 1]`` lies inside the image, and a
full mask should read 1 there, not fade towards 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def point_sample(x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample maps at relative coordinates.

    Args:
        x: ``float[N, C, H, W]`` maps.
        coords: ``float[N, P, 2]`` ``(x, y)`` points in ``[0, 1]`` (see the module docstring);
            ``float[1, P, 2]`` samples the same points in all N maps.
    Returns:
        ``float[N, C, P]`` values (``grid_sample``, ``align_corners=False``, border padding).
    """
    if coords.shape[0] == 1 and x.shape[0] != 1:
        # The same points everywhere: treat the N maps as channels of one map (one kernel call).
        n, c = x.shape[:2]
        out = point_sample(x.reshape(1, n * c, *x.shape[-2:]), coords)
        return out.reshape(n, c, -1)
    grid = (2.0 * coords - 1.0).unsqueeze(2).to(x.dtype)
    return F.grid_sample(
        x, grid, mode="bilinear", padding_mode="border", align_corners=False
    ).squeeze(3)


def uncertain_points(
    logits: torch.Tensor,
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
    generator: torch.Generator | None = None,
    *,
    uniform: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mask2Former's training points: mostly where the prediction is uncertain, some at random.

    Draws ``int(num_points * oversample_ratio)`` uniform points, keeps the
    ``int(importance_sample_ratio * num_points)`` with the highest uncertainty ``-|logit|`` and adds
    uniform points up to ``num_points``.

    Args:
        logits: ``float[N, 1, H, W]`` mask logits (the uncertainty is read from them, no gradient).
        num_points: P, points per mask.
        oversample_ratio: >= 1, how many candidates to draw per kept uncertain point.
        importance_sample_ratio: In ``[0, 1]``, share of the P points chosen by uncertainty.
        generator: Random generator on ``logits.device`` (None: the global one).
        uniform: Pre-drawn uniform numbers (``float[N * (S + P - U) * 2]``, S candidates, U
            uncertain points: the candidates first, then the extra points, in the order this
            function draws them) instead of drawing from ``generator``.
    Returns:
        ``float[N, P, 2]`` ``(x, y)`` points in ``[0, 1]``.
    Raises:
        ValueError: Out-of-range arguments.
    """
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}")
    if oversample_ratio < 1:
        raise ValueError(f"oversample_ratio must be >= 1, got {oversample_ratio}")
    if not 0 <= importance_sample_ratio <= 1:
        raise ValueError(
            f"importance_sample_ratio must be in [0, 1], got {importance_sample_ratio}"
        )
    n = logits.shape[0]
    device = logits.device
    num_sampled = int(num_points * oversample_ratio)
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain
    if uniform is not None and uniform.numel() != n * (num_sampled + num_random) * 2:
        raise ValueError(
            f"uniform has {uniform.numel()} numbers, expected {n * (num_sampled + num_random) * 2}"
        )
    with torch.no_grad():
        if uniform is None:
            candidates = torch.rand(n, num_sampled, 2, device=device, generator=generator)
        else:
            candidates = uniform[: n * num_sampled * 2].view(n, num_sampled, 2)
        uncertainty = -point_sample(logits.detach().float(), candidates)[:, 0].abs()  # [N, S]
        top = uncertainty.topk(num_uncertain, dim=1).indices
        chosen = candidates.gather(1, top.unsqueeze(-1).expand(-1, -1, 2))
        if num_random > 0 and uniform is None:
            extra = torch.rand(n, num_random, 2, device=device, generator=generator)
            chosen = torch.cat([chosen, extra], dim=1)
        elif num_random > 0:
            extra = uniform[n * num_sampled * 2 :].view(n, num_random, 2)
            chosen = torch.cat([chosen, extra], dim=1)
    return chosen
