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

Cross-domain mode (Que et al. 2024, section 3.3), when the node's ``plan@<domain>`` inputs name finished plans
of other domains (same base model, proxy settings and cpt params): no grid here. One early run, the proxy at
the largest domain share stopped after its first two evaluations past warmup, measures this domain's
learnability (k1, k2: first loss, relative decline); the
Cross-Domain D-CPT Law, fitted on the other domains' proxies with each domain's own (k1, k2), predicts this
domain's laws, and the ratio is chosen from them. Its errors: leave one reference domain out, and one full
proxy of this domain at the chosen share (``check_proxy``), predicted against measured.
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
    check_proxy: bool | None = None
    """Cross-domain mode: train one full proxy at the chosen share to measure the law's prediction (None: yes;
    false saves that proxy's cost)."""

    KEYED_WHEN_SET = frozenset({"check_proxy"})

    @field_validator("domain_shares")
    @classmethod
    def _shares(cls, value: list[float]) -> list[float]:
        if len(value) < 3 or any(not 0 < s <= 1 for s in value) or len(set(value)) != len(value):
            raise ValueError(f"need at least 3 distinct shares in (0, 1], got {value}")
        return sorted(value)


REFERENCE_PREFIX = "plan@"
"""Inputs ``plan@<domain>``: finished plans of other domains, for the cross-domain mode."""


def _proxy_folder(share: float) -> str:
    return f"domain_share_{share:.3f}"


def _stop_after(steps: int) -> Any:
    """A Trainer callback that ends training after ``steps`` optimizer steps (that step's evaluation still
    runs): an early run is the first evaluations of a full proxy, the same stream and schedule, so it measures
    what a reference plan's proxy measured at those steps."""
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step >= steps:
                control.should_training_stop = True
            return control

    return StopAfter()


def _proxy(
    ctx: StageContext,
    inputs: dict[str, Any],
    params: PlanParams,
    share: float,
    folder_name: str | None = None,
    stop_after: int | None = None,
) -> list[dict[str, Any]]:
    """One proxy run (resumable: a finished proxy's points are kept in its folder); ``stop_after`` steps: an
    early run."""
    folder = ctx.out_dir / "proxies" / (folder_name or _proxy_folder(share))
    proxy_params = cpt_stage.constant_rate(params.cpt, share, params.proxy_tokens, params.proxy_eval_every)
    callbacks = [_stop_after(stop_after)] if stop_after else None
    points = cpt_stage.measured_run(folder, inputs["model"], Path(inputs["packed"]), proxy_params, ctx.log, callbacks)
    return [p | {"domain_share": share} for p in points]  # the share as given, not 1 - (1 - share)


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
        return laws.mean_abs_rel_error(predicted, loss[mask])

    per_ratio = {f"{s:.3f}": held_out_error(np.isclose(share, s)) for s in np.unique(share)}
    quality["leave_one_ratio_out"] = per_ratio
    quality["leave_one_ratio_out_mean"] = float(np.mean(list(per_ratio.values())))
    quality["leave_largest_budget_out"] = held_out_error(np.isclose(d, d.max()))
    return fit, quality


def _base_losses(points: list[dict[str, Any]]) -> tuple[float, float]:
    """(general, domain) loss of the base model: the proxies' step-0 evaluations."""
    base = [p for p in points if p["step"] == 0]
    if not base:
        raise StageError("plan: proxies logged no step-0 evaluation")
    return float(np.mean([p["general_loss"] for p in base])), float(np.mean([p["domain_loss"] for p in base]))


def _choose(domain_fit: laws.Fit, general_fit: laws.Fit, params: PlanParams, base: tuple[float, float]) -> dict:
    return laws.choose_ratio(
        domain_fit,
        general_fit,
        n=1.0,
        d=params.cpt.max_tokens,
        objective=params.objective,
        general_base_loss=base[0],
        max_general_rise=params.max_general_rise,
        domain_tokens=params.domain_tokens,
        domain_weight=params.domain_weight,
        domain_base_loss=base[1],
    )


def run(ctx: StageContext, inputs: dict[str, Any], params: PlanParams) -> dict[str, Any]:
    references = {
        name.removeprefix(REFERENCE_PREFIX): Path(path)
        for name, path in inputs.items()
        if name.startswith(REFERENCE_PREFIX)
    }
    if references:
        result, folders = _cross_domain(ctx, inputs, params, references)
        return _finish(ctx, result, folders)
    points: list[dict[str, Any]] = []
    for share in ctx.progress(params.domain_shares, desc="plan: proxy runs", unit="run"):
        points += _proxy(ctx, inputs, params, share)
    base_general, base_domain = _base_losses(points)
    trained = [p for p in points if p["step"] > 0]
    if len({p["tokens"] for p in trained}) < 2:
        raise StageError("plan: need at least two budgets per proxy; lower plan.proxy_eval_every")

    domain_fit, domain_quality = _fit_quality("domain", trained, params.fit_starts)
    general_fit, general_quality = _fit_quality("general", trained, params.fit_starts)
    chosen = _choose(domain_fit, general_fit, params, (base_general, base_domain))
    result = {
        "objective": params.objective,
        "target_tokens": params.cpt.max_tokens,
        "base_loss": {"general": base_general, "domain": base_domain},
        "chosen": chosen,
        "fits": {
            "domain": {"params": laws.dcpt_params(domain_fit), "raw": domain_fit.params, "quality": domain_quality},
            "general": {"params": laws.dcpt_params(general_fit), "raw": general_fit.params, "quality": general_quality},
        },
        "points": points,
    }
    return _finish(ctx, result, {share: _proxy_folder(share) for share in params.domain_shares})


def _early_coefficients(points: list[dict[str, Any]], share: float, steps: tuple[int, int], where: str) -> tuple:
    """(k1, k2) from the domain losses at ``steps`` (the first two evaluations after warmup) of the proxy at
    ``share``."""
    by_step = {p["step"]: p["domain_loss"] for p in points if np.isclose(p["domain_share"], share)}
    if any(step not in by_step for step in steps):
        raise StageError(
            f"{where}: no domain loss at steps {steps[0]} and {steps[1]} of a proxy at domain share {share:.3f}; a "
            "reference plan must share this plan's largest plan.domain_shares, plan.proxy_eval_every and "
            "plan.proxy_tokens"
        )
    return laws.early_run_coefficients(by_step[steps[0]], by_step[steps[1]])


def _warmup_steps(params: PlanParams) -> int:
    """Steps of a proxy's warmup, as the Trainer counts them: the evaluations up to here saw little or no
    training (the first update runs at rate 0), so they measure neither learnability nor a budget."""
    return cpt_stage.warmup_steps(params.cpt.model_copy(update={"max_tokens": params.proxy_tokens}))


def _cross_domain(
    ctx: StageContext, inputs: dict[str, Any], params: PlanParams, references: dict[str, Path]
) -> tuple[dict[str, Any], dict[float, str]]:
    """The cross-domain mode: the other domains' plans and this domain's early run predict its laws."""
    if len(references) < 2:
        raise StageError(
            f"plan: the cross-domain law needs finished plans of at least 2 other domains (3 or more predict "
            f"better), got {REFERENCE_PREFIX}{', '.join(references)}"
        )
    share, every, warmup = max(params.domain_shares), params.proxy_eval_every, _warmup_steps(params)
    first = (warmup // every + 1) * every
    early_steps = (first, first + every)
    tokens_per_step = params.cpt.batch_size * params.cpt.seq_len
    rows: dict[str, list[tuple[float, ...]]] = {"domain": [], "general": []}
    coefficients: dict[str, tuple[float, float]] = {}
    for name, path in sorted(references.items()):
        where = f"plan input {REFERENCE_PREFIX}{name}"
        reference = json.loads(Path(path).read_text(encoding="utf-8"))
        if "cross_domain" in reference:
            raise StageError(f"{where}: a cross-domain plan; a reference must be a plan measured on its own grid")
        steps = {p["tokens"] / p["step"] for p in reference["points"] if p["step"] > 0}
        if steps != {tokens_per_step}:
            raise StageError(
                f"{where}: its proxies trained {sorted(steps)} tokens per step, this plan {tokens_per_step} "
                "(cpt.batch_size x cpt.seq_len); references must train as this domain's proxies do"
            )
        k1, k2 = coefficients[name] = _early_coefficients(reference["points"], share, early_steps, where)
        for point in reference["points"]:
            if point["step"] > warmup:
                for kind in rows:
                    r = laws.law_share(kind, point["domain_share"])
                    rows[kind].append((1.0, point["tokens"], r, k1, k2, point[f"{kind}_loss"]))

    early_folder = f"early_run_share_{share:.3f}"
    early = _proxy(ctx, inputs, params, share, folder_name=early_folder, stop_after=early_steps[1])
    k1, k2 = _early_coefficients(early, share, early_steps, "plan: this domain's early run")
    base = _base_losses(early)
    fits, quality = {}, {}
    for kind, table in rows.items():
        data = np.array(table)
        fit = laws.fit_cross_domain(*data[:, :5].T, data[:, 5], starts=params.fit_starts)
        fits[kind] = fit
        held_out = {}
        for name, (rk1, rk2) in coefficients.items():  # leave one reference domain out
            mask = np.isclose(data[:, 3], rk1) & np.isclose(data[:, 4], rk2)
            partial = laws.fit_cross_domain(*data[~mask, :5].T, data[~mask, 5], starts=params.fit_starts)
            predicted = partial.predict(data[mask, :5])
            held_out[name] = laws.mean_abs_rel_error(predicted, data[mask, 5])
        quality[kind] = {
            "huber": fit.objective,
            "r2": fit.r2,
            "mean_abs_rel_error": fit.mean_abs_rel_error,
            "leave_one_domain_out": held_out,
            "leave_one_domain_out_mean": float(np.mean(list(held_out.values()))),
        }
    here = {kind: laws.at_domain(fits[kind], k1, k2) for kind in fits}
    chosen = _choose(here["domain"], here["general"], params, base)
    points, folders = list(early), {share: early_folder}
    cross: dict[str, Any] = {
        "references": {name: {"k1": c[0], "k2": c[1]} for name, c in coefficients.items()},
        "domain": {"k1": k1, "k2": k2},
        "early_run": {
            "domain_share": share,
            "steps": early_steps[1],
            "tokens": early_steps[1] * tokens_per_step,
            "coefficient_steps": list(early_steps),
        },
    }
    if params.check_proxy is not False:
        checked_share = round(chosen["domain_share"], 3)
        check_points = _proxy(ctx, inputs, params, checked_share)
        measured = [p for p in check_points if p["step"] > warmup]
        cross["check"] = {"domain_share": checked_share}
        for kind in ("domain", "general"):
            x = np.array([[1.0, p["tokens"], laws.law_share(kind, checked_share)] for p in measured])
            loss = np.array([p[f"{kind}_loss"] for p in measured])
            predicted = here[kind].predict(x)
            cross["check"][kind] = {
                "tokens": [p["tokens"] for p in measured],
                "measured": loss.tolist(),
                "predicted": predicted.tolist(),
                "mean_abs_rel_error": laws.mean_abs_rel_error(predicted, loss),
                "final_error": float((predicted[-1] - loss[-1]) / loss[-1]),
            }
        points += [p for p in check_points if p["step"] > 0]
        folders[checked_share] = _proxy_folder(checked_share)
    result = {
        "objective": params.objective,
        "target_tokens": params.cpt.max_tokens,
        "base_loss": {"general": base[0], "domain": base[1]},
        "chosen": chosen,
        "fits": {
            kind: {
                "params": laws.cross_domain_params(fits[kind], k1, k2),
                "raw": fits[kind].params,
                "quality": quality[kind],
            }
            for kind in fits
        },
        "points": points,
        "cross_domain": cross,
    }
    return result, folders


def _finish(ctx: StageContext, result: dict[str, Any], folders: dict[float, str]) -> dict[str, Any]:
    """Write plan.json and the proxies' index (domain share -> folder of that proxy's curves); the metrics."""
    out = ctx.out_dir / "plan.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    chosen = result["chosen"]
    ctx.log.info("plan: chose replay ratio %.3f (%s)", chosen["replay_ratio"], chosen)
    metrics = {
        "summary": [
            f"chose replay ratio {chosen['replay_ratio']:.2f} ({result['objective']}): predicted domain loss "
            f"{chosen['predicted_domain_loss']:.4f}, general {chosen['predicted_general_loss']:.4f}"
        ],
        "replay_ratio": chosen["replay_ratio"],
        "predicted_domain_loss": chosen["predicted_domain_loss"],
        "predicted_general_loss": chosen["predicted_general_loss"],
    }
    for kind in ("domain", "general"):
        quality = result["fits"][kind]["quality"]
        for name in ("leave_one_ratio_out_mean", "leave_largest_budget_out", "leave_one_domain_out_mean"):
            if name in quality:
                metrics[f"{kind}_{name.removesuffix('_mean')}"] = quality[name]
    check = result.get("cross_domain", {}).get("check")
    if check:
        metrics |= {f"check_{kind}_error": check[kind]["mean_abs_rel_error"] for kind in ("domain", "general")}
        metrics["summary"].append(
            f"the law against a proxy at domain share {check['domain_share']:.2f}: mean error domain "
            f"{100 * check['domain']['mean_abs_rel_error']:.2f}%, "
            f"general {100 * check['general']['mean_abs_rel_error']:.2f}%"
        )
    proxies = ctx.out_dir / "proxies"  # declared, with an index, so the report never parses folder names
    index = [{"domain_share": share, "curves": f"{folder}/curves.jsonl"} for share, folder in folders.items()]
    (proxies / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return {"outputs": {"plan": out, "proxies": proxies}, "metrics": metrics}


SPEC = StageSpec(
    name="plan",
    version=3,
    params=PlanParams,
    inputs=("model", "packed"),
    input_prefixes=(REFERENCE_PREFIX,),
    wiring=Wiring(inputs={"model": "model.model", "packed": "pack.packed"}, with_section=True),
    accelerated=True,
    run=run,
    doc="Proxy CPT runs (or other domains' plans and an early run), D-CPT Law fits, the replay ratio.",
    libraries=("torch", "transformers", "scipy", "numpy"),
)
