"""What a recipe's sections must agree on across stages, and the values one stage takes from another.

Each stage's params check themselves; these rules span two stages (pack's block length is cpt's, the plan's
proxies train as cpt will), so they live beside the stages, and the engine applies them without naming any.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stages.base import Params

RECIPE_KEYS: dict[str, tuple[str, str, str]] = {
    "base_model": ("model", "name", "embedded:smollm2-135m-instruct, a hub id or a local path"),
    "sources": ("corpus", "sources", "list of text sources"),
    "instructions": ("corpus", "instructions", "your instruction pairs: JSONL files of prompt/completion or messages"),
    "evals": ("corpus", "evals", "your eval sets: JSONL files of multiple-choice or short-answer items"),
}
"""Top-level recipe keys that fill one stage's field: key -> (section, field, what it holds)."""

UNSWEEPABLE = {"cpt.seq_len": "the packed blocks are shared by every branch; sweep another param"}
"""Params a sweep may not vary, with the reason."""


def check(sections: Mapping[str, Params], raw: Mapping[str, Any], placed: set[str]) -> list[str]:
    """Problems across sections, each naming its dotted key; ``placed`` holds the stages the graph runs."""
    problems = []
    corpus, cpt, plan, pack = (sections.get(name) for name in ("corpus", "cpt", "plan", "pack"))
    schedule = sections.get("plan_schedule")
    if corpus is not None and "sft" in placed:
        missing = corpus.missing_sft_pairs()
        if missing:
            problems.append(f"corpus: {missing}")
    if corpus is not None and not corpus.sources:
        problems.append(
            "sources: empty; a recipe needs at least one 'domain' and one 'general' text source (top-level "
            "'sources:' or corpus.sources), e.g. [{name: docs, kind: domain, type: folder, path: docs/}, "
            "{name: replay, kind: general, type: python_docs}]"
        )
    if plan is not None and cpt is not None and plan.proxy_tokens < cpt.seq_len:
        problems.append(
            f"plan.proxy_tokens: {plan.proxy_tokens} is under one block of cpt.seq_len={cpt.seq_len}; "
            f"give each proxy {cpt.seq_len} tokens or more"
        )
    if schedule is not None and cpt is not None:
        step = cpt.seq_len * cpt.batch_size
        fit_tokens = schedule.fit_budget(cpt)
        if fit_tokens < 3 * step * schedule.fit_eval_every:
            problems.append(
                f"plan_schedule.fit_tokens: {fit_tokens} tokens make fewer than 3 loss points at "
                f"plan_schedule.fit_eval_every={schedule.fit_eval_every} (a step is cpt.seq_len x cpt.batch_size = "
                f"{step} tokens); give it {3 * step * schedule.fit_eval_every} or more"
            )
    if pack is not None and cpt is not None and "seq_len" in (raw.get("pack") or {}) and pack.seq_len != cpt.seq_len:
        problems.append(f"pack.seq_len: {pack.seq_len} differs from cpt.seq_len {cpt.seq_len}; set cpt.seq_len alone")
    return problems


def adjust(sections: dict[str, Params], stage_of: Mapping[str, str]) -> dict[str, Params]:
    """Fill the values one stage takes from another once the sections are valid; ``stage_of`` maps each section
    to its stage, so a recipe's own pack and plan nodes (``pack_health``) follow the recipe's cpt too."""
    adjusted = dict(sections)
    cpt = adjusted.get("cpt")
    if cpt is None:
        return adjusted
    for section, stage in stage_of.items():
        if stage == "pack" and section in adjusted:
            # One pack per (corpus, tokenizer, seq_len): cpt and the plan proxies train on the same blocks.
            adjusted[section] = adjusted[section].model_copy(update={"seq_len": cpt.seq_len})
        elif stage == "plan" and section in adjusted:
            # Proxies train exactly as the real cpt stage will, except for the ratio and the budget they vary.
            proxy_cpt = cpt.model_copy(update={"replay_ratio": None, "report_to": []})
            adjusted[section] = adjusted[section].model_copy(update={"cpt": proxy_cpt})
        elif stage in ("plan_schedule", "plan_sizes") and section in adjusted:
            # Their runs train as cpt will (ratio included), except for what each varies: rates and budget
            # (plan_schedule), models and budget (plan_sizes).
            adjusted[section] = adjusted[section].model_copy(update={"cpt": cpt.model_copy(update={"report_to": []})})
    return adjusted
