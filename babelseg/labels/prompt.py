"""Learnable prompt context (CoOp, Zhou et al. 2021) in front of the class text, through a frozen
text encoder: the input becomes ``[BOS] [W]_1 ... [W]_M <class text> [EOS]`` (MS3.txt section
3.2, LMSeg.txt "[v]_1 ... [v]_L [class name]").

Only the M context vectors are trained; the encoder's weights stay fixed and are kept out of the
module tree (a plain attribute), so they never enter a checkpoint or an optimizer. The context is
spliced in at the token-embedding layer: the tokenised text gets M placeholder ids after its first
token, and a forward hook on the input-embedding layer replaces their vectors by the context.
Positions, attention masks and pooling are then the encoder's own:

- ``minilm`` (sentence-transformers all-MiniLM-L6-v2, a BERT): mean over the attention mask of the
  last hidden states (context tokens included), L2-normalised, as the sentence-transformers model;
- ``clip`` (``CLIPTextModelWithProjection``): the end-of-text token's state (found from the ids,
  so shifted by M) through ``text_projection``, L2-normalised.

With ``context_length=0`` nothing is inserted and the output equals the frozen encoder's
``encode`` (up to float rounding): prompt learning starts from the plain text embeddings only
when M = 0; with M > 0 the N(0, 0.02) context already changes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from babelseg.labels.cache import CachedTextEncoder
from babelseg.labels.encoders.base import TextEncoder
from babelseg.labels.encoders.clip import ClipTextEncoder
from babelseg.labels.encoders.minilm import MiniLMTextEncoder

PromptableEncoder = MiniLMTextEncoder | ClipTextEncoder


class PromptLearner(nn.Module):
    """M learnable context vectors read by a frozen transformer text encoder.

    Args:
        encoder: A MiniLM or CLIP text encoder (not wrapped in a cache); its weights are frozen
            (``requires_grad_(False)``, eval mode) and shared, not copied.
        context_length: M, the number of context vectors (0 = the frozen encoder unchanged).
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
            self._pooling = "mean"
        elif isinstance(encoder, ClipTextEncoder):
            transformer = encoder.model
            tokenizer = encoder.tokenizer
            limit = int(encoder.max_length)
            self._pooling = "eos_projection"
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
        self.__dict__["_transformer"] = transformer
        self._tokenizer = tokenizer
        self._max_text_tokens = limit - context_length
        self.context_length = int(context_length)
        self.dim = int(encoder.dim)
        width = transformer.get_input_embeddings().embedding_dim
        if context_length > 0:
            self.context = nn.Parameter(torch.randn(context_length, width) * init_std)
        else:
            self.register_buffer("context", torch.zeros(0, width), persistent=False)
        self._tokens: dict[tuple[str, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def transformer(self) -> nn.Module:
        """The frozen transformer (moved to the context's device on each forward)."""
        return self.__dict__["_transformer"]

    def extra_repr(self) -> str:
        return f"context_length={self.context_length}, dim={self.dim}, pooling={self._pooling}"

    def _tokenize(self, strings: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids int64[K, L + M], attention_mask int64[K, L + M])`` on the CPU, with M
        placeholder ids (copies of the first token) after the first token; cached per list."""
        if strings not in self._tokens:
            batch = self._tokenizer(
                list(strings),
                padding=True,
                truncation=True,
                max_length=self._max_text_tokens,
                return_tensors="pt",
            )
            ids, mask = batch["input_ids"], batch["attention_mask"]
            m = self.context_length
            ids = torch.cat([ids[:, :1], ids[:, :1].expand(-1, m), ids[:, 1:]], dim=1)
            mask = torch.cat([mask[:, :1], mask[:, :1].expand(-1, m), mask[:, 1:]], dim=1)
            self._tokens[strings] = (ids, mask)
        return self._tokens[strings]

    def _splice(self, _module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        """Forward hook on the input-embedding layer: positions 1..M become the context."""
        m = self.context_length
        ctx = self.context.to(output.dtype).unsqueeze(0).expand(output.shape[0], -1, -1)
        return torch.cat([output[:, :1], ctx, output[:, 1 + m :]], dim=1)

    def forward(self, strings: Sequence[str]) -> torch.Tensor:
        """Embed texts with the learned context.

        Args:
            strings: K label texts.
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
        ids, mask = (t.to(device) for t in self._tokenize(strings))
        hook = transformer.get_input_embeddings().register_forward_hook(self._splice)
        try:
            if self._pooling == "mean":
                hidden = transformer(input_ids=ids, attention_mask=mask).last_hidden_state
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            else:
                pooled = transformer(input_ids=ids, attention_mask=mask).text_embeds
        finally:
            hook.remove()
        return F.normalize(pooled.float(), dim=-1)


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
