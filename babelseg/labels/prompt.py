"""Learnable prompt context (CoOp, Zhou et al. 2021) in front of the class text, through a frozen
text encoder: the input becomes ``[BOS] [W]_1 ... [W]_M <class text> [EOS]`` (MS3.txt section
3.2, LMSeg.txt "[v]_1 ... [v]_L [class name]").

Only the M context vectors are trained; the encoder's weights stay fixed and are kept out of the
module tree (a plain attribute), so they never enter a checkpoint or an optimizer. The encoder
runs as a shared prefix ``[BOS] [W]_1 ... [W]_M`` computed once per call plus each class's own
tokens (:mod:`babelseg.labels.shared_prefix`; the context never reads the class text, as in
CLIP's causal tower), and the pooling leaves the context out, so learning the context can move
classes apart instead of giving every class the same shared part:

- ``minilm`` (sentence-transformers all-MiniLM-L6-v2, a BERT): mean of the last hidden states
  over the class-text tokens only ([CLS], context and [SEP] excluded), L2-normalised;
- ``clip`` (``CLIPTextModelWithProjection``): the end-of-text token's state through
  ``final_layer_norm`` and ``text_projection``, L2-normalised (exactly CLIP's own forward with the
  context spliced in after BOS).

Per call, each distinct text is encoded once; the tokenisation and the embedding-layer output of
the class tokens (which do not depend on the context) are cached per list of texts.

With ``context_length=0`` the CLIP output equals the frozen encoder's ``encode``; the MiniLM
output differs from the sentence-transformers embedding (other pooling, and [CLS] does not read
the text), so prompted and frozen MiniLM embeddings are not interchangeable.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from babelseg.labels.cache import CachedTextEncoder
from babelseg.labels.encoders.base import TextEncoder
from babelseg.labels.encoders.clip import ClipTextEncoder
from babelseg.labels.encoders.minilm import MiniLMTextEncoder
from babelseg.labels.shared_prefix import PackedSuffixes, SharedPrefixTower

PromptableEncoder = MiniLMTextEncoder | ClipTextEncoder

PACKED_CACHE_SIZE = 64
"""Lists of texts whose packed, embedded class tokens are kept (least recently used dropped)."""


class PromptLearner(nn.Module):
    """M learnable context vectors read by a frozen transformer text encoder.

    Args:
        encoder: A MiniLM or CLIP text encoder (not wrapped in a cache); its weights are frozen
            (``requires_grad_(False)``, eval mode) and shared, not copied.
        context_length: M, the number of context vectors.
        init_std: Standard deviation of the N(0, std) initialisation (CoOp: 0.02).

    Attributes:
        context: ``float[M, H]`` parameter (H = the encoder's token-embedding width); a
            ``[0, H]`` buffer when M = 0 (nothing to train).
        dim: Output dimension D.
    """

    def __init__(
        self, *, encoder: PromptableEncoder, context_length: int, init_std: float = 0.02
    ) -> None:
        super().__init__()
        if context_length < 0:
            raise ValueError(f"context_length must be >= 0, got {context_length}.")
        if isinstance(encoder, MiniLMTextEncoder):
            transformer = encoder.model[0].auto_model
            tokenizer = encoder.model.tokenizer
            limit = int(encoder.model.max_seq_length)
            kind, self._pooling = "bert", "class-token mean"
        elif isinstance(encoder, ClipTextEncoder):
            transformer = encoder.model
            tokenizer = encoder.tokenizer
            limit = int(encoder.max_length)
            kind, self._pooling = "clip", "eos projection"
        else:
            raise ValueError(
                f"PromptLearner needs a MiniLM or CLIP text encoder, got {type(encoder).__name__}."
            )
        if context_length >= limit - 2:
            raise ValueError(
                f"context_length={context_length} leaves no room for the text: the encoder "
                f"reads at most {limit} tokens. Use a shorter context."
            )
        transformer.requires_grad_(False).eval()
        # A plain attribute: not a submodule, so not in state_dict(), parameters() or .to().
        self.__dict__["_tower"] = SharedPrefixTower(transformer=transformer, kind=kind)
        self._tokenizer = tokenizer
        self._max_text_tokens = limit - context_length
        self.context_length = int(context_length)
        self.dim = int(encoder.dim)
        width = transformer.get_input_embeddings().embedding_dim
        if context_length > 0:
            self.context = nn.Parameter(torch.randn(context_length, width) * init_std)
        else:
            self.register_buffer("context", torch.zeros(0, width), persistent=False)
        self._bos_id: int | None = None
        self._packed: OrderedDict[tuple, PackedSuffixes] = OrderedDict()

    @property
    def transformer(self) -> nn.Module:
        """The frozen transformer (moved to the context's device on each forward)."""
        return self.__dict__["_tower"].transformer

    def extra_repr(self) -> str:
        return f"context_length={self.context_length}, dim={self.dim}, pooling={self._pooling}"

    def _pack(self, strings: tuple[str, ...], device: torch.device) -> PackedSuffixes:
        """The class tokens of distinct ``strings`` packed and embedded (cached per list)."""
        key = (strings, str(device))
        if key in self._packed:
            self._packed.move_to_end(key)
            return self._packed[key]
        tokenised = self._tokenizer(
            list(strings), truncation=True, max_length=self._max_text_tokens
        )["input_ids"]
        for text, tokens in zip(strings, tokenised):
            if len(tokens) < 3:
                raise ValueError(
                    f"Label text {text!r} has no tokens besides the start and end markers; "
                    "give every class a non-empty name or description."
                )
        self._bos_id = int(tokenised[0][0])
        packed = self.__dict__["_tower"].pack(tokenised, context_length=self.context_length)
        self._packed[key] = packed
        if len(self._packed) > PACKED_CACHE_SIZE:
            self._packed.popitem(last=False)
        return packed

    def forward(self, strings: Sequence[str]) -> torch.Tensor:
        """Embed texts with the learned context.

        Args:
            strings: K label texts (repeats are encoded once).
        Returns:
            ``float[K, D]`` unit-norm rows on the context's device, differentiable with respect
            to the context only.
        """
        strings = tuple(strings)
        device = self.context.device
        if not strings:
            return torch.zeros(0, self.dim, device=device)
        for i, s in enumerate(strings):
            if not isinstance(s, str):
                raise ValueError(f"Text {i} is {type(s).__name__}, not a string: {s!r}.")
        transformer = self.transformer
        if next(transformer.parameters()).device != device:
            transformer.to(device)
        distinct = tuple(dict.fromkeys(strings))
        packed = self._pack(distinct, device)
        pooled = self.__dict__["_tower"].forward(self.context, packed, bos_id=self._bos_id)
        pooled = F.normalize(pooled.float(), dim=-1)
        if len(distinct) == len(strings):
            return pooled
        row = {s: i for i, s in enumerate(distinct)}
        return pooled[torch.tensor([row[s] for s in strings], device=device)]


def prompt_learner_for(encoder: TextEncoder, context_length: int) -> PromptLearner:
    """A :class:`PromptLearner` over ``encoder`` (a :class:`CachedTextEncoder` is unwrapped).

    Raises:
        ValueError: the encoder has no transformer to read a context (e.g. ``hash``).
    """
    inner = encoder.encoder if isinstance(encoder, CachedTextEncoder) else encoder
    if not isinstance(inner, (MiniLMTextEncoder, ClipTextEncoder)):
        raise ValueError(
            f"prompt learning needs labels.encoder=minilm or clip (got encoder '{inner.id}', "
            "which has no transformer to read a learned context); or set the context length to 0."
        )
    return PromptLearner(encoder=inner, context_length=context_length)
