"""Render the run report: what each model gained in the domain and lost in general ability.

Input is plain data (eval summaries, CPT curves, corpus stats); output is Markdown and one
self-contained HTML page (plots embedded as base64 PNG), so the report can be mailed or attached to a
model card without its run directory. The page leads with a verdict a person reads in ten seconds
(each model against base, with a paired significance mark), then warnings, then plots, then details.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eval import significance
from eval.significance import Comparison


@dataclass(frozen=True)
class Cell:
    """A table cell whose HTML is richer than its Markdown: a coloured mark, reasons folded away."""

    text: str
    html: str


Table = tuple[list[str], list[list[Any]]]


@dataclass(frozen=True)
class GroupedTable:
    """A table whose columns come in labelled groups (held-out tasks apart from tasks seen in training)."""

    header: list[str]
    rows: list[list[Any]]
    groups: list[tuple[str, int]]
    """(label, number of columns) over ``header``, left to right; an empty label for an ungrouped column."""
    element_id: str = ""
    note: str = ""
    """A paragraph under the table: how to read it."""


Body = str | Table | GroupedTable | list[str]
"""A section's body: a paragraph, a table, a grouped table, or a bullet list."""

ORIGINS = ("held_out", "training", "user", "benchmark")
ORIGIN_LABELS = {
    "held_out": "held-out tasks",
    "training": "seen in training (closed-book probe)",
    "user": "user's eval set",
    "benchmark": "benchmarks (lm-eval)",
}
VERDICT_BPB = {"bpb_domain": "domain gain", "bpb_general": "general forgetting"}


def origin_of(entry: dict[str, Any]) -> str:
    """A task's origin: where its items came from (held-out documents unless the eval stage says otherwise)."""
    origin = entry.get("origin") or "held_out"
    return origin if origin in ORIGINS else "held_out"


def ordered_tasks(tasks: dict[str, dict[str, Any]]) -> list[str]:
    """Tasks grouped by origin (held-out, seen in training, user, benchmark), otherwise in their own order."""
    return sorted(tasks, key=lambda task: ORIGINS.index(origin_of(tasks[task])))


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _task_header(task: str, info: dict[str, Any]) -> str:
    origin = origin_of(info)
    suffix = "" if origin == "held_out" else f" [{ORIGIN_LABELS[origin]}]"
    if info["metric"] == "bits_per_byte":
        return f"{task} (bits/byte, lower better){suffix}"
    baseline = info.get("baseline", {}).get(info["metric"])
    versus = f"{info.get('baseline_name', 'chance')} {_fmt(baseline, 2)}, " if baseline is not None else ""
    return f"{info.get('kind', 'domain')} {task} {info['metric']} ({versus}n={info.get('items', '?')}){suffix}"


def main_table(evals: dict[str, dict[str, Any]]) -> Table:
    """Model x metric: bits-per-byte (lower is better) and task scores beside their baseline (chance or copy)."""
    first = next(iter(evals.values()))["tasks"]
    tasks = ordered_tasks(first)
    header = ["model", *(_task_header(task, first[task]) for task in tasks)]
    rows = []
    for model, summary in evals.items():
        row = [model]
        for task in tasks:
            entry = summary["tasks"].get(task, {})
            cell = _fmt(entry.get("value"))
            if "stderr" in entry and entry["metric"] != "bits_per_byte":
                cell += f" ± {entry['stderr']:.3f}"
            if "bleu" in entry:
                cell += f" (BLEU {entry['bleu']:.2f})"
            row.append(cell)
        rows.append(row)
    return header, rows


def change_table(evals: dict[str, dict[str, Any]], baseline: str = "base") -> Table:
    """Domain gain and general forgetting of every model against the baseline model."""
    base = evals[baseline]["tasks"]
    header = [
        "model",
        "domain gain (bits/byte, + is better)",
        "domain gain %",
        "general forgetting (bits/byte, + is worse)",
        "general forgetting %",
    ]
    others = [task for task in ordered_tasks(base) if base[task]["metric"] != "bits_per_byte"]
    for task in others:
        info = base[task]
        origin = origin_of(info)
        suffix = "" if origin == "held_out" else f" [{ORIGIN_LABELS[origin]}]"
        header.append(f"{info.get('kind', 'domain')} {task} {info['metric']} change (+ is better){suffix}")
    rows = []
    for model, summary in evals.items():
        if model == baseline:
            continue
        tasks = summary["tasks"]
        gain = base["bpb_domain"]["value"] - tasks["bpb_domain"]["value"]
        forgetting = tasks["bpb_general"]["value"] - base["bpb_general"]["value"]
        row = [
            model,
            f"{gain:+.4f}",
            f"{100 * gain / base['bpb_domain']['value']:+.1f}%",
            f"{forgetting:+.4f}",
            f"{100 * forgetting / base['bpb_general']['value']:+.1f}%",
        ]
        for task in others:
            row.append(f"{tasks[task]['value'] - base[task]['value']:+.3f}" if task in tasks else "-")
        rows.append(row)
    return header, rows


def compare_models(
    evals: dict[str, dict[str, Any]], baseline: str = "base", resamples: int = significance.RESAMPLES
) -> dict[str, dict[str, Comparison]]:
    """Every model against the baseline on every task both have: the paired tests of ``eval.significance``."""
    base = evals[baseline]["tasks"]
    return {
        model: {
            task: significance.compare(base[task], summary["tasks"][task], resamples=resamples)
            for task in ordered_tasks(base)
            if task in summary["tasks"]
        }
        for model, summary in evals.items()
        if model != baseline
    }


def signed(value: float, digits: int) -> str:
    """A signed number that never prints as -0.000."""
    return f"{round(value, digits) + 0.0:+.{digits}f}"


def _p_text(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


_MARK_CLASS = {significance.BETTER: "up", significance.WORSE: "down", significance.WITHIN_NOISE: "same"}


def verdict_cell(comparison: Comparison, number: str) -> Cell:
    """The difference with its mark; in HTML the mark is coloured and the SE, p and test sit in a tooltip."""
    if comparison.p is None:
        why = comparison.test
        return Cell(f"{number} ({why})", f"{html.escape(number)} <small>({html.escape(why)})</small>")
    mark = comparison.mark
    text = f"{number} {mark} {_p_text(comparison.p)}"
    tip = f"paired SE {comparison.se:.4f}, {_p_text(comparison.p)}, {comparison.test}"
    if comparison.moved:
        tip += ", |difference| > 2 SE"
    return Cell(
        text,
        f"<span title='{html.escape(tip)}'>{html.escape(number)} "
        f"<span class='mark {_MARK_CLASS[mark]}'>{mark}</span> <small>{_p_text(comparison.p)}</small></span>",
    )


def verdict_table(
    evals: dict[str, dict[str, Any]], comparisons: dict[str, dict[str, Comparison]], baseline: str = "base"
) -> GroupedTable:
    """One row per model against base: domain gain, general forgetting, then every task by origin.

    Tasks seen in training (a closed-book probe of what CPT should teach) get their own column group
    and are never averaged with held-out ones.
    """
    base = evals[baseline]["tasks"]
    bpb = [task for task in VERDICT_BPB if task in base]
    header, groups = ["model"], [("", 1)]
    if bpb:
        header += [f"{VERDICT_BPB[task]} (bits/byte {'drop' if task == 'bpb_domain' else 'rise'})" for task in bpb]
        groups.append(("held-out text", len(bpb)))
    columns: list[str] = []
    for origin in ORIGINS:
        tasks = [t for t in ordered_tasks(base) if origin_of(base[t]) == origin and t not in bpb]
        if tasks:
            columns += tasks
            groups.append((ORIGIN_LABELS[origin], len(tasks)))
            for task in tasks:
                lower = " (lower better)" if base[task]["metric"] in significance.LOWER_IS_BETTER else ""
                header.append(f"{task} {base[task]['metric']}{lower}")
    rows = []
    for model, by_task in comparisons.items():
        row: list[Any] = [model]
        for task in bpb:
            c = by_task.get(task)
            if c is None:
                row.append("-")
                continue
            move = c.improvement if task == "bpb_domain" else c.difference
            share = signed(100 * move / base[task]["value"], 1)
            row.append(verdict_cell(c, f"{signed(move, 4)} ({share}%)"))
        for task in columns:
            c = by_task.get(task)
            digits = 4 if base[task]["metric"] in significance.LOWER_IS_BETTER else 3
            row.append("-" if c is None else verdict_cell(c, signed(c.difference, digits)))
        rows.append(row)
    note = (
        f"Each cell: the model's score minus {baseline}'s on the same items. "
        f"{significance.BETTER} better than {baseline}, {significance.WORSE} worse (p < {significance.ALPHA} "
        f"in a paired test: McNemar's exact test for right/wrong scores, a paired bootstrap for the others), "
        f"{significance.WITHIN_NOISE} within noise. Domain gain: drop in domain bits-per-byte (+ is better); "
        "general forgetting: rise in general bits-per-byte (+ is worse)."
    )
    return GroupedTable(header, rows, groups, element_id="verdict", note=note)


def significance_table(
    evals: dict[str, dict[str, Any]], comparisons: dict[str, dict[str, Comparison]], baseline: str = "base"
) -> Table:
    """Every (model, task) test in full: scores, difference, paired SE, p, the test, and whether it moved."""
    base = evals[baseline]["tasks"]
    header = [
        "model",
        "task",
        "origin",
        "metric",
        baseline,
        "model score",
        "difference",
        "paired SE",
        "p",
        "test",
        "|difference| > 2 SE",
        "mark",
    ]
    rows = []
    for model, by_task in comparisons.items():
        for task, c in by_task.items():
            rows.append(
                [
                    model,
                    task,
                    "held-out text"
                    if base[task]["metric"] == "bits_per_byte" and origin_of(base[task]) == "held_out"
                    else ORIGIN_LABELS[origin_of(base[task])],
                    base[task]["metric"],
                    _fmt(float(base[task]["value"])),
                    _fmt(float(evals[model]["tasks"][task]["value"])),
                    f"{c.difference:+.4f}",
                    "-" if c.se is None else f"{c.se:.4f}",
                    "-" if c.p is None else (f"{c.p:.1e}" if c.p < 0.001 else f"{c.p:.4f}"),
                    c.test,
                    "-" if c.moved is None else ("yes" if c.moved else "no"),
                    c.mark or "-",
                ]
            )
    return header, rows


def _dropped_share(entry: dict[str, Any]) -> tuple[int, int, int]:
    """(kept, dropped, read) for one source; read defaults to kept + dropped for older stats."""
    dropped = sum(entry.get("dropped", {}).values())
    kept = entry.get("kept", sum(s.get("documents", 0) for s in entry.get("splits", {}).values()))
    return kept, dropped, entry.get("read") or kept + dropped


def warnings(
    stats: dict[str, Any], comparisons: dict[str, dict[str, Comparison]], max_drop_share: float = 0.2
) -> list[str]:
    """What a reader must not miss: the corpus stage's warnings, significant forgetting, untested tasks.

    Older corpus stats carry no warnings; for those a source that lost more than ``max_drop_share`` of
    its documents is flagged here instead.
    """
    out = list(stats.get("warnings", []))
    if "warnings" not in stats:
        for name, entry in stats.get("sources", {}).items():
            _, dropped, read = _dropped_share(entry)
            if read and dropped / read > max_drop_share:
                out.append(f"source {name} lost {dropped} of {read} documents ({100 * dropped / read:.0f}%) to filters")
    for model, by_task in comparisons.items():
        c = by_task.get("bpb_general")
        if c is not None and c.mark == significance.WORSE:
            out.append(f"{model} forgot general text: general bits-per-byte {c.difference:+.4f} ({_p_text(c.p)})")
    untested: dict[str, set[str]] = {}
    for by_task in comparisons.values():
        for task, c in by_task.items():
            if c.p is None:
                untested.setdefault(c.test, set()).add(task)
    for why, tasks in sorted(untested.items()):
        out.append(f"{why} for {', '.join(sorted(tasks))}: differences shown without a significance mark")
    return out


def budget_note(
    evals: dict[str, dict[str, Any]],
    comparisons: dict[str, dict[str, Comparison]],
    cpt_tokens: int,
    domain_share: float,
    domain_train_tokens: int,
) -> str | None:
    """When no domain task moved for any model, say how much of the domain cpt saw, so a reader does
    not take "no gain" for "the method fails": the figures are measured, the reading of them is not."""
    base = evals["base"]["tasks"]
    domain_tasks = [t for t, e in base.items() if e.get("metric") != "bits_per_byte" and e.get("kind") == "domain"]
    if not domain_tasks:
        return None
    moved = [
        (model, task)
        for model, by_task in comparisons.items()
        for task in domain_tasks
        if task in by_task and by_task[task].moved and by_task[task].mark == significance.BETTER
    ]
    if moved:
        return None
    seen = cpt_tokens * domain_share
    share = 100 * seen / domain_train_tokens if domain_train_tokens else 0.0
    return (
        f"No domain task ({', '.join(domain_tasks)}) moved beyond two paired standard errors for any model. "
        f"cpt trained on {cpt_tokens:,} tokens, about {seen:,.0f} of them domain text: {share:.1f}% of the "
        f"{domain_train_tokens:,} domain training tokens, seen once. Held-out bits-per-byte is a per-token "
        "measure over every word and moves first; tasks that turn on a name, a definition or one word of a "
        "passage most likely need more of the domain seen (cpt.max_tokens, or the recipe on a GPU)."
    )


def probe_coverage(cpt_metrics: dict[str, Any]) -> list[str]:
    """A warning per kind whose closed-book probe asks about training blocks cpt did not train on."""
    out = []
    for kind in ("domain", "general"):
        blocks = cpt_metrics.get(f"{kind}_probe_blocks", 0)
        trained = cpt_metrics.get(f"{kind}_probe_blocks_trained", blocks)
        if trained < blocks:
            out.append(
                f"the {kind} knowledge probe asks about {blocks} blocks of training text, but cpt trained on "
                f"{trained} of them (its budget): raise cpt.max_tokens or lower the probe's max_eval_items"
            )
    return out


def training_overlap(evals: dict[str, dict[str, Any]]) -> tuple[Table | None, list[str]]:
    """lm-eval benchmarks and the user's task folders against the training text: a table and warnings.

    The eval stage counts, per task, the items sharing a 13-gram with training text (the corpus does not
    depend on the model, so any model's results carry the same counts). A task with any such item gets a
    warning: its score may be flattered by memorised items.
    """
    tasks = next(iter(evals.values()), {}).get("tasks", {})
    counts = {task: entry["train_overlap"] for task, entry in tasks.items() if "train_overlap" in entry}
    if not counts:
        return None, []
    rows, notes = [], []
    for task, c in counts.items():
        share = c["overlapping"] / c["items"] if c["items"] else 0.0
        rows.append([task, c["items"], c["overlapping"], f"{100 * share:.1f}%", c["short"]])
        if c["overlapping"]:
            notes.append(
                f"{c['overlapping']} of {c['items']} items of {task} share a {c['n']}-gram with the training "
                "text: its score may be flattered"
            )
    header = ["task", "items", f"sharing a {next(iter(counts.values()))['n']}-gram", "share", "too short to check"]
    return (header, rows), notes


def _split_counts(entry: dict[str, Any], split: str) -> str:
    counts = entry.get("splits", {}).get(split)
    return f"{counts['documents']:,}" if counts else "-"


def corpus_table(stats: dict[str, Any], top: int = 3) -> Table:
    """One row per source: documents kept per split, total dropped with its share, the top drop reasons.

    Markdown shows the ``top`` reasons and "+N more"; HTML folds the rest into a ``<details>`` element.
    """
    splits = sorted({split for entry in stats["sources"].values() for split in entry.get("splits", {})})
    order = {"train": 0, "validation": 1, "eval": 2}
    splits.sort(key=lambda s: (order.get(s, 3), s))
    profiles = any("profile" in entry for entry in stats["sources"].values())
    header = ["source", "kind", "license", *(["profile"] if profiles else [])]
    header += [f"{split} documents" for split in splits]
    header += ["MB kept", "dropped (share of read)", "top drop reasons", "boilerplate lines removed", "filters"]
    rows = []
    for name, entry in stats["sources"].items():
        _, dropped, read = _dropped_share(entry)
        reasons = sorted(entry.get("dropped", {}).items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{k}: {v:,}" for k, v in reasons[:top]) or "none"
        rest = reasons[top:]
        cell: Any = shown
        if rest:
            folded = "<br>".join(f"{html.escape(k)}: {v:,}" for k, v in rest)
            cell = Cell(
                f"{shown} +{len(rest)} more",
                f"{html.escape(shown)}<details><summary>+{len(rest)} more</summary>{folded}</details>",
            )
        megabytes = sum(s.get("bytes", 0) for s in entry.get("splits", {}).values()) / 1e6
        share = f" ({100 * dropped / read:.1f}%)" if read else ""
        rows.append(
            [
                name,
                entry.get("kind", "-"),
                entry.get("license", "-"),
                *([entry.get("profile", "-")] if profiles else []),
                *(_split_counts(entry, split) for split in splits),
                f"{megabytes:.2f}",
                f"{dropped:,}{share}",
                cell,
                f"{entry.get('boilerplate_lines_removed', 0):,}",
                ", ".join(entry.get("filters", [])) or "none",
            ]
        )
    return header, rows


def pack_table(pack: dict[str, Any]) -> Table:
    """Per packed set: documents, tokens, blocks and how full they are."""
    header = ["set", "documents", "tokens", f"blocks of {pack['seq_len']}", "non-padding share", "target share"]
    rows = [
        [
            name,
            str(entry["documents"]),
            str(entry["tokens"]),
            str(entry["blocks"]),
            f"{entry['packing_efficiency']:.4f}",
            f"{entry['target_share']:.4f}",
        ]
        for name, entry in pack["sets"].items()
    ]
    return header, rows


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display here or in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any) -> bytes:
    """A finished figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    pyplot().close(fig)
    return buffer.getvalue()


def curves_png(history: list[dict[str, Any]], law_fits: dict[str, dict[str, Any]] | None = None) -> bytes:
    """Training loss and held-out general/domain loss against step, with fitted law curves dashed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    series = {
        "train loss": "loss",
        "general held-out loss": "eval_general_loss",
        "domain held-out loss": "eval_domain_loss",
    }
    for label, key in series.items():
        points = [(r["step"], r[key]) for r in history if key in r and "step" in r]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o" if key != "loss" else None, label=label, alpha=0.5 if key == "loss" else 1.0)
    for kind, fit in (law_fits or {}).items():
        colour = "C1" if kind == "general" else "C2"
        ax.plot(fit["steps"], fit["fitted"], "--", color=colour, label=f"{kind}: learning-dynamics law fit")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("Continual pre-training: loss curves")
    ax.grid(alpha=0.3)
    ax.legend()
    return figure_png(fig)


def model_colours(models: Sequence[str]) -> dict[str, str]:
    return {model: f"C{i}" for i, model in enumerate(models)}


def task_scores_png(evals: dict[str, dict[str, Any]]) -> bytes | None:
    """Per task, a bar per model with its standard error, and the task's baseline as a dashed line.

    One panel per task, since accuracies (0 to 1) and chrF (0 to 100) share no scale. None when the
    eval has no tasks besides bits-per-byte.
    """
    first = next(iter(evals.values()))["tasks"]
    tasks = [t for t in ordered_tasks(first) if first[t]["metric"] != "bits_per_byte"]
    if not tasks:
        return None
    plt = pyplot()
    models = list(evals)
    colours = model_colours(models)
    ncols = min(2, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.7 * nrows), dpi=110, squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        info = first[task]
        entries = [evals[m]["tasks"].get(task, {}) for m in models]
        values = [e.get("value", math.nan) for e in entries]
        errors = [e.get("stderr", 0.0) or 0.0 for e in entries]
        ax.bar(models, values, yerr=errors, capsize=4, color=[colours[m] for m in models], alpha=0.85)
        baseline = info.get("baseline", {}).get(info["metric"])
        if baseline is not None:
            ax.axhline(baseline, linestyle="--", color="black", linewidth=1, label=info.get("baseline_name", "chance"))
            ax.legend(fontsize=8, loc="lower right")
        origin = origin_of(info)
        where = "" if origin == "held_out" else f"\n{ORIGIN_LABELS[origin]}"
        ax.set_title(f"{task}{where}", fontsize=10)
        ax.set_ylabel(info["metric"], fontsize=9)
        ax.tick_params(labelsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    fig.suptitle("Task scores (± standard error; dashed: baseline)", fontsize=10)
    return figure_png(fig)


def bpb_png(evals: dict[str, dict[str, Any]]) -> bytes | None:
    """Domain and general bits-per-byte per model (lower is better): gain and forgetting at a glance."""
    kinds = [t for t in ("bpb_domain", "bpb_general") if all(t in e["tasks"] for e in evals.values())]
    if not kinds:
        return None
    plt = pyplot()
    models = list(evals)
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        xs = [j + (i - (len(kinds) - 1) / 2) * width for j in range(len(models))]
        entries = [evals[m]["tasks"][kind] for m in models]
        values = [e["value"] for e in entries]
        errors = [e.get("stderr", 0.0) or 0.0 for e in entries]
        bars = ax.bar(xs, values, width, yerr=errors, capsize=3, label=kind.removeprefix("bpb_"))
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(range(len(models)), models)
    ax.set_ylabel("bits per byte (lower is better)")
    ax.set_title("Held-out bits-per-byte: domain and general")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


def _md_cell(cell: Any) -> str:
    text = cell.text if isinstance(cell, Cell) else str(cell)
    return text.replace("|", "\\|")


def _html_cell(cell: Any) -> str:
    """A ``<td>``: numbers (and differences) right-aligned so their digits line up, words left-aligned."""
    text = cell.text if isinstance(cell, Cell) else str(cell)
    numeric = text[:1].isdigit() or (text[:1] in "+-" and text[1:2].isdigit())
    inner = cell.html if isinstance(cell, Cell) else html.escape(text)
    return f"<td class='num'>{inner}</td>" if numeric else f"<td>{inner}</td>"


def _md_body(body: Body) -> list[str]:
    if isinstance(body, str):
        return [body, ""]
    if isinstance(body, list):
        return [*(f"- {item}" for item in body), ""] if body else ["None.", ""]
    if isinstance(body, GroupedTable):
        header, spans = [], [label for label, span in body.groups for _ in range(span)]
        header = [f"{group}: {h}" if group else h for group, h in zip(spans, body.header, strict=True)]
        rows, note = body.rows, body.note
    else:
        (header, rows), note = body, ""
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return [*lines, "", *([note, ""] if note else [])]


def _html_body(body: Body) -> list[str]:
    if isinstance(body, str):
        return [f"<p>{html.escape(body)}</p>"]
    if isinstance(body, list):
        return (
            ["<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in body) + "</ul>"] if body else ["<p>None.</p>"]
        )
    parts = []
    if isinstance(body, GroupedTable):
        ident = f" id='{html.escape(body.element_id)}'" if body.element_id else ""
        parts.append(f"<div class='scroll'><table{ident}>")
        parts.append(
            "<tr>"
            + "".join(f"<th colspan='{span}' class='group'>{html.escape(label)}</th>" for label, span in body.groups)
            + "</tr>"
        )
        header, rows, note = body.header, body.rows, body.note
    else:
        parts.append("<div class='scroll'><table>")
        (header, rows), note = body, ""
    parts.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
    parts += ["<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in rows]
    parts.append("</table></div>")
    if note:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    return parts


def markdown(
    title: str,
    sections: list[tuple[str, Body]],
    images: Sequence[tuple[str, str, bytes]] = (),
    lead: Sequence[tuple[str, Body]] = (),
) -> str:
    """The report as Markdown: ``lead`` sections (verdict, warnings), then plots (linked PNG files), then details."""
    lines = [f"# {title}", ""]
    for heading, body in lead:
        lines += [f"## {heading}", "", *_md_body(body)]
    if images:
        lines += ["## Plots", ""]
        for heading, name, _ in images:
            lines += [f"### {heading}", "", f"![{heading}]({name})", ""]
    if lead or images:
        lines += ["# Details", ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", *_md_body(body)]
    return "\n".join(lines)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1150px;margin:1.5em auto;padding:0 1em;color:#222}"
    "h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;margin:.6em 0;font-size:.9em}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}td.num{text-align:right}"
    "th{background:#f4f4f4}th.group{background:#e8eef7;text-align:center}"
    ".scroll{overflow-x:auto}.note{font-size:.85em;color:#555}"
    "#verdict{font-size:1.05em}#verdict td{white-space:nowrap}"
    ".mark{font-weight:bold}.up{color:#1a7f37}.down{color:#c62828}.same{color:#777}"
    ".warnings li{color:#8a4b00}"
    ".plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:1em;align-items:start}"
    "figure{margin:0}figure img{width:100%;height:auto;border:1px solid #eee}figcaption{font-weight:bold}"
    "details summary{cursor:pointer;color:#555}"
)


def html_page(
    title: str,
    sections: list[tuple[str, Body]],
    images: Sequence[tuple[str, str, bytes]],
    lead: Sequence[tuple[str, Body]] = (),
) -> str:
    """One self-contained page: ``lead`` sections, then the plots side by side (base64 PNG), then the details."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for heading, body in lead:
        css = " class='warnings'" if isinstance(body, list) else ""
        parts.append(f"<section{css}><h2>{html.escape(heading)}</h2>")
        parts += [*_html_body(body), "</section>"]
    if images:
        parts.append("<h2>Plots</h2><div class='plots'>")
        for heading, name, png in images:
            data = base64.b64encode(png).decode()
            parts.append(
                f"<figure><figcaption>{html.escape(heading)}</figcaption>"
                f"<img alt='{html.escape(heading)}' data-file='{html.escape(name)}' "
                f"src='data:image/png;base64,{data}'></figure>"
            )
        parts.append("</div>")
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts += _html_body(body)
    parts.append("</body></html>")
    return "\n".join(parts)


def plan_png(
    points: list[dict[str, Any]],
    fitted: dict[str, dict[float, Any]],
    tokens: Any,
    measured: dict[str, tuple[float, float, float]] | None = None,
) -> bytes:
    """Proxy losses (dots) against the fitted D-CPT Law (lines), per domain share; the real cpt run as a star.

    ``measured`` maps kind -> (tokens, domain share, loss) of the real cpt run.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for ax, kind in zip(axes, ("domain", "general"), strict=True):
        for index, (share, curve) in enumerate(sorted(fitted[kind].items())):
            colour = f"C{index}"
            own = [p for p in points if p["domain_share"] == share and p["step"] > 0]
            ax.plot([p["tokens"] for p in own], [p[f"{kind}_loss"] for p in own], "o", color=colour)
            ax.plot(tokens, curve, "-", color=colour, label=f"domain share {share:.2f}")
        if measured and kind in measured:
            x, share, y = measured[kind]
            ax.plot([x], [y], "*", color="black", markersize=14, label=f"real cpt (share {share:.2f})")
        ax.set_xscale("log")
        ax.set_xlabel("training tokens")
        ax.set_ylabel(f"{kind} held-out loss (nats/token)")
        ax.set_title(f"D-CPT Law fit: {kind} loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return figure_png(fig)
