"""Recipe validation: every shipped recipe loads; a wrong key or value is named with what is allowed."""

import pytest

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
    assert {n.name for n in recipe.nodes} >= {"model", "corpus", "cpt", "sft", "merge", "report"}
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
    assert "merge.method: Input should be 'ties', 'slerp' or 'linear'" in message
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
