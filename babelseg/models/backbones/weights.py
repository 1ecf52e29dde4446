"""Load backbone weights from a local file (safetensors; PyTorch pickles only as weights)."""

from __future__ import annotations

import pickle
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

PICKLE_SUFFIXES = (".pt", ".pth", ".bin")
# Keys under which training checkpoints commonly nest the model's state dict.
NESTED_KEYS = ("state_dict", "model", "model_state_dict", "module")


@dataclass
class LoadReport:
    """What :func:`load_backbone_weights` did.

    Attributes:
        loaded: Module keys filled from the file.
        missing: Module keys the file did not provide (``num_batches_tracked`` left out).
        unexpected: File keys (after the prefix was stripped) the module does not have.
        mismatched: Keys present in both with different shapes (left untouched).
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from disk onto the CPU.

    ``.safetensors`` is read with safetensors; ``.pt``/``.pth``/``.bin`` only through
    ``torch.load(weights_only=True)``, which refuses pickles holding arbitrary Python objects. A
    checkpoint that nests the weights under ``state_dict``/``model``/``model_state_dict``/
    ``module`` is unwrapped.

    Args:
        path: File to read.
    Returns:
        Mapping from parameter name to tensor.
    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: Unknown suffix, a pickle that is not plain weights, or no tensors inside.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weights file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, RuntimeError) as error:
            raise ValueError(
                f"Weights file {path} is not a readable safetensors file ({error}): it is corrupt, "
                "truncated, or another format under a .safetensors name (a PyTorch pickle: give "
                "it its .pt/.pth name). Re-download or re-export it."
            ) from None
    if suffix not in PICKLE_SUFFIXES:
        raise ValueError(
            f"Unsupported weights file {path}: expected .safetensors (or "
            f"{', '.join(PICKLE_SUFFIXES)} holding plain tensors)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"Refusing to unpickle {path}: it holds more than plain tensors, and loading it would "
            "run arbitrary code. Convert it to safetensors in a trusted environment (see "
            f"safetensors.torch.save_file). Details: {error}"
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:  # torn zip, not a pickle
        raise ValueError(
            f"Weights file {path} cannot be read as PyTorch weights ({error}): it is corrupt or "
            "truncated. Re-download or re-export it."
        ) from None
    for key in NESTED_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a state dict (found {type(obj).__name__})")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{path} holds no tensors under string keys")
    return tensors


def load_backbone_weights(
    module: nn.Module, path: str | Path, *, prefix: str | None = None, strict: bool = False
) -> LoadReport:
    """Copy matching tensors from a weights file into ``module``.

    Args:
        module: Module to fill (usually a backbone).
        path: ``.safetensors`` (or weights-only ``.pt/.pth/.bin``) file.
        prefix: Keep only file keys starting with this prefix and strip it (e.g. ``"backbone."``
            for a checkpoint of a whole segmentation model).
        strict: Raise when any key is missing, unexpected or of another shape.
    Returns:
        A :class:`LoadReport`.
    Raises:
        ValueError: No key matches (the message suggests a prefix when one would make keys
            match), or ``strict`` and the keys differ.
    """
    state = load_state_dict_file(path)
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise ValueError(f"No key of {path} starts with prefix {prefix!r}")
    own = module.state_dict()
    report = LoadReport()
    to_load = {}
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            report.mismatched.append(key)
        else:
            to_load[key] = value
    report.loaded = sorted(to_load)
    report.missing = sorted(
        k for k in own if k not in state and not k.endswith("num_batches_tracked")
    )
    if not to_load:
        raise ValueError(_no_match_message(path, list(state), list(own), prefix))
    if strict and (report.missing or report.unexpected or report.mismatched):
        raise ValueError(
            f"Weights {path} do not match the module exactly (strict=True): "
            f"missing {report.missing[:5]}, unexpected {report.unexpected[:5]}, "
            f"shape mismatch {report.mismatched[:5]} (first 5 of each). Pass strict=False to "
            "load what matches."
        )
    module.load_state_dict(to_load, strict=False)
    return report


def _no_match_message(
    path: str | Path, file_keys: list[str], module_keys: list[str], prefix: str | None
) -> str:
    """Explain why nothing matched, suggesting the prefix to strip or to add when there is one."""
    strip: Counter[str] = Counter()
    add: Counter[str] = Counter()
    module_set, file_set = set(module_keys), set(file_keys)
    for key in file_keys:
        for i in range(len(key)):
            if key[i - 1 : i] == "." and key[i:] in module_set:
                strip[key[:i]] += 1
    for key in module_keys:
        for i in range(len(key)):
            if key[i - 1 : i] == "." and key[i:] in file_set:
                add[key[:i]] += 1
    message = (
        f"No tensor of {path} matches the module (prefix={prefix!r}). File keys look like "
        f"{file_keys[:3]}, module keys like {module_keys[:3]}."
    )
    if strip:
        found = strip.most_common(1)[0][0]
        full = (prefix or "") + found
        message += f" The file keys carry the prefix {found!r}: pass prefix={full!r}."
    elif add:
        found = add.most_common(1)[0][0]
        message += (
            f" The module keys carry an extra prefix {found!r}: load into that submodule of the "
            "module instead."
        )
    return message
