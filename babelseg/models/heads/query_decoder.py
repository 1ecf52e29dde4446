"""Mask2Former-style query decoder with optional category-guided (text) cross-attention (LMSeg).

N learnable queries (features plus positional embeddings) go through L layers. Layer ``i`` attends
to level ``i mod num_levels`` of the pixel decoder's multi-scale features (coarsest first), each
level with a 2-D sine positional encoding and a learnable level embedding. A layer is, in this
order (post-norm, as Mask2Former's default: ``x = LayerNorm(x + sublayer(x))``, no dropout):

1. visual cross-attention to the level's features; with ``masked_attention`` each query only sees
   the positions where the previous prediction's mask logit is >= 0 (sigmoid >= 0.5), and a
   query whose mask is empty there sees every position (Mask2Former's fix);
2. with ``text_attention``, cross-attention to the image's text embeddings projected to the
   hidden size (LMSeg's category-guided decoding); ``decoding_order="text-visual"`` swaps 1 and 2.
   Images carry different label spaces: texts are padded and the padding masked out;
3. self-attention among the queries;
4. feed-forward network (ReLU).

Predictions are made from the initial queries and after every layer: ``LayerNorm`` then a linear
class embedding (dimension D of the text embeddings) and a 3-layer MLP mask embedding whose dot
product with the stride-4 ``mask_features`` gives the mask logits. The last one is the output,
the others are ``aux`` (``num_layers`` of them) for the auxiliary losses.

DaTaSeg's dataset-specific ablation (:mod:`~babelseg.models.heads.dataset_modules`): with
``dataset_queries`` each image's dataset adds its own queries after the N shared ones (the
outputs then have ``N + dataset_queries`` proposals), with ``dataset_class_heads`` the class
embedding comes from the image's dataset's linear head instead of the shared one.

No submodule is called ``backbone`` or ``decoder``: checkpoint transfer (``train.init_from``)
pairs tensors by those names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from babelseg.models.heads.attention import Attention
from babelseg.models.heads.dataset_modules import DatasetClassHeads, DatasetQueries
from babelseg.models.heads.position_encoding import sine_position_encoding
from babelseg.models.outputs import MaskOutput

DECODING_ORDERS = ("visual-text", "text-visual")


class QueryDecoderLayer(nn.Module):
    """One layer: visual (and text) cross-attention, self-attention, FFN; post-norm.

    Args:
        dim: Hidden size C.
        num_heads: Attention heads.
        ffn_dim: Hidden size of the feed-forward network.
        text_attention: Add the text cross-attention.
        decoding_order: ``"visual-text"`` or ``"text-visual"``.
    """

    def __init__(
        self, *, dim: int, num_heads: int, ffn_dim: int, text_attention: bool, decoding_order: str
    ) -> None:
        super().__init__()
        self.visual_attn = Attention(dim=dim, num_heads=num_heads)
        self.visual_norm = nn.LayerNorm(dim)
        self.text_attn = Attention(dim=dim, num_heads=num_heads) if text_attention else None
        self.text_norm = nn.LayerNorm(dim) if text_attention else None
        self.self_attn = Attention(dim=dim, num_heads=num_heads)
        self.self_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Linear(ffn_dim, dim)
        )
        self.ffn_norm = nn.LayerNorm(dim)
        self.text_first = decoding_order == "text-visual"

    def forward(
        self,
        x: torch.Tensor,
        query_pos: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        attn_mask: torch.Tensor | None,
        text: torch.Tensor | None,
        text_mask: torch.Tensor | None,
        has_text: torch.Tensor | None,
    ) -> torch.Tensor:
        """Args:
            x: ``float[B, Q, C]`` queries.
            query_pos: ``float[B, Q, C]`` query positional embeddings.
            memory: ``float[B, HW, C]`` image features of this layer's level.
            memory_pos: ``float[HW, C]`` their positional encoding.
            attn_mask: ``bool[B, 1, Q, HW]`` masked attention (True = attend) or None.
            text: ``float[B, K, C]`` projected, padded text embeddings, or None.
            text_mask: ``bool[B, 1, 1, K]`` True on real (not padded) texts.
            has_text: ``bool[B]`` images with at least one text, or None when all have.
        Returns:
            ``float[B, Q, C]``.
        """
        use_text = self.text_attn is not None and text is not None
        if use_text and self.text_first:
            x = self._text(x, query_pos, text, text_mask, has_text)
        attended = self.visual_attn(x + query_pos, memory + memory_pos, memory, attn_mask)
        x = self.visual_norm(x + attended)
        if use_text and not self.text_first:
            x = self._text(x, query_pos, text, text_mask, has_text)
        q = x + query_pos
        x = self.self_norm(x + self.self_attn(q, q, x))
        return self.ffn_norm(x + self.ffn(x))

    def _text(
        self,
        x: torch.Tensor,
        query_pos: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        has_text: torch.Tensor | None,
    ) -> torch.Tensor:
        out = self.text_norm(x + self.text_attn(x + query_pos, text, text, text_mask))
        if has_text is None:
            return out
        return torch.where(has_text[:, None, None], out, x)


class MLP(nn.Module):
    """``Linear -> ReLU -> ... -> Linear`` with ``num_layers`` linear layers."""

    def __init__(self, *, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``float[..., in_dim]``. Returns: ``float[..., out_dim]``."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class QueryDecoder(nn.Module):
    """Mask2Former-style query decoder; see the module docstring.

    Args:
        in_channels: Channels of the pixel decoder's ``mask_features`` and ``multi_scale`` maps.
        hidden_dim: Width C of the queries (a multiple of 4 and of ``num_heads``).
        embed_dim: Dimension D of the text embeddings (class embeddings and text inputs).
        num_queries: N queries.
        num_layers: L decoder layers.
        num_heads: Attention heads.
        ffn_dim: Hidden size of the feed-forward networks.
        num_levels: Multi-scale levels used round robin (the coarsest ``num_levels`` of those
            given; at most ``num_layers``).
        masked_attention: Mask2Former's masked visual cross-attention.
        text_attention: LMSeg's category-guided decoding (text cross-attention in every layer).
        decoding_order: ``"visual-text"`` (LMSeg's default) or ``"text-visual"``.
        num_datasets: T training datasets of the dataset-specific modules (0: none).
        dataset_queries: ``Q_d`` queries per dataset (0: none).
        dataset_class_heads: One class head per dataset instead of the shared ``class_head``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        hidden_dim: int,
        embed_dim: int,
        num_queries: int,
        num_layers: int,
        num_heads: int,
        ffn_dim: int,
        num_levels: int = 3,
        masked_attention: bool = True,
        text_attention: bool = False,
        decoding_order: str = "visual-text",
        num_datasets: int = 0,
        dataset_queries: int = 0,
        dataset_class_heads: bool = False,
    ) -> None:
        super().__init__()
        if hidden_dim % 4 or hidden_dim % num_heads:
            raise ValueError(
                f"hidden_dim must be a multiple of 4 and of num_heads={num_heads}, got {hidden_dim}"
            )
        if decoding_order not in DECODING_ORDERS:
            raise ValueError(
                f"Unknown decoding_order {decoding_order!r}; valid: {', '.join(DECODING_ORDERS)}"
            )
        for name, value in (
            ("num_queries", num_queries),
            ("num_layers", num_layers),
            ("num_levels", num_levels),
            ("ffn_dim", ffn_dim),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        # Levels no layer reaches would hold unused parameters (an error under DDP).
        num_levels = min(num_levels, num_layers)
        self.hidden_dim = hidden_dim
        self.embed_dim = embed_dim
        self.num_queries = num_queries
        self.num_levels = num_levels
        self.masked_attention = masked_attention
        self.text_attention = text_attention
        self.input_proj = nn.ModuleList(
            nn.Conv2d(in_channels, hidden_dim, 1) if in_channels != hidden_dim else nn.Identity()
            for _ in range(num_levels)
        )
        self.level_embed = nn.Embedding(num_levels, hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_pos = nn.Embedding(num_queries, hidden_dim)
        self.text_proj = nn.Linear(embed_dim, hidden_dim) if text_attention else None
        self.layers = nn.ModuleList(
            QueryDecoderLayer(
                dim=hidden_dim,
                num_heads=num_heads,
                ffn_dim=ffn_dim,
                text_attention=text_attention,
                decoding_order=decoding_order,
            )
            for _ in range(num_layers)
        )
        for p in self.layers.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.output_norm = nn.LayerNorm(hidden_dim)
        t, c = num_datasets, hidden_dim
        self.dataset_queries = (
            DatasetQueries(num_datasets=t, num_queries=dataset_queries, dim=c)
            if dataset_queries
            else None
        )
        self.dataset_class_heads = (
            DatasetClassHeads(num_datasets=t, in_dim=c, embed_dim=embed_dim)
            if dataset_class_heads
            else None
        )
        self.class_head = None if dataset_class_heads else nn.Linear(hidden_dim, embed_dim)
        self.mask_head = MLP(
            in_dim=hidden_dim, hidden_dim=hidden_dim, out_dim=in_channels, num_layers=3
        )
        self._pos_cache: dict[tuple[int, int, str], torch.Tensor] = {}

    def forward(
        self,
        mask_features: torch.Tensor,
        multi_scale: list[torch.Tensor],
        texts: list[torch.Tensor] | None = None,
        dataset_rows: torch.Tensor | None = None,
    ) -> MaskOutput:
        """Decode the queries.

        Args:
            mask_features: ``float[B, C, H, W]`` per-pixel features (stride 4).
            multi_scale: ``float[B, C, h_i, w_i]`` maps, coarsest first (at least
                ``num_levels``).
            texts: Per image ``float[K_b, D]`` text embeddings of its label space; required with
                ``text_attention`` (ignored otherwise).
            dataset_rows: ``int64[B]`` each image's dataset row; required with dataset-specific
                modules (ignored otherwise).
        Returns:
            :class:`MaskOutput` with ``mask_logits`` ``float[B, N, H, W]``, ``class_embeddings``
            ``float[B, N, D]`` and ``aux``: the same for the initial queries and every layer but
            the last (``num_layers`` entries, first to last).
        """
        if len(multi_scale) < self.num_levels:
            raise ValueError(
                f"The query decoder uses {self.num_levels} levels but got {len(multi_scale)} "
                "multi-scale maps; lower num_levels"
            )
        batch = mask_features.shape[0]
        memories, positions, sizes = [], [], []
        for i, feature in enumerate(multi_scale[: self.num_levels]):
            h, w = feature.shape[-2:]
            sizes.append((h, w))
            positions.append(self._position(h, w, feature.device))
            memory = self.input_proj[i](feature).flatten(2).transpose(1, 2)
            memories.append(memory + self.level_embed.weight[i])
        text, text_mask, has_text = self._texts(texts, batch, mask_features.device)
        query_pos = self.query_pos.weight.unsqueeze(0).expand(batch, -1, -1)
        x = self.query_feat.weight.unsqueeze(0).expand(batch, -1, -1)
        rows = self._rows(dataset_rows, batch)
        if self.dataset_queries is not None:
            x, query_pos = self.dataset_queries(x, query_pos, rows)

        predictions = []
        masks, classes, attn_mask = self._predict(x, mask_features, sizes[0], rows)
        predictions.append((masks, classes))
        for i, layer in enumerate(self.layers):
            x = layer(
                x,
                query_pos,
                memories[i % self.num_levels],
                positions[i % self.num_levels],
                attn_mask,
                text,
                text_mask,
                has_text,
            )
            is_last = i == len(self.layers) - 1
            next_size = None if is_last else sizes[(i + 1) % self.num_levels]
            masks, classes, attn_mask = self._predict(x, mask_features, next_size, rows)
            predictions.append((masks, classes))
        aux = [MaskOutput(mask_logits=m, class_embeddings=c) for m, c in predictions[:-1]]
        return MaskOutput(mask_logits=masks, class_embeddings=classes, aux=aux)

    def _rows(self, rows: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """The ``int64[B]`` dataset rows, checked present when dataset modules need them."""
        if self.dataset_queries is None and self.dataset_class_heads is None:
            return None
        if rows is None or rows.shape != (batch,):
            got = None if rows is None else tuple(rows.shape)
            raise ValueError(
                f"The query decoder has dataset-specific modules: it needs int64[{batch}] "
                f"dataset rows (one per image), got {got}."
            )
        return rows

    def _predict(
        self,
        x: torch.Tensor,
        mask_features: torch.Tensor,
        attn_size: tuple[int, int] | None,
        rows: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Heads on ``float[B, N, C]`` queries -> mask logits ``[B, N, H, W]``, class embeddings
        ``[B, N, D]`` (per-dataset heads: by ``rows``) and, with masked attention, the next
        layer's ``bool[B, 1, N, h*w]`` mask."""
        y = self.output_norm(x)
        if self.dataset_class_heads is not None:
            classes = self.dataset_class_heads(y, rows)
        else:
            classes = self.class_head(y)
        b, c, h, w = mask_features.shape
        masks = torch.bmm(self.mask_head(y), mask_features.reshape(b, c, h * w))
        masks = masks.view(b, -1, h, w)
        attn_mask = None
        if self.masked_attention and attn_size is not None:
            with torch.no_grad():
                small = F.interpolate(
                    masks.detach(), size=attn_size, mode="bilinear", align_corners=False
                )
                attend = small.flatten(2) >= 0
                attend = attend | ~attend.any(-1, keepdim=True)
                attn_mask = attend.unsqueeze(1)
        return masks, classes, attn_mask

    def _texts(
        self, texts: list[torch.Tensor] | None, batch: int, device: torch.device
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Pad the per-image texts: ``float[B, K, C]`` projected texts, ``bool[B, 1, 1, K]``
        validity and ``bool[B]`` "has any text" (None when every image has)."""
        if not self.text_attention:
            return None, None, None
        if texts is None or len(texts) != batch:
            got = None if texts is None else len(texts)
            raise ValueError(
                f"text_attention needs one float[K_b, {self.embed_dim}] text tensor per image "
                f"({batch}), got {got}"
            )
        sizes = [int(t.shape[0]) for t in texts]  # host ints: nothing read back from the device
        lengths, k = torch.tensor(sizes, device=device), max(max(sizes), 1)
        padded = torch.stack(
            [
                F.pad(t.to(device=device, dtype=self.text_proj.weight.dtype), (0, 0, 0, k - len(t)))
                for t in texts
            ]
        )
        valid = torch.arange(k, device=device)[None, :] < lengths[:, None]
        has_text = valid.any(1)
        all_have = min(sizes) > 0
        if not all_have:
            # SDPA needs one key per row: let text-less images see the (zero) padding; their
            # text attention's result is discarded in the layer.
            valid[:, 0] |= ~has_text
        return self.text_proj(padded), valid[:, None, None, :], None if all_have else has_text

    def _position(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """The sine encoding of an ``h x w`` level, cached per size (not under inference mode,
        whose tensors training could not use)."""
        if torch.is_inference_mode_enabled():
            return sine_position_encoding(height, width, self.hidden_dim, device=device)
        key = (height, width, str(device))
        if key not in self._pos_cache:
            if len(self._pos_cache) >= 64:
                self._pos_cache.clear()
            self._pos_cache[key] = sine_position_encoding(
                height, width, self.hidden_dim, device=device
            )
        return self._pos_cache[key]
