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
from typing import Any

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


class OverlapShare:
    """Per held-out document, the share of its n-grams that some training text also has.

    Eval items are protected by ``Index`` (any shared n-gram drops the training document), but a
    validation split the size of a corpus's 5% cannot be: in license text most documents share a
    clause with some training document. What would flatter bits-per-byte is a near-copy, most of
    whose n-grams are in training text although MinHash did not pair them (its threshold is about
    0.72 Jaccard). The n-grams are kept as 64-bit hashes in sorted numpy arrays, so memory is a
    few bytes per held-out n-gram, and each training text is checked with one vectorised lookup.
    """

    def __init__(self, docs: Iterable[tuple[Hashable, str]], n: int = 13) -> None:
        import numpy as np

        self.n = n
        self.keys: list[Hashable] = []
        hashes, owners = [], []
        for number, (key, text) in enumerate(docs):
            grams = _hashes(text, n)
            self.keys.append(key)
            hashes.append(grams)
            owners.append(np.full(len(grams), number, dtype=np.int64))
        flat = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
        order = np.argsort(flat, kind="stable")
        self.hashes = flat[order]
        self.owners = (np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64))[order]
        self.totals = np.bincount(self.owners, minlength=len(self.keys))
        self.seen = np.zeros(len(self.hashes), dtype=bool)

    def add_training_text(self, text: str) -> None:
        import numpy as np

        if not len(self.hashes):
            return
        grams = np.unique(_hashes(text, self.n))
        left = np.searchsorted(self.hashes, grams, side="left")
        right = np.searchsorted(self.hashes, grams, side="right")
        for start, stop in zip(left[left < right], right[left < right], strict=True):
            self.seen[start:stop] = True  # every held-out document holding this n-gram

    def shares(self) -> dict[Hashable, float]:
        import numpy as np

        found = np.bincount(self.owners[self.seen], minlength=len(self.keys))
        return {key: float(found[i] / self.totals[i]) if self.totals[i] else 0.0 for i, key in enumerate(self.keys)}


def _hashes(text: str, n: int) -> Any:
    """64-bit hashes of the text's distinct word n-grams (blake2b: the same in every process)."""
    import hashlib

    import numpy as np

    grams = ngrams(text, n)
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(" ".join(g).encode(), digest_size=8).digest(), "little") for g in grams),
        dtype=np.uint64,
        count=len(grams),
    )
