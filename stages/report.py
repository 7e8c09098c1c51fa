"""The run report: every evaluated model against the base, the corpus, and the CPT curves.

Writes ``report.md``, ``report.html`` (self-contained) and ``cpt_curves.png`` into the stage output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval import report
from stages.base import Params, StageContext, StageSpec
from stages.corpus import read_jsonl

MODELS = ("base", "cpt", "sft", "merge")


class ReportParams(Params):
    title: str = ""
    """Report heading (default: the recipe's name)."""

    COSMETIC = frozenset({"title"})


def run(ctx: StageContext, inputs: dict[str, Any], params: ReportParams) -> dict[str, Any]:
    evals = {
        model: json.loads(Path(inputs[f"eval_{model}"]).read_text(encoding="utf-8"))
        for model in MODELS
        if f"eval_{model}" in inputs
    }
    stats = json.loads((Path(inputs["corpus"]) / "stats.json").read_text(encoding="utf-8"))
    history = read_jsonl(Path(inputs["cpt"]))
    title = params.title or f"Domain adaptation report: {ctx.recipe or 'recipe'}"
    sections: list[tuple[str, Any]] = [
        (
            "Models",
            "base: the starting model; cpt: after continual pre-training with replay; sft: after "
            "instruction tuning; merge: the sft model merged back with the instruct model (mergekit).",
        ),
        ("Scores", report.main_table(evals)),
        ("Domain gain and general forgetting against base", report.change_table(evals)),
        (
            "How to read it",
            "Bits-per-byte is measured by lm-eval on held-out documents that no stage trained on. Domain gain is the "
            "drop in domain bits-per-byte against base; general forgetting is the rise in general bits-per-byte "
            "(negative: the general held-out text got easier, as it can when it shares a source with the replay "
            "text). Task accuracies carry their standard error; compare them with the chance level in the header.",
        ),
        ("Corpus", report.corpus_table(stats)),
    ]
    png = report.curves_png(history) if history else None
    if png:
        (ctx.out_dir / "cpt_curves.png").write_bytes(png)
    md = report.markdown(title, sections)
    if png:
        md += "\n## CPT loss curves\n\n![CPT loss curves](cpt_curves.png)\n"
    (ctx.out_dir / "report.md").write_text(md, encoding="utf-8")
    (ctx.out_dir / "report.html").write_text(report.html_page(title, sections, png), encoding="utf-8")
    summary = {model: {task: entry["value"] for task, entry in e["tasks"].items()} for model, e in evals.items()}
    return {
        "outputs": {"report": ctx.out_dir / "report.md", "html": ctx.out_dir / "report.html"},
        "metrics": summary,
    }


SPEC = StageSpec(
    name="report",
    version=1,
    params=ReportParams,
    inputs=("eval_base", "eval_cpt", "eval_sft", "eval_merge", "cpt", "corpus"),
    run=run,
    doc="Markdown + HTML report: scores, domain gain vs general forgetting, corpus, CPT curves.",
    libraries=("matplotlib",),
)
