"""Checksums of checkpoint files: bit-rot inside tensor data is caught on load, not trained on.

A flipped byte inside a tensor keeps the file's size and its safetensors header intact, so only a
digest of the bytes notices it. :func:`file_digests` is stored in the checkpoint's ``state.json``
(key ``sha256``: ``{file name: hex digest}``) and :func:`verify_file_digests` checks every listed
file before anything is loaded. Checkpoints written before digests existed have no ``sha256`` key
and load as before (no false alarm).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

DIGEST_KEY = "sha256"
_BLOCK = 1 << 20


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def file_digests(folder: Path, files: Iterable[str]) -> dict[str, str]:
    """``{file name: SHA-256}`` of ``files`` inside ``folder``."""
    return {name: file_digest(Path(folder) / name) for name in files}


def verify_file_digests(folder: Path, meta: Mapping, *, hint: str = "") -> None:
    """Check the files of a checkpoint against the digests its ``state.json`` stores.

    Args:
        folder: The checkpoint folder.
        meta: The parsed ``state.json``; without a ``sha256`` key (older checkpoints) nothing is
            checked.
        hint: What to do instead (e.g. which earlier checkpoint to use), appended to the error.
    Raises:
        ValueError: a file whose bytes differ from what was written, naming it.
    """
    stored = meta.get(DIGEST_KEY)
    if stored is None:
        return
    if not isinstance(stored, Mapping):
        raise ValueError(f"{Path(folder) / 'state.json'}: '{DIGEST_KEY}' is not a mapping. {hint}")
    for name, expected in stored.items():
        path = Path(folder) / str(name)
        if file_digest(path) != expected:
            raise ValueError(
                f"Checkpoint file {path} is corrupt: its bytes differ from those written (SHA-256 "
                f"mismatch; disk or copy damage). {hint}".rstrip()
            )
