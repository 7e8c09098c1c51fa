"""English-aligned sentence pairs from offline sources: a Bible pair and gettext catalogs.

- ``bible_pairs`` aligns the World English Bible (``engWEB2015eb``) with the Reina-Valera 1909
  (``spaRV1909eb``), both public domain, from Debian's SWORD modules (``sword-text-web``,
  ``sword-text-sparv``), read with ``pysword``. pysword's own markup stripping glues words where
  tags were (``Godcreated``) and keeps a glossary after Revelation, so ``clean_osis`` removes OSIS
  markup itself. Verses are paired by book/chapter/verse, then checked with a length-based
  (Gale-Church) alignment, because the Spanish module numbers some chapters the Hebrew way.
- ``gettext_pairs`` reads compiled catalogs ``<locale>/<lang>/LC_MESSAGES/*.mo`` (mostly GPL or
  LGPL software translations) and keeps sentence-like messages: no format strings, accelerators,
  markup, option help or labels. The .mo format is read directly: ``gettext.GNUTranslations``
  keeps its messages private.
"""

from __future__ import annotations

import functools
import html
import math
import re
import struct
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SWORD_ROOT = Path("/usr/share/sword")
EN_MODULE = "engWEB2015eb"
ES_MODULE = "spaRV1909eb"
LOCALE_DIR = Path("/usr/share/locale")

# --------------------------------------------------------------------------------------------------------------
# OSIS cleaning
# --------------------------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"<[^>]*>|[^<]+")
_TAG_RE = re.compile(r"<\s*(/?)\s*([A-Za-z][\w:.-]*)([^>]*?)(/?)\s*>", re.DOTALL)
_CHAPTER_END_RE = re.compile(r"<chapter\b[^>]*\beID=")

_DROP_ELEMENTS = frozenset({"note", "rdg", "rdgGroup", "speaker", "catchWord", "figure", "index", "milestone"})
"""Elements whose content is not verse text: footnotes and cross references, alternative readings, speaker labels."""
_BLOCK_ELEMENTS = frozenset(
    {"p", "l", "lg", "lb", "div", "chapter", "verse", "title", "head", "list", "item", "table", "row", "cell", "br"}
)
"""Elements that separate text like whitespace does (line/paragraph/stanza breaks, headings, list items)."""

_HARD = "\x00"  # a block boundary or removed content: a word break unless punctuation makes it needless
_SOFT = "\x01"  # an inline tag edge (<w>, <q>, <transChange>, ...): usually inside running text
_SOFT_ADDED = "\x02"  # the start of <transChange type="added">: supplied words, in RV1909 also enclitic pronouns
_WORD_TAG_RE = re.compile(r"</?w\b[^>]*>")
_SOFT_TRIVIAL_RE = re.compile(r"[\x01\x02]+(?=[\s.,;:!?)\]}”’»…])|(?<=[\s(\[{“‘«¿¡])[\x01\x02]+")
_SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+(?=[.,;:!?)\]}…])")
_BOUNDARY_RE = re.compile(r"[\s\x00-\x02]*[\x00-\x02][\s\x00-\x02]*")
_OPENERS = frozenset("([{“‘«¿¡—–/")
_CLOSERS = frozenset(".,;:!?)]}”’»—–/…")
_TIGHT_CLOSERS = frozenset(".,;:!?)]}…")

_ES_ENCLITIC_RE = re.compile(r"(?:(?:me|te|se|nos|os)?(?:lo|la|los|las|le|les)|me|te|se|nos|os)", re.IGNORECASE)
_ES_FUNCTION_TEXT = (
    "no y e o u ni que qué de del á a al en con por para como cómo cuánto cuán cuando donde si sí mas más pero "
    "os nos me te se lo la los las le les él ella ellos ellas ya aun aún también tan muy quien quién cual cuál "
    "su sus mi mis tu tus yo tú este esta esto ese esa eso aquel aquella"
)
_ES_FUNCTION_WORDS = frozenset(_ES_FUNCTION_TEXT.split())
_ES_SHORT_IMPERATIVES = frozenset({"di", "haz", "da", "ve", "pon", "ten", "sal", "ven", "he", "vi"})
"""Monosyllabic verb forms that take an enclitic in RV1909 (``dilo``, ``hazla``, ``dalo``, ``helo``, ``vilo``)."""
_ES_VERB_ENDING_RE = re.compile(r"(?:[aeií]r|[aeií]d|ndo)$")


def clean_osis(raw: str, lang: str = "en") -> str:
    """Turn the OSIS text of one SWORD verse entry into plain text.

    Footnotes, cross references, alternative readings, speaker labels and non-canonical headings are removed
    with their content; canonical titles (psalm superscriptions) are kept because the Spanish text has them
    inline. Each removed element, block tag or milestone leaves a word break, which becomes one space unless it
    sits next to punctuation (``God<note>…</note>created`` → ``God created``, ``word<note>…</note>,`` →
    ``word,``). Inline tag edges between two letters also become a space, except (``lang="es"``) an added
    enclitic pronoun after a verb (``sáca<transChange>lo</transChange>`` → ``sácalo``). Anything after the
    chapter's end marker is dropped: the module stores the book's trailing matter (WEB glossary) there.
    Entities are decoded and whitespace collapsed.
    """
    end = _CHAPTER_END_RE.search(raw)
    if end:
        raw = raw[: end.start()]
    raw = _WORD_TAG_RE.sub(_SOFT, raw)  # most tags are <w>: replace them in one pass (speed)
    parts: list[str] = []
    drop_name: str | None = None
    drop_depth = 0
    for token in _TOKEN_RE.findall(raw):
        tag = _TAG_RE.fullmatch(token) if token[0] == "<" else None
        if token[0] == "<" and tag is None:
            continue  # a stray '<...>' that is not a tag: nothing to keep
        if drop_name is not None:
            if tag and tag[2] == drop_name and not tag[4]:
                drop_depth += -1 if tag[1] else 1
                if drop_depth == 0:
                    drop_name = None
                    parts.append(_HARD)
            continue
        if tag is None:
            parts.append(html.unescape(token))
            continue
        closing, name, attrs, empty = tag[1], tag[2], tag[3], tag[4]
        dropped = name in _DROP_ELEMENTS or (name == "title" and 'canonical="true"' not in attrs)
        if dropped and not closing and not empty:
            drop_name, drop_depth = name, 1
            parts.append(_HARD)
        elif empty or name in _BLOCK_ELEMENTS or dropped:
            parts.append(_HARD)
        elif name == "transChange" and not closing:
            parts.append(_SOFT_ADDED)
        else:
            parts.append(_SOFT)
    text = "".join(parts)
    text = _SOFT_TRIVIAL_RE.sub("", text)  # inline tag edges next to a space or punctuation change nothing
    text = _BOUNDARY_RE.sub(functools.partial(_resolve_boundary, lang=lang), text)
    text = _SPACE_BEFORE_PUNCT_RE.sub("", text)  # the WEB source has a few: 'walk’</q> ?”'
    return " ".join(text.split())


def _resolve_boundary(match: re.Match[str], lang: str) -> str:
    """Replace a run of boundary markers (and the whitespace around it) by a space or nothing."""
    text = match.string
    before = text[match.start() - 1] if match.start() > 0 else ""
    after = text[match.end()] if match.end() < len(text) else ""
    run = match.group()
    if not before or not after:
        return ""
    if any(ch.isspace() for ch in run):  # the source had a space here: keep one, but never before , . ; etc.
        return "" if after in _TIGHT_CLOSERS else " "
    if before in _OPENERS or after in _CLOSERS:
        return ""  # '“<w>Blessed', '<w>God</w>.', 'God<note>…</note>,'
    if _HARD in run:
        return " "
    if not ((before.isalnum() or before in _CLOSERS) and (after.isalnum() or after in _OPENERS)):
        return ""  # an inline tag inside a token: 'Sela</w>-<w>hammah'
    if lang == "es" and _SOFT_ADDED in run and _is_es_enclitic_join(text, match.start(), match.end()):
        return ""
    return " "


def _is_es_enclitic_join(text: str, start: int, end: int) -> bool:
    """Whether the added word starting at ``end`` is an enclitic pronoun that RV1909 writes joined to its verb."""
    right = re.match(r"\w+", text[end:])
    left = re.search(r"\w+$", text[:start])
    if not right or not left or not _ES_ENCLITIC_RE.fullmatch(right.group()):
        return False
    word = left.group()
    lower = word.lower()
    if lower in _ES_FUNCTION_WORDS:
        return False
    preceding = text[: start - len(word)].rstrip(" \x00\x01\x02")
    sentence_initial = not preceding or preceding[-1] in ".!?:;¿¡"
    if word[0].isupper() and not sentence_initial:
        return False  # a name: 'Josué los circuncidó', 'si Dios lo permitiere'
    if lower in _ES_SHORT_IMPERATIVES or _ES_VERB_ENDING_RE.search(lower):
        return True
    return any(ch in "áéíóú" for ch in lower)  # RV1909 accents verbs that carry an enclitic: 'sácalo', 'díjole'


# --------------------------------------------------------------------------------------------------------------
# SWORD reading and verse alignment
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verse:
    """One non-empty cleaned verse."""

    chapter: int
    verse: int
    text: str


def _open_modules(sword_root: Path) -> Any:
    """Parse the module configuration files under ``sword_root`` (``pysword.modules.SwordModules``)."""
    try:
        from pysword.modules import SwordModules
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("bible_pairs needs pysword: pip install pysword") from error
    modules = SwordModules(str(sword_root))
    modules.parse_modules()
    return modules


def _open_bible(modules: Any, key: str) -> Any:
    """Open one module, caching decompressed blocks.

    pysword decompresses the whole block (here: a whole book) again for every verse it reads, which makes
    reading a Bible take minutes; a two-entry cache on the instance makes it well under a second.
    """
    bible = modules.get_bible_from_module(key)
    bible._decompressed_text = functools.lru_cache(maxsize=2)(bible._decompressed_text)
    return bible


def _book_index(bible: Any) -> dict[str, Any]:
    """Map OSIS book ids to pysword ``BookStructure`` objects, in canonical order."""
    return {book.osis_name: book for books in bible.get_structure().get_books().values() for book in books}


_ES_SUBSCRIPTION_RE = re.compile(r"(?<=Amén\.)\s+[^.]*\b(?:escrita|enviada)\b.*$", re.IGNORECASE)
"""RV1909 ends Paul's letters and Hebrews with the traditional subscription ('Escrita de Roma á los Efesios por
Tichîco.'), which is not scripture and not in the WEB."""


def _read_book(bible: Any, book: Any, lang: str) -> list[Verse]:
    """Read and clean every verse of one book, keeping the non-empty ones."""
    refs = [(chapter + 1, verse + 1) for chapter, count in enumerate(book.chapter_lengths) for verse in range(count)]
    texts = list(bible.get_iter(books=[book.osis_name], clean=False))
    if len(texts) != len(refs):
        raise ValueError(f"{book.osis_name}: read {len(texts)} verses, the versification has {len(refs)}")
    verses = []
    for (chapter, verse), raw in zip(refs, texts, strict=True):
        text = clean_osis(raw, lang)
        if text:
            verses.append(Verse(chapter, verse, text))
    if lang == "es" and verses:
        last = verses[-1]
        verses[-1] = Verse(last.chapter, last.verse, _ES_SUBSCRIPTION_RE.sub("", last.text))
        verses = _fix_drop_caps(verses)
    return verses


_CAPS_RUN_RE = re.compile(r"[¿¡(«“]*((?:[A-ZÁÉÍÓÚÑÜ]+\b[ ,]*)+)")
_SENTENCE_START_RE = re.compile(r"[.:!?»”]\s+")


def _fix_drop_caps(verses: list[Verse]) -> list[Verse]:
    """Undo the capitals RV1909 prints at the start of a chapter ('EN el principio', 'Y ACONTECIÓ', '¡OH Jehová').

    The capitalised run is looked for at the start of each verse, after a heading it ends ('ALEPH.'), and in a
    chapter's first verse at each sentence start until one is found (psalm titles come first). Its first word
    keeps an initial capital; each later word takes the spelling more frequent in the book ('Y JEHOVÁ' →
    'Y Jehová', 'Y DESPUÉS' → 'Y después'). Capitals inside a sentence are left alone ('YO SOY', 'JAH').
    """
    vocabulary = Counter(word for verse in verses for word in re.findall(r"\w+", verse.text))

    def recase(run: str) -> str:
        words = re.split(r"([ ,]+)", run)
        out = []
        for k, word in enumerate(words):
            if k % 2 or not word:
                out.append(word)
                continue
            capital, lower = word[0] + word[1:].lower(), word.lower()
            out.append(capital if k == 0 or vocabulary[capital] > vocabulary[lower] else lower)
        return "".join(out)

    fixed = []
    for verse in verses:
        text, position = verse.text, 0
        while True:
            match = _CAPS_RUN_RE.match(text, position)
            run = match.group(1) if match else ""
            if match and any(len(word) > 1 for word in re.findall(r"\w+", run)):
                text = text[: match.start(1)] + recase(run) + text[match.end(1) :]
                heading = _SENTENCE_START_RE.match(text, match.start(1) + len(run.rstrip(" ,")))
                if heading is None:  # the run starts the verse text: done
                    break
                position = heading.end()  # 'ALEPH. BIENAVENTURADOS', 'BETH. ¿CON qué': the text follows
            elif verse.verse == 1 and (following := _SENTENCE_START_RE.search(text, position)):
                position = following.end()  # a psalm title comes first: try the next sentence
            else:
                break
        fixed.append(Verse(verse.chapter, verse.verse, text) if text != verse.text else verse)
    return fixed


@dataclass(frozen=True)
class _LengthModel:
    """Gale-Church length model: target chars ≈ ``ratio`` × source chars, variance ``variance`` × source chars."""

    ratio: float
    variance: float

    @classmethod
    def fit(cls, pairs: Iterable[tuple[int, int]]) -> _LengthModel:
        """Estimate the model robustly from (source length, target length) pairs that mostly correspond."""
        pairs = [(a, b) for a, b in pairs if a > 0 and b > 0]
        ratio = sum(b for _, b in pairs) / sum(a for a, _ in pairs)
        squares = sorted((b - ratio * a) ** 2 / a for a, b in pairs)
        variance = squares[len(squares) // 2] / 0.455  # the median of a chi-square with one degree of freedom
        return cls(ratio, variance)

    def cost(self, source: int, target: int) -> float:
        """Minus log probability that texts of these lengths are translations of each other."""
        mean = (source + target / self.ratio) / 2
        delta = abs(target - self.ratio * source) / math.sqrt(2 * self.variance * (mean if mean > 1 else 1.0))
        return -math.log(math.erfc(delta)) if delta < 26 else 700.0  # erfc underflows near 27


# (English verses, Spanish verses) -> minus log prior. Most verses correspond one to one; a versification
# difference costs two rare moves (a skip or merge where the shift starts, another where it ends).
_MOVES: tuple[tuple[int, int, float], ...] = (
    (1, 1, -math.log(0.98)),
    (1, 0, -math.log(0.002)),
    (0, 1, -math.log(0.002)),
    (2, 1, -math.log(0.008)),
    (1, 2, -math.log(0.008)),
    (3, 1, -math.log(0.001)),
    (1, 3, -math.log(0.001)),
)
_OVERFLOW_MOVES: tuple[tuple[int, int, float], ...] = tuple((k, 1, -math.log(1e-4)) for k in range(4, 13))
"""Many English verses to the last Spanish verse of a chapter: osis2mod appends the verses of a longer source
chapter to the last verse the versification allows (RV1909 Job 39:30 holds WEB Job 39:27-40:5)."""
_SAME_LABEL_BONUS = 0.5
"""Nats taken off a one-to-one match of verses with the same number, so near-ties follow the numbering."""
_BAND = 8
"""How far (in verses) the alignment may stray from the Spanish verse with the same number."""
_MIN_SHIFT_RUN = 4
"""A renumbered stretch without a Spanish gap is believed only if it has this many shifted one-to-one pairs."""

Group = tuple[list[Verse], list[Verse]]


def _align_book(en: Sequence[Verse], es: Sequence[Verse], model: _LengthModel) -> list[Group]:
    """Align two books with a Gale-Church dynamic programme in a band around equal verse numbers.

    Returns the matched groups (one-to-one, two-to-one, ...) in order; verses left out are unmatched.
    """
    n, m = len(en), len(es)
    if not n or not m:
        return []
    en_labels = [(v.chapter, v.verse) for v in en]
    es_labels = [(v.chapter, v.verse) for v in es]
    es_position = {label: j for j, label in enumerate(es_labels)}
    centres, last = [], 0
    for label in en_labels:
        last = es_position.get(label, last)
        centres.append(last)
    centres.append(m)
    en_sum, es_sum = [0], [0]
    for verse in en:
        en_sum.append(en_sum[-1] + len(verse.text))
    for verse in es:
        es_sum.append(es_sum[-1] + len(verse.text))
    chapter_end = [j == m - 1 or es[j + 1].chapter != es[j].chapter for j in range(m)]
    rows: list[dict[int, tuple[float, int, int]]] = [{0: (0.0, 0, 0)}]
    for i in range(n + 1):
        if i:
            rows.append({})
        row = rows[i]
        for j in range(max(0, centres[i] - _BAND), min(m, centres[i] + _BAND) + 1):
            best = row.get(j)
            for di, dj, prior in _MOVES + _OVERFLOW_MOVES if j and chapter_end[j - 1] else _MOVES:
                if di > i or dj > j:
                    continue
                previous = rows[i - di].get(j - dj)
                if previous is None:
                    continue
                cost = previous[0] + prior
                if best is not None and cost - _SAME_LABEL_BONUS >= best[0]:
                    continue  # cannot win: the length cost is never negative
                if di > 1 and en_labels[i - di][0] != en_labels[i - 1][0] and not chapter_end[j - 1]:
                    continue  # English verses of two chapters only join as overflow into a chapter's last verse
                if dj > 1 and es_labels[j - dj][0] != es_labels[j - 1][0]:
                    continue
                if di and dj:
                    cost += model.cost(en_sum[i] - en_sum[i - di], es_sum[j] - es_sum[j - dj])
                    if di == dj == 1 and en_labels[i - 1] == es_labels[j - 1]:
                        cost -= _SAME_LABEL_BONUS
                if best is None or cost < best[0]:
                    best = (cost, di, dj)
            if best is not None and (i or j):
                row[j] = best
    if m not in rows[n]:
        raise ValueError("alignment band too narrow for this book")
    groups: list[Group] = []
    i, j = n, m
    while i or j:
        _, di, dj = rows[i][j]
        if di and dj:
            groups.append((list(en[i - di : i]), list(es[j - dj : j])))
        i, j = i - di, j - dj
    groups.reverse()
    return groups


def _is_same_label(group: Group) -> bool:
    """Whether a group pairs one English and one Spanish verse with the same number."""
    (en, es) = group
    return len(en) == len(es) == 1 and (en[0].chapter, en[0].verse) == (es[0].chapter, es[0].verse)


def _keep_supported_shifts(groups: list[Group], en: Sequence[Verse], es: Sequence[Verse]) -> list[Group]:
    """Keep the alignment's departures from the numbering only where the module structure supports them.

    Verse lengths alone also "explain" textual variants (a verse the WEB omits, a longer reading) as shifts.
    Each maximal run of groups that departs from equal numbers is kept if it touches a verse that is empty in
    the Spanish module (renumbered chapters leave such gaps), or if it merges or splits verses (renumbering
    moves text, it does not lose it) and either pairs every verse between its neighbours or shifts at least
    ``_MIN_SHIFT_RUN`` one-to-one pairs. Otherwise the English verses in the run are paired by number again.
    """
    es_labels = {(v.chapter, v.verse) for v in es}
    es_by_label = {(v.chapter, v.verse): v for v in es}
    en_index = {(v.chapter, v.verse): k for k, v in enumerate(en)}
    es_index = {(v.chapter, v.verse): k for k, v in enumerate(es)}
    gaps = [k for k, v in enumerate(en) if (v.chapter, v.verse) not in es_labels]
    kept: list[Group] = []
    k = 0
    while k < len(groups):
        if _is_same_label(groups[k]):
            kept.append(groups[k])
            k += 1
            continue
        end = k
        while end < len(groups) and not _is_same_label(groups[end]):
            end += 1
        run = groups[k:end]
        # the verses between the neighbouring same-number pairs, including any the alignment left out
        before, after = (kept[-1] if kept else None), (groups[end] if end < len(groups) else None)
        en_first = en_index[(before[0][0].chapter, before[0][0].verse)] + 1 if before else 0
        en_last = en_index[(after[0][0].chapter, after[0][0].verse)] - 1 if after else len(en) - 1
        es_first = es_index[(before[1][0].chapter, before[1][0].verse)] + 1 if before else 0
        es_last = es_index[(after[1][0].chapter, after[1][0].verse)] - 1 if after else len(es) - 1
        touches_gap = any(en_first - 1 <= gap <= en_last + 1 for gap in gaps)
        merges = any(len(en_group) != len(es_group) for en_group, es_group in run)
        shifted = sum(1 for en_group, es_group in run if len(en_group) == len(es_group) == 1)
        paired = (
            sum(len(en_group) for en_group, _ in run) == en_last - en_first + 1
            and sum(len(es_group) for _, es_group in run) == es_last - es_first + 1
        )
        if touches_gap or (merges and (paired or shifted >= _MIN_SHIFT_RUN)):
            kept.extend(run)
        else:
            kept.extend(
                ([en[p]], [es_by_label[(en[p].chapter, en[p].verse)]])
                for p in range(en_first, en_last + 1)
                if (en[p].chapter, en[p].verse) in es_by_label
            )
        k = end
    return kept


def _ref(book: str, verses: Sequence[Verse]) -> str:
    """OSIS reference of one verse or a range of consecutive verses."""
    first, last = verses[0], verses[-1]
    start = f"{book}.{first.chapter}.{first.verse}"
    if last is first:
        return start
    if last.chapter == first.chapter:
        return f"{start}-{last.verse}"
    return f"{start}-{last.chapter}.{last.verse}"


def bible_pairs(
    limit: int | None = None,
    *,
    sword_root: Path = SWORD_ROOT,
    en_module: str = EN_MODULE,
    es_module: str = ES_MODULE,
    realign: bool = True,
) -> Iterator[dict[str, str]]:
    """Yield English-Spanish verse pairs ``{"id": "bible:Gen.1.1", "en", "es", "book"}`` in canonical order.

    Books found in both modules are read (the WEB deuterocanon has no Spanish counterpart) and cleaned with
    :func:`clean_osis`; in the Spanish text the traditional epistle subscriptions are cut and chapter-initial
    capitals undone (:func:`_fix_drop_caps`). Verses empty on either side are skipped. With ``realign``
    (default) each book is aligned by a length-based dynamic programme (:func:`_align_book`) whose departures
    from equal numbers are kept only where the module structure supports them (:func:`_keep_supported_shifts`):
    RV1909 follows Hebrew chapter breaks in places (Num 13, 30; 1 Sam 24; 2 Chr 33; Job 39-40; Hos 12;
    Jonah 2; ...) where pairing by number is off by one verse. Merged verses come out as one pair whose id is a
    range of English verses (``bible:2Sam.20.25-26``); ids carry the English (WEB) numbering. ``book`` is
    pysword's English book name ('Genesis', 'I Samuel', 'Revelation of John'). Without ``realign`` verses are
    paired by number only. ``limit`` stops after that many pairs.
    """
    if limit is not None and limit <= 0:
        return
    modules = _open_modules(sword_root)
    en_bible, es_bible = _open_bible(modules, en_module), _open_bible(modules, es_module)
    en_books, es_books = _book_index(en_bible), _book_index(es_bible)
    shared = [osis for osis in es_books if osis in en_books]
    model: _LengthModel | None = None
    count = 0
    for osis in shared:
        en_verses = _read_book(en_bible, en_books[osis], "en")
        es_verses = _read_book(es_bible, es_books[osis], "es")
        if realign:
            if model is None:  # fitted on the first book (Genesis), whose numbering agrees
                by_ref = {(v.chapter, v.verse): len(v.text) for v in es_verses}
                model = _LengthModel.fit(
                    (len(v.text), by_ref[(v.chapter, v.verse)]) for v in en_verses if (v.chapter, v.verse) in by_ref
                )
            groups = _keep_supported_shifts(_align_book(en_verses, es_verses, model), en_verses, es_verses)
        else:
            es_by_ref = {(v.chapter, v.verse): v for v in es_verses}
            groups = [([v], [es_by_ref[(v.chapter, v.verse)]]) for v in en_verses if (v.chapter, v.verse) in es_by_ref]
        for en_group, es_group in groups:
            yield {
                "id": f"bible:{_ref(osis, en_group)}",
                "en": " ".join(v.text for v in en_group),
                "es": " ".join(v.text for v in es_group),
                "book": en_books[osis].name,
            }
            count += 1
            if limit is not None and count >= limit:
                return


# --------------------------------------------------------------------------------------------------------------
# gettext catalogs
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoEntry:
    """One message of a compiled catalog; ``translations`` holds one string per plural form."""

    index: int
    context: str | None
    msgid: str
    msgid_plural: str | None
    translations: tuple[str, ...]


def read_mo(path: Path) -> tuple[dict[str, str], list[MoEntry]]:
    """Parse a GNU ``.mo`` file into its header fields and its messages (the header entry excluded).

    Strings are decoded with the charset named in the header (UTF-8 when none is named); ``msgctxt`` is split
    off at EOT (``\\x04``) and plural forms at NUL.
    """
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic == 0x950412DE else ">" if magic == 0xDE120495 else None
    if order is None:
        raise ValueError(f"{path}: not a gettext .mo file")
    _, count, ids_at, strs_at = struct.unpack(order + "4I", data[4:20])

    def raw(table: int, number: int) -> bytes:
        length, offset = struct.unpack(order + "2I", data[table + 8 * number : table + 8 * number + 8])
        return data[offset : offset + length]

    header: dict[str, str] = {}
    charset = "utf-8"
    entries = []
    for number in range(count):
        msgid_raw, msgstr_raw = raw(ids_at, number), raw(strs_at, number)
        if not msgid_raw:
            text = msgstr_raw.decode("utf-8", "replace")
            header = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if k}
            found = re.search(r"charset=([\w-]+)", header.get("Content-Type", ""))
            if found and found.group(1).upper() != "CHARSET":
                charset = found.group(1)
            continue
        context, _, msgid = msgid_raw.decode(charset, "replace").rpartition("\x04")
        singular, _, plural = msgid.partition("\x00")
        translations = tuple(msgstr_raw.decode(charset, "replace").split("\x00"))
        entries.append(MoEntry(number, context or None, singular, plural or None, translations))
    return header, entries


def _plural_index(header: dict[str, str]) -> Any:
    """The catalog's ``plural=`` expression as a function of n (English-like when absent or unparsable)."""
    import gettext

    found = re.search(r"plural=([^;]+)", header.get("Plural-Forms", ""))
    try:
        return gettext.c2py(found.group(1)) if found else (lambda n: int(n != 1))
    except (ValueError, SyntaxError):
        return lambda n: int(n != 1)


_FORMAT_RE = re.compile(
    r"%(?:\d+\$)?[-+ #0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?[A-Za-z%]"  # printf %s %5.2f %ld %1$s, bfd's %B %A %H
    r"|%\([^)]+\)"  # Python %(name)s
    r"|%\d|%<\w+>"  # Qt %1, %<PRIu64>
    r"|\{[\w.:!>-]*\}"  # {0}, {name}, {}, {0:>8}
    r"|\$\{?[A-Za-z_]\w*\}?"  # $HOME, ${var}
)
_ACCELERATOR_RE = re.compile(r"(?<![\w_])_[^\W_]|(?<![\w&])&[^\W\d_](?!\w*;)")
_MARKUP_RE = re.compile(r"</?[A-Za-z][\w-]*(?:\s[^<>]*)?/?>")
_SYNTAX_RE = re.compile(r"\\|\[[^\]]*\]|\{|\}|^(?:usage|utilisation|uso)\s*:", re.IGNORECASE)
_OPTION_LINE_RE = re.compile(r"^\s*-{1,2}\w", re.MULTILINE)
_WORD_RE = re.compile(r"[^\W\d_]{2,}")


def _flatten(text: str) -> str:
    """Collapse ASCII whitespace runs (line wraps) to one space; no-break spaces (French typography) stay."""
    return re.sub(r"[ \t\r\n\f\v]+", " ", text).strip(" ")


def _reject_reason(text: str, min_words: int) -> str | None:
    """Why ``text`` is not sentence-like translation material, or None when it is.

    Rejected: format placeholders (printf, Python, Qt, brace, shell), keyboard accelerators (``_File``,
    ``&Open``), markup tags, command syntax (usage lines, ``[options]``, braces, backslash escapes), option help
    (a line starting with '-'), tables or indented blocks, labels ending in ':', Title Case Labels of three or
    more words, fewer than ``min_words`` words of two or more letters, and mostly non-letter strings.
    """
    if _FORMAT_RE.search(text):
        return "format string"
    if _ACCELERATOR_RE.search(text):
        return "accelerator"
    if _MARKUP_RE.search(text):
        return "markup"
    if _OPTION_LINE_RE.search(text) or text.lstrip().startswith("-"):
        return "option help"
    if "\t" in text or re.search(r"\n[ \t]+\S|\S {3,}\S", text):
        return "table or indented block"
    flat = _flatten(text)
    if _SYNTAX_RE.search(flat):
        return "command syntax"
    if flat.endswith(":"):
        return "label"
    words = _WORD_RE.findall(flat)
    if len(words) < max(min_words, 1):
        return "too few words"
    if len(words) >= 3 and all(w[0].isupper() for w in words) and flat[-1] not in ".!?":
        return "title case label"
    if sum(ch.isalpha() for ch in flat) < 0.6 * sum(not ch.isspace() for ch in flat):
        return "mostly symbols"
    return None


def gettext_pairs(
    lang: str = "fr", min_words: int = 6, *, locale_dir: Path = LOCALE_DIR, drops: Counter[str] | None = None
) -> Iterator[dict[str, str]]:
    """Yield unique English-``lang`` message pairs ``{"id": "gettext:<domain>:<n>", "en", lang, "domain"}``.

    Reads ``<locale_dir>/<lang>/LC_MESSAGES/*.mo`` in name order (``n`` is the entry's index in its catalog;
    ``<index>.0``/``<index>.1`` for the singular/plural of a plural entry). Skipped: the header, untranslated
    messages, messages that are not sentence-like (:func:`_reject_reason`, applied to the English with
    ``min_words`` and to the translation with one word), translations equal to the original (ignoring case and
    spacing) and repeated (English, translation) pairs, the first occurrence winning. A plural entry gives its
    singular with the form the catalog uses for n=1 and its plural with the form for n=2 (most hold '%d' and are
    filtered). ``msgctxt`` is dropped; line wraps are collapsed (:func:`_flatten`). ``drops`` (optional)
    counts the skip reasons.
    """
    seen: set[tuple[str, str]] = set()
    drops = Counter() if drops is None else drops
    for path in sorted((locale_dir / lang / "LC_MESSAGES").glob("*.mo")):
        header, entries = read_mo(path)
        plural = _plural_index(header)
        for entry in entries:
            candidates = [(entry.msgid, entry.translations[0] if entry.translations else "")]
            if entry.msgid_plural is not None:
                forms, one, two = entry.translations, plural(1), plural(2)
                candidates = [
                    (entry.msgid, forms[one] if one < len(forms) else ""),
                    (entry.msgid_plural, forms[two] if two < len(forms) else ""),
                ]
            for suffix, (source, target) in enumerate(candidates):
                if not target.strip():
                    drops["untranslated"] += 1
                    continue
                reason = _reject_reason(source, min_words) or _reject_reason(target, 1)
                if reason:
                    drops[reason] += 1
                    continue
                en, translated = _flatten(source), _flatten(target)
                if en.casefold() == translated.casefold():
                    drops["same as English"] += 1
                    continue
                if (en, translated) in seen:
                    drops["duplicate"] += 1
                    continue
                seen.add((en, translated))
                number = f"{entry.index}" if len(candidates) == 1 else f"{entry.index}.{suffix}"
                yield {"id": f"gettext:{path.stem}:{number}", "en": en, lang: translated, "domain": path.stem}
