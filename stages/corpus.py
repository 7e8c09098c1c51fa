"""Corpus preparation: read sources, normalise, exact-dedup, split, build task data, decontaminate, count.

Every drop is counted with its reason (datatrove's habit), per source. Splits are assigned by a
hash of the document id, so adding a document never moves another one between splits. SFT pairs
are built from training documents and eval items from eval documents only; then every training
document that shares a 13-gram with a text an eval item shows is dropped (``stages.decontam``).
Tasks on a ``general`` source measure forgetting: they add eval items but no SFT pairs.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stages import decontam, sources, task_builders
from stages.base import Params, StageContext, StageError, StageSpec
from stages.sources import SourceSpec

SPLITS = ("train", "validation", "eval")
CANDIDATES_PER_ITEM = 3
"""Builders offer this many candidate eval items per item kept; decontamination keeps the most distinctive."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_RUNS = re.compile(r"\n{3,}")


class TaskSpec(BaseModel):
    """One task of a recipe: a builder applied to one source's train and eval documents."""

    model_config = ConfigDict(extra="forbid")

    type: str
    """Builder in ``stages.task_builders.BUILDERS`` (license_id, term_definition, translation, ...)."""
    source: str
    """Name of the recipe source whose documents the task is built from; its kind is the task's kind."""
    name: str | None = None
    """Name in the report (default: the type); must be unique."""
    max_sft_pairs: int | None = Field(None, ge=0)
    """Per-task bound on SFT pairs (None: corpus.max_sft_pairs)."""
    max_eval_items: int | None = Field(None, ge=1)
    """Per-task bound on eval items (None: corpus.max_eval_items)."""

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
    """Tasks: SFT pairs (domain sources) and eval items (every source) built by ``stages.task_builders``."""
    max_sft_pairs: int = Field(300, ge=0)
    """Upper bound on instruction pairs per task; SFT cost grows linearly with it."""
    max_eval_items: int = Field(60, ge=1)
    """Upper bound on items per task; eval cost grows linearly with it."""
    seed: int = 0
    trust_remote_code: bool = False
    """Only when the recipe asks: the tokenizer's own code runs on this machine."""

    @field_validator("sources")
    @classmethod
    def _both_kinds(cls, value: list[SourceSpec]) -> list[SourceSpec]:
        kinds = {s.kind for s in value}
        if value and kinds != {"domain", "general"}:
            raise ValueError(f"need at least one 'domain' and one 'general' source, got kinds {sorted(kinds)}")
        names = [s.name for s in value]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        return value

    decontamination_ngram: int = Field(13, ge=4)
    """Training documents sharing a word n-gram of this length with an eval item are dropped (GPT-3 used 13)."""

    @model_validator(mode="after")
    def _tasks_name_sources(self) -> CorpusParams:
        names = {s.name for s in self.sources}
        for task in self.tasks:
            if task.source not in names:
                raise ValueError(f"task '{task.label}' names source '{task.source}'; the sources are {sorted(names)}")
        labels = [t.label for t in self.tasks]
        if len(set(labels)) != len(labels):
            raise ValueError(f"task names must be unique (set 'name' on repeated types), got {labels}")
        return self


def fingerprint(params: CorpusParams) -> dict[str, Any]:
    return {source.name: sources.fingerprint(source) for source in params.sources}


def normalise(text: str) -> str:
    """NFC, Unix newlines, no control characters, no trailing spaces, at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def assign_split(doc_id: str, seed: int, validation_fraction: float, eval_fraction: float) -> str:
    """Stable split from a hash of the id: the same document always lands in the same split."""
    digest = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < validation_fraction:
        return "validation"
    if u < validation_fraction + eval_fraction:
        return "eval"
    return "train"


def run(ctx: StageContext, inputs: dict[str, Any], params: CorpusParams) -> dict[str, Any]:
    from transformers import AutoTokenizer

    if not params.sources:
        raise StageError("corpus: no sources given (recipe key 'sources')")
    tokenizer = AutoTokenizer.from_pretrained(inputs["tokenizer"], trust_remote_code=params.trust_remote_code)
    data = ctx.out_dir / "data"
    data.mkdir(parents=True, exist_ok=True)

    seen: dict[str, str] = {}
    docs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    stats: dict[str, Any] = {}
    for spec in params.sources:
        dropped: Counter[str] = Counter()
        kept = 0
        min_chars = params.min_chars if spec.min_chars is None else spec.min_chars
        for doc in ctx.progress(sources.read(spec), desc=f"corpus:{spec.name}", unit="doc"):
            if "drop" in doc:
                dropped[doc["drop"]] += 1
                continue
            text = normalise(doc["text"])
            if len(text) < min_chars:
                dropped["shorter than min_chars"] += 1
                continue
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            if digest in seen:
                dropped["exact duplicate"] += 1
                continue
            seen[digest] = doc["id"]
            doc["text"] = text
            split = assign_split(doc["id"], params.seed, params.validation_fraction, params.eval_fraction)
            docs[(spec.name, split)].append(doc)
            kept += 1
        if kept == 0:
            raise StageError(f"corpus: source '{spec.name}' kept no documents (dropped: {dict(dropped)})")
        stats[spec.name] = {"kind": spec.kind, "license": spec.license, "kept": kept, "dropped": dropped}

    kinds = {spec.name: spec.kind for spec in params.sources}
    tasks_dir = data / "tasks"
    tasks_dir.mkdir(exist_ok=True)
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
            )
        except ValueError as exc:
            raise StageError(f"corpus: {exc}") from exc
        if not task.eval_items:
            raise StageError(
                f"corpus: task '{spec.label}' got no eval items from source '{spec.source}'; "
                "raise eval_fraction or add documents"
            )
        built[spec.label] = task

    # Decontamination, in one pass over the training documents: find which candidate items share text with
    # which documents, keep the candidates that share the least, then drop every document that still overlaps.
    index = _item_index(built, params.decontamination_ngram)
    hits: dict[str, set[Any]] = {}
    shared: Counter[Any] = Counter()
    for spec in params.sources:
        for doc in ctx.progress(docs[(spec.name, "train")], desc=f"decontaminate:{spec.name}", unit="doc"):
            if found := index.hits(doc["text"]):
                hits[doc["id"]] = found
                shared.update(found)
    chosen: set[Any] = set()
    for label, task in built.items():
        order = sorted(range(len(task.eval_items)), key=lambda i: (shared[(label, i)], i))[: max_items[label]]
        chosen |= {(label, i) for i in order}
        task.eval_items = [task.eval_items[i] for i in sorted(order)]
    removed = {doc_id for doc_id, found in hits.items() if found & chosen}
    reason = f"shares a {params.decontamination_ngram}-gram with an eval item"
    for spec in params.sources:
        kept_docs = [doc for doc in docs[(spec.name, "train")] if doc["id"] not in removed]
        if dropped_here := len(docs[(spec.name, "train")]) - len(kept_docs):
            stats[spec.name]["kept"] -= dropped_here
            stats[spec.name]["dropped"][reason] += dropped_here
        docs[(spec.name, "train")] = kept_docs
    final_index = _item_index(built, params.decontamination_ngram)  # the kept items only

    sft_pairs: list[dict[str, Any]] = []
    task_summary = {}
    for spec in params.tasks:
        task = built[spec.label]
        pairs = [p for p in task.sft_pairs if p["source_id"] not in removed] if kinds[spec.source] == "domain" else []
        sft_pairs += pairs
        _write_jsonl(tasks_dir / f"{spec.label}.jsonl", task.eval_items)
        if task.fewshot_items:
            fewshot = [i for i in task.fewshot_items if not final_index.hits(f"{i['question']} {i['answer']}")]
            _write_jsonl(tasks_dir / f"{spec.label}.fewshot.jsonl", fewshot)
        info = {
            "name": spec.label,
            "type": spec.type,
            "source": spec.source,
            "kind": kinds[spec.source],
            "description": task.description,
            "output_type": task.output_type,
            "baseline": task.baseline,
            "baseline_name": task.baseline_name,
            "items": len(task.eval_items),
        }
        (tasks_dir / f"{spec.label}.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        task_summary[spec.label] = {
            "kind": kinds[spec.source],
            "sft_pairs": len(pairs),
            "eval_items": len(task.eval_items),
        }
    _write_jsonl(data / "sft_train.jsonl", sft_pairs)

    for kind in ("domain", "general"):
        for split in SPLITS:
            items = [doc for spec in params.sources if spec.kind == kind for doc in docs[(spec.name, split)]]
            _write_jsonl(data / f"{kind}_{split}.jsonl", items)
    for spec in params.sources:
        per_split = stats[spec.name].setdefault("splits", {})
        for split in SPLITS:
            texts = [d["text"] for d in docs[(spec.name, split)]]
            tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]) if texts else 0
            per_split[split] = {"documents": len(texts), "tokens": tokens, "bytes": sum(len(t.encode()) for t in texts)}
        stats[spec.name]["dropped"] = dict(stats[spec.name]["dropped"])

    summary = {"sources": stats, "tasks": task_summary, "sft_pairs": len(sft_pairs), "decontaminated": len(removed)}
    (data / "stats.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for name, entry in stats.items():
        ctx.log.info(
            "source %s: kept %d, dropped %s, splits %s", name, entry["kept"], entry["dropped"], entry.get("splits")
        )
    return {"outputs": {"data": data}, "metrics": summary}


def _item_index(built: dict[str, task_builders.TaskData], n: int) -> decontam.Index:
    """N-gram index of every eval item's held-out texts, keyed by (task, item number)."""
    return decontam.Index(
        (((label, i), item["held_out"]) for label, task in built.items() for i, item in enumerate(task.eval_items)), n
    )


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL file written by this stage."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


SPEC = StageSpec(
    name="corpus",
    version=4,
    params=CorpusParams,
    inputs=("tokenizer",),
    run=run,
    doc="Read, normalise, dedup and split sources; build SFT pairs and eval items; count tokens.",
    libraries=("transformers", "tokenizers"),
    fingerprint=fingerprint,
)
