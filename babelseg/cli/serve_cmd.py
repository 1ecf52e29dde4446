"""``babelseg serve``: a web page and JSON API that segment uploaded images in any vocabulary."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import tempfile
from pathlib import Path

HELP = "Serve a web page and JSON API: upload an image, ask for any vocabulary."
EPILOG = """examples:
  babelseg serve --run runs/default                 # then open http://127.0.0.1:8000/
  babelseg serve --run runs/default --port 8080 --max-upload-mb 8 --max-pixels 4000000
  curl -F image=@photo.jpg -F "labels=road, car, person" http://127.0.0.1:8000/api/predict

The page: drop or choose an image, type labels (comma-separated, or one per line with
"name: description") or pick a dataset's vocabulary, see the overlay and its legend, hover a
pixel for its top labels and scores, click a legend entry for that class's heat map.
Its OpenAPI schema is at /api/openapi.json. Uploads over --max-upload-mb are refused with 413,
images over --max-pixels (decompression bombs) with 400; requests beyond --concurrency wait, and
beyond --queue more are refused with 503. The server writes only inside its own temporary folder
(removed when it stops). It has no authentication: keep --host at 127.0.0.1 unless the network
it listens on is trusted.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="RUN_DIR", help="run directory (latest checkpoint)")
    src.add_argument("--checkpoint", metavar="CKPT", help="a checkpoint folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    limits = p.add_argument_group("limits")
    limits.add_argument(
        "--max-upload-mb", type=float, default=20.0, help="largest image file in MB (default 20)"
    )
    limits.add_argument(
        "--max-pixels",
        type=int,
        default=16 * 1024 * 1024,
        help="largest image in pixels, width x height (default 16777216 = 4096x4096)",
    )
    limits.add_argument(
        "--max-labels", type=int, default=1000, help="largest typed vocabulary (default 1000)"
    )
    limits.add_argument(
        "--slide-above-pixels",
        type=int,
        default=1024 * 1024,
        help="predict larger images in 512 px sliding windows (default 1048576 = 1024x1024)",
    )
    limits.add_argument(
        "--concurrency", type=int, default=1, help="predictions computed at once (default 1)"
    )
    limits.add_argument(
        "--queue", type=int, default=16, help="requests that may wait for a turn (default 16)"
    )
    p.add_argument("--debug", action="store_true", help="show full tracebacks")


def _check_port_free(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise ValueError(f"--port must be within 1..65535, got {port}.")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ValueError(
                f"Cannot listen on {host}:{port} ({e.strerror}); pick another --port or --host."
            ) from e


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    from babelseg.serving.uploads import ServeLimits

    limits = ServeLimits(
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=args.max_pixels,
        max_labels=args.max_labels,
        slide_above_pixels=args.slide_above_pixels,
        concurrency=args.concurrency,
        queue=args.queue,
    )
    _check_port_free(args.host, args.port)
    if not _is_loopback(args.host):
        print(
            f"babelseg serve: warning: listening on {args.host}; the page has no "
            "authentication, anyone who can reach this address can use it.",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="babelseg-serve-") as workdir:
        # matplotlib (heat-map colours) writes its config and font caches: keep them in here.
        os.environ["MPLCONFIGDIR"] = str(Path(workdir) / "matplotlib")
        try:
            import uvicorn

            from babelseg.serving.app import create_app
        except ImportError as e:
            print(
                f"babelseg serve: error: {e.name} is not installed; install the server's "
                "packages with: pip install 'babelseg[serve]' (FastAPI, uvicorn, "
                "python-multipart).",
                file=sys.stderr,
            )
            return 2
        from babelseg.serving.model import ServedModel

        model = ServedModel.from_run(
            args.run or args.checkpoint,
            device=args.device,
            cache_dir=Path(workdir) / "embeddings",
        )
        app = create_app(model=model, limits=limits)
        shown = f"[{args.host}]" if ":" in args.host else args.host
        print(
            f"babelseg serve: {model.name} ({model.model.recipe_name}) on "
            f"http://{shown}:{args.port}/ ; Ctrl+C stops it.",
            flush=True,
        )
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level="info",
            limit_concurrency=max(64, 4 * (limits.concurrency + limits.queue)),
        )
    return 0
