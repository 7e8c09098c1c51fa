"""A stage sent as a submitit job (the local cluster stands in for Slurm) commits like a local run."""

import pytest
import yaml

from pipeline.recipe import RecipeError, load_recipe
from pipeline.runner import Runner
from pipeline.store import Store
from tests.conftest import tiny_recipe


def test_a_stage_runs_as_a_job_and_commits_the_same_result(tmp_path, tiny_model, general_jsonl):
    recipe_file = tiny_recipe(tmp_path / "tiny.yaml", tiny_model, general_jsonl)
    local_store, job_store = Store(tmp_path / "local"), Store(tmp_path / "jobs")
    local = Runner(load_recipe(str(recipe_file)), local_store)
    local.run(until="corpus")

    raw = yaml.safe_load(recipe_file.read_text())
    raw["executor"] = {"type": "submitit_local", "stages": ["corpus"], "timeout_min": 10}
    recipe_file.write_text(yaml.safe_dump(raw))
    remote = Runner(load_recipe(str(recipe_file)), job_store)
    decisions = remote.run(until="corpus")

    corpus = next(d for d in decisions if d.node.name == "corpus")
    folder = job_store.final_dir("corpus", corpus.key)
    assert job_store.is_done("corpus", corpus.key)
    assert list((folder / "jobs").glob("*_result.pkl")) or list((folder / "jobs").glob("*.out"))
    # Where a stage ran does not change its key or its result.
    assert corpus.key == next(d for d in local.plan() if d.node.name == "corpus").key
    local_stats = (local_store.final_dir("corpus", corpus.key) / "data" / "stats.json").read_text()
    assert (folder / "data" / "stats.json").read_text() == local_stats


def test_executor_keys_are_validated(tmp_path, tiny_model, general_jsonl):
    recipe_file = tiny_recipe(tmp_path / "tiny.yaml", tiny_model, general_jsonl)
    raw = yaml.safe_load(recipe_file.read_text())
    raw["executor"] = {"type": "kubernetes"}
    recipe_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(RecipeError, match=r"executor\.type: Input should be 'local', 'slurm' or 'submitit_local'"):
        load_recipe(str(recipe_file))
    raw["executor"] = {"type": "slurm", "stages": ["cpt", "trian"]}
    recipe_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(RecipeError, match=r"executor.stages: unknown stage\(s\) \['trian'\]"):
        load_recipe(str(recipe_file))
