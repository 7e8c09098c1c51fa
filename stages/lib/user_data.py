"""A user's own instruction pairs and eval sets: read, checked line by line, and put in our shapes.

Text sources are ``stages.lib.sources``; this module holds the two other kinds of user data a recipe
may bring (``instructions:`` and ``evals:``). Both are JSONL in the formats people already have:

- instruction pairs in either form trl's SFTTrainer takes: ``{"prompt", "completion"}`` (strings
  or lists of chat messages) or ``{"messages": [...]}`` ending with the assistant's turn;
- eval sets of multiple-choice items ``{"question", "choices", "answer"}`` (answer: an index or
  the text of a choice) or short-answer items ``{"question", "answer"}`` (one form per file).

Every check runs when the recipe is loaded, before any stage, and names the file, the line and
the field at fault with what would be right, so a malformed line never costs an hour of training.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
"""Names become file names in the store: nothing that could climb out of a folder."""


def check_name(value: str) -> str:
    """Validator: a name that is safe as a file name."""
    if not SAFE_NAME.match(value) or value in {".", ".."}:
        raise ValueError(f"name '{value}' may hold only letters, digits, '_', '.' and '-'")
    return value


class InstructionSpec(BaseModel):
    """A JSONL file of instruction pairs for ``sft`` (top-level recipe key ``instructions``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    """Short name, for stats and provenance."""
    path: str
    """The JSONL file."""
    license: str = "unknown"
    """License of the pairs, recorded in the corpus stats."""

    _safe_name = field_validator("name")(check_name)


class EvalSetSpec(BaseModel):
    """A JSONL file of eval items scored for every model (top-level recipe key ``evals``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    """Task name in the report; must differ from every other task's."""
    path: str
    """The JSONL file: multiple-choice or short-answer items, one form per file."""
    kind: Literal["domain", "general"] = "domain"
    """``domain``: what the specialist should get better at; ``general``: what it should not forget."""

    _safe_name = field_validator("name")(check_name)


class UserDataError(ValueError):
    """A line of a user's file is malformed; the message names file, line and field."""


def jsonl_records(path: Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line, read line by line (memory flat in the file size);
    a malformed line raises ``UserDataError`` naming the file and line."""
    if not path.is_file():
        raise UserDataError(f"{path}: {what} file does not exist")
    empty = True
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserDataError(
                    f"{path}:{number}: not valid UTF-8 ({exc.reason} at column {exc.start + 1}); "
                    "re-encode the file as UTF-8"
                ) from exc
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserDataError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
            if not isinstance(record, dict):
                raise UserDataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            empty = False
            yield number, record
    if empty:
        raise UserDataError(f"{path}: empty file ({what}: one JSON object per line expected)")


def _messages(value: Any, where: str, field: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise UserDataError(f"{where}: field '{field}' is empty")
        return [{"role": "assistant" if field == "completion" else "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise UserDataError(f"{where}: field '{field}' must be a string or a non-empty list of chat messages")
    for index, message in enumerate(value):
        if (
            not isinstance(message, dict)
            or message.get("role") not in ("system", "user", "assistant")
            or not isinstance(message.get("content"), str)
        ):
            raise UserDataError(
                f'{where}: {field}[{index}] must be {{"role": system|user|assistant, "content": string}}'
            )
    return [{"role": m["role"], "content": m["content"]} for m in value]


def read_instructions(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, pair) with ``prompt`` and ``completion`` as chat-message lists, the form the sft stage trains on."""
    for number, record in jsonl_records(path, "instructions"):
        where = f"{path}:{number}"
        if "messages" in record:
            messages = _messages(record["messages"], where, "messages")
            if messages[-1]["role"] != "assistant" or len(messages) < 2:
                raise UserDataError(f"{where}: 'messages' must end with the assistant's turn after a user turn")
            prompt, completion = messages[:-1], messages[-1:]
        elif "prompt" in record and "completion" in record:
            prompt = _messages(record["prompt"], where, "prompt")
            completion = _messages(record["completion"], where, "completion")
        else:
            raise UserDataError(
                f"{where}: expected fields prompt and completion, or messages (trl's formats); "
                f"got fields {sorted(record)}"
            )
        yield number, {"prompt": prompt, "completion": completion}


def pair_text(pair: dict[str, Any]) -> str:
    """All the words of a pair, for decontamination against eval items."""
    return " ".join(m["content"] for m in pair["prompt"] + pair["completion"])


def read_eval_set(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """(``multiple_choice`` or ``short_answer``, items in the eval stage's shape); mixed forms are refused."""
    form: str | None = None
    first = 0
    items = []
    for number, record in jsonl_records(path, "eval set"):
        where = f"{path}:{number}"
        question = record.get("question")
        if not isinstance(question, str) or not question.strip():
            raise UserDataError(f"{where}: field 'question' must be a non-empty string")
        this = "multiple_choice" if "choices" in record else "short_answer"
        if form is None:
            form, first = this, number
        elif this != form:
            raise UserDataError(
                f"{where}: a {this.replace('_', '-')} item in a {form.replace('_', '-')} file (line {first}); "
                "put each form in its own file"
            )
        items.append(_choice(record, where) if this == "multiple_choice" else _short(record, where))
    assert form is not None  # _records raised on an empty file
    return form, items


def _choice(record: dict[str, Any], where: str) -> dict[str, Any]:
    choices = record["choices"]
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c.strip() for c in choices):
        raise UserDataError(f"{where}: field 'choices' must be a list of two or more non-empty strings")
    if len(set(choices)) != len(choices):
        raise UserDataError(f"{where}: field 'choices' repeats a choice")
    answer = record.get("answer")
    if isinstance(answer, bool) or not isinstance(answer, int | str):
        raise UserDataError(f"{where}: field 'answer' must be the index of the right choice or its text")
    if isinstance(answer, str):
        if answer not in choices:
            raise UserDataError(f"{where}: answer '{answer}' is not one of the choices {choices}")
        answer = choices.index(answer)
    if not 0 <= answer < len(choices):
        raise UserDataError(f"{where}: answer index {answer} is out of range for {len(choices)} choices")
    question = record["question"].rstrip()
    return {
        "question": question if question.endswith("Answer:") else f"{question}\nAnswer:",
        "choices": [f" {c.strip()}" for c in choices],
        "answer": answer,
        # The item as one text: a short label alone ("GPL-3.0") would match every document that names it.
        "held_out": [f"{record['question']} {choices[answer]}"],
    }


def _short(record: dict[str, Any], where: str) -> dict[str, Any]:
    answer = record.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        raise UserDataError(
            f"{where}: field 'answer' must be a non-empty string (or add 'choices' for a multiple-choice item)"
        )
    return {
        "question": f"Question: {record['question'].strip()}\nAnswer:",
        "answer": answer.strip(),
        "source": record["question"].strip(),
        "held_out": [f"{record['question']} {answer}"],
    }


def check_instructions(spec: InstructionSpec) -> int:
    """Read every line (raising on the first bad one); the number of pairs."""
    return sum(1 for _ in read_instructions(Path(spec.path)))


def check_eval_set(spec: EvalSetSpec) -> int:
    return len(read_eval_set(Path(spec.path))[1])


class TaskDirsError(ValueError):
    """An ``eval.task_dirs`` folder or task file is unusable."""


def lm_eval_task_names(folder: Path) -> list[str]:
    """The ``task:`` names of an lm-eval task folder's YAML files, checked without importing lm-eval.

    lm-eval YAMLs may hold ``!function`` tags, which ``yaml.safe_load`` refuses; a loader that
    reads unknown tags as plain values lets the check see the names without running user code."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    if not folder.is_dir():
        raise TaskDirsError(f"eval.task_dirs: '{folder}' is not a folder of lm-eval task YAMLs")
    names = []
    for path in sorted(folder.rglob("*.yaml")):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        except yaml.YAMLError as exc:
            raise TaskDirsError(f"{path}: not valid YAML: {exc}") from exc
        if isinstance(data, dict) and isinstance(data.get("task"), str):
            names.append(data["task"])
    if not names:
        raise TaskDirsError(f"eval.task_dirs: '{folder}' holds no YAML with a 'task:' name")
    return names
