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


def test_a_new_stage_is_placed_by_its_wiring_alone(monkeypatch):
    """Adding a stage is its spec plus one entry in the list: the engine places and wires it, evaluates its model
    and the report gathers that eval, with no edit to pipeline/."""
    from dataclasses import replace

    import pipeline.dag as dag
    from stages import REGISTRY
    from stages.base import MODEL, Wiring

    anneal = replace(
        REGISTRY["cpt"],
        name="anneal",
        inputs=("model", "packed"),
        optional_inputs=(),
        wiring=Wiring(inputs={"model": MODEL, "packed": "pack.packed"}, model="model", skippable=True),
    )
    names = list(REGISTRY)
    at = names.index("sft")  # a high-quality anneal after the bulk cpt, before sft
    registry = {name: REGISTRY[name] for name in names[:at]} | {"anneal": anneal}
    registry |= {name: REGISTRY[name] for name in names[at:]}
    monkeypatch.setattr(dag, "REGISTRY", registry)
    nodes = {node.name: node for node in dag.validate(dag.default_graph())}
    assert nodes["anneal"].inputs == {"model": "cpt.model", "packed": "pack.packed"}
    assert nodes["sft"].inputs["model"] == "anneal.model"
    assert nodes["eval_anneal"].inputs["model"] == "anneal.model"
    assert nodes["report"].inputs["eval_anneal"] == "eval_anneal.results"
    assert "anneal" in dag.skippable_stages() and dag.default_models() == ("base", "cpt", "anneal", "sft", "merge")
    skipped = {node.name: node for node in dag.default_graph(skip=("anneal",))}
    assert "anneal" not in skipped and skipped["sft"].inputs["model"] == "cpt.model"


def test_a_plan_section_places_the_plan_and_binds_its_optional_outputs():
    plain = {node.name: node for node in default_graph()}
    planned = {node.name: node for node in default_graph(sections={"plan"})}
    assert "plan" not in plain and "plan" not in plain["cpt"].inputs and "proxies" not in plain["report"].inputs
    assert planned["cpt"].inputs["plan"] == "plan.plan" and planned["report"].inputs["proxies"] == "plan.proxies"


HEALTH_NODES = {
    "corpus_health": {"stage": "corpus", "params": {"min_chars": 80}},
    "pack_health": {"stage": "pack", "inputs": {"corpus": "corpus_health.data", "tokenizer": "model.model"}},
    "cpt_health": {
        "stage": "cpt",
        "inputs": {"model": "model.model", "packed": "pack_health.packed"},
        "params": {"max_tokens": 8192},
    },
    "merged": {
        "stage": "merge",
        "inputs": {
            "model": "cpt.model",
            "model@health": "cpt_health.model",
            "instruct": "model.model",
            "base": "model.model",
        },
    },
}


def test_a_recipe_adds_nodes_with_params_over_their_stage_section(tmp_path):
    recipe = _graph_problems(tmp_path, nodes=HEALTH_NODES, evaluate=["base", "cpt", "merged"])
    nodes = {n.name: n for n in recipe.nodes}
    assert nodes["cpt_health"].inputs["packed"] == "pack_health.packed"
    assert recipe.params["cpt_health"].max_tokens == 8192 and recipe.params["cpt"].max_tokens == 32768
    assert recipe.params["cpt_health"].learning_rate == recipe.params["cpt"].learning_rate  # the rest: cpt's
    assert recipe.params["corpus_health"].min_chars == 80 and recipe.params["corpus_health"].tasks
    assert recipe.params["pack_health"].seq_len == recipe.params["cpt"].seq_len  # packs follow cpt's block length
    assert nodes["eval_merged"].inputs == {"model": "merged.model", "corpus": "corpus.data"}
    assert "eval_cpt_health" not in nodes and "eval_sft" not in nodes  # evaluate: names exactly what is evaluated
    assert nodes["report"].inputs["eval_merged"] == "eval_merged.results"


def test_recipe_nodes_are_checked_naming_the_key(tmp_path):
    bad = {
        "cpt_x": {"stage": "cpt", "inputs": {"model": "model.model", "packed": "pakc.packed"}, "parms": {}},
        "typo": {"stage": "cptt"},
        "merge_x": {"stage": "merge", "inputs": {"model": "cpt.model"}, "params": {"method": "average"}},
    }
    message = _graph_problems(tmp_path, nodes=bad, evaluate=["base", "cpt_y"])
    assert "nodes.cpt_x.parms: unknown key; a node has stage, inputs, params" in message
    assert "nodes.typo.stage: 'cptt' is not a stage" in message
    assert "merge_x.method: Input should be 'ties', 'dare_ties', 'task_arithmetic', 'slerp' or 'linear'" in message
    assert "evaluate.1: unknown 'cpt_y'; allowed: base, cpt, sft, merge, cpt_x, merge_x" in message
    message = _graph_problems(tmp_path, nodes={"cpt_x": {k: v for k, v in bad["cpt_x"].items() if k != "parms"}})
    assert "node 'cpt_x': input 'packed' names unknown node 'pakc'" in message
    message = _graph_problems(tmp_path, nodes={"cpt": {"stage": "cpt"}})
    assert "nodes.cpt: the default chain has a node of this name" in message


def test_a_second_cpt_phase_feeds_sft_when_the_recipe_rebinds_its_input(tmp_path):
    """An anneal after the bulk cpt, on another source set: its own nodes, then sft's model input rebound."""
    anneal = {
        "corpus_hq": {"stage": "corpus", "params": {"min_chars": 400}},
        "pack_hq": {"stage": "pack", "inputs": {"corpus": "corpus_hq.data", "tokenizer": "model.model"}},
        "anneal": {
            "stage": "cpt",
            "inputs": {"model": "cpt.model", "packed": "pack_hq.packed"},
            "params": {"learning_rate": 3.0e-5, "max_tokens": 4096},
        },
        "sft": {"inputs": {"model": "anneal.model"}},
    }
    recipe = _graph_problems(tmp_path, nodes=anneal, evaluate=["base", "cpt", "anneal", "sft", "merge"])
    nodes = {n.name: n for n in recipe.nodes}
    assert nodes["sft"].inputs == {"model": "anneal.model", "corpus": "corpus.data"}
    assert nodes["merge"].inputs["model"] == "sft.model" and nodes["eval_anneal"].inputs["model"] == "anneal.model"
    assert recipe.params["anneal"].learning_rate == 3.0e-5 and recipe.params["cpt"].learning_rate == 1.0e-4
    message = _graph_problems(tmp_path, nodes={"sft": {"stage": "sft", "params": {"epochs": 2}}})
    assert "nodes.sft: the default chain has a node of this name; give only 'inputs:'" in message
    message = _graph_problems(tmp_path, skip=["sft"], nodes={"sft": {"inputs": {"model": "cpt.model"}}})
    assert "nodes.sft: not in this graph (skipped?)" in message
