"""Sweep branches side by side: which branch's models gained most in the domain for the least forgetting.

Plain data in (each model's eval summary keyed by a label such as ``cpt replay_ratio-0.1``, each branch's
cpt curves), PNG bytes out; the tables come from ``eval.report`` so a branch reads like a model there.
"""

from __future__ import annotations

from typing import Any

from eval.report import figure_png, pyplot


def gain_and_forgetting(evals: dict[str, dict[str, Any]], baseline: str = "base") -> dict[str, tuple[float, float]]:
    """Per model: (domain gain, general forgetting) in bits per byte against the baseline model."""
    base = evals[baseline]["tasks"]
    points = {}
    for label, summary in evals.items():
        tasks = summary["tasks"]
        if label == baseline or "bpb_domain" not in tasks or "bpb_general" not in tasks:
            continue
        gain = base["bpb_domain"]["value"] - tasks["bpb_domain"]["value"]
        points[label] = (gain, tasks["bpb_general"]["value"] - base["bpb_general"]["value"])
    return points


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Models no other beats on both axes (more domain gain and no more forgetting, or as much gain and
    less forgetting): the choices worth making; the rest are dominated."""
    front = []
    for label, (gain, forgetting) in points.items():
        dominated = any(
            (g >= gain and f <= forgetting) and (g > gain or f < forgetting)
            for other, (g, f) in points.items()
            if other != label
        )
        if not dominated:
            front.append(label)
    return front


def pareto_png(points: dict[str, tuple[float, float]], front: list[str], baseline: str = "base") -> bytes | None:
    """Domain gain (x, right is better) against general forgetting (y, down is better), the front joined:
    ``points`` from ``gain_and_forgetting``, ``front`` from ``pareto_front``."""
    if not points:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=110)
    for label, (gain, forgetting) in points.items():
        on_front = label in front
        ax.scatter(gain, forgetting, s=50 if on_front else 30, color="C2" if on_front else "C7", zorder=3)
        ax.annotate(label, (gain, forgetting), fontsize=7, xytext=(4, 3), textcoords="offset points")
    line = sorted(points[label] for label in front)
    ax.plot([p[0] for p in line], [p[1] for p in line], color="C2", linewidth=1, label="Pareto front")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"domain gain (bits/byte drop against {baseline}, right is better)")
    ax.set_ylabel("general forgetting (bits/byte rise, down is better)")
    ax.set_title("Branches: domain gain against general forgetting")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


def branch_curves_png(curves: dict[str, list[dict[str, Any]]]) -> bytes | None:
    """Held-out domain and general loss against training tokens, one colour per branch."""
    if not curves:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for ax, kind in zip(axes, ("domain", "general"), strict=True):
        for i, (branch, history) in enumerate(curves.items()):
            key = f"eval_{kind}_loss"
            points = [(r["step"], r[key]) for r in history if key in r and "step" in r]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", color=f"C{i}", label=branch)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("held-out cross-entropy (nats/token)")
        ax.set_title(f"{kind} held-out loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return figure_png(fig)
