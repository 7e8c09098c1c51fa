"""Render the run report: what each model gained in the domain and lost in general ability.

Input is plain data (eval summaries, CPT curves, corpus stats); output is Markdown and one
self-contained HTML page (the plot is embedded as base64 PNG), so the report can be mailed or
attached to a model card without its run directory.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

Table = tuple[list[str], list[list[str]]]


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _task_header(task: str, info: dict[str, Any]) -> str:
    if info["metric"] == "bits_per_byte":
        return f"{task} (bits/byte, lower better)"
    baseline = info.get("baseline", {}).get(info["metric"])
    versus = f"{info.get('baseline_name', 'chance')} {_fmt(baseline, 2)}, " if baseline is not None else ""
    return f"{info.get('kind', 'domain')} {task} {info['metric']} ({versus}n={info.get('items', '?')})"


def main_table(evals: dict[str, dict[str, Any]]) -> Table:
    """Model x metric: bits-per-byte (lower is better) and task scores beside their baseline (chance or copy)."""
    first = next(iter(evals.values()))["tasks"]
    tasks = list(first)
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
    for task, info in base.items():
        if info["metric"] != "bits_per_byte":
            header.append(f"{info.get('kind', 'domain')} {task} {info['metric']} change (+ is better)")
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
        for task, info in base.items():
            if info["metric"] != "bits_per_byte":
                row.append(f"{tasks[task]['value'] - info['value']:+.3f}")
        rows.append(row)
    return header, rows


def corpus_table(stats: dict[str, Any]) -> Table:
    """Per source and split: documents and megabytes kept; per source: filters, drops by reason."""
    header = ["source", "kind", "license", "split", "documents", "MB", "filters", "dropped (reason: documents)"]
    rows = []
    for name, entry in stats["sources"].items():
        dropped = ", ".join(f"{k}: {v}" for k, v in sorted(entry["dropped"].items())) or "none"
        if entry.get("boilerplate_lines_removed"):
            dropped += f"; boilerplate lines removed: {entry['boilerplate_lines_removed']}"
        filters = ", ".join(entry.get("filters", [])) or "none"
        for split, counts in sorted(entry.get("splits", {}).items()):
            size = f"{counts.get('bytes', 0) / 1e6:.2f}"
            rows.append(
                [name, entry["kind"], entry["license"], split, str(counts["documents"]), size, filters, dropped]
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


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display here or in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    """A finished figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    _pyplot().close(fig)
    return buffer.getvalue()


def curves_png(history: list[dict[str, Any]], law_fits: dict[str, dict[str, Any]] | None = None) -> bytes:
    """Training loss and held-out general/domain loss against step, with fitted law curves dashed."""
    plt = _pyplot()
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
    return _png(fig)


def markdown(title: str, sections: list[tuple[str, Table | str]]) -> str:
    lines = [f"# {title}", ""]
    for heading, body in sections:
        lines += [f"## {heading}", ""]
        if isinstance(body, str):
            lines += [body, ""]
            continue
        header, rows = body
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def html_page(title: str, sections: list[tuple[str, Table | str]], images: list[tuple[str, str, bytes]]) -> str:
    """One self-contained page: tables, then each (heading, file name, PNG) embedded as base64."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(body, str):
            parts.append(f"<p>{html.escape(body)}</p>")
            continue
        header, rows = body
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    for heading, _, png in images:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(f"<img alt='{html.escape(heading)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
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
    plt = _pyplot()
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
    return _png(fig)
