"""The real DAG on a tiny model and a tiny real corpus: run, rerun, change one param, kill and resume.

No mocks: transformers, trl, mergekit and lm-eval all run, on a 2-layer model built from a config.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.recipe import load_recipe
from pipeline.runner import Runner
from pipeline.store import SUCCESS, Store
from tests.conftest import tiny_recipe

ROOT = Path(__file__).resolve().parents[2]
ALL_NODES = ["model", "corpus", "pack", "cpt", "sft", "merge"] + [f"eval_{m}" for m in ("base", "cpt", "sft", "merge")]
ALL_NODES += [f"doc_translation_{m}" for m in ("base", "cpt", "sft", "merge")] + ["report"]
DOC_TRANSLATION = {"sources": ["messages_fr"], "documents": 2, "sentences": 3, "windows": [0, 1]}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, tiny_model, general_jsonl):
    folder = tmp_path_factory.mktemp("e2e")
    recipe_file = tiny_recipe(folder / "tiny.yaml", tiny_model, general_jsonl, doc_translation=DOC_TRANSLATION)
    store = Store(folder / "runs")
    decisions = Runner(load_recipe(str(recipe_file)), store).run()
    return recipe_file, store, decisions


def _actions(decisions):
    return {d.node.name: d.action for d in decisions}


def test_first_run_executes_every_stage_and_writes_a_report(first_run):
    _recipe_file, store, decisions = first_run
    assert [d.node.name for d in decisions] == ALL_NODES
    assert set(_actions(decisions).values()) == {"run"}
    report_key = next(d.key for d in decisions if d.node.name == "report")
    folder = store.final_dir("report", report_key)
    text = (folder / "report.md").read_text()
    for model in ("base", "cpt", "sft", "merge"):
        assert f"| {model} |" in text
    assert "Domain gain and general forgetting" in text and "license_id acc (chance 0.25" in text
    assert "domain en_fr chrf (copy the source" in text
    html = (folder / "report.html").read_text()
    assert "data:image/png;base64," in html
    metrics = store.manifest("report", report_key)["metrics"]
    for model in ("base", "cpt", "sft", "merge"):
        assert 0 < metrics[model]["bpb_general"] < 20 and 0 < metrics[model]["bpb_domain"] < 20
        assert 0 <= metrics[model]["license_id"] <= 1
        assert 0 <= metrics[model]["en_fr"] <= 100
    # The tiny model learns the domain text it was trained on.
    assert metrics["cpt"]["bpb_domain"] < metrics["base"]["bpb_domain"]


def test_every_model_translates_the_same_held_out_documents_three_ways(first_run):
    _, store, decisions = first_run
    keys = {d.node.name: d.key for d in decisions}
    payloads = {
        model: json.loads(
            (store.final_dir("doc_translation", keys[f"doc_translation_{model}"]) / "results.json").read_text()
        )
        for model in ("base", "cpt", "sft", "merge")
    }
    documents = {json.dumps(p["references"]) for p in payloads.values()}
    assert len(documents) == 1  # the same documents and sentences for every model
    for payload in payloads.values():
        entry = payload["sources"]["messages_fr"]
        assert entry["source_lang"] == "English" and entry["target_lang"] == "French"
        assert list(entry["decoders"]) == ["k=0", "k=1", "document"]
        sentences = sum(len(d["sentences"]) for d in payload["references"]["messages_fr"])
        assert 2 <= sentences <= 6
        for scores in entry["decoders"].values():
            assert len(scores["per_item"]) == sentences == sum(len(h) for h in scores["hypotheses"])
            assert 0 <= scores["chrf"] <= 100 and 0 <= scores["d_bleu"] <= 100
    report = (store.final_dir("report", keys["report"]) / "report.md").read_text()
    assert "## Document-level translation: messages_fr" in report
    assert "| merge | k=1 |" in report and "| merge | whole document |" in report
    assert "doc_translation.png" in report


def test_explain_shows_what_each_model_stage_chose_at_run_time(first_run, capsys):
    """Precision and attention kernel are chosen from the hardware, not keyed: the manifest records them."""
    import re

    from pipeline import cli

    recipe_file, store, _ = first_run
    assert cli.main(["explain", str(recipe_file), "--store", str(store.root)]) == 0
    out = capsys.readouterr().out
    made = re.findall(r"made with device cpu, precision (?:fp32|bf16), attention sdpa", out)
    assert len(made) == 10  # cpt, sft, the four evals and the four document translations
    assert "backend hf" in out


def test_stage_outputs_are_loadable_models_with_manifests(first_run):
    from transformers import AutoModelForCausalLM

    _, store, decisions = first_run
    for decision in decisions:
        manifest = store.manifest(decision.node.stage, decision.key)
        assert manifest["key"] == decision.key and manifest["timings"]["seconds"] >= 0
        assert "libraries" in manifest and "params" in manifest
    for node in ("cpt", "sft", "merge"):
        key = next(d.key for d in decisions if d.node.name == node)
        model_dir = store.final_dir(node, key) / "model"
        assert (model_dir / "README.md").exists() and (model_dir / "model.safetensors").exists()
        AutoModelForCausalLM.from_pretrained(model_dir)
    cpt_key = next(d.key for d in decisions if d.node.name == "cpt")
    curves = [json.loads(line) for line in (store.final_dir("cpt", cpt_key) / "curves.jsonl").read_text().splitlines()]
    assert [r["step"] for r in curves if "eval_domain_loss" in r] == [0, 2, 4, 6, 8]
    assert any("eval_general_loss" in r for r in curves)


def test_second_run_executes_nothing(first_run):
    recipe_file, store, _ = first_run
    decisions = Runner(load_recipe(str(recipe_file)), store).run()
    assert set(_actions(decisions).values()) == {"reuse"}


def test_changed_param_reruns_only_that_stage_and_downstream(first_run):
    recipe_file, store, _ = first_run
    runner = Runner(load_recipe(str(recipe_file), ["sft.learning_rate=1e-4"]), store)
    planned = runner.plan()
    sft = next(d for d in planned if d.node.name == "sft")
    assert "param sft.learning_rate changed 5e-05 -> 0.0001" in sft.reasons
    merge = next(d for d in planned if d.node.name == "merge")
    assert "input 'model' changed (from sft)" in merge.reasons
    decisions = runner.run()
    ran = {name for name, action in _actions(decisions).items() if action == "run"}
    assert ran == {"sft", "merge", "eval_sft", "eval_merge", "doc_translation_sft", "doc_translation_merge", "report"}


def test_forced_stage_reruns_with_downstream(first_run):
    recipe_file, store, _ = first_run
    planned = Runner(load_recipe(str(recipe_file)), store).plan(force=["merge"])
    ran = {d.node.name for d in planned if d.action == "run"}
    assert ran == {"merge", "eval_merge", "doc_translation_merge", "report"}


def test_killed_training_stage_resumes(tmp_path, tiny_model, general_jsonl):
    recipe_file = tiny_recipe(
        tmp_path / "resume.yaml",
        tiny_model,
        general_jsonl,
        cpt={"max_tokens": 65536, "save_every": 2, "eval_every": 1000},
    )
    store_dir = tmp_path / "runs"
    env = dict(os.environ, PYTHONPATH=str(ROOT), DAPT_STORE=str(store_dir))
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", str(recipe_file)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    checkpoint_state = None
    while time.time() < deadline and checkpoint_state is None:
        found = sorted(store_dir.glob("cpt/*.partial/checkpoints/checkpoint-*/trainer_state.json"))
        checkpoint_state = found[0] if found else None
        assert process.poll() is None, "the run ended before the cpt stage saved a checkpoint"
        time.sleep(0.05)
    assert checkpoint_state is not None, "no cpt checkpoint within 300 s"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    partial = checkpoint_state.parents[2]
    assert not (partial / SUCCESS).exists() and not list(store_dir.glob("cpt/*/_SUCCESS"))

    runner = Runner(load_recipe(str(recipe_file)), Store(store_dir))
    cpt = next(d for d in runner.plan() if d.node.name == "cpt")
    assert "an interrupted run of this key exists: resuming it" in cpt.reasons
    runner.run()
    metrics = Store(store_dir).manifest("cpt", cpt.key)["metrics"]
    assert metrics["resumed_from"] is not None and metrics["resumed_from"].startswith("checkpoint-")
    assert int(metrics["resumed_from"].split("-")[1]) >= 2
    assert metrics["steps"] == 256


def test_plan_stage_chooses_the_replay_ratio_that_cpt_uses(tmp_path, tiny_model, general_jsonl):
    recipe_file = tiny_recipe(
        tmp_path / "planned.yaml",
        tiny_model,
        general_jsonl,
        plan={
            "domain_shares": [0.25, 0.5, 1.0],
            "proxy_tokens": 1024,
            "proxy_eval_every": 1,
            "fit_starts": 4,
            "objective": "balanced",
        },
    )
    store = Store(tmp_path / "runs")
    recipe = load_recipe(str(recipe_file))
    assert [n.name for n in recipe.nodes][:5] == ["model", "corpus", "pack", "plan", "cpt"]
    assert recipe.params["plan"].cpt.seq_len == 64  # proxies train as the recipe's cpt stage does
    decisions = Runner(recipe, store).run()
    key = {d.node.name: d.key for d in decisions}
    plan = json.loads((store.final_dir("plan", key["plan"]) / "plan.json").read_text())
    assert {p["domain_share"] for p in plan["points"]} == {0.25, 0.5, 1.0}
    assert plan["fits"]["domain"]["quality"]["leave_one_ratio_out"].keys() == {"0.250", "0.500", "1.000"}
    chosen = plan["chosen"]["replay_ratio"]
    cpt_metrics = store.manifest("cpt", key["cpt"])["metrics"]
    blocks = cpt_metrics["blocks"]
    assert cpt_metrics["general_blocks"] == round(chosen * blocks)
    report = (store.final_dir("report", key["report"]) / "report.md").read_text()
    assert "Mixture plan (D-CPT Law)" in report and "Plan: prediction against the real cpt run" in report
    # The report reads the proxies and cpt's metrics through declared outputs, not paths into their folders.
    index = json.loads((store.final_dir("plan", key["plan"]) / "proxies" / "index.json").read_text())
    assert [entry["domain_share"] for entry in index] == [0.25, 0.5, 1.0]
    bound = store.manifest("report", key["report"])["inputs"]
    assert (bound["proxies"]["node"], bound["proxies"]["output"]) == ("plan", "proxies")
    assert (bound["cpt_run"]["node"], bound["cpt_run"]["output"]) == ("cpt", "manifest")
    # Pinning the ratio by hand overrides the plan, and changes only cpt's key and what follows.
    pinned = Runner(load_recipe(str(recipe_file), ["cpt.replay_ratio=0.5"]), store).plan()
    assert {d.node.name for d in pinned if d.action == "run"} == {
        "cpt",
        "sft",
        "merge",
        "eval_cpt",
        "eval_sft",
        "eval_merge",
        "report",
    }
