"""Decontamination: keep every text an eval item shows out of the training data.

The test is n-gram overlap on lower-cased words, as in GPT-3's and the Pile's decontamination
(n = 13 by default). A held-out text shorter than n words is matched whole, so short items
(a one-line diagnosis, a short verse) are covered too. A training document that shares an
n-gram with any held-out text is dropped and counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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
    """N-grams of held-out texts, queried with training texts."""

    def __init__(self, held_out: Iterable[str], n: int = 13) -> None:
        self.n = n
        self.grams: set[tuple[str, ...]] = set()
        self.short: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        """Held-out texts shorter than n words, by their first (up to) three words."""
        for text in held_out:
            for gram in ngrams(text, n):
                if len(gram) == n:
                    self.grams.add(gram)
                else:
                    self.short.setdefault(gram[:3], set()).add(gram)
        self.key_lengths = sorted({len(key) for key in self.short})

    def overlaps(self, text: str) -> bool:
        """True when the text shares an n-gram with a held-out text or contains a short one whole."""
        tokens = words(text)
        if not tokens:
            return False
        for i in range(len(tokens) - self.n + 1):
            if tuple(tokens[i : i + self.n]) in self.grams:
                return True
        for length in self.key_lengths:
            for i in range(len(tokens) - length + 1):
                for gram in self.short.get(tuple(tokens[i : i + length]), ()):
                    if tuple(tokens[i : i + len(gram)]) == gram:
                        return True
        return False
