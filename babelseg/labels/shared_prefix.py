"""A frozen transformer text tower read as one shared prefix (the learned context) followed by
each class's own tokens, so the prefix is computed once per call instead of once per class.

The input of class k is ``[BOS] [W]_1 ... [W]_M <class text> [EOS]``. Attention is split in two:

- **prefix** ``[BOS] [W]_1 ... [W]_M`` attends only to the prefix (CLIP: causally, as CLIP
  always does; BERT/MiniLM: bidirectionally within the prefix), so its states are the same for
  every class: the prefix appears once;
- **suffix** ``<class text> [EOS]`` attends to the whole prefix and to its own class's tokens
  (CLIP: causally).

All classes therefore run as one packed sequence ``prefix, suffix_1, ..., suffix_K`` without
padding, with a block mask keeping the classes apart (:func:`packed_mask`).

For CLIP this is exactly the tower's own causal forward (the context precedes the class text
and never sees it). For BERT it is a prefix-attention variant: in the plain bidirectional
forward the context tokens would also read the class text, which costs a full forward per
class over M + 2 + n tokens; here a class costs its n + 1 own tokens. It has the information
flow of the papers' CLIP prompts (LMSeg.txt section 3.2, MS3.txt section 3.2).

Pooling never includes the context tokens: BERT means over the class-text tokens only (not
[CLS], context or [SEP]); CLIP takes the end-of-text state through ``final_layer_norm`` and
``text_projection``.

What does not depend on the context is computed once per list of texts and reused while the
context trains (:class:`PackedSuffixes`): the suffix tokens' embedding-layer output and their
first layer's queries, keys and values. The last layer computes only the rows the pooling reads
(every row is still attended to).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

MAX_CHUNK_TOKENS = 512
"""Suffix tokens per packed chunk (bounds the attention of a large vocabulary)."""


@dataclass(frozen=True)
class PackedSuffixes:
    """The suffixes of K texts packed into one token sequence, split into chunks of whole texts.

    Attributes:
        token_ids: ``int64[T]`` token ids (T: all suffix tokens of all texts, no padding).
        segments: ``int64[T]`` index of each token's text (0..K-1), non-decreasing.
        pooled: ``bool[T]`` tokens read by the pooling (BERT: class-text tokens; CLIP: EOS).
        embeddings: ``float[T, H]`` the tower's embedding-layer output of the tokens (constant).
        first_qkv: The first layer's queries, keys and values of the tokens, ``float[T, H]``
            each (constant: the first layer's input does not depend on the context).
        chunks: ``[(start, end)]`` token ranges, each holding whole texts.
        masks: One ``bool[P + n, P + n]`` attention mask per chunk (n = end - start; True =
            attend), see :func:`packed_mask`.
        count: K.
    """

    token_ids: torch.Tensor
    segments: torch.Tensor
    pooled: torch.Tensor
    embeddings: torch.Tensor
    first_qkv: tuple[torch.Tensor, ...]
    chunks: list[tuple[int, int]]
    masks: list[torch.Tensor]
    count: int


class SharedPrefixTower:
    """The frozen layers of a BERT (MiniLM) or CLIP text tower, run as prefix + packed suffixes.

    Args:
        transformer: ``transformers.BertModel`` or ``CLIPTextModelWithProjection`` (frozen; read,
            never modified).
        kind: ``"bert"`` or ``"clip"``.
    """

    def __init__(self, *, transformer: nn.Module, kind: str) -> None:
        if kind not in ("bert", "clip"):
            raise ValueError(f"kind must be 'bert' or 'clip', got {kind!r}.")
        self.transformer = transformer
        self.kind = kind
        self.causal = kind == "clip"
        self.num_heads = int(transformer.config.num_attention_heads)

    def _layers(self) -> list[nn.Module]:
        if self.kind == "bert":
            return list(self.transformer.encoder.layer)
        return list(self.transformer.text_model.encoder.layers)

    def _embed(self, token_embeddings: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``float[n, H]`` token vectors at ``int64[n]`` positions -> the embedding layer's
        ``float[n, H]`` output (BERT: + position + type 0, LayerNorm; CLIP: + position)."""
        if self.kind == "bert":
            emb = self.transformer.embeddings
            summed = token_embeddings + emb.position_embeddings(positions)
            summed = summed + emb.token_type_embeddings(torch.zeros_like(positions))
            return emb.LayerNorm(summed)
        emb = self.transformer.text_model.embeddings
        return token_embeddings + emb.position_embedding(positions)

    def _qkv(self, layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Queries, keys and values ``float[n, H]`` of ``x float[n, H]`` (CLIP: of the
        layer-normed ``x``)."""
        if self.kind == "bert":
            proj = layer.attention.self
            return proj.query(x), proj.key(x), proj.value(x)
        proj = layer.self_attn
        normed = layer.layer_norm1(x)
        return proj.q_proj(normed), proj.k_proj(normed), proj.v_proj(normed)

    def pack(self, tokenised: list[list[int]], *, context_length: int) -> PackedSuffixes:
        """Pack the suffixes (every token after the first) of tokenised texts.

        Args:
            tokenised: K token-id lists as the tokenizer gives them (``[BOS] text [EOS]``).
            context_length: M (positions of the suffix start at ``1 + M``).
        Returns:
            The packed suffixes on the tower's device, the constant parts computed without
            gradient.
        """
        device = next(self.transformer.parameters()).device
        ids, positions, segments, pooled = [], [], [], []
        for k, tokens in enumerate(tokenised):
            n = len(tokens) - 1
            ids += tokens[1:]
            positions += range(1 + context_length, 1 + context_length + n)
            segments += [k] * n
            if self.kind == "bert":  # class-text tokens: all but the final [SEP]
                pooled += [True] * (n - 1) + [False]
            else:  # the end-of-text token
                pooled += [False] * (n - 1) + [True]
        token_ids = torch.tensor(ids, dtype=torch.long, device=device)
        seg = torch.tensor(segments, dtype=torch.long, device=device)
        with torch.no_grad():
            embeddings = self._embed(
                self.transformer.get_input_embeddings()(token_ids),
                torch.tensor(positions, dtype=torch.long, device=device),
            )
            first_qkv = self._qkv(self._layers()[0], embeddings)
        chunks = _chunks([len(t) - 1 for t in tokenised], limit=MAX_CHUNK_TOKENS)
        return PackedSuffixes(
            token_ids=token_ids,
            segments=seg,
            pooled=torch.tensor(pooled, dtype=torch.bool, device=device),
            embeddings=embeddings,
            first_qkv=first_qkv,
            chunks=chunks,
            masks=[
                packed_mask(seg[a:b], prefix_length=1 + context_length, causal=self.causal)
                for a, b in chunks
            ],
            count=len(tokenised),
        )

    def _layer(
        self,
        layer: nn.Module,
        x: torch.Tensor,
        *,
        mask: torch.Tensor,
        qkv: tuple[torch.Tensor, ...] | None = None,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One transformer layer on a packed sequence.

        Args:
            layer: The frozen layer.
            x: ``float[N, H]`` its input (N = P + n).
            mask: ``bool[N, N]``, True = attend.
            qkv: :meth:`_qkv` of ``x`` when already known (the first layer).
            rows: ``bool[N]``: compute only these rows' outputs (the last layer); every row is
                still attended to.
        Returns:
            ``float[N', H]``, N' the rows kept.
        """
        q, k, v = qkv if qkv is not None else self._qkv(layer, x)
        if rows is not None:
            q, x, mask = q[rows], x[rows], mask[rows]
        q, k, v = (t.unflatten(-1, (self.num_heads, -1)).transpose(0, 1) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        attended = attended.transpose(0, 1).flatten(1)
        if self.kind == "bert":
            hidden = layer.attention.output(attended, x)
            return layer.output(layer.intermediate(hidden), hidden)
        hidden = x + layer.self_attn.out_proj(attended)
        return hidden + layer.mlp(layer.layer_norm2(hidden))

    def forward(
        self, context: torch.Tensor, packed: PackedSuffixes, *, bos_id: int
    ) -> torch.Tensor:
        """Embed K texts behind a shared context.

        Args:
            context: ``float[M, H]`` context vectors (may require grad).
            packed: The texts' suffixes (:meth:`pack` with the same M).
            bos_id: The first token id of every tokenised text ([CLS] / BOS).
        Returns:
            ``float[K, D]`` pooled embeddings (not normalised), differentiable in ``context``.
        """
        m = context.shape[0]
        device = packed.token_ids.device
        layers = self._layers()
        bos = self.transformer.get_input_embeddings()(torch.tensor([bos_id], device=device))
        prefix = self._embed(
            torch.cat([bos, context.to(bos.dtype)]), torch.arange(1 + m, device=device)
        )
        prefix_qkv = self._qkv(layers[0], prefix)
        skip = torch.zeros(1 + m, dtype=torch.bool, device=device)
        outputs = []
        for (start, end), mask in zip(packed.chunks, packed.masks):
            x = torch.cat([prefix, packed.embeddings[start:end]])
            for i, layer in enumerate(layers):
                x = self._layer(
                    layer,
                    x,
                    mask=mask,
                    qkv=(
                        tuple(
                            torch.cat([p, s[start:end]])
                            for p, s in zip(prefix_qkv, packed.first_qkv)
                        )
                        if i == 0
                        else None
                    ),
                    rows=(
                        torch.cat([skip, packed.pooled[start:end]])
                        if i == len(layers) - 1
                        else None
                    ),
                )
            outputs.append(x)
        return self._pool(torch.cat(outputs), packed)

    def _pool(self, rows: torch.Tensor, packed: PackedSuffixes) -> torch.Tensor:
        """The last states of the pooled tokens ``float[T_pooled, H]`` -> ``float[K, D]``: BERT
        the mean of each text's class-text tokens; CLIP its EOS state through
        ``final_layer_norm`` and ``text_projection``."""
        if self.kind == "clip":  # one EOS per text, in text order
            return self.transformer.text_projection(
                self.transformer.text_model.final_layer_norm(rows)
            )
        segments = packed.segments[packed.pooled]
        sums = rows.new_zeros(packed.count, rows.shape[1]).index_add(0, segments, rows)
        counts = torch.bincount(segments, minlength=packed.count).clamp(min=1)
        return sums / counts.unsqueeze(1).to(sums.dtype)


def _chunks(lengths: list[int], *, limit: int) -> list[tuple[int, int]]:
    """Token ranges of consecutive whole texts with at most ``limit`` tokens each (a longer
    text gets a chunk of its own)."""
    chunks, start, end = [], 0, 0
    for n in lengths:
        if end > start and end - start + n > limit:
            chunks.append((start, end))
            start = end
        end += n
    if end > start:
        chunks.append((start, end))
    return chunks


def packed_mask(segments: torch.Tensor, *, prefix_length: int, causal: bool) -> torch.Tensor:
    """The attention mask of ``prefix, suffixes`` packed in one sequence.

    Args:
        segments: ``int64[n]`` the text of each suffix token.
        prefix_length: P.
        causal: CLIP: every row sees only keys at or before its own position in its text.
    Returns:
        ``bool[P + n, P + n]``, True = attend: prefix rows see the prefix (causal: up to
        themselves); suffix rows see the whole prefix and their own text's tokens.
    """
    n = len(segments)
    device = segments.device
    mask = torch.zeros(prefix_length + n, prefix_length + n, dtype=torch.bool, device=device)
    prefix = torch.ones(prefix_length, prefix_length, dtype=torch.bool, device=device)
    mask[:prefix_length, :prefix_length] = prefix.tril() if causal else prefix
    same = segments[:, None] == segments[None, :]
    if causal:
        same = same & torch.ones_like(same).tril()
    mask[prefix_length:, :prefix_length] = True
    mask[prefix_length:, prefix_length:] = same
    return mask
