"""MS3 (``shared/papers/MS3.txt``) Tables 4-5 on the pretraining datasets with the ``ms3``
recipe (``configs/ms3.yaml``, its prompt stage kept at the config's share of the steps):
language + visual supervision against each alone and against cross-entropy baselines, and the
language-embedding improvement M_I (learned context) on and off.

The paper pretrains on VOC + ADE20K and scores VOC; here every clean training dataset is
pretrained on and the rows read their mean mIoU.
"""

from __future__ import annotations

from evidence_harness.claims import Claim, Measure, PaperTable, RunConfig, mean_score
from evidence_harness.world import WorldRoles

PROMPT_SHARE = 300 / 2400
"""configs/ms3.yaml: 300 prompt steps of 2400."""


def table(roles: WorldRoles) -> PaperTable:
    """MS3 Tables 4-5 on the world's clean training datasets."""
    train = roles.clean
    data = f"data.train=[{', '.join(train)}]"
    phases = (("recipe.ms3.prompt_steps", PROMPT_SHARE),)

    def ms3(*overrides: str, note: str) -> RunConfig:
        return RunConfig(
            config="configs/ms3.yaml", overrides=(data, *overrides), phases=phases, note=note
        )

    configs = {
        "L + V": ms3(note="configs/ms3.yaml"),
        "L": ms3("recipe.ms3.visual=false", note="language only"),
        "V": ms3("recipe.ms3.language=false", note="visual only"),
        "L without M_I": ms3(
            "recipe.ms3.visual=false", "recipe.ms3.context_length=0", note="no learned context"
        ),
        "CE multi-head": RunConfig(config="configs/multihead.yaml", overrides=(data,)),
        "CE single-head": RunConfig(config="configs/union.yaml", overrides=(data,)),
    }
    metric = f"mean mIoU of the pretraining datasets ({', '.join(train)})"

    def m(run: str) -> Measure:
        return Measure(label=run, runs=(run,), value=mean_score(run, train, "mIoU"))

    rows = [
        ("language + visual beats language alone", "+0.67 mIoU (71.93 -> 72.60)", "L + V", "L"),
        ("language + visual beats visual alone", "+0.62 mIoU (71.98 -> 72.60)", "L + V", "V"),
        ("language beats multi-head CE", "+0.84 mIoU (71.09 -> 71.93)", "L", "CE multi-head"),
        ("language beats single-head CE", "+1.18 mIoU (70.75 -> 71.93)", "L", "CE single-head"),
    ]
    claims = [
        Claim(
            claim=claim,
            table="MS3 Table 4",
            paper_effect=effect,
            paper_sign=+1,
            metric=metric,
            treatment=m(a),
            control=m(b),
        )
        for claim, effect, a, b in rows
    ]
    claims.append(
        Claim(
            claim="the language-embedding improvement M_I helps",
            table="MS3 Table 5",
            paper_effect="+0.72 mIoU (71.93 -> 72.65)",
            paper_sign=+1,
            metric=metric,
            treatment=m("L"),
            control=m("L without M_I"),
        )
    )
    return PaperTable(
        paper="ms3",
        title="MS3: multimodal supervision for semantic segmentation pretraining",
        configs=configs,
        claims=claims,
        not_measured=[
            "Table 1 (class-text similarity before/after M_I), Table 6 (multi-label extension), "
            "Tables 2-3 and 9 (fine-tuning protocol): issue 14.",
        ],
    )
