"""``babelseg config``: print the resolved run config (defaults <- YAML <- overrides) as YAML."""

from __future__ import annotations

import argparse

HELP = "Print the resolved run config (defaults, the YAML file and key=value overrides) as YAML."
EPILOG = """examples:
  babelseg config configs/lmseg.yaml
  babelseg config configs/lmseg.yaml recipe.lmseg.prompt_length=8 train.steps=100
  babelseg config train.steps=10                     # the defaults with one override
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="run config YAML (see configs/); none: defaults")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.steps=100")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")


def run(args: argparse.Namespace) -> int:
    import yaml

    from babelseg.engine.config import load_config
    from babelseg.recipes.catalog import catalog_entry

    overrides, config = list(args.overrides), args.config
    if config is not None and "=" in config and not config.endswith((".yaml", ".yml")):
        overrides.insert(0, config)
        config = None
    cfg = load_config(config, overrides)
    catalog_entry(cfg.recipe.name)  # an unknown recipe name is an error here too
    print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
    return 0
