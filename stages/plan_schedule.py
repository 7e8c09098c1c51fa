"""Schedule planning: fit the CPT learning-dynamics law to two short runs, then choose cpt's peak rate and decay.

Wang et al. (2025) model a CPT loss curve as a function of two areas under the learning-rate schedule: S1,
the summed rates (how far training has gone), and S2, the annealing area (how much the rate has dropped).
Any schedule's curve then follows from its rates, so a few fitting runs price every candidate without
training it. The stage trains two runs on cpt's stream, at the mixture cpt will use, over ``fit_tokens``:
one at the largest candidate rate held constant (it spans the candidates' S1) and one with the recipe's own
schedule (its decay separates the S2 term). It fits the law to general and to domain held-out loss on both
runs at once, predicts the final losses of every candidate (peak rate x warmup-stable-decay length, plus the
recipe's own schedule) at cpt's budget, and picks one for the objective. The cpt stage trains with it.

``verify`` trains the chosen and the recipe's own schedule at the full budget and reports each one's
predicted against measured final losses: it costs two cpt runs, so it is off unless asked.

A stage of its own, rather than a mode of ``plan``: choosing a schedule needs no mixture grid, and a recipe
can have both (the ratio first, then the schedule at that ratio).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from eval import laws
from stages.base import Params, StageContext, StageError, StageSpec, Wiring
from stages.lib import continual_pretraining as cpt_stage
from stages.lib.continual_pretraining import CptParams


class PlanScheduleParams(Params):
    learning_rates: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0])
    """Candidate peak rates, as multiples of cpt.learning_rate: halving to quadrupling spans what CPT uses."""
    decay_fractions: list[float] = Field(default_factory=lambda: [0.2, 0.5, 1.0])
    """Candidate decay lengths of a warmup-stable-decay schedule, as shares of cpt's steps."""
    fit_tokens: int | None = Field(None, ge=1)
    """Training tokens of each fitting run (None: half of cpt.max_tokens)."""
    fit_eval_every: int = Field(1, ge=1)
    """Steps between the loss points each fitting run contributes."""
    objective: Literal["constrained", "balanced"] = "constrained"
    """constrained: lowest domain loss with general loss at most max_general_rise above base; balanced: weighted."""
    max_general_rise: float = Field(0.02, ge=0)
    """constrained: allowed relative rise of general loss over the base model's."""
    domain_weight: float = Field(0.5, ge=0, le=1)
    """balanced: weight of the relative domain loss."""
    verify: bool = False
    """Train the chosen and the recipe's own schedule at cpt's budget and compare the law with them (two cpt runs)."""
    cpt: CptParams = Field(default_factory=CptParams)
    """Filled from the recipe's cpt section: the runs train as the real run will."""

    def fit_budget(self, cpt: CptParams) -> int:
        """Training tokens of each fitting run: ``fit_tokens``, or half of cpt's budget."""
        return self.fit_tokens or cpt.max_tokens // 2

    @field_validator("learning_rates", "decay_fractions")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if not value or any(v <= 0 for v in value) or len(set(value)) != len(value):
            raise ValueError(f"need distinct positive values, got {value}")
        return sorted(value)

    @field_validator("decay_fractions")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(v > 1 for v in value):
            raise ValueError(f"decay fractions are shares of the steps, at most 1, got {value}")
        return value


def _candidates(params: PlanScheduleParams, cpt: CptParams) -> dict[str, CptParams]:
    """The recipe's own schedule, named ``recipe``, then every peak rate x decay length."""
    candidates = {"recipe": cpt}
    for multiple in params.learning_rates:
        for fraction in params.decay_fractions:
            name = f"{multiple:g}x peak, decay {fraction:g}"
            candidates[name] = cpt.model_copy(
                update={
                    "learning_rate": cpt.learning_rate * multiple,
                    "schedule": "warmup_stable_decay",
                    "decay_fraction": fraction,
                }
            )
    return candidates


def _train(ctx: StageContext, inputs: dict[str, Any], params: CptParams, folder: str) -> dict[str, Any]:
    """One run's evaluated losses by kind, and its rate per update (resumable, as ``measured_run`` is)."""
    out = ctx.out_dir / "runs" / folder
    points = cpt_stage.measured_run(out, inputs["model"], Path(inputs["packed"]), params, ctx.log)
    return {
        "steps": [p["step"] for p in points],
        "domain": [p["domain_loss"] for p in points],
        "general": [p["general_loss"] for p in points],
        "rates": cpt_stage.learning_rates(params),
        "logged_rates": _logged_rates(out),
    }


def _logged_rates(out: Path) -> dict[int, float]:
    """The rate the Trainer logged at each step (its curves file), to check the rates the law prices."""
    from stages.lib.jsonl import read_jsonl

    return {r["step"]: r["learning_rate"] for r in read_jsonl(out / "curves.jsonl") if "learning_rate" in r}


def _verify_label(name: str) -> str:
    """A verified schedule's label in folder and metric names: the recipe's own, or the chosen one."""
    return "recipe" if name == "recipe" else "chosen"


def run(ctx: StageContext, inputs: dict[str, Any], params: PlanScheduleParams) -> dict[str, Any]:
    cpt = cpt_stage.with_planned_ratio(params.cpt, inputs.get("plan"))  # the mixture cpt will train
    fit_tokens = params.fit_budget(cpt)
    fitting = {
        "constant": cpt.model_copy(
            update={
                "max_tokens": fit_tokens,
                "learning_rate": cpt.learning_rate * max(params.learning_rates),
                "schedule": "constant",
            }
        ),
        "recipe": cpt.model_copy(update={"max_tokens": fit_tokens}),
    }
    runs: dict[str, dict[str, Any]] = {}
    for name, run_params in ctx.progress(list(fitting.items()), desc="plan_schedule: fitting runs", unit="run"):
        runs[name] = _train(
            ctx, inputs, run_params.model_copy(update={"eval_every": params.fit_eval_every, "save_every": 10**9}), name
        )
    if any(len(r["steps"]) < 3 for r in runs.values()):
        raise StageError("plan_schedule: a fitting run logged fewer than 3 points; lower plan_schedule.fit_eval_every")
    scale = cpt.learning_rate  # S1 in steps at the recipe's peak rate: keeps the fit well scaled
    fits = {
        kind: laws.fit_schedule_runs([(r["rates"], r["steps"], r[kind]) for r in runs.values()], scale)
        for kind in ("domain", "general")
    }
    base = {kind: runs["constant"][kind][0] for kind in ("domain", "general")}  # step 0: the model before cpt
    candidates = _candidates(params, cpt)
    rates = {name: cpt_stage.learning_rates(p) for name, p in candidates.items()}
    chosen, predicted = laws.choose_schedule(
        fits["domain"],
        fits["general"],
        rates,
        scale,
        params.objective,
        general_base_loss=base["general"],
        domain_base_loss=base["domain"],
        max_general_rise=params.max_general_rise,
        domain_weight=params.domain_weight,
    )
    choice = candidates[chosen]
    result: dict[str, Any] = {
        "objective": params.objective,
        "target_tokens": cpt.max_tokens,
        "base_loss": base,
        "chosen": {
            "name": chosen,
            "learning_rate": choice.learning_rate,
            "schedule": choice.schedule,
            "decay_fraction": choice.decay_fraction,
            "predicted_domain_loss": predicted[chosen]["domain"],
            "predicted_general_loss": predicted[chosen]["general"],
        },
        "candidates": {
            name: {"learning_rate": p.learning_rate, "schedule": p.schedule, "decay_fraction": p.decay_fraction}
            | {f"predicted_{kind}_loss": predicted[name][kind] for kind in ("domain", "general")}
            for name, p in candidates.items()
        },
        "fits": {kind: {"params": fit.params, "fit_error": fit.mean_abs_rel_error} for kind, fit in fits.items()},
        "fitting_runs": runs,
        "lr_scale": scale,
    }
    ctx.log.info("plan_schedule: chose %s (%s)", chosen, result["chosen"])
    if params.verify:
        result["verify"] = {}
        for name in dict.fromkeys([chosen, "recipe"]):
            measured = _train(ctx, inputs, candidates[name], f"verify_{_verify_label(name)}")
            result["verify"][name] = {
                kind: {
                    "predicted": predicted[name][kind],
                    "measured": measured[kind][-1],
                    "error": predicted[name][kind] / measured[kind][-1] - 1,
                }
                for kind in ("domain", "general")
            }
    out = ctx.out_dir / "schedule.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    metrics = {
        "learning_rate": choice.learning_rate,
        "decay_fraction": choice.decay_fraction if choice.schedule == "warmup_stable_decay" else None,
        "predicted_domain_loss": predicted[chosen]["domain"],
        "predicted_general_loss": predicted[chosen]["general"],
        "domain_fit_error": fits["domain"].mean_abs_rel_error,
        "general_fit_error": fits["general"].mean_abs_rel_error,
    }
    summary = [
        f"chose '{chosen}' (peak rate {choice.learning_rate:.3g}): predicted final domain loss "
        f"{predicted[chosen]['domain']:.4f}, general {predicted[chosen]['general']:.4f}; the recipe's own "
        f"schedule: {predicted['recipe']['domain']:.4f}, {predicted['recipe']['general']:.4f}"
    ]
    if cpt.schedule == "constant":
        summary.append(
            "the recipe's schedule does not decay, so neither fitting run measured the annealing (S2) term: "
            "predictions for decaying candidates extrapolate it"
        )
    gain = 1 - predicted[chosen]["domain"] / predicted["recipe"]["domain"]
    if chosen != "recipe" and gain < fits["domain"].mean_abs_rel_error:
        summary.append(
            f"the predicted domain gain over the recipe's schedule, {100 * gain:.2f}%, is under the law's own fit "
            f"error ({100 * fits['domain'].mean_abs_rel_error:.2f}%): by this law the two are alike"
        )
    for name, checked in result.get("verify", {}).items():
        label = _verify_label(name)
        metrics |= {f"verify_{label}_{kind}_error": checked[kind]["error"] for kind in ("domain", "general")}
        summary.append(
            f"verified '{name}': final domain loss {checked['domain']['measured']:.4f} measured, "
            f"{checked['domain']['predicted']:.4f} predicted; general {checked['general']['measured']:.4f}, "
            f"{checked['general']['predicted']:.4f}"
        )
    metrics["summary"] = summary
    return {"outputs": {"schedule": out}, "metrics": metrics}


SPEC = StageSpec(
    name="plan_schedule",
    version=1,
    params=PlanScheduleParams,
    inputs=("model", "packed"),
    optional_inputs=("plan",),
    wiring=Wiring(inputs={"model": "model.model", "packed": "pack.packed", "plan": "plan.plan"}, with_section=True),
    accelerated=True,
    run=run,
    doc="Two fitting runs, the learning-dynamics law, and cpt's peak rate and decay for the objective.",
    libraries=("torch", "transformers", "scipy", "numpy"),
)
