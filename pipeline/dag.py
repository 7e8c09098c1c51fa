"""The stage graph: nodes, their input bindings, validation and a topological order.

A node is one run of a stage (``eval_cpt`` runs the ``eval`` stage on the cpt model). Its inputs
are bound to ``<node>.<output>`` of upstream nodes. The graph is data, checked before anything
runs: an unknown stage, an unbound or unknown input and a cycle are all reported by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from stages import REGISTRY
from stages.base import MODEL


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


MANIFEST_OUTPUT = "manifest"
"""An output of every node besides its stage's own: the manifest.json of its finished result."""


def skippable_stages() -> tuple[str, ...]:
    """Stages a recipe may leave out (``skip:``), as their specs declare."""
    return tuple(name for name, spec in REGISTRY.items() if spec.wiring and spec.wiring.skippable)


def model_output(stage: str) -> str:
    """The output of ``stage`` that holds a model, as its wiring declares; "" when it makes none."""
    wiring = REGISTRY[stage].wiring
    return wiring.model if wiring else ""


def default_models() -> tuple[str, ...]:
    """The models of the default chain, in order, under the labels they are evaluated as (base first)."""
    return tuple(REGISTRY[name].wiring.label or name for name in REGISTRY if model_output(name))


def default_graph(
    sections: frozenset[str] | set[str] = frozenset(),
    skip: tuple[str, ...] = (),
    evaluate: tuple[str, ...] | None = None,
    extra: tuple[Node, ...] = (),
) -> list[Node]:
    """The chain the stages declare (``Wiring``), in ``stages.STAGES`` order, plus a recipe's own ``extra`` nodes.

    A stage in ``skip`` is left out and whatever read the newest model reads the one before it; a stage that
    wants its own section is placed only when ``sections`` holds it; a per-model stage gets one node per model
    in ``evaluate`` (default: every model of the chain; an extra node whose stage makes a model may be named
    there too); a binding to a node the graph lacks is dropped, so an optional input simply stays unbound."""
    extra_models = {
        node.name: f"{node.name}.{model_output(node.stage)}"
        for node in extra
        if node.stage in REGISTRY and model_output(node.stage)
    }
    nodes: list[Node] = []
    models: dict[str, str] = {}  # evaluation label -> binding of the model
    per_model: list[str] = []  # per-model nodes, for the stages that gather them
    newest = ""
    for name, spec in REGISTRY.items():
        wiring = spec.wiring
        if wiring is None or name in skip or wiring.sweep_gathers or (wiring.with_section and name not in sections):
            continue
        if wiring.per_model:
            chosen = models | extra_models
            for label, binding in chosen.items():
                wanted = label not in extra_models if evaluate is None else label in evaluate
                if not wanted:
                    continue
                node_name = f"{name}_{label}"
                nodes.append(Node(node_name, name, _bind(wiring.inputs, binding, nodes, extra), section=name))
                per_model.append(node_name)
            continue
        inputs = _bind(wiring.inputs, newest, nodes, extra)
        for node in nodes:
            if node.name in per_model and node.stage in wiring.gathers:
                inputs[node.name] = f"{node.name}.{wiring.gathers[node.stage]}"
        nodes.append(Node(name, name, inputs))
        if wiring.model:
            newest = f"{name}.{wiring.model}"
            models[wiring.label or name] = newest
    return nodes + list(extra)


def _bind(declared: Mapping[str, str], model: str, nodes: list[Node], extra: tuple[Node, ...]) -> dict[str, str]:
    """Declared bindings with ``MODEL`` filled in, less those naming a node not (yet) in the graph."""
    present = {node.name for node in nodes} | {node.name for node in extra}
    bound = {name: model if binding == MODEL else binding for name, binding in declared.items()}
    return {name: binding for name, binding in bound.items() if split_binding(binding)[0] in present}


def sweep_graph(nodes: list[Node], swept_sections: set[str], branches: list[str]) -> list[Node]:
    """One copy per branch of every node whose params section is swept and of everything downstream of
    it; the rest (model, corpus, pack, eval_base) is shared. Copies are named ``<node>-<branch>``. Then the
    stages that compare branches (``Wiring.sweep_gathers``) get one node each, reading every branch."""
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
    swept = shared + copies
    for name, spec in REGISTRY.items():
        if spec.wiring and spec.wiring.sweep_gathers:
            inputs = _bind(spec.wiring.inputs, "", swept, ())
            for node in copies:
                if node.stage in spec.wiring.sweep_gathers:
                    stem = node.name.removesuffix(f"-{node.branch}")
                    inputs[f"{stem}@{node.branch}"] = f"{node.name}.{spec.wiring.sweep_gathers[node.stage]}"
            swept.append(Node(name, name, inputs))
    return swept


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
