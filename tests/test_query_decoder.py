"""Query decoder and mask-classification model: shapes, aux outputs, masked attention, text
attention with per-image padded texts."""

from __future__ import annotations

import pytest
import torch

from babelseg.models.heads.position_encoding import sine_position_encoding
from babelseg.models.heads.query_decoder import QueryDecoder
from babelseg.models.mask_model import MaskClassificationModel, build_mask_model

C, D, Q = 16, 8, 5


def _decoder(**kwargs) -> QueryDecoder:
    torch.manual_seed(0)
    args = dict(
        in_channels=C,
        hidden_dim=C,
        embed_dim=D,
        num_queries=Q,
        num_layers=3,
        num_heads=2,
        ffn_dim=32,
        num_levels=3,
        masked_attention=True,
        text_attention=False,
    )
    args.update(kwargs)
    return QueryDecoder(**args).eval()


def _inputs(batch: int = 2, seed: int = 1) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    mask_features = torch.randn(batch, C, 8, 12, generator=g)
    multi_scale = [torch.randn(batch, C, h, w, generator=g) for h, w in ((1, 2), (2, 4), (4, 8))]
    return mask_features, multi_scale


def test_shapes_and_aux_count() -> None:
    decoder = _decoder(in_channels=C, hidden_dim=2 * C)
    mask_features, multi_scale = _inputs()
    out = decoder(mask_features, multi_scale)
    assert out.mask_logits.shape == (2, Q, 8, 12)
    assert out.class_embeddings.shape == (2, Q, D)
    assert len(out.aux) == 3  # the initial queries and the first two layers
    for aux in out.aux:
        assert aux.mask_logits.shape == (2, Q, 8, 12) and aux.class_embeddings.shape == (2, Q, D)
    assert not torch.allclose(out.aux[0].mask_logits, out.mask_logits)
    with pytest.raises(ValueError, match="levels"):
        decoder(mask_features, multi_scale[:2])


def test_sine_encoding_layout() -> None:
    pos = sine_position_encoding(2, 3, 8, device=torch.device("cpu"))
    assert pos.shape == (6, 8)
    # First half encodes y (same along a row), second half x (same down a column).
    torch.testing.assert_close(pos[0, :4], pos[2, :4])
    torch.testing.assert_close(pos[0, 4:], pos[3, 4:])
    assert not torch.allclose(pos[0, :4], pos[3, :4])


def _constant_mask_head(decoder: QueryDecoder, bias: torch.Tensor) -> None:
    """Make every query's mask embedding the constant ``bias`` (mask logits = features . bias)."""
    last = decoder.mask_head.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(bias)


def test_masked_attention_sees_only_inside_the_mask() -> None:
    decoder = _decoder()
    e0 = torch.zeros(C)
    e0[0] = 1.0
    _constant_mask_head(decoder, e0)
    mask_features, multi_scale = _inputs()
    mask_features[:, 0] = -1.0
    mask_features[:, 0, :, :4] = 1.0  # masks positive on columns 0-3 of 12
    out = decoder(mask_features, multi_scale).class_embeddings
    # The mask resampled (bilinear) to the level widths 2, 4, 8 is >= 0 on columns 0, 0 and
    # 0-2 (at width 8 column 2 reads 0.75 * 1 + 0.25 * -1); change every feature outside.
    perturbed = [m.clone() for m in multi_scale]
    for level, first_outside in zip(perturbed, (1, 1, 3)):
        level[..., first_outside:] += 5.0
    torch.testing.assert_close(decoder(mask_features, perturbed).class_embeddings, out)
    inside = [m.clone() for m in multi_scale]
    inside[2][..., 2] += 5.0
    assert not torch.allclose(decoder(mask_features, inside).class_embeddings, out)
    decoder.masked_attention = False
    assert not torch.allclose(decoder(mask_features, perturbed).class_embeddings, out)


def test_empty_masks_attend_everywhere() -> None:
    decoder = _decoder()
    _constant_mask_head(decoder, -torch.ones(C))
    mask_features, multi_scale = _inputs()
    mask_features = mask_features.abs() + 0.1  # every mask logit < 0: nothing to attend to
    masked = decoder(mask_features, multi_scale)
    decoder.masked_attention = False
    unmasked = decoder(mask_features, multi_scale)
    assert torch.isfinite(masked.mask_logits).all()
    torch.testing.assert_close(masked.mask_logits, unmasked.mask_logits)
    torch.testing.assert_close(masked.class_embeddings, unmasked.class_embeddings)


def test_text_attention_with_padded_per_image_texts() -> None:
    decoder = _decoder(text_attention=True)
    mask_features, multi_scale = _inputs()
    g = torch.Generator().manual_seed(2)
    texts = [torch.randn(3, D, generator=g), torch.randn(5, D, generator=g)]
    both = decoder(mask_features, multi_scale, texts)
    # Image 0 alone has no padding; in the batch its 3 texts are padded to 5.
    alone = decoder(mask_features[:1], [m[:1] for m in multi_scale], texts[:1])
    torch.testing.assert_close(both.mask_logits[:1], alone.mask_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        both.class_embeddings[:1], alone.class_embeddings, atol=1e-5, rtol=1e-5
    )
    # The texts matter, and so does the order of the two cross-attentions.
    other = decoder(mask_features, multi_scale, [texts[0] + 1.0, texts[1]])
    assert not torch.allclose(other.class_embeddings[0], both.class_embeddings[0])
    torch.testing.assert_close(other.class_embeddings[1], both.class_embeddings[1])
    swapped = _decoder(text_attention=True, decoding_order="text-visual")
    swapped.load_state_dict(decoder.state_dict())
    assert not torch.allclose(
        swapped(mask_features, multi_scale, texts).mask_logits, both.mask_logits
    )
    # An image without texts works (its text attention is skipped).
    empty = decoder(mask_features, multi_scale, [texts[0], torch.zeros(0, D)])
    assert torch.isfinite(empty.mask_logits).all()
    torch.testing.assert_close(empty.mask_logits[:1], both.mask_logits[:1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="text"):
        decoder(mask_features, multi_scale)


def test_gradients_reach_the_texts() -> None:
    decoder = _decoder(text_attention=True).train()
    mask_features, multi_scale = _inputs()
    texts = [torch.randn(3, D, requires_grad=True), torch.randn(2, D, requires_grad=True)]
    out = decoder(mask_features, multi_scale, texts)
    (out.mask_logits.sum() + out.class_embeddings.sum()).backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in texts)


def test_mask_model_crops_to_stride_4_and_keeps_the_transfer_names() -> None:
    torch.manual_seed(0)
    model = build_mask_model(
        backbone="tiny",
        backbone_kwargs={"widths": (8, 16, 16, 24), "depths": (1, 1, 1, 1), "norm": "gn"},
        decoder_dim=16,
        embed_dim=D,
        num_queries=Q,
        query_layers=2,
        query_heads=2,
        query_ffn_dim=32,
        masked_attention=True,
        text_attention=True,
        decoding_order="visual-text",
        weights=None,
    )
    assert isinstance(model, MaskClassificationModel)
    images = torch.randn(2, 3, 30, 45)
    out = model(images, [torch.randn(4, D), torch.randn(2, D)])
    assert out.mask_logits.shape == (2, Q, 8, 12)  # ceil(30 / 4), ceil(45 / 4)
    assert out.class_embeddings.shape == (2, Q, D)
    assert [a.mask_logits.shape for a in out.aux] == [(2, Q, 8, 12)] * 2
    out.mask_logits.mean().backward()
    assert model.backbone.stem[0][0].weight.grad is not None
    # init_from pairs tensors by a "backbone" or "decoder" path segment: only the top-level ones.
    for name, _ in model.named_parameters():
        parts = name.split(".")
        assert "backbone" not in parts[1:] and "decoder" not in parts[1:], name
    assert {n.split(".")[0] for n, _ in model.named_parameters()} == {
        "backbone",
        "decoder",
        "query_decoder",
    }
