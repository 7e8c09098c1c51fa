"""The plan_schedule stage on a tiny model: two fitting runs, the learning-dynamics law, cpt on the chosen schedule."""

from __future__ import annotations

import json

import pytest

from eval import law_report
from pipeline.recipe import RecipeError, load_recipe
from pipeline.runner import Runner
from pipeline.store import Store
from stages.lib.continual_pretraining import learning_rates
from stages.lib.jsonl import read_jsonl
from tests.conftest import tiny_recipe

SCHEDULE = {"learning_rates": [0.5, 4.0], "decay_fractions": [0.5, 1.0], "fit_tokens": 1024, "verify": True}


def test_schedule_is_chosen_by_the_law_and_cpt_trains_with_it(tmp_path, tiny_model, general_jsonl):
    recipe_file = tiny_recipe(tmp_path / "scheduled.yaml", tiny_model, general_jsonl, plan_schedule=SCHEDULE)
    recipe = load_recipe(str(recipe_file))
    assert [n.name for n in recipe.nodes][:5] == ["model", "corpus", "pack", "plan_schedule", "cpt"]
    assert recipe.params["plan_schedule"].cpt == recipe.params["cpt"]  # its runs train as cpt will
    store = Store(tmp_path / "runs")
    runner = Runner(recipe, store)
    decisions = runner.run(until="cpt")
    key = {d.node.name: d.key for d in decisions}
    folder = store.final_dir("plan_schedule", key["plan_schedule"])
    schedule = json.loads((folder / "schedule.json").read_text())
    # The rates the law prices are the ones the Trainer used: the rate logged at step s is update s's.
    for run in schedule["fitting_runs"].values():
        logged = {int(step): rate for step, rate in run["logged_rates"].items()}
        assert sorted(logged) == list(range(1, len(run["rates"]) + 1))
        assert [logged[step] for step in sorted(logged)] == pytest.approx(run["rates"])
    assert schedule["fitting_runs"]["constant"]["rates"][-1] == pytest.approx(4.0 * 1e-3)  # 4x cpt's 1e-3
    assert len(schedule["candidates"]) == 1 + 2 * 2  # the recipe's own schedule, then 2 rates x 2 decays
    chosen = schedule["chosen"]
    assert chosen["name"] in schedule["candidates"]
    # cpt trained with the chosen schedule: the same run as verify's, so the same final losses.
    cpt = store.manifest("cpt", key["cpt"])
    taken = {name: chosen[name] for name in ("learning_rate", "schedule", "decay_fraction")}
    rates = learning_rates(recipe.params["cpt"].model_copy(update=taken))
    curves = read_jsonl(store.final_dir("cpt", key["cpt"]) / "curves.jsonl")
    assert [r["learning_rate"] for r in curves if "learning_rate" in r] == pytest.approx(rates)
    measured = schedule["verify"][chosen["name"]]
    for kind in ("domain", "general"):
        assert measured[kind]["measured"] == pytest.approx(cpt["metrics"][f"final_eval_{kind}_loss"], rel=1e-5)
        assert measured[kind]["error"] == pytest.approx(measured[kind]["predicted"] / measured[kind]["measured"] - 1)
    assert "recipe" in schedule["verify"]
    (_, (_, candidates)), (_, (_, verified)) = law_report.schedule_sections(schedule)
    assert [row[0] for row in candidates].count(f"{chosen['name']} (chosen)") == 1 and len(candidates) == 5
    assert len(verified) == 2 * len(schedule["verify"])


def test_schedule_fitting_runs_too_short_for_a_fit_are_refused_at_load(tmp_path, tiny_model, general_jsonl):
    recipe_file = tiny_recipe(tmp_path / "short.yaml", tiny_model, general_jsonl, plan_schedule={"fit_tokens": 512})
    with pytest.raises(RecipeError, match=r"plan_schedule.fit_tokens: 512 tokens make fewer than 3 loss points"):
        load_recipe(str(recipe_file))
