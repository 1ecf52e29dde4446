"""Atomic checkpoints: ``safetensors`` weights plus JSON state, never pickles.

A checkpoint is a folder ``<directory>/ckpt_<step:07d>/``: ``model.safetensors`` (tied weights
stored once, as ``safetensors.torch.save_model`` does), ``optimizer.safetensors`` (every tensor of
``optimizer.state_dict()``, named ``state.{param_id}.{key}``), ``rng.safetensors`` (torch CPU/CUDA
generator states, ``uint8``), optional ``extra.safetensors`` (caller tensors, e.g. label-space text
embeddings) and ``state.safetensors`` (tensors inside the caller or scheduler state), and, written
last, ``state.json`` (step, optimizer param groups and non-tensor state, scheduler state, python
and numpy RNG states, caller state, byte size and SHA-256 of every file, checked on load);
tensors inside it are references (``{"__tensor__": name}``), and tuples and non-string dict keys
are tagged so they come back.

Everything is written to ``ckpt_<step>.tmp-<pid>`` (files fsynced), renamed to its final name,
then ``<directory>/latest`` (the newest checkpoint's name) is replaced atomically: a crash at any
moment leaves the previous checkpoint whole and ``latest`` naming a complete one. Checkpoints past
``keep_last`` go afterwards; the next save (rank 0 is the only writer) removes crash leftovers.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from babelseg.engine.checkpoint_codec import decode_state, encode_state
from babelseg.engine.distributed import unwrap_model
from babelseg.engine.integrity import DIGEST_KEY, file_digests, verify_file_digests

FORMAT, VERSION = "babelseg-checkpoint", 1
LATEST_FILE, STATE_FILE, MODEL_FILE = "latest", "state.json", "model.safetensors"
OPTIMIZER_FILE, RNG_FILE = "optimizer.safetensors", "rng.safetensors"
EXTRA_FILE, STATE_TENSORS_FILE = "extra.safetensors", "state.safetensors"
_TENSOR_FILES = (OPTIMIZER_FILE, RNG_FILE, EXTRA_FILE, STATE_TENSORS_FILE)
_NAME = re.compile(r"^ckpt_(\d+)$")
_LEFTOVER = re.compile(r"^(ckpt_\d+\.(tmp|old)-\d+|latest\.tmp-\d+)$")


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` returns besides restoring the model and optimizer.

    Attributes:
        step: The step the checkpoint was saved at.
        state: The caller ``state`` given to :func:`save_checkpoint`.
        scheduler_state: For ``scheduler.load_state_dict`` (None when none was saved).
        extra_tensors: The ``extra_tensors`` given to :func:`save_checkpoint`.
        path: The checkpoint folder.
    """

    step: int
    state: dict[str, Any] = field(default_factory=dict)
    scheduler_state: dict[str, Any] | None = None
    extra_tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    path: Path | None = None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)  # folders too: makes their entries (renames) durable
    os.fsync(fd)
    os.close(fd)


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """``save_file`` on CPU, contiguous, no two tensors sharing memory; then fsync."""
    seen: set[int] = set()
    ready: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        t = t.detach().to("cpu")
        if not t.is_contiguous() or (t.numel() and t.untyped_storage().data_ptr() in seen):
            t = t.contiguous().clone()
        seen.add(t.untyped_storage().data_ptr())
        ready[name] = t
    save_file(ready, str(path), metadata={"format": "pt"})
    _fsync(path)


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    _fsync(path)


def _rng_states() -> dict[str, Any]:
    """Generator states of torch (CPU, and CUDA when in use), python ``random`` and numpy."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch_cpu": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch_cpu"].to(torch.uint8))
    random.setstate(states["python"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if torch.cuda.is_available():  # as many devices as both runs have
        for index, cuda in enumerate(states.get("cuda", [])[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda.to(torch.uint8), index)


def _step_of(path: Path) -> int | None:
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(directory: Path) -> list[Path]:
    """Finished checkpoint folders in ``directory`` (those with ``state.json``), oldest first."""
    found = (p.parent for p in Path(directory).glob(f"ckpt_*/{STATE_FILE}"))
    return sorted((p for p in found if _step_of(p) is not None), key=_step_of)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest finished checkpoint in ``run_dir`` (the folder given to :func:`save_checkpoint`).

    Follows the ``latest`` pointer when it names a finished checkpoint, else (pointer missing, or
    its checkpoint deleted) takes the finished checkpoint with the highest step; None if none.
    """
    pointer = Path(run_dir) / LATEST_FILE
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        if _NAME.match(name) and (target := pointer.parent / name / STATE_FILE).is_file():
            return target.parent
    found = list_checkpoints(Path(run_dir))
    return found[-1] if found else None


def _previous_hint(ckpt: Path) -> str:
    step = _step_of(ckpt)
    older = [p for p in list_checkpoints(ckpt.parent) if step is None or _step_of(p) < step]
    if not older:
        return "There is no earlier checkpoint in that folder; start the run again without resume."
    return f"The previous checkpoint is {older[-1]}: delete {ckpt} to resume from it."


def save_checkpoint(
    directory: Path,
    *,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler_state: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    state: dict[str, Any] | None = None,
    keep_last: int = 2,
    keep: Path | None = None,
) -> Path:
    """Write ``directory/ckpt_<step:07d>/`` atomically, point ``directory/latest`` at it, and
    return that folder. ValueError for ``keep_last`` < 1, a negative step, or a value in ``state``
    (or the optimizer / scheduler state) that cannot be stored.

    Args:
        directory: Where checkpoints live (created if needed); usually the run directory.
        step: Optimizer steps taken; names the checkpoint (saving a step again replaces it).
        model: The model; DDP / ``torch.compile`` wrappers are unwrapped.
        optimizer: Its full state is stored, or None for weights only.
        scheduler_state: ``scheduler.state_dict()``, given back by :func:`load_checkpoint`.
        extra_tensors: Named tensors (any shapes) kept with the weights.
        state: Caller data: JSON-like values and tensors (e.g. the resolved config).
        keep_last: Checkpoints to keep (>= 1); older ones are deleted once this one is in place.
        keep: A checkpoint the rotation never deletes (the last one known good).
    """
    if keep_last < 1 or step < 0:
        raise ValueError(f"Need keep_last >= 1 and step >= 0, got {keep_last} and {step}.")
    directory = Path(directory)
    opt: dict[str, torch.Tensor] = {}
    rng: dict[str, torch.Tensor] = {}
    other: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "step": step,
        "optimizer": None
        if optimizer is None
        else encode_state(optimizer.state_dict(), tensors=opt),
        "scheduler": encode_state(scheduler_state, name="scheduler", tensors=other),
        "rng": encode_state(_rng_states(), name="rng", tensors=rng),
        "state": encode_state(dict(state or {}), name="state", tensors=other),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for p in directory.iterdir():  # leftovers of an interrupted save
        if _LEFTOVER.match(p.name):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    name, pid = f"ckpt_{step:07d}", os.getpid()
    final, tmp = directory / name, directory / f"{name}.tmp-{pid}"
    old = directory / f"{name}.old-{pid}"
    tmp.mkdir()
    save_model(unwrap_model(model), str(tmp / MODEL_FILE), metadata={"format": "pt"})
    _fsync(tmp / MODEL_FILE)
    files = [MODEL_FILE]
    for file, tensors in zip(_TENSOR_FILES, [opt, rng, dict(extra_tensors or {}), other]):
        if tensors:  # files without tensors are left out (e.g. an optimizer before its 1st step)
            _write_tensors(tmp / file, tensors)
            files.append(file)
    meta["files"] = {f: (tmp / f).stat().st_size for f in files}
    meta[DIGEST_KEY] = file_digests(tmp, files)  # checked on load: catches bit-rot
    _write_text(tmp / STATE_FILE, json.dumps(meta, indent=1))
    _fsync(tmp)
    if final.exists():  # saving a step again: swap the old one out, delete it at the end
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync(directory)
    _write_text(directory / f"{LATEST_FILE}.tmp-{pid}", name + "\n")
    os.replace(directory / f"{LATEST_FILE}.tmp-{pid}", directory / LATEST_FILE)
    _fsync(directory)
    shutil.rmtree(old, ignore_errors=True)
    for stale in list_checkpoints(directory)[:-keep_last]:
        if stale != final and (keep is None or stale.resolve() != Path(keep).resolve()):
            shutil.rmtree(stale, ignore_errors=True)
    return final


def _resolve(path: Path) -> Path:
    """A checkpoint folder from itself or from a folder of checkpoints (its latest)."""
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint {path} does not exist; check the path.")
    if (path / STATE_FILE).is_file() or _step_of(path) is not None:
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        msg = f"No checkpoint in {path} (no ckpt_<step> folder with {STATE_FILE}); train first."
        raise FileNotFoundError(msg)
    return latest


def _read_meta(ckpt: Path) -> dict[str, Any]:
    """Parse ``state.json`` and check that every file it lists is there, whole."""
    meta_path = ckpt / STATE_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"Checkpoint file {meta_path} is missing. {_previous_hint(ckpt)}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        hint = _previous_hint(ckpt)
        raise ValueError(f"Checkpoint file {meta_path} is corrupt ({e}). {hint}") from None
    if not isinstance(meta, dict) or (meta.get("format"), meta.get("version")) != (FORMAT, VERSION):
        raise ValueError(f"{meta_path} is not a babelseg checkpoint of format version {VERSION}.")
    for file, size in meta["files"].items():
        path = ckpt / file
        if not path.is_file():
            raise FileNotFoundError(f"Checkpoint file {path} is missing. {_previous_hint(ckpt)}")
        if path.stat().st_size != size:
            raise ValueError(
                f"Checkpoint file {path} is truncated or corrupt ({path.stat().st_size} bytes, "
                f"{size} written). {_previous_hint(ckpt)}"
            )
    verify_file_digests(ckpt, meta, hint=_previous_hint(ckpt))
    return meta


def _read_tensors(ckpt: Path, meta: dict[str, Any], file: str, device: str) -> dict[str, Any]:
    if file not in meta["files"]:
        return {}
    try:
        return load_file(str(ckpt / file), device=device)
    except (SafetensorError, OSError, RuntimeError) as e:
        hint = _previous_hint(ckpt)
        raise ValueError(f"Checkpoint file {ckpt / file} is corrupt ({e}). {hint}") from None


def _load_weights(file: Path, model: nn.Module, *, strict: bool, device: str) -> None:
    try:  # reads (and so validates) the whole file before touching the model
        load_model(unwrap_model(model), str(file), strict=strict, device=device)
    except (SafetensorError, OSError) as e:
        hint = _previous_hint(file.parent)
        raise ValueError(f"Weights file {file} is corrupt ({e}). {hint}") from None
    except RuntimeError as e:
        raise ValueError(
            f"The weights in {file} do not fit this model ({e}). Build the model with the config "
            "of the run that saved them (its config.yaml), or load with strict=False."
        ) from None


def load_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    map_location: str | torch.device = "cpu",
    strict: bool = True,
    restore_rng: bool = True,
) -> LoadedCheckpoint:
    """Restore a checkpoint written by :func:`save_checkpoint` (nothing is unpickled).

    Every file is checked (presence, size, safetensors header) before anything is modified. The
    optimizer state is rebuilt exactly (AdamW continues bit-identically) and the torch / CUDA /
    python / numpy generator states are restored, so a resumed run draws the same random numbers.

    Args:
        path: A ``ckpt_<step>`` folder, or a folder of checkpoints (its latest is used).
        model: Receives the weights (DDP / ``torch.compile`` wrappers are unwrapped).
        optimizer: Receives the optimizer state; needs the parameter groups of the saved one.
        map_location: Device for weights and extras (optimizer state follows its parameters).
        strict: Fail when the model's parameter names differ from the saved ones.
        restore_rng: Restore the random generator states.

    Raises:
        FileNotFoundError: no checkpoint there, or one of its files missing.
        ValueError: a corrupt or truncated file (the message names the previous checkpoint),
            weights that do not fit ``model``, or optimizer state that does not fit ``optimizer``.
    """
    ckpt = _resolve(Path(path))
    meta = _read_meta(ckpt)
    device = str(torch.device(map_location))
    if optimizer is not None and meta["optimizer"] is None:
        raise ValueError(
            f"Checkpoint {ckpt} holds no optimizer state (saved with optimizer=None); load it "
            "with optimizer=None, or resume from a checkpoint saved during training."
        )
    opt = _read_tensors(ckpt, meta, OPTIMIZER_FILE, "cpu") if optimizer is not None else {}
    rng = _read_tensors(ckpt, meta, RNG_FILE, "cpu") if restore_rng else {}
    extra = _read_tensors(ckpt, meta, EXTRA_FILE, device)
    other = _read_tensors(ckpt, meta, STATE_TENSORS_FILE, device)
    _load_weights(ckpt / MODEL_FILE, model, strict=strict, device=device)
    if optimizer is not None:
        try:
            optimizer.load_state_dict(decode_state(meta["optimizer"], tensors=opt))
        except (ValueError, KeyError) as e:
            raise ValueError(
                f"Optimizer state in {ckpt / OPTIMIZER_FILE} does not fit the optimizer ({e}); "
                "build the optimizer with the same parameter groups as the saved run."
            ) from None
    if restore_rng:
        _restore_rng(decode_state(meta["rng"], tensors=rng))
    return LoadedCheckpoint(
        step=int(meta["step"]),
        state=decode_state(meta["state"], tensors=other),
        scheduler_state=decode_state(meta["scheduler"], tensors=other),
        extra_tensors=extra,
        path=ckpt,
    )


def load_model_weights(
    path_or_run_dir: Path,
    model: nn.Module,
    *,
    strict: bool = True,
    map_location: str | torch.device = "cpu",
) -> Path:
    """Load only the weights (evaluation, prediction); returns the file they came from.

    ``path_or_run_dir`` is a run directory (its latest checkpoint), a ``ckpt_<step>`` folder or a
    ``model.safetensors`` file; the other arguments and errors are those of :func:`load_checkpoint`.
    """
    path = Path(path_or_run_dir)
    if not path.is_file():
        _read_meta(ckpt := _resolve(path))
        path = ckpt / MODEL_FILE
    _load_weights(path, model, strict=strict, device=str(torch.device(map_location)))
    return path


def load_extra_tensors(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The extra tensors of a checkpoint (e.g. stored text embeddings), without a model."""
    ckpt = _resolve(Path(path))
    meta = _read_meta(ckpt)
    return _read_tensors(ckpt, meta, EXTRA_FILE, str(torch.device(map_location)))


def read_checkpoint_state(path: Path) -> tuple[Path, dict[str, Any]]:
    """The caller ``state`` of a checkpoint, without a model (to learn how to build one).

    Args:
        path: A run directory (its latest checkpoint) or a ``ckpt_<step>`` folder.
    Returns:
        ``(checkpoint folder, state)``.
    """
    ckpt = _resolve(Path(path))
    meta = _read_meta(ckpt)
    other = _read_tensors(ckpt, meta, STATE_TENSORS_FILE, "cpu")
    return ckpt, decode_state(meta["state"], tensors=other)
