"""FPN pixel decoder, pixel-embedding head, the pixel model and the builders."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from babelseg.models.builders import (
    BACKBONES,
    backbone_arguments,
    build_backbone,
    build_pixel_model,
)
from babelseg.models.decoders.fpn import FPNPixelDecoder, upsample
from babelseg.models.heads.pixel_embedding import PixelEmbeddingHead
from babelseg.models.pixel_model import PixelEmbeddingModel, upsample_embeddings


def _tiny_kwargs(name: str) -> dict:
    if name == "tiny":
        return {"widths": (8, 16, 16, 24), "depths": (1, 1, 1, 1)}
    if name == "hf":
        transformers = pytest.importorskip("transformers")
        config = transformers.ConvNextConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64])
        return {"config": config}
    if name == "clip":
        pytest.importorskip("transformers")
        vit = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1}
        return {"config": {**vit, "num_attention_heads": 2, "image_size": 32, "patch_size": 16}}
    return {}


# ---------------------------------------------------------------- decoder and head


def test_fpn_top_down_sum_with_hand_set_weights() -> None:
    """Identity laterals, zeroed output convs and an identity fuse conv: the stride-4 mask
    features are the plain top-down sum 1 + 2 + 3 + 4 = 10 of constant input levels."""
    dim = 4
    decoder = FPNPixelDecoder(in_channels=[dim] * 4, dim=dim, norm="none")
    eye = torch.eye(dim).view(dim, dim, 1, 1)
    with torch.no_grad():
        for lateral in decoder.lateral:
            lateral[0].weight.copy_(eye)
            lateral[0].bias.zero_()
        for out in decoder.output:
            out[0].weight.zero_()
            out[0].bias.zero_()
        decoder.fuse[0].weight.copy_(eye)
        decoder.fuse[0].bias.zero_()
    features = [torch.full((2, dim, 16 >> i, 24 >> i), float(i + 1)) for i in range(4)]
    out = decoder(features)
    torch.testing.assert_close(out.mask_features, torch.full((2, dim, 16, 24), 10.0))
    assert [tuple(m.shape) for m in out.multi_scale] == [
        (2, dim, 2, 3),
        (2, dim, 4, 6),
        (2, dim, 8, 12),
    ]
    assert all(torch.count_nonzero(m) == 0 for m in out.multi_scale)


def test_fpn_shapes_backward_and_errors() -> None:
    decoder = FPNPixelDecoder(in_channels=[8, 16, 24, 32], dim=16)
    features = [torch.randn(2, c, 32 >> i, 32 >> i) for i, c in enumerate([8, 16, 24, 32])]
    out = decoder(features)
    assert out.mask_features.shape == (2, 16, 32, 32)
    (out.mask_features.mean() + sum(m.mean() for m in out.multi_scale)).backward()
    assert all(p.grad is not None for p in decoder.parameters())
    with pytest.raises(ValueError, match="4 pyramid levels"):
        FPNPixelDecoder(in_channels=[8, 16, 32])
    with pytest.raises(ValueError, match="valid norms"):
        FPNPixelDecoder(in_channels=[8, 16, 24, 32], norm="ln")


def test_head_projects_with_hand_set_weights() -> None:
    head = PixelEmbeddingHead(in_dim=2, embed_dim=3, norm="none")
    with torch.no_grad():
        head.conv[0].weight.zero_()
        head.conv[0].weight[0, 0, 1, 1] = 1.0  # centre tap: identity on channel 0 and 1
        head.conv[0].weight[1, 1, 1, 1] = 1.0
        head.conv[0].bias.zero_()
        head.proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]]).view(3, 2, 1, 1))
        head.proj.bias.copy_(torch.tensor([0.0, 0.0, 0.5]))
    x = torch.tensor([3.0, 5.0]).view(1, 2, 1, 1).expand(1, 2, 3, 3)
    y = head(x)
    assert y.shape == (1, 3, 3, 3)
    torch.testing.assert_close(y[0, :, 1, 1], torch.tensor([3.0, 10.0, -1.5]))


# ---------------------------------------------------------------- pixel model


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_builds_a_pixel_model_that_trains(name: str) -> None:
    torch.manual_seed(0)
    model = build_pixel_model(
        backbone=name, backbone_kwargs=_tiny_kwargs(name), decoder_dim=16, embed_dim=12
    )
    images = torch.randn(2, 3, 61, 75)
    out = model(images)
    assert out.embeddings.shape == (2, 12, math.ceil(61 / 4), math.ceil(75 / 4))
    out.embeddings.square().mean().backward()
    others = list(model.other_parameters())
    assert others and all(p.grad is not None for p in others)
    assert any(p.grad is not None for p in model.backbone_parameters())


@pytest.mark.parametrize("size", [(97, 131), (32, 32), (1, 5)])
def test_any_size_gives_ceil_quarter_and_equals_zero_padded_input(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = build_pixel_model(
        backbone="tiny", backbone_kwargs=_tiny_kwargs("tiny"), decoder_dim=16, embed_dim=8
    ).eval()
    h, w = size
    images = torch.randn(2, 3, h, w)
    with torch.no_grad():
        emb = model(images).embeddings
        # The model zero-pads to the next multiple of 32 itself: same numbers, cropped.
        emb_padded = model(F.pad(images, (0, -w % 32, 0, -h % 32))).embeddings
    oh, ow = math.ceil(h / 4), math.ceil(w / 4)
    assert emb.shape == (2, 8, oh, ow)
    assert emb_padded.shape == (2, 8, math.ceil(h / 32) * 8, math.ceil(w / 32) * 8)
    torch.testing.assert_close(emb, emb_padded[..., :oh, :ow])


def test_param_groups_split_backbone_and_rest() -> None:
    model = build_pixel_model(
        backbone="resnet18",
        backbone_kwargs={"frozen_bn": True},
        decoder_dim=8,
        embed_dim=4,
    )
    groups = model.param_groups(lr=1e-3, backbone_lr_multiplier=0.1)
    assert [g["name"] for g in groups] == ["backbone", "other"]
    assert groups[0]["lr"] == pytest.approx(1e-4) and groups[1]["lr"] == pytest.approx(1e-3)
    ids = [{id(p) for p in g["params"]} for g in groups]
    assert not ids[0] & ids[1]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert ids[0] | ids[1] == trainable
    frozen = sum(p.numel() for p in model.backbone.parameters() if not p.requires_grad)
    # weight + bias of every BatchNorm of ResNet-18: 2 * (64 + 4*64 + 5*128 + 5*256 + 5*512)
    assert frozen == 9600
    torch.optim.AdamW(groups)  # accepted by the optimizer as is


def test_upsample_embeddings_aligns_pixel_centres() -> None:
    # One cell per 4 pixels holding its centre coordinate 4 j + 1.5: bilinear upsampling by 4
    # recovers x at every interior pixel, and cropping leaves the image size.
    emb = (torch.arange(4.0) * 4 + 1.5).view(1, 1, 1, 4).expand(1, 1, 2, 4)
    up = upsample_embeddings(emb, size=(7, 15))
    assert up.shape == (1, 1, 7, 15)
    torch.testing.assert_close(up[0, 0, 3, 2:14], torch.arange(2.0, 14.0))


def test_pixel_model_rejects_backbone_without_stride_4() -> None:
    class Coarse(nn.Module):
        out_channels, strides = [8, 8, 8, 8], [8, 16, 32, 64]

    with pytest.raises(ValueError, match="stride 4"):
        PixelEmbeddingModel(
            backbone=Coarse(),  # type: ignore[arg-type]
            decoder=FPNPixelDecoder(in_channels=[8] * 4, dim=8),
            head=PixelEmbeddingHead(in_dim=8, embed_dim=4),
        )


# ---------------------------------------------------------------- builders


def test_build_backbone_errors_name_the_problem() -> None:
    assert set(BACKBONES) == {"tiny", "resnet18", "resnet50", "hf", "clip"}
    with pytest.raises(
        ValueError, match=r"'resnet'.*valid backbones: tiny, resnet18, resnet50, hf, clip"
    ):
        build_backbone("resnet")
    with pytest.raises(ValueError, match=r"'width' \(did you mean 'widths'\?\)"):
        build_backbone("tiny", width=(8, 8, 8, 8))
    with pytest.raises(ValueError, match=r"'depth'.*valid arguments: frozen_bn"):
        build_backbone("resnet18", depth=34)
    assert backbone_arguments("tiny") == ["widths", "depths", "norm"]
    assert build_backbone("tiny", widths=(8, 8, 16, 16)).out_channels == [8, 8, 16, 16]


def test_build_pixel_model_loads_backbone_weights(tmp_path) -> None:
    torch.manual_seed(0)
    source = build_backbone("tiny", widths=(8, 8, 16, 16), depths=(1, 0, 0, 0))
    for p in source.parameters():
        p.data.uniform_(-1, 1)
    state = {f"backbone.{k}": v for k, v in source.state_dict().items()}
    state["head.proj.weight"] = torch.zeros(3)  # not backbone: must be ignored via the prefix
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    model = build_pixel_model(
        backbone="tiny",
        backbone_kwargs={"widths": (8, 8, 16, 16), "depths": (1, 0, 0, 0)},
        decoder_dim=8,
        embed_dim=4,
        weights=str(path),
        weights_prefix="backbone.",
    )
    assert model.weights_report is not None and model.weights_report.missing == []
    for key, value in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value)


def test_build_pixel_model_loads_save_pretrained_weights_into_hf_backbone(tmp_path) -> None:
    kwargs = _tiny_kwargs("hf")
    torch.manual_seed(0)
    source = build_backbone("hf", **kwargs).eval()
    source.model.save_pretrained(tmp_path)
    torch.manual_seed(1)
    model = build_pixel_model(
        backbone="hf",
        backbone_kwargs=kwargs,
        decoder_dim=8,
        embed_dim=4,
        weights=str(tmp_path / "model.safetensors"),
    ).eval()
    assert model.weights_report is not None and model.weights_report.unexpected == []
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(source(x), model.backbone(x)):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fpn_upsample_equals_interpolate_and_keeps_the_layout(mode, channels_last):
    """The decoder's CPU fast path (resizing in channels-last) changes no value or gradient."""
    torch.manual_seed(0)
    x = torch.randn(2, 16, 5, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    align = False if mode == "bilinear" else None
    expected = F.interpolate(x, size=(10, 14), mode=mode, align_corners=align)
    got = upsample(x, size=(10, 14), mode=mode)
    assert got.is_contiguous() == (not channels_last)
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    grad = torch.randn_like(expected)
    (want,) = torch.autograd.grad(expected, x, grad)
    (have,) = torch.autograd.grad(got, x, grad)
    torch.testing.assert_close(have, want, rtol=1e-6, atol=1e-6)
