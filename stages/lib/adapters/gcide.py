"""GCIDE, the GNU Collaborative International Dictionary of English, from Debian's ``dict-gcide``.

Webster's 1913 plus WordNet 1.5 plus the GCIDE editors' additions, GPL-2.0-or-later
(/usr/share/doc/dict-gcide/copyright). Debian ships it in dictd's rendering: an index of
``headword<TAB>offset<TAB>length`` (dictd base-64 numbers) into a dictzip (gzip) file of
plain-text articles. No maintained library reads that rendering into fields (dictd itself only
serves whole articles), so this module parses it: headword, part of speech, first definition and
subject tags such as (Law), (Med.), (Stock Exchange). Subject tags are free text with about 1,300
variants and typos, so ``tag_domains`` maps them to coarse domains by pattern.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

GCIDE_INDEX = Path("/usr/share/dictd/gcide.index")
GCIDE_DICT = Path("/usr/share/dictd/gcide.dict.dz")

#: dictd's base64 alphabet (standard alphabet, but numbers are written most-significant digit first, no padding).
_DICTD_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}

#: Part-of-speech / grammatical abbreviations that may follow the headword(s) on the header line.
_POS_WORDS = frozenset(
    [
        "n.",
        "a.",
        "adj.",
        "adv.",
        "v.",
        "t.",
        "i.",
        "prep.",
        "conj.",
        "interj.",
        "pron.",
        "p.",
        "pr.",
        "imp.",
        "pl.",
        "sing.",
        "vb.",
        "superl.",
        "compar.",
        "fem.",
        "masc.",
        "pret.",
        "pres.",
        "pers.",
        "poss.",
        "obj.",
        "dat.",
        "gen.",
        "nom.",
        "def.",
        "art.",
        "indef.",
        "num.",
        "abbr.",
        "abbrev.",
        "suffix.",
        "prefix.",
        "pref.",
        "suff.",
        "interrog.",
        "inf.",
        "imperat.",
        "obs.",
        "3d.",
        "2d.",
        "1st.",
        "pass.",
        "part.",
        "adj",
        "adv",
        "n",
        "v",
        "&",
        "and",
        "or",
        "prop.",
        "prenom.",
        "pred.",
        "auxiliary.",
        "impers.",
        "etc.",
    ]
)
#: Language markers in plural notes (``n.; pl. E. {Indexes}, L. {Indices}``): part of the header, not of the POS.
_HEADER_WORDS = frozenset(["E.", "L.", "G.", "F.", "It.", "Gr.", "Heb.", "Sp.", "Pg.", "D.", "Ar."])

#: Named character entities of the dictd GCIDE rendering (``[ae]``, ``[deg]`` ...). Unknown ones are left alone.
_NAMED_ENTITIES: dict[str, str] = {
    "ae": "æ",
    "AE": "Æ",
    "oe": "œ",
    "OE": "Œ",
    "=ae": "ǣ",
    "deg": "°",
    "pounds": "£",
    "sect": "§",
    "para": "¶",
    "root": "√",
    "cuberoot": "∛",
    "times": "×",
    "div": "÷",
    "divby": "÷",
    "middot": "·",
    "nbsp": " ",
    "dagger": "†",
    "dag": "†",
    "ddag": "‡",
    "rarr": "→",
    "larr": "←",
    "thorn": "þ",
    "eth": "ð",
    "yogh": "ȝ",
    "ng": "ng",
    "th": "th",
    "flat": "♭",
    "sharp": "♯",
    "natural": "♮",
    "hand": "☞",
    "min": "′",
    "sec": "″",
    "prime": "′",
    "bprime": "″",
    "ldquo": "“",
    "rdquo": "”",
    "ldqo": "“",
    "rdqo": "”",
    "frac12": "½",
    "frac13": "⅓",
    "frac14": "¼",
    "frac34": "¾",
    "imac": "ī",
    "aum": "ä",
    "add": "a",
    "asl": "a",
    "udd": "u",
    "digamma": "ϝ",
    "Digamma": "Ϝ",
    "crescent": "☾",
    "zdot": "ż",
    "dsdot": "ḍ",
    "asper": "ʽ",
    "break": "",
    "bar": "|",
    "-": "-",
    "--": "—",
}
_GREEK = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "chi",
    "psi",
    "omega",
]
for _g in _GREEK:
    _name = "LAMDA" if _g == "lambda" else _g.upper()  # Unicode spells it LAMDA
    _NAMED_ENTITIES[_g] = unicodedata.lookup(f"GREEK SMALL LETTER {_name}")
    _NAMED_ENTITIES[_g.capitalize()] = unicodedata.lookup(f"GREEK CAPITAL LETTER {_name}")

#: Prefix diacritics: ``['e]`` -> é. Marks whose meaning is uncertain (``-``, ``.``, ``*``) collapse to the letter.
_PREFIX_MARKS = {
    "'": "\u0301",
    "`": "\u0300",
    '"': "\u0308",
    "^": "\u0302",
    "~": "\u0303",
    ",": "\u0327",
    "=": "\u0304",
    "-": "",
    ".": "",
    "*": "",
}

_ENTITY_RE = re.compile(
    r"\[(?:(?P<mark>['`\"^~,=.*-])(?P<base>[A-Za-z]{1,2})|(?P<breve>[A-Za-z]{1,2})\^|"
    r"(?P<named>=?[A-Za-z]+[0-9]*\^?|--?))\]"
)
_SOURCE_LINE_RE = re.compile(
    r"^\s*\[(?:[^\]\n]*(?:Webster|WordNet|PJC|Century Dict|RDH|RHUD|MW10|MI11)[^\]\n]*|AS|GG)\].*$", re.MULTILINE
)
_CITATION_RE = re.compile(r"[ \t]*--(?=[A-Z\[])[^\n]*")
_HEADWORD_RE = re.compile(r"[\s,]*(?:or\s+)?([^\\\n\[\]{}()]{1,80}?)\s*\\([^\\\n]*)\\")
_TAG_WORD_RE = re.compile(r"(?:[A-Z][A-Za-z'-]*\.?|&|and|of|in|the|de)$")
_TAG_AT_START_RE = re.compile(r"^\s*\(([A-Z][^()\[\]{}]{1,38})\)[\s,.;:]*")
_SUBSENSE_RE = re.compile(r"^\s*\(a\)\s*(.*?)(?=\s\([b-z]\)\s|$)", re.DOTALL)
_XREF_RE = re.compile(
    r"\s*\b(?:See|Cf\.|Compare|Also see)\s+(?:also\s+)?(?:under\s+)?\{[^{}]*\}(?:[^.;{}]*\{[^{}]*\})*[^.;{}]*[.;]?"
)
_DERIVED_RE = re.compile(r"\s*--\s*\{[^{}]+\}(?:\s*\([^()]*\))?,?\s*(?:(?:[a-z]{1,6}\.|&)\s*)+")
_SECOND_POS_RE = re.compile(r"\s--\s*(?:n|a|adj|adv|v\. [ti]|prep|interj)\.\s.*$", re.DOTALL)
_LABEL_MAX_WORDS = 4
_TAG_SPLIT_RE = re.compile(r"\s*(?:&|,|\band\b)\s*")
_MARKS_RE = re.compile(r'[*"`]')
_NEWLINE_RE = re.compile(r"\s*\n\s*")
_BRACKET_RE = re.compile(r"\[([^\[\]]*)\]")
_BRACE_RE = re.compile(r"\{([^{}]*)\}")
_PAREN_RE = re.compile(r"\(([^()]*)\)")
_EMPTY_PAREN_RE = re.compile(r"\(\s*\)")
_SPACE_PUNCT_RE = re.compile(r"\s+([,.;:])")
_SPACES_RE = re.compile(r"\s{2,}")
_WS_RE = re.compile(r"\s+")
_WORDISH_RE = re.compile(r"[A-Za-z]{3}")
_OPEN_PAREN_RE = re.compile(r"\s*\(")
_TOKEN_RE = re.compile(r"[^\s,;:(\[{]+")
_PRON_RE = re.compile(r"[\[\]*\"`'?]|^-")
_INFLECTION_STUB_RE = re.compile(r"(?:of|from)\s")
_PLURAL_NOTE_RE = re.compile(r"(?:[\w'-]+(?:\s*\([^()]*\))?\s*(?:,|or)\s*)*[\w'-]+(?:\s*\([^()]*\))?`?\.\s+")
_SUBSENSE_START_RE = re.compile(r"\([a-z]\)\s")
_INFLECTION_POS = frozenset(["imp.", "p.", "pret.", "pl.", "superl.", "compar.", "3d.", "pres.", "sing.", "pr."])
_PARAGRAPH_RE = re.compile(r"\n[ \t]*\n")


#: Coarse domains for GCIDE subject tags. The tag vocabulary is free text (~1,300 distinct strings incl. typos such as
#: ``Commmerce``, ``Ciwil Law``), so domains are matched by regular expression on each individual tag.
GCIDE_TAG_DOMAINS: dict[str, re.Pattern[str]] = {
    "finance": re.compile(
        r"^(?:Com\.|Commm?erce|Commercial Law|Mercantile Law|(?:U\. S\. )?Finance|(?:Eng\. )?Banking|Bookkeeping|"
        r"Accounting|Accounts|Railroad Accounting|(?:[\w. ]+ )?Stock Exch(?:\.|anges?)|Stock Jobbing|Brokerage|"
        r"[\w']*[Bb]rokers?'?s?'? Cant|Speculation|Exchanges|Pol(?:it)?\. Econ\.|(?:Railroad )?Econ(?:\.|omics)|"
        r"Coinage|(?:\w+ )?Insurance(?: Law)?|Trade)$",
        re.IGNORECASE,
    ),
    "law": re.compile(r"\bLaws?\.?$|^Law\b(?! Tennis)"),
    "medicine": re.compile(
        r"^(?:Old |Hist\. |Human |Veter\. )?(?:Med|Anat|Physiol|Surg|Pharm|Pathol|Psychol|Veter|Vet|Bacteriol)"
        r"(?:\.|icine|omy|ogy|ery|acy|iatry)?(?: Chem\.| Med\.| Psychol\.)?$|^(?:Dentistry|Immunology|Obstetrics|"
        r"Toxicology|Psychiatry|Psycho(?:analysis|therapy))$",
        re.IGNORECASE,
    ),
}


def tag_domains(tags: list[str]) -> list[str]:
    """Map GCIDE subject tags to coarse domains: ``["Stock Exchange", "Law"]`` -> ``["finance", "law"]``."""
    return [domain for domain, pattern in GCIDE_TAG_DOMAINS.items() if any(pattern.search(tag) for tag in tags)]


def _b64_int(value: str) -> int:
    """Decode a dictd index number (offset or length), e.g. ``'BQ+'`` -> 4158."""
    number = 0
    for char in value:
        number = number * 64 + _DICTD_B64[char]
    return number


def read_dictd_index(path: Path = GCIDE_INDEX) -> list[tuple[str, int, int]]:
    """Return ``(headword, offset, length)`` rows of a dictd ``.index`` file, in file order."""
    rows: list[tuple[str, int, int]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            headword, offset, length = line.rstrip("\n").split("\t")
            rows.append((headword, _b64_int(offset), _b64_int(length)))
    return rows


def decode_gcide_entities(text: str) -> str:
    """Replace the dictd GCIDE ASCII entities (``['e]``, ``[ae]``, ``[=a]``, ``[alpha]``) by Unicode.

    Bracketed words that are not known entities (``[Obs.]``, ``[He]``) are left untouched.
    """

    def repl(match: re.Match[str]) -> str:
        if match["mark"]:
            base, mark = match["base"], _PREFIX_MARKS[match["mark"]]
            return unicodedata.normalize("NFC", base[0] + mark + base[1:]) if mark else base
        if match["breve"]:
            base = match["breve"]
            return unicodedata.normalize("NFC", base[0] + "\u0306" + base[1:])
        return _NAMED_ENTITIES.get(match["named"], match[0])

    return _ENTITY_RE.sub(repl, text)


def _is_tag(candidate: str) -> bool:
    """True for subject labels such as ``Law``, ``Stock Exchange``, ``Pol. Econ.``, ``Anat. & Zool.``."""
    words = candidate.split()
    return 0 < len(words) <= 5 and len(candidate) >= 3 and all(_TAG_WORD_RE.match(w) for w in words)


def _split_tag(tag: str) -> list[str]:
    """Split a combined label (``Anat. & Zool.``, ``Law, Com.``) into single labels."""
    return [" ".join(t.split()) for t in _TAG_SPLIT_RE.split(tag) if t.strip()]


def _balanced_end(text: str, start: int, open_char: str, close_char: str) -> int:
    """Index just past the bracket group that opens at ``text[start]``; ``-1`` when it never closes."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] == open_char:
            depth += 1
        elif text[index] == close_char:
            depth -= 1
            if depth == 0:
                return index + 1
    return -1


def _strip_marks(word: str) -> str:
    """Remove GCIDE syllable/accent marks (``*``, ``"``, `````) from a word: ``Gre*ga"ri*ous`` -> ``Gregarious``."""
    return _MARKS_RE.sub("", word)


def _leading_tags(text: str) -> tuple[list[str], str]:
    """Pop subject tags at the start of ``text``; return ``(tags, rest)``."""
    tags: list[str] = []
    while match := _TAG_AT_START_RE.match(text):
        if not _is_tag(match[1]):
            break
        tags.extend(_split_tag(match[1]))
        text = text[match.end() :]
    return tags, text


def _clean(text: str, *, definition: bool) -> tuple[str, list[str]]:
    """Render raw dictd text as plain text.

    With ``definition=True`` (used for the ``definition`` field) citations, bracketed labels/notes, derived forms,
    "See {X}" cross-references and second part-of-speech tails are removed; the removed short labels are returned.
    With ``definition=False`` (used for ``text``) only markup is removed and line wrapping is undone.
    """
    text = decode_gcide_entities(text)
    labels: list[str] = []
    if definition:
        text = _CITATION_RE.sub("", text)
    text = _NEWLINE_RE.sub(" ", text)
    if definition:
        while match := _BRACKET_RE.search(text):
            inner = match[1].strip()
            if inner and "{" not in inner and len(inner.split()) <= _LABEL_MAX_WORDS:
                labels.append(inner)
            text = text[: match.start()] + text[match.end() :]
        text = _DERIVED_RE.sub(" ", text)
        text = _SECOND_POS_RE.sub("", text)
        without_xref = _XREF_RE.sub("", text).strip()
        if _WORDISH_RE.search(without_xref):
            text = without_xref
    text = _BRACE_RE.sub(lambda m: _strip_marks(m[1]), text)
    text = _EMPTY_PAREN_RE.sub("", text)
    text = _SPACE_PUNCT_RE.sub(r"\1", text)
    text = _SPACES_RE.sub(" ", text).strip(" ;,-")
    return text, labels


def _parse_header(block: str) -> tuple[list[str], list[str], list[str], int]:
    """Parse the header of one entry.

    Returns ``(headwords, pos_tokens, tags, body_start)``. The header is the run of ``Word \\Pro*nun"ci*a`tion\\``
    groups followed by pronunciations ``(...)``, POS abbreviations, etymology ``[...]``, inflections ``{...}`` and
    subject tags ``(Law)``. A continuation line belongs to the header only if it consists entirely of such tokens
    (``   n.``, ``   (Stock Exchange)``); on the first line the header runs to the line end (plus any open
    bracket), except for inflection stubs such as ``Crew \\Crew\\, imp. of {Crow}.`` where the body starts at "of".
    """
    headwords: list[str] = []
    pos = 0
    while match := _HEADWORD_RE.match(block, pos):
        headwords.append(match[1].strip())
        pos = match.end()
        while paren := _OPEN_PAREN_RE.match(block, pos):
            end = _balanced_end(block, paren.end() - 1, "(", ")")
            inner = block[paren.end() : end - 1]
            if end < 0 or _is_tag(inner) or ("\n" in block[pos : paren.end()] and not _PRON_RE.search(inner)):
                break
            pos = end
    pos_tokens: list[str] = []
    tags: list[str] = []
    pending_pos: list[str] = []
    pending_tags: list[str] = []
    line_start = -1  # start of the continuation line under test; -1 while still on the first line
    last = pos
    while True:
        skip_from = pos
        while pos < len(block) and block[pos] in " \t\n,;:.":
            pos += 1
        if "\n" in block[skip_from:pos]:
            pos_tokens += pending_pos
            tags += pending_tags
            pending_pos, pending_tags, line_start = [], [], pos
        if pos >= len(block):
            break
        target_pos, target_tags = (pending_pos, pending_tags) if line_start >= 0 else (pos_tokens, tags)
        char = block[pos]
        if char in "([{":
            end = _balanced_end(block, pos, char, {"(": ")", "[": "]", "{": "}"}[char])
            inner = block[pos + 1 : end - 1]
            if end < 0 or (char == "(" and line_start >= 0 and not _is_tag(inner) and not _PRON_RE.search(inner)):
                break
            if char == "(" and _is_tag(inner):
                target_tags.extend(_split_tag(inner))
            pos = last = end
            continue
        token = _TOKEN_RE.match(block, pos)
        if token and (token[0] in _POS_WORDS or token[0] in _HEADER_WORDS):
            if token[0] in _POS_WORDS:
                target_pos.append(token[0])
            pos = last = token.end()
            continue
        break
    if line_start >= 0:  # stopped on a continuation line: the header ends with the previous line
        return headwords, pos_tokens, tags, block.rfind("\n", 0, line_start)
    if pos < len(block) and _INFLECTION_STUB_RE.match(block, pos):
        return headwords, pos_tokens, tags, pos
    newline = block.find("\n", last)
    end = len(block) if newline < 0 else newline
    while block.count("[", 0, end) > block.count("]", 0, end) or block.count("(", 0, end) > block.count(")", 0, end):
        newline = block.find("\n", end + 1)
        if newline < 0:
            end = len(block)
            break
        end = newline
    rest = _BRACKET_RE.sub("", block[last:end])
    for tag in _PAREN_RE.findall(rest):
        if _is_tag(tag):
            tags.extend(_split_tag(tag))
    return headwords, pos_tokens, tags, end


def _strip_plural_note(definition: str, headwords: list[str]) -> str:
    """Drop a plural note that wrapped into the body: ``Assemblyman, n.; pl.`` + ``Assemblymen (-men). A member``.

    Only stripped when the note's first word shares a 4-letter prefix with a headword word, so genuine one-word
    definitions of plural nouns (``Kine, n. pl. Cows.``) are kept.
    """
    plural = _PLURAL_NOTE_RE.match(definition)
    if not plural or plural.end() == len(definition):
        return definition
    stem = plural[0][:4].lower()
    if any(word[:4].lower() == stem for head in headwords for word in re.split(r"[\s-]+", head)):
        return definition[plural.end() :]
    return definition


def _paragraphs(body: str) -> list[str]:
    """Split an entry body into paragraphs after dropping source markers (``[1913 Webster]`` + trailing junk)."""
    body = _SOURCE_LINE_RE.sub("", body)
    return [p for p in _PARAGRAPH_RE.split(body) if p.strip()]


def _paragraph_kind(paragraph: str) -> str:
    """Classify a body paragraph: sense, plain, subentry, note, syn or quote."""
    stripped = paragraph.lstrip("\n")
    indent = len(stripped) - len(stripped.lstrip(" "))
    stripped = stripped.lstrip()
    if indent <= 8 and _SUBSENSE_START_RE.match(stripped):  # "(a) ..." directly under the header
        return "sense"
    if indent > 4:
        return "quote"
    if re.match(r"\d+\.\s", stripped):
        return "sense"
    if stripped.startswith("{"):
        return "subentry"
    if stripped.startswith("Note:"):
        return "note"
    if stripped.startswith("Syn:"):
        return "syn"
    return "plain"


def _sense_definition(raw: str) -> tuple[str, list[str], list[str], bool]:
    """Extract ``(definition, tags, labels, xref_only)`` from the raw text of one sense (number already removed)."""
    tags, rest = _leading_tags(_WS_RE.sub(" ", raw))
    if sub := _SUBSENSE_RE.match(rest):
        more, rest = _leading_tags(sub[1])
        tags += more
    xref_only = bool(re.match(r"\s*(?:See|Same as|Cf\.|Compare)\b[^.]*\{", rest)) and rest.count(".") <= 2
    definition, labels = _clean(rest, definition=True)
    return definition, tags, labels, xref_only


def _parse_subentry(paragraph: str) -> dict[str, Any] | None:
    """Parse ``{Phrase} (Tag), definition`` paragraphs (compounds/phrases listed under a headword)."""
    text = _WS_RE.sub(" ", decode_gcide_entities(paragraph)).strip()
    match = re.match(r"((?:\{[^{}]+\}\s*(?:,\s*)?(?:or\s+)?)+)", text)
    if not match:
        return None
    phrases = [_strip_marks(p).strip() for p in re.findall(r"\{([^{}]+)\}", match[1])]
    rest = text[match.end() :]
    tags, rest = _leading_tags(rest)
    rest = re.sub(r"^\s*(?:\[[^\]]*\]\s*)*[,.:;]?\s*", "", rest)
    more, rest = _leading_tags(rest)
    definition, more_tags, labels, xref_only = _sense_definition(rest)
    if not definition:
        return None
    return {
        "word": phrases[0],
        "alt_words": phrases[1:],
        "definition": definition,
        "tags": list(dict.fromkeys(tags + more + more_tags)),
        "labels": labels,
        "xref_only": xref_only,
    }


def _render_text(headwords: list[str], pos_tokens: list[str], header_tags: list[str], paragraphs: list[str]) -> str:
    """Render a whole entry as readable plain text (pronunciation and etymology dropped, markup removed)."""
    head = ", ".join(headwords)
    if pos_tokens:
        head += ", " + " ".join(pos_tokens)
    if header_tags:
        head += " (" + "; ".join(header_tags) + ")"
    lines = [head]
    for paragraph in paragraphs:
        cleaned, _ = _clean(paragraph, definition=False)
        if cleaned:
            lines.append(cleaned)
    return "\n".join(lines)


def entries(
    index_path: Path = GCIDE_INDEX, dict_path: Path = GCIDE_DICT, *, subentries: bool = True
) -> Iterator[dict[str, Any]]:
    """Yield one record per GCIDE entry (and, optionally, per ``{compound}`` sub-entry).

    The dictd index has one line per lookup key; many keys (alternate spellings, compounds, synonyms) point to the
    same ``(offset, length)`` article, so articles are de-duplicated and read in file order.

    Record keys: ``id`` (``gcide:<headword>:<n>``, n = 1-based occurrence of that headword), ``word``,
    ``alt_words``, ``pos``, ``definition`` (first sense, cleaned), ``tags`` (subject labels of the entry's own
    senses, e.g. ``Law``, ``Com.``, ``Stock Exchange``), ``definition_tags`` (labels of the first sense only),
    ``labels`` (usage labels of the first sense such as ``Obs.``, ``Colloq.``), ``xref_only`` (the definition is only
    "See/Same as X"), ``kind`` (``entry`` | ``subentry``), ``parent`` (for sub-entries) and ``text``.
    """
    with gzip.open(dict_path) as handle:  # dictzip is gzip-compatible; ~40 MB decompressed
        data = handle.read()
    blocks = sorted(
        {(offset, length) for word, offset, length in read_dictd_index(index_path) if not word.startswith("00-")}
    )
    seen: Counter[str] = Counter()

    def make_id(word: str) -> str:
        seen[word] += 1
        return f"gcide:{word}:{seen[word]}"

    for offset, length in blocks:
        block = data[offset : offset + length].decode("utf-8", errors="replace")
        start = re.search(r"^[^\s\[{-][^\n]*?\s*\\", block, re.MULTILINE)
        if not start:
            continue  # continuation fragment of the previous article (dictfmt split), ~13 cases
        block = block[start.start() :]
        headwords, pos_tokens, header_tags, body_start = _parse_header(block)
        if not headwords:
            continue
        paragraphs = _paragraphs(block[body_start:])
        tags = list(header_tags)
        definition, definition_tags, labels, xref_only = "", list(header_tags), [], False
        for paragraph in paragraphs:
            kind = _paragraph_kind(paragraph)
            if kind not in ("sense", "plain"):
                continue
            raw = re.sub(r"^\s*\d+\.\s", "", paragraph) if kind == "sense" else paragraph
            sense_def, sense_tags, sense_labels, sense_xref = _sense_definition(raw)
            for sub in re.findall(r"(?:^|\s)\([a-z]\)\s*\(([^()]+)\)", raw):
                sense_tags += _split_tag(sub) if _is_tag(sub) else []
            tags.extend(sense_tags)
            if not definition:
                definition_tags.extend(sense_tags)
                definition, labels, xref_only = sense_def, sense_labels, sense_xref
                if pos_tokens and pos_tokens[-1] == "pl.":
                    definition = _strip_plural_note(definition, headwords)
                if _INFLECTION_STUB_RE.match(definition) and _INFLECTION_POS & set(pos_tokens):
                    definition, xref_only = f"{' '.join(pos_tokens)} {definition}", True  # "Crew, imp. of Crow."
        word = headwords[0]
        yield {
            "id": make_id(word),
            "word": word,
            "alt_words": headwords[1:],
            "pos": " ".join(pos_tokens),
            "definition": definition,
            "tags": list(dict.fromkeys(tags)),
            "definition_tags": list(dict.fromkeys(definition_tags)),
            "labels": labels,
            "xref_only": xref_only,
            "kind": "entry",
            "parent": None,
            "text": _render_text(headwords, pos_tokens, header_tags, paragraphs),
        }
        if not subentries:
            continue
        for paragraph in paragraphs:
            if _paragraph_kind(paragraph) != "subentry" or not (sub := _parse_subentry(paragraph)):
                continue
            text, _ = _clean(paragraph, definition=False)
            yield {
                "id": make_id(sub["word"]),
                **sub,
                "pos": "",
                "definition_tags": sub["tags"],
                "kind": "subentry",
                "parent": word,
                "text": text,
            }
