"""Recipes: one YAML file per domain, loaded safely, overridden by dotted keys, validated in full.

A recipe is data. It is read with ``yaml.safe_load`` (no tags, no imports), every key is checked
against the typed params of the stage it configures, and every problem is reported at once, each
naming the file, the dotted key, what was given and what is allowed, before any stage runs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.dag import Node, default_graph, validate
from pipeline.executor import ExecutorSpec
from stages import REGISTRY
from stages.base import Params
from stages.user_data import check_name

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"

# Top-level keys that are not a stage section. Each maps onto fields of stage params.
_GLOBAL_KEYS = {
    "name": "the recipe's name (defaults to the file name)",
    "description": "one line on what this recipe makes",
    "base_model": "embedded:smollm2-135m-instruct, a hub id or a local path (model.name)",
    "sources": "list of text sources (corpus.sources)",
    "instructions": "your instruction pairs: JSONL files of prompt/completion or messages (corpus.instructions)",
    "evals": "your eval sets: JSONL files of multiple-choice or short-answer items (corpus.evals)",
    "seed": "fills every stage's seed",
    "trust_remote_code": "fills every stage's trust_remote_code; off unless the recipe asks",
    "report_to": "training metrics also go to these trackers: tensorboard, wandb",
    "executor": "where stages run: local (default), or slurm jobs through submitit (pipeline/executor.py)",
}
# Recipe-level keys that fill the field of the same name in every stage that has one.
_BROADCAST = ("seed", "trust_remote_code", "report_to")


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
    nodes = validate(default_graph(with_plan="plan" in raw))
    sections = {node.params_section: node.stage for node in nodes}
    problems: list[str] = []

    for key in raw:
        if key not in _GLOBAL_KEYS and key not in sections:
            allowed = sorted(set(_GLOBAL_KEYS) | set(sections))
            problems.append(f"{key}: unknown key; allowed top-level keys: {', '.join(allowed)}")

    section_values: dict[str, dict[str, Any]] = {}
    for section in sections:
        value = raw.get(section) or {}
        if not isinstance(value, dict):
            problems.append(f"{section}: must be a mapping of params, got {type(value).__name__}")
            value = {}
        section_values[section] = dict(value)
    if "base_model" in raw:
        section_values["model"].setdefault("name", raw["base_model"])
    for key in ("sources", "instructions", "evals"):
        if key in raw:
            section_values["corpus"].setdefault(key, raw[key])

    params: dict[str, Params] = {}
    validated_sections: dict[str, Params] = {}
    for section, stage in sections.items():
        model_cls = REGISTRY[stage].params
        values = section_values[section]
        for key in _BROADCAST:
            if key in raw and key in model_cls.model_fields:
                values.setdefault(key, raw[key])
        try:
            validated_sections[section] = model_cls(**values)
        except ValidationError as exc:
            problems.extend(_describe(section, model_cls, exc))
    executor = ExecutorSpec()
    if "executor" in raw:
        try:
            executor = ExecutorSpec(**(raw["executor"] or {}))
        except (ValidationError, TypeError) as exc:
            if isinstance(exc, ValidationError):
                problems.extend(_describe("executor", ExecutorSpec, exc))
            else:
                problems.append(f"executor: must be a mapping, got {type(raw['executor']).__name__}")
        unknown = sorted(set(executor.stages) - {node.stage for node in nodes})
        if unknown:
            problems.append(f"executor.stages: unknown stage(s) {unknown}; stages: {sorted({n.stage for n in nodes})}")
    if "corpus" in validated_sections and not validated_sections["corpus"].sources:
        problems.append(
            "sources: empty; a recipe needs at least one 'domain' and one 'general' text source (top-level "
            "'sources:' or corpus.sources), e.g. [{name: docs, kind: domain, type: folder, path: docs/}, "
            "{name: replay, kind: general, type: python_docs}]"
        )
    if "plan" in validated_sections and "cpt" in validated_sections:
        proxy_tokens, seq_len = validated_sections["plan"].proxy_tokens, validated_sections["cpt"].seq_len
        if proxy_tokens < seq_len:
            problems.append(
                f"plan.proxy_tokens: {proxy_tokens} is under one block of cpt.seq_len={seq_len}; "
                f"give each proxy {seq_len} tokens or more"
            )
    name = str(raw.get("name") or default_name)
    try:
        check_name(name)
    except ValueError as exc:
        where = "name" if raw.get("name") else f"name (from the file name '{default_name}'; set 'name:' to change it)"
        problems.append(f"{where}: {exc}, because it names folders in the store (refs/<name>/)")
    if "pack" in validated_sections and "cpt" in validated_sections:
        pack_len, cpt_len = validated_sections["pack"].seq_len, validated_sections["cpt"].seq_len
        if "seq_len" in (raw.get("pack") or {}) and pack_len != cpt_len:
            problems.append(f"pack.seq_len: {pack_len} differs from cpt.seq_len {cpt_len}; set cpt.seq_len alone")
        # One pack per (corpus, tokenizer, seq_len): cpt and the plan proxies train on the same blocks.
        validated_sections["pack"] = validated_sections["pack"].model_copy(update={"seq_len": cpt_len})
    if problems:
        raise RecipeError(f"{source}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    if "plan" in validated_sections:
        # Proxies train exactly as the real cpt stage will, except for the ratio and the budget they vary.
        proxy_cpt = validated_sections["cpt"].model_copy(update={"replay_ratio": None, "report_to": []})
        validated_sections["plan"] = validated_sections["plan"].model_copy(update={"cpt": proxy_cpt})
    for node in nodes:
        params[node.name] = validated_sections[node.params_section]
    return Recipe(name=name, path=path, nodes=nodes, params=params, raw=raw, executor=executor)


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
