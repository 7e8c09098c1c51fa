"""The plan stage's cross-domain mode on a tiny model: other domains' plans plus this domain's early run.

The reference plans are written here from a known Cross-Domain D-CPT Law, each domain with its own (k1, k2);
this domain's early run and check proxy are real training runs of the tiny model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from eval import laws
from pipeline.recipe import load_recipe
from pipeline.runner import Runner
from pipeline.store import Store
from stages import plan as plan_stage
from stages import report as report_stage
from stages.base import StageContext, StageError
from tests.conftest import tiny_recipe

PLAN = {"domain_shares": [0.25, 0.5, 1.0], "proxy_tokens": 1024, "proxy_eval_every": 1, "fit_starts": 8}
TOKENS_PER_STEP = 4 * 64  # the tiny recipe's cpt.batch_size x cpt.seq_len
TRUTH = {
    "domain": np.array(
        [np.log(1.5), -30, 0, np.log(5.0), 0.3, 0.35, np.log(0.3), 0.4, np.log(0.02), np.log(0.5), 1, 1]
    ),
    "general": np.array(
        [np.log(1.6), -30, 0, np.log(3.0), 0.3, 0.35, np.log(0.15), 0.6, np.log(0.02), np.log(0.2), 1, 1]
    ),
}


def _reference_plan(k1: float, k2: float, tokens_per_step: int = TOKENS_PER_STEP) -> dict:
    """A finished plan whose proxies follow the true law at (k1, k2); its early points give (k1, k2) back."""
    points = []
    for share in PLAN["domain_shares"]:
        for step in range(5):
            point = {"step": step, "domain_share": share, "tokens": step * tokens_per_step}
            for kind, theta in TRUTH.items():
                x = np.array([[1.0, max(step, 0.5) * tokens_per_step, laws.law_share(kind, share), k1, k2]])
                point[f"{kind}_loss"] = float(laws._cross(theta, x)[0])
            if share == 1.0 and step in (2, 3):  # what the early run measures (step 1 is warmup): (k1, k2)
                point["domain_loss"] = k1 if step == 2 else k1 * (1 - k2)
            points.append(point)
    return {"points": points, "chosen": {}, "fits": {}}


@pytest.fixture(scope="module")
def packed_chain(tmp_path_factory, tiny_model, general_jsonl):
    folder = tmp_path_factory.mktemp("cross")
    recipe = load_recipe(str(tiny_recipe(folder / "cross.yaml", tiny_model, general_jsonl, plan=PLAN)))
    runner = Runner(recipe, Store(folder / "runs"))
    runner.run(until="pack")
    inputs = {"model": runner.outputs["model"]["model"], "packed": runner.outputs["pack"]["packed"]}
    return folder, inputs, recipe.params["plan"]


def _references(folder, coefficients, **kwargs) -> dict:
    inputs = {}
    for name, (k1, k2) in coefficients.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(_reference_plan(k1, k2, **kwargs)), encoding="utf-8")
        inputs[f"{plan_stage.REFERENCE_PREFIX}{name}"] = str(path)
    return inputs


def test_cross_domain_plan_runs_only_an_early_run_then_checks_its_prediction(packed_chain):
    folder, inputs, params = packed_chain
    coefficients = {"legal": (2.0, 0.03), "health": (2.6, 0.12), "finance": (3.4, 0.20)}
    out = folder / "plan_out"
    out.mkdir()
    result = plan_stage.run(StageContext(out), inputs | _references(folder, coefficients), params)
    plan = json.loads(result["outputs"]["plan"].read_text())
    cross = plan["cross_domain"]
    # Each reference's learnability is read from its proxy at the largest share, at the first two evaluations
    # after the warmup step (4 steps x warmup_fraction 0.1: one step, at rate 0).
    for name, (k1, k2) in coefficients.items():
        assert cross["references"][name] == pytest.approx({"k1": k1, "k2": k2})
    # No grid here: the early run stopped after three of the share-1.0 proxy's four steps ...
    early = [p for p in plan["points"] if p["domain_share"] == 1.0]
    assert [p["step"] for p in early] == [0, 1, 2, 3] and cross["early_run"]["tokens"] == 3 * TOKENS_PER_STEP
    assert cross["early_run"]["coefficient_steps"] == [2, 3]
    assert (cross["domain"]["k1"], 1 - cross["domain"]["k2"]) == pytest.approx(
        (early[2]["domain_loss"], early[3]["domain_loss"] / early[2]["domain_loss"])
    )
    # ... and one full proxy at the chosen share measured the law's prediction there.
    check = cross["check"]
    assert check["domain_share"] == round(plan["chosen"]["domain_share"], 3)
    assert check["domain"]["tokens"] == [step * TOKENS_PER_STEP for step in range(2, 5)]  # past warmup
    for kind in ("domain", "general"):
        measured, predicted = np.array(check[kind]["measured"]), np.array(check[kind]["predicted"])
        assert check[kind]["mean_abs_rel_error"] == pytest.approx(np.mean(np.abs(predicted - measured) / measured))
        # The law at this domain, in plain D-CPT form, is what the report plots.
        x = [1.0] * 3, check[kind]["tokens"], [laws.law_share(kind, check["domain_share"])] * 3
        assert np.allclose(laws.dcpt_loss(*x, plan["fits"][kind]["params"]), predicted)
        assert set(plan["fits"][kind]["quality"]["leave_one_domain_out"]) == set(coefficients)
    assert result["metrics"]["check_domain_error"] == check["domain"]["mean_abs_rel_error"]
    index = json.loads((out / "proxies" / "index.json").read_text())
    assert {entry["domain_share"] for entry in index} == {1.0, check["domain_share"]}
    cpt_metrics = {
        "general_token_share": 1 - check["domain_share"],
        "train_tokens": 2048,
        "final_eval_domain_loss": check["domain"]["measured"][-1],
        "final_eval_general_loss": check["general"]["measured"][-1],
    }
    headings = [heading for heading, _ in report_stage._plan_sections(plan, cpt_metrics)[0]]
    assert any(h.startswith("Plan: Cross-Domain D-CPT Law, fitted on 3 other domains") for h in headings)
    assert any(h.startswith("Plan: the law's prediction against one full proxy") for h in headings)


def test_cross_domain_plan_refuses_references_it_cannot_use(packed_chain):
    folder, inputs, params = packed_chain
    out = folder / "refused"
    out.mkdir()
    with pytest.raises(StageError, match="at least 2 other domains"):
        plan_stage.run(StageContext(out), inputs | _references(folder, {"legal": (2.0, 0.03)}), params)
    other_shape = _references(folder, {"health": (2.6, 0.12), "finance": (3.4, 0.2)}, tokens_per_step=512)
    with pytest.raises(StageError, match=r"plan@finance: its proxies trained \[512.0\] tokens per step, this plan 256"):
        plan_stage.run(StageContext(out), inputs | other_shape, params)
