"""Our blocks on datatrove's interfaces, where its own need a download or would damage our text.

- ``WordSplitter``: datatrove's word-level filters and MinHash ask ``load_word_tokenizer`` for a
  tokenizer; for English, French and Spanish that is spaCy (a large install) or NLTK (punkt data
  fetched at run time, impossible offline). They accept any ``WordTokenizer`` instead, so this one
  splits on whitespace, which is how the Gopher paper (Rae et al. 2021) counted words when it set the
  thresholds: with punctuation marks as words of their own, prose and code-bearing docs fall under
  its 80%-alphabetic rule. MinHash strips punctuation before splitting, so shingles are the same.
- ``BoilerplateLines``: datatrove's C4 line filter strips every line and drops lines of under three
  words or without end punctuation, which would flatten code blocks, verse and dictionary layout,
  and its policy list drops any line saying "terms of use", a heading in many licenses. This
  formatter removes only web chrome (cookie and JavaScript notices, navigation bars, "skip to
  content", share and subscribe prompts, page counters) and keeps every other line as it was.
- ``LanguageCheck``: datatrove's ``LanguageFilter`` downloads a fastText model at run time;
  ``langid`` ships its model inside the PyPI package, so the check runs offline.
- ``SourceFilters``: a recipe chooses filters per source (Gopher's word-count rule would drop every
  dictionary entry), so one step applies each source's chain and counts every drop per source with
  its reason in datatrove's stats.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.formatters.base import BaseFormatter
from datatrove.utils.word_tokenizers import WordTokenizer

FILTER_NAMES = ("encoding", "boilerplate", "gopher_repetition", "gopher_quality", "language")
"""Every filter a source may name, in the order they run."""

PROFILES: dict[str, tuple[str, ...]] = {
    "web": FILTER_NAMES,
    "curated": ("encoding", "boilerplate"),
    "code_docs": ("encoding", "boilerplate"),
}
"""Filter chains by the kind of text. ``web``: crawl text, where Gopher's quality and repetition rules
and the language check pay off. ``curated``: text someone chose (a manual, case files, notes): encoding
repair and web-chrome lines only; Gopher's rules dropped 49% of a technical manual's sections for
repeated lines and code-like characters. ``code_docs``: as curated, with a lower length floor
(``PROFILE_MIN_CHARS``) because API entries are short and whole. Every profile keeps the length floor
and exact and near-duplicate removal, and the boilerplate step never touches code blocks."""
PROFILE_MIN_CHARS = {"code_docs": 50}
"""Length floor of a profile where it differs from ``corpus.min_chars``."""


def check_filter_names(names: list[str] | None) -> list[str] | None:
    """Validator for a recipe's filter lists: unknown names are refused with the known ones."""
    if names is not None and (unknown := sorted(set(names) - set(FILTER_NAMES))):
        raise ValueError(f"unknown filters {unknown}; known: {list(FILTER_NAMES)}")
    return names


CODE_FENCE = re.compile(r"^\s*(?:```|~~~)")
"""A Markdown code fence, opening or closing."""
_INDENTED = re.compile(r"^(?: {4}|\t)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_RUNS = re.compile(r"\n{3,}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_BOILERPLATE = re.compile(
    "|".join(
        [
            r"\b(?:uses|use of|accept(?: all)?) cookies\b|\bcookie (?:policy|settings|preferences)\b",
            r"\b(?:enable|turn on|requires?) javascript\b|\bjavascript is (?:disabled|required|not enabled)\b",
            r"lorem ipsum",
            r"^\s*skip to (?:main )?content\s*$",
            r"^\s*(?:click|tap) here\b",
            r"\bsubscribe to (?:our|the) newsletter\b",
            r"\bshare (?:this|on (?:facebook|twitter|linkedin))\b",
            r"^\s*page \d+ of \d+\s*$",
            r"^\s*(?:\S+(?: \S+){0,2} \| ){3,}\S+(?: \S+){0,2}\s*$",  # "Home | About | Blog | Contact"
            r"^\s*(?:back to top|read more|next page|previous page)\s*$",
        ]
    ),
    re.IGNORECASE,
)


def normalise(text: str) -> str:
    """NFC, Unix newlines, no control characters, no trailing spaces, at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip()


class WordSplitter(WordTokenizer):
    """Whitespace-separated words (punctuation stays attached), for any space-separated language."""

    def __init__(self) -> None:
        super().__init__("regex")

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [s for s in _SENTENCE_END.split(text) if s.strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        spans, start = [], 0
        for match in _SENTENCE_END.finditer(text):
            spans.append((start, match.start()))
            start = match.end()
        if start < len(text):
            spans.append((start, len(text)))
        return spans

    def __hash__(self) -> int:  # one cached instance per process in load_word_tokenizer's lru_cache
        return hash(WordSplitter)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordSplitter)


WORDS = WordSplitter()


class BoilerplateLines(BaseFormatter):
    """Remove lines that are site chrome or policy notices, keeping every other line as it was."""

    name = "boilerplate lines"

    def __init__(self) -> None:
        super().__init__()
        self.removed_lines = 0

    def format(self, text: str) -> str:
        lines = text.split("\n")
        kept, in_fence = [], False
        for line in lines:
            if CODE_FENCE.match(line):
                in_fence = not in_fence
            # Web chrome is never inside a fenced or indented code block; code there stays as written.
            if in_fence or _INDENTED.match(line) or not _BOILERPLATE.search(line):
                kept.append(line)
        self.removed_lines = len(lines) - len(kept)
        return "\n".join(kept) if self.removed_lines else text


class LanguageCheck(BaseFilter):
    """Keep documents whose most likely language (langid.py, first ``sample_chars``) is expected."""

    name = "language check"
    _requires_dependencies = ("langid",)

    def __init__(self, min_probability: float = 0.5, sample_chars: int = 2000) -> None:
        super().__init__()
        self.min_probability = min_probability
        self.sample_chars = sample_chars
        self._identifier: Any = None

    def filter(self, doc: Any) -> bool | tuple[bool, str]:
        if self._identifier is None:
            from langid.langid import LanguageIdentifier, model

            self._identifier = LanguageIdentifier.from_modelstring(model, norm_probs=True)
        language, probability = self._identifier.classify(doc.text[: self.sample_chars])
        expected = doc.metadata.get("languages") or ["en"]
        if language not in expected:
            return False, f"language is {language}, not {'/'.join(expected)}"
        if probability < self.min_probability:
            return False, f"language {language} below probability {self.min_probability}"
        return True


def build_block(name: str, settings: dict[str, Any]) -> Any:
    """One named filter with its settings (the kwargs of the datatrove class it wraps)."""
    if name == "encoding":
        from datatrove.pipeline.formatters import FTFYFormatter

        return FTFYFormatter(**settings)
    if name == "boilerplate":
        return BoilerplateLines(**settings)
    if name == "gopher_repetition":
        from datatrove.pipeline.filters import GopherRepetitionFilter

        return GopherRepetitionFilter(language=WORDS, **settings)
    if name == "gopher_quality":
        from datatrove.pipeline.filters import GopherQualityFilter

        return GopherQualityFilter(language=WORDS, **settings)
    if name == "language":
        return LanguageCheck(**settings)
    raise ValueError(f"unknown filter '{name}'; known: {list(FILTER_NAMES)}")


class SourceFilters(PipelineStep):
    """Normalise, then run each document through its source's filter chain; count drops per source.

    ``chains`` maps a source name to its filter names; ``settings`` maps a filter name to its kwargs.
    Stats keys: ``dropped/<source>/<reason>``, ``kept/<source>``, ``boilerplate lines/<source>``."""

    name = "source filters"
    type = "🔻 - FILTER"

    def __init__(
        self, chains: dict[str, list[str]], settings: dict[str, dict[str, Any]], min_chars: dict[str, int]
    ) -> None:
        super().__init__()
        self.chains = chains
        self.settings = settings
        self.min_chars = min_chars

    def build_blocks(self) -> dict[str, Any]:
        """The blocks of every filter some source names, built once per task."""
        used = {name for chain in self.chains.values() for name in chain}
        return {name: build_block(name, self.settings.get(name, {})) for name in FILTER_NAMES if name in used}

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        blocks = self.build_blocks()
        for doc in data:
            source = doc.metadata["source"]
            with self.track_time():
                reason = self._apply(doc, source, blocks)
            if reason:
                self.stat_update(f"dropped/{source}/{reason}")
                continue
            self.stat_update(f"kept/{source}")
            yield doc

    def _apply(self, doc: Any, source: str, blocks: dict[str, Any]) -> str | None:
        """Run the chain in place (formatters, then the length floor, then filters); return the drop
        reason, or None when the document is kept."""
        doc.text = normalise(doc.text)
        chain = [(name, blocks[name]) for name in FILTER_NAMES if name in self.chains[source]]
        for _, block in chain:
            if isinstance(block, BaseFormatter):
                doc.text = block.format(doc.text)
                if isinstance(block, BoilerplateLines) and block.removed_lines:
                    self.stat_update(f"boilerplate lines/{source}", value=block.removed_lines)
                    doc.text = normalise(doc.text)
        if len(doc.text) < self.min_chars[source]:
            return "shorter than min_chars"
        for name, block in chain:
            if isinstance(block, BaseFormatter):
                continue
            verdict = block.filter(doc)
            if verdict is False or (isinstance(verdict, tuple) and not verdict[0]):
                return f"{name}: {verdict[1] if isinstance(verdict, tuple) else 'failed'}"
        return None


def check_settings(name: str, settings: dict[str, Any]) -> None:
    """Raise ValueError naming a setting the filter does not take, with the ones it does."""
    import inspect

    block = type(build_block(name, {}))
    accepted = [
        p for p in inspect.signature(block.__init__).parameters if p not in ("self", "language", "exclusion_writer")
    ]
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        raise ValueError(f"filter '{name}' has no setting {unknown}; it takes {accepted}")
