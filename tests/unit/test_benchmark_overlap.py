"""lm-eval tasks the corpus never saw (benchmarks, the user's task folders) checked against training text.

Real lm-eval task loading on a local JSON task folder; the training corpus is written by the test, with
items planted in a cpt document and in an SFT pair.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stages.evaluate import item_texts, training_overlap

QUESTIONS = [
    "Which clause of the lease lets the tenant end it early after the landlord fails to repair the roof?",
    "What notice period does the agreement require before the owner may enter the rented premises for inspection?",
    "Under which condition may the deposit be kept by the landlord once the tenancy has come to its end?",
    "Who pays for water and heating when the contract is silent about the running costs of the building?",
    "Is it true?",  # under 13 words: cannot be checked by 13-grams
]
ANSWERS = ["section nine", "two days", "unpaid rent", "the tenant", "yes"]


def _task_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir()
    for name, numbers in (("quiz_a", range(3)), ("quiz_b", range(3, 5))):
        data = tmp_path / f"{name}.jsonl"
        with data.open("w", encoding="utf-8") as fh:
            for number in numbers:
                choices = [ANSWERS[number], "none of these", "the court", "a notary"]
                fh.write(json.dumps({"question": QUESTIONS[number], "choices": choices, "answer": ANSWERS[number]}))
                fh.write("\n")
        definition = {
            "task": name,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(data)}},
            "test_split": "test",
            "output_type": "multiple_choice",
            "doc_to_text": "{{question}}\nAnswer:",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "{{choices.index(answer)}}",
            "metric_list": [{"metric": "acc"}],
        }
        (folder / f"{name}.yaml").write_text(json.dumps(definition), encoding="utf-8")  # JSON is YAML
    (folder / "quiz_group.yaml").write_text(json.dumps({"group": "quiz_all", "task": ["quiz_a", "quiz_b"]}))
    return folder


def _corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    filler = "The parties agree that this lease is governed by the law of the state where the premises lie. "
    with (corpus / "domain_train.jsonl").open("w", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "d1", "text": filler + QUESTIONS[0] + "\nAnswer: section nine. " + filler}) + "\n")
        fh.write(json.dumps({"id": "d2", "text": filler * 3}) + "\n")
    (corpus / "general_train.jsonl").write_text(json.dumps({"id": "g1", "text": "Rain fell all day. " * 20}) + "\n")
    pair = {
        "prompt": [{"role": "user", "content": "Summarise: " + QUESTIONS[3]}],
        "completion": [{"role": "assistant", "content": "The tenant pays."}],
    }
    (corpus / "sft_train.jsonl").write_text(json.dumps(pair) + "\n", encoding="utf-8")
    return corpus


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    from lm_eval.tasks import TaskManager

    tmp_path = tmp_path_factory.mktemp("overlap")
    manager = TaskManager(include_path=[str(_task_folder(tmp_path))], include_defaults=False)
    return item_texts(["quiz_all", "quiz_a"], manager), tmp_path


def test_items_are_prompt_and_answer_and_groups_gather_their_subtasks(texts):
    by_task, _ = texts
    assert len(by_task["quiz_all"]) == 5 and len(by_task["quiz_a"]) == 3
    assert f"{QUESTIONS[0]}\nAnswer: {ANSWERS[0]}" in by_task["quiz_a"]


def test_items_in_cpt_text_or_sft_pairs_count_and_short_ones_are_named(texts):
    by_task, tmp_path = texts
    overlap = training_overlap(_corpus(tmp_path), by_task)
    # Item 0 sits in a cpt document, item 3's question in an SFT prompt; items 1 and 2 appear nowhere.
    assert overlap["quiz_all"] == {"items": 5, "overlapping": 2, "short": 1, "n": 13}
    assert overlap["quiz_a"] == {"items": 3, "overlapping": 1, "short": 0, "n": 13}


def test_a_clean_corpus_overlaps_nothing(texts, tmp_path):
    by_task, _ = texts
    (tmp_path / "domain_train.jsonl").write_text(json.dumps({"text": "Nothing from the quiz here. " * 30}) + "\n")
    assert training_overlap(tmp_path, by_task)["quiz_all"]["overlapping"] == 0
