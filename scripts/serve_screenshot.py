"""Regenerate docs/serve.png: `babelseg serve` in a headless Chromium, after an upload, with the
pointer over a pixel.

    python scripts/serve_screenshot.py --run runs/default \\
        --image sw/night_drive/images/val/000003.png \\
        --labels "roadway, automobile, pedestrian, sky, tree, building, footpath, lorry" \\
        --hover 0.55 0.75 --out docs/serve.png

Needs the test extra (selenium) and Debian's chromium + chromium-driver. The server runs on
127.0.0.1 with a temporary HOME and TMPDIR, exactly as in tests/test_serve_browser.py, whose
helpers (tests/serve_server.py, tests/serve_browser.py) this script drives.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from serve_browser import ServePage, missing_browser  # noqa: E402
from serve_server import serve  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True, help="run folder to serve")
    p.add_argument("--image", required=True, help="image to upload")
    vocab = p.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--labels", help="typed vocabulary")
    vocab.add_argument("--dataset", help="a dataset's vocabulary")
    p.add_argument("--hover", nargs=2, type=float, default=(0.5, 0.5), metavar=("FX", "FY"))
    p.add_argument(
        "--heat-map",
        type=int,
        default=None,
        metavar="LEGEND_ROW",
        help="show this legend row's heat map instead of the overlay",
    )
    p.add_argument("--size", nargs=2, type=int, default=(1400, 800), metavar=("W", "H"))
    p.add_argument("--out", default=str(ROOT / "docs" / "serve.png"))
    args = p.parse_args(argv)
    reason = missing_browser()
    if reason:
        print(f"serve_screenshot: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="serve-shot-") as tmp:
        with (
            serve(Path(args.run), workdir=Path(tmp)) as (base, _, _),
            ServePage(width=args.size[0], height=args.size[1]) as page,
        ):
            page.open(base)
            page.choose_image(Path(args.image))
            if args.labels:
                page.type_labels(args.labels)
            else:
                page.pick_dataset(args.dataset)
            page.segment()
            if args.heat_map is not None:
                page.show_heat_map(args.heat_map)
            rows = page.hover(*args.hover)
            out = page.screenshot(Path(args.out))
            legend = page.legend()
    print(f"legend: {', '.join(legend)}")
    print(f"tooltip: {rows}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
