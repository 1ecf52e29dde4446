"""Backbones (tiny, ResNet, transformers AutoBackbone adapter) and weight loading."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from babelseg.models.backbones.resnet import FrozenBatchNorm2d, ResNetBackbone
from babelseg.models.backbones.tiny import ResidualBlock, TinyConvBackbone, norm_layer
from babelseg.models.backbones.weights import load_backbone_weights, load_state_dict_file

transformers = pytest.importorskip("transformers")


def _grads_ok(module: nn.Module) -> bool:
    return all(p.grad is not None for p in module.parameters() if p.requires_grad)


def _pyramid_shapes(features: list[torch.Tensor]) -> list[tuple[int, ...]]:
    return [tuple(f.shape) for f in features]


# ---------------------------------------------------------------- tiny


def test_tiny_shapes_and_backward() -> None:
    torch.manual_seed(0)
    backbone = TinyConvBackbone(widths=(8, 16, 24, 32), depths=(1, 1, 1, 1))
    features = backbone(torch.randn(2, 3, 64, 96))
    assert backbone.strides == [4, 8, 16, 32]
    assert _pyramid_shapes(features) == [
        (2, 8, 16, 24),
        (2, 16, 8, 12),
        (2, 24, 4, 6),
        (2, 32, 2, 3),
    ]
    sum(f.square().mean() for f in features).backward()
    assert _grads_ok(backbone)


@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_residual_block_starts_as_identity(norm: str) -> None:
    block = ResidualBlock(channels=8, norm=norm)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_norm_layer_choices() -> None:
    assert isinstance(norm_layer("bn", 16), nn.BatchNorm2d)
    gn = norm_layer("gn", 48)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 16
    assert isinstance(norm_layer("none", 16), nn.Identity)
    with pytest.raises(ValueError, match="valid norms: bn, gn, none"):
        norm_layer("layer", 16)
    with pytest.raises(ValueError, match="4 widths"):
        TinyConvBackbone(widths=(8, 16, 32))


# ---------------------------------------------------------------- resnet


def test_resnet_torchvision_layout_and_parameter_counts() -> None:
    r18, r50 = ResNetBackbone(depth=18), ResNetBackbone(depth=50)
    keys18, keys50 = set(r18.state_dict()), set(r50.state_dict())
    for key in ["conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer4.1.bn2.bias"]:
        assert key in keys18
    assert "layer2.0.downsample.0.weight" in keys18 and "layer1.0.downsample.0.weight" not in keys18
    for key in [
        "layer1.0.conv3.weight",
        "layer1.0.downsample.1.running_mean",
        "layer4.2.bn3.weight",
    ]:
        assert key in keys50
    # torchvision resnet18 / resnet50 have 11,689,512 / 25,557,032 parameters including fc.
    assert sum(p.numel() for p in r18.parameters()) == 11_689_512 - (512 * 1000 + 1000)
    assert sum(p.numel() for p in r50.parameters()) == 25_557_032 - (2048 * 1000 + 1000)
    assert r18.out_channels == [64, 128, 256, 512] and r50.out_channels == [256, 512, 1024, 2048]


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_shapes_and_backward(depth: int) -> None:
    backbone = ResNetBackbone(depth=depth)
    features = backbone(torch.randn(2, 3, 64, 64))
    widths = backbone.out_channels
    assert _pyramid_shapes(features) == [(2, widths[i], 16 >> i, 16 >> i) for i in range(4)]
    sum(f.mean() for f in features).backward()
    assert _grads_ok(backbone)
    with pytest.raises(ValueError, match="valid depths"):
        ResNetBackbone(depth=20)


def test_frozen_batchnorm_uses_running_stats_and_does_not_train() -> None:
    frozen = FrozenBatchNorm2d(3)
    frozen.running_mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
    frozen.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    x = torch.full((2, 3, 2, 2), 3.0)
    y = frozen.train()(x)
    expected = torch.tensor([2.0, 1.0, 0.0]) / torch.sqrt(torch.tensor([4.0, 1.0, 0.25]) + 1e-5)
    torch.testing.assert_close(y[0, :, 0, 0], expected)
    assert frozen.running_mean.tolist() == [1.0, 2.0, 3.0]
    backbone = ResNetBackbone(depth=18, frozen_bn=True)
    assert not any(p.requires_grad for n, p in backbone.named_parameters() if "bn" in n)


# ---------------------------------------------------------------- weights


def test_safetensors_round_trip_gives_identical_outputs(tmp_path) -> None:
    torch.manual_seed(0)
    source = TinyConvBackbone(widths=(8, 8, 16, 16), depths=(1, 0, 1, 0))
    for p in source.parameters():  # make the zero-initialised scales non-trivial
        p.data.normal_()
    path = tmp_path / "tiny.safetensors"
    save_file(source.state_dict(), str(path))
    torch.manual_seed(1)
    target = TinyConvBackbone(widths=(8, 8, 16, 16), depths=(1, 0, 1, 0))
    report = load_backbone_weights(target, path, strict=True)
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    x = torch.randn(1, 3, 32, 32)
    for a, b in zip(source.eval()(x), target.eval()(x)):
        assert torch.equal(a, b)


def test_load_report_missing_unexpected_mismatched(tmp_path) -> None:
    backbone = TinyConvBackbone(widths=(8, 8, 16, 16), depths=(1, 0, 1, 0))
    state = {k: v.clone() for k, v in backbone.state_dict().items()}
    del state["stem.0.0.weight"]
    state["stem.1.1.weight"] = torch.ones(3)  # wrong shape
    state["fc.weight"] = torch.ones(4, 4)
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    report = load_backbone_weights(backbone, path)
    assert report.missing == ["stem.0.0.weight"]
    assert report.unexpected == ["fc.weight"]
    assert report.mismatched == ["stem.1.1.weight"]
    assert "stem.0.1.bias" in report.loaded
    with pytest.raises(ValueError, match="strict=True"):
        load_backbone_weights(backbone, path, strict=True)


def test_wrong_prefix_is_explained(tmp_path) -> None:
    backbone = TinyConvBackbone(widths=(8, 8, 16, 16), depths=(1, 0, 1, 0))
    state = {f"model.backbone.{k}": v for k, v in backbone.state_dict().items()}
    path = tmp_path / "ckpt.safetensors"
    save_file(state, str(path))
    with pytest.raises(ValueError, match=r"ckpt.safetensors.*prefix='model.backbone.'"):
        load_backbone_weights(backbone, path)
    with pytest.raises(ValueError, match=r"pass prefix='model.backbone.'"):
        load_backbone_weights(backbone, path, prefix="model.")
    report = load_backbone_weights(backbone, path, prefix="model.backbone.")
    assert report.missing == [] and report.unexpected == []


class _NotATensor:
    pass


def test_pickles_only_as_plain_weights(tmp_path) -> None:
    weights = {"a": torch.arange(3.0)}
    torch.save(weights, tmp_path / "plain.pt")
    torch.save({"state_dict": weights, "epoch": 3}, tmp_path / "nested.pth")
    torch.save({"a": _NotATensor()}, tmp_path / "evil.bin")
    assert torch.equal(load_state_dict_file(tmp_path / "plain.pt")["a"], torch.arange(3.0))
    assert list(load_state_dict_file(tmp_path / "nested.pth")) == ["a"]
    with pytest.raises(ValueError, match=r"Refusing to unpickle .*evil.bin"):
        load_state_dict_file(tmp_path / "evil.bin")
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_state_dict_file(tmp_path / "missing.safetensors")
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"w.npz: expected .safetensors"):
        load_state_dict_file(tmp_path / "w.npz")


# ---------------------------------------------------------------- transformers AutoBackbone


def _hf_configs() -> dict[str, object]:
    return {
        "convnext": transformers.ConvNextConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64]),
        "swin": transformers.SwinConfig(
            embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, image_size=64
        ),
        "resnet": transformers.ResNetConfig(
            embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], layer_type="basic"
        ),
        "dinov2": transformers.Dinov2Config(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, patch_size=14, image_size=56
        ),
    }


@pytest.mark.parametrize("kind", ["convnext", "swin", "resnet", "dinov2"])
def test_hf_backbone_from_config(kind: str) -> None:
    from babelseg.models.backbones.hf_auto import HFAutoBackbone

    torch.manual_seed(0)
    backbone = HFAutoBackbone(config=_hf_configs()[kind])
    expected_channels = [8, 16, 32, 32] if kind == "dinov2" else [8, 16, 32, 64]
    assert backbone.out_channels == expected_channels and backbone.strides == [4, 8, 16, 32]
    # 70 x 100 is padded to 96 x 128 (and to a multiple of the patch for the ViT).
    features = backbone(torch.randn(2, 3, 70, 100))
    assert _pyramid_shapes(features) == [
        (2, c, 96 // s, 128 // s) for c, s in zip(expected_channels, [4, 8, 16, 32])
    ]
    sum(f.square().mean() for f in features).backward()
    assert _grads_ok(backbone)  # every trainable parameter is used: DDP-friendly
    frozen = sorted(n for n, p in backbone.named_parameters() if not p.requires_grad)
    expected_frozen = {
        "swin": ["model.swin.layernorm.bias", "model.swin.layernorm.weight"],
        "dinov2": ["model.embeddings.mask_token"],
    }
    assert frozen == expected_frozen.get(kind, [])


@pytest.mark.parametrize("kind", ["convnext", "dinov2"])
def test_hf_backbone_save_pretrained_round_trip(kind: str, tmp_path) -> None:
    from babelseg.models.backbones.hf_auto import HFAutoBackbone

    torch.manual_seed(0)
    source = HFAutoBackbone(config=_hf_configs()[kind]).eval()
    source.model.save_pretrained(tmp_path / kind)
    loaded = HFAutoBackbone(name_or_path=str(tmp_path / kind)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = source.model(pixel_values=x).feature_maps
        b = loaded.model(pixel_values=x).feature_maps
        for fa, fb in zip(a, b):
            torch.testing.assert_close(fa, fb)
        if kind == "convnext":  # no extra layers on top: the whole pyramid is identical
            for fa, fb in zip(source(x), loaded(x)):
                torch.testing.assert_close(fa, fb)


def test_hf_vit_features_resampled_onto_stride16_grid() -> None:
    from babelseg.models.backbones.vit_pyramid import to_stride16

    for patch in (8, 14):
        n = 96 // patch + 1
        centres = torch.arange(n, dtype=torch.float32) * patch + patch / 2
        ramp = centres.view(1, 1, 1, n).expand(1, 1, n, n)
        out = to_stride16(ramp, patch_size=patch, grid=(2, 6))
        assert out.shape == (1, 1, 2, 6)
        # interior cells hold the value at their own centre 16 j + 8
        torch.testing.assert_close(out[0, 0, 0, 1:5], torch.tensor([24.0, 40.0, 56.0, 72.0]))


def test_hf_vit_four_layers_and_config_mapping() -> None:
    from babelseg.models.backbones.hf_auto import HFAutoBackbone

    config = {
        "model_type": "dinov2",
        "hidden_size": 16,
        "num_hidden_layers": 4,
        "num_attention_heads": 2,
        "patch_size": 16,
        "image_size": 64,
    }
    backbone = HFAutoBackbone(config=config, out_indices=[1, 2, 3, 4])
    assert backbone.model.out_indices == [1, 2, 3, 4] and backbone.out_channels == [4, 8, 16, 16]
    features = backbone(torch.randn(1, 3, 64, 32))
    assert _pyramid_shapes(features) == [(1, 4, 16, 8), (1, 8, 8, 4), (1, 16, 4, 2), (1, 16, 2, 1)]
    with pytest.raises(ValueError, match="model_type 'nope'"):
        HFAutoBackbone(config={"model_type": "nope"})


def test_hf_backbone_errors(tmp_path) -> None:
    from babelseg.models.backbones.hf_auto import HFAutoBackbone

    with pytest.raises(ValueError, match="exactly one"):
        HFAutoBackbone()
    with pytest.raises(ValueError, match="(not a backbone config|no backbone class)"):
        HFAutoBackbone(config=transformers.BertConfig(hidden_size=8, num_hidden_layers=1))
    with pytest.raises(ValueError, match="expected 4 indices"):
        HFAutoBackbone(config=_hf_configs()["convnext"], out_indices=[3, 4])
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        HFAutoBackbone(name_or_path=str(tmp_path / "no-such-folder"))
