"""Filter profiles and the drop warning, through the real corpus stage (datatrove passes) on real Markdown.

The documents are README sections of installed packages: technical prose with code, lists and
repeated lines, the kind of user text that web-crawl filters were not tuned for.
"""

from __future__ import annotations

import json

import pytest

from stages import corpus
from stages.base import StageContext
from stages.corpus import CorpusParams, drop_warnings
from stages.lib.sources import SourceSpec
from tests.conftest import readme_sections, stdlib_docstrings


@pytest.fixture(scope="module")
def manual_and_general(tmp_path_factory):
    folder = tmp_path_factory.mktemp("profiles")
    manual, general = folder / "manual.jsonl", folder / "general.jsonl"
    manual.write_text("".join(json.dumps({"text": text}) + "\n" for _, _, text in readme_sections()))
    general.write_text("".join(json.dumps({"text": text}) + "\n" for text in stdlib_docstrings(60)))
    return manual, general


def _corpus_stats(tmp_path, manual, general, profile: str) -> dict:
    params = CorpusParams(
        sources=[
            SourceSpec(name="manual", kind="domain", type="jsonl", path=str(manual), profile=profile),
            SourceSpec(name="general", kind="general", type="jsonl", path=str(general), profile="curated"),
        ],
        tasks=[{"type": "reading_comprehension", "source": "manual"}],
        max_sft_pairs=8,
    )
    out = tmp_path / profile
    out.mkdir()
    return corpus.run(StageContext(out_dir=out, node="corpus"), {}, params)["metrics"]


def test_web_profile_guts_technical_docs_and_says_so_curated_keeps_them(tmp_path, manual_and_general):
    manual, general = manual_and_general
    web = _corpus_stats(tmp_path, manual, general, "web")
    curated = _corpus_stats(tmp_path, manual, general, "curated")
    web_manual, curated_manual = web["sources"]["manual"], curated["sources"]["manual"]
    assert web_manual["profile"] == "web" and curated_manual["profile"] == "curated"
    assert web_manual["read"] == curated_manual["read"]
    gopher = {r: n for r, n in web_manual["dropped"].items() if r.startswith("gopher")}
    assert sum(gopher.values()) > 0.2 * web_manual["read"], web_manual["dropped"]
    assert not any(r.startswith("gopher") for r in curated_manual["dropped"])
    assert curated_manual["kept"] > web_manual["kept"]
    # The warning names the source, the share, the top reasons and the setting that turns each off.
    (line,) = [w for w in web["warnings"] if "'manual'" in w]
    top = max(gopher, key=gopher.get)
    assert f"{top} ({gopher[top]})" in line and "profile: curated" in line and "drop_warning=0.2" in line
    assert not [w for w in curated["warnings"] if "'manual'" in w]


def test_drop_warning_leaves_out_dedup_decontamination_and_the_adapters_own_selection():
    stats = {
        "a": {"read": 10, "dropped": {"near-duplicate (MinHash, similarity above ~0.72)": 5, "shares a 13-gram": 3}},
        "b": {"read": 10, "dropped": {"shorter than min_chars": 3, "language: language is de, not en": 1}},
        "c": {"read": 10, "dropped": {"shorter than min_chars": 2}},
        # gettext counts skipped messages (not documents) at ingest: 990 of them, then 10 documents of 16 pairs
        "d": {"read": 1000, "adapter_dropped": 990, "dropped": {"gettext message: too few words": 990}},
    }
    lines = drop_warnings(stats, 0.2)
    assert len(lines) == 1 and lines[0].startswith("source 'b': filters dropped 4 of 10 documents (40%")
    assert "shorter than min_chars (3): to keep them, lower the source's min_chars" in lines[0]
    assert "set the source's languages" in lines[0]
