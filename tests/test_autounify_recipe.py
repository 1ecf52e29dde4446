"""The autounify recipe: UniSegHead maths, alternation, state round trip, tiny training, CLI."""

import json
import math

import numpy as np
import pytest
import torch

from babelseg.engine.config import load_config
from babelseg.engine.trainer import train
from babelseg.labels.space import LabelSpace
from babelseg.models.builders import build_pixel_model
from babelseg.models.outputs import PixelOutput
from babelseg.recipes.autounify import AutoUnifyRecipe
from babelseg.recipes.autounify_config import AutoUnifyConfig
from babelseg.unify.head import (
    dataset_logits,
    mapped_logits,
    orthogonality_loss,
    paper_orthogonality_loss,
)
from babelseg.unify.mappings import SlotMappings


def test_eq5_sums_the_probabilities_of_each_labels_unified_classes():
    u = torch.log(torch.tensor([1.0, 2.0, 3.0]))[None, :, None, None]  # [1, 3, 1, 1]
    boolean = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    s = mapped_logits(u, boolean)[0, :, 0, 0]
    assert torch.allclose(s, torch.log(torch.tensor([3.0, 3.0])))
    continuous = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])
    s = mapped_logits(u, continuous)[0, :, 0, 0]
    assert torch.allclose(s, torch.log(torch.tensor([2.5, 3.5])))


def test_eq5_as_printed_sums_the_logits():
    u = torch.tensor([0.5, -1.0, 2.0])[None, :, None, None]
    boolean = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    s = dataset_logits(u, boolean, "paper_sum")[0, :, 0, 0]
    assert torch.allclose(s, torch.tensor([-0.5, 2.0, 0.0]))  # label 3: no node maps, s = 0
    continuous = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.25, 0.75]])
    s = dataset_logits(u, continuous, "paper_sum")[0, :, 0, 0]
    assert torch.allclose(s, torch.tensor([0.25 - 1.0, 0.25 + 0.5, 1.5]))
    assert torch.equal(dataset_logits(u, boolean, "logsumexp"), mapped_logits(u, boolean))
    with pytest.raises(ValueError, match="paper_sum"):
        dataset_logits(u, boolean, "sum")


def test_eq7_as_printed_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # X X^T = [[1, 0], [0, 4]]: p_00 = e / (e + 1), p_11 = e^4 / (e^4 + 1)
    p = [math.e / (math.e + 1.0), math.exp(4) / (math.exp(4) + 1.0)]
    expected = -sum(q * math.log(q) for q in p)
    assert abs(float(paper_orthogonality_loss(x)) - expected) < 1e-6
    # more orthogonal (larger self-similarity margin) -> smaller loss, as the paper intends
    assert float(paper_orthogonality_loss(3 * x)) < float(paper_orthogonality_loss(x))


def test_unknown_forms_name_the_key_and_the_choices():
    with pytest.raises(ValueError, match="dataset_logits must be one of logsumexp, paper_sum"):
        AutoUnifyConfig(dataset_logits="sum")
    with pytest.raises(ValueError, match="graph_loss must be one of cosine_ce, paper_entropy"):
        AutoUnifyConfig(graph_loss="entropy")
    with pytest.raises(ValueError, match="final_steps must be >= 0"):
        AutoUnifyConfig(final_steps=-1)


def test_orthogonality_loss_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # cos = I, tau = 1: each row softmax(1, 0) at its own index
    expected = -math.log(math.e / (math.e + 1.0))
    assert abs(float(orthogonality_loss(x, 1.0)) - expected) < 1e-6
    same = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert abs(float(orthogonality_loss(same, 1.0)) - math.log(2.0)) < 1e-6


def _recipe(**kw):
    torch.manual_seed(0)
    model = build_pixel_model(
        backbone="tiny",
        backbone_kwargs={"widths": [8, 8, 8, 8], "norm": "gn"},
        decoder_dim=8,
        embed_dim=6,
    )
    spaces = {
        "a": LabelSpace.from_names(["road", "car"], name="a"),
        "b": LabelSpace.from_names(["road", "lane", "car"], name="b"),
    }
    texts = {
        n: torch.nn.functional.normalize(torch.randn(len(s), 6), dim=1) for n, s in spaces.items()
    }
    args = dict(total_steps=20, warmup_steps=4, alternate_every=3, remap_every=6, final_steps=0)
    args.update(kw)
    settings = AutoUnifyConfig(**{k: v for k, v in args.items() if k != "total_steps"})
    recipe = AutoUnifyRecipe(
        model=model,
        label_spaces=spaces,
        label_embeddings=texts,
        total_steps=args["total_steps"],
        settings=settings,
    )
    return recipe, texts


def _cross_validation(recipe, a_on_b, b_on_a):
    """Warm-up associations (counts and mass alike) for the labelled rows; own classifiers
    are perfect."""
    for assoc in (recipe.validation.assoc, recipe.validation.assoc_soft):
        assoc["a"]["a"][:2] = np.eye(2) * 100
        assoc["b"]["b"][:3] = np.eye(3) * 100
        assoc["a"]["b"][:2] = a_on_b
        assoc["b"]["a"][:3] = b_on_a


def test_alternation_freezes_the_network_that_does_not_train():
    recipe, _ = _recipe()
    recipe.model.backbone.requires_grad_(False)  # frozen by the trainer: must stay frozen
    _cross_validation(recipe, np.eye(2, 3) * 10, np.array([[10, 0], [10, 0], [0, 10]]))
    recipe.initialise_unified()

    def flags():
        graph = {p.requires_grad for p in recipe.graph.parameters()}
        decoder = {
            p.requires_grad
            for n, p in recipe.model.named_parameters()
            if not n.startswith("backbone.")
        }
        backbone = {p.requires_grad for p in recipe.model.backbone.parameters()}
        return graph, decoder, backbone

    recipe.on_step_start(0)  # warm-up: segmentation network only
    assert recipe.phase == "warmup" and flags() == ({False}, {True}, {False})
    recipe.on_step_start(4)  # steps 4-6: segmentation phase
    assert recipe.phase == "segmentation" and flags() == ({False}, {True}, {False})
    recipe.on_step_start(7)  # steps 7-9: graph phase
    assert recipe.phase == "graph" and flags() == ({True}, {False}, {False})
    assert all(p.requires_grad for p in recipe.head.parameters())
    recipe.on_step_start(10)
    assert recipe.phase == "segmentation" and flags() == ({False}, {True}, {False})


def test_cross_dataset_validation_sets_n_and_the_mappings_and_state_round_trips():
    recipe, texts = _recipe()
    # a's road <-> b's road, a's car <-> b's car; b's lane is called road by a's classifier,
    # and b's lane classifier finds lanes in a's road
    _cross_validation(
        recipe,
        np.array([[80, 15, 5], [2, 3, 95]]),
        np.array([[90, 10], [85, 15], [5, 95]]),
    )
    recipe.initialise_unified()
    assert sum(recipe.slots.active) == 3
    assert recipe.slots.assign["a"][:3] == [0, 1, 0] and recipe.slots.assign["b"][:3] == [0, 2, 1]
    recipe.prune()
    assert [c.name for c in recipe.slots.classes()] == ["road", "car", "lane"]
    assert recipe.unified_space().names == ["road", "car", "lane"]
    state = json.loads(json.dumps(recipe.extra_state()))
    fresh, _ = _recipe()
    fresh.load_state_dict(recipe.state_dict())
    fresh.load_extra_state(state)
    assert fresh.slots.assign == recipe.slots.assign and fresh.slots.active == recipe.slots.active
    assert fresh.slots.class_of_slot == recipe.slots.class_of_slot
    out = PixelOutput(embeddings=torch.randn(2, 6, 5, 7))
    fresh.eval()
    recipe.eval()
    for ds in ("a", "b"):
        got = fresh.semantic_logits(out, texts[ds], dataset=ds)
        assert got.shape == (2, len(texts[ds]), 5, 7)
        assert torch.allclose(got, recipe.semantic_logits(out, texts[ds], dataset=ds))
    uni = fresh.semantic_logits(out, texts["a"], dataset="unified", pixel_major=True)
    assert uni.shape == (2, 5, 7, 3)
    # through its mapping, a's "road" gathers the unified road and lane classes
    probs_a = fresh.semantic_logits(out, texts["a"], dataset="a").softmax(1)
    probs_u = fresh.semantic_logits(out, texts["a"], dataset="unified").softmax(1)
    assert torch.allclose(probs_a[:, 0], probs_u[:, 0] + probs_u[:, 2], atol=1e-5)
    # zero-shot: b's own texts find b's labels through the classes that map to them
    zs = fresh.semantic_logits(out, texts["b"], dataset=None).softmax(1)
    assert zs.shape == (2, 3, 5, 7) and torch.allclose(zs.sum(1), torch.ones(2, 5, 7), atol=1e-4)


def test_mismatched_state_is_an_error():
    recipe, _ = _recipe()
    with pytest.raises(ValueError, match="unified slots"):
        recipe.load_extra_state({"active": [True, False]})


def test_tiny_training_run_and_the_unify_cli(tiny_run_config, tmp_path, tiny_synthworld, capsys):
    from babelseg.cli.main import main
    from babelseg.inference.predictor import Predictor

    cfg = load_config(
        tiny_run_config(
            "autounify",
            recipe={
                "name": "autounify",
                "autounify": {"warmup_steps": 3, "alternate_every": 1, "remap_every": 2},
            },
            train={"steps": 6, "checkpoint_every": 6, "eval_at_end": False},
        )
    )
    result = train(cfg)
    assert np.isfinite(result.final_loss)
    recipe = Predictor.from_checkpoint(cfg.run_dir).recipe
    assert (
        recipe.slots.initialised and recipe.slots.class_of_slot is not None
    )  # pruned at the last step
    n = len(recipe.slots.classes())
    assert 1 <= n <= sum(recipe.slots.active)
    assert recipe.datasets == ["metro_drive", "vista_roads", "home_scenes"]
    out_yaml = tmp_path / "taxonomy.yaml"
    assert main(["unify", "--run", cfg.run_dir, "--out", str(out_yaml)]) == 0
    import yaml

    tax = yaml.safe_load(out_yaml.read_text())
    assert tax["num_unified"] == n and len(tax["unified_classes"]) == n
    capsys.readouterr()
    rel = str(tiny_synthworld / "relations.json")
    assert main(["unify", "--run", cfg.run_dir, "--relations", rel, "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["num_unified"] == n and 0.0 <= scores["f1"] <= 1.0
    assert scores["num_world"] > 0 and scores["true_pairs"] > 0
    # predict in the unified space and in a dataset's space through its mapping
    image_dir = tiny_synthworld / "metro_drive" / "images" / "val"
    out = tmp_path / "pred_unified"
    assert (
        main(
            [
                "predict",
                "--run",
                cfg.run_dir,
                "--space",
                "unified",
                str(image_dir),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    names = [c["name"] for c in yaml.safe_load((out / "labels.yaml").read_text())["classes"]]
    assert names == recipe.unified_space().names
    out_ds = tmp_path / "pred_metro"
    assert (
        main(
            [
                "predict",
                "--run",
                cfg.run_dir,
                "--dataset",
                "metro_drive",
                str(image_dir),
                "--out",
                str(out_ds),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out_ds.glob("*.png")) == sorted(p.name for p in out.glob("*.png"))


def test_predict_space_unified_needs_a_unified_recipe(tiny_run_config, tiny_synthworld, tmp_path):
    from babelseg.cli.main import main

    cfg = load_config(tiny_run_config("plain", train={"steps": 1, "eval_at_end": False}))
    train(cfg)
    image_dir = tiny_synthworld / "metro_drive" / "images" / "val"
    code = main(
        [
            "predict",
            "--run",
            cfg.run_dir,
            "--space",
            "unified",
            str(image_dir),
            "--out",
            str(tmp_path / "p"),
        ]
    )
    assert code != 0


def test_cross_dataset_validation_counts_unlabelled_pixels_and_skips_padding():
    from babelseg.labels.space import IGNORE_INDEX

    recipe, texts = _recipe()
    emb = torch.randn(2, 6, 4, 4)
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[:, :4] = IGNORE_INDEX  # 2 x 64 unlabelled pixels
    target[:, 4:8] = 1
    valid = torch.ones(2, 16, 16, dtype=torch.bool)
    valid[:, 12:] = False  # padding: its labels are ignore too, but it is not counted
    target[:, 12:] = IGNORE_INDEX
    recipe.validation.accumulate(
        emb, target, valid, source="a", texts=texts, scale=recipe.head.temperature()
    )
    for assoc in (recipe.validation.assoc, recipe.validation.assoc_soft):
        for name in ("a", "b"):
            m = assoc["a"][name]
            assert m.shape == (3, len(texts[name]))
            assert m.sum() == pytest.approx(2 * 12 * 16)  # the valid pixels, each once
            assert m[2].sum() == pytest.approx(2 * 4 * 16)  # unlabelled row
            assert m[1].sum() == pytest.approx(2 * 4 * 16)


def test_the_initial_adjacency_does_not_depend_on_how_fast_the_edges_learn():
    cv = (np.array([[80, 15, 5], [2, 3, 95]]), np.array([[90, 10], [85, 15], [5, 95]]))
    adjacency = []
    for scale in (10.0, 40.0):
        recipe, _ = _recipe(adjacency_scale=scale)
        _cross_validation(recipe, *cv)
        recipe.initialise_unified()
        adjacency.append(recipe.graph.adjacency(recipe.slots.active_tensor(torch.device("cpu"))))
    assert torch.allclose(adjacency[0], adjacency[1], atol=1e-6)
    # a mapped edge carries e^5 / (e^5 + K - 1) of its row in that dataset
    assert float(adjacency[0][0, 0]) == pytest.approx(math.exp(5) / (math.exp(5) + 1), rel=1e-5)


def test_the_final_stage_fixes_prunes_and_trains_under_the_final_mappings():
    recipe, texts = _recipe(final_steps=5)  # steps 15-19: the final stage
    _cross_validation(
        recipe,
        np.array([[80, 15, 5], [2, 3, 95]]),
        np.array([[90, 10], [85, 15], [5, 95]]),
    )
    recipe.initialise_unified()
    recipe.on_step_start(14)
    assert recipe.phase == "graph" and not recipe.finalised
    recipe.on_step_start(15)
    assert recipe.phase == "final" and recipe.finalised
    assert all(not p.requires_grad for p in recipe.graph.parameters())
    assert all(p.requires_grad for p in recipe.model.parameters())
    fixed = {n: list(a) for n, a in recipe.slots.assign.items()}
    classes = [c.name for c in recipe.slots.classes()]
    assert classes == ["road", "car", "lane"]
    # the adjacency now prefers other labels: the final mappings no longer follow it
    with torch.no_grad():
        recipe.graph.edge_logits.copy_(-recipe.graph.edge_logits)
    fresh = SlotMappings(spaces=recipe.slots.spaces, num_slots=recipe.slots.num_slots)
    fresh.start(3)
    fresh.remap(recipe.graph.adjacency().detach().numpy())
    assert fresh.assign != fixed  # a remap would move them
    recipe.on_step_start(17)
    recipe.remap()
    recipe.on_step_end(19)
    assert recipe.slots.assign == fixed and [c.name for c in recipe.slots.classes()] == classes
    # the loss of a final step reads the boolean mapping; evaluation reads the same logits
    out = PixelOutput(embeddings=torch.randn(2, 6, 4, 4))
    recipe.eval()
    for ds in ("a", "b"):
        graph = recipe.graph(recipe.slots.active_tensor(torch.device("cpu")))
        unified = recipe.head.unified_logits(out.embeddings, graph.unified)
        want = mapped_logits(unified, recipe.slots.mapping(ds))
        assert torch.allclose(recipe.semantic_logits(out, texts[ds], dataset=ds), want)


def test_the_printed_eq5_is_what_evaluation_uses_when_chosen():
    recipe, texts = _recipe(dataset_logits="paper_sum", final_steps=2)
    _cross_validation(recipe, np.eye(2, 3) * 10, np.array([[10, 0], [10, 0], [0, 10]]))
    recipe.initialise_unified()
    recipe.on_step_start(18)
    assert recipe.phase == "final"
    recipe.eval()
    out = PixelOutput(embeddings=torch.randn(2, 6, 4, 4))
    graph = recipe.graph(recipe.slots.active_tensor(torch.device("cpu")))
    unified = recipe.head.unified_logits(out.embeddings, graph.unified)
    got = recipe.semantic_logits(out, texts["b"], dataset="b")
    want = torch.einsum("bnhw,nk->bkhw", unified, recipe.slots.mapping("b"))
    assert torch.allclose(got, want, atol=1e-6)


def test_defaults_are_the_evidence_rows_choices():
    """eq. 7 as printed (ours was not shown better); eq. 5 in our form (the printed one lost
    0.24 taxonomy pair F1): the dataclass and configs/autounify.yaml agree."""
    from pathlib import Path

    assert AutoUnifyConfig().graph_loss == "paper_entropy"
    assert AutoUnifyConfig().dataset_logits == "logsumexp"
    config = Path(__file__).resolve().parents[1] / "configs" / "autounify.yaml"
    section = load_config(config).recipe.autounify
    assert (section.graph_loss, section.dataset_logits) == ("paper_entropy", "logsumexp")
