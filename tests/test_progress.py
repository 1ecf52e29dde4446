"""Progress for batch jobs: plain lines when stderr is not a terminal, a bar when it is."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from babelseg.cli.main import main
from babelseg.engine.progress import Progress, format_duration, progress_style

REPO = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_every_n_steps_with_values_and_eta():
    out, clock = io.StringIO(), FakeClock()
    progress = Progress(total=10, desc="train", every=4, style="lines", stream=out, clock=clock)
    for step in range(10):
        clock.now += 2.0
        progress.set_values(loss=1.0 / (step + 1), lr=0.002, images_per_s=16.0)
        progress.update(1)
        if step == 3:
            progress.note("checkpoint at step 4: run/ckpt_0000004")
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # steps 4, 8, the last step, and the note
    assert lines[0] == (
        "train step 4/10 (40.0%) | loss 0.2500 | lr 2.00e-03 | 16.0 images/s | elapsed 8s | ETA 12s"
    )
    assert lines[1] == "train: checkpoint at step 4: run/ckpt_0000004"
    assert lines[2].startswith("train step 8/10 (80.0%)") and lines[2].endswith("ETA 4s")
    assert lines[3].startswith("train step 10/10 (100.0%)") and "ETA" not in lines[3]


def test_eta_counts_only_steps_done_here_when_resumed():
    out, clock = io.StringIO(), FakeClock()
    progress = Progress(total=100, initial=50, desc="train", every=10, stream=out, clock=clock)
    clock.now += 30.0
    progress.update(10)
    assert out.getvalue().strip().endswith("elapsed 30s | ETA 2m00s")


def test_styles():
    assert progress_style(None, Terminal()) == "bar"
    assert progress_style(None, io.StringIO()) == "lines"
    assert progress_style(True, io.StringIO()) == "bar"
    assert progress_style(False, Terminal()) == "off"
    quiet = io.StringIO()
    progress = Progress(total=3, desc="x", every=1, style="off", stream=quiet)
    list(progress.track(range(3)))
    progress.note("nothing")
    assert quiet.getvalue() == ""
    bar = Terminal()
    assert list(Progress(total=3, desc="bar", every=1, style="bar", stream=bar).track("abc")) == [
        "a",
        "b",
        "c",
    ]
    assert "3/3" in bar.getvalue() and "bar step" not in bar.getvalue()
    with pytest.raises(ValueError, match="style"):
        Progress(total=1, desc="x", every=1, style="fancy")
    assert format_duration(75) == "1m15s" and format_duration(3725) == "1h02m05s"


def test_train_writes_progress_lines_to_a_redirected_stderr(tiny_run_config, tmp_path):
    cfg = tiny_run_config(
        "logged", train={"steps": 4, "checkpoint_every": 2, "log_every": 2, "eval_at_end": False}
    )
    log = tmp_path / "log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    with open(log, "w") as stderr:  # babelseg train ... 2>log
        subprocess.run(
            [sys.executable, "-m", "babelseg", "train", cfg], stderr=stderr, env=env, check=True
        )
    text = log.read_text()
    line = r"^train step (\d+)/4 \(\d+\.\d%\) \| loss [\d.]+ \| lr [\d.e+-]+ \| [\d.]+ images/s"
    assert re.findall(line, text, re.M) == ["2", "4"]
    assert re.search(r"^train step 2/4 .*\| elapsed \d+s \| ETA \d+s$", text, re.M)
    assert re.findall(r"^train: checkpoint at step (\d): ", text, re.M) == ["2", "4"]
    assert "\r" not in text  # no bar redraws in a file


def test_eval_and_predict_write_progress_lines(tiny_run_config, tiny_synthworld, tmp_path, capsys):
    cfg = tiny_run_config("quick", train={"steps": 1, "eval_at_end": False})
    assert main(["train", cfg]) == 0
    run = str(tmp_path / "quick")
    capsys.readouterr()
    assert (
        main(["eval", "--run", run, "--datasets", "metro_drive", "--out", str(tmp_path / "m")]) == 0
    )
    err = capsys.readouterr().err  # pytest's captured stderr is not a terminal
    assert re.search(r"^eval metro_drive image (\d+)/\1 \(100\.0%\) \| elapsed", err, re.M)
    images = sorted((tiny_synthworld / "metro_drive" / "images" / "val").iterdir())
    code = main(["predict", "--run", run, "--dataset", "metro_drive", *map(str, images),
                 "--out", str(tmp_path / "p")])  # fmt: skip
    assert code == 0
    n = len(images)
    assert re.search(rf"^predict image {n}/{n} \(100\.0%\)", capsys.readouterr().err, re.M)
