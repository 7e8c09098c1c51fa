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
  removed, the left context as prompt and four candidates from the same source's vocabulary; passages
  and words come from prose only (never code blocks, HTML comments, tables or link definitions), and
  at most max(3, ceil(max_items / documents)) items from one document, so that a few long documents
  do not make the probe a test of their topics;
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

from stages.lib.task_builders import N_CHOICES, TaskData, _choice_item, _pair

EXCERPT_WORDS = 120
"""Words of document shown before a reading-comprehension question."""
QA_PER_DOCUMENT = 10
"""Questions appended to one document in its CPT form (at most 2 per pattern)."""
CLOZE_CONTEXT = (25, 50)
"""Words of left context shown before the removed word: at least, at most."""
CLOZE_RIGHT = 5
"""Words of real text after the removed word that must hold no copy of it: part of the passage that
decontamination protects, not shown. Showing them made the probe too easy to measure anything: with
the right context in every choice, the base SmolLM2-135M chose right on 93% of 300 held-out license
items, leaving almost no room for continued pre-training to show a gain."""
MIN_DOC_FREQ = 2
CLOZE_PER_DOCUMENT = 3
"""Cloze items one document may give at least: more only where ``max_items`` needs more per document."""
PROBE_PER_DOCUMENT = 6
"""Knowledge-probe items one training document may give. The probe asks about text cpt trains on (the
pack stage puts the probe's documents first and cpt always trains on them), and cpt's CPU budget is a
few dozen 512-token blocks, so the probe packs its items densely into few documents."""


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
    kind: str  # "heading", "para", "code" or "markup" (HTML comments and tags, table rows, link definitions)
    text: str
    sentences: list[str]
    lines: int = 1
    first_line: str = ""
    start: int = 0
    """Line span of the block in the text (``start`` included, ``end`` excluded)."""
    end: int = 0


# ---------------------------------------------------------------------------------------------- text


_ABBREV = re.compile(r"\b(?:e\.g|i\.e|etc|vs|cf|Mr|Mrs|Ms|Dr|No|Inc|Ltd|Co|Sec|Art|St|U\.S|viz|approx)\.$|\b[A-Z]\.$")
_SENT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_UNDERLINE = re.compile(r"^\s*([=\-~^*#+])\1{2,}\s*$")
_LIST_MARK = re.compile(r"^\s*(?:[-*+•]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)])\s+")
_MARKUP_LINE = re.compile(
    r"^\s*(?:<[A-Za-z/!][^<>]*>\s*)+$"  # a line of HTML tags only: <a id="x"></a>, <br>, <details>
    r"|^\s*\|.*\|\s*$"  # a table row, its |---| rule included
    r"|^\s{0,3}\[[^\]]+\]:\s*\S"  # a link reference definition: [label]: https://...
)
_QUOTE_MARK = re.compile(r"^\s{0,3}>(?!>)\s?")  # a blockquote's ">" (not a ">>>" prompt)


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


def _blocks(text: str, sentences: bool = True) -> list[_Block]:
    """Headings (Markdown ``#``, underlined or over-and-underlined), code blocks, markup and paragraphs of a
    text; paragraphs as plain text split into sentences unless ``sentences`` is false (line spans only)."""
    lines = _lines(text)
    blocks: list[_Block] = []
    para: list[str] = []
    para_start = 0
    code: list[str] | None = None
    code_start = 0

    def flush() -> None:
        if para and not sentences:
            blocks.append(_Block("para", "", [], len(para), "", para_start, i))
        elif para:
            joined = _inline_plain(" ".join(line.strip() for line in para))
            first = para[0].strip()
            blocks.append(_Block("para", joined, split_sentences(joined), len(para), first, para_start, i))
        para.clear()

    def add(line: str) -> None:
        nonlocal para_start
        if not para:
            para_start = i
        para.append(line)

    i = 0
    while i < len(lines):
        line = lines[i] if code is not None else _QUOTE_MARK.sub("", lines[i], count=1)
        stripped = line.strip()
        if code is not None:
            if stripped.startswith(("```", "~~~")):
                blocks.append(_Block("code", "\n".join(code), [], start=code_start, end=i + 1))
                code = None
            else:
                code.append(line)
        elif stripped.startswith(("```", "~~~")):
            flush()
            code, code_start = [], i
        elif stripped.startswith("<!--"):
            # An HTML comment (Node.js's "<!-- YAML added: v8.4.0 -->" history), up to its closing "-->".
            flush()
            start = i
            while "-->" not in lines[i] and i + 1 < len(lines):
                i += 1
            blocks.append(_Block("markup", "", [], start=start, end=i + 1))
        elif _MARKUP_LINE.match(line):
            flush()
            blocks.append(_Block("markup", "", [], start=i, end=i + 1))
        elif heading := _MD_HEADING.match(line):
            flush()
            blocks.append(_Block("heading", heading.group(1).strip(), [], start=i, end=i + 1))
        elif _UNDERLINE.match(line):
            # An underline closes the one-line paragraph above it into a heading; an overline is skipped.
            if len(para) == 1 and len(para[0].split()) <= 15:
                blocks.append(_Block("heading", para.pop().strip(), [], start=i - 1, end=i + 1))
            else:
                flush()
        elif not stripped:
            flush()
        elif line.startswith(("    ", "\t")) and not para and _looks_like_code(stripped):
            # An indented code block (Markdown, reST "::"): its indented lines up to a blank or outdented line.
            run, start = [stripped], i
            while i + 1 < len(lines) and lines[i + 1].startswith(("    ", "\t")):
                i += 1
                run.append(lines[i].strip())
            blocks.append(_Block("code", "\n".join(run), [], start=start, end=i + 1))
        elif _LIST_MARK.match(line):
            flush()
            add(_LIST_MARK.sub("", line))
        else:
            add(line)
        i += 1
    if code is not None:
        blocks.append(_Block("code", "\n".join(code), [], start=code_start, end=i))
    flush()
    return blocks


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _inline_plain(text: str) -> str:
    """Markdown inline markup as plain words: links to their text, no backticks, emphasis or images."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]*)\]\[[^\]]*\]", r"\1", text)  # reference links: [`fs.open()`][] -> `fs.open()`
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
        yield Mined("title", excerpt, question, _inline_plain(title), standalone)


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
        seen: dict[str, str] = {}  # lower-cased -> as first written ("autoAllocateChunkSize", "OpenSSL")
        for word in re.findall(r"(?<![\w.])[A-Za-z]+(?!\w)", sentence):  # whole words: not SHARE of SHARE_ENV
            if salient(word.lower()):
                seen.setdefault(word.lower(), word)
        if len(seen) < 3:
            continue
        words = ", ".join(list(seen.values())[:3])
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
_OPENERS = _word_set(
    "typically generally currently finally today hence thus similarly alternatively additionally usually often "
    "sometimes again below above instead meanwhile likewise everything nobody somebody"
)
"""Sentence openers outside ``COMMON_WORDS`` that read as a term before "is" ("Typically this is ...")."""
_VERBS = _word_set("provides offers has gives uses requires returns contains includes allows describes defines")
_NOT_DEFINITION = re.compile(
    r"(?:the )?same\b"  # "Behavior is the same as --env-file"
    r"|(?:an?|the) (?:(?:simple|short|quick|brief|basic|small|minimal|rough|high-level|approximate) )*"
    r"(?:overview|example|demonstration|introduction|summary|illustration|sample|snippet|list|equivalent)\b"
)
"""What follows "X is" in a sentence that defines nothing: "X is the same as", "X is a simple overview of"."""


def _is_term(term: str) -> bool:
    """A term a sentence can define: one noun-like word that is not common English nor a sentence opener
    ("Following", "Typically"), or an identifier (CamelCase, digits, ``_``, ``-``, capitals), or several
    words without function words ("of" and "and" aside) that do not open with a common word ("only
    difference", "default value")."""
    words = term.split()
    lower = [w.lower() for w in words]
    if any(w in _NOT_TERMS or (w in STOP_WORDS and w not in ("of", "and")) for w in lower):
        return False
    if len(words) > 1:  # "The serialization API provides means of ...": a verb is no part of a term
        return lower[0] not in COMMON_WORDS and lower[0] not in _OPENERS and lower[-1] not in _VERBS
    word = words[0]
    if re.search(r"[a-z][A-Z]|[\d_\-]", word) or (word.isupper() and len(word) > 1):
        return True  # an identifier or acronym: triggerAsyncId, NO_COLOR, Node-API, HKDF
    return len(word) >= 3 and lower[0] not in COMMON_WORDS and lower[0] not in _OPENERS


def mine_definitions(doc: _Doc) -> Iterator[Mined]:
    """A sentence "X is/means/refers to ..." -> "Define X." -> that sentence."""
    for k, sentence in enumerate(doc.sentences):
        match = _DEFINITION.match(sentence) if _is_prose(sentence) else None
        if not match:
            continue
        term, rest = match.group("term").strip(), match.group("rest")
        if not _is_term(term) or len(rest.split()) < 4 or _NOT_DEFINITION.match(rest):
            continue
        if match.group("verb") in ("is", "are") and not re.match(r"(?:an?|the|one|any)\s", rest):
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
        if not match or doc.sentences[k].endswith(":"):
            continue  # "However, it can be accessed using:" introduces code, no statement
        if _is_prose(first) and len(match.group("rest").split()) >= 4 and _is_prose(doc.sentences[k]):
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
_DANGLING = _word_set(
    "and or nor but either is are was were be been may might can could will would possibly mostly partly only also not "
    "the a an of to in on for with by resulted results"
)


def _whole_clause(text: str, words: int = 4) -> bool:
    """A part of a sentence that reads on its own: ``words`` words or more, balanced parentheses, not
    ending in a function word ("Because SHA-1 is broken and", "(e.g.", "The reason this is problematic is")."""
    tokens = text.rstrip(" .,;:").split()
    return (
        len(tokens) >= words
        and text.count("(") == text.count(")")
        and tokens[-1].lower().strip("\"'") not in _DANGLING
        and not re.match(r"(?:Because|Since|As|The reason)\b", text)
    )


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
            if not _whole_clause(effect) or not _whole_clause(cause, 2):
                continue  # "... cannot be cloned (e.g. because it contains functions)": a part of a parenthesis
            question = f'What is the reason for this: "{_sentence_case(effect)}"'
            yield Mined("cause", doc.around(k, k), question, _sentence_case(cause), question)
        elif (
            (match := _RESULT_INSIDE.match(sentence))
            and not _CONDITIONAL.search(match.group("cause"))
            and _whole_clause(match.group("cause"))
            and _whole_clause(match.group("effect"), 2)
        ):
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
_SUBORDINATE = re.compile(r"(?:If|Unless|When|Whether|Because|Since|To|Especially|Whereas|Although)\b")
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
        if _SUBORDINATE.match(a) or len(re.findall(r"[A-Za-z]{3,}", re.sub(r"'[^']*'|\"[^\"]*\"", "", b))) < 2:
            continue  # "If the source value of a text-based format (i.e., 'json', 'module')": no rephrasing
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
    # A sentence repeated in a document ("This function is only available on POSIX platforms") is asked once.
    out: dict[str, list[Mined]] = {}
    for kind, items in found.items():
        seen: set[tuple[str, str]] = set()
        for m in items:
            if (m.question, m.answer) not in seen:
                seen.add((m.question, m.answer))
                out.setdefault(kind, []).append(m)
    return out


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


_NOT_PLAIN = re.compile(
    r"`+[^`]*`+"  # code spans
    r"|\{[^{}\n]*\}"  # type annotations: {string|Buffer}
    r"|<[^<>\n]*>"  # inline HTML tags, autolinks
    r"|\]\([^)\s]*\)|\]\[[^\]]*\]"  # link targets
    r"|\S*(?:https?://|www\.)\S*"
)
_PLAIN_WORD = re.compile(r"(?<!\S)(?P<core>[A-Za-z]+)(?P<tail>[.,;:!?)\"']*)(?!\S)")
_PLAIN_CORE = re.compile(r"(?<!\S)([A-Za-z]+)[.,;:!?)\"']*(?!\S)")


class _Prose:
    """A document's prose, for cloze windows: runs of consecutive paragraphs (blank lines between at most;
    a heading, code, HTML comment or tag, table row or link definition ends a run), each as its whitespace
    tokens joined by one space, so that a window inside one run is a substring of the whitespace-normalised
    text. Its plain words are letters with closing punctuation at most, outside code spans, ``{type}``
    braces, tags and link targets."""

    def __init__(self, text: str) -> None:
        lines = _lines(text)
        runs: list[list[str]] = []
        previous: _Block | None = None
        for block in _blocks(text, sentences=False):
            if block.kind != "para":
                previous = None
                continue
            tokens = " ".join(lines[block.start : block.end]).split()
            if previous is not None and all(not line.strip() for line in lines[previous.end : block.start]):
                runs[-1].extend(tokens)
            else:
                runs.append(tokens)
            previous = block
        self.runs = [" ".join(tokens) for tokens in runs]
        # Markup blanked out character for character (spaces kept): offsets and token counts stay the same.
        self.masked = [_NOT_PLAIN.sub(lambda m: re.sub(r"\S", "\0", m.group()), run) for run in self.runs]

    def words(self) -> Iterator[str]:
        """The plain words, as written."""
        for masked in self.masked:
            yield from _PLAIN_CORE.findall(masked)

    def tokens(self) -> tuple[list[str], dict[int, tuple[re.Match[str], int, int]]]:
        """All tokens of the runs in order, and by token index each plain word's match and its run's span
        of token indices (first, after last)."""
        tokens: list[str] = []
        plain: dict[int, tuple[re.Match[str], int, int]] = {}
        for run, masked in zip(self.runs, self.masked, strict=True):
            first, words = len(tokens), run.split(" ")
            index, offset = first, 0
            for m in _PLAIN_WORD.finditer(masked):
                index += masked.count(" ", offset, m.start())
                offset = m.start()
                plain[index] = (m, first, first + len(words))
            tokens.extend(words)
        return tokens, plain


def _doc_frequency(docs: list[dict[str, Any]]) -> Counter[str]:
    """Document frequency of lower-cased plain prose words of four letters or more, in one pass."""
    df: Counter[str] = Counter()
    for doc in docs:
        df.update({w.lower() for w in _Prose(doc["text"]).words() if len(w) >= 4})
    return df


SUCCESSORS_PER_WORD = 64
"""Salient words kept per preceding word (the most frequent): enough distractors, memory bounded."""


def _successors(docs: list[dict[str, Any]], salient: dict[str, int]) -> dict[str, list[str]]:
    """For each preceding word, the salient words that follow it in the training prose, most frequent first.

    Distractors drawn from these fit the word just before the blank ("you [may / agree / expressly]"),
    so the probe asks which one the wider passage calls for: with distractors of similar frequency
    only, the base SmolLM2-135M already chose right on 87% of held-out license items."""
    pairs: dict[str, Counter[str]] = {}
    for doc in docs:
        tokens, plain = _Prose(doc["text"]).tokens()
        for i, (match, first, _) in plain.items():
            word = match.group("core").lower()
            if i > first and word in salient:
                previous = _bare(tokens[i - 1])
                if previous:
                    pairs.setdefault(previous, Counter())[word] += 1
    return {prev: [w for w, _ in counts.most_common(SUCCESSORS_PER_WORD)] for prev, counts in pairs.items()}


def _bare(token: str) -> str:
    """A token lower-cased without surrounding punctuation ("(You" -> "you")."""
    return token.strip("\"'()[]{}*_`.,;:!?").lower()


class _Vocabulary:
    """A source's domain-salient words: document frequency >= 2, four letters or more, not common English."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        # A word in nearly every document stays salient: it is the domain's ("licensor"), unlike common English.
        df = _doc_frequency(docs)
        self.df = {w: c for w, c in df.items() if c >= MIN_DOC_FREQ and w not in COMMON_WORDS and w not in STOP_WORDS}
        self.by_df = sorted(self.df, key=lambda w: (-self.df[w], w))
        self.rank = {w: i for i, w in enumerate(self.by_df)}
        self.successors = _successors(docs, self.df)

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
    cap: int | None = None,
) -> list[Any]:
    """Up to ``total`` results spread over the documents in a seeded order: a fair share from each, then
    the leftovers of documents that had more, in turns, up to ``cap`` from one document (3 shares unless
    told). Mining stops once the share is met."""
    if total <= 0 or not docs:
        return []
    order = list(range(len(docs)))
    rng.shuffle(order)
    share = max(1, math.ceil(total / len(docs)))
    cap = max(share, 3 * share if cap is None else cap)
    out: list[Any] = []
    spare: list[list[Any]] = []
    for i in order:
        found = make(docs[i], cap)[:cap]
        out.extend(found[:share])
        if len(found) > share:
            spare.append(found[share:])
        if len(out) >= total:
            return out[:total]
    for turn in range(cap - share):
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


_SUFFIXES = ("ing", "ed", "ly", "tion", "ment", "s")


def _suffix(word: str) -> str:
    return next((s for s in _SUFFIXES if word.endswith(s)), "")


def _cloze_items(doc: dict[str, Any], vocab: _Vocabulary, limit: int, seed: int, held_out: bool) -> list[dict]:
    """Up to ``limit`` non-overlapping cloze items from one document's prose: a plain word removed, its
    window (left and right context) inside one run of paragraphs, never in code or markup."""
    tokens, plain = _Prose(doc["text"]).tokens()
    low, high = CLOZE_CONTEXT
    rng = _rng_for(seed, doc["id"])
    positions = [
        i
        for i, (m, first, end) in plain.items()
        if i - first >= low and i + CLOZE_RIGHT < end and m.group("core").lower() in vocab
    ]
    rng.shuffle(positions)
    items: list[dict] = []
    taken: list[tuple[int, int]] = []
    for i in positions[: 40 + 4 * limit]:  # bounded tries per document
        if len(items) >= limit:
            break
        match, first, _ = plain[i]
        start, stop = max(first, i - high), i + 1 + CLOZE_RIGHT
        if any(start < b and a < stop for a, b in taken):
            continue
        core, tail = match.group("core"), match.group("tail")
        word = core.lower()
        left, right = " ".join(tokens[start:i]), " ".join(tokens[i + 1 : stop])
        window = f"{left} {right}".lower()
        if word in window:
            continue  # copying from the shown text would solve it

        def allowed(w: str, word: str = word, window: str = window) -> bool:
            """Absent from the window, no shared stem with the answer ("licensor" against "licensors")."""
            return w not in window and w[:5] != word[:5] and word not in w and w not in word

        # First choice: words that follow the same preceding word in the training prose, so every candidate
        # fits locally; otherwise words of similar document frequency, length and ending.
        pool = [w for w in vocab.successors.get(_bare(tokens[i - 1]), []) if allowed(w)][: 4 * (N_CHOICES - 1)]
        if len(pool) < N_CHOICES - 1:
            pool = [w for w in vocab.neighbours(word) if abs(len(w) - len(word)) <= 3 and allowed(w)]
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
        answer = core
        options = [_case_like(w, core) for w in distractors]
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


def cloze_description(items: list[dict[str, Any]], from_training: bool) -> str:
    """What a cloze task is, with how many items come from how many documents (and at most from one):
    true of ``items`` as given, so a caller that keeps some of the items describes them again with it."""
    per_doc = Counter(item["source_id"] for item in items)
    docs = len(per_doc)
    where = (
        f"training document{'s' * (docs != 1)} (those densest in items; cpt always trains on them: "
        "closed-book recall of text it read once)"
        if from_training
        else f"held-out document{'s' * (docs != 1)}"
    )
    return (
        f"Cloze: a prose word removed after {CLOZE_CONTEXT[0]}-{CLOZE_CONTEXT[1]} words of prose context, "
        f"{N_CHOICES}-way choice among domain words that follow the same word elsewhere in the training text, "
        f"scored by the probability on the right word; {len(items)} items from {docs} {where}, "
        f"at most {max(per_doc.values(), default=0)} from one"
    )


PROBE_CANDIDATE_DOCUMENTS = 2000
"""Training documents the knowledge probe weighs (a seeded sample when a source has more): bounds the
mining time however large the source."""


def _probe_items(train: list[dict[str, Any]], vocab: _Vocabulary, max_items: int, seed: int) -> list[dict]:
    """Knowledge-probe items from the training documents densest in them (fewest characters per item),
    up to ``PROBE_PER_DOCUMENT`` each, document after document: a caller keeping the first n items keeps
    the fewest documents, so the text cpt must train on for the probe to mean anything stays small."""
    docs = sorted(train, key=lambda d: d["id"])
    if len(docs) > PROBE_CANDIDATE_DOCUMENTS:
        docs = random.Random(seed).sample(docs, PROBE_CANDIDATE_DOCUMENTS)
    found = [(doc, _cloze_items(doc, vocab, PROBE_PER_DOCUMENT, seed, False)) for doc in docs]
    found.sort(key=lambda pair: (len(pair[0]["text"]) / max(1, len(pair[1])), pair[0]["id"]))
    items: list[dict] = []
    for _, mined in found:
        if len(items) >= max_items:
            break
        items += mined[: max_items - len(items)]
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
        if from_training:
            items = _probe_items(train, vocab, max_items, seed)
        else:
            rng = random.Random(seed)
            # Spread over documents first: one long document must not make the probe a test of its topic.
            cap = max(CLOZE_PER_DOCUMENT, math.ceil(max_items / max(1, len(held_out))))
            items = _spread(
                held_out, rng, max_items, lambda doc, limit: _cloze_items(doc, vocab, limit, seed, True), cap
            )
            # In turns over the documents: a caller keeping the first n items (of candidates) keeps them spread.
            by_doc: dict[str, list[dict]] = {}
            for item in items:
                by_doc.setdefault(item["source_id"], []).append(item)
            items = [
                group[k]
                for k in range(max(map(len, by_doc.values()), default=0))
                for group in by_doc.values()
                if k < len(group)
            ]
        return TaskData(
            cloze_description(items, from_training),
            "multiple_choice",
            eval_items=items,
            baseline={"acc": 1 / N_CHOICES, "p_correct": 1 / N_CHOICES},
            origin="training" if from_training else "held_out",
            metric="p_correct",
        )

    build.__name__ = build.__qualname__ = name
    return build


cloze = _cloze_builder("cloze", from_training=False)
cloze.__doc__ = "Any domain: a held-out passage with a domain word removed -> the word among 4 (log-likelihood)."
knowledge_probe = _cloze_builder("knowledge_probe", from_training=True)
knowledge_probe.__doc__ = "Any domain: the cloze probe on training documents (closed book); no held-out text shown."
