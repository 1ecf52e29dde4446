"""Rows of a model output: class scores of a large image computed a band of rows at a time.

Every model output is a dataclass whose spatial tensors are ``[B, C, h, w]`` (``PixelOutput.
embeddings``, ``MaskOutput.mask_logits``, a momentum copy ...); the per-pixel class scores of a
row depend only on that row of those tensors (per-query class scores, ``[B, Q, D]``, are not
spatial and are kept whole). Auxiliary outputs of intermediate layers are dropped.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch


def _spatial(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.ndim == 4


def output_size(output: Any) -> tuple[int, int]:
    """``(h, w)`` of the output's spatial tensors.

    Raises:
        ValueError: the output has no ``[B, C, h, w]`` tensor.
    """
    for field in dataclasses.fields(output):
        value = getattr(output, field.name)
        if _spatial(value):
            return int(value.shape[2]), int(value.shape[3])
    raise ValueError(f"{type(output).__name__} has no [B, C, h, w] tensor.")


def output_rows(output: Any, start: int, stop: int) -> Any:
    """A copy of ``output`` holding rows ``start..stop-1`` of its spatial tensors.

    Args:
        output: A model output dataclass.
        start, stop: Row range at the output's resolution.
    Returns:
        The same dataclass type; spatial tensors ``[B, C, stop - start, w]`` (views), lists of
        auxiliary outputs replaced by None, everything else unchanged.
    """
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(output):
        value = getattr(output, field.name)
        if _spatial(value):
            changes[field.name] = value[:, :, start:stop]
        elif isinstance(value, list):
            changes[field.name] = None
    return dataclasses.replace(output, **changes)
