"""The report's document-level translation section: one table per source and a plot of the scores against k.

Input: each model's ``doc_translation`` results (``stages.doc_translation``), base first. Every model and
decoder translated the same sentences, so each incremental or whole-document decoder is tested against the
sentence decoder (k=0) of the same model, and each model against base under the same decoder, both by a
paired bootstrap over sentence chrF (``eval.significance``).
"""

from __future__ import annotations

from typing import Any

from eval import significance
from eval.doc_translation import DOCUMENT
from eval.report import Cell, GroupedTable, figure_png, model_colours, pyplot, signed, verdict_cell

SENTENCE = "k=0"


def _entry(scores: dict[str, Any]) -> dict[str, Any]:
    return {"metric": "chrf", "value": scores["chrf"], "per_item": scores["per_item"]}


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _versus(base: dict[str, Any] | None, other: dict[str, Any]) -> Cell | str:
    if base is None:
        return "-"
    comparison = significance.compare(_entry(base), _entry(other))
    return verdict_cell(comparison, signed(comparison.difference, 2))


def source_table(results: dict[str, dict[str, Any]], source: str, baseline_model: str = "base") -> GroupedTable:
    """Rows: copying the source, then every model under every decoder; scores, then the two paired tests."""
    header = [
        "model",
        "decoder",
        "chrF",
        "BLEU",
        "d-BLEU",
        "term consistency",
        "term accuracy",
        "chrF vs k=0 (same model)",
        f"chrF vs {baseline_model} (same decoder)",
        "seconds",
    ]
    first = next(iter(results.values()))["sources"][source]
    copy = first["baseline"]
    rows: list[list[Any]] = [
        [
            "copy the source",
            "-",
            f"{copy['chrf']:.2f}",
            f"{copy['bleu']:.2f}",
            f"{copy['d_bleu']:.2f}",
            "-",
            _percent(copy["term_accuracy"]),
            "-",
            "-",
            "-",
        ]
    ]
    base = results.get(baseline_model, {}).get("sources", {}).get(source, {}).get("decoders", {})
    for model, payload in results.items():
        decoders = payload["sources"][source]["decoders"]
        for name, scores in decoders.items():
            counts = scores["term_counts"]
            consistency = _percent(scores["consistency"])
            if counts["terms"]:
                consistency += f" of {counts['terms']}"
            rows.append(
                [
                    model,
                    "whole document" if name == DOCUMENT else name,
                    f"{scores['chrf']:.2f}",
                    f"{scores['bleu']:.2f}",
                    f"{scores['d_bleu']:.2f}",
                    consistency,
                    _percent(scores["term_accuracy"]),
                    "-" if name == SENTENCE else _versus(decoders.get(SENTENCE), scores),
                    "-" if model == baseline_model else _versus(base.get(name), scores),
                    f"{scores['seconds']:.0f}",
                ]
            )
    note = (
        f"{first['source_lang']} -> {first['target_lang']}, {len(first['documents'])} held-out documents of "
        f"{source}, {first['baseline']['sentences']} sentences, the same for every model and decoder. k=0: sentence "
        "by sentence; k=n: each sentence with the n before it and the model's own translations of them; whole "
        "document: one generation, read back a line per sentence. chrF and BLEU over sentences, d-BLEU over "
        "documents (sentences joined). Term consistency: share of the names and terms a document repeats that "
        "the model rendered the same way every time it rendered them (of how many); term accuracy: share of "
        "their occurrences rendered as the reference does. The last two score columns are paired bootstraps over "
        f"sentence chrF: {significance.BETTER} better, {significance.WORSE} worse (p < {significance.ALPHA}), "
        f"{significance.WITHIN_NOISE} within noise."
    )
    return GroupedTable(header, rows, [("", 2), ("scores", 5), ("paired tests", 2), ("", 1)], f"doc-{source}", note)


def scores_png(results: dict[str, dict[str, Any]]) -> bytes | None:
    """Per source, chrF and d-BLEU against the context window k, a line per model; the whole-document decoder
    is the separate point at the right."""
    sources = sorted({source for payload in results.values() for source in payload["sources"]})
    if not sources:
        return None
    plt = pyplot()
    colours = model_colours(list(results))
    fig, axes = plt.subplots(len(sources), 2, figsize=(8, 2.9 * len(sources)), dpi=110, squeeze=False)
    for row, source in zip(axes, sources, strict=True):
        for ax, key, label in ((row[0], "chrf", "chrF"), (row[1], "d_bleu", "d-BLEU")):
            by_model = {
                model: payload["sources"].get(source, {}).get("decoders", {}) for model, payload in results.items()
            }
            windows = sorted({int(n.removeprefix("k=")) for d in by_model.values() for n in d if n != DOCUMENT})
            right = (max(windows) + 1) if windows else 0
            for model, decoders in by_model.items():
                points = sorted((int(n.removeprefix("k=")), s[key]) for n, s in decoders.items() if n != DOCUMENT)
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, marker="o", color=colours[model], label=model)
                if DOCUMENT in decoders:
                    ax.plot([right], [decoders[DOCUMENT][key]], marker="s", color=colours[model], linestyle="none")
            copy = next(iter(results.values()))["sources"][source]["baseline"][key]
            ax.axhline(copy, linestyle="--", color="black", linewidth=1, label="copy the source")
            whole = any(DOCUMENT in decoders for decoders in by_model.values())
            ticks = [*windows, *([right] if whole else [])]
            ax.set_xticks(ticks, [f"k={k}" for k in windows] + (["whole\ndoc"] if whole else []))
            ax.set_title(f"{source}: {label}", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Document-level translation: score against context window (square: whole document)", fontsize=10)
    return figure_png(fig)
