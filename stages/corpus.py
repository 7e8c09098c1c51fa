"""Corpus preparation: read, clean, filter, near-dedup and split sources; build task data; decontaminate.

The heavy passes run as datatrove pipelines (``stages.lib.corpus_engine``): sharded, on a local process
pool by default or on Slurm or Ray (``corpus.engine``), with memory flat in the corpus size. Every
drop is counted per source with its reason. Splits are assigned by a hash of the document id, so
adding a document never moves another one between splits; deduplication runs before the split,
so a document and its near-copy never land on both sides. SFT pairs are built from training
documents and eval items from eval documents only; then every training document that shares a
13-gram with a text an eval item shows is dropped (``stages.lib.decontam``). Tasks on a ``general``
source measure forgetting: they add eval items but no SFT pairs. Tokenizing and packing are the
``pack`` stage's, so this stage's output serves every model and sequence length.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from stages.base import KeyedWhenSet, Params, StageContext, StageError, StageSpec, Wiring
from stages.lib import corpus_engine, decontam, mined_tasks, sources, task_builders, text_blocks, user_data
from stages.lib.corpus_engine import PROBE_FIELD, SPLITS, EngineSpec, MinhashSpec
from stages.lib.sources import SourceSpec
from stages.lib.text_blocks import FILTER_NAMES, PROFILE_MIN_CHARS, PROFILES
from stages.lib.user_data import EvalSetSpec, InstructionSpec, UserDataError

CANDIDATES_PER_ITEM = 3
"""Builders offer this many candidate eval items per item kept; decontamination keeps the most distinctive."""
TASK_TRAIN_DOCUMENTS = 20_000
"""Training documents per task source handed to a builder (the lowest id hashes): SFT pairs need
hundreds, and the bound keeps memory flat however large the source."""
PAIRLESS_TASKS = frozenset({"cloze", "knowledge_probe"})
"""Task types that only score models (probes) and build no instruction pairs."""
SFT_ONLY_TASKS = frozenset({"reading_comprehension"})
"""Task types that only build instruction pairs and have no items to score."""


class TaskSpec(KeyedWhenSet):
    """One task of a recipe: a builder applied to one source's train and eval documents."""

    model_config = ConfigDict(extra="forbid")

    type: str
    """Builder in ``stages.lib.task_builders.BUILDERS`` (license_id, term_definition, translation, and for any
    text: reading_comprehension, cloze, knowledge_probe)."""
    source: str
    """Name of the recipe source whose documents the task is built from; its kind is the task's kind."""
    name: str | None = None
    """Name in the report (default: the type); must be unique."""
    max_sft_pairs: int | None = Field(None, ge=0)
    """Per-task bound on SFT pairs (None: corpus.max_sft_pairs)."""
    max_eval_items: int | None = Field(None, ge=1)
    """Per-task bound on eval items (None: corpus.max_eval_items)."""
    instructions: Literal["source", "target"] | None = None
    """translation only: the language its SFT instructions are written in (None: source, the source language,
    as "A Novel Paradigm Boosting Translation Capabilities of LLMs" recommends; target: the target language)."""

    KEYED_WHEN_SET = frozenset({"instructions"})

    @model_validator(mode="after")
    def _instructions_for_translation(self) -> TaskSpec:
        if self.instructions is not None and self.type != "translation":
            raise ValueError(f"instructions: only a translation task takes it; this task's type is '{self.type}'")
        return self

    def builder_options(self) -> dict[str, Any]:
        """Keyword arguments the builder takes beyond the common ones (only those the recipe set)."""
        return {} if self.instructions is None else {"instructions": self.instructions}

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in task_builders.BUILDERS:
            raise ValueError(f"unknown task type '{value}'; known: {sorted(task_builders.BUILDERS)}")
        return value

    @property
    def label(self) -> str:
        return self.name or self.type


class CorpusParams(Params):
    sources: list[SourceSpec] = Field(default_factory=list)
    """Text sources; at least one ``domain`` and one ``general``."""
    min_chars: int = Field(200, ge=0)
    """Documents shorter than this after normalising are dropped (stubs teach nothing)."""
    validation_fraction: float = Field(0.05, ge=0.0, lt=0.5)
    """Held-out share for validation loss and bits-per-byte."""
    eval_fraction: float = Field(0.05, ge=0.0, lt=0.5)
    """Held-out share from which task items are built (never trained on)."""
    tasks: list[TaskSpec] = Field(default_factory=list)
    """Tasks: SFT pairs (domain sources) and eval items (every source) built by ``stages.lib.task_builders``."""
    instructions: list[InstructionSpec] = Field(default_factory=list)
    """The user's own instruction pairs (recipe key ``instructions``), added to the built ones for sft."""
    evals: list[EvalSetSpec] = Field(default_factory=list)
    """The user's own eval sets (recipe key ``evals``), scored for every model like the built tasks."""
    reading_comprehension: float = Field(0.0, ge=0.0, le=1.0)
    """Share of domain training documents given to cpt in AdaptLLM's reading-comprehension form (the text
    followed by questions mined from it), which keeps prompting ability that raw-text CPT loses."""
    drop_warning: float = Field(0.2, ge=0.0, le=1.0)
    """Warn (console, plan, report) when filters drop more than this share of a source's documents."""
    max_sft_pairs: int = Field(300, ge=0)
    """Upper bound on instruction pairs per task; SFT cost grows linearly with it."""
    max_eval_items: int = Field(60, ge=1)
    """Upper bound on items per task; eval cost grows linearly with it."""
    seed: int = 0
    profile: Literal["web", "curated", "code_docs"] = "curated"
    """Filter profile of sources that name neither a profile nor filters: ``curated`` (encoding repair,
    web-chrome lines, length floor, exact and near dedup) fits documents someone chose; ``web`` adds
    Gopher's quality and repetition rules and the language check, tuned for web crawl."""
    filters: list[str] | None = None
    """Filters for sources that name neither a profile nor filters; replaces ``profile``'s chain."""
    filter_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per filter, the keyword arguments of the datatrove class behind it, e.g.
    {gopher_quality: {min_doc_words: 20}}; unset ones keep datatrove's (Gopher paper) defaults."""
    minhash: MinhashSpec = Field(default_factory=MinhashSpec)
    """Near-duplicate detection across all sources (exact copies are removed too)."""
    engine: EngineSpec = Field(default_factory=EngineSpec)
    """Where datatrove runs the passes: local processes (default), Slurm or Ray."""
    trust_remote_code: bool = False
    """Kept for recipes that set it; tokenizing moved to the pack stage."""

    _known_filters = field_validator("filters")(text_blocks.check_filter_names)

    @field_validator("filter_settings")
    @classmethod
    def _known_settings(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, settings in value.items():
            if name not in FILTER_NAMES:
                raise ValueError(f"filter_settings names unknown filter '{name}'; known: {list(FILTER_NAMES)}")
            text_blocks.check_settings(name, settings)
        return value

    @field_validator("sources")
    @classmethod
    def _both_kinds(cls, value: list[SourceSpec]) -> list[SourceSpec]:
        kinds = {s.kind for s in value}
        if value and kinds != {"domain", "general"}:
            raise ValueError(f"need at least one 'domain' and one 'general' source, got kinds {sorted(kinds)}")
        names = [s.name for s in value]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        for spec in value:  # at plan time: a missing file or a malformed line costs no training
            try:
                sources.check(spec)
            except StageError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @field_validator("instructions", "evals")
    @classmethod
    def _user_files_read(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        """Every line of the user's instruction and eval files, read at load time (file and line on error)."""
        check = user_data.check_instructions if info.field_name == "instructions" else user_data.check_eval_set
        for spec in value:
            try:
                check(spec)
            except UserDataError as exc:
                raise ValueError(f"{info.field_name} '{spec.name}': {exc}") from exc
        return value

    decontamination_ngram: int = Field(13, ge=4)
    """Training documents sharing a word n-gram of this length with an eval item are dropped (GPT-3 used 13)."""
    validation_overlap: float = Field(0.5, gt=0, le=1)
    """A validation document with this share of its n-grams (or more) in training text is dropped: a near-copy
    MinHash missed would flatter held-out bits-per-byte (legal, 2026-12: 36 of 183 domain validation licenses)."""

    @model_validator(mode="after")
    def _tasks_name_sources(self) -> CorpusParams:
        names = {s.name for s in self.sources}
        for task in self.tasks:
            if task.source not in names:
                raise ValueError(f"task '{task.label}' names source '{task.source}'; the sources are {sorted(names)}")
        meta_problems = _task_meta_problems(self.tasks, self.sources)
        if meta_problems:
            raise ValueError("; ".join(meta_problems))
        labels = [t.label for t in self.tasks] + [e.name for e in self.evals]
        if len(set(labels)) != len(labels):
            raise ValueError(f"task and eval set names must be unique (set 'name' on repeated types), got {labels}")
        for label in labels:
            user_data.check_name(label)
        return self

    def missing_sft_pairs(self) -> str | None:
        """Why this corpus would give sft no instruction pairs, or None; the recipe asks only when it runs sft."""
        kinds = {s.name: s.kind for s in self.sources}
        pair_tasks = [t for t in self.tasks if t.type not in PAIRLESS_TASKS and kinds.get(t.source) == "domain"]
        if self.sources and not self.instructions and (not pair_tasks or self.max_sft_pairs == 0):
            domain = next((s.name for s in self.sources if s.kind == "domain"), "NAME")
            return (
                "sft has no instruction pairs: add your own under 'instructions:' (JSONL of prompt/completion "
                f"or messages), or a domain task that builds pairs, e.g. corpus.tasks: "
                f"[{{type: reading_comprehension, source: {domain}}}] (pairs mined from the text), or skip: [sft]"
            )
        return None


def _task_meta_problems(tasks: list[TaskSpec], specs: list[SourceSpec]) -> list[str]:
    """Tasks whose source cannot give the document meta their builder reads, found before any source is read.

    ``task_builders.REQUIRED_META`` says what each builder reads, ``sources.provided_meta`` what each
    source gives; sources whose fields are known only when read (parquet, hf) are left to the builder."""
    by_name = {spec.name: spec for spec in specs}
    problems = []
    for index, task in enumerate(tasks):
        needed = task_builders.REQUIRED_META.get(task.type, ())
        spec = by_name.get(task.source)
        if not needed or spec is None:
            continue
        try:
            given = sources.provided_meta(spec)
        except StageError:
            continue  # a missing file is reported by the sources check, with its own message
        missing = [key for key in needed if given is not None and key not in given]
        if missing:
            fitting = sorted(t for t, f in sources.PROVIDED_META.items() if f is not None and set(needed) <= f)
            problems.append(
                f"corpus.tasks.{index} (task '{task.label}', type {task.type}) needs documents with meta "
                f"{list(needed)}, but source '{spec.name}' (type {spec.type}) gives {sorted(given or [])}, "
                f"lacking {missing}: use a source of type {' or '.join(fitting)}, or a jsonl source whose "
                f"records carry {', '.join(needed)}"
            )
    return problems


def fingerprint(params: CorpusParams) -> dict[str, Any]:
    from stages.lib.fingerprint import fingerprint_paths

    prints = {source.name: sources.fingerprint(source) for source in params.sources}
    for spec in [*params.instructions, *params.evals]:
        prints[f"file:{spec.name}"] = fingerprint_paths([Path(spec.path)])
    return prints


def profile_of(spec: SourceSpec, params: CorpusParams) -> str:
    """The source's profile name, or ``custom`` when it lists its own filters."""
    if spec.filters is not None or (spec.profile is None and params.filters is not None):
        return "custom"
    return spec.profile or params.profile


def filter_chains(params: CorpusParams) -> dict[str, list[str]]:
    """Each source's filters: its own list, else its profile's chain, else the corpus default."""
    chains = {}
    for spec in params.sources:
        profile = profile_of(spec, params)
        if profile != "custom":
            chains[spec.name] = list(PROFILES[profile])
        else:
            chains[spec.name] = spec.filters if spec.filters is not None else params.filters
    return chains


def min_chars_by_source(params: CorpusParams) -> dict[str, int]:
    """A source's own floor, else its profile's (``code_docs``: short API entries are whole), else the corpus'."""
    floors = {}
    for spec in params.sources:
        profile_floor = PROFILE_MIN_CHARS.get(profile_of(spec, params), params.min_chars)
        floors[spec.name] = spec.min_chars if spec.min_chars is not None else profile_floor
    return floors


def prepare(params: CorpusParams, work: Path, log: Any) -> dict[str, Any]:
    """The datatrove passes (ingest, clean, MinHash, split) over the recipe's sources, into ``work``."""
    passes = corpus_engine.Passes(
        sources=params.sources,
        engine=params.engine,
        chains=filter_chains(params),
        settings=params.filter_settings,
        min_chars=min_chars_by_source(params),
        minhash=params.minhash,
        seed=params.seed,
        validation_fraction=params.validation_fraction,
        eval_fraction=params.eval_fraction,
    )
    return corpus_engine.prepare(passes, work, log)


def run(ctx: StageContext, inputs: dict[str, Any], params: CorpusParams) -> dict[str, Any]:
    """Sources -> cleaned, deduplicated splits -> tasks -> decontamination -> the files and their stats."""
    if not params.sources:
        raise StageError("corpus: no sources given (recipe key 'sources')")
    work, data = ctx.out_dir / "work", ctx.out_dir / "data"
    (data / "tasks").mkdir(parents=True, exist_ok=True)
    stats = _source_stats(params, prepare(params, work, ctx.log))
    built, entries, max_items = _build_tasks(params, work)
    kept = _decontaminate(ctx, params, work, built, max_items)
    converted, probe_counts = _write_splits(params, work, data, stats, kept)
    sft_pairs, task_summary = _write_tasks(params, data / "tasks", built, entries, kept)
    _write_jsonl(data / "sft_train.jsonl", sft_pairs)
    warnings = drop_warnings(stats, params.drop_warning)
    for line in warnings:
        ctx.log.warning("%s", line)
    summary = {
        "sources": stats,
        "tasks": task_summary,
        "sft_pairs": len(sft_pairs),
        "decontaminated": len(kept.removed),
        "validation_near_copies": len(kept.near_copies),
        "reading_comprehension_documents": converted,
        "probe_documents": dict(probe_counts),
        "minhash_threshold": round(params.minhash.threshold, 3),
        "warnings": warnings,
    }
    if not sft_pairs and params.missing_sft_pairs() is None:  # pairs were asked for (tasks or the user's)
        raise StageError(
            "corpus: no instruction pairs survived (every built pair came from a decontaminated document, or "
            "every user pair shared text with an eval item); add pairs under 'instructions:' or raise max_sft_pairs"
        )
    (data / "stats.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for part in ("raw", "clean", "minhash", "split"):  # intermediate shards; logs and duplicates stay for inspection
        shutil.rmtree(work / part, ignore_errors=True)
    for name, entry in stats.items():
        ctx.log.info(
            "source %s: kept %d, dropped %s, splits %s", name, entry["kept"], entry["dropped"], entry["splits"]
        )
    return {"outputs": {"data": data}, "metrics": summary}


TaskEntry = tuple[str, str, str, str, str]
"""(label, type, source, kind, origin) of a built task, in recipe order, the user's eval sets after."""


def _build_tasks(
    params: CorpusParams, work: Path
) -> tuple[dict[str, task_builders.TaskData], list[TaskEntry], dict[str, int]]:
    """Every task's candidate items and SFT pairs, from every eval document of its source and a bounded sample
    of its training documents; the user's eval sets as they are. Returns the tasks, their entries and the
    number of eval items each keeps."""
    task_sources = {spec.source for spec in params.tasks}
    docs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    samples: dict[str, list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
    for kind in ("domain", "general"):
        for doc in corpus_engine.split_documents(work, kind, "eval"):
            if doc["source"] in task_sources:
                docs[(doc["source"], "eval")].append(doc)
        for n, doc in enumerate(corpus_engine.split_documents(work, kind, "train")):
            if doc["source"] in task_sources:  # keep the lowest hashes: a max-heap of negated digests
                entry = (_negated_digest(doc["id"]), n, doc)
                heap = samples[doc["source"]]
                if len(heap) < TASK_TRAIN_DOCUMENTS:
                    heapq.heappush(heap, entry)
                elif entry > heap[0]:
                    heapq.heapreplace(heap, entry)
    for source, heap in samples.items():
        docs[(source, "train")] = [doc for _, _, doc in sorted(heap, key=lambda e: e[1])]

    built: dict[str, task_builders.TaskData] = {}
    max_items = {
        spec.label: params.max_eval_items if spec.max_eval_items is None else spec.max_eval_items
        for spec in params.tasks
    }
    for spec in params.tasks:
        try:
            task = task_builders.BUILDERS[spec.type](
                docs[(spec.source, "train")],
                docs[(spec.source, "eval")],
                params.seed,
                params.max_sft_pairs if spec.max_sft_pairs is None else spec.max_sft_pairs,
                CANDIDATES_PER_ITEM * max_items[spec.label],
                **spec.builder_options(),
            )
        except ValueError as exc:
            raise StageError(f"corpus: task '{spec.label}': {exc}") from exc
        if not task.eval_items and spec.type not in SFT_ONLY_TASKS:
            raise StageError(
                f"corpus: task '{spec.label}' got no eval items from source '{spec.source}'; "
                "raise eval_fraction or add documents"
            )
        built[spec.label] = task
    kinds = {spec.name: spec.kind for spec in params.sources}
    entries = [
        (spec.label, spec.type, spec.source, kinds[spec.source], built[spec.label].origin) for spec in params.tasks
    ]
    for user_set in params.evals:  # every item kept: the user chose them
        built[user_set.name] = _user_eval_task(user_set)
        max_items[user_set.name] = len(built[user_set.name].eval_items)
        entries.append((user_set.name, "user_eval", user_set.path, user_set.kind, "user"))
    return built, entries, max_items


@dataclass
class Decontamination:
    """What the decontamination pass decided: the training documents dropped, the validation near-copies, the
    training documents a closed-book probe asks about, and an index of the eval items kept."""

    removed: set[Any]
    near_copies: set[Any]
    probe_documents: set[str]
    final_index: Any
    reason: str
    near_reason: str


def _decontaminate(
    ctx: StageContext,
    params: CorpusParams,
    work: Path,
    built: dict[str, task_builders.TaskData],
    max_items: dict[str, int],
) -> Decontamination:
    """One streaming pass over the training documents: find which candidate items share text with which
    documents, keep the candidates that share the least (trimming ``built`` in place), then mark every document
    that still overlaps for dropping, and every validation document mostly found in training text."""
    index = _item_index(built, params.decontamination_ngram)
    overlap = decontam.OverlapShare(
        (
            (doc["id"], doc["text"])
            for kind in ("domain", "general")
            for doc in corpus_engine.split_documents(work, kind, "validation")
        ),
        params.decontamination_ngram,
    )
    hits: dict[str, set[Any]] = {}
    shared: Counter[Any] = Counter()
    for kind in ("domain", "general"):
        train = corpus_engine.split_documents(work, kind, "train")
        for doc in ctx.progress(train, desc=f"decontaminate:{kind}", unit="doc"):
            if found := index.hits(doc["text"]):
                hits[doc["id"]] = found
                shared.update(found)
            overlap.add_training_text(doc["text"])
    near_copies = {doc_id for doc_id, share in overlap.shares().items() if share >= params.validation_overlap}
    chosen: set[Any] = set()
    for label, task in built.items():
        order = sorted(range(len(task.eval_items)), key=lambda i: (shared[(label, i)], i))[: max_items[label]]
        chosen |= {(label, i) for i in order}
        task.eval_items = [task.eval_items[i] for i in sorted(order)]
    removed = {doc_id for doc_id, found in hits.items() if found & chosen}
    probe_documents: set[str] = set()
    for task in built.values():
        if task.origin == "training":  # a probe about a document that will not be trained on tests nothing
            task.eval_items = [item for item in task.eval_items if item["source_id"] not in removed]
            probe_documents |= {item["source_id"] for item in task.eval_items}
    probe_labels = {spec.label for spec in params.tasks if spec.type in PAIRLESS_TASKS}
    for label, task in built.items():
        if label in probe_labels:  # count what was kept, not what was offered
            task.description = mined_tasks.cloze_description(task.eval_items, task.origin == "training")
    return Decontamination(
        removed=removed,
        near_copies=near_copies,
        probe_documents=probe_documents,
        final_index=_item_index(built, params.decontamination_ngram),  # the kept items only
        reason=f"shares a {params.decontamination_ngram}-gram with an eval item",
        near_reason=(
            f"validation near-copy: {params.validation_overlap:.0%}+ of its {params.decontamination_ngram}-grams "
            "are in training text"
        ),
    )


def _write_splits(
    params: CorpusParams, work: Path, data: Path, stats: dict[str, dict[str, Any]], kept: Decontamination
) -> tuple[int, Counter[str]]:
    """The final ``<kind>_<split>.jsonl`` files, less what decontamination dropped, probe documents marked and a
    share of domain training text turned into reading comprehension; counts go into ``stats``. Returns the
    number of documents converted and the probe documents per kind."""
    converted = 0
    probe_counts: Counter[str] = Counter()
    for kind in ("domain", "general"):
        for split in SPLITS:
            with (data / f"{kind}_{split}.jsonl").open("w", encoding="utf-8") as fh:
                for doc in corpus_engine.split_documents(work, kind, split):
                    entry = stats[doc["source"]]
                    if split == "train" and doc["id"] in kept.removed:
                        entry["dropped"][kept.reason] += 1
                        continue
                    if split == "validation" and doc["id"] in kept.near_copies:
                        entry["dropped"][kept.near_reason] += 1
                        continue
                    if split == "train" and doc["id"] in kept.probe_documents:
                        doc[PROBE_FIELD] = True  # kept as written: the pack stage puts it first, cpt trains on it
                        probe_counts[kind] += 1
                    elif kind == "domain" and split == "train" and _in_share(doc["id"], params.reading_comprehension):
                        doc["text"] = _reading_comprehension_text(doc["text"], params.seed)
                        converted += 1
                    fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
                    counts = entry["splits"][split]
                    counts["documents"] += 1
                    counts["bytes"] += len(doc["text"].encode("utf-8"))
    for name, entry in stats.items():
        entry["kept"] = sum(counts["documents"] for counts in entry["splits"].values())
        entry["read"] = entry["kept"] + sum(entry["dropped"].values())
        if entry["kept"] == 0:
            raise StageError(f"corpus: source '{name}' kept no documents (dropped: {dict(entry['dropped'])})")
        entry["dropped"] = dict(entry["dropped"])
    return converted, probe_counts


def _write_tasks(
    params: CorpusParams,
    tasks_dir: Path,
    built: dict[str, task_builders.TaskData],
    entries: list[TaskEntry],
    kept: Decontamination,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Each task's eval items, few-shot items and description into ``tasks_dir``; its SFT pairs (and the user's)
    less those sharing text with a kept eval item. Returns the pairs and a summary per task."""
    sft_pairs: list[dict[str, Any]] = []
    task_summary = {}
    for label, task_type, source, kind, origin in entries:
        task = built[label]
        pairs = [p for p in task.sft_pairs if p["source_id"] not in kept.removed] if kind == "domain" else []
        # The pair's own text too: a prompt can quote what its source document does not (a distractor, a term).
        clean = [p for p in pairs if not kept.final_index.hits(user_data.pair_text(p))]
        sharing, pairs = len(pairs) - len(clean), clean
        sft_pairs += pairs
        if task.eval_items:
            _write_jsonl(tasks_dir / f"{label}.jsonl", task.eval_items)
        if task.fewshot_items:
            fewshot = [i for i in task.fewshot_items if not kept.final_index.hits(f"{i['question']} {i['answer']}")]
            _write_jsonl(tasks_dir / f"{label}.fewshot.jsonl", fewshot)
        info = {
            "name": label,
            "type": task_type,
            "source": source,
            "kind": kind,
            "origin": origin,
            "description": task.description,
            "output_type": task.output_type,
            "baseline": task.baseline,
            "baseline_name": task.baseline_name,
            "items": len(task.eval_items),
        }
        if task.metric:
            info["metric"] = task.metric
        if task.eval_items:  # a task that only builds SFT pairs (reading comprehension) has nothing to score
            (tasks_dir / f"{label}.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        task_summary[label] = {
            "kind": kind,
            "origin": origin,
            "sft_pairs": len(pairs),
            "eval_items": len(task.eval_items),
        }
        if sharing:
            task_summary[label]["dropped_sharing_eval_text"] = sharing
    for name, (pairs, contaminated) in _user_pairs(params.instructions, kept.final_index).items():
        sft_pairs += pairs
        task_summary[name] = {"kind": "domain", "origin": "user", "sft_pairs": len(pairs), "eval_items": 0}
        if contaminated:
            task_summary[name]["dropped_sharing_eval_text"] = contaminated
    return sft_pairs, task_summary


def _source_stats(params: CorpusParams, prepared: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per source: kind, license, drops by reason (adapter, filters, duplicates), boilerplate lines removed."""
    stats: dict[str, dict[str, Any]] = {}
    chains = filter_chains(params)
    for spec in params.sources:
        stats[spec.name] = {
            "kind": spec.kind,
            "license": spec.license,
            "filters": chains[spec.name],
            "profile": profile_of(spec, params),
            "dropped": Counter(),
            "boilerplate_lines_removed": 0,
            "adapter_dropped": 0,
            "splits": {split: {"documents": 0, "bytes": 0} for split in SPLITS},
        }
    for part in ("ingest", "clean"):
        for key, value in prepared["counters"][part].items():
            label, _, rest = key.partition("/")
            source, _, reason = rest.partition("/")
            if source not in stats:
                continue
            if label == "dropped":
                stats[source]["dropped"][reason] += int(value)
                if part == "ingest":  # the adapter's own selection (gettext messages, retired licenses)
                    stats[source]["adapter_dropped"] += int(value)
            elif label == "boilerplate lines":
                stats[source]["boilerplate_lines_removed"] += int(value)
    reason = f"near-duplicate (MinHash, similarity above ~{params.minhash.threshold:.2f})"
    for source, count in prepared["duplicates"].items():
        stats[source]["dropped"][reason] += count
    return stats


_FILTER_FIXES = {
    "gopher_quality": "leave gopher_quality out of the source's filters (profile: curated)",
    "gopher_repetition": "leave gopher_repetition out of the source's filters (profile: curated)",
    "language": "set the source's languages, or leave language out of its filters",
    "shorter than min_chars": "lower the source's min_chars",
}


def drop_warnings(stats: dict[str, dict[str, Any]], threshold: float) -> list[str]:
    """One line per source whose filters dropped more than ``threshold`` of the documents they saw: the top
    reasons and the setting that turns each off. Deduplication and decontamination are not filters, and
    neither is an adapter's own selection (gettext counts skipped messages, not documents)."""
    lines = []
    for name, entry in stats.items():
        filtered = {r: n for r, n in entry["dropped"].items() if r.startswith(_FILTER_PREFIXES)}
        read = (entry.get("read") or 0) - entry.get("adapter_dropped", 0) or 1
        if sum(filtered.values()) <= threshold * read:
            continue
        top = sorted(filtered.items(), key=lambda item: -item[1])[:3]
        reasons = "; ".join(
            f"{reason} ({count})" + (f": to keep them, {fix}" if (fix := _fix_for(reason)) else "")
            for reason, count in top
        )
        lines.append(
            f"source '{name}': filters dropped {sum(filtered.values())} of {read} documents "
            f"({100 * sum(filtered.values()) / read:.0f}%, above corpus.drop_warning={threshold}); "
            f"top reasons: {reasons}"
        )
    return lines


_FILTER_PREFIXES = (*FILTER_NAMES, "shorter than min_chars")
"""How the clean pass names its drops: a filter's name, or the length floor."""


def _fix_for(reason: str) -> str:
    for prefix, fix in _FILTER_FIXES.items():
        if reason.startswith(prefix):
            return fix
    return ""


def _in_share(doc_id: str, share: float) -> bool:
    """A stable choice of ``share`` of documents by a hash of the id."""
    return share > 0 and int.from_bytes(hashlib.sha256(f"rc:{doc_id}".encode()).digest()[:8], "big") < share * 2**64


def _reading_comprehension_text(text: str, seed: int) -> str:
    from stages.lib.mined_tasks import reading_comprehension_text

    return reading_comprehension_text(text, seed)


def _user_eval_task(spec: EvalSetSpec) -> task_builders.TaskData:
    """The user's eval set as task data: a choice task against chance, or short answers against copying
    the question (exact match and chrF)."""
    import sacrebleu

    form, items = user_data.read_eval_set(Path(spec.path))
    if form == "multiple_choice":
        chance = sum(1 / len(item["choices"]) for item in items) / len(items)
        return task_builders.TaskData(
            f"your multiple-choice set {Path(spec.path).name} ({len(items)} items)",
            "multiple_choice",
            eval_items=items,
            baseline={"acc": chance},
        )
    questions, answers = [i["source"] for i in items], [[i["answer"] for i in items]]
    return task_builders.TaskData(
        f"your short-answer set {Path(spec.path).name} ({len(items)} items): greedy answer to the line's end, "
        "exact match and chrF",
        "generate_until",
        eval_items=items,
        baseline={
            "exact_match": sum(
                q.strip().lower() == a.strip().lower() for q, a in zip(questions, answers[0], strict=True)
            )
            / len(items),
            "chrf": sacrebleu.corpus_chrf(questions, answers).score,
        },
        baseline_name="copy the question",
    )


def _user_pairs(specs: list[InstructionSpec], index: decontam.Index) -> dict[str, tuple[list[dict[str, Any]], int]]:
    """Per instruction file: its pairs that share no n-gram with a kept eval item, and how many did."""
    result = {}
    for spec in specs:
        kept, contaminated = [], 0
        for number, pair in user_data.read_instructions(Path(spec.path)):
            if index.hits(user_data.pair_text(pair)):
                contaminated += 1
                continue
            kept.append({**pair, "source_id": f"{spec.name}:{number}"})
        result[spec.name] = (kept, contaminated)
    return result


def _negated_digest(doc_id: str) -> int:
    return -int.from_bytes(hashlib.sha256(f"task-sample:{doc_id}".encode()).digest()[:8], "big")


def _item_index(built: dict[str, task_builders.TaskData], n: int) -> decontam.Index:
    """N-gram index of every eval item's held-out texts, keyed by (task, item number)."""
    return decontam.Index(
        (((label, i), item["held_out"]) for label, task in built.items() for i, item in enumerate(task.eval_items)), n
    )


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


SPEC = StageSpec(
    name="corpus",
    version=9,
    params=CorpusParams,
    inputs=(),
    wiring=Wiring(),
    run=run,
    doc="Read, clean, filter, near-dedup and split sources (datatrove); build SFT pairs and eval items; decontaminate.",
    libraries=("datatrove", "ftfy", "langid"),
    fingerprint=fingerprint,
)
