"""CLIP's text tower (with its projection) as a text encoder, for users who have the weights.

Loads ``transformers.CLIPTextModelWithProjection`` and its tokenizer from a folder written by
``save_pretrained`` (or a hub name when ``local_files_only=False``); a full CLIP checkpoint works
too, only its text half is used. Embeddings are ``text_embeds`` (the projected end-of-text token),
L2-normalised.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from babelseg.labels.encoders.minilm import quiet_hf_loading

if TYPE_CHECKING:
    from transformers import CLIPTextModelWithProjection

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def clip_encoder_id(name_or_path: str) -> str:
    """The cache id of a CLIP checkpoint.

    A hub name gives ``"clip-<name>"``. A local folder gives ``"clip-<folder name>-<digest>"``,
    where the 8-hex digest covers ``config.json`` and the names, sizes and modification times of
    the weight files, so re-saved weights in the same folder do not reuse stale embeddings.
    """
    path = Path(name_or_path)
    if not path.is_dir():
        return f"clip-{name_or_path}"
    h = hashlib.blake2b(digest_size=4)
    config = path / "config.json"
    if config.is_file():
        h.update(config.read_bytes())
    for f in sorted(path.iterdir()):
        if f.is_file() and f.name.endswith(_WEIGHT_SUFFIXES):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"clip-{path.resolve().name}-{h.hexdigest()}"


def _looks_local(name_or_path: str) -> bool:
    return (
        name_or_path.startswith((".", "/", "~"))
        or "\\" in name_or_path
        or (Path(name_or_path).expanduser().exists())
    )


class ClipTextEncoder:
    """The CLIP text tower with projection.

    Args:
        name_or_path: A folder holding the model and tokenizer (``save_pretrained``), or a hub
            name such as ``openai/clip-vit-base-patch32``.
        device: Torch device the model runs on; outputs are returned on the CPU.
        local_files_only: Never use the network (the default); set False to let transformers
            download a hub name.
        batch_size: Texts per forward pass.

    Attributes:
        id: See :func:`clip_encoder_id`; the embedding-cache key.
        dim: The projection dimension D (``config.projection_dim``).
        model: The ``CLIPTextModelWithProjection`` (eval mode).
        tokenizer: Its tokenizer.

    Raises:
        FileNotFoundError: the folder does not exist or holds no loadable CLIP text model.
    """

    def __init__(
        self,
        name_or_path: str,
        device: str = "cpu",
        local_files_only: bool = True,
        batch_size: int = 256,
    ) -> None:
        name_or_path = str(name_or_path)
        if _looks_local(name_or_path):
            path = Path(name_or_path).expanduser()
            if not path.is_dir():
                raise FileNotFoundError(
                    f"CLIP model folder not found: {path}. Give a folder written by "
                    "save_pretrained (config.json, weights, tokenizer files)."
                )
            name_or_path = str(path)
        from transformers import AutoTokenizer, CLIPTextModelWithProjection

        try:
            with quiet_hf_loading():
                tokenizer = AutoTokenizer.from_pretrained(
                    name_or_path, local_files_only=local_files_only
                )
                model = CLIPTextModelWithProjection.from_pretrained(
                    name_or_path, local_files_only=local_files_only
                )
        except (OSError, ValueError) as e:  # transformers raises ValueError for empty folders
            hint = (
                " It is not on this machine: pass local_files_only=False to download it."
                if local_files_only and not _looks_local(name_or_path)
                else ""
            )
            raise FileNotFoundError(
                f"Could not load a CLIP text model and tokenizer from '{name_or_path}': {e}.{hint}"
            ) from e
        self._setup(
            model=model.to(device),
            tokenizer=tokenizer,
            encoder_id=clip_encoder_id(name_or_path),
            batch_size=batch_size,
        )

    @classmethod
    def from_modules(
        cls,
        model: CLIPTextModelWithProjection,
        tokenizer: Any,
        id: str,
        batch_size: int = 256,
    ) -> ClipTextEncoder:
        """Wrap an already built model and tokenizer.

        Args:
            model: A ``CLIPTextModelWithProjection`` (on any device).
            tokenizer: Its tokenizer (a transformers tokenizer).
            id: The cache id; must change whenever the weights do.
            batch_size: Texts per forward pass.
        """
        self = cls.__new__(cls)
        self._setup(model=model, tokenizer=tokenizer, encoder_id=id, batch_size=batch_size)
        return self

    def _setup(
        self,
        *,
        model: CLIPTextModelWithProjection,
        tokenizer: Any,
        encoder_id: str,
        batch_size: int,
    ) -> None:
        if not str(encoder_id):
            raise ValueError("ClipTextEncoder needs a non-empty id (the embedding-cache key).")
        if int(batch_size) < 1:
            raise ValueError(f"ClipTextEncoder batch_size must be >= 1, got {batch_size}.")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.id = str(encoder_id)
        self.dim = int(model.config.projection_dim)
        self.batch_size = int(batch_size)
        limit = int(model.config.max_position_embeddings)
        tok_limit = getattr(tokenizer, "model_max_length", None)
        self.max_length = min(limit, int(tok_limit)) if tok_limit else limit

    def __repr__(self) -> str:
        return f"ClipTextEncoder(id={self.id!r}, dim={self.dim})"

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Encode texts.

        Args:
            texts: K strings (truncated to the model's context length).
        Returns:
            ``float32[K, D]`` rows of unit L2 norm, on the CPU (``[0, D]`` for no texts).
        """
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"Text {i} is {type(t).__name__}, not a string: {t!r}.")
        device = next(self.model.parameters()).device
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            with torch.inference_mode():
                out = self.model(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                )
                emb = F.normalize(out.text_embeds.float(), dim=-1)
            chunks.append(emb.to("cpu").clone())
        if not chunks:
            return torch.zeros((0, self.dim), dtype=torch.float32)
        return torch.cat(chunks, dim=0)
