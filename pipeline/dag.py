"""The stage graph: nodes, their input bindings, validation and a topological order.

A node is one run of a stage (``eval_cpt`` runs the ``eval`` stage on the cpt model). Its inputs
are bound to ``<node>.<output>`` of upstream nodes. The graph is data, checked before anything
runs: an unknown stage, an unbound or unknown input and a cycle are all reported by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stages import REGISTRY


class DagError(ValueError):
    """The graph is malformed; the message names the node and input at fault."""


@dataclass(frozen=True)
class Node:
    name: str
    stage: str
    inputs: dict[str, str] = field(default_factory=dict)
    """input name -> ``upstream_node.output_name``."""
    section: str = ""
    """The recipe section holding this node's params (several eval nodes share ``eval``)."""
    branch: str = ""
    """The sweep branch this node belongs to (``replay_ratio-0.1``); empty for shared nodes."""

    @property
    def params_section(self) -> str:
        return self.section or self.name

    def upstream(self) -> list[str]:
        return [split_binding(binding)[0] for binding in self.inputs.values()]


# The models every run evaluates, in report order: the starting point and each stage's product.
EVALUATED_MODELS = ("base", "cpt", "sft", "merge")


MANIFEST_OUTPUT = "manifest"
"""An output of every node besides its stage's own: the manifest.json of its finished result."""


SKIPPABLE = ("sft", "merge")
"""Stages a recipe may leave out (``skip:``); what read their model reads the nearest upstream one."""


def default_graph(
    with_plan: bool = False, skip: tuple[str, ...] = (), evaluate: tuple[str, ...] = EVALUATED_MODELS
) -> list[Node]:
    """corpus -> pack -> (plan) -> cpt (with replay) -> sft -> merge, the models in ``evaluate`` evaluated,
    one report. A skipped stage's node is left out and its consumers read the model before it."""
    model_of = {"base": "model.model", "cpt": "cpt.model"}
    cpt_inputs = {"model": "model.model", "packed": "pack.packed"}
    nodes = [
        Node("model", "model"),
        Node("corpus", "corpus"),
        Node("pack", "pack", {"corpus": "corpus.data", "tokenizer": "model.model"}),
    ]
    if with_plan:
        nodes.append(Node("plan", "plan", {"model": "model.model", "packed": "pack.packed"}))
        cpt_inputs["plan"] = "plan.plan"
    nodes.append(Node("cpt", "cpt", cpt_inputs))
    latest = "cpt.model"
    if "sft" not in skip:
        nodes.append(Node("sft", "sft", {"model": latest, "corpus": "corpus.data"}))
        latest = model_of["sft"] = "sft.model"
    if "merge" not in skip:
        nodes.append(Node("merge", "merge", {"model": latest, "instruct": "model.model", "base": "model.model"}))
        model_of["merge"] = "merge.model"
    evaluated = [label for label in EVALUATED_MODELS if label in evaluate and label in model_of]
    for label in evaluated:
        nodes.append(Node(f"eval_{label}", "eval", {"model": model_of[label], "corpus": "corpus.data"}, section="eval"))
    report_inputs = {f"eval_{label}": f"eval_{label}.results" for label in evaluated}
    report_inputs["cpt"] = "cpt.curves"
    report_inputs["cpt_run"] = "cpt.manifest"
    report_inputs["corpus"] = "corpus.data"
    report_inputs["packed"] = "pack.packed"
    if with_plan:
        report_inputs["plan"] = "plan.plan"
        report_inputs["proxies"] = "plan.proxies"
    nodes.append(Node("report", "report", report_inputs))
    return nodes


def sweep_graph(nodes: list[Node], swept_sections: set[str], branches: list[str]) -> list[Node]:
    """One copy per branch of every node whose params section is swept and of everything downstream of
    it; the rest (model, corpus, pack, eval_base) is shared. Copies are named ``<node>-<branch>``."""
    affected: set[str] = set()
    for node in nodes:
        if node.params_section in swept_sections:
            affected |= downstream_of(nodes, node.name)
    shared = [node for node in nodes if node.name not in affected]
    copies = []
    for branch in branches:
        rename = {name: f"{name}-{branch}" for name in affected}
        for node in nodes:
            if node.name in affected:
                inputs = {}
                for input_name, binding in node.inputs.items():
                    upstream, output = split_binding(binding)
                    inputs[input_name] = f"{rename.get(upstream, upstream)}.{output}"
                copies.append(Node(rename[node.name], node.stage, inputs, node.params_section, branch))
    return shared + copies


def split_binding(binding: str) -> tuple[str, str]:
    """``cpt-replay_ratio-0.1.model`` -> (``cpt-replay_ratio-0.1``, ``model``): node names may hold dots."""
    upstream, _, output = binding.rpartition(".")
    return upstream, output


def validate(nodes: list[Node]) -> list[Node]:
    """Check every node and binding, then return the nodes in an order where inputs come first."""
    by_name: dict[str, Node] = {}
    problems: list[str] = []
    for node in nodes:
        if node.name in by_name:
            problems.append(f"node '{node.name}' is defined twice")
        by_name[node.name] = node
    for node in nodes:
        spec = REGISTRY.get(node.stage)
        if spec is None:
            problems.append(f"node '{node.name}': unknown stage '{node.stage}' (known: {', '.join(sorted(REGISTRY))})")
            continue
        for input_name, binding in node.inputs.items():
            if input_name not in spec.inputs + spec.optional_inputs and not input_name.startswith(
                spec.input_prefixes or ("\0",)
            ):
                known = ", ".join(spec.inputs + spec.optional_inputs) or "none"
                problems.append(
                    f"node '{node.name}': stage '{node.stage}' has no input '{input_name}' (its inputs: {known})"
                )
            if "." not in binding:
                problems.append(
                    f"node '{node.name}': input '{input_name}' is bound to '{binding}', expected 'node.output'"
                )
            elif split_binding(binding)[0] not in by_name:
                problems.append(
                    f"node '{node.name}': input '{input_name}' names unknown node '{split_binding(binding)[0]}'"
                )
        for input_name in spec.inputs:
            if input_name not in node.inputs:
                problems.append(f"node '{node.name}': input '{input_name}' of stage '{node.stage}' is not bound")
    if problems:
        raise DagError("invalid pipeline graph:\n  " + "\n  ".join(problems))
    return _toposort(nodes, by_name)


def _toposort(nodes: list[Node], by_name: dict[str, Node]) -> list[Node]:
    """Depth-first order; a cycle is reported as the path that closes it."""
    order: list[Node] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            cycle = [*path[path.index(name) :], name]
            raise DagError("cycle in pipeline graph: " + " -> ".join(cycle))
        state[name] = "active"
        for upstream in by_name[name].upstream():
            visit(upstream, [*path, name])
        state[name] = "done"
        order.append(by_name[name])

    for node in nodes:
        visit(node.name, [])
    return order


def downstream_of(nodes: list[Node], start: str) -> set[str]:
    """``start`` and every node that depends on it, directly or not."""
    result = {start}
    changed = True
    while changed:
        changed = False
        for node in nodes:
            if node.name not in result and any(up in result for up in node.upstream()):
                result.add(node.name)
                changed = True
    return result
