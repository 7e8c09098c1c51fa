"""Near-duplicate removal (datatrove MinHash) on planted copies of real text, within and across sources."""

from __future__ import annotations

import json
import logging
import random

import pytest

from stages.lib import corpus_engine
from stages.lib.corpus_engine import EngineSpec, MinhashSpec
from stages.lib.sources import SourceSpec
from tests.conftest import licence_texts


def perturb(text: str, rate: float, seed: int) -> str:
    """Replace ``rate`` of the words with words from elsewhere in the text (a near-copy at a known distance)."""
    rng = random.Random(seed)
    words = text.split()
    for i in rng.sample(range(len(words)), round(rate * len(words))):
        words[i] = rng.choice(words) + "x"
    return " ".join(words)


def test_planted_near_duplicates_are_removed_within_and_across_sources(tmp_path):
    bases = [t for t in licence_texts(200) if 400 < len(t.split()) < 3000][:10]
    assert len(bases) == 10
    domain = [{"text": t, "name": f"base{i}"} for i, t in enumerate(bases)]
    domain += [{"text": perturb(bases[i], 0.01, i), "name": f"near{i}"} for i in range(3)]  # 1% of words changed
    domain += [{"text": perturb(bases[i], 0.3, i), "name": f"far{i}"} for i in range(3, 6)]  # 30%: a new text
    general = [{"text": bases[i], "name": f"copy{i}"} for i in range(6, 9)]  # exact copies, in another source
    for name, records in (("domain", domain), ("general", general)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    specs = [
        SourceSpec(name=kind, kind=kind, type="jsonl", path=str(tmp_path / f"{kind}.jsonl"))
        for kind in ("domain", "general")
    ]
    work = tmp_path / "work"
    passes = corpus_engine.Passes(sources=specs, engine=EngineSpec(tasks=2), minhash=MinhashSpec())
    result = corpus_engine.prepare(passes, work, logging.getLogger("test"))
    kept = [
        doc["meta"]["name"]
        for kind in ("domain", "general")
        for doc in corpus_engine.split_documents(work, kind, "train")
    ]
    assert len(kept) == len(set(kept)) == len(domain) + len(general) - 6
    for i in range(3):  # one of each near pair and each exact pair survives
        assert (f"base{i}" in kept) != (f"near{i}" in kept)
        assert (f"base{i + 6}" in kept) != (f"copy{i + 6}" in kept)
    assert {f"far{i}" for i in range(3, 6)} | {f"base{i}" for i in range(3, 6)} <= set(kept)
    assert sum(result["duplicates"].values()) == 6


def test_engine_settings_are_checked_before_anything_runs(tmp_path):
    from pipeline.recipe import RecipeError, resolve
    from stages.base import StageError

    with pytest.raises(StageError, match=r"needs corpus\.engine\.partition"):
        corpus_engine.Engine(EngineSpec(type="slurm"), tmp_path, logging.getLogger("test")).run("ingest", [], 1)
    raw = {"base_model": "m", "sources": [], "corpus": {"engine": {"type": "spark"}, "minhash": {"bands": 4}}}
    with pytest.raises(RecipeError) as info:
        resolve(raw, default_name="r", source="r.yaml")
    assert "corpus.engine.type" in str(info.value) and "corpus.minhash.bands: unknown key" in str(info.value)
