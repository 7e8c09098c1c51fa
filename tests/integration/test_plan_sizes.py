"""The plan_sizes stage on tiny shapes: models built from configs, pre-trained from scratch, laws with an N term."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM

from eval import law_report
from pipeline.recipe import RecipeError, load_recipe
from pipeline.runner import Runner
from pipeline.store import Store
from stages.plan_sizes import _shape
from tests.conftest import tiny_recipe

SIZES = {
    "shapes": {"h16-l1": _shape(16, 1), "h32-l1": _shape(32, 1), "h32-l2": _shape(32, 2)},
    "domain_shares": [1.0],
    "tokens": 1024,
    "eval_every": 1,
    "fit_starts": 8,
}


def test_sizes_are_pre_trained_from_scratch_and_the_laws_say_what_a_budget_buys(tmp_path, tiny_model, general_jsonl):
    recipe = load_recipe(str(tiny_recipe(tmp_path / "sizes.yaml", tiny_model, general_jsonl, plan_sizes=SIZES)))
    assert recipe.params["plan_sizes"].cpt == recipe.params["cpt"]
    store = Store(tmp_path / "runs")
    decisions = Runner(recipe, store).run(until="plan_sizes")
    key = {d.node.name: d.key for d in decisions}
    folder = store.final_dir("plan_sizes", key["plan_sizes"])
    result = json.loads((folder / "sizes.json").read_text())
    # Each shape became a model with random weights; N leaves the (tied) embedding table out.
    for name, size in result["sizes"].items():
        model = AutoModelForCausalLM.from_pretrained(folder / "models" / name)
        assert model.config.hidden_size == SIZES["shapes"][name]["hidden_size"]
        body = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
        assert size["non_embedding"] == body and size["parameters"] == model.num_parameters()
    # One run per size and share: the recipe's own share (cpt.replay_ratio unset: 0.75 domain) was added.
    assert result["domain_shares"] == [0.75, 1.0]
    runs = {(p["size"], p["domain_share"]) for p in result["points"]}
    assert runs == {(name, share) for name in SIZES["shapes"] for share in (0.75, 1.0)}
    assert {p["step"] for p in result["points"]} == {0, 1, 2, 3, 4}  # 1024 tokens, 256 a step
    for name in ("dcpt_domain", "dcpt_general", "joint_nd_domain"):
        assert 0 <= result["fits"][name]["leave_largest_size_out"] < 10
    assert result["fits"]["joint_nd_domain"]["domain_share"] == 0.75
    largest = 6 * max(s["non_embedding"] for s in result["sizes"].values()) * SIZES["tokens"]
    assert [row["compute"] for row in result["compute_optimal"]] == pytest.approx(
        [largest, 10 * largest, 100 * largest]
    )
    for row in result["compute_optimal"]:
        assert row["d"] == pytest.approx(row["compute"] / (6 * row["n"]))
    headings = [heading for heading, _ in law_report.sizes_sections(result)]
    assert headings[2].startswith("Model-size plan: compute-optimal sizes from the joint N-D law")


def test_sizes_trained_on_domain_text_alone_fit_no_general_law(tmp_path, tiny_model, general_jsonl):
    """With every run at domain share 1 the general law has nothing to fit (its r is 0): it is left out, said why."""
    alone = {**SIZES, "domain_shares": [1.0], "tokens": 768}
    recipe_file = tiny_recipe(
        tmp_path / "alone.yaml", tiny_model, general_jsonl, plan_sizes=alone, cpt={"replay_ratio": 0.0}
    )
    store = Store(tmp_path / "runs")
    decisions = Runner(load_recipe(str(recipe_file)), store).run(until="plan_sizes")
    key = {d.node.name: d.key for d in decisions}
    result = json.loads((store.final_dir("plan_sizes", key["plan_sizes"]) / "sizes.json").read_text())
    assert set(result["fits"]) == {"dcpt_domain", "joint_nd_domain"} and set(result["not_fitted"]) == {"dcpt_general"}
    assert [heading for heading, _ in law_report.sizes_sections(result)][1].startswith("Model-size plan: law fits")


def test_sizes_need_three_shapes(tmp_path, tiny_model, general_jsonl):
    two = {"shapes": {"a": _shape(16, 1), "b": _shape(32, 1)}}
    recipe_file = tiny_recipe(tmp_path / "two.yaml", tiny_model, general_jsonl, plan_sizes=two)
    with pytest.raises(RecipeError, match=r"plan_sizes.shapes: Value error, need at least 3 model shapes"):
        load_recipe(str(recipe_file))
