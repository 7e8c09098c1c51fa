"""Compare groups of models on one page: a sweep's branches, or the domains of a multi-domain recipe.

Its inputs are variadic: ``eval_<model>@<group>`` and ``cpt@<group>`` (curves). A sweep's branches share
base's eval (``eval_base``): every branch model is one row against it, with a Pareto plot of domain gain against
general forgetting and every branch's cpt curves on one plot. Groups with a base of their own
(``eval_base@legal``, ``eval_base@health``: each domain's tasks and held-out text) get one verdict table each,
and a table of each model's domain gain in every group, so a merged model stands beside each specialist.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from eval import branches, report, significance
from stages.base import Params, StageContext, StageError, StageSpec, Wiring
from stages.lib.jsonl import read_jsonl


class CompareParams(Params):
    title: str | None = None
    """Page title; default: 'Sweep: <recipe>', or 'Domains: <recipe>' when each group has its own base."""
    references: dict[str, str] | None = None
    """group -> the name of the model its ``eval_base@<group>`` holds, when that is not the base model (an arm
    compared against the arm before it): tables and headings say "against <name>" (None: base everywhere)."""

    KEYED_WHEN_SET = frozenset({"references"})


def run(ctx: StageContext, inputs: dict[str, Any], params: CompareParams) -> dict[str, Any]:
    shared_base: dict[str, Any] | None = None
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    curves: dict[str, list[dict[str, Any]]] = {}
    for name, path in inputs.items():
        stem, _, group = name.partition("@")
        if stem == "eval_base" and not group:
            shared_base = json.loads(Path(path).read_text(encoding="utf-8"))
        elif stem.startswith("eval_") and group:
            results = json.loads(Path(path).read_text(encoding="utf-8"))
            groups.setdefault(group, {})[stem.removeprefix("eval_")] = results
        elif group:
            curves[group] = read_jsonl(Path(path))
    references = params.references or {}
    unknown = sorted(set(references) - set(groups))
    if unknown:
        raise StageError(f"compare.references: {unknown} name no group of this node's inputs; groups: {sorted(groups)}")
    clashes = [f"{g}: {name}" for g, name in references.items() if name in groups[g] and name != "base"]
    if clashes:
        raise StageError(
            f"compare.references: {clashes} name a model the group also holds as eval_<model>@<group>; "
            "name the model its eval_base@<group> holds"
        )
    if any("base" in models for models in groups.values()):
        title = params.title or f"Domains: {ctx.recipe or 'recipe'}"
        lead, sections, images, metrics = _per_group(groups, references)
    else:
        title = params.title or f"Sweep: {ctx.recipe or 'recipe'}"
        evals = {"base": shared_base} if shared_base is not None else {}
        evals |= {f"{model} {group}": results for group, models in groups.items() for model, results in models.items()}
        lead, sections, images, metrics = _branches(evals, curves)
    for _, name, png in images:
        (ctx.out_dir / name).write_bytes(png)
    (ctx.out_dir / "report.md").write_text(report.markdown(title, sections, images, lead=lead), encoding="utf-8")
    (ctx.out_dir / "report.html").write_text(report.html_page(title, sections, images, lead=lead), encoding="utf-8")
    return {"outputs": {"report": ctx.out_dir / "report.md", "html": ctx.out_dir / "report.html"}, "metrics": metrics}


def _branches(evals: dict[str, dict[str, Any]], curves: dict[str, list[dict[str, Any]]]) -> tuple:
    """Sweep branches against one base: verdict rows, the Pareto front and plot, every branch's curves."""
    lead: list[tuple[str, Any]] = []
    sections: list[tuple[str, Any]] = [("Scores", report.main_table(evals))] if evals else []
    points = branches.gain_and_forgetting(evals) if "base" in evals else {}
    front = branches.pareto_front(points)
    if "base" in evals:
        comparisons = report.compare_models(evals)
        lead.append(("Branches: each model against base", report.verdict_table(evals, comparisons)))
        if front:
            lead.append(
                (
                    "Pareto front",
                    "Models no other branch beats on both domain gain and general forgetting: " + ", ".join(front),
                )
            )
        sections.append(("Paired tests against base (same items)", report.significance_table(evals, comparisons)))
    images = _images(
        ("Domain gain against general forgetting", "pareto.png", branches.pareto_png(points, front)),
        ("CPT held-out loss of every branch", "branch_curves.png", branches.branch_curves_png(curves)),
    )
    metrics = {"branches": sorted(curves), "pareto_front": front}
    metrics["gain_and_forgetting"] = {label: list(point) for label, point in points.items()}
    return lead, sections, images, metrics


def _per_group(groups: dict[str, dict[str, dict[str, Any]]], references: dict[str, str]) -> tuple:
    """Each group (domain) against its own base, then every model's domain gain in every group side by side.

    ``references`` names a group's base where it is another model (an arm against the arm before it)."""
    lead: list[tuple[str, Any]] = []
    sections: list[tuple[str, Any]] = []
    gains: dict[str, dict[str, tuple[float, float]]] = {}
    for group, models in groups.items():
        if "base" not in models:
            continue
        label = references.get(group, "base")
        evals = {label: models["base"]} | {m: r for m, r in models.items() if m != "base"}
        comparisons = report.compare_models(evals, baseline=label)
        verdict = report.verdict_table(evals, comparisons, baseline=label)
        lead.append((f"{group}: each model against {label}", replace(verdict, element_id=f"verdict-{group}")))
        sections.append((f"{group}: scores", report.main_table(evals)))
        tests = report.significance_table(evals, comparisons, baseline=label)
        sections.append((f"{group}: paired tests against {label}", tests))
        gains[group] = branches.gain_and_forgetting(evals, baseline=label)
    models = list(dict.fromkeys(m for points in gains.values() for m in points))
    best = {group: max(points, key=lambda m: points[m][0]) for group, points in gains.items() if points}
    against = {  # each model's domain bits-per-byte paired-tested against its group's best, once
        group: {
            model: significance.compare(
                groups[group][winner]["tasks"]["bpb_domain"], groups[group][model]["tasks"]["bpb_domain"]
            )
            for model in gains[group]
            if model != winner
        }
        for group, winner in best.items()
    }
    header = ["model", *(f"{group} domain gain (bits/byte)" for group in gains)]
    rows = [[model, *(_gain_cell(gains[g], best.get(g), against.get(g, {}), model) for g in gains)] for model in models]
    heading = "Domain gain in every group (its base's bits/byte minus the model's, higher is better)"
    note = (
        "Beside each gain, the paired test (same held-out documents, paired bootstrap) of the model's domain "
        f"bits-per-byte against the group's best model: {significance.WORSE} worse, {significance.BETTER} better "
        f"(p < 0.05), {significance.WITHIN_NOISE} within noise."
    )
    if any(sum(model in points for points in gains.values()) > 1 for model in models):
        # Side by side only where a model is in several groups (domains); arms against the arm before them are not.
        lead.insert(0, (heading, (header, rows)))
        lead.insert(1, ("How to read it", note))
    domain_gain = {group: {model: point[0] for model, point in points.items()} for group, points in gains.items()}
    metrics = {"groups": list(gains), "domain_gain": domain_gain, "best": best}
    metrics["against_best"] = {
        group: {model: test.p for model, test in tests.items()} for group, tests in against.items()
    }
    return lead, sections, [], metrics


def _gain_cell(
    gains: dict[str, tuple[float, float]],
    best: str | None,
    against: dict[str, significance.Comparison],
    model: str,
) -> str:
    """A model's domain gain in one group, and how its domain bits-per-byte compares with the group's best."""
    if model not in gains:
        return "not evaluated"
    cell = f"{gains[model][0]:+.4f}"
    if best is None or model == best:
        return cell + " (best)"
    test = against[model]
    p = "p<0.001" if test.p < 0.001 else f"p={test.p:.3f}"
    return f"{cell}; {test.difference:+.4f} against {best} (SE {test.se:.4f}, {p}) {test.mark}"


def _images(*candidates: tuple[str, str, bytes | None]) -> list[tuple[str, str, bytes]]:
    return [(heading, name, png) for heading, name, png in candidates if png is not None]


SPEC = StageSpec(
    name="compare",
    version=4,  # 4: the side-by-side domain-gain table only where a model is in several groups
    params=CompareParams,
    inputs=(),
    input_prefixes=("eval_", "cpt@"),
    wiring=Wiring(inputs={"eval_base": "eval_base.results"}, sweep_gathers={"eval": "results", "cpt": "curves"}),
    page="report.md",
    run=run,
    doc="Groups side by side: sweep branches against one base (Pareto plot, curves), or domains against their own.",
    libraries=("matplotlib",),
)
