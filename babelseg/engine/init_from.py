"""``train.init_from``: start a run from another run's backbone and pixel decoder."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from babelseg.engine.checkpoint import MODEL_FILE, read_checkpoint_state
from babelseg.engine.distributed import unwrap_model

NETWORK_PARTS = ("backbone", "decoder")
"""Modules that ``init_from`` transfers: the image backbone and the pixel decoder."""


def network_key(name: str) -> tuple[int, str] | None:
    """``"model.backbone.stem.weight" -> (1, "backbone.stem.weight")``: the canonical name of a
    backbone / pixel-decoder tensor and how deep its module sits (None for other tensors)."""
    parts = name.split(".")
    for depth, part in enumerate(parts):
        if part in NETWORK_PARTS:
            return depth, ".".join(parts[depth:])
    return None


def load_network_weights(path_or_run_dir: str | Path, model: nn.Module) -> str:
    """Start ``model`` from another run's backbone and pixel decoder (``train.init_from``).

    Tensors are paired by their name from the ``backbone`` / ``decoder`` module down, so any recipe
    can start from any other recipe's network; where a name occurs twice (a momentum copy) the
    shallowest module wins. Tensors whose shapes differ are left as initialised.

    Args:
        path_or_run_dir: A run directory (its latest checkpoint), a ``ckpt_<step>`` folder or a
            ``model.safetensors`` file.
        model: The recipe module to initialise.
    Returns:
        A one-line report: how many tensors were loaded, from where, and what was skipped.
    Raises:
        ValueError: the backbone does not fit (a different architecture) or nothing fits.
    """
    path = Path(path_or_run_dir)
    if not path.is_file():
        path = read_checkpoint_state(path)[0] / MODEL_FILE
    try:
        saved = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as e:
        msg = f"Weights file {path} is corrupt ({e}); pick another checkpoint."
        raise ValueError(msg) from None
    source: dict[str, tuple[int, torch.Tensor]] = {}
    for name, tensor in saved.items():
        key = network_key(name)
        if key is not None and (key[1] not in source or key[0] < source[key[1]][0]):
            source[key[1]] = (key[0], tensor)
    target = unwrap_model(model).state_dict()
    pairs, mismatched = [], []
    for name, tensor in target.items():
        key = network_key(name)
        if key is None:
            continue
        value = source.get(key[1], (0, None))[1]
        if value is not None and value.shape == tensor.shape:
            pairs.append((tensor, value))
        elif key[1].startswith("backbone."):
            there = "missing" if value is None else f"of shape {list(value.shape)}"
            raise ValueError(
                f"init_from: the backbone of {path} does not fit this model: '{key[1]}' is "
                f"{there} there, {list(tensor.shape)} here. Use the model.backbone and "
                "model.backbone_kwargs of the run that saved it."
            )
        else:
            mismatched.append(key[1])
    if not pairs:
        raise ValueError(
            f"init_from: no backbone or pixel-decoder tensor of {path} fits this model (compare "
            "model.backbone and model.decoder_dim with the run that saved it)."
        )
    with torch.no_grad():
        for tensor, value in pairs:
            tensor.copy_(value.to(tensor.dtype))
    loaded = len(pairs)
    skipped = f"; {len(mismatched)} of other shape left as initialised" if mismatched else ""
    return f"init_from: loaded {loaded} backbone/pixel-decoder tensors from {path}{skipped}."
