"""Tasks mined from raw text (``stages.mined_tasks``), on real text: ScanCode license texts and ftfy's README."""

import re
from pathlib import Path

import pytest

from stages import mined_tasks
from stages.mined_tasks import mine, reading_comprehension_text
from stages.task_builders import BUILDERS, N_CHOICES

LICENSES = Path(__file__).resolve().parents[2] / ".venv/lib/python3.11/site-packages/licensedcode/data/licenses"
README = Path(__file__).parent.parent / "fixtures" / "mined" / "ftfy_readme.md"


def _license(key: str) -> str:
    raw = (LICENSES / f"{key}.LICENSE").read_text(encoding="utf-8")
    return raw.split("---", 2)[2] if raw.startswith("---") else raw


@pytest.fixture(scope="module")
def license_docs() -> list[dict]:
    """400 license texts (every fifth file, sorted), 300 for training and 100 held out."""
    paths = sorted(LICENSES.glob("*.LICENSE"))[::5][:400]
    docs = [{"id": p.stem, "source": "licenses", "text": _license(p.stem), "meta": {}} for p in paths]
    return [d for d in docs if len(d["text"].split()) >= 30]


def _split(docs: list[dict]) -> tuple[list[dict], list[dict]]:
    return docs[: len(docs) * 3 // 4], docs[len(docs) * 3 // 4 :]


# ------------------------------------------------------------------------------------ mining patterns


def test_therefore_yields_an_entailment_pair() -> None:
    found = mine(_license("gpl-2.0"))
    pairs = [m for m in found["inference"] if "prohibited by law" in m.question]
    assert len(pairs) == 1 and pairs[0].answer == "Yes"
    assert (
        "First sentence: These actions are prohibited by law if you do not accept this License.\n" in pairs[0].question
    )
    assert "Second sentence: By modifying or distributing the Program" in pairs[0].question  # "Therefore," dropped
    assert "prohibited by law" in pairs[0].excerpt


def test_however_yields_a_contradiction_pair() -> None:
    found = mine(_license("gpl-2.0"))
    labels = {
        m.answer for m in found["inference"] if "Second sentence: Nothing else grants you permission" in m.question
    }
    assert labels == {"No"}


def test_because_yields_the_cause() -> None:
    found = mine(_license("lgpl-2.1"))
    causes = [m for m in found["cause_effect"] if "Lesser" in m.question]
    assert [(m.question, m.answer) for m in causes] == [
        (
            'What is the reason for this: "We call this license the "Lesser" General Public License."',
            "It does Less to protect the user's freedom than the ordinary General Public License.",
        )
    ]


def test_a_conditional_due_to_is_no_cause() -> None:
    """ "If it is not possible ... due to its structure, then ...": its structure is no reason for the clause."""
    found = mine(_license("snia"))
    assert not any("due to" in m.question or m.answer.startswith("Its structure") for m in found["cause_effect"])


def test_definitions_from_shall_mean() -> None:
    found = mine(_license("apache-2.0"))
    defined = {m.question: m.answer for m in found["definition"]}
    assert defined['Define "Licensor".'].startswith('"Licensor" shall mean the copyright owner')
    assert 'Define "Legal Entity".' in defined


def test_headings_yield_titles() -> None:
    found = mine(README.read_text(encoding="utf-8"))
    titles = {m.answer: m for m in found["title"]}
    assert {"ftfy: fixes text for you", "What it does", "Installing", "Citing ftfy"} <= set(titles)
    assert titles["Installing"].excerpt.startswith("ftfy is a Python 3 package")
    assert "Installing" not in titles["Installing"].excerpt
    # The opening line of a plain text reads as its title too.
    assert [m.answer for m in mine(_license("apache-2.0"))["title"]] == ["Apache License"]


def test_markdown_code_is_not_mined() -> None:
    found = mine(README.read_text(encoding="utf-8"))
    everything = " ".join(m.question + " " + m.answer + " " + m.excerpt for ms in found.values() for m in ms)
    assert ">>>" not in everything and "```" not in everything and "](http" not in everything


def test_paraphrase_from_that_is() -> None:
    found = mine(_license("artistic-perl-1.0"))
    [m] = [m for m in found["paraphrase"] if "embedded" in m.question]
    assert m.question.endswith('use of this Package is embedded"')
    assert m.answer.startswith("when no overt attempt is made")
    # A relative "that is" ("any work ... that is based on") is no paraphrase.
    assert "paraphrase" not in mine(_license("apache-2.0"))


def test_word_to_text_and_completion() -> None:
    found = mine(_license("gpl-2.0"))
    for m in found["word_to_text"]:
        words = m.question.split(": ", 1)[1].rstrip(".").split(", ")
        assert len(words) == 3 and all(w in m.answer.lower() for w in words)
    text = re.sub(r"\s+", " ", _license("gpl-2.0"))
    for m in found["completion"]:
        assert m.question == "How would you complete this text?"
        assert f"{m.excerpt} {m.answer}" in text  # the continuation follows the excerpt in the document


# ------------------------------------------------------------------------------------ CPT text form


def test_reading_comprehension_text_appends_questions() -> None:
    text = _license("gpl-2.0")
    converted = reading_comprehension_text(text, seed=0)
    assert converted.startswith(text.rstrip())
    tail = converted[len(text.rstrip()) :]
    assert tail.startswith("\n\nAnswer questions based on the text above.\nQuestion: ")
    assert 4 <= tail.count("\nQuestion: ") <= mined_tasks.QA_PER_DOCUMENT
    assert tail.count("\nQuestion: ") == tail.count("\nAnswer: ")
    assert converted == reading_comprehension_text(text, seed=0)
    assert reading_comprehension_text("Copyright (c) 2004", seed=0) == "Copyright (c) 2004"


# ------------------------------------------------------------------------------------ builders


def test_reading_comprehension_builder(license_docs: list[dict]) -> None:
    train, held_out = _split(license_docs)
    task = BUILDERS["reading_comprehension"](train, held_out, 0, 200, 30)
    assert task.eval_items == [] and "no eval items" in task.description
    assert len(task.sft_pairs) == 200
    train_ids = {d["id"] for d in train}
    assert {p["source_id"] for p in task.sft_pairs} <= train_ids
    assert len({p["source_id"] for p in task.sft_pairs}) >= 150  # spread over documents
    questions = [p["prompt"][0]["content"].rsplit("\n\n", 1)[-1] for p in task.sft_pairs]
    kinds = {q.split(" ")[0] for q in questions}
    assert {"What", "Write", "Define", "Does", "How"} <= kinds  # spread over patterns
    for pair in task.sft_pairs:
        excerpt = pair["prompt"][0]["content"].split("\n\n")[0]
        assert len(excerpt.split()) <= mined_tasks.EXCERPT_WORDS + 1
    assert task.sft_pairs == BUILDERS["reading_comprehension"](train, held_out, 0, 200, 30).sft_pairs


def _check_cloze(items: list[dict]) -> None:
    for item in items:
        choices = item["choices"]
        assert len(choices) == N_CHOICES and len({c.lower() for c in choices}) == N_CHOICES
        right = [c.split(" ", 2)[2] if c.count(" ") >= 2 else "" for c in choices]
        assert len(set(right)) == 1  # every choice shares the real right context
        word = item["word"]
        assert choices[item["answer"]].startswith(f" {word}")
        context = item["question"].lower()
        assert word.lower() not in context
        for d in item["distractor_words"]:
            assert d.lower() not in context and d.lower() != word.lower()
        assert 25 <= len(item["question"].split()) <= 50


def test_cloze_items(license_docs: list[dict]) -> None:
    train, held_out = _split(license_docs)
    task = BUILDERS["cloze"](train, held_out, 0, 0, 60)
    assert task.output_type == "multiple_choice" and task.baseline == {"acc": 0.25} and task.origin == "held_out"
    assert task.sft_pairs == [] and len(task.eval_items) == 60
    _check_cloze(task.eval_items)
    held_text = {d["id"]: re.sub(r"\s+", " ", d["text"]) for d in held_out}
    for item in task.eval_items:
        [passage] = item["held_out"]
        assert passage in held_text[item["source_id"]]
        assert passage.startswith(item["question"]) and item["word"] in passage
    assert task.eval_items == BUILDERS["cloze"](train, held_out, 0, 0, 60).eval_items
    assert task.eval_items != BUILDERS["cloze"](train, held_out, 1, 0, 60).eval_items


def test_knowledge_probe_comes_from_training(license_docs: list[dict]) -> None:
    train, held_out = _split(license_docs)
    task = BUILDERS["knowledge_probe"](train, held_out, 0, 0, 60)
    assert task.origin == "training" and "training documents" in task.description
    assert len(task.eval_items) == 60
    _check_cloze(task.eval_items)
    train_ids = {d["id"] for d in train}
    assert all(item["held_out"] == [] and item["source_id"] in train_ids for item in task.eval_items)


def test_few_documents(license_docs: list[dict]) -> None:
    train, held_out = _split(license_docs)
    assert len(BUILDERS["cloze"](train, held_out[:2], 0, 0, 60).eval_items) <= 60
    assert BUILDERS["reading_comprehension"](train[:1], [], 0, 50, 10).sft_pairs  # one document still gives pairs
    with pytest.raises(ValueError, match=r"task 'cloze'.*more training documents"):
        BUILDERS["cloze"](train[:1], held_out, 0, 0, 10)
