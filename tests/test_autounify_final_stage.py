"""The autounify final stage through the real trainer: the run ends with it, the graph stays
frozen in it, and a resume at the stage boundary is exact."""

from __future__ import annotations

import shutil

import torch
from safetensors.torch import load_file

from babelseg.engine import checkpoint as ckpt
from babelseg.engine.config import load_config
from babelseg.engine.trainer import train
from babelseg.inference.predictor import Predictor

# steps 0-1 warm-up, 2-5 alternation (s, g, s, g), 6-8 the final stage
AUTOUNIFY = {
    "name": "autounify",
    "autounify": {"warmup_steps": 2, "alternate_every": 1, "remap_every": 2, "final_steps": 3},
}


def _weights(checkpoint) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "model.safetensors"))


def test_resume_at_the_final_stage_boundary_is_exact_and_the_graph_stays_frozen(tiny_run_config):
    path = tiny_run_config(
        "au_whole",
        recipe=AUTOUNIFY,
        train={"steps": 9, "checkpoint_every": 3, "keep_last": 3, "eval_at_end": False},
    )
    whole = train(load_config(path))
    final = _weights(ckpt.latest_checkpoint(whole.run_dir))
    state = Predictor.from_checkpoint(whole.run_dir).recipe.extra_state()
    assert state["phase"] == "final" and state["class_of_slot"] is not None
    at_boundary = _weights(whole.run_dir / "ckpt_0000006")
    graph = [k for k in final if k.startswith("graph.") and k != "graph.label_features"]
    network = [k for k in final if k.startswith("model.")]
    assert graph and network
    for key in graph:  # frozen through the final stage, steps 6-8
        assert torch.equal(final[key], at_boundary[key]), key
    assert any(not torch.equal(final[k], at_boundary[k]) for k in network)

    # resume from the checkpoint written before the final stage's first step: the resumed run
    # fixes and prunes the mappings itself and ends bit for bit where the whole run ended
    part = whole.run_dir.parent / "au_part"
    shutil.copytree(whole.run_dir, part)
    shutil.rmtree(part / "ckpt_0000009")
    (part / "latest").write_text("ckpt_0000006\n")
    assert Predictor.from_checkpoint(part).recipe.extra_state()["class_of_slot"] is None
    train(load_config(path, [f"run_dir={part}"]), resume=True)
    resumed = _weights(ckpt.latest_checkpoint(part))
    assert resumed.keys() == final.keys()
    for key, value in final.items():
        torch.testing.assert_close(resumed[key], value, atol=1e-6, rtol=0, msg=key)
    assert Predictor.from_checkpoint(part).recipe.extra_state() == state
