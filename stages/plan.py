"""Mixture planning: fit the D-CPT Law to small proxy CPT runs, then choose the replay ratio.

Instead of a grid search over replay ratios at full cost, the stage runs short proxy CPT runs (the
base model itself on small budgets, trained exactly as the recipe's cpt stage will be, with a
constant learning rate so every evaluation point is a fair token budget), logs general and domain
validation loss at several budgets, fits the D-CPT Law to each, measures the fit's held-out
prediction error (leave one ratio out, leave the largest budget out), and picks the ratio for the
recipe's objective at the cpt stage's token budget. The cpt stage takes that ratio unless the
recipe pins ``cpt.replay_ratio``.

Proxies reuse the base model rather than small models built from a config: on 2 CPU cores that
keeps the model size fixed (the A/N^alpha term folds into E), and it makes the law's prediction
directly checkable against the real cpt run at the chosen ratio.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from eval import laws
from stages.base import Params, StageContext, StageError, StageSpec, Wiring
from stages.lib import continual_pretraining as cpt_stage
from stages.lib.continual_pretraining import CptParams


class PlanParams(Params):
    domain_shares: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0])
    """Domain share of each proxy run (1 - replay ratio); four points span the useful range."""
    proxy_tokens: int = Field(16384, ge=1)
    """Training tokens per proxy run; each proxy costs about proxy_tokens / 115 s on 2 cores."""
    proxy_eval_every: int = Field(2, ge=1)
    """Steps between the loss points a proxy contributes to the fit."""
    objective: Literal["constrained", "limited_domain", "balanced"] = "constrained"
    """constrained: lowest domain loss with general loss at most max_general_rise above base;
    limited_domain: only domain_tokens exist; balanced: weighted relative losses."""
    max_general_rise: float = Field(0.02, ge=0)
    """constrained: allowed relative rise of general loss over the base model's."""
    domain_tokens: int | None = Field(None, ge=1)
    """limited_domain: domain tokens available."""
    domain_weight: float = Field(0.5, ge=0, le=1)
    """balanced: weight of the domain loss."""
    fit_starts: int = Field(64, ge=1)
    """L-BFGS starting points per fit."""
    cpt: CptParams = Field(default_factory=CptParams)
    """Filled from the recipe's cpt section: proxies train as the real run will."""

    @field_validator("domain_shares")
    @classmethod
    def _shares(cls, value: list[float]) -> list[float]:
        if len(value) < 3 or any(not 0 < s <= 1 for s in value) or len(set(value)) != len(value):
            raise ValueError(f"need at least 3 distinct shares in (0, 1], got {value}")
        return sorted(value)


def _proxy_folder(share: float) -> str:
    return f"domain_share_{share:.3f}"


def _proxy(ctx: StageContext, inputs: dict[str, Any], params: PlanParams, share: float) -> list[dict[str, Any]]:
    """One proxy run (resumable: a finished proxy's points are kept in its folder)."""
    folder = ctx.out_dir / "proxies" / _proxy_folder(share)
    done = folder / "points.json"
    if done.exists():
        return json.loads(done.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    proxy_params = params.cpt.model_copy(
        update={
            "replay_ratio": 1 - share,
            "max_tokens": params.proxy_tokens,
            "schedule": "constant",
            "eval_every": params.proxy_eval_every,
            "save_every": 10**9,
        }
    )
    trainer, _, _ = cpt_stage.train(folder, inputs["model"], Path(inputs["packed"]), proxy_params, ctx.log)
    tokens_per_step = proxy_params.batch_size * proxy_params.seq_len
    by_step: dict[int, dict[str, Any]] = {}
    for record in trainer.state.log_history:
        for kind in ("general", "domain"):
            if f"eval_{kind}_loss" in record:
                point = by_step.setdefault(record["step"], {"step": record["step"], "domain_share": share})
                point[f"{kind}_loss"] = record[f"eval_{kind}_loss"]
                point["tokens"] = record["step"] * tokens_per_step
    points = sorted(by_step.values(), key=lambda p: p["step"])
    done.write_text(json.dumps(points, indent=2) + "\n", encoding="utf-8")
    return points


def _fit_quality(kind: str, points: list[dict[str, Any]], starts: int) -> tuple[laws.Fit, dict[str, Any]]:
    """Fit one law (domain: r = domain share; general: r = general share) and its held-out errors."""
    n = np.ones(len(points))
    d = np.array([p["tokens"] for p in points], dtype=float)
    share = np.array([p["domain_share"] for p in points])
    r = laws.law_share(kind, share)
    loss = np.array([p[f"{kind}_loss"] for p in points])
    fit = laws.fit_dcpt(n, d, r, loss, starts=starts)
    quality: dict[str, Any] = {"huber": fit.objective, "r2": fit.r2, "mean_abs_rel_error": fit.mean_abs_rel_error}

    def held_out_error(mask: np.ndarray) -> float:
        partial = laws.fit_dcpt(n[~mask], d[~mask], r[~mask], loss[~mask], starts=starts)
        predicted = partial.predict(np.column_stack([n[mask], d[mask], r[mask]]))
        return float(np.mean(np.abs(predicted - loss[mask]) / loss[mask]))

    per_ratio = {f"{s:.3f}": held_out_error(np.isclose(share, s)) for s in np.unique(share)}
    quality["leave_one_ratio_out"] = per_ratio
    quality["leave_one_ratio_out_mean"] = float(np.mean(list(per_ratio.values())))
    quality["leave_largest_budget_out"] = held_out_error(np.isclose(d, d.max()))
    return fit, quality


def run(ctx: StageContext, inputs: dict[str, Any], params: PlanParams) -> dict[str, Any]:
    points: list[dict[str, Any]] = []
    for share in ctx.progress(params.domain_shares, desc="plan: proxy runs", unit="run"):
        points += _proxy(ctx, inputs, params, share)
    base = [p for p in points if p["step"] == 0]
    if not base:
        raise StageError("plan: proxies logged no step-0 evaluation")
    base_general = float(np.mean([p["general_loss"] for p in base]))
    base_domain = float(np.mean([p["domain_loss"] for p in base]))
    trained = [p for p in points if p["step"] > 0]
    if len({p["tokens"] for p in trained}) < 2:
        raise StageError("plan: need at least two budgets per proxy; lower plan.proxy_eval_every")

    domain_fit, domain_quality = _fit_quality("domain", trained, params.fit_starts)
    general_fit, general_quality = _fit_quality("general", trained, params.fit_starts)
    target = params.cpt.max_tokens
    chosen = laws.choose_ratio(
        domain_fit,
        general_fit,
        n=1.0,
        d=target,
        objective=params.objective,
        general_base_loss=base_general,
        max_general_rise=params.max_general_rise,
        domain_tokens=params.domain_tokens,
        domain_weight=params.domain_weight,
        domain_base_loss=base_domain,
    )
    result = {
        "objective": params.objective,
        "target_tokens": target,
        "base_loss": {"general": base_general, "domain": base_domain},
        "chosen": chosen,
        "fits": {
            "domain": {"params": laws.dcpt_params(domain_fit), "raw": domain_fit.params, "quality": domain_quality},
            "general": {"params": laws.dcpt_params(general_fit), "raw": general_fit.params, "quality": general_quality},
        },
        "points": points,
    }
    out = ctx.out_dir / "plan.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    ctx.log.info("plan: chose replay ratio %.3f (%s)", chosen["replay_ratio"], chosen)
    metrics = {
        "replay_ratio": chosen["replay_ratio"],
        "predicted_domain_loss": chosen["predicted_domain_loss"],
        "predicted_general_loss": chosen["predicted_general_loss"],
        "domain_leave_one_ratio_out": domain_quality["leave_one_ratio_out_mean"],
        "general_leave_one_ratio_out": general_quality["leave_one_ratio_out_mean"],
        "domain_leave_largest_budget_out": domain_quality["leave_largest_budget_out"],
        "general_leave_largest_budget_out": general_quality["leave_largest_budget_out"],
    }
    proxies = ctx.out_dir / "proxies"  # declared, with an index, so the report never parses folder names
    index = [{"domain_share": s, "curves": f"{_proxy_folder(s)}/curves.jsonl"} for s in params.domain_shares]
    (proxies / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return {"outputs": {"plan": out, "proxies": proxies}, "metrics": metrics}


SPEC = StageSpec(
    name="plan",
    version=3,
    params=PlanParams,
    inputs=("model", "packed"),
    wiring=Wiring(inputs={"model": "model.model", "packed": "pack.packed"}, with_section=True),
    accelerated=True,
    run=run,
    doc="Proxy CPT runs, D-CPT Law fits, and the replay ratio for the recipe's objective.",
    libraries=("torch", "transformers", "scipy", "numpy"),
)
