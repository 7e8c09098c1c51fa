"""A recipe's own nodes: a second domain's corpus, pack and cpt beside the default chain, the two specialists
merged by mergekit TIES, every model evaluated on both domains and compared on one page (tiny model, real stages).
"""

from __future__ import annotations

import pytest
import yaml

from pipeline.recipe import load_recipe
from pipeline.runner import Runner
from pipeline.store import Store
from tests.conftest import tiny_recipe

MODELS = ("base", "cpt", "cpt_fr", "merged")
MODEL_NODES = {"base": "model", "cpt": "cpt", "cpt_fr": "cpt_fr", "merged": "merged"}


@pytest.fixture(scope="module")
def two_domains(tmp_path_factory, tiny_model, general_jsonl):
    folder = tmp_path_factory.mktemp("multi")
    path = tiny_recipe(folder / "two_domains.yaml", tiny_model, general_jsonl)
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    licenses, messages_fr, general = recipe.pop("sources")
    recipe["corpus"] |= {"sources": [licenses, general], "tasks": [{"type": "license_id", "source": "licenses"}]}
    recipe["skip"] = ["sft", "merge"]
    recipe["evaluate"] = list(MODELS)
    fr_tasks = [{"type": "translation", "source": "messages_fr", "name": "en_fr"}]
    recipe["nodes"] = {
        "corpus_fr": {"stage": "corpus", "params": {"sources": [messages_fr, general], "tasks": fr_tasks}},
        "pack_fr": {"stage": "pack", "inputs": {"corpus": "corpus_fr.data", "tokenizer": "model.model"}},
        "cpt_fr": {"stage": "cpt", "inputs": {"model": "model.model", "packed": "pack_fr.packed"}},
        "merged": {
            "stage": "merge",
            "inputs": {
                "model": "cpt.model",
                "model@fr": "cpt_fr.model",
                "instruct": "model.model",
                "base": "model.model",
            },
        },
        **{
            f"fr_{label}": {"stage": "eval", "inputs": {"model": f"{node}.model", "corpus": "corpus_fr.data"}}
            for label, node in MODEL_NODES.items()
        },
        "domains": {
            "stage": "compare",
            "inputs": {f"eval_{m}@licenses": f"eval_{m}.results" for m in MODELS}
            | {f"eval_{m}@fr": f"fr_{m}.results" for m in MODELS},
        },
    }
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    store = Store(folder / "runs")
    decisions = Runner(load_recipe(str(path)), store).run()
    return path, store, {d.node.name: d.key for d in decisions}


def test_the_merge_takes_both_specialists_over_the_base(two_domains):
    _, store, keys = two_domains
    config = yaml.safe_load((store.final_dir("merge", keys["merged"]) / "mergekit.yaml").read_text(encoding="utf-8"))
    merged = {entry["model"] for entry in config["models"]}
    cpt_models = {str(store.final_dir("cpt", keys[node]) / "model") for node in ("cpt", "cpt_fr")}
    assert config["merge_method"] == "ties" and merged == cpt_models  # the instruct model is the base: left out
    assert keys["corpus_fr"] != keys["corpus"] and keys["cpt_fr"] != keys["cpt"]
    assert store.manifest("eval", keys["fr_merged"])["inputs"]["corpus"]["node"] == "corpus_fr"


def test_the_comparison_shows_every_model_on_both_domains(two_domains):
    _, store, keys = two_domains
    page = (store.final_dir("compare", keys["domains"]) / "report.md").read_text(encoding="utf-8")
    assert "licenses: each model against base" in page and "fr: each model against base" in page
    assert "en_fr" in page and "license_id" in page
    gains = store.manifest("compare", keys["domains"])["metrics"]["domain_gain"]
    assert set(gains) == {"licenses", "fr"}
    for group in gains.values():
        assert set(group) == {"cpt", "cpt_fr", "merged"} and all(isinstance(v, float) for v in group.values())
    # each specialist gains most on its own domain's held-out text, and the others are tested against it
    assert gains["licenses"]["cpt"] > gains["licenses"]["cpt_fr"] and gains["fr"]["cpt_fr"] > gains["fr"]["cpt"]
    against = store.manifest("compare", keys["domains"])["metrics"]["against_best"]
    assert set(against["licenses"]) == {"cpt_fr", "merged"} and set(against["fr"]) == {"cpt", "merged"}
    assert all(0 <= p <= 1 for group in against.values() for p in group.values())
    assert "against cpt (SE " in page and "(best)" in page


def test_the_default_report_has_the_extra_models_and_a_rerun_reuses_everything(two_domains):
    path, store, keys = two_domains
    page = (store.final_dir("report", keys["report"]) / "report.md").read_text(encoding="utf-8")
    assert "| cpt_fr |" in page and "| merged |" in page
    planned = Runner(load_recipe(str(path)), store).plan()
    assert {d.action for d in planned} == {"reuse"}
