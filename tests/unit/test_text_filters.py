"""Each corpus filter on real text: what it keeps, what it drops, and the reason it counts."""

from __future__ import annotations

import pytest
from datatrove.data import Document

from stages.corpus import CorpusParams
from stages.lib.adapters.parallel import read_mo
from stages.lib.text_blocks import FILTER_NAMES, SourceFilters, normalise
from tests.conftest import FIXTURES, licence_texts, stdlib_docstrings

LICENSES = licence_texts(40)
PROSE = [text for text in LICENSES if len(text.split()) > 300][:5]


def _run(texts: list[str], chain: list[str], settings: dict | None = None, min_chars: int = 50, **metadata):
    """Kept documents and the step's counters, for one source named ``s`` with the given filters."""
    step = SourceFilters({"s": chain}, settings or {}, {"s": min_chars})
    docs = [Document(text=t, id=str(i), metadata={"source": "s", **metadata}) for i, t in enumerate(texts)]
    kept = list(step.run(iter(docs)))
    return kept, {key: value.total for key, value in step.stats.stats.items()}


def test_real_license_prose_passes_every_filter():
    kept, counters = _run(PROSE, list(FILTER_NAMES))
    assert len(PROSE) == 5 and len(kept) == 5, counters
    assert counters["kept/s"] == 5


def test_encoding_repair_undoes_mojibake_in_real_text():
    original = next(text for text in LICENSES if any(c in text for c in "©éèüöä"))
    garbled = original.encode("utf-8").decode("latin-1")  # the classic UTF-8-read-as-Latin-1 damage
    assert garbled != original
    (kept,), _ = _run([garbled], ["encoding"])
    assert kept.text == normalise(original)


def test_boilerplate_lines_go_and_every_real_line_stays_as_it_was():
    real = next(text for text in PROSE if "TERMS OF USE" in text or "terms of use" in text.lower())  # a heading here
    planted = [
        "Skip to content",
        "Home | About | Blog | Contact",
        "This website uses cookies to improve your experience.",
        "Privacy Policy | Terms of Use | Cookie Settings | Sitemap",
        "Enable JavaScript to view this page.",
        "Page 2 of 7",
    ]
    lines = real.split("\n")
    mixed = "\n".join(planted[:3] + lines[:10] + ["    indented code stays indented"] + lines[10:] + planted[3:])
    (kept,), counters = _run([mixed], ["boilerplate"])
    assert counters["boilerplate lines/s"] == len(planted)
    assert not any(line in kept.text for line in planted)
    assert "\n    indented code stays indented\n" in kept.text
    assert kept.text.replace("\n    indented code stays indented", "") == normalise(real)


def test_gopher_quality_drops_stubs_and_symbol_soup_of_real_text():
    stub = " ".join(PROSE[0].split()[:30])  # under Gopher's 50-word floor
    soup = " ".join(f"{word} #" for word in PROSE[1].split()[:200])  # hash symbols over 10% of words
    kept, counters = _run([PROSE[2], stub, soup], ["gopher_quality"])
    assert [d.text for d in kept] == [normalise(PROSE[2])]
    assert counters["dropped/s/gopher_quality: gopher_short_doc"] == 1
    assert counters["dropped/s/gopher_quality: gopher_too_many_hashes"] == 1


def test_gopher_quality_settings_reach_the_filter():
    stub = " ".join(PROSE[0].split()[:30])
    kept, _ = _run([stub], ["gopher_quality"], {"gopher_quality": {"min_doc_words": 20}})
    assert len(kept) == 1


def test_gopher_repetition_drops_a_real_paragraph_repeated():
    paragraph = max(PROSE[3].split("\n\n"), key=len)
    repeated = "\n\n".join([paragraph] * 8)
    kept, counters = _run([PROSE[3], repeated], ["gopher_repetition"])
    assert [d.text for d in kept] == [normalise(PROSE[3])]
    assert sum(v for k, v in counters.items() if k.startswith("dropped/s/gopher_repetition")) == 1


def test_language_check_on_real_french_and_english():
    _, messages = read_mo(next((FIXTURES / "locale").rglob("*.mo")))
    french = "\n".join(m.translations[0] for m in messages if len(m.translations[0].split()) > 6)[:3000]
    english = "\n".join(stdlib_docstrings(30))[:3000]
    kept, counters = _run([english, french], ["language"])
    assert [d.id for d in kept] == ["0"]
    assert counters["dropped/s/language: language is fr, not en"] == 1
    kept, _ = _run([english, french], ["language"], languages=["en", "fr"])
    assert len(kept) == 2


def test_short_entries_survive_a_chain_without_the_prose_rules():
    entries = [" ".join(text.split()[:25]) for text in PROSE]  # dictionary-entry length
    assert _run(entries, ["encoding", "boilerplate"])[0] and not _run(entries, ["gopher_quality"])[0]


def test_a_misspelt_filter_setting_is_named_with_the_accepted_ones():
    with pytest.raises(
        ValueError, match=r"filter 'gopher_quality' has no setting \['min_words'\]; it takes .*min_doc_words"
    ):
        CorpusParams(filter_settings={"gopher_quality": {"min_words": 3}})
    with pytest.raises(ValueError, match="unknown filters"):
        CorpusParams(filters=["gopher"])
