"""``babelseg serve`` as a real process on 127.0.0.1: concurrent requests, refusals, and no
file written outside its own temporary folder."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="babelseg serve needs FastAPI: pip install 'babelseg[serve]'")
pytest.importorskip("uvicorn", reason="babelseg serve needs uvicorn: pip install 'babelseg[serve]'")

from serve_server import (  # noqa: E402
    bomb_png,
    free_port,
    get_json,
    png_bytes,
    post_predict,
    serve,
    tree_state,
)

from babelseg.cli.main import main  # noqa: E402
from babelseg.engine.config import load_config  # noqa: E402

N_CONCURRENT = 8


def test_serve_holds_concurrent_requests_refuses_bad_ones_and_writes_only_its_temp_folder(
    tiny_trained_run, tmp_path
):
    workdir = tmp_path / "server"
    for folder in ("home", "cwd", "tmp"):
        (workdir / folder).mkdir(parents=True)
    run_cache = Path(load_config(tiny_trained_run / "config.yaml").labels.cache_dir)
    watched = [tiny_trained_run, run_cache, workdir / "home", workdir / "cwd"]
    before = tree_state(*watched)
    args = ("--concurrency", "2", "--queue", "16", "--max-upload-mb", "0.25")
    args += ("--max-pixels", "250000")
    with serve(tiny_trained_run, workdir=workdir, args=args) as (base, proc, tmpdir):
        image = png_bytes(64, 80, seed=0)

        def ask(i: int):  # a new vocabulary per request: embeddings are computed and cached
            return post_predict(base, image, labels=f"road, car, sky, thing{i}")

        with ThreadPoolExecutor(max_workers=N_CONCURRENT) as pool:
            answers = list(pool.map(ask, range(N_CONCURRENT)))
        assert [status for status, _ in answers] == [200] * N_CONCURRENT, answers[0]
        assert all(body["width"] == 80 and body["height"] == 64 for _, body in answers)
        assert len({body["id"] for _, body in answers}) == N_CONCURRENT

        status, body = post_predict(base, b"\0" * 600_000, labels="road")
        assert status == 413 and "limit of" in body["detail"]
        status, body = post_predict(base, bomb_png(20000, 20000), labels="road")
        assert status == 400 and "bomb" in body["detail"]
        status, body = post_predict(base, bomb_png(600, 600), labels="road")
        assert status == 400 and "declares 600x600" in body["detail"]

        status, hover = get_json(f"{base}/api/results/{answers[0][1]['id']}/pixel?x=5&y=6")
        assert status == 200 and len(hover["labels"]) == 4

        [own] = list(tmpdir.iterdir())  # the server's one temporary folder
        assert own.name.startswith("babelseg-serve-")
        assert any(p.is_file() for p in (own / "embeddings").rglob("*"))
    assert proc.returncode == 0
    assert list(tmpdir.iterdir()) == []  # removed when the server stopped
    assert tree_state(*watched) == before


def test_serve_refuses_a_busy_port_with_one_message(tiny_trained_run, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        code = main(["serve", "--run", str(tiny_trained_run), "--port", str(port)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"Cannot listen on 127.0.0.1:{port}" in err and "--port" in err


def test_serve_names_a_missing_run(tmp_path, capsys):
    code = main(["serve", "--run", str(tmp_path / "nope"), "--port", str(free_port())])
    assert code == 2
    assert "nope" in capsys.readouterr().err
