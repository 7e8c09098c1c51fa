"""Instruction pairs and held-out task items built from a domain's documents.

SFT pairs come from training documents only, eval items from eval documents only, so no eval
item is ever trained on. Each builder returns both and the task's chance level, which the report
prints beside its score.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUESTION = "Which license is this excerpt from?"


@dataclass
class TaskData:
    name: str
    description: str
    sft_pairs: list[dict[str, Any]] = field(default_factory=list)
    """trl prompt-completion records in conversational form."""
    eval_items: list[dict[str, Any]] = field(default_factory=list)
    """``{"question", "choices", "answer"}`` multiple-choice items."""
    chance: float = 0.0


def _excerpt(text: str, words: int, rng: random.Random) -> str:
    tokens = re.sub(r"\s+", " ", text).strip().split(" ")
    if len(tokens) <= words:
        return " ".join(tokens)
    # Skip the opening words where they fit: a title line would make the task string matching.
    start = rng.randint(min(30, len(tokens) - words), len(tokens) - words)
    return " ".join(tokens[start : start + words])


def license_id(
    train_docs: list[dict[str, Any]],
    eval_docs: list[dict[str, Any]],
    seed: int,
    max_sft_pairs: int,
    max_eval_items: int,
    excerpt_words: int = 48,
    n_choices: int = 4,
) -> TaskData:
    """Legal: a license excerpt -> which license it is (SFT answer: name and SPDX id; eval: 4-way choice)."""
    rng = random.Random(seed)
    task = TaskData(
        name="license_id",
        description=f"{QUESTION} {n_choices}-way multiple choice among license names, excerpts from held-out licenses",
        chance=1.0 / n_choices,
    )
    for doc in rng.sample(train_docs, min(max_sft_pairs, len(train_docs))):
        excerpt = _excerpt(doc["text"], excerpt_words, rng)
        task.sft_pairs.append(
            {
                "prompt": [{"role": "user", "content": f"{QUESTION}\n\n{excerpt}"}],
                "completion": [
                    {"role": "assistant", "content": f"{doc['meta']['name']} (SPDX: {doc['meta']['spdx']})"}
                ],
                "source_id": doc["id"],
            }
        )
    all_names = sorted({d["meta"]["name"] for d in train_docs + eval_docs})
    for doc in rng.sample(eval_docs, min(max_eval_items, len(eval_docs))):
        answer = doc["meta"]["name"]
        distractors = rng.sample([n for n in all_names if n != answer], n_choices - 1)
        choices = [*distractors, answer]
        rng.shuffle(choices)
        excerpt = _excerpt(doc["text"], excerpt_words, rng)
        task.eval_items.append(
            {
                "question": f"{QUESTION}\n\n{excerpt}\n\nAnswer:",
                "choices": [f" {c}" for c in choices],
                "answer": choices.index(answer),
                "source_id": doc["id"],
            }
        )
    return task


BUILDERS: dict[str, Callable[..., TaskData]] = {"license_id": license_id}
