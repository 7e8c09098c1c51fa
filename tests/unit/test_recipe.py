"""Recipe validation: every shipped recipe loads; a wrong key or value is named with what is allowed."""

import pytest
import yaml

from pipeline.recipe import RecipeError, apply_overrides, available_recipes, load_recipe, parse_override, resolve

MINIMAL_SOURCES = [
    {"name": "d", "kind": "domain", "type": "licensedcode"},
    {"name": "g", "kind": "general", "type": "python_docs"},
]
MINIMAL_TASKS = [{"type": "reading_comprehension", "source": "d"}]


@pytest.mark.parametrize("name", available_recipes())
def test_every_recipe_validates(name):
    recipe = load_recipe(name)
    assert recipe.name == name
    assert {n.stage for n in recipe.nodes} >= {"model", "corpus", "cpt", "eval", "report"}
    skipped = set(recipe.raw.get("skip", []))
    assert {n.stage for n in recipe.nodes} >= {"sft", "merge"} - skipped
    assert recipe.params["model"].trust_remote_code is False


def test_recipes_exist():
    assert "legal" in available_recipes()


def test_overrides_are_applied_and_typed():
    recipe = load_recipe("legal", ["cpt.replay_ratio=0.5", "cpt.max_tokens=20000", "merge.method=slerp"])
    assert recipe.params["cpt"].replay_ratio == 0.5
    assert recipe.params["cpt"].max_tokens == 20000
    assert recipe.params["merge"].method == "slerp"


def test_every_problem_is_reported_at_once_with_key_and_allowed_values():
    with pytest.raises(RecipeError) as info:
        load_recipe("legal", ["cpt.replay_ratio=1.5", "cpt.lerning_rate=0.1", "merge.method=average", "colour=red"])
    message = str(info.value)
    assert "4 problem(s)" in message
    assert "cpt.replay_ratio: Input should be less than or equal to 1 (got 1.5)" in message
    assert "cpt.lerning_rate: unknown key; allowed keys in 'cpt':" in message and "learning_rate" in message
    assert "merge.method: Input should be 'ties', 'dare_ties', 'task_arithmetic', 'slerp' or 'linear'" in message
    assert "colour: unknown key; allowed top-level keys:" in message


def test_sources_need_both_kinds_and_known_types():
    with pytest.raises(RecipeError, match="need at least one 'domain' and one 'general' source"):
        resolve({"sources": MINIMAL_SOURCES[:1]}, "t", "test")
    bad = [dict(MINIMAL_SOURCES[0], type="pdf"), MINIMAL_SOURCES[1]]
    with pytest.raises(RecipeError, match=r"corpus\.sources\.0\.type: Input should be"):
        resolve({"sources": bad}, "t", "test")


def test_recipe_level_keys_fill_stage_fields():
    raw = {"sources": MINIMAL_SOURCES, "seed": 7, "trust_remote_code": True, "corpus": {"tasks": MINIMAL_TASKS}}
    recipe = resolve(raw, "t", "test")
    assert recipe.params["cpt"].seed == 7 and recipe.params["sft"].seed == 7 and recipe.params["corpus"].seed == 7
    assert recipe.params["model"].trust_remote_code is True


def test_override_syntax_errors_are_explained():
    with pytest.raises(RecipeError, match=r"must look like section\.key=value"):
        parse_override("cpt.replay_ratio")
    assert parse_override("cpt.schedule=warmup_stable_decay") == (["cpt", "schedule"], "warmup_stable_decay")
    with pytest.raises(RecipeError, match="'cpt' is not a section"):
        apply_overrides({"cpt": 3}, ["cpt.x=1"])


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(str(evil))


def test_unknown_recipe_lists_known_ones():
    with pytest.raises(RecipeError, match=r"unknown recipe 'medical'.*legal"):
        load_recipe("medical")


def test_plan_section_adds_the_plan_stage_and_checks_its_grid():
    recipe = load_recipe("legal", ["plan.objective=balanced"])
    names = [node.name for node in recipe.nodes]
    assert names.index("plan") < names.index("cpt")
    cpt_node = next(node for node in recipe.nodes if node.name == "cpt")
    assert cpt_node.inputs["plan"] == "plan.plan"
    assert recipe.params["plan"].cpt.max_tokens == recipe.params["cpt"].max_tokens
    with pytest.raises(RecipeError, match=r"plan\.domain_shares: Value error, need at least 3 distinct shares"):
        load_recipe("legal", ["plan.domain_shares=[0.5,1.0]"])
    assert "plan" not in [node.name for node in load_recipe("legal").nodes]


# --- every check that can run before training runs at load (so at plan and at the start of run) -----------


def _problems(raw: dict) -> str:
    with pytest.raises(RecipeError) as info:
        resolve({"sources": MINIMAL_SOURCES, "corpus": {"tasks": MINIMAL_TASKS}, **raw}, "t", "test")
    return str(info.value)


def test_batch_sizes_no_accumulation_reaches_are_refused_naming_the_key():
    message = _problems({"cpt": {"batch_size": 6, "micro_batch_size": 4}})
    assert "cpt: cpt.batch_size=6 is not a multiple of cpt.micro_batch_size x cpt.num_processes = 4 x 1 = 4" in message
    message = _problems({"sft": {"batch_size": 4, "micro_batch_size": 4, "num_processes": 2}})
    assert "sft.batch_size=4 is not a multiple of sft.micro_batch_size x sft.num_processes = 4 x 2 = 8" in message
    assert "(got {" not in message  # the section's whole input is noise; the message names the keys


def test_max_tokens_under_one_block_is_refused():
    message = _problems({"cpt": {"max_tokens": 100, "seq_len": 128}})
    assert "cpt.max_tokens=100 is under one block of cpt.seq_len=128" in message
    message = _problems({"cpt": {"seq_len": 128}, "plan": {"proxy_tokens": 64}})
    assert "plan.proxy_tokens: 64 is under one block of cpt.seq_len=128" in message


def test_adapters_with_a_sharding_strategy_are_refused():
    message = _problems({"sft": {"method": "lora", "strategy": "fsdp"}})
    assert "sft.method=lora with sft.strategy=fsdp" in message and "set sft.strategy=ddp" in message


def test_a_task_whose_source_lacks_its_metadata_is_refused(tmp_path):
    tasks = [*MINIMAL_TASKS, {"type": "license_id", "source": "g"}]
    message = _problems({"corpus": {"tasks": tasks}})
    assert "corpus.tasks.1 (task 'license_id', type license_id) needs documents with meta ['name', 'spdx']" in message
    assert "source 'g' (type python_docs) gives ['license']" in message and "type licensedcode" in message
    # A jsonl source is judged by its records' fields.
    glossary = tmp_path / "glossary.jsonl"
    glossary.write_text('{"text": "A tort is a civil wrong.", "term": "tort"}\n')
    sources = [*MINIMAL_SOURCES, {"name": "gloss", "kind": "domain", "type": "jsonl", "path": str(glossary)}]
    tasks = [*MINIMAL_TASKS, {"type": "term_definition", "source": "gloss"}]
    with pytest.raises(RecipeError, match=r"corpus\.tasks\.1 .*lacking \['definition'\]"):
        resolve({"sources": sources, "corpus": {"tasks": tasks}}, "t", "test")
    glossary.write_text('{"text": "A tort is a civil wrong.", "term": "tort", "definition": "a civil wrong"}\n')
    resolve({"sources": sources, "corpus": {"tasks": tasks}}, "t", "test")


def test_every_builder_declares_the_meta_it_reads():
    from stages.lib import sources, task_builders
    from stages.lib.sources import SourceSpec

    assert set(task_builders.REQUIRED_META) == set(task_builders.BUILDERS)
    assert set(sources.PROVIDED_META) == set(SourceSpec.model_fields["type"].annotation.__args__)


def test_empty_sources_and_max_documents_under_one_are_refused():
    for raw in ({"sources": []}, {}):
        with pytest.raises(RecipeError, match=r"sources: empty; a recipe needs at least one 'domain' and one"):
            resolve(raw, "t", "test")
    message = _problems({"sources": [dict(MINIMAL_SOURCES[0], max_documents=0), MINIMAL_SOURCES[1]]})
    assert "corpus.sources.0.max_documents: Input should be greater than or equal to 1 (got 0)" in message


def test_plan_and_run_refuse_before_touching_the_store(tmp_path, capsys):
    from pipeline.cli import main

    store = tmp_path / "runs"
    for command in ("plan", "run"):
        assert main([command, "legal", "--set", "cpt.batch_size=3", "--store", str(store)]) == 2
        assert "cpt.batch_size=3 is not a multiple of" in capsys.readouterr().err
    assert not store.exists()


# --- a base_model path that does not exist is a missing local path, found at load --------------------------


@pytest.mark.parametrize("path", ["/nonexistent/model", "./models/x", "~/no-such-model-folder"])
def test_missing_local_base_model_is_named_at_load_and_leaves_nothing(tmp_path, capsys, path):
    from pipeline.cli import main

    store = tmp_path / "runs"
    for command in ("plan", "run"):
        assert main([command, "legal", "--set", f"base_model={path}", "--store", str(store)]) == 2
        err = capsys.readouterr().err
        assert f"model.name: Value error, local model path '{path}' does not exist" in err
        assert "Repo id must be" not in err
    assert not store.exists()  # no runs/model/<key>.partial


def test_base_model_forms_that_still_load(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    with pytest.raises(RecipeError, match=r"is not a Hugging Face model folder \(no config\.json"):
        load_recipe("legal", [f"base_model={folder}"])
    (folder / "config.json").write_text("{}")
    assert load_recipe("legal", [f"base_model={folder}"]).params["model"].name == str(folder)
    assert load_recipe("legal", ["base_model=Qwen/Qwen2.5-0.5B"]).params["model"].name == "Qwen/Qwen2.5-0.5B"
    with pytest.raises(RecipeError, match="unknown embedded model 'embedded:nope'"):
        load_recipe("legal", ["base_model=embedded:nope"])


# --- names that become file names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "bad*name"])
def test_recipe_name_must_be_a_safe_file_name(tmp_path, capsys, name):
    from pipeline.cli import main

    store = tmp_path / "deep" / "runs"
    assert main(["plan", "legal", "--set", f"name={name}", "--store", str(store)]) == 2
    assert f"name: name '{name}' may hold only letters, digits, '_', '.' and '-'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not store.exists()


def test_a_recipe_file_whose_stem_is_unsafe_needs_a_name(tmp_path):
    path = tmp_path / "my recipe.yaml"
    path.write_text(yaml.safe_dump({"sources": MINIMAL_SOURCES, "corpus": {"tasks": MINIMAL_TASKS}}))
    with pytest.raises(RecipeError, match=r"name \(from the file name 'my recipe'; set 'name:' to change it\)"):
        load_recipe(str(path))
    path.write_text(yaml.safe_dump({"name": "mine", "sources": MINIMAL_SOURCES, "corpus": {"tasks": MINIMAL_TASKS}}))
    assert load_recipe(str(path)).name == "mine"


@pytest.mark.parametrize(
    "raw",
    [
        {"sources": [dict(MINIMAL_SOURCES[0], name="../d"), MINIMAL_SOURCES[1]]},
        {"corpus": {"tasks": [dict(MINIMAL_TASKS[0], name="../../t")]}},
    ],
)
def test_source_and_task_names_must_be_safe_file_names(raw):
    assert "may hold only letters, digits, '_', '.' and '-'" in _problems(raw)


def test_unknown_benchmark_is_refused_at_load_with_the_close_name():
    pytest.importorskip("lm_eval")
    with pytest.raises(
        RecipeError, match=r"eval\.benchmarks\.1: lm-eval has no task 'hellaswg' \(did you mean hellaswag"
    ):
        load_recipe("legal", ["eval.benchmarks=[arc_easy,hellaswg]"])


def test_the_translation_paradigm_changes_one_thing_per_step():
    """plain -> interlinear changes only cpt's training sources; target -> source changes only the language of
    sft's instructions; every model is scored on the one corpus's items."""
    recipe = load_recipe("translation-paradigm")
    nodes = {n.name: n for n in recipe.nodes}
    params = recipe.params
    assert params["pack_plain"].sources == ["bible_es", "python_docs", "dictionary"] and params["pack"].sources is None
    assert params["cpt_plain"] == params["cpt"]  # same budget, replay share and schedule
    assert nodes["cpt_plain"].inputs["packed"] == "pack_plain.packed" and nodes["cpt"].inputs["packed"] == "pack.packed"
    target, source = params["corpus_target"], params["corpus"]
    assert target.sources == source.sources
    assert [(t.type, t.source, t.name) for t in target.tasks] == [(t.type, t.source, t.name) for t in source.tasks]
    assert [t.instructions for t in target.tasks if t.type == "translation"] == ["target", "target"]
    assert all(t.instructions is None for t in source.tasks)  # None: the source language, English
    assert nodes["sft_target"].inputs == {"model": "cpt.model", "corpus": "corpus_target.data"}
    assert nodes["sft"].inputs == {"model": "cpt.model", "corpus": "corpus.data"}
    assert params["sft_target"] == params["sft"] == params["sft_plain"]
    evals = [n for n in recipe.nodes if n.stage == "eval"]
    assert {n.inputs["corpus"] for n in evals} == {"corpus.data"}
    assert {n.inputs["model"].split(".")[0] for n in evals} == {
        "model",
        "cpt",
        "sft",
        "cpt_plain",
        "sft_plain",
        "sft_target",
    }
