"""Divergence ends `train` with one message (exit 1, no traceback), and the checkpoint it calls
good had finite weights and loss and was written before the blow-up."""

from __future__ import annotations

from pathlib import Path

import torch

from babelseg.cli.main import main
from babelseg.engine.divergence import GoodCheckpoints
from babelseg.recipes.sentence import SentenceRecipe

ONE, TEN, HUGE = torch.tensor(1.0), torch.tensor(10.0), torch.tensor(1e6)


def test_a_checkpoint_is_good_once_its_weights_gave_a_finite_loss():
    good = GoodCheckpoints()
    good.step_taken(ONE, ONE)
    good.saved(Path("ckpt_1"))
    assert good.last_good is None  # not yet confirmed
    good.loss_was_finite()
    assert good.last_good == Path("ckpt_1")
    good.saved(Path("ckpt_2"))  # the next step diverges: ckpt_2 stays unconfirmed
    text = good.message(loss=float("nan"), step=3, datasets=["a"])
    assert "last good checkpoint is ckpt_1" in text and "step 3" in text


def test_checkpoints_after_a_weight_blow_up_are_never_good():
    good = GoodCheckpoints()
    good.step_taken(ONE, TEN * 1.01)
    good.saved(Path("ckpt_1"))
    good.loss_was_finite()  # a finite loss does not redeem ruined weights
    assert good.last_good is None
    assert "No checkpoint is known good" in good.message(loss=float("inf"), step=2, datasets=[])


def test_a_resumed_checkpoint_is_unconfirmed_until_a_finite_loss():
    good = GoodCheckpoints(resumed_from=Path("ckpt_9"))
    assert "No checkpoint is known good" in good.message(loss=float("nan"), step=10, datasets=[])
    good.loss_was_finite()
    assert good.last_good == Path("ckpt_9")


def test_a_huge_learning_rate_ends_with_one_message(tiny_run_config, monkeypatch, capsys):
    original = SentenceRecipe.loss
    calls = {"n": 0}

    def nan_at_step_4(self, output, batch, texts, *, normalisers):
        calls["n"] += 1
        result = original(self, output, batch, texts, normalisers=normalisers)
        if calls["n"] == 4:  # where lr 1e6 made the loss NaN in the report
            result.total = result.total * float("nan")
        return result

    monkeypatch.setattr(SentenceRecipe, "loss", nan_at_step_4)
    cfg = tiny_run_config("lr", train={"checkpoint_every": 1, "log_every": 1, "steps": 6})
    code = main(["train", cfg, "train.lr=1e6", "train.warmup_steps=0", "--no-eval"])
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert "Traceback" not in err  # (progress lines of a batch job come before it)
    assert len(errors) == 1 and errors[0].startswith("babelseg train: error: Loss became nan")
    assert "step 4" in errors[0] and "No checkpoint is known good" in errors[0]
