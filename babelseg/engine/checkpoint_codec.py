"""The JSON encoding of checkpoint state: nested dicts, lists, tuples, scalars and tensors.

Tensors become references ``{"__tensor__": name}`` (the tensors themselves go to a safetensors
file); tuples and dicts with non-string keys are tagged so that they come back as they were.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

_TENSOR, _TUPLE, _ITEMS = "__tensor__", "__tuple__", "__items__"  # tags of the JSON encoding


def encode_state(obj: Any, *, name: str = "", tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-safe copy of ``obj``; tensors go to ``tensors`` (named by their path) as references."""

    def child(key: Any, value: Any) -> Any:
        return encode_state(value, name=f"{name}.{key}" if name else str(key), tensors=tensors)

    if isinstance(obj, torch.Tensor):
        key = name if name not in tensors else f"{name}#{len(tensors)}"
        tensors[key] = obj
        return {_TENSOR: key}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (list, tuple)):
        items = [child(i, v) for i, v in enumerate(obj)]
        return {_TUPLE: items} if isinstance(obj, tuple) else items
    if isinstance(obj, dict):
        if all(isinstance(k, str) and k not in (_TENSOR, _TUPLE, _ITEMS) for k in obj):
            return {k: child(k, v) for k, v in obj.items()}
        return {_ITEMS: [[child("key", k), child(k, v)] for k, v in obj.items()]}
    raise ValueError(
        f"Cannot store '{name}' (type {type(obj).__name__}) in a checkpoint: use dicts, lists, "
        "tuples, str, int, float, bool, None and tensors (convert arrays to tensors)."
    )


def decode_state(obj: Any, *, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode_state`."""
    if isinstance(obj, list):
        return [decode_state(v, tensors=tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1 and _TENSOR in obj:
        return tensors[obj[_TENSOR]]
    if len(obj) == 1 and _TUPLE in obj:
        return tuple(decode_state(v, tensors=tensors) for v in obj[_TUPLE])
    if len(obj) == 1 and _ITEMS in obj:
        return {
            decode_state(k, tensors=tensors): decode_state(v, tensors=tensors)
            for k, v in obj[_ITEMS]
        }
    return {k: decode_state(v, tensors=tensors) for k, v in obj.items()}
