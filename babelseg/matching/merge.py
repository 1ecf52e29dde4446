"""DaTaSeg's MERGE (section 3.2, eq. 1-2): proposals that predict the same class become one.

Applied before matching and at inference, to the stuff classes for panoptic data, to all classes
for semantic data, and not at all for instance data (``merge_classes`` says which). Each merged
class ``c`` gets one output proposal whose mask logits are the element-wise maximum of the mask
logits of the proposals whose arg-max class is ``c`` (max over logits = max over sigmoid masks),
and whose class logits are their mean (eq. 2 with epsilon -> 0). A merged class that no proposal
predicts still gets its output, with mask logits -100 (sigmoid ~ 0) and zero class logits, so the
layout depends only on how many proposals are *not* merged. Proposals whose arg-max is the
background / no-object class, or a class that is not merged, are kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

ABSENT_LOGIT = -100.0


@dataclass
class MergedProposals:
    """Proposals after MERGE: the ``U`` kept proposals first (in input order), then one per merged
    class (in class order).

    Attributes:
        mask_logits: ``float[U + M, H, W]``.
        class_logits: ``float[U + M, K + 1]``.
        merged_class: ``int64[U + M]``: the class a merged output stands for, -1 for kept ones.
        present: ``bool[U + M]``: False for merged outputs of classes no proposal predicts (mask
            logits -100, class logits 0).
        source: ``int64[Q]``: the output each input proposal went to.
    """

    mask_logits: torch.Tensor
    class_logits: torch.Tensor
    merged_class: torch.Tensor
    present: torch.Tensor
    source: torch.Tensor


def merge_proposals(
    mask_logits: torch.Tensor,
    class_logits: torch.Tensor,
    merge_classes: torch.Tensor,
    *,
    predicted: torch.Tensor | None = None,
) -> MergedProposals:
    """MERGE the proposals of one image.

    Args:
        mask_logits: ``float[Q, H, W]`` mask logits.
        class_logits: ``float[Q, K + 1]`` class logits (last = background / no object).
        merge_classes: ``bool[K]``: which classes are merged (stuff for panoptic, all for
            semantic, none for instance).
        predicted: ``int64[Q]`` class (``0..K``) each proposal is grouped by; None: its own
            arg-max. An auxiliary decoder layer given the final layer's arg-max gets the final
            layer's layout, so the final layer's matches apply to it (``aux_matching=last``).
    Returns:
        :class:`MergedProposals`; differentiable in the logits (gradients reach, per pixel, the
        proposal holding the maximum, and every averaged proposal's class logits).
    """
    num_queries, num_outputs_k = class_logits.shape
    num_classes = num_outputs_k - 1
    if merge_classes.shape != (num_classes,):
        raise ValueError(
            f"merge_classes has shape {tuple(merge_classes.shape)}, expected ({num_classes},): "
            "one flag per class of the label space (no entry for the background)"
        )
    device = mask_logits.device
    merge_classes = merge_classes.to(device=device, dtype=torch.bool)
    if predicted is None:
        predicted = class_logits.detach().argmax(-1)  # [Q] in 0..K
    elif predicted.shape != (num_queries,):
        raise ValueError(
            f"predicted has shape {tuple(predicted.shape)}, expected ({num_queries},): one "
            "class per proposal"
        )
    flags = torch.cat([merge_classes, merge_classes.new_zeros(1)])  # background never merged
    is_merged = flags[predicted]
    kept = (~is_merged).nonzero().squeeze(1)
    num_kept = int(kept.numel())
    merged_ids = merge_classes.nonzero().squeeze(1)  # [M]
    num_merged = int(merged_ids.numel())
    rank = torch.cumsum(merge_classes.long(), 0) - 1  # class -> index among merged classes

    source = torch.empty(num_queries, dtype=torch.int64, device=device)
    source[kept] = torch.arange(num_kept, device=device)
    merged_rows = is_merged.nonzero().squeeze(1)
    group = rank[predicted[merged_rows]]  # [Q_m] index among merged classes
    source[merged_rows] = num_kept + group

    height, width = mask_logits.shape[-2:]
    pooled = mask_logits.new_full((num_merged, height, width), float("-inf"))
    if merged_rows.numel():
        index = group.view(-1, 1, 1).expand(-1, height, width)
        pooled = pooled.scatter_reduce(0, index, mask_logits[merged_rows], reduce="amax")
    counts = torch.zeros(num_merged, device=device, dtype=class_logits.dtype)
    counts = counts.index_add(0, group, torch.ones_like(group, dtype=class_logits.dtype))
    present_merged = counts > 0
    pooled = torch.where(
        present_merged.view(-1, 1, 1), pooled, torch.full_like(pooled, ABSENT_LOGIT)
    )
    summed = class_logits.new_zeros(num_merged, num_outputs_k).index_add(
        0, group, class_logits[merged_rows]
    )
    mean_logits = summed / counts.clamp(min=1).unsqueeze(1)

    merged_class = torch.cat([torch.full((num_kept,), -1, device=device), merged_ids])
    present = torch.cat([torch.ones(num_kept, dtype=torch.bool, device=device), present_merged])
    return MergedProposals(
        mask_logits=torch.cat([mask_logits[kept], pooled]),
        class_logits=torch.cat([class_logits[kept], mean_logits]),
        merged_class=merged_class,
        present=present,
        source=source,
    )


def merge_padded(
    masks: torch.Tensor,
    logits: torch.Tensor,
    merge_classes: torch.Tensor,
    num_merged: int,
    *,
    predicted: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """MERGE each of b images (data-dependent sizes), padded to ``Q + M`` proposals.

    Args:
        masks: ``float[b, Q, H, W]``. logits: ``float[b, Q, K + 1]``.
        merge_classes: ``bool[K]``; ``num_merged``: its number of True (M, known on the host).
        predicted: ``int64[b, Q]`` classes to group by (another layer's arg-max); None: each
            proposal's own.
    Returns:
        ``(float[b, Q + M, H, W], float[b, Q + M, K + 1], bool[b, Q + M], [n_b])``: the n_b
        valid proposals of each image first.
    """
    width = masks.shape[1] + num_merged
    out_masks, out_logits, valid, counts = [], [], [], []
    for b, (m, c) in enumerate(zip(masks, logits)):
        by = None if predicted is None else predicted[b]
        merged = merge_proposals(m, c, merge_classes, predicted=by)
        n = merged.mask_logits.shape[0]
        out_masks.append(F.pad(merged.mask_logits, (0, 0, 0, 0, 0, width - n)))
        out_logits.append(F.pad(merged.class_logits, (0, 0, 0, width - n)))
        valid.append(torch.arange(width, device=masks.device) < n)
        counts.append(n)
    return torch.stack(out_masks), torch.stack(out_logits), torch.stack(valid), counts
