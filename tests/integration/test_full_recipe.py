"""The GPU-scale legal recipe (``recipes/legal-full.yaml``) runs its whole graph, at tiny budgets, on CPU.

Its budgets are sized for one GPU (hours on 2 CPU cores), so the test keeps the recipe's sources, tasks
and stage settings and shrinks only what costs: a tiny model, the first documents of each source, GCIDE
from the test fixture and the general Python docs replaced by the stdlib docstrings fixture (the Debian
packages are not installed by ``make test``), and budgets of a few blocks.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from pipeline.recipe import load_recipe
from pipeline.runner import Runner
from pipeline.store import Store

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_GCIDE = ROOT / "tests" / "fixtures" / "gcide"
TINY_BUDGETS = [
    "cpt.max_tokens=1024",
    "cpt.seq_len=64",
    "cpt.batch_size=4",
    "cpt.micro_batch_size=4",
    "cpt.eval_every=2",
    "cpt.eval_tokens=128",
    "sft.epochs=1",
    "sft.batch_size=4",
    "sft.micro_batch_size=4",
    "corpus.max_sft_pairs=8",
    "corpus.max_eval_items=8",
    "eval.bpb_docs=3",
    "eval.bpb_doc_chars=300",
    "eval.batch_size=8",
]


def _shrunk_recipe(folder: Path, tiny_model: Path, general_jsonl: Path) -> Path:
    recipe = yaml.safe_load((ROOT / "recipes" / "legal-full.yaml").read_text(encoding="utf-8"))
    recipe["base_model"] = str(tiny_model)
    for source in recipe["sources"]:
        source["max_documents"] = 80
        if source["type"] == "gcide":
            source["path"] = str(FIXTURE_GCIDE)
            source.pop("sample", None)  # the fixture is a small slice of the dictionary already
        if source["type"] == "python_docs":
            source.update(type="jsonl", path=str(general_jsonl))
    for task in recipe["corpus"]["tasks"]:
        task.pop("max_eval_items", None)  # the probes' 400 items: the corpus-wide tiny default instead
    path = folder / "legal-full.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def test_the_shipped_full_recipe_plans_as_is():
    recipe = load_recipe("legal-full")
    assert recipe.params["model"].name == "embedded:smollm2-135m-instruct"  # offline: no hub download
    cpt = recipe.params["cpt"]
    assert cpt.max_tokens >= 2 * 1_700_000 / (1 - cpt.replay_ratio) * 0.99  # two passes over legal's domain tokens
    assert recipe.params["corpus"].max_eval_items >= 200


def test_full_recipe_runs_end_to_end_at_tiny_budgets(tmp_path, tiny_model, general_jsonl):
    recipe = load_recipe(str(_shrunk_recipe(tmp_path, tiny_model, general_jsonl)), TINY_BUDGETS)
    store = Store(tmp_path / "runs")
    decisions = Runner(recipe, store).run()
    assert {d.action for d in decisions} == {"run"}
    keys = {d.node.name: d.key for d in decisions}
    results = json.loads((store.final_dir("eval", keys["eval_merge"]) / "results.json").read_text())["tasks"]
    assert {"license_id", "legal_terms", "general_words", "cloze", "knowledge_probe"} <= set(results)
    assert all(len(results[task]["per_item"]) == results[task]["items"] > 0 for task in ("license_id", "cloze"))
    report = (store.final_dir("report", keys["report"]) / "report.md").read_text(encoding="utf-8")
    assert "Verdict" in report and "license_id" in report
