"""Tasks mined from raw text (``stages.lib.mined_tasks``), on real text: ScanCode license texts, ftfy's README and
excerpts of Node.js's API docs (Markdown with code blocks, HTML comments, tables and link definitions)."""

import math
import re
from collections import Counter
from pathlib import Path

import pytest

from stages.lib import mined_tasks
from stages.lib.mined_tasks import mine, reading_comprehension_text
from stages.lib.task_builders import BUILDERS, N_CHOICES

LICENSES = Path(__file__).resolve().parents[2] / ".venv/lib/python3.11/site-packages/licensedcode/data/licenses"
README = Path(__file__).parent.parent / "fixtures" / "mined" / "ftfy_readme.md"
NODE_DOCS = Path(__file__).parent.parent / "fixtures" / "mined" / "nodejs"
NODE_HELD_OUT = ("http2", "async_hooks", "webstreams", "worker_threads")
"""Node.js excerpts heavy with code blocks and ``<!-- YAML -->`` comments, held out in the cloze tests."""


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


def _node(name: str) -> str:
    return (NODE_DOCS / f"{name}.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def node_docs() -> list[dict]:
    return [{"id": p.stem, "source": "api", "text": _node(p.stem), "meta": {}} for p in sorted(NODE_DOCS.glob("*.md"))]


def _line_kinds(text: str) -> list[str]:
    """Per whitespace token of a Markdown text: "prose", or the kind of line it is on (an independent reading:
    fenced code, HTML comment, tag-only line, table row, link definition, heading)."""
    kinds: list[str] = []
    fence = comment = False
    for line in text.split("\n"):
        stripped = line.strip()
        if fence or stripped.startswith("```"):
            kind, fence = "code", fence != stripped.startswith("```")
        elif comment or stripped.startswith("<!--"):
            kind, comment = "comment", "-->" not in stripped
        elif re.fullmatch(r"(?:<[^>]+>\s*)+", stripped):
            kind = "tag"
        elif stripped.startswith("|"):
            kind = "table"
        elif re.match(r"\[[^\]]+\]:\s", stripped):
            kind = "link definition"
        elif stripped.startswith("#"):
            kind = "heading"
        else:
            kind = "prose"
        kinds += [kind] * len(line.split())
    return kinds


def _window_kinds(item: dict, text: str) -> tuple[set[str], str]:
    """The kinds of lines a cloze item's window covers in ``text``, and the kind of its removed word's line."""
    tokens, kinds = text.split(), _line_kinds(text)
    left, word = item["question"].split(), item["choices"][item["answer"]].strip()
    starts = [
        i
        for i in range(len(tokens) - len(left))
        if tokens[i : i + len(left)] == left and tokens[i + len(left)].strip("*_`'\"").startswith(word)
    ]
    assert starts, f"window not found in {item['source_id']}"
    start = starts[0]
    return set(kinds[start : start + len(left) + 1]), kinds[start + len(left)]


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
        assert len(words) == 3 and all(w in m.answer for w in words)  # as written in the text
    text = re.sub(r"\s+", " ", _license("gpl-2.0"))
    for m in found["completion"]:
        assert m.question == "How would you complete this text?"
        assert f"{m.excerpt} {m.answer}" in text  # the continuation follows the excerpt in the document


def test_definitions_need_a_term_not_a_sentence_opener(node_docs: list[dict]) -> None:
    """ "Following is a simple overview of the public API." defines nothing; "A stream is ..." does."""
    overview = [s for s in mined_tasks._Doc(_node("async_hooks")).sentences if s.startswith("Following is a")]
    assert overview == ["Following is a simple overview of the public API."]  # the real sentence is there
    terms = [
        re.fullmatch(r'Define "(.+)"\.', m.question)[1]
        for d in node_docs
        for m in mine(d["text"]).get("definition", [])
    ]
    openers = {"following", "this", "it", "there", "here", "these", "each", "typically", "value", "only", "first"}
    assert terms and not [t for t in terms if t.split()[0].lower() in openers]  # "first argument" neither
    assert {"stream", "wasiImport", "punycode module"} <= set(terms)
    found = {m.question: m.answer for m in mine(_node("stream"))["definition"]}
    assert found['Define "stream".'] == "A stream is an abstract interface for working with streaming data in Node.js."


def test_word_to_text_keeps_words_as_written(node_docs: list[dict]) -> None:
    found = mine(_node("webstreams"))["word_to_text"]
    [m] = [m for m in found if m.answer.startswith("autoAllocateChunkSize {number}")]
    assert m.question == "Write a sentence about the domain using these words: autoAllocateChunkSize, equal, bytes."
    for doc in node_docs:
        for m in mine(doc["text"]).get("word_to_text", []):
            words = m.question.split(": ", 1)[1].rstrip(".").split(", ")
            # Whole words as written: never "autoallocatechunksize", nor "SHARE" cut out of worker.SHARE_ENV.
            assert all(re.search(rf"(?<![\w.]){w}(?!\w)", m.answer) for w in words), m.question


def test_markdown_markup_is_not_mined(node_docs: list[dict]) -> None:
    """HTML comments (Node.js's "<!-- YAML added: v8.4.0 -->"), tag lines, tables and link definitions are no
    text: never in an excerpt, question or answer; reference links keep their text; headings lose backticks."""
    for doc in node_docs:
        found = mine(doc["text"])
        everything = " ".join(m.question + " " + m.answer + " " + m.excerpt for ms in found.values() for m in ms)
        for markup in ("<!--", "-->", "YAML", "```", "][]", "](", "| ---", "<a id"):
            assert markup not in everything, (doc["id"], markup)
    titles = [m.answer for m in mine(_node("tty"))["title"]]
    assert "Class: tty.ReadStream" in titles and not any("`" in t for t in titles)


def test_cause_inside_a_parenthesis_and_colon_sentences_are_not_mined() -> None:
    """ "an error is thrown if the object cannot be cloned (e.g. because it contains `function`s)": the cause
    belongs to the parenthesis; "However, it can be accessed using:" introduces code, no statement."""
    text = _node("worker_threads")
    assert "cannot be cloned (e.g. because it contains" in text
    assert "cause_effect" not in mine(text)
    pairs = mine(_node("tty")).get("inference", [])
    assert not [m for m in pairs if "accessed using" in m.question]


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
        word = item["word"]
        assert choices[item["answer"]] == f" {word}"  # the word alone: no right context to lean on
        assert all(len(c.split()) == 1 for c in choices)
        context = item["question"].lower()
        assert word.lower() not in context
        for d in item["distractor_words"]:
            assert d.lower() not in context and d.lower() != word.lower()
        assert 25 <= len(item["question"].split()) <= 50


def test_cloze_items(license_docs: list[dict]) -> None:
    train, held_out = _split(license_docs)
    task = BUILDERS["cloze"](train, held_out, 0, 0, 60)
    assert task.output_type == "multiple_choice" and task.origin == "held_out" and task.metric == "p_correct"
    assert task.baseline == {"acc": 0.25, "p_correct": 0.25}
    assert task.sft_pairs == [] and len(task.eval_items) == 60
    per_document = Counter(item["source_id"] for item in task.eval_items)
    assert (
        max(per_document.values()) <= 3 and f"60 items from {len(per_document)} held-out documents" in task.description
    )
    _check_cloze(task.eval_items)
    held_text = {d["id"]: re.sub(r"\s+", " ", d["text"]) for d in held_out}
    for item in task.eval_items:
        [passage] = item["held_out"]
        assert passage in held_text[item["source_id"]]
        assert passage.startswith(item["question"]) and item["word"] in passage
    assert task.eval_items == BUILDERS["cloze"](train, held_out, 0, 0, 60).eval_items
    assert task.eval_items != BUILDERS["cloze"](train, held_out, 1, 0, 60).eval_items


def test_cloze_windows_and_words_come_from_prose(node_docs: list[dict]) -> None:
    """Node.js docs: code blocks, HTML comments, tables and link definitions give neither context nor answer;
    the removed word is a plain prose word (not in a `code span` nor a {type}), inline code may stay around."""
    held_out = [d for d in node_docs if d["id"] in NODE_HELD_OUT]
    train = [d for d in node_docs if d["id"] not in NODE_HELD_OUT]
    texts = {d["id"]: d["text"] for d in node_docs}
    assert sum(_line_kinds(d["text"]).count("code") for d in held_out) > 500  # plenty of code to pick from
    cloze = BUILDERS["cloze"](train, held_out, 0, 0, 40)
    probe = BUILDERS["knowledge_probe"](train, held_out, 0, 0, 40)
    assert len(cloze.eval_items) >= 10 and len(probe.eval_items) >= 20
    for item in cloze.eval_items + probe.eval_items:
        window, word_kind = _window_kinds(item, texts[item["source_id"]])
        assert window == {"prose"} and word_kind == "prose", (item["source_id"], item["question"][-80:])
        context = item["question"]
        assert context.count("`") % 2 == 0 and context.count("{") == context.count("}")  # not inside code or a type
        assert re.fullmatch(r"[A-Za-z]+", item["word"])
        assert item["choices"][item["answer"]].split()[0].rstrip(".,;:!?)\"'") == item["word"]
    _check_cloze(cloze.eval_items + probe.eval_items)
    assert any("`" in item["question"] for item in cloze.eval_items)  # inline code stays in the context
    assert cloze.eval_items == BUILDERS["cloze"](train, held_out, 0, 0, 40).eval_items


def test_cloze_items_per_document_are_capped(license_docs: list[dict]) -> None:
    """A few long held-out documents: at most max(3, ceil(max_items / documents)) items from each, however many
    windows a long one has, and the description says from how many documents the items come."""
    train, _ = _split(license_docs)
    held_out = [{"id": key, "source": "licenses", "text": _license(key), "meta": {}} for key in ("gpl-3.0", "mpl-2.0")]
    held_out.append({"id": "string_decoder", "source": "api", "text": _node("string_decoder"), "meta": {}})
    cap = max(3, math.ceil(60 / len(held_out)))
    task = BUILDERS["cloze"](train, held_out, 0, 0, 60)
    per_document = Counter(item["source_id"] for item in task.eval_items)
    assert per_document["gpl-3.0"] == per_document["mpl-2.0"] == cap  # long documents stop at the cap
    assert 1 <= per_document["string_decoder"] < cap  # ... and do not make up for a short one
    assert len(task.eval_items) == sum(per_document.values()) < 60
    assert task.description.endswith(
        f"; {len(task.eval_items)} items from 3 held-out documents, at most {cap} from one"
    )
    assert task.eval_items == BUILDERS["cloze"](train, held_out, 0, 0, 60).eval_items
    # Spread over documents first: three items come from three documents.
    assert len({item["source_id"] for item in BUILDERS["cloze"](train, held_out, 0, 0, 3).eval_items}) == 3
    # The corpus stage builds 3x as many candidates and keeps the least contaminated, in their order: items come
    # in turns over the documents, so any first part stays spread, and is described again from what is kept.
    short = per_document["string_decoder"]
    kept = BUILDERS["cloze"](train, held_out, 0, 0, 180).eval_items[: 3 * short]
    assert Counter(item["source_id"] for item in kept) == {"gpl-3.0": short, "mpl-2.0": short, "string_decoder": short}
    assert mined_tasks.cloze_description(kept, from_training=False).endswith(
        f"; {3 * short} items from 3 held-out documents, at most {short} from one"
    )
    probe = BUILDERS["knowledge_probe"](train, held_out, 0, 0, 60)
    per_probe_document = Counter(item["source_id"] for item in probe.eval_items)
    assert max(per_probe_document.values()) <= mined_tasks.PROBE_PER_DOCUMENT
    assert "60 items from " in probe.description and "training documents" in probe.description
    # Document after document, densest in items first, so the first n items keep the fewest characters of
    # training text (what cpt must train on for the probe to mean anything).
    ids = [item["source_id"] for item in probe.eval_items]
    order = list(dict.fromkeys(ids))
    assert ids == sorted(ids, key=order.index)  # grouped: a document's items never come back later
    length = {doc["id"]: len(doc["text"]) for doc in train}
    density = [length[d] / per_probe_document[d] for d in order[:-1]]  # the last one may be cut short
    assert density == sorted(density)
    spread = BUILDERS["cloze"](train, train, 0, 0, 60).eval_items  # the held-out way, over the same documents
    spread_chars = sum(length[d] for d in {item["source_id"] for item in spread})
    assert sum(length[d] for d in order) < spread_chars / 3


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
