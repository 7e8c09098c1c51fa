"""Document-level translation: three decoders over the same documents, and their scores.

A document is a run of consecutive aligned sentences (a held-out Bible chapter, a chunk of one gettext
catalog). The decoders differ only in what the model sees while it translates sentence i:

- ``sentence``: the few-shot pairs and sentence i alone (what the sentence-level task scores);
- ``incremental``, window k: the same few-shot pairs, then the k preceding source sentences *with the
  model's own translations of them*, then sentence i (context-aware incremental decoding, as in the
  WMT24 discourse-level literary translation systems). ``k = 0`` is the sentence decoder;
- ``document``: the whole source document at once, the translation read back one line per sentence.

Hand-written rather than an lm-eval task because lm-eval's ``generate_until`` requests are independent
of each other: a prompt cannot hold what the model generated for an earlier request, which is the
whole point of incremental decoding. Scoring uses sacrebleu, as lm-eval's translation tasks do.

Scores: corpus chrF and BLEU over sentences, document-level BLEU (d-BLEU: BLEU over each document's
sentences joined, so a model is not penalised for where it splits them), and term consistency: for
each name or term a document repeats (a source word capitalised inside a sentence, not only as its first
word, found in two or more of its sentences, with its reference rendering found by co-occurrence),
whether the model renders it the same way every time.
"""

from __future__ import annotations

import difflib
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eval.tasks import translation_prompt

Generate = Callable[[Sequence[str], Sequence[int], str], list[str]]
"""``generate(prompts, max_new_tokens, stop) -> continuations``: greedy, at most ``max_new_tokens[i]`` tokens
for prompt i, each cut before its first ``stop``."""

DOCUMENT = "document"
"""The decoder name of whole-document translation; the others are ``k=<window>``."""

SENTENCE_TOKENS = 128
"""Most tokens generated for one sentence: a long verse is about 80 tokens of Spanish."""


def token_budget(sentence: str) -> int:
    """Tokens a translation of ``sentence`` may take: 2.5 per source word (a Spanish or French translation of an
    English verse takes about 2 in SmolLM2's vocabulary) and a margin, so a model stuck repeating itself
    stops near a real translation's length (on 2 CPU cores a generated token costs 30-100 ms)."""
    return min(SENTENCE_TOKENS, int(8 + 2.5 * len(sentence.split())))


@dataclass(frozen=True)
class Document:
    """Consecutive aligned sentences of one held-out document."""

    id: str
    source: str
    """The corpus source it came from (``bible_en_es``)."""
    source_lang: str
    target_lang: str
    sentences: tuple[str, ...]
    references: tuple[str, ...]


def has_pairs(doc: dict[str, Any]) -> bool:
    """A corpus record whose ``meta`` carries two or more aligned pairs: a document with context to use."""
    return len(doc.get("meta", {}).get("pairs") or []) >= 2


def documents_from_corpus(
    docs: Iterable[dict[str, Any]], source: str, count: int, sentences: int, seed: int = 0
) -> list[Document]:
    """``count`` documents of ``source`` (corpus records whose ``meta`` carries aligned ``pairs``), each cut to
    its first ``sentences`` pairs so a document's context is the text that really precedes each sentence.
    Documents with fewer than two pairs have no context to use and are passed over."""
    usable = sorted(
        (doc for doc in docs if doc.get("source") == source and has_pairs(doc)),
        key=lambda doc: doc["id"],
    )
    chosen = random.Random(seed).sample(usable, min(count, len(usable)))
    out = []
    for doc in sorted(chosen, key=lambda doc: doc["id"]):
        # One line per sentence: a gettext message may hold newlines, which would break the line format.
        pairs = [(" ".join(str(a).split()), " ".join(str(b).split())) for a, b in doc["meta"]["pairs"][:sentences]]
        meta = doc["meta"]
        out.append(
            Document(
                doc["id"],
                source,
                meta["source_lang"],
                meta["target_lang"],
                tuple(a for a, _ in pairs),
                tuple(b for _, b in pairs),
            )
        )
    return out


def sentence_prompt(
    doc: Document, index: int, fewshot: Sequence[tuple[str, str]], context: Sequence[tuple[str, str]] = ()
) -> str:
    """Few-shot pairs, each its own block answered as lm-eval shows them (the sentence-level task's format),
    then one block with the ``context`` pairs (earlier sentences and the model's translations) and sentence
    ``index``."""
    blocks = [f"{translation_prompt(doc.source_lang, doc.target_lang, source)} {target}" for source, target in fewshot]
    blocks.append(translation_prompt(doc.source_lang, doc.target_lang, doc.sentences[index], context))
    return "\n\n".join(blocks)


def document_prompt(doc: Document, example: Sequence[tuple[str, str]]) -> str:
    """One example document (training pairs) in the one-sentence-per-line format, then the whole document."""

    def block(sources: Sequence[str], targets: Sequence[str] | None) -> str:
        head = f"Translate from {doc.source_lang} to {doc.target_lang}, one sentence per line."
        text = [head, f"{doc.source_lang}:", *sources, f"{doc.target_lang}:"]
        return "\n".join(text + list(targets or []))

    shown = block([a for a, _ in example], [b for _, b in example]) if example else ""
    return (shown + "\n\n" if shown else "") + block(doc.sentences, None) + "\n"


def decode_incremental(
    docs: Sequence[Document],
    window: int,
    fewshot: Sequence[tuple[str, str]],
    generate: Generate,
    on_step: Callable[[int], None] | None = None,
) -> list[list[str]]:
    """Translate every document sentence by sentence, each prompt holding the ``window`` previous source
    sentences and the model's own translations of them. Position i of all documents is one batch; with no
    window every sentence is independent and all go in one call."""
    hypotheses: list[list[str]] = [[] for _ in docs]
    if window == 0:
        jobs = [(j, i) for j, doc in enumerate(docs) for i in range(len(doc.sentences))]
        prompts = [sentence_prompt(docs[j], i, fewshot) for j, i in jobs]
        outs = generate(prompts, [token_budget(docs[j].sentences[i]) for j, i in jobs], "\n")
        for (j, _), out in zip(jobs, outs, strict=True):
            hypotheses[j].append(out.strip())
        if on_step:
            on_step(len(jobs))
        return hypotheses
    for i in range(max((len(doc.sentences) for doc in docs), default=0)):
        active = [j for j, doc in enumerate(docs) if i < len(doc.sentences)]
        prompts = []
        for j in active:
            start = max(0, i - window)
            context = list(zip(docs[j].sentences[start:i], hypotheses[j][start:i], strict=True))
            prompts.append(sentence_prompt(docs[j], i, fewshot, context))
        budgets = [token_budget(docs[j].sentences[i]) for j in active]
        for j, out in zip(active, generate(prompts, budgets, "\n"), strict=True):
            hypotheses[j].append(out.strip())
        if on_step:
            on_step(len(active))
    return hypotheses


def decode_document(
    docs: Sequence[Document], example: Sequence[tuple[str, str]], generate: Generate
) -> list[list[str]]:
    """Translate each document in one generation; its first lines are read as the sentences' translations
    (missing lines count as empty, extra lines are dropped)."""
    budgets = [sum(token_budget(sentence) + 1 for sentence in doc.sentences) for doc in docs]
    outs = generate([document_prompt(doc, example) for doc in docs], budgets, "\n\n")
    hypotheses = []
    for doc, out in zip(docs, outs, strict=True):
        lines = [line.strip() for line in out.strip().split("\n") if line.strip()]
        lines = lines[: len(doc.sentences)]
        hypotheses.append(lines + [""] * (len(doc.sentences) - len(lines)))
    return hypotheses


_WORD = re.compile(r"\w+(?:['’]\w+)*")


def _sentence_words(text: str) -> list[str]:
    return _WORD.findall(text)


def _capitalised(word: str) -> bool:
    return len(word) >= 3 and word[0].isupper() and not word.isupper()


def repeated_terms(doc: Document, min_dice: float = 0.67) -> list[tuple[str, str, tuple[int, ...]]]:
    """(source term, its reference rendering, sentences holding the term) for each capitalised source word
    that appears capitalised inside a sentence (not only as its first word) and in two or more sentences.
    The rendering is the capitalised reference word whose sentences best match the term's (Dice >= 0.67)."""
    source_words = [_sentence_words(s) for s in doc.sentences]
    target_words = [_sentence_words(r) for r in doc.references]

    def sentences_with(words: list[list[str]], term: str) -> frozenset[int]:
        return frozenset(i for i, ws in enumerate(words) if term in ws)

    inner = {w for ws in source_words for w in ws[1:] if _capitalised(w)}
    candidates = {w for ws in target_words for w in ws if _capitalised(w)}
    terms = []
    for term in sorted(inner):
        where = sentences_with(source_words, term)
        if len(where) < 2:
            continue
        best, best_dice = "", 0.0
        for candidate in sorted(candidates):
            there = sentences_with(target_words, candidate)
            dice = 2 * len(where & there) / (len(where) + len(there))
            if dice > best_dice:
                best, best_dice = candidate, dice
        if best and best_dice >= min_dice:
            terms.append((term, best, tuple(sorted(where))))
    return terms


def rendering(hypothesis: str, reference_term: str, min_ratio: float = 0.6) -> str | None:
    """The hypothesis word most like the reference's rendering of a term (it may be the reference word, a
    misspelling, or the untranslated source name: Jordan for Jordán scores 0.83, Moses for Moisés 0.73), or
    None where no word is close enough (at 0.5, hijo passed for Dios)."""
    best, best_ratio = None, 0.0
    for word in _sentence_words(hypothesis):
        ratio = difflib.SequenceMatcher(None, word.casefold(), reference_term.casefold()).ratio()
        if ratio > best_ratio:
            best, best_ratio = word, ratio
    return best if best_ratio >= min_ratio else None


def term_consistency(docs: Sequence[Document], hypotheses: Sequence[Sequence[str]]) -> dict[str, int]:
    """Counts behind the consistency and term-accuracy scores, over every repeated term of every document.

    ``terms``: repeated terms the model rendered at least twice (found in two of its sentences);
    ``consistent``: those rendered the same way (case aside) every time; ``occurrences``: the term's
    sentences; ``correct``: occurrences rendered exactly as the reference renders them (case aside)."""
    counts = {"terms": 0, "consistent": 0, "occurrences": 0, "correct": 0}
    for doc, hyps in zip(docs, hypotheses, strict=True):
        for _, target, where in repeated_terms(doc):
            found = [rendering(hyps[i], target) for i in where]
            counts["occurrences"] += len(where)
            counts["correct"] += sum(1 for word in found if word and word.casefold() == target.casefold())
            seen = [word.casefold() for word in found if word]
            if len(seen) >= 2:
                counts["terms"] += 1
                counts["consistent"] += len(set(seen)) == 1
    return counts


def score(docs: Sequence[Document], hypotheses: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Sentence-level chrF and BLEU, document-level BLEU, term consistency and accuracy; per-sentence chrF as
    ``per_item`` and per-document BLEU as ``per_document``, so decoders and models can be paired item by item."""
    import sacrebleu

    flat_hyp = [h for hyps in hypotheses for h in hyps]
    flat_ref = [r for doc in docs for r in doc.references]
    doc_hyp = [" ".join(hyps) for hyps in hypotheses]
    doc_ref = [" ".join(doc.references) for doc in docs]
    terms = term_consistency(docs, hypotheses)
    return {
        "chrf": sacrebleu.corpus_chrf(flat_hyp, [flat_ref]).score,
        "bleu": sacrebleu.corpus_bleu(flat_hyp, [flat_ref]).score,
        "d_bleu": sacrebleu.corpus_bleu(doc_hyp, [doc_ref]).score,
        "consistency": terms["consistent"] / terms["terms"] if terms["terms"] else None,
        "term_accuracy": terms["correct"] / terms["occurrences"] if terms["occurrences"] else None,
        "term_counts": terms,
        "sentences": len(flat_ref),
        "documents": len(docs),
        "per_item": [sacrebleu.sentence_chrf(h, [r]).score for h, r in zip(flat_hyp, flat_ref, strict=True)],
        "per_document": [sacrebleu.sentence_bleu(h, [r]).score for h, r in zip(doc_hyp, doc_ref, strict=True)],
    }


def copy_baseline(docs: Sequence[Document]) -> dict[str, Any]:
    """The scores of copying every source sentence unchanged: what a model that does not translate gets."""
    return score(docs, [list(doc.sentences) for doc in docs])


def decoder_name(window: int | None) -> str:
    """``k=<window>`` for the sentence (k=0) and incremental decoders, ``document`` for whole documents."""
    return DOCUMENT if window is None else f"k={window}"
