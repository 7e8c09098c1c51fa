"""Decontamination: keep every text an eval item shows out of the training data.

The test is n-gram overlap on lower-cased words, as in GPT-3's and the Pile's decontamination
(n = 13 by default). A held-out text shorter than n words is matched whole, so short items
(a one-line diagnosis, a short verse) are covered too.

The index maps each n-gram to the eval items that show it, so one pass over the training data
tells, per item, how many training documents share text with it. Boilerplate-heavy domains
(license texts repeat whole clauses) then pick their eval items among the distinctive ones
before the overlapping training documents are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The text's word n-grams; a text shorter than n words is one gram of all its words."""
    tokens = words(text)
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


class Index:
    """N-grams of held-out texts by the key of the eval item that shows them; queried with training texts."""

    def __init__(self, items: Iterable[tuple[Hashable, Iterable[str]]], n: int = 13) -> None:
        self.n = n
        self.grams: dict[tuple[str, ...], set[Hashable]] = {}
        self.short: dict[tuple[str, ...], dict[tuple[str, ...], set[Hashable]]] = {}
        """Held-out texts shorter than n words, by their first (up to) three words."""
        for key, texts in items:
            for text in texts:
                for gram in ngrams(text, n):
                    if len(gram) == n:
                        self.grams.setdefault(gram, set()).add(key)
                    else:
                        self.short.setdefault(gram[:3], {}).setdefault(gram, set()).add(key)
        self.key_lengths = sorted({len(key) for key in self.short})

    def hits(self, text: str) -> set[Hashable]:
        """Keys of the items whose n-grams the text shares, or whose short texts it contains whole."""
        tokens = words(text)
        found: set[Hashable] = set()
        for i in range(len(tokens) - self.n + 1):
            keys = self.grams.get(tuple(tokens[i : i + self.n]))
            if keys:
                found |= keys
        for length in self.key_lengths:
            for i in range(len(tokens) - length + 1):
                for gram, keys in self.short.get(tuple(tokens[i : i + length]), {}).items():
                    if tuple(tokens[i : i + len(gram)]) == gram:
                        found |= keys
        return found
