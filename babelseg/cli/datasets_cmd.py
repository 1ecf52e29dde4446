"""``babelseg datasets``: list declared datasets and check their files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from babelseg.data.check import DatasetReport, SplitReport, check_dataset
from babelseg.data.declaration import DatasetDecl, load_declarations
from babelseg.data.label_source import resolve_label_space

HELP = "List declared datasets and check their files (images, labels, class counts)."
EPILOG = """examples:
  babelseg datasets list sw/datasets.yaml
  babelseg datasets check sw/datasets.yaml
  babelseg datasets check sw/datasets.yaml --datasets street_a,indoor_b --split val
  babelseg datasets check my_datasets.yaml --json > report.json

`check` exits with 1 when it finds problems (missing files, size mismatches, label values the
label table does not know, images without labels), 0 otherwise.
"""

MAX_LISTED = 10  # problems / names printed per split before "... and N more"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="datasets_command", metavar="ACTION")
    p_list = sub.add_parser(
        "list",
        help="one line per dataset: format, task, annotation, heldout, splits, classes",
        description="List the datasets a datasets.yaml declares.",
    )
    p_list.add_argument("yaml", metavar="DATASETS.yaml", help="dataset declarations file")
    p_list.set_defaults(_datasets_run=run_list)
    p_check = sub.add_parser(
        "check",
        help="read every label file and report counts, unknown values and problems",
        description="Check the files of declared datasets; exit 1 when problems are found.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_check.add_argument("yaml", metavar="DATASETS.yaml", help="dataset declarations file")
    p_check.add_argument(
        "--datasets", default=None, help="comma-separated dataset names (default: all)"
    )
    p_check.add_argument("--split", default=None, help="check only this split (default: all)")
    p_check.add_argument("--json", action="store_true", help="print the report as JSON")
    p_check.set_defaults(_datasets_run=run_check)
    parser.set_defaults(_datasets_parser=parser)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "_datasets_run", None) is None:
        args._datasets_parser.print_help()
        return 2
    return int(args._datasets_run(args))


def _select(decls: dict[str, DatasetDecl], names: str | None, path: str) -> list[DatasetDecl]:
    if not names:
        return list(decls.values())
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in decls]
    if unknown:
        raise ValueError(f"{path} declares no dataset {unknown}; it declares {list(decls)}.")
    return [decls[n] for n in wanted]


def run_list(args: argparse.Namespace) -> int:
    decls = load_declarations(args.yaml)
    rows = [("name", "format", "task", "annotation", "heldout", "splits", "classes")]
    for d in decls.values():
        try:
            n_classes = str(len(resolve_label_space(d)))
        except (FileNotFoundError, ValueError) as e:
            n_classes = f"? ({e})"
        rows.append(
            (
                d.name,
                d.format,
                d.task.value,
                d.annotation.value,
                "yes" if d.heldout else "no",
                ",".join(d.splits),
                n_classes,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return 0


def _listed(items: list[str], n: int = MAX_LISTED) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def _print_split(rep: SplitReport) -> None:
    print(f"  split {rep.split}: {rep.num_images} images ({rep.num_read} read without problems)")
    counts = rep.pixel_counts if rep.pixel_counts is not None else rep.segment_counts
    if counts is not None:
        unit = "pixels" if rep.pixel_counts is not None else "segments"
        segs, crowd = rep.segment_counts or {}, rep.crowd_counts or {}
        zero = [name for name, n in counts.items() if n == 0 and not crowd.get(name)]
        print(f"    classes with {unit}: {len(counts) - len(zero)}/{len(counts)}")
        if len(counts) <= 40:
            for name, n in counts.items():
                extra = f"  segments {segs[name]}" if rep.pixel_counts is not None and segs else ""
                extra += f"  crowd {crowd[name]}" if crowd.get(name) else ""
                flag = "  <- none" if name in zero else ""
                print(f"      {name:<24} {n:>12}{extra}{flag}")
        elif zero:
            print(f"    zero {unit}: {_listed(zero, 20)}")
    if rep.unknown_values:
        print("    unknown values (not in the label table):")
        for v, u in sorted(rep.unknown_values.items()):
            print(f"      {v}: {u.pixels} pixels, e.g. {', '.join(u.examples)}")
    if rep.problems:
        print(f"    problems ({len(rep.problems)}):")
        for p in rep.problems[:MAX_LISTED]:
            print(f"      - {p}")
        if len(rep.problems) > MAX_LISTED:
            print(f"      ... and {len(rep.problems) - MAX_LISTED} more (use --json for all)")


def _print_report(report: DatasetReport) -> None:
    status = "ok" if report.ok else "PROBLEMS"
    print(
        f"{report.name}: {report.format}, task {report.task}, annotation {report.annotation}, "
        f"{len(report.class_names)} classes{', heldout' if report.heldout else ''} [{status}]"
    )
    for p in report.problems:
        print(f"  - {p}")
    if report.undescribed:
        print(
            f"  note: {len(report.undescribed)}/{len(report.class_names)} classes have no "
            f"description (sentence labels use the bare name): {_listed(report.undescribed)}"
        )
    for rep in report.splits.values():
        _print_split(rep)


def run_check(args: argparse.Namespace) -> int:
    decls = load_declarations(args.yaml)
    reports, skipped = [], []
    for decl in _select(decls, args.datasets, args.yaml):
        if args.split is not None and args.split not in decl.splits:
            skipped.append(decl.name)
            continue
        splits = [args.split] if args.split is not None else None
        reports.append(check_dataset(decl, splits))
    ok = all(r.ok for r in reports)
    if args.json:
        print(
            json.dumps(
                {
                    "file": str(Path(args.yaml)),
                    "ok": ok,
                    "datasets": [r.to_dict() for r in reports],
                    "skipped": skipped,
                },
                indent=2,
            )
        )
    else:
        for r in reports:
            _print_report(r)
        if skipped:
            print(f"skipped (no split '{args.split}'): {', '.join(skipped)}")
        bad = [r.name for r in reports if not r.ok]
        print(
            f"{len(reports) - len(bad)}/{len(reports)} datasets ok"
            + (f"; problems in {', '.join(bad)}" if bad else "")
        )
    return 0 if ok else 1
