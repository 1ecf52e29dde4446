"""AutoUniSeg (``shared/papers/AutoUniSeg.txt``) Tables 2-3: the learned label space
(``configs/autounify.yaml``, its phases at the shares of its former 2000-step schedule)
against the multi-head baseline and one model per dataset at the same total budget, on the
training datasets and on the held-out (unseen) ones.
"""

from __future__ import annotations

from evidence_harness.claims import (
    Claim,
    Measure,
    PaperTable,
    RunConfig,
    mean_score,
    own_run_scores,
)
from evidence_harness.world import WorldRoles

OWN_STEPS = 2000
"""The steps of configs/autounify.yaml's former schedule, whose shares the phases keep (warm-up
40 %). The config now warms up for 2400 of 3600 steps for a better taxonomy; the table keeps
the shares it was measured with, so its rows stay comparable and cached."""
PHASES = (
    ("recipe.autounify.warmup_steps", 800 / OWN_STEPS),
    ("recipe.autounify.alternate_every", 200 / OWN_STEPS),
    ("recipe.autounify.remap_every", 400 / OWN_STEPS),
    ("recipe.autounify.final_steps", 400 / OWN_STEPS),
)


def taxonomy_score(run: str, key: str):
    """A ``Measure.value``: ``key`` of run ``run``'s learned taxonomy score (``f1``,
    ``num_unified``...; the harness job scores it against the world's relations.json)."""

    def value(runs) -> float:
        return float(runs[run].get("taxonomy", {}).get(key, float("nan")))

    return value


EQ7_OURS = "autounify, eq. 7 as our cosine CE"
"""The configuration with our eq. 7 form; ``configs/autounify.yaml`` uses the printed one."""


def table(roles: WorldRoles) -> PaperTable:
    """AutoUniSeg Tables 2-3 on the world's clean training datasets."""
    train, held = roles.clean, roles.heldout
    data = f"data.train=[{', '.join(train)}]"
    configs = {
        "autounify": RunConfig(
            config="configs/autounify.yaml", overrides=(data,), phases=PHASES, note="learned space"
        ),
        "autounify, no final stage": RunConfig(
            config="configs/autounify.yaml",
            overrides=(data, "recipe.autounify.final_steps=0"),
            phases=PHASES[:3],
            note="alternation to the last step",
        ),
        "autounify, eq. 5 as printed": RunConfig(
            config="configs/autounify.yaml",
            overrides=(data, "recipe.autounify.dataset_logits=paper_sum"),
            phases=PHASES,
            note="s = M u",
        ),
        EQ7_OURS: RunConfig(
            config="configs/autounify.yaml",
            overrides=(data, "recipe.autounify.graph_loss=cosine_ce"),
            phases=PHASES,
            note="cross-entropy of cosine similarities (the config: eq. 7 as printed)",
        ),
        "multi-head": RunConfig(config="configs/multihead.yaml", overrides=(data,)),
    }
    for name in train:
        configs[f"single: {name}"] = RunConfig(
            config="configs/single.yaml",
            overrides=(f"data.train=[{name}]",),
            steps_fraction=1 / len(train),
            note=f"1/{len(train)} of the steps",
        )
    on_train = f"mean mIoU of the training datasets ({', '.join(train)})"

    def m(run: str, datasets: list[str]) -> Measure:
        return Measure(label=run, runs=(run,), value=mean_score(run, datasets, "mIoU"))

    def taxonomy(run: str, key: str) -> Measure:
        return Measure(label=f"{run} ({key})", runs=(run,), value=taxonomy_score(run, key))

    single = {d: f"single: {d}" for d in train}
    claims = [
        Claim(
            claim="the learned label space beats multi-head",
            table="AutoUniSeg Table 2",
            paper_effect="+4.6 mIoU (51.8 -> 56.4)",
            paper_sign=+1,
            metric=on_train,
            treatment=m("autounify", train),
            control=m("multi-head", train),
        ),
        Claim(
            claim="the learned label space beats one model per dataset",
            table="AutoUniSeg Table 2",
            paper_effect="+6.0 mIoU (50.4 -> 56.4)",
            paper_sign=+1,
            metric=on_train + "; single: each dataset by its own model",
            treatment=m("autounify", train),
            control=Measure(
                label="single",
                runs=tuple(single.values()),
                value=own_run_scores(single, dict.fromkeys(train, "mIoU")),
            ),
        ),
    ]
    # eq. 5: the config keeps our form (the printed one lost on the taxonomy), so the printed
    # form is the treatment; eq. 7: the config uses the printed form (ours was not shown
    # better), so our form is the treatment.
    for variant, claim, form, effect in (
        (
            "autounify, eq. 5 as printed",
            "eq. 5 as printed (sum of logits)",
            "log-sum-exp, ours",
            "the paper's form; not compared in the paper",
        ),
        (
            EQ7_OURS,
            "our eq. 7 (cosine CE)",
            "the printed entropy term",
            "our choice against the paper's form; not compared in the paper",
        ),
    ):
        claims += [
            Claim(
                claim=f"{claim} beats the config's form ({form})",
                table="AutoUniSeg eq. 5 / eq. 7",
                paper_effect=effect,
                paper_sign=+1,
                metric=on_train,
                treatment=m(variant, train),
                control=m("autounify", train),
            ),
            Claim(
                claim=f"{claim} learns a better taxonomy than the config's form ({form})",
                table="AutoUniSeg eq. 5 / eq. 7",
                paper_effect=effect,
                paper_sign=+1,
                metric="taxonomy pair F1 against relations.json",
                treatment=taxonomy(variant, "f1"),
                control=taxonomy("autounify", "f1"),
            ),
        ]
    claims.append(
        Claim(
            claim="the final segmentation stage helps",
            table="AutoUniSeg released code (its last stage)",
            paper_effect="not reported in the paper",
            paper_sign=+1,
            metric=on_train,
            treatment=m("autounify", train),
            control=m("autounify, no final stage", train),
            note="same total steps: without it the alternation runs to the end",
        )
    )
    if held:
        claims.append(
            Claim(
                claim="the learned label space transfers better to unseen datasets than multi-head",
                table="AutoUniSeg Table 3",
                paper_effect="higher on unseen datasets (56.9 mean)",
                paper_sign=+1,
                metric=f"held-out mean mIoU ({', '.join(held)})",
                treatment=m("autounify", held),
                control=m("multi-head", held),
            )
        )
    return PaperTable(
        paper="autounify",
        title="AutoUniSeg: automatic unified label space for multi-dataset segmentation",
        configs=configs,
        claims=claims,
        not_measured=[
            "The taxonomy's target quality (pair F1 >= 0.95 with the world's class count +- 1) "
            "is a property of the full `configs/autounify.yaml` schedule (3600 steps), not of "
            "this table's budget; the taxonomy section above scores each run at this budget, and "
            "`babelseg unify --run RUN --relations relations.json` scores any run.",
        ],
    )
