"""Report tables of the schedule and model-size plans: what each law chose, and how its predictions held up."""

from __future__ import annotations

from typing import Any

Table = tuple[list[str], list[list[str]]]


def schedule_sections(schedule: dict[str, Any]) -> list[tuple[str, Any]]:
    """The candidates with their predicted final losses, the choice, and each verified schedule's errors."""
    chosen = schedule["chosen"]["name"]
    rows = [
        [
            f"{name} (chosen)" if name == chosen else name,
            f"{c['learning_rate']:.3g}",
            c["schedule"] + (f" ({c['decay_fraction']:g})" if c["schedule"] == "warmup_stable_decay" else ""),
            f"{c['predicted_domain_loss']:.4f}",
            f"{c['predicted_general_loss']:.4f}",
        ]
        for name, c in schedule["candidates"].items()
    ]
    base = schedule["base_loss"]
    sections: list[tuple[str, Any]] = [
        (
            f"Schedule plan (learning-dynamics law, objective '{schedule['objective']}'): final losses predicted at "
            f"{schedule['target_tokens']} tokens from two fitting runs (base: domain "
            f"{base['domain']:.4f}, general {base['general']:.4f})",
            (["schedule", "peak rate", "shape (decay share)", "domain loss", "general loss"], rows),
        )
    ]
    checked = []
    for name, result in schedule.get("verify", {}).items():
        for kind in ("domain", "general"):
            r = result[kind]
            checked.append([name, kind, f"{r['predicted']:.4f}", f"{r['measured']:.4f}", f"{100 * r['error']:+.2f}%"])
    if checked:
        sections.append(
            (
                "Schedule plan: predicted against measured final losses (each verified schedule trained in full)",
                (["schedule", "loss", "predicted", "measured", "relative error"], checked),
            )
        )
    return sections


def sizes_sections(sizes: dict[str, Any]) -> list[tuple[str, Any]]:
    """The sizes trained, each law's fit and held-out error, and the compute-optimal sizes."""
    size_rows = [[name, f"{s['non_embedding']:,}", f"{s['parameters']:,}"] for name, s in sizes["sizes"].items()]
    labels = {
        "dcpt_domain": "D-CPT Law with N, domain loss",
        "dcpt_general": "D-CPT Law with N, general loss",
        "joint_nd_domain": "joint N-D law, domain loss",
    }
    fit_rows = [
        [
            labels.get(name, name),
            f"{100 * fit['fit_error']:.2f}%",
            f"{fit['r2']:.4f}",
            f"{100 * fit['leave_largest_size_out']:.2f}%",
        ]
        for name, fit in sizes["fits"].items()
    ]
    joint = sizes["fits"]["joint_nd_domain"]["params"]
    optimal_rows = [
        [f"{row['compute']:.3g}", f"{row['n']:.3g}", f"{row['d']:.3g}", f"{row['loss']:.4f}"]
        for row in sizes["compute_optimal"]
    ]
    return [
        (
            "Model-size plan: models pre-trained from scratch",
            (["model", "parameters without embeddings", "all"], size_rows),
        ),
        (
            "Model-size plan: law fits (the last column: fitted on the smaller sizes, predicting the largest)",
            (["law", "fit error", "R²", "leave-largest-size-out error"], fit_rows),
        ),
        (
            f"Model-size plan: compute-optimal sizes from the joint N-D law (alpha {joint['alpha']:.3f}, beta' "
            f"{joint['beta_prime']:.3f}, gamma {joint['gamma']:.3f}; C = 6 N D, N without embeddings)",
            (["compute (FLOPs)", "model size N", "tokens D", "predicted domain loss"], optimal_rows),
        ),
    ]
