"""lm-eval task definitions generated over local files.

Each task is a YAML file in the eval stage's output, loaded by lm-eval's TaskManager from that
folder alone (no built-in tasks, no hub). Perplexity tasks use ``loglikelihood_rolling``, which
lm-eval turns into bits-per-byte; multiple-choice tasks score each choice's log-likelihood.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

TASK_PREFIX = "dapt_"


def _data(path: Path, fewshot: Path | None = None) -> dict[str, Any]:
    files = {"test": str(path.resolve())}
    if fewshot is not None:
        files["train"] = str(fewshot.resolve())
    return {
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": files},
        "test_split": "test",
        **({"fewshot_split": "train"} if fewshot is not None else {}),
    }


def bits_per_byte_task(name: str, data_file: Path) -> dict[str, Any]:
    """Bits-per-byte of held-out text (records with a ``text`` field)."""
    return {
        "task": f"{TASK_PREFIX}{name}",
        **_data(data_file),
        "output_type": "loglikelihood_rolling",
        "doc_to_text": "",
        "doc_to_target": "{{text}}",
        "metric_list": [
            {"metric": "bits_per_byte", "aggregation": "bits_per_byte", "higher_is_better": False},
            {"metric": "byte_perplexity", "aggregation": "weighted_perplexity", "higher_is_better": False},
        ],
        "metadata": {"version": 1},
    }


def multiple_choice_task(name: str, data_file: Path) -> dict[str, Any]:
    """Multiple choice over records ``{"question", "choices", "answer"}`` (answer is an index)."""
    return {
        "task": f"{TASK_PREFIX}{name}",
        **_data(data_file),
        "output_type": "multiple_choice",
        "doc_to_text": "question",
        "doc_to_choice": "choices",
        "doc_to_target": "answer",
        "target_delimiter": "",  # every choice starts with its own space: lm-eval's default " " would double it
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1},
    }


def translation_prompt(source_lang: str, target_lang: str, text: str, context: Sequence[tuple[str, str]] = ()) -> str:
    """The translation prompt every translation eval shows: the instruction, any ``context`` pairs (earlier
    sentences of a document and their translations), then ``text`` and the target language's label to answer.
    The sentence-level task's items (``question``) are this with no context; document-level decoding adds it."""
    lines = [f"Translate from {source_lang} to {target_lang}."]
    for source, target in context:
        lines += [f"{source_lang}: {source}", f"{target_lang}: {target}"]
    return "\n".join([*lines, f"{source_lang}: {text}", f"{target_lang}:"])


def translation_task(name: str, data_file: Path, fewshot_file: Path, num_fewshot: int = 2) -> dict[str, Any]:
    """Greedy generation to the end of the line over ``{"question", "answer"}`` records, scored with
    lm-eval's corpus-level chrF and BLEU (sacrebleu); ``num_fewshot`` training pairs come first."""
    return {
        "task": f"{TASK_PREFIX}{name}",
        **_data(data_file, fewshot_file),
        "output_type": "generate_until",
        "doc_to_text": "question",
        "doc_to_target": "answer",
        "fewshot_delimiter": "\n\n",
        "num_fewshot": num_fewshot,
        "generation_kwargs": {"until": ["\n"], "do_sample": False, "max_gen_toks": 96},
        "metric_list": [
            {"metric": "chrf", "aggregation": "chrf", "higher_is_better": True},
            {"metric": "bleu", "aggregation": "bleu", "higher_is_better": True},
        ],
        "metadata": {"version": 1},
    }


def short_answer_task(name: str, data_file: Path) -> dict[str, Any]:
    """Greedy answer to the end of the line over ``{"question", "answer"}`` records: exact match (case and
    punctuation ignored) and chrF, which gives partial credit where a right answer is worded differently."""
    return {
        "task": f"{TASK_PREFIX}{name}",
        **_data(data_file),
        "output_type": "generate_until",
        "doc_to_text": "question",
        "doc_to_target": "answer",
        "generation_kwargs": {"until": ["\n"], "do_sample": False, "max_gen_toks": 64},
        "metric_list": [
            {
                "metric": "exact_match",
                "aggregation": "mean",
                "higher_is_better": True,
                "ignore_case": True,
                "ignore_punctuation": True,
            },
            {"metric": "chrf", "aggregation": "chrf", "higher_is_better": True},
        ],
        "metadata": {"version": 1},
    }


def write_task(folder: Path, definition: dict[str, Any]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{definition['task']}.yaml").write_text(yaml.safe_dump(definition, sort_keys=False), encoding="utf-8")
    return definition["task"]
