"""``babelseg config`` prints the resolved YAML; overrides and flags mix in any order."""

import pytest
import yaml

from babelseg.cli.main import build_parser, main, parse_arguments
from babelseg.engine.config import config_from_dict, load_config


def test_config_prints_the_resolved_yaml_with_overrides(capsys):
    assert main(["config", "configs/lmseg.yaml", "recipe.lmseg.prompt_length=8"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["recipe"]["name"] == "lmseg"
    assert printed["recipe"]["lmseg"]["prompt_length"] == 8
    assert printed["train"]["steps"] == 900  # from the file
    assert printed["recipe"]["mask"]["oversample_ratio"] == 3.0  # a default
    # the printed YAML is a config that loads back to the same thing
    expected = load_config("configs/lmseg.yaml", ["recipe.lmseg.prompt_length=8"])
    assert config_from_dict(printed) == expected


def test_config_names_the_nearest_key_of_a_typo(capsys):
    assert main(["config", "configs/lmseg.yaml", "recipe.lmseg.promt_length=8"]) == 2
    assert "Did you mean 'recipe.lmseg.prompt_length'" in capsys.readouterr().err


def test_config_rejects_an_unknown_recipe(capsys):
    assert main(["config", "recipe.name=nine"]) == 2
    assert "valid recipes: sentence" in capsys.readouterr().err


def test_flags_and_overrides_in_any_order():
    parser = build_parser()
    args = parse_arguments(
        parser, ["train", "configs/default.yaml", "--no-eval", "train.steps=2", "seed=1"]
    )
    assert args.config == "configs/default.yaml" and args.no_eval
    assert args.overrides == ["train.steps=2", "seed=1"]
    args = parse_arguments(parser, ["train", "--no-eval", "configs/default.yaml", "train.steps=2"])
    assert args.overrides == ["train.steps=2"] and args.no_eval


def test_unknown_flags_are_still_refused():
    with pytest.raises(SystemExit):
        parse_arguments(build_parser(), ["train", "configs/default.yaml", "--bogus"])
    with pytest.raises(SystemExit):  # a command without overrides takes no key=value
        parse_arguments(build_parser(), ["synth", "--out", "sw", "x=1"])
