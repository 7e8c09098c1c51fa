"""Corpus preparation: read sources, normalise, exact-dedup, split, build task data, count.

Every drop is counted with its reason (datatrove's habit), per source. Splits are assigned by a
hash of the document id, so adding a document never moves another one between splits. SFT pairs
are built from training documents and eval items from eval documents only.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from stages import domain_tasks, sources
from stages.base import Params, StageContext, StageError, StageSpec
from stages.sources import SourceSpec

SPLITS = ("train", "validation", "eval")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_RUNS = re.compile(r"\n{3,}")


class CorpusParams(Params):
    sources: list[SourceSpec] = Field(default_factory=list)
    """Text sources; at least one ``domain`` and one ``general``."""
    min_chars: int = Field(200, ge=0)
    """Documents shorter than this after normalising are dropped (stubs teach nothing)."""
    validation_fraction: float = Field(0.05, ge=0.0, lt=0.5)
    """Held-out share for validation loss and bits-per-byte."""
    eval_fraction: float = Field(0.05, ge=0.0, lt=0.5)
    """Held-out share from which task items are built (never trained on)."""
    tasks: list[str] = Field(default_factory=list)
    """Domain task builders (``stages.domain_tasks``): SFT pairs + eval items."""
    max_sft_pairs: int = Field(300, ge=0)
    """Upper bound on instruction pairs; SFT cost grows linearly with it."""
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

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in domain_tasks.BUILDERS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; known: {sorted(domain_tasks.BUILDERS)}")
        return value


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
        for doc in ctx.progress(sources.read(spec), desc=f"corpus:{spec.name}", unit="doc"):
            if "drop" in doc:
                dropped[doc["drop"]] += 1
                continue
            text = normalise(doc["text"])
            if len(text) < params.min_chars:
                dropped["shorter than min_chars"] += 1
                continue
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            if digest in seen:
                dropped["exact duplicate"] += 1
                continue
            seen[digest] = doc["id"]
            doc["text"] = text
            split = assign_split(doc["id"], params.seed, params.validation_fraction, params.eval_fraction)
            docs[(spec.kind, split)].append(doc)
            kept += 1
        if kept == 0:
            raise StageError(f"corpus: source '{spec.name}' kept no documents (dropped: {dict(dropped)})")
        stats[spec.name] = {"kind": spec.kind, "license": spec.license, "kept": kept, "dropped": dict(dropped)}

    for (kind, split), items in docs.items():
        _write_jsonl(data / f"{kind}_{split}.jsonl", items)
        for source_name in {d["source"] for d in items}:
            texts = [d["text"] for d in items if d["source"] == source_name]
            tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
            per_split = stats[source_name].setdefault("splits", {})
            per_split[split] = {"documents": len(texts), "tokens": tokens, "bytes": sum(len(t.encode()) for t in texts)}
    for kind in ("domain", "general"):
        for split in SPLITS:
            path = data / f"{kind}_{split}.jsonl"
            if not path.exists():
                path.write_text("", encoding="utf-8")

    tasks_dir = data / "tasks"
    tasks_dir.mkdir(exist_ok=True)
    sft_pairs: list[dict[str, Any]] = []
    task_summary = {}
    for name in params.tasks:
        task = domain_tasks.BUILDERS[name](
            docs[("domain", "train")],
            docs[("domain", "eval")],
            params.seed,
            params.max_sft_pairs,
            params.max_eval_items,
        )
        if not task.eval_items:
            raise StageError(f"corpus: task '{name}' got no eval items; raise eval_fraction or add domain documents")
        sft_pairs += task.sft_pairs
        _write_jsonl(tasks_dir / f"{name}.jsonl", task.eval_items)
        info = {"name": name, "description": task.description, "chance": task.chance, "items": len(task.eval_items)}
        (tasks_dir / f"{name}.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        task_summary[name] = {"sft_pairs": len(task.sft_pairs), "eval_items": len(task.eval_items)}
    _write_jsonl(data / "sft_train.jsonl", sft_pairs)

    summary = {"sources": stats, "tasks": task_summary, "sft_pairs": len(sft_pairs)}
    (data / "stats.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for name, entry in stats.items():
        ctx.log.info(
            "source %s: kept %d, dropped %s, splits %s", name, entry["kept"], entry["dropped"], entry.get("splits")
        )
    return {"outputs": {"data": data}, "metrics": summary}


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
    version=2,
    params=CorpusParams,
    inputs=("tokenizer",),
    run=run,
    doc="Read, normalise, dedup and split sources; build SFT pairs and eval items; count tokens.",
    libraries=("transformers", "tokenizers"),
    fingerprint=fingerprint,
)
