"""Recipes: one YAML file per domain, loaded safely, overridden by dotted keys, validated in full.

A recipe is data. It is read with ``yaml.safe_load`` (no tags, no imports), every key is checked
against the typed params of the stage it configures, and every problem is reported at once, each
naming the file, the dotted key, what was given and what is allowed, before any stage runs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.dag import Node, default_graph, default_models, model_output, skippable_stages, sweep_graph, validate
from pipeline.executor import ExecutorSpec, runs_on_this_machine
from stages import REGISTRY
from stages.base import Params
from stages.lib import recipe_rules
from stages.lib.training import TrainingRunParams
from stages.lib.training_kernels import kernel_problems
from stages.lib.user_data import check_name

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"

# Top-level keys that are not a stage section. Each maps onto fields of stage params.
_GLOBAL_KEYS = {
    "name": "the recipe's name (defaults to the file name)",
    "description": "one line on what this recipe makes",
    **{key: f"{what} ({section}.{name})" for key, (section, name, what) in recipe_rules.RECIPE_KEYS.items()},
    "seed": "fills every stage's seed",
    "trust_remote_code": "fills every stage's trust_remote_code; off unless the recipe asks",
    "report_to": "training metrics also go to these trackers: tensorboard, wandb",
    "executor": "where stages run: local (default), or slurm jobs through submitit (pipeline/executor.py)",
    "sweep": "params to compare, one branch per value: {cpt.replay_ratio: [0.1, 0.25, 0.5]} (stages that train)",
    "skip": f"stages to leave out: any of {', '.join(skippable_stages())}; what read their model reads the one before",
    "evaluate": f"models to evaluate (default all): base and any of {', '.join(default_models()[1:])} or a node's",
    "nodes": "your own nodes: {name: {stage: cpt, inputs: {model: model.model, packed: pack_2.packed}, params: {}}}",
}
SWEEPABLE = tuple(name for name in REGISTRY if model_output(name) and not REGISTRY[name].wiring.label)
"""Sections a sweep may vary: the stages that train a model. The model, corpus and pack (and the plan's proxies)
are shared by every branch, and eval's params set base's eval too, which every branch must share to be compared
against it."""
# Recipe-level keys that fill the field of the same name in every stage that has one.
_BROADCAST = ("seed", "trust_remote_code", "report_to")
_NODE_KEYS = ("stage", "inputs", "params")


class RecipeError(ValueError):
    """A recipe (or an override) is wrong; the message lists every problem found."""


@dataclass
class Recipe:
    name: str
    path: Path | None
    nodes: list[Node]
    """Nodes in run order."""
    params: dict[str, Params]
    """node name -> its validated params."""
    raw: dict[str, Any]
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)
    branches: dict[str, list[str]] = field(default_factory=dict)
    """Sweep branch name -> the overrides that make it (``replay_ratio-0.1`` -> ``[cpt.replay_ratio=0.1]``)."""


def recipe_path(name_or_path: str) -> Path:
    """``legal`` -> ``recipes/legal.yaml``; an existing file path is taken as it is."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"} or candidate.exists():
        if not candidate.exists():
            raise RecipeError(f"recipe file '{candidate}' does not exist")
        return candidate
    path = RECIPES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise RecipeError(f"unknown recipe '{name_or_path}': known recipes are {', '.join(available_recipes())}")
    return path


def available_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``cpt.replay_ratio=0.5`` -> (['cpt', 'replay_ratio'], 0.5); the value is read as YAML."""
    if "=" not in text:
        raise RecipeError(f"override '{text}' must look like section.key=value (for example cpt.replay_ratio=0.5)")
    key, value = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise RecipeError(f"override '{text}' has an empty key")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise RecipeError(f"override '{text}': value is not valid YAML: {exc}") from exc
    return parts, parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys in a copy of the raw recipe; validation later names any key that is wrong."""
    result = copy.deepcopy(raw)
    for text in overrides:
        parts, value = parse_override(text)
        target = result
        for part in parts[:-1]:
            existing = target.get(part)
            if existing is None:
                existing = target[part] = {}
            if not isinstance(existing, dict):
                raise RecipeError(f"override '{text}': '{part}' is not a section")
            target = existing
        target[parts[-1]] = value
    return result


def load_recipe(name_or_path: str, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe; raise ``RecipeError`` listing every problem."""
    path = recipe_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of keys to values")
    raw = apply_overrides(raw, overrides or [])
    return resolve(raw, default_name=path.stem, source=str(path), path=path)


def resolve(raw: dict[str, Any], default_name: str, source: str, path: Path | None = None) -> Recipe:
    """Validate a raw recipe mapping against the graph's stage params.

    A ``plan`` section adds the mixture-planning stage before cpt (see ``stages/plan.py``)."""
    problems: list[str] = []
    chain = default_graph(sections=set(raw))  # nothing skipped: every stage's section is known, a skipped one too
    extra, extra_params, rebound = _extra_nodes(raw, {node.name for node in chain}, problems)
    skip, evaluate = _graph_choices(raw, extra, problems)
    branches = _sweep_branches(raw.get("sweep"), problems)
    nodes = default_graph(sections=set(raw), skip=skip, evaluate=evaluate, extra=tuple(extra))
    for name in sorted(set(rebound) - {node.name for node in nodes}):
        problems.append(f"nodes.{name}: not in this graph (skipped?), so its inputs cannot be rebound")
    nodes = [replace(node, inputs={**node.inputs, **rebound.get(node.name, {})}) for node in nodes]
    sections = {node.params_section: node.stage for node in [*chain, *extra]}

    for key in raw:
        if (key not in _GLOBAL_KEYS and key not in sections) or key in extra_params:
            allowed = sorted(set(_GLOBAL_KEYS) | set(sections) - set(extra_params))
            problems.append(f"{key}: unknown key; allowed top-level keys: {', '.join(allowed)}")

    section_values: dict[str, dict[str, Any]] = {}
    for section in sections:
        value = raw.get(section) or {} if section not in extra_params else {}
        if not isinstance(value, dict):
            problems.append(f"{section}: must be a mapping of params, got {type(value).__name__}")
            value = {}
        section_values[section] = dict(value)
    for key, (section, name, _) in recipe_rules.RECIPE_KEYS.items():
        if key in raw:
            section_values[section].setdefault(name, raw[key])
    for name, own in extra_params.items():  # a node's params: its stage's section, its own keys over it
        section_values[name] = {**section_values.get(sections[name], {}), **own}

    params: dict[str, Params] = {}
    validated_sections = _validate_sections(raw, sections, section_values, problems)
    branch_sections: dict[str, dict[str, Params]] = {}
    for branch, overrides in branches.items():
        swept = {_section_of(o) for o in overrides}
        branch_raw = apply_overrides(raw, overrides)
        values = {section: dict(branch_raw.get(section) or {}) for section in swept}
        found: list[str] = []
        branch_sections[branch] = _validate_sections(branch_raw, sections, values, found)
        problems += [f"sweep (branch {branch}): {line}" for line in found]
    executor = ExecutorSpec()
    if "executor" in raw:
        try:
            executor = ExecutorSpec(**(raw["executor"] or {}))
        except (ValidationError, TypeError) as exc:
            if isinstance(exc, ValidationError):
                problems.extend(_describe("executor", ExecutorSpec, exc))
            else:
                problems.append(f"executor: must be a mapping, got {type(raw['executor']).__name__}")
        unknown = sorted(set(executor.stages or ()) - {node.stage for node in nodes})
        if unknown:
            problems.append(f"executor.stages: unknown stage(s) {unknown}; stages: {sorted({n.stage for n in nodes})}")
    default_sections = {k: v for k, v in validated_sections.items() if k not in extra_params}
    problems += recipe_rules.check(default_sections, raw, {node.stage for node in nodes})
    problems += _kernel_problems(executor, sections, validated_sections, branch_sections)
    name = str(raw.get("name") or default_name)
    try:
        check_name(name)
    except ValueError as exc:
        where = "name" if raw.get("name") else f"name (from the file name '{default_name}'; set 'name:' to change it)"
        problems.append(f"{where}: {exc}, because it names folders in the store (refs/<name>/)")
    if problems:
        raise RecipeError(f"{source}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    validated_sections = recipe_rules.adjust(validated_sections, sections)
    if branches:
        swept_sections = {_section_of(o) for overrides in branches.values() for o in overrides}
        nodes = sweep_graph(nodes, swept_sections, list(branches))
    try:
        nodes = validate(nodes)
    except ValueError as exc:
        raise RecipeError(f"{source}: {exc}") from exc
    for node in nodes:
        swept = branch_sections.get(node.branch, {})  # a branch's swept sections; the rest is shared
        section = swept.get(node.params_section) or validated_sections.get(node.params_section)
        params[node.name] = section or REGISTRY[node.stage].params()
    return Recipe(name=name, path=path, nodes=nodes, params=params, raw=raw, executor=executor, branches=branches)


def _extra_nodes(
    raw: dict[str, Any], taken: set[str], problems: list[str]
) -> tuple[list[Node], dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
    """The recipe's own ``nodes:``, each with its stage, its input bindings and its params over its stage's
    section (``params: {max_tokens: 8192}`` in a cpt node keeps every other key of ``cpt:``); and the inputs a
    recipe rebinds on a node of the default chain (``sft: {inputs: {model: anneal.model}}``: sft after a second
    cpt phase), whose params stay its section's. ``taken`` holds the default chain's node names."""
    declared = raw.get("nodes") or {}
    if not isinstance(declared, dict):
        problems.append("nodes: must map node names to {stage: ..., inputs: {...}, params: {...}}")
        return [], {}, {}
    nodes, params, rebound = [], {}, {}
    for name, entry in declared.items():
        where = f"nodes.{name}"
        try:
            check_name(str(name))
        except ValueError as exc:
            problems.append(f"{where}: {exc}, because it names folders in the store")
            continue
        if name in taken:
            inputs = entry.get("inputs") if isinstance(entry, dict) else None
            if set(entry or {}) - {"inputs"} or not isinstance(inputs, dict) or not inputs:
                problems.append(
                    f"{where}: the default chain has a node of this name; give only 'inputs:' to rebind its inputs "
                    f"(its params are the '{name}' section's), or name yours apart ({name}_2)"
                )
            else:
                rebound[name] = {str(k): str(v) for k, v in inputs.items()}
            continue
        if not isinstance(entry, dict) or entry.get("stage") not in REGISTRY:
            given = entry.get("stage") if isinstance(entry, dict) else entry
            problems.append(f"{where}.stage: {given!r} is not a stage; stages: {', '.join(REGISTRY)}")
            continue
        for key in sorted(set(entry) - set(_NODE_KEYS)):
            problems.append(f"{where}.{key}: unknown key; a node has {', '.join(_NODE_KEYS)}")
        inputs, own = entry.get("inputs") or {}, entry.get("params") or {}
        if not isinstance(inputs, dict) or not all(isinstance(v, str) for v in inputs.values()):
            problems.append(f"{where}.inputs: must map input names to 'node.output', got {inputs!r}")
            inputs = {}
        if not isinstance(own, dict):
            problems.append(f"{where}.params: must be a mapping of {entry['stage']} params, got {own!r}")
            own = {}
        nodes.append(Node(str(name), entry["stage"], {str(k): v for k, v in inputs.items()}))
        params[str(name)] = own
    return nodes, params, rebound


def _kernel_problems(
    executor: ExecutorSpec,
    stage_of: dict[str, str],
    sections: dict[str, Params],
    branch_sections: dict[str, dict[str, Params]],
) -> list[str]:
    """Training kernels (``attention``, ``liger``) a section names that this machine cannot train with, for the
    sections whose stage runs here (a Slurm job checks its own machine when it starts): the default sections, a
    recipe's own nodes and every sweep branch."""
    problems = []
    for prefix, found in [("", sections), *((f"sweep (branch {b}): ", s) for b, s in branch_sections.items())]:
        for section, params in found.items():
            if isinstance(params, TrainingRunParams) and runs_on_this_machine(executor, stage_of[section]):
                problems += [prefix + p for p in kernel_problems(section, params.attention, params.liger)]
    return list(dict.fromkeys(problems))  # a branch that does not change the kernels repeats the default's


def _validate_sections(
    raw: dict[str, Any], sections: dict[str, str], section_values: dict[str, dict[str, Any]], problems: list[str]
) -> dict[str, Params]:
    """Each section in ``section_values`` validated against its stage's params, broadcast keys filled in."""
    validated: dict[str, Params] = {}
    for section, values in section_values.items():
        model_cls = REGISTRY[sections[section]].params
        for key in _BROADCAST:
            if key in raw and key in model_cls.model_fields:
                values.setdefault(key, raw[key])
        try:
            validated[section] = model_cls(**values)
        except ValidationError as exc:
            problems.extend(_describe(section, model_cls, exc))
    return validated


def _graph_choices(
    raw: dict[str, Any], extra: list[Node], problems: list[str]
) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """The recipe's ``skip`` and ``evaluate`` lists, checked: unknown names are problems, not surprises."""
    skippable, models = skippable_stages(), default_models()
    made = [node.name for node in extra if model_output(node.stage)]
    skip = raw.get("skip") or []
    evaluate = raw.get("evaluate")
    for key, value, allowed in (("skip", skip, skippable), ("evaluate", evaluate or [], (*models, *made))):
        if not isinstance(value, list):
            problems.append(f"{key}: must be a list, e.g. [{allowed[-1]}], got {value!r}")
            return (), None
        for index, item in enumerate(value):
            if item not in allowed:
                problems.append(f"{key}.{index}: unknown '{item}'; allowed: {', '.join(allowed)}")
    if evaluate is not None and models[0] not in evaluate:
        problems.append(f"evaluate: must include {models[0]}, the model every other is compared with")
    for item in evaluate or []:
        if item in skip:
            problems.append(f"evaluate: '{item}' is skipped (skip: {skip}), so there is no such model to evaluate")
    return tuple(skip), tuple(evaluate) if evaluate is not None else None


def _section_of(override: str) -> str:
    return override.split(".", 1)[0]


def _sweep_branches(sweep: Any, problems: list[str]) -> dict[str, list[str]]:
    """``{cpt.replay_ratio: [0.1, 0.5]}`` -> ``{"replay_ratio-0.1": ["cpt.replay_ratio=0.1"], ...}``: one branch
    per combination of the swept values, named by them with only file-safe characters (refs/<recipe>/<node>)."""
    import itertools
    import json
    import re

    if not sweep:
        return {}
    if not isinstance(sweep, dict):
        example = "{cpt.replay_ratio: [0.1, 0.5]}"
        problems.append(f"sweep: must map dotted params to lists of values, e.g. {example}; got {sweep!r}")
        return {}
    axes = []
    for key, values in sweep.items():
        if _section_of(str(key)) not in SWEEPABLE or "." not in str(key):
            problems.append(
                f"sweep.{key}: only params of {', '.join(SWEEPABLE)} can be swept (section.param); the model, "
                "corpus, pack and base's eval are shared by every branch"
            )
            continue
        if str(key) in recipe_rules.UNSWEEPABLE:
            problems.append(f"sweep.{key}: {recipe_rules.UNSWEEPABLE[str(key)]}")
            continue
        if not isinstance(values, list) or not values:
            problems.append(f"sweep.{key}: needs a non-empty list of values, got {values!r}")
            continue
        axes.append([(str(key), value) for value in values])
    branches: dict[str, list[str]] = {}
    for combination in itertools.product(*axes) if axes else []:
        name = "-".join(f"{key.rsplit('.', 1)[-1]}-{value}" for key, value in combination)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        if name in branches:
            problems.append(f"sweep: two branches are both named '{name}'; give each value once")
        branches[name] = [f"{key}={json.dumps(value)}" for key, value in combination]
    return branches


def _describe(section: str, model_cls: type[BaseModel], exc: ValidationError) -> list[str]:
    """Turn pydantic errors into lines naming the dotted key, what was given and what is allowed."""
    lines = []
    for error in exc.errors():
        dotted = ".".join([section, *(str(p) for p in error["loc"])])
        if not error["loc"]:  # a check across fields: its message names the keys; the input is the whole section
            lines.append(f"{section}: {error['msg'].removeprefix('Value error, ')}")
        elif error["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(model_cls.model_fields))
            lines.append(f"{dotted}: unknown key; allowed keys in '{section}': {allowed}")
        else:
            given = error.get("input")
            lines.append(f"{dotted}: {error['msg']} (got {given!r})")
    return lines
