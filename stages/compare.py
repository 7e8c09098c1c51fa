"""Compare the branches of a sweep on one page: every branch's models against base, a Pareto plot of
domain gain against general forgetting, and every branch's cpt curves on one plot.

Its inputs are variadic (``eval_<model>@<branch>``, ``curves@<branch>``): the recipe's ``sweep:`` decides
how many branches there are; each branch keeps its own full report beside this one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval import branches, report
from stages.base import Params, StageContext, StageSpec
from stages.jsonl import read_jsonl


class CompareParams(Params):
    title: str | None = None
    """Page title; default: 'Sweep: <recipe>'."""


def run(ctx: StageContext, inputs: dict[str, Any], params: CompareParams) -> dict[str, Any]:
    evals: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[dict[str, Any]]] = {}
    for name, path in inputs.items():
        if name == "eval_base":
            evals = {"base": json.loads(Path(path).read_text(encoding="utf-8"))} | evals
        elif name.startswith("eval_"):
            model, branch = name.removeprefix("eval_").split("@", 1)
            evals[f"{model} {branch}"] = json.loads(Path(path).read_text(encoding="utf-8"))
        elif name.startswith("curves@"):
            curves[name.split("@", 1)[1]] = read_jsonl(Path(path))
    title = params.title or f"Sweep: {ctx.recipe or 'recipe'}"
    lead: list[tuple[str, Any]] = []
    sections: list[tuple[str, Any]] = []
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
    sections.insert(0, ("Scores", report.main_table(evals)))
    images = [
        (heading, name, png)
        for heading, name, png in (
            ("Domain gain against general forgetting", "pareto.png", branches.pareto_png(points, front)),
            ("CPT held-out loss of every branch", "branch_curves.png", branches.branch_curves_png(curves)),
        )
        if png is not None
    ]
    for _, name, png in images:
        (ctx.out_dir / name).write_bytes(png)
    (ctx.out_dir / "report.md").write_text(report.markdown(title, sections, images, lead=lead), encoding="utf-8")
    (ctx.out_dir / "report.html").write_text(report.html_page(title, sections, images, lead=lead), encoding="utf-8")
    metrics = {"branches": sorted(curves), "pareto_front": front}
    metrics["gain_and_forgetting"] = {label: list(point) for label, point in points.items()}
    return {"outputs": {"report": ctx.out_dir / "report.md", "html": ctx.out_dir / "report.html"}, "metrics": metrics}


SPEC = StageSpec(
    name="compare",
    version=1,
    params=CompareParams,
    inputs=(),
    input_prefixes=("eval_", "curves@"),
    run=run,
    doc="Sweep branches side by side: a verdict per branch model, a Pareto plot, every branch's curves.",
    libraries=("matplotlib",),
)
