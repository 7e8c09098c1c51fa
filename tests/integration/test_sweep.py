"""A recipe that shapes its graph: a sweep over cpt.replay_ratio with sft and merge skipped, on the tiny model.

Real stages end to end: the branches share model, corpus, pack and eval_base by key; each branch gets its
own cpt, eval and report; the compare node puts them side by side; one more value runs one more branch.
(A branch's chain through sft and merge is checked on the graph in tests/unit/test_dag.py.)
"""

from __future__ import annotations

import pytest
import yaml

from pipeline.recipe import load_recipe
from pipeline.runner import Runner
from pipeline.store import Store
from tests.conftest import tiny_recipe

SHARED = {"model", "corpus", "pack", "eval_base"}


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_model, general_jsonl):
    folder = tmp_path_factory.mktemp("sweep")
    path = tiny_recipe(folder / "swept.yaml", tiny_model, general_jsonl, sweep={"cpt.replay_ratio": [0.25, 0.5]})
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    recipe["skip"] = ["sft", "merge"]
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    store = Store(folder / "runs")
    decisions = Runner(load_recipe(str(path)), store).run()
    return path, store, decisions


def test_branches_share_the_upstream_and_each_trains_its_own_ratio(swept):
    _, store, decisions = swept
    names = {d.node.name for d in decisions}
    branch_nodes = {f"{stage}-replay_ratio-{r}" for stage in ("cpt", "eval_cpt", "report") for r in (0.25, 0.5)}
    assert names == SHARED | branch_nodes | {"compare"}  # sft and merge skipped: neither they nor their evals
    assert all(d.action == "run" for d in decisions)
    keys = {d.node.name: d.key for d in decisions}
    shares = {
        r: store.manifest("cpt", keys[f"cpt-replay_ratio-{r}"])["metrics"]["general_token_share"] for r in (0.25, 0.5)
    }
    assert shares == {0.25: 0.25, 0.5: 0.5}
    # each branch's eval reads that branch's cpt model
    eval_inputs = store.manifest("eval", keys["eval_cpt-replay_ratio-0.5"])["inputs"]
    assert eval_inputs["model"]["node"] == "cpt-replay_ratio-0.5"
    assert eval_inputs["model"]["key"] == f"{keys['cpt-replay_ratio-0.5']}:model"


def test_compare_puts_every_branch_model_against_base(swept):
    _, store, decisions = swept
    key = next(d.key for d in decisions if d.node.name == "compare")
    folder = store.final_dir("compare", key)
    page = (folder / "report.md").read_text(encoding="utf-8")
    for label in ("cpt replay_ratio-0.25", "cpt replay_ratio-0.5"):
        assert f"| {label} |" in page
    assert (folder / "pareto.png").read_bytes()[:4] == b"\x89PNG" and (folder / "branch_curves.png").exists()
    metrics = store.manifest("compare", key)["metrics"]
    assert metrics["branches"] == ["replay_ratio-0.25", "replay_ratio-0.5"]
    assert set(metrics["pareto_front"]) <= set(metrics["gain_and_forgetting"]) and metrics["pareto_front"]


def test_report_command_prints_the_comparison(swept, capsys):
    from pipeline import cli

    path, store, decisions = swept
    assert cli.main(["report", str(path), "--store", str(store.root)]) == 0
    key = next(d.key for d in decisions if d.node.name == "compare")
    printed = capsys.readouterr().out
    assert "Branches: each model against base" in printed and str(store.final_dir("compare", key)) in printed


def test_one_more_value_runs_only_the_new_branch_and_the_comparison(swept):
    path, store, _ = swept
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    recipe["sweep"] = {"cpt.replay_ratio": [0.25, 0.5, 0.75]}
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    planned = Runner(load_recipe(str(path)), store).plan()
    ran = {d.node.name for d in planned if d.action == "run"}
    assert ran == {f"{s}-replay_ratio-0.75" for s in ("cpt", "eval_cpt", "report")} | {"compare"}
