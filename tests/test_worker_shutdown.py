"""Worker processes die with their parent: a `kill -9` or SIGTERM of `babelseg train` (data
loader workers) or of `babelseg synth` (rendering workers) leaves no process within 5 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="reads process trees from Linux /proc"
)


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its entry waits to be reaped


def _start(args: list[str], tmp_path: Path, children: int) -> tuple[subprocess.Popen, set[int]]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "babelseg", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    workers: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        workers = {p for p in _descendants(proc.pid) if _alive(p)}
        if len(workers) >= children:
            time.sleep(1.0)  # let them get busy
            return proc, {p for p in _descendants(proc.pid) if _alive(p)}
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"the command never started {children} worker(s) (exit code {proc.poll()})")


def _assert_gone_within(pids: set[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return
        time.sleep(0.1)
    left = sorted(p for p in pids if _alive(p))
    for p in left:  # do not leave them to the rest of the suite
        os.kill(p, signal.SIGKILL)
    pytest.fail(f"worker processes {left} outlived their parent by {seconds} s")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_train_workers_die_with_train(tiny_run_config, tmp_path, sig):
    cfg = tiny_run_config(
        "workers", data={"num_workers": 1}, train={"steps": 100000, "checkpoint_every": 100000}
    )
    proc, workers = _start(["train", cfg, "--no-eval"], tmp_path, children=1)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    _assert_gone_within(workers, 5.0)


def test_synth_workers_die_with_synth(tmp_path):
    proc, workers = _start(
        ["synth", "--out", str(tmp_path / "sw"), "--workers", "2"], tmp_path, children=2
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    _assert_gone_within(workers, 5.0)
