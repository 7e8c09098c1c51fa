"""Every task's data, built by the real corpus stage from small real fixtures, keeps eval items out of training.

The check here is written independently of ``stages.lib.decontam``: word 13-grams and exact containment
of each eval item's held-out texts, against every training document and every SFT pair.
"""

import json
import re
from pathlib import Path

import pytest

from pipeline.recipe import load_recipe
from stages import corpus
from stages.base import StageContext
from stages.corpus import CorpusParams
from stages.lib.jsonl import read_jsonl
from stages.lib.sources import SourceSpec, read

FIXTURES = Path(__file__).parent.parent / "fixtures"
SWORD = Path("/usr/share/sword/modules/texts/ztext")


def _grams(text: str, n: int = 13) -> set[tuple[str, ...]]:
    tokens = re.findall(r"\w+", text.lower())
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def _params(general_jsonl: Path) -> CorpusParams:
    gcide = str(FIXTURES / "gcide")
    sources = [
        {"name": "licenses", "kind": "domain", "type": "licensedcode", "max_documents": 150},
        {"name": "legal_glossary", "kind": "domain", "type": "gcide", "path": gcide, "subjects": ["law"]},
        {"name": "xbrl", "kind": "domain", "type": "xbrl", "max_documents": 300},
        {"name": "sec_forms", "kind": "domain", "type": "sec_forms", "max_documents": 200},
        {"name": "icd10cm", "kind": "domain", "type": "icd10cm", "sample": 0.1, "min_chars": 80},
        {"name": "gettext_fr", "kind": "domain", "type": "gettext", "language": "fr", "path": str(FIXTURES / "locale")},
        {"name": "docs", "kind": "general", "type": "jsonl", "path": str(general_jsonl)},
        {"name": "dictionary", "kind": "general", "type": "gcide", "path": gcide},
    ]
    for source in sources:
        source.setdefault("min_chars", 40)
        if source["name"] not in ("licenses", "docs"):  # entries, definitions, code lists: Gopher's prose rules misfire
            source["filters"] = ["encoding", "boilerplate"]
    sources[-3]["filters"].append("language")  # gettext_fr: English and French lines
    sources[-2]["filters"] = ["encoding", "boilerplate", "gopher_repetition", "language"]  # docstrings quote code
    tasks = [
        {"type": "license_id", "source": "licenses"},
        {"type": "term_definition", "source": "legal_glossary", "name": "legal_terms"},
        {"type": "xbrl_element", "source": "xbrl"},
        {"type": "form_purpose", "source": "sec_forms"},
        {"type": "icd_chapter", "source": "icd10cm"},
        {"type": "translation", "source": "gettext_fr", "name": "en_fr"},
        {"type": "term_definition", "source": "dictionary", "name": "general_words"},
    ]
    return CorpusParams(
        sources=sources, tasks=tasks, validation_fraction=0.1, eval_fraction=0.25, max_sft_pairs=24, max_eval_items=6
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model, general_jsonl) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    corpus.run(StageContext(out_dir=out), {}, _params(general_jsonl))
    return out / "data"


def test_every_task_has_items_pairs_and_a_baseline(built):
    stats = json.loads((built / "stats.json").read_text())
    assert set(stats["tasks"]) == {
        "license_id", "legal_terms", "xbrl_element", "form_purpose", "icd_chapter", "en_fr", "general_words"
    }  # fmt: skip
    for name, entry in stats["tasks"].items():
        info = json.loads((built / "tasks" / f"{name}.json").read_text())
        assert entry["eval_items"] == info["items"] > 0, name
        assert info["baseline"], name
        if info["kind"] == "general":
            assert entry["sft_pairs"] == 0, "general tasks measure forgetting and must not be trained on"
        else:
            assert entry["sft_pairs"] > 0, name
    en_fr = json.loads((built / "tasks" / "en_fr.json").read_text())
    assert en_fr["output_type"] == "generate_until" and 0 < en_fr["baseline"]["chrf"] < 100
    assert read_jsonl(built / "tasks" / "en_fr.fewshot.jsonl")


def test_no_eval_item_appears_in_any_training_split(built):
    training = [d["text"] for kind in ("domain", "general") for d in read_jsonl(built / f"{kind}_train.jsonl")]
    for pair in read_jsonl(built / "sft_train.jsonl"):
        training.append(pair["prompt"][0]["content"] + "\n" + pair["completion"][0]["content"])
    train_grams = set().union(*(_grams(t) for t in training))
    joined = "\n".join(training)
    checked = 0
    for task_file in sorted((built / "tasks").glob("*.json")):
        for item in read_jsonl(task_file.with_suffix(".jsonl")):
            for text in item["held_out"]:
                assert text not in joined, f"{task_file.stem}: eval text found verbatim in training: {text[:80]}"
                assert not _grams(text) & train_grams, f"{task_file.stem}: eval text shares a 13-gram: {text[:80]}"
                checked += 1
    assert checked >= 7 * 6


def test_planted_overlap_is_removed_from_training(tmp_path, tiny_model):
    """A training document that quotes an eval definition is dropped and counted."""
    general = tmp_path / "general.jsonl"
    dictionary = list(read(SourceSpec(name="d", kind="general", type="gcide", path=str(FIXTURES / "gcide"))))
    definitions = [d["meta"]["definition"] for d in dictionary if "drop" not in d]
    lines = [{"text": f"Document {i} quotes: {d} and goes on about other things."} for i, d in enumerate(definitions)]
    general.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    params = CorpusParams(
        sources=[
            {"name": "dictionary", "kind": "domain", "type": "gcide", "path": str(FIXTURES / "gcide"), "min_chars": 40},
            {"name": "quotes", "kind": "general", "type": "jsonl", "path": str(general), "min_chars": 40},
        ],
        filters=["encoding", "boilerplate"],  # one-sentence documents: Gopher's prose rules would drop them all
        tasks=[{"type": "term_definition", "source": "dictionary"}],
        eval_fraction=0.3,
        max_eval_items=8,
    )
    corpus.run(StageContext(out_dir=tmp_path / "out"), {}, params)
    data = tmp_path / "out" / "data"
    shown = {t for item in read_jsonl(data / "tasks" / "term_definition.jsonl") for t in item["held_out"]}
    quoting = [line["text"] for line in lines if any(s in line["text"] for s in shown)]
    assert quoting, "the fixture must plant quotes of the chosen eval items"
    kept = {d["text"] for d in read_jsonl(data / "general_train.jsonl")}
    assert kept and not kept & set(quoting)
    held = {d["text"] for split in ("validation", "eval") for d in read_jsonl(data / f"general_{split}.jsonl")}
    # Quotes of one definition are near-duplicates of each other: MinHash keeps one (its exclusions stay on disk).
    excluded = (tmp_path / "out" / "work" / "duplicates").glob("*.jsonl")
    duplicates = {d["text"] for path in excluded for d in read_jsonl(path)}
    dropped = json.loads((data / "stats.json").read_text())["sources"]["quotes"]["dropped"]
    assert dropped["shares a 13-gram with an eval item"] == len(set(quoting) - held - duplicates) > 0


@pytest.mark.skipif(not (SWORD / "engWEB2015eb").exists(), reason="Debian sword-text-web/-sparv not installed")
def test_bible_chapters_align_and_are_clean():
    spec = SourceSpec(name="bible", kind="domain", type="bible", language="es", mode="interleaved", max_documents=3)
    chapters = list(read(spec))
    assert [c["id"] for c in chapters] == ["bible:Gen.1", "bible:Gen.2", "bible:Gen.3"]
    first = chapters[0]["meta"]["pairs"][0]
    assert first[0].startswith("In the beginning, God created the heavens and the earth")
    assert first[1].startswith("En el principio crió Dios los cielos y la tierra")
    text = chapters[0]["text"]
    assert "<" not in text and "  " not in text and "Godcreated" not in text
    assert text.startswith("English: In the beginning") and "\nSpanish: En el principio" in text


def test_every_shipped_recipe_names_existing_sources_for_its_tasks():
    from pipeline.recipe import available_recipes

    for name in available_recipes():
        recipe = load_recipe(name)
        params = recipe.params["corpus"]
        kinds = {s.kind for s in params.sources}
        assert kinds == {"domain", "general"}, name
        if recipe.params["model"].name.startswith("scratch:"):
            continue  # a model built from random weights has no general ability to lose
        assert any(t for t in params.tasks if {s.name: s.kind for s in params.sources}[t.source] == "general"), (
            f"{name}: needs a general task to measure forgetting beyond perplexity"
        )


def test_a_corpus_killed_after_its_cleanup_reruns_instead_of_finding_no_documents(built, tmp_path, general_jsonl):
    """Killed after removing its shards and before the commit, the stage's partial folder keeps datatrove's
    completion markers without the shards they describe: the rerun must start the passes over (issue 12,
    point 5), not skip them all and stop with "the sources gave no documents"."""
    import shutil

    from stages.lib.corpus_engine import half_cleaned

    interrupted = tmp_path / "corpus.partial"
    shutil.copytree(built.parent, interrupted)  # what the finished stage left: data/, work/logs, no shards
    assert half_cleaned(interrupted / "work")
    corpus.run(StageContext(out_dir=interrupted), {}, _params(general_jsonl))
    again = json.loads((interrupted / "data" / "stats.json").read_text())
    assert again == json.loads((built / "stats.json").read_text())


def test_no_kept_validation_document_is_a_near_copy_of_training_text(built):
    """Checked here with this file's own n-grams: at most half of a validation document's 13-grams may be
    in training text (corpus.validation_overlap), and the drops are counted per source with their reason."""
    training: set[tuple[str, ...]] = set()
    for kind in ("domain", "general"):
        for doc in read_jsonl(built / f"{kind}_train.jsonl"):
            training |= _grams(doc["text"])
    for kind in ("domain", "general"):
        for doc in read_jsonl(built / f"{kind}_validation.jsonl"):
            grams = _grams(doc["text"])
            assert not grams or len(grams & training) / len(grams) < 0.5, doc["id"]
    stats = json.loads((built / "stats.json").read_text())
    counted = sum(n for e in stats["sources"].values() for r, n in e["dropped"].items() if "near-copy" in r)
    assert counted == stats["validation_near_copies"]


def test_a_corpus_of_probes_alone_builds_no_pairs_and_is_not_an_error(tmp_path, general_jsonl):
    """A recipe that skips sft (pre-training from scratch, then probes) asks for no pairs: the stage writes an
    empty sft_train.jsonl instead of stopping with "no instruction pairs survived"."""
    params = CorpusParams(
        sources=[
            {"name": "licenses", "kind": "domain", "type": "licensedcode", "max_documents": 80, "min_chars": 40},
            {"name": "docs", "kind": "general", "type": "jsonl", "path": str(general_jsonl), "min_chars": 40},
        ],
        tasks=[{"type": "cloze", "source": "licenses", "max_eval_items": 10}],
        validation_fraction=0.1,
        eval_fraction=0.2,
    )
    assert params.missing_sft_pairs() is not None  # the recipe refuses it only when sft runs
    result = corpus.run(StageContext(out_dir=tmp_path), {}, params)
    assert result["metrics"]["sft_pairs"] == 0 and (tmp_path / "data" / "sft_train.jsonl").read_text() == ""
    assert result["metrics"]["tasks"]["cloze"]["eval_items"] > 0
