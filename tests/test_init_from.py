"""train.init_from and train.freeze_backbone: fine-tuning starts from another run's network."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from babelseg.engine import checkpoint as ckpt
from babelseg.engine.config import load_config
from babelseg.engine.init_from import network_key
from babelseg.engine.trainer import train


def _weights(run_dir) -> dict[str, torch.Tensor]:
    latest = ckpt.latest_checkpoint(run_dir)
    assert latest is not None
    return load_file(str(latest / "model.safetensors"))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, tiny_synthworld):
    import yaml

    tmp = tmp_path_factory.mktemp("pre")
    cfg = {
        "run_dir": str(tmp / "pre"),
        "data": {
            "datasets_yaml": str(tiny_synthworld / "datasets.yaml"),
            "train": ["metro_drive", "home_scenes"],
            "batch_size": 2,
            "crop": [32, 32],
            "num_workers": 0,
        },
        "labels": {"encoder": "hash", "cache_dir": str(tmp / "cache")},
        "model": {
            "backbone": "tiny",
            "backbone_kwargs": {"widths": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "norm": "gn"},
            "decoder_dim": 16,
        },
        "train": {"steps": 3, "checkpoint_every": 3, "warmup_steps": 1, "eval_at_end": False},
    }
    path = tmp / "pre.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = train(load_config(path))
    return path, result.run_dir


def _finetune(path, run_dir, pre_dir, *extra):
    cfg = load_config(
        path,
        [
            f"run_dir={run_dir}",
            "data.train=[vista_roads]",
            f"train.init_from={pre_dir}",
            "train.lr=0.05",
            *extra,
        ],
    )
    return train(cfg).run_dir


def _split(weights):
    backbone = {k: v for k, v in weights.items() if ".backbone." in f".{k}"}
    decoder = {k: v for k, v in weights.items() if k.startswith("model.decoder.")}
    return backbone, decoder


def test_full_finetuning_starts_from_the_pretrained_network(pretrained, tmp_path):
    path, pre_dir = pretrained
    pre_backbone, _ = _split(_weights(pre_dir))
    cfg = load_config(
        path,
        [
            f"train.init_from={pre_dir}",
            "data.train=[vista_roads]",
            f"run_dir={tmp_path / 'setup'}",  # a fresh run never writes into another run's folder
        ],
    )
    from babelseg.engine.trainer import Trainer

    trainer = Trainer(cfg)
    trainer._setup()
    state = trainer.recipe.state_dict()
    for name, value in _weights(pre_dir).items():
        if name.startswith(("model.backbone.", "model.decoder.")):
            assert torch.equal(state[name], value), name
    trainer.close()
    # and training moves them (full fine-tuning)
    run = _finetune(path, tmp_path / "full", pre_dir)
    after, _ = _split(_weights(run))
    assert any(not torch.equal(after[k], pre_backbone[k]) for k in pre_backbone)


def test_frozen_backbone_keeps_the_pretrained_backbone(pretrained, tmp_path):
    path, pre_dir = pretrained
    pre_backbone, pre_decoder = _split(_weights(pre_dir))
    run = _finetune(path, tmp_path / "frozen", pre_dir, "train.freeze_backbone=true")
    after_backbone, after_decoder = _split(_weights(run))
    assert pre_backbone and set(after_backbone) == set(pre_backbone)
    for k in pre_backbone:
        assert torch.equal(after_backbone[k], pre_backbone[k]), k
    assert any(not torch.equal(after_decoder[k], pre_decoder[k]) for k in pre_decoder)


def test_init_from_a_foreign_network_is_a_clear_error(pretrained, tmp_path):
    path, pre_dir = pretrained
    cfg = load_config(
        path,
        [
            f"run_dir={tmp_path / 'bad'}",
            f"train.init_from={pre_dir}",
            "model.backbone_kwargs={widths: [4, 4, 4, 4], depths: [1, 1, 1, 1], norm: gn}",
            "model.decoder_dim=8",
        ],
    )
    with pytest.raises(ValueError, match="backbone of .* does not fit"):
        train(cfg)


def test_init_from_a_missing_path_names_it(pretrained, tmp_path):
    path, _ = pretrained
    cfg = load_config(path, [f"run_dir={tmp_path / 'x'}", f"train.init_from={tmp_path / 'nope'}"])
    with pytest.raises(FileNotFoundError, match="nope"):
        train(cfg)


def test_network_key_pairs_tensors_across_recipes():
    assert network_key("model.backbone.stem.weight") == (1, "backbone.stem.weight")
    assert network_key("momentum.model.decoder.lateral.0.weight") == (
        2,
        "decoder.lateral.0.weight",
    )
    assert network_key("model.head.proj.weight") is None


def test_dataset_augmentation_switch_gives_every_dataset_the_default_pipeline(tiny_run_config):
    from babelseg.data.augment import build_augmentation
    from babelseg.data.declaration import load_declarations
    from babelseg.data.label_source import resolve_label_space
    from babelseg.engine.builders import build_train_dataset

    names = ["metro_drive", "home_scenes"]
    for flag in (True, False):
        cfg = load_config(tiny_run_config(f"aug{flag}"), [f"data.dataset_augmentation={flag}"])
        decls = load_declarations(cfg.data.datasets_yaml)
        spaces = {n: resolve_label_space(decls[n]) for n in names}
        dataset = build_train_dataset(cfg, decls, spaces, names)
        for name, part in zip(names, dataset.datasets, strict=True):
            spec = decls[name].augmentation if flag else None
            want = build_augmentation(spec, train=True, crop=(48, 48), name=name).spec
            assert part.augmentation.spec == want
    assert decls["metro_drive"].augmentation != decls["home_scenes"].augmentation


def test_shared_augmentation_gives_every_dataset_one_pipeline(tiny_run_config):
    from babelseg.data.declaration import load_declarations
    from babelseg.data.label_source import resolve_label_space
    from babelseg.engine.builders import build_train_dataset

    names = ["metro_drive", "home_scenes"]
    overrides = ["data.dataset_augmentation=false", "data.shared_augmentation=union"]
    cfg = load_config(tiny_run_config("shared"), overrides)
    decls = load_declarations(cfg.data.datasets_yaml)
    spaces = {n: resolve_label_space(decls[n]) for n in names}
    parts = build_train_dataset(cfg, decls, spaces, names).datasets
    first, second = (p.augmentation.spec for p in parts)
    assert first == second
    lows = [decls[n].augmentation["scale"][0] for n in names]
    highs = [decls[n].augmentation["scale"][1] for n in names]
    assert first.scale == (min(lows), max(highs))
    cfg = load_config(tiny_run_config("both"), ["data.shared_augmentation=union"])
    with pytest.raises(ValueError, match="dataset_augmentation=false"):
        build_train_dataset(cfg, decls, spaces, names)
