"""Corpus preparation: datatrove passes against a plain Python loop, memory as the corpus grows,
packing efficiency, and near-duplicate recall and precision on a planted set. One script, one run.

- ``throughput``: the recipe's sources through the corpus engine (``stages.lib.corpus_engine.prepare``:
  ingest, filters, MinHash, split, on a local process pool) and through a plain single-process loop
  doing the same work (the same datatrove filter blocks and MinHash signatures, an in-memory LSH
  index, one output file per split), in documents/s and MB/s of source text read; then the whole
  corpus stage (tasks and decontamination too).
- ``memory``: the whole corpus stage, each run in a fresh process, on real license texts at 1x, 4x
  and 16x (each repeat perturbed so it is not a near-duplicate), peak resident memory summed over
  the stage's process tree (sampled every 50 ms).
- ``packing``: the pack stage on the recipe's corpus at its sequence length: the share of block tokens
  that are not padding, and the share that are training targets.
- ``dedup``: real license texts, mutually dissimilar, each planted with copies at known word-edit rates;
  per rate, how many copies were caught; recall and precision against the exact 5-gram Jaccard
  similarity (positives: above the LSH threshold).

Usage: ``make bench-corpus recipe=legal`` (or ``python bench/corpus_throughput.py --recipe legal``).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EDIT_RATES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
SCALES = (1, 4, 16)
SCALE_PERTURBATION = 0.3
"""Share of words replaced in each synthesised repeat: far below the near-duplicate threshold, so repeats stay."""


def perturb(text: str, rate: float, rng: random.Random) -> str:
    """Replace ``rate`` of the words with other words of the same text, marked (a copy at a known distance)."""
    words = text.split()
    for i in rng.sample(range(len(words)), round(rate * len(words))):
        words[i] = rng.choice(words) + "x"
    return " ".join(words)


def _recipe_corpus(recipe: str) -> tuple[Any, str, Any]:
    """The recipe's corpus params, its model folder (for the tokenizer) and its pack params."""
    from pipeline.cli import DEFAULT_STORE
    from pipeline.recipe import load_recipe
    from pipeline.runner import Runner
    from pipeline.store import Store

    loaded = load_recipe(recipe)
    runner = Runner(loaded, Store(DEFAULT_STORE))
    runner.run(until="model")
    return loaded.params["corpus"], runner.outputs["model"]["model"], loaded.params["pack"]


def plain_loop(params: Any, out: Path) -> dict[str, Any]:
    """The baseline: one process, one pass, every document through the same filters and MinHash signature;
    an in-memory LSH table finds near-duplicates (first seen wins)."""
    from datatrove.data import Document
    from datatrove.pipeline.dedup import MinhashDedupSignature

    from stages.corpus import filter_chains, min_chars_by_source
    from stages.lib import sources
    from stages.lib.corpus_engine import assign_split, source_languages
    from stages.lib.text_blocks import WORDS, SourceFilters

    step = SourceFilters(filter_chains(params), params.filter_settings, min_chars_by_source(params))
    blocks = step.build_blocks()
    signer = MinhashDedupSignature(str(out / "unused"), params.minhash.config(), language=WORDS)
    bands: list[dict[tuple[int, ...], int]] = [{} for _ in range(params.minhash.buckets)]
    files = {}
    counts = {"read": 0, "bytes": 0, "kept": 0, "filtered": 0, "duplicates": 0}
    for spec in params.sources:
        for record in sources.read(spec):
            if "drop" in record:
                continue
            counts["read"] += 1
            counts["bytes"] += len(record["text"].encode("utf-8"))
            doc = Document(
                record["text"], record["id"], metadata={"source": spec.name, "languages": source_languages(spec)}
            )
            if step._apply(doc, spec.name, blocks):
                counts["filtered"] += 1
                continue
            shingles = signer.get_shingles(doc.text)
            if shingles.size:
                signature = signer.get_signature(shingles)
                keys = [tuple(band) for band in signature]
                if any(key in table for key, table in zip(keys, bands, strict=True)):
                    counts["duplicates"] += 1
                    continue
                for key, table in zip(keys, bands, strict=True):
                    table[key] = counts["read"]
            split = assign_split(record["id"], params.seed, params.validation_fraction, params.eval_fraction)
            name = f"{spec.kind}_{split}"
            if name not in files:
                files[name] = (out / f"{name}.jsonl").open("w", encoding="utf-8")
            files[name].write(json.dumps({"id": record["id"], "text": doc.text, "source": spec.name}) + "\n")
            counts["kept"] += 1
    for fh in files.values():
        fh.close()
    return counts


def _rates(seconds: float, documents: int, size: int) -> dict[str, float]:
    return {
        "seconds": round(seconds, 2),
        "documents_per_second": round(documents / seconds, 1),
        "mb_per_second": round(size / 1e6 / seconds, 3),
    }


def throughput(params: Any, work: Path) -> dict[str, Any]:
    from stages import corpus
    from stages.base import StageContext
    from stages.lib import corpus_engine

    log = logging.getLogger("bench")
    started = time.time()
    baseline = plain_loop(params, _fresh(work / "plain"))
    plain_seconds = time.time() - started
    started = time.time()
    prepared = corpus.prepare(params, _fresh(work / "engine"), log)
    engine_seconds = time.time() - started
    read = int(sum(v for k, v in prepared["counters"]["ingest"].items() if k.startswith("read/")))
    engine_kept = sum(
        1
        for kind in ("domain", "general")
        for split in corpus_engine.SPLITS
        for _ in corpus_engine.split_documents(work / "engine", kind, split)
    )
    started = time.time()
    out = _fresh(work / "stage")
    corpus.run(StageContext(out_dir=out, log=log), {}, params)
    stage_seconds = time.time() - started
    size = baseline["bytes"]
    engine = {**_rates(engine_seconds, read, size), "kept": engine_kept, "workers": params.engine.workers or "cores"}
    return {
        "documents_read": read,
        "mb_read": round(size / 1e6, 2),
        "plain loop": {**_rates(plain_seconds, baseline["read"], size), "kept": baseline["kept"]},
        "corpus engine": engine,
        "speedup": round(plain_seconds / engine_seconds, 2),
        "whole corpus stage": _rates(stage_seconds, read, size),
        "corpus_dir": str(out / "data"),
    }


def _fresh(folder: Path) -> Path:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def synthesise(scale: int, path: Path) -> dict[str, Any]:
    """Real license texts, repeated ``scale`` times; every repeat after the first perturbed."""
    from stages.lib import sources
    from stages.lib.sources import SourceSpec

    rng = random.Random(scale)
    licenses = [d for d in sources.read(SourceSpec(name="l", kind="domain", type="licensedcode")) if "drop" not in d]
    documents = size = 0
    with path.open("w", encoding="utf-8") as fh:
        for copy in range(scale):
            for doc in licenses:
                text = doc["text"] if copy == 0 else perturb(doc["text"], SCALE_PERTURBATION, rng)
                meta = {"name": doc["meta"]["name"], "spdx": doc["meta"]["spdx"]}
                fh.write(json.dumps({"text": text, **meta}) + "\n")
                documents += 1
                size += len(text.encode("utf-8"))
    return {"documents": documents, "mb": round(size / 1e6, 2)}


def memory_run(scale: int, work: Path) -> dict[str, Any]:
    """One scale of the memory test, in this process (the parent samples it): the whole corpus stage."""
    from stages import corpus
    from stages.base import StageContext

    source = work / f"licenses_{scale}x.jsonl"
    made = synthesise(scale, source)
    params = corpus.CorpusParams(
        sources=[
            {"name": "licenses", "kind": "domain", "type": "jsonl", "path": str(source), "license": "CC-BY-4.0"},
            {"name": "python_docs", "kind": "general", "type": "python_docs", "license": "PSF-2.0"},
        ],
        tasks=[{"type": "license_id", "source": "licenses"}],
        max_eval_items=40,
        max_sft_pairs=96,
    )
    started = time.time()
    corpus.run(StageContext(out_dir=_fresh(work / f"stage_{scale}x")), {}, params)
    return {**made, "seconds": round(time.time() - started, 1)}


def peak_tree_rss(command: list[str]) -> tuple[int, int]:
    """Run ``command``; return its exit code and the peak of its process tree's summed resident memory."""
    import psutil

    process = subprocess.Popen(command, cwd=ROOT)
    root = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    return process.returncode, peak


def measure_memory(work: Path) -> list[dict[str, Any]]:
    """Each scale in a fresh process; peak of the summed resident memory of its process tree."""
    results = []
    for scale in SCALES:
        out = work / f"memory_{scale}.json"
        code, peak = peak_tree_rss(
            [sys.executable, __file__, "--memory-run", str(scale), "--work", str(work), "--out", str(out)]
        )
        if code:
            raise SystemExit(f"memory run at {scale}x failed with exit code {code}")
        results.append({"scale": scale, **json.loads(out.read_text()), "peak_rss_mb": round(peak / 2**20, 1)})
    return results


def packing(corpus_dir: str, model: str, pack_params: Any, work: Path) -> dict[str, Any]:
    from stages import pack
    from stages.base import StageContext

    result = pack.run(
        StageContext(out_dir=_fresh(work / "pack")), {"corpus": corpus_dir, "tokenizer": model}, pack_params
    )
    sets = result["metrics"]["sets"]
    blocks = sum(s["blocks"] for s in sets.values())
    return {
        "seq_len": pack_params.seq_len,
        "sets": sets,
        "non_padding_share": sum(s["packing_efficiency"] * s["blocks"] for s in sets.values()) / blocks,
        "target_share": round(sum(s["target_share"] * s["blocks"] for s in sets.values()) / blocks, 5),
        "tail_tokens_dropped": sum(s["tail_tokens_dropped"] for s in sets.values()),
        "tokens": sum(s["tokens"] for s in sets.values()),
    }


def dedup_quality(work: Path, bases_wanted: int = 80, copies_per_rate: int = 10) -> dict[str, Any]:
    from datatrove.pipeline.dedup import MinhashDedupSignature

    from stages.lib import corpus_engine, sources
    from stages.lib.corpus_engine import MinhashSpec
    from stages.lib.sources import SourceSpec
    from stages.lib.text_blocks import WORDS

    spec = MinhashSpec()
    signer = MinhashDedupSignature(str(work / "unused"), spec.config(), language=WORDS)

    def shingles(text: str) -> set[int]:
        return set(signer.get_shingles(text).ravel().tolist())

    def jaccard(a: set[int], b: set[int]) -> float:
        return len(a & b) / len(a | b) if a | b else 1.0

    pool = [
        d["text"] for d in sources.read(SourceSpec(name="l", kind="domain", type="licensedcode")) if "drop" not in d
    ]
    pool = [t for t in pool if 300 < len(t.split()) < 4000]
    random.Random(0).shuffle(pool)
    bases: list[tuple[str, set[int]]] = []
    for text in pool:  # mutually dissimilar bases, so every true duplicate is a planted one
        grams = shingles(text)
        if all(jaccard(grams, other) < 0.3 for _, other in bases):
            bases.append((text, grams))
        if len(bases) == bases_wanted:
            break
    rng = random.Random(1)
    records, planted = [], []
    for i, (text, _) in enumerate(bases):
        records.append({"text": text, "role": "base", "base": i})
    for r, rate in enumerate(EDIT_RATES):
        for j in range(copies_per_rate):
            i = (r * copies_per_rate + j) % len(bases)
            copy = perturb(bases[i][0], rate, rng)
            similarity = jaccard(shingles(copy), bases[i][1])
            records.append({"text": copy, "role": "copy", "base": i, "rate": rate, "jaccard": similarity})
            planted.append((i, len(records) - 1, rate, similarity))
    path = work / "planted.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    source = SourceSpec(name="planted", kind="domain", type="jsonl", path=str(path), min_chars=0)
    out = _fresh(work / "dedup")
    corpus_engine.prepare(corpus_engine.Passes(sources=[source], minhash=spec), out, logging.getLogger("b"))
    kept_lines = {int(doc["id"].rsplit(":", 1)[1]) - 1 for doc in corpus_engine.split_documents(out, "domain", "train")}
    removed = set(range(len(records))) - kept_lines
    # A planted pair is caught when its copy or its base was removed; every other removal is a false positive.
    per_rate: dict[str, dict[str, Any]] = {}
    true_positive = false_negative = 0
    explained: set[int] = set()
    for base, copy, rate, similarity in planted:
        caught = copy in removed or base in removed
        if caught:
            explained.add(copy if copy in removed else base)
        entry = per_rate.setdefault(f"{rate:.2f}", {"copies": 0, "caught": 0, "jaccard": []})
        entry["copies"] += 1
        entry["caught"] += caught
        entry["jaccard"].append(similarity)
        if similarity >= spec.threshold:
            true_positive += caught
            false_negative += not caught
    for entry in per_rate.values():
        entry["mean_jaccard"] = round(sum(entry.pop("jaccard")) / entry["copies"], 3)
    false_positive = len(removed - explained) + sum(
        1
        for base, copy, _, similarity in planted
        if similarity < spec.threshold and (copy in removed or base in removed)
    )
    return {
        "threshold": round(spec.threshold, 3),
        "bases": len(bases),
        "per_edit_rate": per_rate,
        "recall": round(true_positive / max(1, true_positive + false_negative), 3),
        "precision": round(true_positive / max(1, true_positive + false_positive), 3),
        "removed": len(removed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="legal")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument(
        "--parts", default="throughput,packing,dedup,memory", help="comma-separated subset (packing needs throughput)"
    )
    parser.add_argument("--memory-run", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.memory_run:
        result = memory_run(args.memory_run, Path(args.work))
        Path(args.out).write_text(json.dumps(result) + "\n", encoding="utf-8")
        return
    import os

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        params, model, pack_params = _recipe_corpus(args.recipe)
        results: dict[str, Any] = {"cores": os.cpu_count(), "recipe": args.recipe}
        parts = set(args.parts.split(","))
        if "throughput" in parts:
            results["throughput"] = throughput(params, work)
        if "packing" in parts:
            results["packing"] = packing(results["throughput"].pop("corpus_dir"), model, pack_params, work)
        if "dedup" in parts:
            results["dedup"] = dedup_quality(work)
        if "memory" in parts:
            results["memory"] = measure_memory(work)
    report(results)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def report(results: dict[str, Any]) -> None:
    if t := results.get("throughput"):
        print(f"corpus of recipe '{results['recipe']}' on {results['cores']} cores: {t['documents_read']} documents, "
              f"{t['mb_read']} MB read")  # fmt: skip
        for arm in ("plain loop", "corpus engine", "whole corpus stage"):
            r = t[arm]
            rates = f"{r['documents_per_second']:8.1f} docs/s {r['mb_per_second']:7.3f} MB/s"
            print(f"  {arm:20s} {rates}  {r['seconds']:7.1f} s")
        print(f"  engine / plain loop: x{t['speedup']}")
    if p := results.get("packing"):
        print(f"packing at seq_len {p['seq_len']}: non-padding share {p['non_padding_share']:.4f}, target share "
              f"{p['target_share']:.4f}, tail tokens dropped {p['tail_tokens_dropped']} of {p['tokens']}")  # fmt: skip
    if d := results.get("dedup"):
        print(
            f"dedup (threshold ~{d['threshold']}): recall {d['recall']}, precision {d['precision']}, {d['bases']} bases"
        )
        for rate, entry in d["per_edit_rate"].items():
            print(f"  {float(rate):4.0%} of words edited: mean Jaccard {entry['mean_jaccard']:.3f}, "
                  f"caught {entry['caught']}/{entry['copies']}")  # fmt: skip
    for m in results.get("memory", []):
        print(f"memory at {m['scale']:2d}x ({m['documents']} documents, {m['mb']} MB): peak {m['peak_rss_mb']} MB "
              f"(process tree), {m['seconds']} s")  # fmt: skip


if __name__ == "__main__":
    main()
