"""DAG validation: cycles, unknown nodes and inputs are reported by name before anything runs."""

import pytest

from pipeline.dag import DagError, Node, default_graph, downstream_of, validate


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
