"""The ``babelseg`` entry point: one program, one subcommand per job.

Each subcommand lives in its own module exposing ``HELP`` (one line), ``EPILOG`` (examples),
``add_arguments(parser)`` and ``run(args) -> int``. They are listed explicitly below (no
registration by import side effects) and imported only when chosen, so ``babelseg --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from babelseg.cli.errors import error_text

SUBCOMMANDS: dict[str, str] = {
    "synth": "babelseg.cli.synth_cmd",
    "datasets": "babelseg.cli.datasets_cmd",
    "labels": "babelseg.cli.labels_cmd",
    "config": "babelseg.cli.config_cmd",
    "train": "babelseg.cli.train_cmd",
    "eval": "babelseg.cli.eval_cmd",
    "score": "babelseg.cli.score_cmd",
    "predict": "babelseg.cli.predict_cmd",
    "unify": "babelseg.cli.unify_cmd",
    "serve": "babelseg.cli.serve_cmd",
    "export": "babelseg.cli.export_cmd",
    "bench": "babelseg.cli.bench_cmd",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="babelseg",
        description="Train one segmentation model on many datasets whose taxonomies disagree.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog=getattr(module, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; ``key=value`` overrides may come before, between or after the
    flags (``babelseg train cfg.yaml --no-eval train.steps=2``) for commands that take them."""
    args, extra = parser.parse_known_args(argv)
    overrides = [a for a in extra if "=" in a and not a.startswith("-")]
    unknown = [a for a in extra if a not in overrides]
    if overrides and isinstance(getattr(args, "overrides", None), list):
        args.overrides.extend(overrides)
    elif overrides:
        unknown = extra
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_arguments(parser, argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as e:
        if getattr(args, "debug", False):
            raise
        print(f"babelseg {args.command}: error: {error_text(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
