"""The corpus stage's heavy passes, as datatrove pipelines on a local, Slurm or Ray executor.

datatrove runs each pipeline as ``tasks`` independent shards (a local process pool, a Slurm job
array, or Ray tasks), keeps every step's counters in ``stats.json``, and its MinHash deduplication
works from signatures on disk, so memory stays flat as the corpus grows. The passes:

1. ingest (a task per source): read it through ``stages.lib.sources``, hash-shard its documents into ``raw/``;
2. clean (``tasks`` shards): normalise, repair encoding, strip boilerplate lines, run each source's
   filters (``stages.lib.text_blocks``) into ``clean/``;
3. MinHash signatures, buckets and clusters (datatrove's four-step near-dedup), across all sources;
4. split (``tasks`` shards): drop the duplicates (kept in ``duplicates/`` for inspection) and write
   each document to ``split/<kind>_<split>/`` by a stable hash of its id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from datatrove.data import Document, DocumentsPipeline
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep
from pydantic import BaseModel, ConfigDict, Field

from stages.base import StageError
from stages.lib import sources
from stages.lib.sources import SourceSpec
from stages.lib.text_blocks import WORDS, SourceFilters

SPLITS = ("train", "validation", "eval")
PROBE_FIELD = "knowledge_probe"
"""Set (true) on a training document of the corpus's jsonl files that a closed-book probe asks about:
the pack stage puts these documents first in their training stream, and cpt always trains on them."""
VERBOSE_ENV = "DAPT_VERBOSE"
"""``1``: datatrove's worker processes print INFO to the console as datatrove does; else warnings only.
The pipeline's ``configure_console`` sets it; the stage reads it, never the pipeline module."""
_TASK_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}"


def _forward_to_logging(message: Any) -> None:
    """loguru sink: hand datatrove's record to the stdlib logger of its module (root handlers decide)."""
    record = message.record
    level = record["level"].no
    level = logging.INFO if level == 25 else level  # loguru's SUCCESS
    exception = record["exception"]
    exc_info = (exception.type, exception.value, exception.traceback) if exception else None
    logging.getLogger(record["name"] or "datatrove").log(level, record["message"], exc_info=exc_info)


def _console_sinks(in_main: bool, local_rank: int = 0) -> None:
    """loguru's sinks outside a task's own log file.

    In the stage's process, datatrove's lines go through stdlib logging: stage.log keeps them and
    the console shows them only when verbose. In a worker process (no stdlib handlers there),
    stderr gets warnings, or INFO when verbose, as datatrove's own set-up would give."""
    from loguru import logger

    if in_main:
        logger.add(_forward_to_logging, level="DEBUG", format="{message}")
        return
    verbose = os.environ.get(VERBOSE_ENV, "1") == "1"
    level = "ERROR" if local_rank != 0 else ("INFO" if verbose else "WARNING")
    logger.add(sys.stderr, level=level, format=_TASK_FORMAT, colorize=False)


def route_loguru() -> None:
    """Send the stage process's loguru records (datatrove's stats tables among them) to stdlib logging."""
    from loguru import logger

    logger.remove()
    _console_sinks(in_main=True)


class _QuietTaskLogging:
    """Replaces datatrove's ``add_task_logger``/``close_task_logger`` while a task runs.

    datatrove 0.10.1 hard-codes a stderr sink at INFO for every task (``utils/logging.py``) and,
    after it, restores a DEBUG stderr sink; no environment variable changes that level. The task's
    own file (``logs/<pass>/logs/task_NNNNN.log``) keeps every line as before."""

    def __init__(self, in_main: bool) -> None:
        self.in_main = in_main

    def add(self, logging_dir: Any, rank: int, local_rank: int = 0, node_rank: int = -1) -> Any:
        from loguru import logger

        logger.remove()
        logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
        logger.add(logfile, colorize=False, level="DEBUG", format=_TASK_FORMAT)
        _console_sinks(self.in_main, local_rank)
        logger.info(f"Launching pipeline for {rank=}")
        return logfile

    def close(self, logfile: Any) -> None:
        from loguru import logger

        logger.complete()
        logger.remove()
        _console_sinks(self.in_main)
        logfile.close()


class QuietLocalPipelineExecutor(LocalPipelineExecutor):
    """datatrove's local executor whose tasks keep their INFO lines off the console (``_QuietTaskLogging``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stage_pid = os.getpid()
        """The stage's process: tasks run here when ``workers == 1``, else in forkserver workers."""

    def run(self) -> Any:
        route_loguru()  # the merged "All N tasks" stats table is logged here, in the stage's process
        return super().run()

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1) -> Any:
        import datatrove.executor.base as base

        quiet = _QuietTaskLogging(in_main=os.getpid() == self.stage_pid)
        saved = base.add_task_logger, base.close_task_logger
        base.add_task_logger, base.close_task_logger = quiet.add, quiet.close
        try:
            return super()._run_for_rank(rank, local_rank, node_rank)
        finally:
            base.add_task_logger, base.close_task_logger = saved


def local_executor(pipeline: list[Any], tasks: int, workers: int, logging_dir: str) -> QuietLocalPipelineExecutor:
    """A local datatrove executor that logs to its ``logging_dir`` and stage.log, not the console."""
    return QuietLocalPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir)


class EngineSpec(BaseModel):
    """``corpus.engine``: where datatrove runs the passes."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["local", "slurm", "ray"] = "local"
    """local: a process pool on this machine; slurm: job arrays (sbatch on the path); ray: a Ray cluster."""
    tasks: int = Field(4, ge=1)
    """Shards of the clean and split passes; more shards, less memory each and more parallelism."""
    workers: int | None = Field(None, ge=1)
    """local: processes at once (None: one per CPU core, at most ``tasks``)."""
    partition: str | None = None
    """slurm: partition of the job arrays."""
    time: str = "04:00:00"
    """slurm: time limit of each job array."""
    cpus_per_task: int = Field(1, ge=1)
    mem_per_cpu_gb: float = Field(2, gt=0)
    sbatch_args: dict[str, Any] = Field(default_factory=dict)
    """slurm: more sbatch options, e.g. {account: myproject, qos: normal}."""
    poll_seconds: int = Field(30, ge=1)
    """slurm: how often the stage checks the job arrays for completion."""


class MinhashSpec(BaseModel):
    """``corpus.minhash``: near-duplicate detection (datatrove's MinHash LSH)."""

    model_config = ConfigDict(extra="forbid")

    ngram: int = Field(5, ge=1)
    """Word n-grams hashed into each signature."""
    buckets: int = Field(14, ge=1)
    """LSH bands: two documents are duplicates if all hashes of any one band agree."""
    hashes_per_bucket: int = Field(8, ge=1)
    """Hashes per band. With the bands, they set the similarity threshold, about
    (1 / buckets) ** (1 / hashes_per_bucket): 0.72 for 14 x 8 (the FineWeb setting)."""

    @property
    def threshold(self) -> float:
        return (1 / self.buckets) ** (1 / self.hashes_per_bucket)

    def config(self) -> Any:
        """datatrove's ``MinhashConfig`` with these settings."""
        from datatrove.pipeline.dedup.minhash import MinhashConfig

        return MinhashConfig(n_grams=self.ngram, num_buckets=self.buckets, hashes_per_bucket=self.hashes_per_bucket)


def assign_split(doc_id: str, seed: int, validation_fraction: float, eval_fraction: float) -> str:
    """Stable split from a hash of the id: the same document always lands in the same split."""
    digest = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < validation_fraction:
        return "validation"
    if u < validation_fraction + eval_fraction:
        return "eval"
    return "train"


def shard_of(doc_id: str, shards: int) -> int:
    return int.from_bytes(hashlib.sha256(f"shard:{doc_id}".encode()).digest()[:4], "big") % shards


class SourceReader(PipelineStep):
    """datatrove reader over the recipe's sources (``stages.lib.sources`` adapters); counts adapter drops."""

    name = "recipe sources"
    type = "📖 - READER"

    def __init__(self, specs: list[SourceSpec], shards: int) -> None:
        super().__init__()
        self.specs = specs
        self.shards = shards

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for spec in self.specs[rank::world_size]:
            languages = source_languages(spec)
            for record in sources.read(spec):
                if "drop" in record:
                    self.stat_update(f"dropped/{spec.name}/{record['drop']}")
                    continue
                self.stat_update(f"read/{spec.name}")
                metadata = {
                    "source": spec.name,
                    "kind": spec.kind,
                    "meta": record.get("meta", {}),
                    "languages": languages,
                    "shard": f"{shard_of(record['id'], self.shards):05d}",
                }
                yield Document(text=record["text"], id=record["id"], metadata=metadata)


class SplitTagger(PipelineStep):
    """Tag each document with its split (``assign_split``) so the writer files it under kind and split."""

    name = "split"
    type = "🔀 - SPLIT"

    def __init__(self, seed: int, validation_fraction: float, eval_fraction: float) -> None:
        super().__init__()
        self.seed = seed
        self.validation_fraction = validation_fraction
        self.eval_fraction = eval_fraction

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            split = assign_split(doc.id, self.seed, self.validation_fraction, self.eval_fraction)
            doc.metadata["split"] = split
            self.stat_update(f"{doc.metadata['kind']}_{split}", f"split/{doc.metadata['source']}")
            yield doc


def source_languages(spec: SourceSpec) -> list[str]:
    """Languages the language check accepts for a source (ISO 639-1)."""
    if spec.languages is not None:
        return spec.languages
    if spec.type in ("bible", "gettext"):
        return [spec.language] if spec.mode == "target" else ["en", spec.language]
    return ["en"]


class Engine:
    """Builds and runs datatrove executors of one kind, each pass logging under ``work/logs/<pass>``."""

    def __init__(self, spec: EngineSpec, work: Path, log: Any) -> None:
        self.spec = spec
        self.work = work
        self.log = log

    def run(self, name: str, pipeline: list[Any], tasks: int) -> dict[str, float]:
        """Run one pass to completion; return its counters summed over steps and tasks."""
        logging_dir = str(self.work / "logs" / name)
        route_loguru()  # whichever executor: what datatrove logs in this process goes to stage.log
        started = time.time()
        if self.spec.type == "local":
            workers = min(tasks, self.spec.workers or os.cpu_count() or 1)
            local_executor(pipeline, tasks, workers, logging_dir).run()
        elif self.spec.type == "slurm":
            from datatrove.executor import SlurmPipelineExecutor

            if not self.spec.partition:
                raise StageError("corpus.engine.type 'slurm' needs corpus.engine.partition")
            executor = SlurmPipelineExecutor(
                pipeline,
                tasks=tasks,
                time=self.spec.time,
                partition=self.spec.partition,
                cpus_per_task=self.spec.cpus_per_task,
                mem_per_cpu_gb=self.spec.mem_per_cpu_gb,
                job_name=f"corpus-{name}",
                sbatch_args=self.spec.sbatch_args or None,
                logging_dir=logging_dir,
            )
            executor.run()
            while incomplete := executor.get_incomplete_ranks():  # sbatch returns at once: wait for the array
                self.log.info("corpus %s: %d of %d Slurm tasks still running", name, len(incomplete), tasks)
                time.sleep(self.spec.poll_seconds)
        else:
            from datatrove.executor import RayPipelineExecutor

            executor = RayPipelineExecutor(
                pipeline,
                tasks=tasks,
                logging_dir=logging_dir,
                cpus_per_task=self.spec.cpus_per_task,
                mem_per_cpu_gb=self.spec.mem_per_cpu_gb,
            )
            executor.run()
        counters = read_counters(Path(logging_dir))
        self.log.info("corpus %s: %d tasks in %.1f s", name, tasks, time.time() - started)
        return counters


def read_counters(logging_dir: Path) -> dict[str, float]:
    """Every step's counters from datatrove's per-task stats files, summed."""
    totals: Counter[str] = Counter()
    for path in sorted((logging_dir / "stats").glob("*.json")):
        for step in json.loads(path.read_text(encoding="utf-8")):
            for key, value in step.get("stats", {}).items():
                totals[key] += value["total"] if isinstance(value, dict) else value
    return dict(totals)


PASS_OUTPUTS = {
    "ingest": "raw",
    "clean": "clean",
    "minhash_signatures": "minhash/signatures",
    "minhash_buckets": "minhash/buckets",
    "minhash_clusters": "minhash/remove",
    "split": "split",
}
"""Where each datatrove pass writes; the corpus stage removes these folders once its files are written."""


def half_cleaned(work: Path) -> bool:
    """A pass datatrove marks complete whose output folder is gone: the stage was killed after removing
    its shards and before its result was committed. datatrove would skip every pass on the rerun and the
    stage would find no documents, so the work must start over."""
    return any(
        (work / "logs" / name / "completions").is_dir()
        and any((work / "logs" / name / "completions").iterdir())
        and not (work / folder).exists()
        for name, folder in PASS_OUTPUTS.items()
    )


@dataclass(frozen=True)
class Passes:
    """Everything the passes need, from the corpus params: the sources, how and where to run, which filters
    each source gets, the MinHash settings and the split."""

    sources: list[SourceSpec]
    engine: EngineSpec = field(default_factory=EngineSpec)
    chains: dict[str, list[str]] = field(default_factory=dict)
    """source -> its filter chain (``text_blocks`` filter names); a source absent gets none."""
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """filter -> its settings."""
    min_chars: dict[str, int] = field(default_factory=dict)
    """source -> the length under which a document is dropped; absent: 0."""
    minhash: MinhashSpec = field(default_factory=MinhashSpec)
    seed: int = 0
    validation_fraction: float = 0.0
    eval_fraction: float = 0.0


def prepare(passes: Passes, work: Path, log: Any) -> dict[str, Any]:
    """Run the passes; return the counters of each and the per-source duplicate counts."""
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    if half_cleaned(work):
        log.warning("corpus: an interrupted run left completion markers without their shards; starting the passes over")
        shutil.rmtree(work)
    specs, minhash = passes.sources, passes.minhash
    chains = {spec.name: passes.chains.get(spec.name, []) for spec in specs}
    min_chars = {spec.name: passes.min_chars.get(spec.name, 0) for spec in specs}
    runner = Engine(passes.engine, work, log)
    tasks = passes.engine.tasks

    def reader(folder: str) -> JsonlReader:
        return JsonlReader(str(work / folder), compression=None, add_file_path=False, glob_pattern="*.jsonl")

    def writer(folder: str, filename: str = "${rank}.jsonl") -> JsonlWriter:
        return JsonlWriter(str(work / folder), output_filename=filename, compression=None)

    # Raw files are named <ingest task>_<shard>, so the clean pass's task r reads shard r of every source.
    ingest = [SourceReader(specs, tasks), writer("raw", "${rank}_${shard}.jsonl")]
    counters = {"ingest": runner.run("ingest", ingest, len(specs))}
    if not any((work / "raw").glob("*.jsonl")):
        raise StageError("corpus: the sources gave no documents")
    counters["clean"] = runner.run(
        "clean", [reader("raw"), SourceFilters(chains, passes.settings, min_chars), writer("clean")], tasks
    )
    config = minhash.config()
    signatures, buckets, clusters = (str(work / "minhash" / part) for part in ("signatures", "buckets", "remove"))
    runner.run(
        "minhash_signatures", [reader("clean"), MinhashDedupSignature(signatures, config, language=WORDS)], tasks
    )
    runner.run("minhash_buckets", [MinhashDedupBuckets(signatures, buckets, config=config)], minhash.buckets)
    runner.run("minhash_clusters", [MinhashDedupCluster(buckets, clusters, config=config)], 1)
    split_pass = [
        reader("clean"),
        MinhashDedupFilter(clusters, exclusion_writer=writer("duplicates")),
        SplitTagger(passes.seed, passes.validation_fraction, passes.eval_fraction),
        writer("split", "${kind}_${split}/${rank}.jsonl"),
    ]
    counters["split"] = runner.run("split", split_pass, tasks)
    # What the clean pass kept and the split pass did not see again are the near-duplicates.
    duplicates = {
        spec.name: int(counters["clean"].get(f"kept/{spec.name}", 0) - counters["split"].get(f"split/{spec.name}", 0))
        for spec in specs
    }
    return {"counters": counters, "duplicates": {name: n for name, n in duplicates.items() if n}}


def split_documents(work: Path, kind: str, split: str) -> Any:
    """Stream one kind and split's documents as ``{"id", "text", "source", "meta"}`` records."""
    for path in sorted((work / "split" / f"{kind}_{split}").glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                metadata = record["metadata"]
                yield {
                    "id": record["id"],
                    "text": record["text"],
                    "source": metadata["source"],
                    "meta": metadata["meta"],
                }
