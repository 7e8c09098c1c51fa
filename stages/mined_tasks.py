"""Tasks mined from raw text: a domain with only a folder of documents still gets SFT data and a score.

Why: continued pre-training on raw domain text teaches the domain but hurts a model's ability to answer
prompts; Cheng et al. (2023), "Adapting Large Language Models via Reading Comprehension" (AdaptLLM,
ICLR 2024, reference code github.com/microsoft/LMOps, ``adaptllm``) keep it by turning each document
into a reading-comprehension text: the document followed by questions mined from it with regular
expressions (title, word-to-text, inference and cause-effect from connectives, paraphrase, completion).
This module writes its own rule-based miner in that spirit, needing no labels and no metadata:

- ``reading_comprehension``: SFT pairs (a bounded excerpt + a mined question -> its answer) from
  training documents, and ``reading_comprehension_text``, the CPT form of one document;
- ``cloze``: a held-out domain probe scored by log-likelihood: a passage with one domain-salient word
  removed, four candidates from the same source's vocabulary sharing the same right context;
- ``knowledge_probe``: the same cloze built from training documents (closed-book recall), kept apart
  from held-out items by ``TaskData.origin = "training"``.

Every builder is deterministic for a seed and linear in the documents: a document is mined once, and
document frequencies take one pass over the training documents.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from stages.task_builders import N_CHOICES, TaskData, _choice_item, _pair

EXCERPT_WORDS = 120
"""Words of document shown before a reading-comprehension question."""
QA_PER_DOCUMENT = 10
"""Questions appended to one document in its CPT form (at most 2 per pattern)."""
CLOZE_CONTEXT = (25, 50)
"""Words of left context shown before the removed word: at least, at most."""
CLOZE_RIGHT = 5
"""Words of real text after the candidate, shared by every choice."""
MIN_DOC_FREQ = 2


# Common English words of four letters or more: never a cloze answer, never "domain-salient".
def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


COMMON_WORDS = _word_set(
    """
    about above across after again against almost alone along already also although always among another
    anyone anything anyway anywhere area areas around away back based became because become becomes been
    before began behind being believe below best better between both bring brought build built call called
    came cannot case cases certain change changes clear close come comes common complete could course
    current days described different does doing done down during each early easy either else enough even
    ever every example except fact false fall feel felt fine first five following follows form forms found
    four free from full further gave general give given gives going good great group half hand hard have
    having head hear help here high himself hold home however idea important include included includes
    including inside instead into itself just keep kind knew know known large last late later least less
    like likely line lines list little live long look made main make makes making many matter mean means
    might more most much must myself name near need needs never next none nothing number often once only
    onto open other others otherwise over part parts people perhaps place point possible present probably
    provide provided quite rather real really right said same second seem seems seen sent several shall
    short should show shown side simple since small some someone something sometimes soon still such sure
    take taken takes than that their them themselves then there therefore these they thing things think
    third this those though three through thus time times together told too took toward towards true
    under until upon used uses using usually very want wants well went were what whatever when where
    whether which while whole whom whose will with within without word words work works would year years
    your yours yourself able according actually added adding again allow allows along already another
    answer anyone appear applies apply around asked away based begin being below between beyond bring
    called cannot carry cause certain change check come consider contain contains could create created
    day describe detail details does each end enter even every example fact file files find first follow
    full give goes going hand happen having hold into keep large last leave left less level life like
    little long looking made make many mean might more move much name need new next note now number off
    old once only order other over own page part pass past person place plain point put read ready reason
    result same says second section see seen self sense set should show side since single small some
    sort start state states step stop such system take tell term terms test text than that then there these
    thing this those thought through today total turn type types under unless upon value values version
    view want ways week well what when where which while white whole wide will wish with within world
    write written wrong yet young also each just only very
    """
)
STOP_WORDS = _word_set("a an and are as at be but by for if in is it its no not of on or so the to was we he she i you")


@dataclass
class Mined:
    """One mined question: ``excerpt`` shown before it in an SFT prompt, ``standalone`` in the CPT form."""

    kind: str
    excerpt: str
    question: str
    answer: str
    standalone: str


@dataclass
class _Block:
    kind: str  # "heading", "para" or "code"
    text: str
    sentences: list[str]
    lines: int = 1
    first_line: str = ""


# ---------------------------------------------------------------------------------------------- text


_ABBREV = re.compile(r"\b(?:e\.g|i\.e|etc|vs|cf|Mr|Mrs|Ms|Dr|No|Inc|Ltd|Co|Sec|Art|St|U\.S|viz|approx)\.$|\b[A-Z]\.$")
_SENT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_UNDERLINE = re.compile(r"^\s*([=\-~^*#+])\1{2,}\s*$")
_LIST_MARK = re.compile(r"^\s*(?:[-*+•]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)])\s+")


def _clip(text: str, words: int) -> str:
    tokens = text.split()
    return " ".join(tokens) if len(tokens) <= words else " ".join(tokens[:words]) + " ..."


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph: split after . ! ? before a capital, not after common abbreviations."""
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return []
    out: list[str] = []
    start = 0
    for match in _SENT_END.finditer(text):
        tail = text[max(start, match.start() - 12) : match.start()].rstrip("\"')]")  # bounded: no rescans
        if _ABBREV.search(tail) and not tail.endswith(("!", "?")):
            continue
        out.append(text[start : match.end()].strip())
        start = match.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def _blocks(text: str) -> list[_Block]:
    """Headings (Markdown ``#``, underlined or over-and-underlined), code blocks and paragraphs of a text."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[_Block] = []
    para: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if para:
            joined = _inline_plain(" ".join(line.strip() for line in para))
            blocks.append(_Block("para", joined, split_sentences(joined), len(para), para[0].strip()))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if code is not None:
            if stripped.startswith(("```", "~~~")):
                blocks.append(_Block("code", "\n".join(code), []))
                code = None
            else:
                code.append(line)
        elif stripped.startswith(("```", "~~~")):
            flush()
            code = []
        elif heading := _MD_HEADING.match(line):
            flush()
            blocks.append(_Block("heading", heading.group(1).strip(), []))
        elif _UNDERLINE.match(line):
            # An underline closes the one-line paragraph above it into a heading; an overline is skipped.
            if len(para) == 1 and len(para[0].split()) <= 15:
                blocks.append(_Block("heading", para.pop().strip(), []))
            else:
                flush()
        elif not stripped:
            flush()
        elif line.startswith(("    ", "\t")) and not para and _looks_like_code(stripped):
            # An indented code block (Markdown, reST "::"): its indented lines up to a blank or outdented line.
            run = [stripped]
            while i + 1 < len(lines) and lines[i + 1].startswith(("    ", "\t")):
                i += 1
                run.append(lines[i].strip())
            blocks.append(_Block("code", "\n".join(run), []))
        elif _LIST_MARK.match(line):
            flush()
            para.append(_LIST_MARK.sub("", line))
        else:
            para.append(line)
        i += 1
    if code is not None:
        blocks.append(_Block("code", "\n".join(code), []))
    flush()
    return blocks


def _inline_plain(text: str) -> str:
    """Markdown inline markup as plain words: links to their text, no backticks, emphasis or images."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"`+([^`]*)`+", r"\1", text)
    return re.sub(r"(?<!\w)(\*\*|__|\*|_)(\S(?:[^\n]{0,200}?\S)?)\1(?!\w)", r"\2", text)


def _looks_like_code(line: str) -> bool:
    return bool(re.search(r"[{};=<>]|^\$ |^>>> |\(\)", line)) and not re.search(r"[a-z]{3,} [a-z]{3,} [a-z]{3,}", line)


def _is_prose(sentence: str) -> bool:
    """A sentence worth asking about: 6 to 60 words, mostly letters, ending like a sentence."""
    n = len(sentence.split())
    if not 6 <= n <= 60 or not sentence.rstrip("\"')]").endswith((".", "!", "?", ":", ";")):
        return False
    letters = sum(c.isalpha() for c in sentence)
    return letters >= 0.6 * len(sentence) and not re.search(r"https?://|[{}<>|=_]{2}", sentence)


def _reads_like_title(line: str) -> bool:
    """A first line that reads like a title: 1 to 12 words, no closing period, starts with a letter."""
    words = line.split()
    return (
        1 <= len(words) <= 12
        and line[:1].isalpha()
        and not line.rstrip().endswith((".", ",", ";", ":"))
        and sum(c.isalpha() for c in line) >= 0.6 * len(line.replace(" ", ""))
    )


def _sentence_case(text: str) -> str:
    text = text.strip().strip(",;: ")
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


class _Doc:
    """A document's blocks and its prose sentences in reading order, for excerpts around any of them."""

    def __init__(self, text: str) -> None:
        self.blocks = _blocks(text)
        self.sentences: list[str] = []
        self.block_of: list[int] = []
        for b, block in enumerate(self.blocks):
            for sentence in block.sentences:
                self.sentences.append(sentence)
                self.block_of.append(b)

    def around(self, first: int, last: int, words: int = EXCERPT_WORDS) -> str:
        """Sentences ``first..last`` widened, alternately before and after, to about ``words`` words."""
        lo, hi = first, last
        count = sum(len(self.sentences[k].split()) for k in range(lo, hi + 1))
        while count < words:
            grew = False
            for k in (lo - 1, hi + 1):
                if 0 <= k < len(self.sentences) and count + len(self.sentences[k].split()) <= words:
                    count += len(self.sentences[k].split())
                    lo, hi = min(lo, k), max(hi, k)
                    grew = True
            if not grew:
                break
        return _clip(" ".join(self.sentences[lo : hi + 1]), words)


# ------------------------------------------------------------------------------------------ patterns


def mine_titles(doc: _Doc) -> Iterator[Mined]:
    """A heading (or a first line that reads like a title) -> "What is a suitable title for this text?"."""
    blocks = doc.blocks
    for b, block in enumerate(blocks):
        # A plain text's opening block of up to three short lines ("Apache License / Version 2.0, January 2004").
        first_line = (
            b == 0
            and block.kind == "para"
            and block.lines <= 3
            and len(block.text.split()) <= 25
            and _reads_like_title(block.first_line)
        )
        if block.kind != "heading" and not first_line:
            continue
        title = block.text.strip() if block.kind == "heading" else block.first_line
        if not _reads_like_title(title.rstrip(".")):
            continue
        body = []
        for nxt in blocks[b + 1 :]:
            if nxt.kind == "heading":
                break
            body.extend(nxt.sentences)
            if sum(len(s.split()) for s in body) >= EXCERPT_WORDS:
                break
        if sum(len(s.split()) for s in body) < 15:
            continue
        excerpt = _clip(" ".join(body), EXCERPT_WORDS)
        question = "What is a suitable title for this text?"
        standalone = (
            question
            if not any(x.kind == "heading" for x in blocks[:b]) and b <= 1
            else f'What is a suitable title for the part that begins "{_clip(body[0], 12)}"?'
        )
        yield Mined("title", excerpt, question, title, standalone)


def mine_summaries(doc: _Doc) -> Iterator[Mined]:
    """A paragraph of three sentences or more -> its first (topic) sentence as a one-sentence summary."""
    for block in doc.blocks:
        sentences = block.sentences
        if block.kind != "para" or len(sentences) < 3 or not _is_prose(sentences[0]) or len(sentences[0].split()) < 8:
            continue
        rest = " ".join(sentences[1:])
        if len(rest.split()) < 25:
            continue
        question = "Write a one-sentence summary of this text."
        standalone = f'Write a one-sentence summary of the paragraph that continues "{_clip(sentences[1], 12)}".'
        yield Mined("summary", _clip(rest, EXCERPT_WORDS), question, sentences[0], standalone)


def mine_word_to_text(doc: _Doc, salient: Callable[[str], bool]) -> Iterator[Mined]:
    """Three domain-salient words of a sentence -> "Write a sentence ... using these words" -> the sentence."""
    for k, sentence in enumerate(doc.sentences):
        if not _is_prose(sentence):
            continue
        seen: dict[str, None] = {}
        for word in re.findall(r"[A-Za-z]+", sentence):
            if salient(word.lower()):
                seen.setdefault(word.lower())
        if len(seen) < 3:
            continue
        words = ", ".join(list(seen)[:3])
        question = f"Write a sentence about the domain using these words: {words}."
        yield Mined("word_to_text", doc.around(k, k), question, sentence, question)


_DEFINITION = re.compile(
    r"^(?:\d+(?:\.\d+)*\.?\s+|\([a-z0-9]{1,4}\)\s+)?(?:An?\s+|The\s+)?[\"'“‘]?(?P<term>[A-Za-z][\w\-]*(?:\s+[\w\-]+){0,3}?)[\"'”’]?\s+"
    r"(?P<verb>is defined as|shall mean|means|refers to|is|are)\s+(?P<rest>.+)$"
)
_NOT_TERMS = _word_set(
    "it this that there these those he she they we you which what who here each one all such software program work "
    "when if where unless although while because once as in for to any your our his her its no every whoever"
)


def mine_definitions(doc: _Doc) -> Iterator[Mined]:
    """A sentence "X is/means/refers to ..." -> "Define X." -> that sentence."""
    for k, sentence in enumerate(doc.sentences):
        match = _DEFINITION.match(sentence) if _is_prose(sentence) else None
        if not match:
            continue
        term = match.group("term").strip()
        if term.lower() in _NOT_TERMS or term.split()[0].lower() in _NOT_TERMS or len(match.group("rest").split()) < 4:
            continue
        if match.group("verb") in ("is", "are") and not re.match(r"(?:an?|the|one|any)\s", match.group("rest")):
            continue  # "Copying is permitted ...": only "X is a/an/the ..." reads as a definition
        question = f'Define "{term}".'
        yield Mined("definition", doc.around(k, k), question, sentence, question)


_NLI = (
    ("Yes", r"(?:Therefore|Thus|Hence),?|(?:Consequently|Accordingly),"),
    ("No", r"(?:However|In contrast|On the other hand|Nevertheless|Conversely),|But,?"),
    ("Maybe", r"(?:Moreover|Furthermore|In addition|Additionally|Also|Besides),"),
)
"""Label, connectives opening the second sentence ("In addition to ..." without a comma is no connective)."""
_NLI_RE = [(label, re.compile(rf"^(?:{words})\s+(?P<rest>.+)$")) for label, words in _NLI]


def _connected(doc: _Doc, pattern: re.Pattern[str]) -> Iterator[tuple[int, str, str]]:
    """Consecutive prose sentences of one block where the second opens with a connective of ``pattern``."""
    for k in range(1, len(doc.sentences)):
        if doc.block_of[k] != doc.block_of[k - 1]:
            continue
        match = pattern.match(doc.sentences[k])
        first = doc.sentences[k - 1]
        if match and _is_prose(first) and len(match.group("rest").split()) >= 4 and _is_prose(doc.sentences[k]):
            yield k, first, _sentence_case(match.group("rest"))


def mine_inference(doc: _Doc) -> Iterator[Mined]:
    """Sentence pairs joined by Therefore (Yes), However (No), Moreover (Maybe) -> "Does ... entail ...?"."""
    for label, pattern in _NLI_RE:
        for k, premise, hypothesis in _connected(doc, pattern):
            question = (
                "Does the first sentence entail the second? Answer Yes, No or Maybe.\n"
                f"First sentence: {premise}\nSecond sentence: {hypothesis}"
            )
            yield Mined("inference", doc.around(k - 1, k), question, label, question)


_CAUSE_INSIDE = re.compile(
    r"^(?P<effect>.{15,}?),?\s+(?P<conn>because of|because|due to|as a result of)\s+(?P<cause>[^;:]{12,})"
)
_RESULT_INSIDE = re.compile(
    r"^(?P<cause>.{15,}?)(?:,|;)?\s+(?P<conn>so that|and therefore|as a result(?! of),?|therefore,)\s+"
    r"(?P<effect>[^;:]{12,})"
)
_CONDITIONAL = re.compile(r"^(?:If|Unless|When|Where|Whether|In the event|Provided|Except)\b")
_NEGATED = re.compile(r"\b(?:not|never)\b|n't\b")
_RESULT_NEXT = re.compile(r"^(?:As a result|Therefore|Consequently|For this reason|Because of this),?\s+(?P<rest>.+)$")


def mine_cause_effect(doc: _Doc) -> Iterator[Mined]:
    """A because/due to B -> "What is the reason for A?" -> B; A, so that/as a result B -> "What is a result of A?"."""
    for k, sentence in enumerate(doc.sentences):
        if not _is_prose(sentence):
            continue
        if match := _CAUSE_INSIDE.match(sentence):
            effect, cause = match.group("effect"), match.group("cause")
            if _CONDITIONAL.search(effect) or (match.group("conn") != "because" and _NEGATED.search(effect)):
                continue  # "If ... due to X, then ...", "will not fail due to X": X is no reason for the clause
            question = f'What is the reason for this: "{_sentence_case(effect)}"'
            yield Mined("cause", doc.around(k, k), question, _sentence_case(cause), question)
        elif (match := _RESULT_INSIDE.match(sentence)) and not _CONDITIONAL.search(match.group("cause")):
            question = f'What is a result of this: "{_sentence_case(match.group("cause"))}"'
            yield Mined("effect", doc.around(k, k), question, _sentence_case(match.group("effect")), question)
    for k, first, effect in _connected(doc, _RESULT_NEXT):
        question = f'What is a result of this: "{first}"'
        yield Mined("effect", doc.around(k - 1, k), question, effect, question)


_PARAPHRASE_INSIDE = (
    # "A (i.e., B)": B ends at the parenthesis.
    re.compile(r"^(?P<a>.{15,}?)\s\((?:i\.e\.|that is|in other words),?\s+(?P<b>[^()]{10,})\)"),
    # "A, that is, B" / "A; in other words, B" / "A, i.e. B": "that is" needs its commas ("a work that is based").
    re.compile(r"^(?P<a>.{15,}?)(?:,|;|:|\s-+)\s*(?:[Ii]n other words,?|that is,|i\.e\.,?)\s+(?P<b>.{10,})$"),
)
_PARAPHRASE_NEXT = re.compile(r"^(?:In other words|That is to say|That is|Put simply|Simply put),?\s+(?P<rest>.+)$")


def mine_paraphrases(doc: _Doc) -> Iterator[Mined]:
    """A. In other words, B / A, that is, B / A (i.e., B) -> "Rephrase in other words: A" -> B."""
    for k, sentence in enumerate(doc.sentences):
        if not _is_prose(sentence):
            continue
        match = _PARAPHRASE_INSIDE[0].match(sentence) or _PARAPHRASE_INSIDE[1].match(sentence)
        if not match:
            continue
        a = match.group("a").split(", ")[-1] if len(match.group("a").split()) > 25 else match.group("a")
        b = match.group("b").rstrip(".,;")
        if len(a.split()) >= 3 and len(b.split()) >= 2:
            question = f'Rephrase in other words: "{a.strip()}"'
            yield Mined("paraphrase", doc.around(k, k), question, b.strip(), question)
    for k, first, rest in _connected(doc, _PARAPHRASE_NEXT):
        question = f'Rephrase in other words: "{first}"'
        yield Mined("paraphrase", doc.around(k - 1, k), question, rest, question)


def mine_completions(doc: _Doc) -> Iterator[Mined]:
    """The first part of a paragraph (or text) -> "How would you complete this text?" -> the next sentences."""
    sentences, blocks = doc.sentences, doc.block_of
    k = 0
    while k < len(sentences):
        # A run of prose sentences of one block, then cut it where about 60% of its words come before.
        end = k
        while end + 1 < len(sentences) and blocks[end + 1] == blocks[k]:
            end += 1
        run = sentences[k : end + 1]
        if len(run) >= 3:
            total = sum(len(s.split()) for s in run)
            cut, count = 0, 0
            while cut < len(run) - 1 and count + len(run[cut].split()) <= min(0.6 * total, EXCERPT_WORDS):
                count += len(run[cut].split())
                cut += 1
            continuation = run[cut : cut + 2]
            if cut >= 1 and count >= 20 and all(_is_prose(s) for s in continuation):
                prefix = " ".join(run[:cut])
                question = "How would you complete this text?"
                standalone = f'How would you complete this text: "... {" ".join(prefix.split()[-30:])}"'
                yield Mined("completion", _clip(prefix, EXCERPT_WORDS), question, " ".join(continuation), standalone)
        k = end + 1


PATTERNS = ("title", "summary", "word_to_text", "definition", "inference", "cause_effect", "paraphrase", "completion")


def mine(text: str, salient: Callable[[str], bool] | None = None) -> dict[str, list[Mined]]:
    """Every question each pattern finds in one text, by pattern name (in text order)."""
    doc = _Doc(text)
    is_salient = salient or _plain_salient
    found = {
        "title": list(mine_titles(doc)),
        "summary": list(mine_summaries(doc)),
        "word_to_text": list(mine_word_to_text(doc, is_salient)),
        "definition": list(mine_definitions(doc)),
        "inference": list(mine_inference(doc)),
        "cause_effect": list(mine_cause_effect(doc)),
        "paraphrase": list(mine_paraphrases(doc)),
        "completion": list(mine_completions(doc)),
    }
    return {kind: items for kind, items in found.items() if items}


def _plain_salient(word: str) -> bool:
    return len(word) >= 5 and word.isalpha() and word not in COMMON_WORDS and word not in STOP_WORDS


def _rng_for(seed: int, key: str) -> random.Random:
    return random.Random(f"{seed}:{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}")


def _balanced(found: dict[str, list[Mined]], rng: random.Random, per_kind: int) -> list[Mined]:
    """Up to ``per_kind`` questions of each pattern, taken in turns over the patterns in a seeded order."""
    kinds = sorted(found)
    rng.shuffle(kinds)
    picks = {kind: rng.sample(found[kind], min(per_kind, len(found[kind]))) for kind in kinds}
    out: list[Mined] = []
    for turn in range(per_kind):
        out.extend(picks[kind][turn] for kind in kinds if turn < len(picks[kind]))
    return out


def reading_comprehension_text(text: str, seed: int) -> str:
    """The CPT form of a document: the text, then questions mined from it and their answers (AdaptLLM).

    The text comes back unchanged when no pattern finds anything."""
    found = mine(text)
    if not found:
        return text
    chosen = _balanced(found, _rng_for(seed, text), 2)[:QA_PER_DOCUMENT]
    qa = "\n\n".join(f"Question: {m.standalone}\nAnswer: {m.answer}" for m in chosen)
    return f"{text.rstrip()}\n\nAnswer questions based on the text above.\n{qa}"


# ------------------------------------------------------------------------------------- vocabulary


def _doc_frequency(docs: list[dict[str, Any]]) -> Counter[str]:
    """Document frequency of lower-cased alphabetic words of four letters or more, in one pass."""
    df: Counter[str] = Counter()
    for doc in docs:
        df.update({w.lower() for w in re.findall(r"(?<![\w\-])[A-Za-z]{4,}(?![\w\-])", doc["text"])})
    return df


class _Vocabulary:
    """A source's domain-salient words: document frequency >= 2, four letters or more, not common English."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        # A word in nearly every document stays salient: it is the domain's ("licensor"), unlike common English.
        df = _doc_frequency(docs)
        self.df = {w: c for w, c in df.items() if c >= MIN_DOC_FREQ and w not in COMMON_WORDS and w not in STOP_WORDS}
        self.by_df = sorted(self.df, key=lambda w: (-self.df[w], w))
        self.rank = {w: i for i, w in enumerate(self.by_df)}

    def __contains__(self, word: str) -> bool:
        return word in self.df

    def neighbours(self, word: str, reach: int = 120) -> Iterator[str]:
        """Words of similar document frequency, nearest rank first."""
        r = self.rank[word]
        for step in range(1, reach + 1):
            for k in (r - step, r + step):
                if 0 <= k < len(self.by_df):
                    yield self.by_df[k]


# ----------------------------------------------------------------------------------------- builders


def _spread(
    docs: list[dict[str, Any]],
    rng: random.Random,
    total: int,
    make: Callable[[dict[str, Any], int], list[Any]],
) -> list[Any]:
    """Up to ``total`` results spread over the documents in a seeded order: a fair share from each, then
    the leftovers of documents that had more, in turns. Mining stops once the share is met."""
    if total <= 0 or not docs:
        return []
    order = list(range(len(docs)))
    rng.shuffle(order)
    share = max(1, math.ceil(total / len(docs)))
    out: list[Any] = []
    spare: list[list[Any]] = []
    for i in order:
        found = make(docs[i], 3 * share)
        out.extend(found[:share])
        if len(found) > share:
            spare.append(found[share:])
        if len(out) >= total:
            return out[:total]
    for turn in range(2 * share):
        for rest in spare:
            if turn < len(rest):
                out.append(rest[turn])
                if len(out) >= total:
                    return out
    return out


def reading_comprehension(
    train: list[dict[str, Any]], held_out: list[dict[str, Any]], seed: int, max_pairs: int, max_items: int
) -> TaskData:
    """Any domain: reading-comprehension SFT pairs mined from training documents (AdaptLLM); no eval items."""
    rng = random.Random(seed)
    vocab = _Vocabulary(train)
    task = TaskData(
        "Reading comprehension mined from training documents (title, summary, word-to-text, definition, "
        "inference, cause-effect, paraphrase, completion; Cheng et al. 2023): SFT pairs only, no eval items",
        "generate_until",
        baseline_name="none",
    )
    counts: Counter[str] = Counter()

    def salient(word: str) -> bool:
        return word in vocab and len(word) >= 5

    def make(doc: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        found = mine(doc["text"], salient)
        if not found:
            return []
        doc_rng = _rng_for(seed, doc["id"])
        picks = {kind: doc_rng.sample(items, min(limit, len(items))) for kind, items in found.items()}
        pairs = []
        while len(pairs) < limit and any(picks.values()):
            # The pattern used least so far across all documents: rare patterns are not crowded out.
            kind = min((k for k in picks if picks[k]), key=lambda k: (counts[k], doc_rng.random()))
            m = picks[kind].pop()
            counts[kind] += 1
            pairs.append(_pair(f"{m.excerpt}\n\n{m.question}", m.answer, doc["id"]))
        return pairs

    task.sft_pairs = _spread(train, rng, max_pairs, make)
    return task


def _case_like(word: str, model: str) -> str:
    if model.isupper() and len(model) > 1:
        return word.upper()
    return word.capitalize() if model[:1].isupper() else word


_TOKEN = re.compile(r"^(?P<core>[A-Za-z]+)(?P<tail>[^\w\s]*)$")
_SUFFIXES = ("ing", "ed", "ly", "tion", "ment", "s")


def _suffix(word: str) -> str:
    return next((s for s in _SUFFIXES if word.endswith(s)), "")


def _cloze_items(doc: dict[str, Any], vocab: _Vocabulary, limit: int, seed: int, held_out: bool) -> list[dict]:
    """Up to ``limit`` non-overlapping cloze items from one document."""
    tokens = doc["text"].split()
    low, high = CLOZE_CONTEXT
    rng = _rng_for(seed, doc["id"])
    positions = [
        i
        for i in range(low, len(tokens) - CLOZE_RIGHT)
        if (m := _TOKEN.match(tokens[i])) and m.group("core").lower() in vocab
    ]
    rng.shuffle(positions)
    items: list[dict] = []
    taken: list[tuple[int, int]] = []
    for i in positions[: 40 + 4 * limit]:  # bounded tries per document
        if len(items) >= limit:
            break
        start, stop = max(0, i - high), i + 1 + CLOZE_RIGHT
        if any(start < b and a < stop for a, b in taken):
            continue
        match = _TOKEN.match(tokens[i])
        assert match
        core, tail = match.group("core"), match.group("tail")
        word = core.lower()
        left, right = " ".join(tokens[start:i]), " ".join(tokens[i + 1 : stop])
        window = f"{left} {right}".lower()
        if word in window:
            continue  # copying from the shown text would solve it
        # Similar document frequency, similar length, same ending where possible, absent from the window,
        # and no shared stem with the answer ("licensor" against "licensors" would be two right answers).
        pool = [
            w
            for w in vocab.neighbours(word)
            if abs(len(w) - len(word)) <= 3
            and w not in window
            and w[:5] != word[:5]
            and word not in w
            and w not in word
        ]
        same = [w for w in pool if _suffix(w) == _suffix(word)]
        pool = same if len(same) >= 3 * (N_CHOICES - 1) or len(same) >= len(pool) else pool
        pool = pool[: 4 * (N_CHOICES - 1)]
        distractors: list[str] = []
        for w in rng.sample(pool, len(pool)):
            if all(w[:5] != d[:5] for d in distractors):
                distractors.append(w)
            if len(distractors) == N_CHOICES - 1:
                break
        if len(distractors) < N_CHOICES - 1:
            continue
        answer = f"{core}{tail} {right}".rstrip()
        options = [f"{_case_like(w, core)}{tail} {right}".rstrip() for w in distractors]
        passage = f"{left} {core}{tail} {right}".strip()
        item = _choice_item(
            left,
            answer,
            options,
            rng,
            held_out=[passage] if held_out else [],
            word=core,
            distractor_words=[_case_like(w, core) for w in distractors],
            source_id=doc["id"],
        )
        items.append(item)
        taken.append((start, stop))
    return items


def _cloze_builder(name: str, from_training: bool) -> Callable[..., TaskData]:
    def build(
        train: list[dict[str, Any]], held_out: list[dict[str, Any]], seed: int, max_pairs: int, max_items: int
    ) -> TaskData:
        vocab = _Vocabulary(train)
        if len(vocab.df) < 4 * N_CHOICES:
            raise ValueError(
                f"task '{name}' found {len(vocab.df)} domain words used by {MIN_DOC_FREQ} training documents or "
                f"more (needs {4 * N_CHOICES}): give the source more training documents"
            )
        docs = train if from_training else held_out
        rng = random.Random(seed)
        where = "training documents (closed-book recall of trained text)" if from_training else "held-out documents"
        task = TaskData(
            f"Cloze: the domain word removed after {CLOZE_CONTEXT[0]}-{CLOZE_CONTEXT[1]} words of context, "
            f"{N_CHOICES}-way choice among words of the source's vocabulary of similar document frequency, "
            f"scored by log-likelihood; passages from {where}",
            "multiple_choice",
            baseline={"acc": 1 / N_CHOICES},
            origin="training" if from_training else "held_out",
        )
        task.eval_items = _spread(
            docs, rng, max_items, lambda doc, limit: _cloze_items(doc, vocab, limit, seed, not from_training)
        )
        return task

    build.__name__ = build.__qualname__ = name
    return build


cloze = _cloze_builder("cloze", from_training=False)
cloze.__doc__ = "Any domain: a held-out passage with a domain word removed -> the word among 4 (log-likelihood)."
knowledge_probe = _cloze_builder("knowledge_probe", from_training=True)
knowledge_probe.__doc__ = "Any domain: the cloze probe on training documents (closed book); no held-out text shown."
