"""Model-size planning: pre-train small models of several sizes from scratch, fit laws with an N term, and say
which model and data sizes a compute budget should buy.

The plan stage keeps the model fixed (its proxies are the base model). This stage builds models of 3-4 shapes
from configs (random weights, the base model's tokenizer) and pre-trains each on the recipe's packed stream at
each domain share, with a constant rate (every evaluation is a fair budget). It fits

- the D-CPT Law with its A/N^alpha term, to domain and to general loss over (N, D, r);
- the joint N-D law L = E + A/N^alpha + B/(N^gamma D^beta') (Chinchilla with a size-dependent data term, as in
  the cross-lingual CPT law) to domain loss at the recipe's own share;

checks each by fitting the smaller sizes and predicting the largest, and prints the compute-optimal N and
D = C / 6N the joint law gives for a few compute budgets. N counts parameters without the embedding tables:
with a 49k-token vocabulary they are most of a tiny model's weights, and Kaplan et al. found laws at small
sizes follow the rest. C = 6 N D counts the same N, so the embedding's cost is outside these budgets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from eval import laws
from stages.base import Params, StageContext, StageError, StageSpec, Wiring
from stages.lib import continual_pretraining as cpt_stage
from stages.lib.continual_pretraining import CptParams
from stages.lib.modeling import build_from_config, load_tokenizer


def _shape(hidden: int, layers: int) -> dict[str, int]:
    return {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": max(1, hidden // 32),
        "num_key_value_heads": max(1, hidden // 32),
        "intermediate_size": 4 * hidden,
        "tie_word_embeddings": True,
    }


class PlanSizesParams(Params):
    shapes: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {
            "h32-l2": _shape(32, 2),
            "h64-l3": _shape(64, 3),
            "h96-l4": _shape(96, 4),
            "h128-l4": _shape(128, 4),
        }
    )
    """Model configs (Llama keys), smallest first: 33k to 1.05M parameters without embeddings, a 32x span."""
    domain_shares: list[float] = Field(default_factory=lambda: [0.5, 1.0])
    """Domain share of each run's stream; the recipe's own share (1 - cpt.replay_ratio) is always added."""
    tokens: int = Field(65536, ge=1)
    """Training tokens per run; the loss is logged along the way, so one run gives several budgets."""
    eval_every: int = Field(2, ge=1)
    """Steps between the loss points each run contributes."""
    compute_budgets: list[float] | None = None
    """FLOPs (6 N D) to size a model for; None: 1x, 10x and 100x the largest run's."""
    fit_starts: int = Field(64, ge=1)
    """L-BFGS starting points per fit."""
    cpt: CptParams = Field(default_factory=CptParams)
    """Filled from the recipe's cpt section: the runs train as cpt does (rate, blocks, batch), at a constant rate."""

    @field_validator("shapes")
    @classmethod
    def _sizes(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if len(value) < 3:
            raise ValueError(f"need at least 3 model shapes to fit an N term, got {len(value)}: {sorted(value)}")
        return value

    @field_validator("domain_shares")
    @classmethod
    def _shares(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < s <= 1 for s in value) or len(set(value)) != len(value):
            raise ValueError(f"need distinct shares in (0, 1], got {value}")
        return sorted(value)


def _run(
    ctx: StageContext, inputs: dict[str, Any], params: PlanSizesParams, name: str, model: Path, share: float
) -> list[dict[str, Any]]:
    """One pre-training run (resumable: a finished run's points are kept in its folder)."""
    run_params = cpt_stage.constant_rate(params.cpt, share, params.tokens, params.eval_every)
    folder = ctx.out_dir / "runs" / f"{name}_share_{share:.3f}"
    points = cpt_stage.measured_run(folder, str(model), Path(inputs["packed"]), run_params, ctx.log)
    return [p | {"size": name, "domain_share": share} for p in points]


def _held_out_largest(fit_fn: Any, x: np.ndarray, loss: np.ndarray) -> float:
    """Mean relative error on the largest size's points of a fit on the smaller sizes (x's first column is N)."""
    largest = np.isclose(x[:, 0], x[:, 0].max())
    partial = fit_fn(x[~largest], loss[~largest])
    return laws.mean_abs_rel_error(partial.predict(x[largest]), loss[largest])


def run(ctx: StageContext, inputs: dict[str, Any], params: PlanSizesParams) -> dict[str, Any]:
    tokenizer = load_tokenizer(inputs["model"], params.cpt.trust_remote_code)
    own_share = 1 - (cpt_stage.DEFAULT_REPLAY_RATIO if params.cpt.replay_ratio is None else params.cpt.replay_ratio)
    if own_share <= 0:
        raise StageError("plan_sizes: cpt.replay_ratio is 1 (no domain tokens); the laws need a domain share above 0")
    shares = sorted({*params.domain_shares, round(own_share, 6)})
    sizes: dict[str, dict[str, Any]] = {}
    for name, shape in params.shapes.items():
        folder = ctx.out_dir / "models" / name
        counts_file = folder / "counts.json"
        if not counts_file.exists():
            try:
                counts = build_from_config(shape, tokenizer, folder)
            except ValueError as exc:
                raise StageError(f"plan_sizes.shapes.{name}: {exc}") from exc
            counts_file.write_text(json.dumps(counts) + "\n", encoding="utf-8")
        sizes[name] = {"shape": shape, **json.loads(counts_file.read_text(encoding="utf-8"))}
    if len({s["non_embedding"] for s in sizes.values()}) < 3:
        raise StageError("plan_sizes.shapes: need at least 3 distinct sizes (parameters without embeddings)")
    points: list[dict[str, Any]] = []
    runs = [(name, share) for name in sizes for share in shares]
    for name, share in ctx.progress(runs, desc="plan_sizes: pre-training runs", unit="run"):
        points += _run(ctx, inputs, params, name, ctx.out_dir / "models" / name, share)
    trained = [p for p in points if p["step"] > 0]
    if len({p["tokens"] for p in trained}) < 2:
        raise StageError("plan_sizes: need at least two budgets per run; lower plan_sizes.eval_every")
    n = np.array([sizes[p["size"]]["non_embedding"] for p in trained], dtype=float)
    d = np.array([p["tokens"] for p in trained], dtype=float)
    share = np.array([p["domain_share"] for p in trained])
    fits: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for kind in ("domain", "general"):
        x = np.column_stack([n, d, laws.law_share(kind, share)])
        loss = np.array([p[f"{kind}_loss"] for p in trained])
        keep = x[:, 2] > 0  # general loss at domain share 1: r_g = 0, outside the law's r^eta term
        if not keep.any():
            skipped[f"dcpt_{kind}"] = "every run trained on domain text alone (general share 0): no general law"
            continue
        x, loss = x[keep], loss[keep]
        fit = laws.fit_dcpt(*x.T, loss, starts=params.fit_starts)
        held = _held_out_largest(lambda xs, ys: laws.fit_dcpt(*xs.T, ys, starts=params.fit_starts), x, loss)
        fits[f"dcpt_{kind}"] = {
            "params": laws.dcpt_params(fit),
            "r2": fit.r2,
            "fit_error": fit.mean_abs_rel_error,
            "leave_largest_size_out": held,
        }
    at_own = np.isclose(share, own_share)
    x = np.column_stack([n[at_own], d[at_own]])
    loss = np.array([p["domain_loss"] for p in trained])[at_own]
    joint = laws.fit_joint_nd(x[:, 0], x[:, 1], loss, starts=params.fit_starts)
    held = _held_out_largest(
        lambda xs, ys: laws.fit_joint_nd(xs[:, 0], xs[:, 1], ys, starts=params.fit_starts), x, loss
    )
    plain = laws.joint_nd_params(joint)
    exponents = laws.cross_lingual_allocation(plain["alpha"], plain["beta_prime"], plain["gamma"])
    fits["joint_nd_domain"] = {
        "params": plain,
        "r2": joint.r2,
        "fit_error": joint.mean_abs_rel_error,
        "leave_largest_size_out": held,
        "domain_share": own_share,
        "n_opt_exponent": exponents[0],
        "d_opt_exponent": exponents[1],
    }
    largest_run = 6 * max(s["non_embedding"] for s in sizes.values()) * params.tokens
    budgets = params.compute_budgets or [largest_run, 10 * largest_run, 100 * largest_run]
    optimal = [laws.compute_optimal(joint, c) for c in budgets]
    summary = [
        f"at {row['compute']:.3g} FLOPs the joint law's best model has {row['n']:.3g} parameters without "
        f"embeddings, trained on {row['d']:.3g} tokens (predicted domain loss {row['loss']:.4f})"
        for row in optimal
    ]
    summary.append(
        f"the joint law predicts the largest size from the smaller ones within "
        f"{100 * fits['joint_nd_domain']['leave_largest_size_out']:.2f}% (mean over its points)"
    )
    for line in summary:
        ctx.log.info("plan_sizes: %s", line)
    result = {
        "sizes": sizes,
        "domain_shares": shares,
        "fits": fits,
        "not_fitted": skipped,
        "compute_optimal": optimal,
        "points": points,
    }
    out = ctx.out_dir / "sizes.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    metrics = {f"{name}_leave_largest_size_out": fit["leave_largest_size_out"] for name, fit in fits.items()} | {
        f"{name}_fit_error": fit["fit_error"] for name, fit in fits.items()
    }
    metrics |= {"compute_optimal": optimal, "n_opt_exponent": exponents[0], "summary": summary}
    return {"outputs": {"sizes": out}, "metrics": metrics}


SPEC = StageSpec(
    name="plan_sizes",
    version=1,
    params=PlanSizesParams,
    inputs=("model", "packed"),
    wiring=Wiring(inputs={"model": "model.model", "packed": "pack.packed"}, with_section=True),
    accelerated=True,
    run=run,
    doc="Small models of several sizes pre-trained from scratch, laws with an N term, compute-optimal sizes.",
    libraries=("torch", "transformers", "scipy", "numpy"),
)
