import pytest

from babelseg.engine.config import Config, config_from_dict, load_config


def test_defaults_yaml_and_overrides_layer(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("run_dir: runs/x\ntrain:\n  steps: 50\n  lr: 0.01\ndata:\n  train: [a]\n")
    cfg = load_config(f, ["train.steps=7", "data.ratios={a: 2.0}", "model.backbone_kwargs={w: 3}"])
    assert cfg.run_dir == "runs/x"
    assert cfg.train.steps == 7  # override beats file
    assert cfg.train.lr == 0.01  # file beats default
    assert cfg.train.warmup_steps == Config().train.warmup_steps  # default kept
    assert cfg.data.train == ["a"]
    assert cfg.data.ratios == {"a": 2.0}
    assert cfg.model.backbone_kwargs == {"w": 3}


def test_unknown_key_names_nearest_valid_key(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("train:\n  stpes: 5\n")
    with pytest.raises(ValueError, match=r"train\.stpes.*Did you mean 'train\.steps'"):
        load_config(f)
    with pytest.raises(ValueError, match=r"Did you mean 'labels'"):
        load_config(None, ["lables.encoder=hash"])


def test_wrong_type_and_bad_override_are_clear():
    with pytest.raises(ValueError, match="train.steps"):
        load_config(None, ["train.steps=many"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["train.steps"])
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config("nope.yaml")


def test_round_trip_through_dict():
    cfg = load_config(None, ["train.steps=3", "labels.encoder=hash"])
    again = config_from_dict(cfg.to_dict())
    assert again == cfg
