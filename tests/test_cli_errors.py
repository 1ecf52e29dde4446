"""Errors reach the user as one message: a data-loader worker's error without torch's wrapping
and traceback, and overrides accepted wherever they stand among the flags."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from babelseg.cli.errors import error_text, worker_message
from babelseg.cli.main import main


class _Fails(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int):
        try:
            raise OSError("decoder said no")
        except OSError as e:  # a chained error, as the image readers raise
            raise ValueError("/data/x.png is damaged or truncated.\nRe-export it.") from e


def _worker_error(exc_type: type = ValueError) -> BaseException:
    with pytest.raises(exc_type) as info:
        list(DataLoader(_Fails(), num_workers=1))
    return info.value


def test_a_worker_error_shows_the_workers_message_alone():
    """(Through ``babelseg train``: tests/test_image_limits.py, with a data-loader worker.)"""
    error = _worker_error()
    assert "DataLoader worker" in str(error)  # what torch re-raises ...
    assert error_text(error) == "/data/x.png is damaged or truncated.\nRe-export it."  # ... cleaned


def test_other_messages_are_unchanged():
    assert worker_message("plain message") == "plain message"
    assert error_text(KeyError("missing 'x'")) == "missing 'x'"


def test_overrides_may_follow_flags(tiny_run_config, tmp_path):
    cfg = tiny_run_config("after_flags")
    assert main(["train", cfg, "--no-eval", "train.steps=2", "train.log_every=1"]) == 0
    lines = (tmp_path / "after_flags" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2]
    assert not (tmp_path / "after_flags" / "metrics.json").exists()  # --no-eval was honoured


def test_unknown_flags_are_still_refused(tiny_run_config, capsys):
    with pytest.raises(SystemExit):
        main(["train", tiny_run_config("bad_flag"), "--no-eval", "--stepz", "3"])
    assert "unrecognized arguments: --stepz 3" in capsys.readouterr().err


def test_torch_wraps_worker_errors_as_this_module_expects():
    """Guard: if torch changes its wrapping, the cleaning above must be revisited."""
    error = _worker_error()
    assert str(error).startswith("Caught ValueError in DataLoader worker process 0.\nOriginal")
    assert torch.utils.data.get_worker_info() is None
