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


@pytest.mark.parametrize("key", ["checkpoint_every", "log_every", "keep_last", "steps"])
@pytest.mark.parametrize("value", [0, -1])
def test_counts_that_would_fail_later_are_refused_at_load(key, value):
    with pytest.raises(ValueError, match=rf"train\.{key} must be >= 1, got {value}"):
        load_config(None, [f"train.{key}={value}"])


@pytest.mark.parametrize("override", ["data.batch_size=0", "data.num_workers=-1"])
def test_data_counts_are_refused_at_load(override):
    with pytest.raises(ValueError, match=override.split("=")[0]):
        load_config(None, [override])


def test_a_saved_config_is_checked_too():
    data = Config().to_dict()
    data["train"]["log_every"] = 0
    with pytest.raises(ValueError, match=r"train\.log_every must be >= 1"):
        config_from_dict(data)
