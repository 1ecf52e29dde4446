"""``benchmarks/evidence.py`` end to end at the --quick budget: one paper on the default world,
and a world it has never seen (other dataset and label names, the same classes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from babelseg.data.synth import DEFAULT_WORLD_PATH

ROOT = Path(__file__).resolve().parents[1]
ROW_KEYS = {"paper", "claim", "table", "paper_effect", "metric", "mean", "sd", "n", "steps"}


def _harness(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "evidence.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_quick_lmseg_table_on_the_default_world(tiny_synthworld, tmp_path):
    out = tmp_path / "ev"
    proc = _harness(
        "--paper", "lmseg", "--world", str(tiny_synthworld), "--quick", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((out / "lmseg.json").read_text())
    rows = report["rows"]
    tables = {r["table"] for r in rows}
    choices = {"LMSeg section 3.6, eq. 3-5", "LMSeg section 3.2"}  # loss, prompts (issue 13)
    assert tables == {f"LMSeg Table {t}" for t in (2, 3, 5, 6, 7)} | choices
    for row in rows:
        assert ROW_KEYS | {"verdict", "device"} <= set(row)
        assert row["n"] == 2 and row["mean"] is not None and row["ci95"][0] <= row["ci95"][1]
        assert "means nothing" in row["verdict"] and row["device"] == "cpu"
    # the rows read the world's roles: metro, vista and pascal are its clean mask datasets
    assert all("metro_drive, vista_roads, pascal_objects" in r["metric"] for r in rows[:2])
    assert not any(report["runs"][k]["error"] for k in report["runs"])
    loss_rows = [r for r in rows if r["table"] == "LMSeg section 3.6, eq. 3-5"]
    assert loss_rows and all("Mask2Former" in r["claim"] for r in loss_rows)
    text = (out / "lmseg.md").read_text()
    assert "| category-guided decoding helps (semantic) | LMSeg Table 6 | +0.50 mIoU" in text
    # a rerun trains nothing: every run is cached
    again = _harness(
        "--paper", "lmseg", "--world", str(tiny_synthworld), "--quick", "--out", str(out)
    )
    assert "0 to train" in again.stdout


def _renamed_world(path: Path) -> None:
    """The default world with every dataset and label renamed (the same classes), the boxes
    dataset left out, and one image per split."""
    world = yaml.safe_load(DEFAULT_WORLD_PATH.read_text())
    views = []
    for view in world["datasets"]:
        if view.get("annotation") == "boxes":
            continue
        rename = {lab: f"{lab} kind" for lab in set(view["taxonomy"].values()) if lab != "ignore"}
        if view.get("unlisted", "ignore") != "ignore":
            rename[view["unlisted"]] = f"{view['unlisted']} kind"
            view["unlisted"] = rename[view["unlisted"]]
        view["name"] = "alt_" + view["name"]
        view["taxonomy"] = {c: rename.get(lab, lab) for c, lab in view["taxonomy"].items()}
        view["descriptions"] = {rename[k]: v for k, v in view.get("descriptions", {}).items()}
        view["novel_labels"] = [rename[k] for k in view.get("novel_labels", [])]
        enc = view.get("encoding", {})
        if "values" in enc:
            enc["values"] = {rename[k]: v for k, v in enc["values"].items()}
        view["splits"]["tiny"] = {k: 1 for k in view["splits"]["tiny"]}
        views.append(view)
    world["datasets"] = views
    path.write_text(yaml.safe_dump(world, sort_keys=False))


def test_harness_runs_unchanged_on_a_world_it_has_never_seen(tmp_path):
    world = tmp_path / "renamed_world.yaml"
    _renamed_world(world)
    out = tmp_path / "ev"
    proc = _harness(
        "--paper", "sentence", "--world", str(world), "--quick", "--seeds", "0",
        "--cache", str(tmp_path / "worlds"), "--jobs", "2", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = {r["claim"]: r for r in json.loads((out / "sentence.json").read_text())["rows"]}
    ld = rows["adding noisy masks with L_LD helps"]
    assert "alt_night_drive, alt_living_zero" in ld["metric"]
    assert ld["n"] == 1 and ld["mean"] is not None
    # no boxes-only dataset in this world: the L_WD rows are left out and the report says so
    assert not any("L_WD" in claim for claim in rows)
    assert "no boxes-only training dataset" in (out / "sentence.md").read_text()
    # every held-out label name is new ("... kind"), so Table 4 reads all of them
    assert rows["sentences beat words on unseen labels"]["mean"] is not None


def test_quick_ms3_table_has_every_table(tiny_synthworld, tmp_path):
    out = tmp_path / "ev"
    proc = _harness(
        "--paper", "ms3", "--world", str(tiny_synthworld), "--quick", "--seeds", "0",
        "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((out / "ms3.json").read_text())
    tables = {r["table"] for r in report["rows"]}
    assert tables == {f"MS3 Table {t}" for t in (1, 2, 3, 4, 5, 6, 9)} | {
        "MS3 eq. 6",
        "MS3 eq. 1",
        "MS3 eq. 2",
        "MS3 eq. 4",
        "MS3 eq. 9",
    }
    # every row has a number: Table 1's come from the L + V run's checkpoint, kept in its result
    assert all(r["mean"] is not None for r in report["rows"])
    table1 = json.loads((out / "runs" / "ms3" / "L_V" / "seed0" / "result.json").read_text())
    assert {"frozen_encoder", "before", "after"} <= set(table1["metrics"]["table1"])
    # fine-tuning started from L + V's checkpoint, which went once its fine-tuning runs finished
    assert not list((out / "runs" / "ms3" / "L_V" / "seed0").glob("ckpt_*"))
    ft = yaml.safe_load(
        (out / "runs" / "ms3" / "FT_from_L_V" / "seed0" / "config.yaml").read_text()
    )
    assert ft["train"]["init_from"] == str(out.resolve() / "runs" / "ms3" / "L_V" / "seed0")
    assert "MS3 Table 9" in (out / "ms3.md").read_text()
    assert not any(report["runs"][k]["error"] for k in report["runs"])
