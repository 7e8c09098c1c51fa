"""Instruction pairs and held-out task items built from one source's documents.

SFT pairs come from training documents only, eval items from eval documents only: every text an
eval item shows (question, correct answer and, for definition tasks, the distractors too) comes
from held-out documents. The only shared strings are the closed label sets of classification
tasks (license names, ICD-10-CM chapter titles), which a classifier must see in training.

Each builder returns its task's baseline beside the data: the chance level of a k-way choice, or
for translation the score of copying the English source, which the report prints next to the
model's score. Builders read the metadata that source adapters (``stages.lib.sources``) attach.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from eval.tasks import translation_prompt

N_CHOICES = 4


@dataclass
class TaskData:
    description: str
    output_type: Literal["multiple_choice", "generate_until"]
    sft_pairs: list[dict[str, Any]] = field(default_factory=list)
    """trl prompt-completion records in conversational form."""
    eval_items: list[dict[str, Any]] = field(default_factory=list)
    """Multiple choice: ``{"question", "choices", "answer", "held_out"}`` (answer is an index);
    generation: ``{"question", "answer", "held_out"}``. ``held_out`` lists the held-out texts
    the item shows, which decontamination keeps out of every training split."""
    fewshot_items: list[dict[str, Any]] = field(default_factory=list)
    """Generation only: examples from training documents shown before each prompt."""
    baseline: dict[str, float] = field(default_factory=dict)
    """Metric -> score of the trivial answer (chance, or copying the source)."""
    baseline_name: str = "chance"
    origin: str = "held_out"
    """Where eval items come from: "held_out" documents (the default), or "training" documents for
    closed-book probes (``knowledge_probe``), whose items carry ``held_out: []`` so decontamination
    never drops the documents they test; the two kinds are never mixed in one task."""
    metric: str | None = None
    """The score the eval stage reports (None: acc for multiple choice, the generation task's own).
    The cloze probes use ``p_correct``, the probability the model puts on the right choice among the
    choices: a per-item number that moves with a small model's likelihoods before its 0/1 accuracy does."""


Builder = Callable[[list[dict[str, Any]], list[dict[str, Any]], int, int, int], TaskData]


def _pair(prompt: str, answer: str, source_id: str) -> dict[str, Any]:
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "completion": [{"role": "assistant", "content": answer}],
        "source_id": source_id,
    }


def _choice_item(question: str, answer: str, distractors: list[str], rng: random.Random, **extra: Any) -> dict:
    choices = [*distractors, answer]
    rng.shuffle(choices)
    return {"question": question, "choices": [f" {c}" for c in choices], "answer": choices.index(answer), **extra}


def _excerpt(text: str, words: int, rng: random.Random) -> str:
    tokens = re.sub(r"\s+", " ", text).strip().split(" ")
    if len(tokens) <= words:
        return " ".join(tokens)
    # Skip the opening words where they fit: a title line would make the task string matching.
    start = rng.randint(min(30, len(tokens) - words), len(tokens) - words)
    return " ".join(tokens[start : start + words])


def _require_meta(docs: list[dict[str, Any]], keys: tuple[str, ...], task: str) -> None:
    for doc in docs:
        missing = [k for k in keys if k not in doc.get("meta", {})]
        if missing:
            raise ValueError(
                f"task '{task}' needs documents with meta {list(keys)}; document '{doc['id']}' of source "
                f"'{doc.get('source')}' lacks {missing}: pair the task with a source type that provides them"
            )


def license_id(train: list[dict], held_out: list[dict], seed: int, max_pairs: int, max_items: int) -> TaskData:
    """Legal: a license excerpt -> which license it is (SFT answer: name and SPDX id; eval: 4-way choice)."""
    question = "Which license is this excerpt from?"
    _require_meta(train + held_out, REQUIRED_META["license_id"], "license_id")
    rng = random.Random(seed)
    task = TaskData(
        f"{question} {N_CHOICES}-way choice among license names; excerpts of 48 words from held-out licenses",
        "multiple_choice",
        baseline={"acc": 1 / N_CHOICES},
    )
    for doc in rng.sample(train, min(max_pairs, len(train))):
        excerpt = _excerpt(doc["text"], 48, rng)
        answer = f"{doc['meta']['name']} (SPDX: {doc['meta']['spdx']})"
        task.sft_pairs.append(_pair(f"{question}\n\n{excerpt}", answer, doc["id"]))
    names = sorted({d["meta"]["name"] for d in train + held_out})
    if len(names) < N_CHOICES:
        raise ValueError(f"task 'license_id' needs {N_CHOICES} licenses or more, got {names}")
    for doc in rng.sample(held_out, min(max_items, len(held_out))):
        answer = doc["meta"]["name"]
        excerpt = _excerpt(doc["text"], 48, rng)
        distractors = rng.sample([n for n in names if n != answer], N_CHOICES - 1)
        task.eval_items.append(
            _choice_item(f"{question}\n\n{excerpt}\n\nAnswer:", answer, distractors, rng, held_out=[excerpt])
        )
    return task


def _definition_builder(name: str, question: Callable[[str], str], describe: str) -> Builder:
    """A term -> definition task: SFT writes the definition, eval picks it among held-out definitions."""

    def build(train: list[dict], held_out: list[dict], seed: int, max_pairs: int, max_items: int) -> TaskData:
        _require_meta(train + held_out, REQUIRED_META[name], name)
        rng = random.Random(seed)
        task = TaskData(
            f"{describe} {N_CHOICES}-way choice; distractors are definitions of other held-out terms",
            "multiple_choice",
            baseline={"acc": 1 / N_CHOICES},
        )
        for doc in rng.sample(train, min(max_pairs, len(train))):
            task.sft_pairs.append(_pair(question(doc["meta"]["term"]), doc["meta"]["definition"], doc["id"]))
        definitions = sorted({d["meta"]["definition"] for d in held_out})
        if len(definitions) < N_CHOICES:
            return task
        # Definitions of six words or more: shorter ones ("A small bird.") are not specific to their term.
        candidates = [d for d in held_out if len(d["meta"]["definition"].split()) >= 6]
        for doc in rng.sample(candidates, min(max_items, len(candidates))):
            answer = doc["meta"]["definition"]
            distractors = rng.sample([d for d in definitions if d != answer], N_CHOICES - 1)
            prompt = f"{question(doc['meta']['term'])}\nAnswer:"
            # The distractors are held-out definitions too: one learnt from training text could be ruled out.
            held = [answer, *distractors]
            task.eval_items.append(_choice_item(prompt, answer, distractors, rng, held_out=held))
        return task

    build.__doc__ = describe
    return build


term_definition = _definition_builder(
    "term_definition",
    lambda term: f"What does the term '{term}' mean?",
    "Term -> definition (GCIDE dictionary entries).",
)
form_purpose = _definition_builder(
    "form_purpose",
    lambda form: f"What is SEC form {form} used for?",
    "SEC form type -> its purpose (SEC form glossary).",
)


def xbrl_element(train: list[dict], held_out: list[dict], seed: int, max_pairs: int, max_items: int) -> TaskData:
    """SEC-finance: an XBRL element's FASB definition -> the element's name."""
    question = "Which US-GAAP XBRL element does this definition describe?"
    _require_meta(train + held_out, REQUIRED_META["xbrl_element"], "xbrl_element")
    rng = random.Random(seed)
    task = TaskData(
        f"{question} {N_CHOICES}-way choice among held-out element names",
        "multiple_choice",
        baseline={"acc": 1 / N_CHOICES},
    )
    for doc in rng.sample(train, min(max_pairs, len(train))):
        task.sft_pairs.append(_pair(f"{question}\n\n{doc['meta']['definition']}", doc["meta"]["term"], doc["id"]))
    names = sorted({d["meta"]["term"] for d in held_out})
    if len(names) < N_CHOICES:
        return task
    for doc in rng.sample(held_out, min(max_items, len(held_out))):
        answer, definition = doc["meta"]["term"], doc["meta"]["definition"]
        distractors = rng.sample([n for n in names if n != answer], N_CHOICES - 1)
        task.eval_items.append(
            _choice_item(f"{question}\n\n{definition}\n\nAnswer:", answer, distractors, rng, held_out=[definition])
        )
    return task


def icd_chapter(train: list[dict], held_out: list[dict], seed: int, max_pairs: int, max_items: int) -> TaskData:
    """Health: an ICD-10-CM diagnosis description -> its chapter (one document is one 3-character category)."""
    question = "Which ICD-10-CM chapter does this diagnosis belong to?"
    _require_meta(train + held_out, REQUIRED_META["icd_chapter"], "icd_chapter")
    rng = random.Random(seed)
    chapters = sorted({d["meta"]["chapter"] for d in train + held_out})
    if len(chapters) < N_CHOICES:
        raise ValueError(f"task 'icd_chapter' needs documents from {N_CHOICES} chapters or more, got {chapters}")
    task = TaskData(
        f"{question} {N_CHOICES}-way choice among the {len(chapters)} chapter titles; one diagnosis per held-out "
        "category",
        "multiple_choice",
        baseline={"acc": 1 / N_CHOICES},
    )
    for doc in rng.sample(train, min(max_pairs, len(train))):
        diagnosis = rng.choice(doc["meta"]["diagnoses"])
        task.sft_pairs.append(_pair(f"{question}\n\n{diagnosis}", doc["meta"]["chapter"], doc["id"]))
    # Diagnoses of four words or more: "Cholera" alone would also match unrelated training text.
    candidates = [(d, [x for x in d["meta"]["diagnoses"] if len(x.split()) >= 4]) for d in held_out]
    candidates = [(d, diagnoses) for d, diagnoses in candidates if diagnoses]
    for doc, diagnoses in rng.sample(candidates, min(max_items, len(candidates))):
        diagnosis, answer = rng.choice(diagnoses), doc["meta"]["chapter"]
        distractors = rng.sample([c for c in chapters if c != answer], N_CHOICES - 1)
        task.eval_items.append(
            _choice_item(f"{question}\n\n{diagnosis}\n\nAnswer:", answer, distractors, rng, held_out=[diagnosis])
        )
    return task


TARGET_LANGUAGE_INSTRUCTIONS = {
    ("English", "Spanish"): "Traduce del inglés al español:",
    ("English", "French"): "Traduisez de l'anglais vers le français :",
}
"""SFT instructions written in the target language, for comparing against source-language ones."""


def translation(
    train: list[dict],
    held_out: list[dict],
    seed: int,
    max_pairs: int,
    max_items: int,
    instructions: str = "source",
) -> TaskData:
    """Translation: English sentence -> target language, scored with chrF and BLEU (sacrebleu) by lm-eval.

    Documents carry aligned ``pairs`` and their language names. Eval prompts show two training
    pairs first, so a model that was never instruction-tuned sees the format; the baseline is the
    score of copying the English source unchanged. ``instructions``: the language the SFT pairs'
    instruction is written in, ``source`` (English) or ``target``; eval prompts are the same either way."""
    import sacrebleu

    _require_meta(train + held_out, REQUIRED_META["translation"], "translation")
    rng = random.Random(seed)

    def usable(docs: list[dict]) -> list[tuple[str, dict, list[str]]]:
        return [
            (doc["id"], doc["meta"], pair)
            for doc in docs
            for pair in doc["meta"]["pairs"]
            if 4 <= len(pair[0].split()) <= 40  # sentence-sized: long verses cost generation time
        ]

    train_pairs, held_pairs = usable(train), usable(held_out)
    langs = {(meta["source_lang"], meta["target_lang"]) for _, meta, _ in train_pairs + held_pairs}
    if len(langs) > 1:
        raise ValueError(f"task 'translation' got documents of several language pairs {sorted(langs)}; one per task")
    source_lang, target_lang = langs.pop() if langs else ("English", "?")
    task = TaskData(
        f"{source_lang} -> {target_lang} translation of held-out sentences, 2 training pairs shown first; "
        "chrF and BLEU by sacrebleu",
        "generate_until",
        baseline_name="copy the source",
    )
    instruction = f"Translate from {source_lang} to {target_lang}:"
    if instructions == "target":
        if (source_lang, target_lang) not in TARGET_LANGUAGE_INSTRUCTIONS:
            known = sorted(TARGET_LANGUAGE_INSTRUCTIONS)
            raise ValueError(f"no {target_lang} instruction for {source_lang} -> {target_lang}; known pairs: {known}")
        instruction = TARGET_LANGUAGE_INSTRUCTIONS[(source_lang, target_lang)]
    for doc_id, _, (src, tgt) in rng.sample(train_pairs, min(max_pairs, len(train_pairs))):
        task.sft_pairs.append(_pair(f"{instruction}\n{src}", tgt, doc_id))
    for _, _, (src, tgt) in rng.sample(train_pairs, min(16, len(train_pairs))):
        task.fewshot_items.append({"question": translation_prompt(source_lang, target_lang, src), "answer": tgt})
    for _, _, (src, tgt) in rng.sample(held_pairs, min(max_items, len(held_pairs))):
        task.eval_items.append(
            {
                "question": translation_prompt(source_lang, target_lang, src),
                "answer": tgt,
                "source": src,
                "held_out": [src, tgt],
            }
        )
    if task.eval_items:
        sources = [item["source"] for item in task.eval_items]
        references = [[item["answer"] for item in task.eval_items]]
        task.baseline = {
            "chrf": sacrebleu.corpus_chrf(sources, references).score,
            "bleu": sacrebleu.corpus_bleu(sources, references).score,
        }
    return task


def _mined(name: str) -> Builder:
    """A builder of ``stages.lib.mined_tasks``, imported on first call: that module imports this one."""

    def build(train: list[dict], held_out: list[dict], seed: int, max_pairs: int, max_items: int) -> TaskData:
        from stages.lib import mined_tasks

        return getattr(mined_tasks, name)(train, held_out, seed, max_pairs, max_items)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"``stages.lib.mined_tasks.{name}``: a task mined from plain text of any domain."
    return build


REQUIRED_META: dict[str, tuple[str, ...]] = {
    "license_id": ("name", "spdx"),
    "term_definition": ("term", "definition"),
    "form_purpose": ("term", "definition"),
    "xbrl_element": ("term", "definition"),
    "icd_chapter": ("chapter", "diagnoses"),
    "translation": ("pairs", "source_lang", "target_lang"),
    "reading_comprehension": (),
    "cloze": (),
    "knowledge_probe": (),
}
"""The document meta each builder reads (``_require_meta`` in it), so a recipe pairing a task with a source
that lacks them is refused at load time rather than after the corpus stage read every source."""

BUILDERS: dict[str, Builder] = {
    "license_id": license_id,
    "term_definition": term_definition,
    "form_purpose": form_purpose,
    "xbrl_element": xbrl_element,
    "icd_chapter": icd_chapter,
    "translation": translation,
    "reading_comprehension": _mined("reading_comprehension"),
    "cloze": _mined("cloze"),
    "knowledge_probe": _mined("knowledge_probe"),
}
