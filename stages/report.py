"""The run report: every evaluated model against the base, the corpus, and the CPT curves.

It leads with a verdict a person reads in ten seconds (each model against base, with a paired
significance mark per task), then warnings, then plots, then the details. Writes ``report.md``,
``report.html`` (self-contained) and the plots (``task_scores.png``, ``bits_per_byte.png``,
``cpt_curves.png``, ``plan_fit.png`` when planned) into the stage output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval import doc_translation_report, law_report, laws, report
from stages.base import Params, StageContext, StageSpec, Wiring
from stages.lib.jsonl import read_jsonl


class ReportParams(Params):
    title: str = ""
    """Report heading (default: the recipe's name)."""

    COSMETIC = frozenset({"title"})


def run(ctx: StageContext, inputs: dict[str, Any], params: ReportParams) -> dict[str, Any]:
    # Every model evaluated (base first, then as the graph lists them: cpt, sft, merge, a recipe's own nodes).
    names = ["eval_base", *(name for name in inputs if name.startswith("eval_") and name != "eval_base")]
    translated = {  # document-level translation, where the recipe has a doc_translation section
        name.removeprefix(DOC_PREFIX): json.loads(Path(inputs[name]).read_text(encoding="utf-8"))
        for name in sorted(inputs, key=lambda n: n != f"{DOC_PREFIX}base")
        if name.startswith(DOC_PREFIX)
    }
    evals = {name.removeprefix("eval_"): json.loads(Path(inputs[name]).read_text(encoding="utf-8")) for name in names}
    stats = json.loads((Path(inputs["corpus"]) / "stats.json").read_text(encoding="utf-8"))
    history = read_jsonl(Path(inputs["cpt"]))
    title = params.title or f"Domain adaptation report: {ctx.recipe or 'recipe'}"
    comparisons = report.compare_models(evals)
    notes = report.warnings(stats, comparisons)
    overlap_table, overlap_notes = report.training_overlap(evals)
    notes += overlap_notes
    cpt_metrics = json.loads(Path(inputs["cpt_run"]).read_text(encoding="utf-8"))["metrics"]
    pack = json.loads((Path(inputs["packed"]) / "pack.json").read_text(encoding="utf-8"))
    if "base" in evals:
        note = report.budget_note(
            evals,
            comparisons,
            int(cpt_metrics["train_tokens"]),
            1 - float(cpt_metrics["general_token_share"]),
            int(pack["sets"].get("domain_train", {}).get("tokens", 0)),
        )
        notes += [note] if note else []
        notes += report.probe_coverage(cpt_metrics)
    lead: list[tuple[str, Any]] = [
        ("Verdict: each model against base", report.verdict_table(evals, comparisons)),
        ("Warnings", notes),
    ]
    sections: list[tuple[str, Any]] = [
        (
            "Models",
            "base: the starting model; cpt: after continual pre-training with replay; sft: after "
            "instruction tuning; merge: the sft model merged back with the instruct model (mergekit).",
        ),
        ("Scores", report.main_table(evals)),
        ("Domain gain and general forgetting against base", report.change_table(evals)),
        ("Paired tests against base (same items)", report.significance_table(evals, comparisons)),
        (
            "How to read it",
            "Bits-per-byte is measured by lm-eval on held-out documents that no stage trained on. Domain gain is the "
            "drop in domain bits-per-byte against base; general forgetting is the rise in general bits-per-byte "
            "(negative: the general held-out text got easier, as it can when it shares a source with the replay "
            "text). Task accuracies carry their standard error; compare them with the chance level in the header. "
            "Every model is scored on the same items, so each is tested against base item by item: McNemar's exact "
            "test for right/wrong scores, a paired bootstrap (10,000 resamples, fixed seed) for chrF and for "
            "bits-per-byte over documents. A move counts when it is larger than twice the paired standard error. "
            "Tasks seen in training are a closed-book probe on training documents (what CPT should teach) and are "
            "reported apart from held-out tasks, never averaged with them.",
        ),
        ("Corpus (per source; drop share of documents read)", report.corpus_table(stats)),
        (
            "Deduplication and decontamination",
            f"Near-duplicates (MinHash, similarity above ~{stats.get('minhash_threshold', 0):.2f}) were removed "
            f"across all sources before the split; {stats.get('decontaminated', 0)} training documents that shared "
            "a word n-gram with an eval item were dropped (per source in the table above). Eval items are never "
            "trained on.",
        ),
        *([("lm-eval benchmarks and task folders: items in training text", overlap_table)] if overlap_table else []),
        ("Packed training data", report.pack_table(pack)),
    ]
    images: list[tuple[str, str, bytes]] = []
    for heading, name, png in (
        ("Task scores against their baselines", "task_scores.png", report.task_scores_png(evals)),
        ("Bits-per-byte: domain and general", "bits_per_byte.png", report.bpb_png(evals)),
    ):
        if png is not None:
            images.append((heading, name, png))
    for source in sorted({source for payload in translated.values() for source in payload["sources"]}):
        sections.append(
            (f"Document-level translation: {source}", doc_translation_report.source_table(translated, source))
        )
    if translated:
        png = doc_translation_report.scores_png(translated)
        if png is not None:
            images.append(("Document-level translation against context window", "doc_translation.png", png))
    law_fits = {kind: laws.fit_logged_curve(history, kind) for kind in ("general", "domain")}
    law_fits = {kind: fit for kind, fit in law_fits.items() if fit}
    if law_fits:
        sections.append(("CPT learning-dynamics law (Wang et al. 2025) on the cpt curves", _curve_law_table(law_fits)))
    if history:
        images.append(("CPT loss curves", "cpt_curves.png", report.curves_png(history, law_fits)))
    if inputs.get("plan"):
        plan_sections, plan_image = _plan_sections(
            json.loads(Path(inputs["plan"]).read_text(encoding="utf-8")), cpt_metrics
        )
        sections += plan_sections
        transfer = _curve_transfer(Path(inputs["proxies"]), cpt_metrics, history) if inputs.get("proxies") else None
        if transfer:
            sections.append(transfer)
        images.append(("Mixture plan: D-CPT Law fits", "plan_fit.png", plan_image))
    if inputs.get("schedule"):
        sections += law_report.schedule_sections(json.loads(Path(inputs["schedule"]).read_text(encoding="utf-8")))
    if inputs.get("sizes"):
        sections += law_report.sizes_sections(json.loads(Path(inputs["sizes"]).read_text(encoding="utf-8")))
    for _, name, png in images:
        (ctx.out_dir / name).write_bytes(png)
    md = report.markdown(title, sections, images, lead=lead)
    (ctx.out_dir / "report.md").write_text(md, encoding="utf-8")
    page = report.html_page(title, sections, images, lead=lead)
    (ctx.out_dir / "report.html").write_text(page, encoding="utf-8")
    summary = {model: {task: entry["value"] for task, entry in e["tasks"].items()} for model, e in evals.items()}
    return {
        "outputs": {"report": ctx.out_dir / "report.md", "html": ctx.out_dir / "report.html"},
        "metrics": summary,
    }


def _curve_law_table(fits: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    rows = []
    for kind, fit in fits.items():
        early = fit.get("early_fit_prediction_error")
        rows.append(
            [
                kind,
                str(len(fit["steps"])),
                f"{100 * fit['fit_error']:.2f}%",
                f"{100 * early:.2f}% (fit on {fit['early_fit_points']})" if early is not None else "too few points",
                f"{fit['params']['b']:+.3f}",
            ]
        )
    header = ["held-out loss", "eval points", "fit error", "first 2/3 predicting the rest", "B (+ general, - domain)"]
    return header, rows


def _curve_transfer(proxies: Path, cpt_metrics: dict[str, Any], history: list[dict[str, Any]]) -> Any:
    """Fit the learning-dynamics law on the proxy run nearest the real mixture, predict the real cpt curve.

    ``proxies`` is the plan stage's declared output: its index.json names each proxy's domain share and curves."""
    share = 1 - cpt_metrics["general_token_share"]
    index = json.loads((proxies / "index.json").read_text(encoding="utf-8"))
    candidates = {float(entry["domain_share"]): proxies / entry["curves"] for entry in index}
    nearest = min(candidates, key=lambda s: abs(s - share), default=None)
    if nearest is None or abs(nearest - share) > 0.05 or not candidates[nearest].exists():
        return None
    proxy_history = read_jsonl(candidates[nearest])
    rows = []
    for kind in ("domain", "general"):
        fitted = laws.fit_logged_curve(proxy_history, kind)
        predicted = laws.predict_logged_curve(fitted, history, kind) if fitted else None
        if predicted:
            rows.append(
                [
                    kind,
                    str(len(fitted["steps"])),
                    str(len(predicted["steps"])),
                    f"{100 * predicted['mean_abs_rel_error']:.2f}%",
                    f"{predicted['predicted'][-1]:.4f}",
                    f"{predicted['measured'][-1]:.4f}",
                    f"{100 * predicted['final_error']:+.2f}%",
                ]
            )
    if not rows:
        return None
    header = [
        "held-out loss",
        "proxy points fitted",
        "cpt points predicted",
        "mean error",
        "predicted final",
        "measured final",
        "final error",
    ]
    heading = (
        f"Learning-dynamics law: fitted on the proxy at domain share {nearest:.2f} (constant rate), "
        f"predicting the real cpt run's curve (its own schedule, {cpt_metrics['train_tokens']} tokens)"
    )
    return heading, (header, rows)


def _plan_sections(plan: dict[str, Any], cpt_metrics: dict[str, Any]) -> tuple[list[tuple[str, Any]], bytes]:
    """The plan's choice, its fit quality, its proxy runs, and its prediction against the real cpt run."""
    import numpy as np

    chosen = plan["chosen"]
    share = 1 - cpt_metrics["general_token_share"]
    tokens = cpt_metrics["train_tokens"]
    measured = {"domain": cpt_metrics["final_eval_domain_loss"], "general": cpt_metrics["final_eval_general_loss"]}
    predicted = {
        kind: float(laws.dcpt_loss([1.0], [tokens], [laws.law_share(kind, share)], plan["fits"][kind]["params"])[0])
        for kind in ("domain", "general")
    }
    choice = (
        f"Objective '{plan['objective']}' at {plan['target_tokens']} training tokens: domain share "
        f"{chosen['domain_share']:.2f}, i.e. replay ratio {chosen['replay_ratio']:.2f}; predicted domain loss "
        f"{chosen['predicted_domain_loss']:.4f}, general loss {chosen['predicted_general_loss']:.4f} "
        f"(base: domain {plan['base_loss']['domain']:.4f}, general {plan['base_loss']['general']:.4f})."
    )
    held_out = [
        (key, label)
        for key, label in (
            ("leave_one_ratio_out_mean", "leave-one-ratio-out error"),
            ("leave_largest_budget_out", "leave-largest-budget-out error"),
            ("leave_one_domain_out_mean", "leave-one-domain-out error"),
        )
        if key in plan["fits"]["domain"]["quality"]
    ]
    quality_rows = []
    for kind in ("domain", "general"):
        q = plan["fits"][kind]["quality"]
        quality_rows.append(
            [kind, f"{q['huber']:.2e}", f"{q['r2']:.4f}", f"{100 * q['mean_abs_rel_error']:.2f}%"]
            + [f"{100 * q[key]:.2f}%" for key, _ in held_out]
        )
    quality = (["law", "Huber (log-loss)", "R²", "fit error", *(label for _, label in held_out)], quality_rows)
    proxies = (
        ["domain share", "tokens", "domain loss", "general loss"],
        [
            [f"{p['domain_share']:.2f}", str(p["tokens"]), f"{p['domain_loss']:.4f}", f"{p['general_loss']:.4f}"]
            for p in plan["points"]
            if p["step"] > 0
        ],
    )
    check = (
        ["loss", "cpt domain share", "cpt tokens", "predicted", "measured", "relative error"],
        [
            [
                kind,
                f"{share:.2f}",
                str(tokens),
                f"{predicted[kind]:.4f}",
                f"{measured[kind]:.4f}",
                f"{100 * (predicted[kind] - measured[kind]) / measured[kind]:+.2f}%",
            ]
            for kind in ("domain", "general")
        ],
    )
    grid = np.geomspace(min(p["tokens"] for p in plan["points"] if p["tokens"]), max(tokens, plan["target_tokens"]), 50)
    image = report.plan_png(
        plan["points"],
        laws.plan_curves(plan, grid),
        grid,
        {kind: (tokens, share, measured[kind]) for kind in ("domain", "general")},
    )
    sections = [
        ("Mixture plan (D-CPT Law)", choice),
        ("Plan: fit quality (errors are mean absolute relative errors of loss)", quality),
        ("Plan: proxy runs (the base model's losses at 0 tokens are in the line above)", proxies),
        ("Plan: prediction against the real cpt run", check),
    ]
    if "cross_domain" in plan:
        sections[1:1] = _cross_domain_sections(plan["cross_domain"])
    return sections, image


def _cross_domain_sections(cross: dict[str, Any]) -> list[tuple[str, Any]]:
    """Where a cross-domain plan's laws came from (each domain's early-run coefficients) and its check proxy."""
    early = cross["early_run"]
    coefficients = (
        ["domain", "k1 (first loss)", "k2 (relative decline)"],
        [[f"{name} (reference)", f"{c['k1']:.4f}", f"{c['k2']:.4f}"] for name, c in cross["references"].items()]
        + [["this domain (early run)", f"{cross['domain']['k1']:.4f}", f"{cross['domain']['k2']:.4f}"]],
    )
    sections: list[tuple[str, Any]] = [
        (
            f"Plan: Cross-Domain D-CPT Law, fitted on {len(cross['references'])} other domains' plans; this domain "
            f"measured only its early run ({early['steps']} steps, {early['tokens']} tokens at domain share "
            f"{early['domain_share']:.2f})",
            coefficients,
        )
    ]
    if "check" in cross:
        check = cross["check"]
        rows = [
            [kind, str(tokens), f"{predicted:.4f}", f"{measured:.4f}", f"{100 * (predicted / measured - 1):+.2f}%"]
            for kind in ("domain", "general")
            for tokens, predicted, measured in zip(
                check[kind]["tokens"], check[kind]["predicted"], check[kind]["measured"], strict=True
            )
        ]
        sections.append(
            (
                f"Plan: the law's prediction against one full proxy of this domain at the chosen share "
                f"{check['domain_share']:.2f} (mean error: domain {100 * check['domain']['mean_abs_rel_error']:.2f}%, "
                f"general {100 * check['general']['mean_abs_rel_error']:.2f}%)",
                (["loss", "tokens", "predicted", "measured", "relative error"], rows),
            )
        )
    return sections


DOC_PREFIX = "doc_translation_"

SPEC = StageSpec(
    name="report",
    version=6,
    params=ReportParams,
    inputs=("eval_base", "cpt", "cpt_run", "corpus", "packed"),
    optional_inputs=("plan", "proxies", "schedule", "sizes"),
    input_prefixes=("eval_", DOC_PREFIX),  # one per evaluated model: a recipe may skip, leave out or add models
    wiring=Wiring(
        inputs={
            "cpt": "cpt.curves",
            "cpt_run": "cpt.manifest",
            "corpus": "corpus.data",
            "packed": "pack.packed",
            "plan": "plan.plan",
            "proxies": "plan.proxies",
            "schedule": "plan_schedule.schedule",
            "sizes": "plan_sizes.sizes",
        },
        gathers={"eval": "results", "doc_translation": "results"},
    ),
    page="report.md",
    run=run,
    doc="Markdown + HTML report: a verdict with paired significance marks, warnings, plots, then details.",
    libraries=("matplotlib",),
)
