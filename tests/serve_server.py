"""Test helpers for ``babelseg serve``: a real server process on 127.0.0.1, PNG bytes and
multipart bodies built with the standard library (no network beyond the loopback address)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

HOST = "127.0.0.1"


def free_port() -> int:
    """A port free on 127.0.0.1 at the time of asking."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def png_bytes(height: int, width: int, seed: int = 0) -> bytes:
    """A random RGB PNG."""
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width x height`` grey pixels, with one row of data: a few
    hundred bytes that would inflate to ``width * height`` bytes if decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" * (width + 1), 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """``(body, content_type)`` of a multipart/form-data request."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, (filename, data) in files.items():
        head = (
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post_predict(
    base: str, image: bytes, *, timeout: float = 120.0, **fields: str
) -> tuple[int, dict]:
    """POST ``image`` and ``fields`` to ``base/api/predict``; ``(status, json)``."""
    body, content_type = multipart(fields, {"image": ("photo.png", image)})
    request = urllib.request.Request(
        f"{base}/api/predict", data=body, headers={"Content-Type": content_type}, method="POST"
    )
    return _send(request, timeout)


def get_json(url: str, *, timeout: float = 30.0) -> tuple[int, dict]:
    return _send(urllib.request.Request(url), timeout)


def _send(request: urllib.request.Request, timeout: float) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@contextmanager
def serve(run: Path, *, workdir: Path, args: tuple[str, ...] = (), ready_within: float = 90.0):
    """Run ``babelseg serve --run RUN`` on a free port of 127.0.0.1 with ``workdir`` as its
    current folder, HOME and TMPDIR below it; yields ``(base_url, process, tmpdir)``; stops it
    with SIGINT (as Ctrl+C) and waits for it."""
    home, tmpdir, cwd = workdir / "home", workdir / "tmp", workdir / "cwd"
    for folder in (home, tmpdir, cwd):
        folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(home),
        "TMPDIR": str(tmpdir),
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
    }
    for key in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "BABELSEG_CACHE"):
        env.pop(key, None)
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 (closed below)
    command = [sys.executable, "-m", "babelseg", "serve", "--run", str(Path(run).resolve())]
    command += ["--host", HOST, "--port", str(port), *args]
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + ready_within
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"server exited ({proc.returncode}): {(workdir / 'server.log').read_text()}"
                )
            try:
                if get_json(f"{base}/api/info", timeout=2.0)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready: {(workdir / 'server.log').read_text()}")
            time.sleep(0.25)
        yield base, proc, tmpdir
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()


def tree_state(*folders: Path) -> dict[str, tuple[int, int]]:
    """``{path: (size, mtime_ns)}`` of every file and folder below ``folders``."""
    state = {}
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            st = path.stat()
            state[str(path)] = (st.st_size if path.is_file() else 0, st.st_mtime_ns)
    return state
