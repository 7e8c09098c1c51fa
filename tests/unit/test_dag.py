"""DAG validation: cycles, unknown nodes and inputs are reported by name before anything runs."""

import pytest

from pipeline.dag import DagError, Node, default_graph, downstream_of, validate
from pipeline.recipe import RECIPES_DIR as ROOT_RECIPES


def test_default_graph_orders_inputs_first():
    order = [node.name for node in validate(default_graph())]
    for node in default_graph():
        for upstream in node.upstream():
            assert order.index(upstream) < order.index(node.name)
    assert order[0] == "model" and order[-1] == "report"


def test_cycle_is_reported_as_a_path():
    nodes = [
        Node("model", "model"),
        Node("a", "cpt", {"model": "b.model", "packed": "model.model"}),
        Node("b", "sft", {"model": "a.model", "corpus": "model.model"}),
    ]
    with pytest.raises(DagError, match=r"cycle in pipeline graph: (a -> b -> a|b -> a -> b)"):
        validate(nodes)


def test_unknown_upstream_node_is_named():
    nodes = [Node("model", "model"), Node("cpt", "cpt", {"model": "model.model", "packed": "pakc.packed"})]
    with pytest.raises(DagError, match="input 'packed' names unknown node 'pakc'"):
        validate(nodes)


def test_unknown_input_unbound_input_and_unknown_stage_reported_together():
    nodes = [
        Node("model", "model"),
        Node("cpt", "cpt", {"model": "model.model", "pakced": "model.model"}),
        Node("x", "no_such_stage"),
    ]
    with pytest.raises(DagError) as info:
        validate(nodes)
    message = str(info.value)
    assert "stage 'cpt' has no input 'pakced'" in message
    assert "input 'packed' of stage 'cpt' is not bound" in message
    assert "unknown stage 'no_such_stage'" in message


def test_downstream_of_cpt():
    assert downstream_of(default_graph(), "cpt") == {
        "cpt",
        "sft",
        "merge",
        "eval_cpt",
        "eval_sft",
        "eval_merge",
        "report",
    }


def _graph_problems(tmp_path, **extra):
    import yaml

    from pipeline.recipe import RecipeError, load_recipe

    recipe = yaml.safe_load((ROOT_RECIPES / "legal.yaml").read_text(encoding="utf-8")) | extra
    path = tmp_path / "shaped.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    try:
        return load_recipe(str(path))
    except RecipeError as exc:
        return str(exc)


def test_skip_rewires_to_the_nearest_upstream_model_and_drops_its_eval(tmp_path):
    recipe = _graph_problems(tmp_path, skip=["sft"])
    nodes = {n.name: n for n in recipe.nodes}
    assert "sft" not in nodes and "eval_sft" not in nodes
    assert nodes["merge"].inputs["model"] == "cpt.model"
    assert "eval_sft" not in nodes["report"].inputs


def test_evaluate_picks_the_evaluated_models(tmp_path):
    recipe = _graph_problems(tmp_path, evaluate=["base", "merge"])
    assert sorted(n.name for n in recipe.nodes if n.stage == "eval") == ["eval_base", "eval_merge"]


def test_graph_choices_are_checked_naming_the_key(tmp_path):
    message = _graph_problems(tmp_path, skip=["cpt"], evaluate=["cpt", "sft", "bogus"])
    assert "skip.0: unknown 'cpt'; allowed: sft, merge" in message
    assert "evaluate.2: unknown 'bogus'" in message and "evaluate: must include base" in message
    message = _graph_problems(tmp_path, skip=["sft"], evaluate=["base", "sft"])
    assert "evaluate: 'sft' is skipped" in message


def test_sweep_is_checked_naming_the_key_and_the_branch(tmp_path):
    message = _graph_problems(
        tmp_path,
        sweep={"corpus.min_chars": [100], "eval.bpb_docs": [4], "cpt.seq_len": [64], "cpt.learning_rate": [1e-4, -1]},
    )
    assert "sweep.corpus.min_chars: only params of cpt, sft, merge can be swept" in message
    assert "sweep.eval.bpb_docs: only params of cpt, sft, merge can be swept" in message  # base's eval is shared
    assert "sweep.cpt.seq_len: the packed blocks are shared" in message
    assert "sweep (branch learning_rate--1): cpt.learning_rate" in message


def test_sweep_copies_the_swept_section_and_everything_downstream(tmp_path):
    recipe = _graph_problems(tmp_path, sweep={"sft.learning_rate": [1e-5, 1e-4]})
    names = [n.name for n in recipe.nodes]
    assert {"model", "corpus", "pack", "cpt", "eval_base", "eval_cpt"} <= set(names)  # upstream of sft: shared
    assert "sft" not in names and {"sft-learning_rate-1e-05", "merge-learning_rate-0.0001", "compare"} <= set(names)
    assert recipe.params["sft-learning_rate-1e-05"].learning_rate == 1e-5
    assert recipe.params["sft-learning_rate-0.0001"].learning_rate == 1e-4
    merge = next(n for n in recipe.nodes if n.name == "merge-learning_rate-1e-05")
    assert merge.inputs["model"] == "sft-learning_rate-1e-05.model"  # the branch's chain, not the other branch's
    assert merge.inputs["base"] == "model.model"
    compare = next(n for n in recipe.nodes if n.name == "compare")
    assert compare.inputs["eval_merge@learning_rate-1e-05"] == "eval_merge-learning_rate-1e-05.results"
