"""Tokenize and pack the corpus once per (corpus, tokenizer, sequence length).

The cpt stage and every plan proxy read the same packed blocks, so the cache key of this stage
(the corpus output, the tokenizer and ``seq_len``) is what they share; no training run tokenizes.
datatrove's ``DocumentTokenizer`` tokenizes each kind and split (fast tokenizers, batched, EOS after
every document, training documents shuffled after those a closed-book probe asks about), and writes
the token stream with an index of document ends. This stage then cuts the stream into blocks of
``seq_len`` with no padding, keeping document boundaries: each block's ``position_ids`` restart at
every document and at the block's start, so transformers' packed-sequence masks (sdpa, eager, flex;
varlen with flash attention) stop attention at boundaries, and a document's first token is never a
target. Blocks are ``.npy`` files that training memory-maps, so memory stays flat in the corpus size.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import Field

from stages.base import Params, StageContext, StageError, StageSpec, Wiring
from stages.lib.corpus_engine import PROBE_FIELD, local_executor
from stages.lib.modeling import load_tokenizer
from stages.lib.packed_blocks import ROWS_PER_CHUNK, target_count

PACKED = (("domain", "train"), ("domain", "validation"), ("general", "train"), ("general", "validation"))


class PackParams(Params):
    seq_len: int = Field(512, ge=8)
    """Block length; the recipe loader sets it from cpt.seq_len, so cpt and plan proxies share one pack."""
    seed: int = 0
    """Order of the shuffled training documents."""
    trust_remote_code: bool = False
    """Only when the recipe asks: the tokenizer's own code runs on this machine."""
    sources: list[str] | None = None
    """Training blocks from these corpus sources only (None: all). Held-out sets keep every source, so packs
    that train on different sources of one corpus are measured on the same text (plain vs interlinear CPT)."""

    KEYED_WHEN_SET = frozenset({"sources"})


def tokenizer_file(model_dir: str, out: Path, trust_remote_code: bool) -> tuple[Path, str]:
    """The fast tokenizer's ``tokenizer.json`` (saved from the model folder when it has none) and its EOS."""
    tokenizer = load_tokenizer(model_dir, trust_remote_code)
    if tokenizer.eos_token is None:
        raise StageError(f"pack: the tokenizer of {model_dir} has no EOS token to separate documents")
    path = Path(model_dir) / "tokenizer.json"
    if not path.exists():
        if not tokenizer.is_fast:
            raise StageError(f"pack: {model_dir} has no fast tokenizer (tokenizer.json); datatrove needs one")
        tokenizer.save_pretrained(out / "tokenizer")
        path = out / "tokenizer" / "tokenizer.json"
    return path, tokenizer.eos_token


def _is_probe_document(wanted: bool, doc: Any) -> bool:
    """datatrove filter: keep documents whose probe mark is ``wanted`` (module level: picklable)."""
    return bool(doc.metadata.get(PROBE_FIELD)) == wanted


def _is_from(sources: frozenset[str], doc: Any) -> bool:
    """datatrove filter: keep documents of the chosen corpus sources."""
    return doc.metadata.get("source") in sources


def _tokenize_part(
    corpus: Path,
    name: str,
    part: str,
    probe: bool | None,
    tokenizer_path: Path,
    eos: str,
    work: Path,
    seed: int,
    sources: frozenset[str] | None = None,
) -> tuple[Any, Any] | None:
    """Token stream and document ends (exclusive) of one jsonl file through datatrove, or None when empty.

    ``probe``: None reads every document; True or False only those with or without the probe mark.
    ``sources``: only documents of these corpus sources (None: all).
    Training documents are shuffled, except the probe's (their order does not matter: cpt trains on all)."""
    import numpy as np
    from datatrove.pipeline.filters import LambdaFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer

    folder = work / part
    pipeline: list[Any] = [
        JsonlReader(str(corpus), glob_pattern=f"{name}.jsonl", compression=None, add_file_path=False)
    ]
    if probe is not None:
        pipeline.append(LambdaFilter(functools.partial(_is_probe_document, probe)))
    if sources is not None:
        pipeline.append(LambdaFilter(functools.partial(_is_from, sources)))
    pipeline.append(
        DocumentTokenizer(
            str(folder),
            tokenizer_name_or_path=str(tokenizer_path),
            eos_token=eos,
            save_filename=part,
            shuffle_documents=name.endswith("_train") and not probe,
            seed=seed,
            local_working_dir=str(work / f"{part}_unshuffled"),
            save_final_metadata=False,
        )
    )
    # Quiet: datatrove's stats tables go to stage.log and the logs folder, not the console.
    local_executor(pipeline, tasks=1, workers=1, logging_dir=str(work / "logs" / part)).run()
    found = sorted(path for path in folder.glob("*.ds") if path.stat().st_size)
    if not found:
        return None
    (tokens_file,) = found
    ends = np.fromfile(f"{tokens_file}.index", dtype=np.uint64).astype(np.int64)
    # datatrove writes 2-byte tokens for vocabularies under 65,535 entries, else 4: file bytes per token say which.
    dtype = np.uint32 if tokens_file.stat().st_size // int(ends[-1]) == 4 else np.uint16
    return np.memmap(tokens_file, dtype=dtype, mode="r"), ends


def _concatenate(first: tuple[Any, Any], second: tuple[Any, Any], path: Path) -> tuple[Any, Any]:
    """Two token streams one after the other, copied in chunks to a file (memory stays flat)."""
    import numpy as np

    (tokens_a, ends_a), (tokens_b, ends_b) = first, second
    out = np.lib.format.open_memmap(path, mode="w+", dtype=tokens_a.dtype, shape=(len(tokens_a) + len(tokens_b),))
    step = ROWS_PER_CHUNK * 512
    for offset, tokens in ((0, tokens_a), (len(tokens_a), tokens_b)):
        for start in range(0, len(tokens), step):
            chunk = np.asarray(tokens[start : start + step])
            out[offset + start : offset + start + len(chunk)] = chunk
    out.flush()
    return out, np.concatenate([ends_a, ends_b + int(ends_a[-1])])


def tokenize(
    corpus: Path,
    kind: str,
    split: str,
    tokenizer_path: Path,
    eos: str,
    work: Path,
    seed: int,
    sources: frozenset[str] | None = None,
) -> tuple[Any, Any, int]:
    """Token stream, document ends (exclusive) and probe tokens of one kind and split, through datatrove.

    Training documents a closed-book probe asks about (the corpus marks them) come first, unshuffled, so
    the blocks that hold them are the first rows; the probe's token count says how many rows that is."""
    name = f"{kind}_{split}"
    stats = corpus / "stats.json"
    probes = json.loads(stats.read_text(encoding="utf-8")).get("probe_documents", {}) if stats.exists() else {}
    if split != "train" or not probes.get(kind):
        found = _tokenize_part(corpus, name, name, None, tokenizer_path, eos, work, seed, sources)
        probe_tokens = 0
    else:
        probe = _tokenize_part(corpus, name, f"{name}_probe", True, tokenizer_path, eos, work, seed, sources)
        rest = _tokenize_part(corpus, name, f"{name}_rest", False, tokenizer_path, eos, work, seed, sources)
        probe_tokens = int(probe[1][-1]) if probe else 0
        found = _concatenate(probe, rest, work / f"{name}.npy") if probe and rest else probe or rest
    if found is None:
        chosen = f" of sources {sorted(sources)}" if sources is not None else ""
        raise StageError(
            f"pack: no {kind} {split} documents{chosen} in {corpus}; the corpus filters dropped them all "
            "(see the corpus stats), the split fractions are too small, or pack.sources names none of this kind"
        )
    return *found, probe_tokens


def write_blocks(tokens: Any, ends: Any, seq_len: int, out: Path, name: str) -> dict[str, Any]:
    """Cut the stream into ``seq_len`` blocks (``<name>.input_ids.npy``, ``<name>.position_ids.npy``).

    The tail shorter than a block is dropped; a stream shorter than one block is repeated to fill one
    (held-out sets of tiny corpora), and the stats say so."""
    import numpy as np

    total = int(ends[-1]) if len(ends) else 0
    if total == 0:
        raise StageError(f"pack: no {name} tokens; the corpus stage kept no such documents")
    repeated = 1
    if total < seq_len:
        repeated = -(-seq_len // total)
        tokens = np.tile(np.asarray(tokens), repeated)
        ends = np.concatenate([ends + i * total for i in range(repeated)])
    rows = len(tokens) // seq_len
    starts = np.concatenate([[0], ends[:-1]])
    ids = np.lib.format.open_memmap(out / f"{name}.input_ids.npy", mode="w+", dtype=np.int32, shape=(rows, seq_len))
    pos = np.lib.format.open_memmap(out / f"{name}.position_ids.npy", mode="w+", dtype=np.int32, shape=(rows, seq_len))
    targets = 0
    for first in range(0, rows, ROWS_PER_CHUNK):
        last = min(rows, first + ROWS_PER_CHUNK)
        index = np.arange(first * seq_len, last * seq_len)
        doc = np.searchsorted(ends, index, side="right")
        in_doc = index - starts[doc]
        in_block = index % seq_len
        positions = np.minimum(in_doc, in_block).reshape(-1, seq_len)
        ids[first:last] = np.asarray(tokens[first * seq_len : last * seq_len]).reshape(-1, seq_len)
        pos[first:last] = positions
        targets += target_count(positions)
    ids.flush()
    pos.flush()
    block_tokens = rows * seq_len
    return {
        "documents": int(len(ends) // repeated),
        "tokens": total,
        "blocks": rows,
        "tail_tokens_dropped": len(tokens) - block_tokens if repeated == 1 else 0,
        "repeated_to_fill_a_block": repeated > 1,
        "padding_tokens": 0,
        "packing_efficiency": 1.0,  # non-padding share of block tokens: blocks are cut from the stream, never padded
        "target_share": round(targets / block_tokens, 6),
    }


def run(ctx: StageContext, inputs: dict[str, Any], params: PackParams) -> dict[str, Any]:
    corpus = Path(inputs["corpus"])
    out = ctx.out_dir / "packed"
    out.mkdir(parents=True, exist_ok=True)
    work = ctx.out_dir / "work"
    tokenizer_path, eos = tokenizer_file(inputs["tokenizer"], work, params.trust_remote_code)
    stats: dict[str, Any] = {"seq_len": params.seq_len, "eos_token": eos, "sets": {}}
    if params.sources is not None:
        known = json.loads((corpus / "stats.json").read_text(encoding="utf-8")).get("sources", {})
        unknown = sorted(set(params.sources) - set(known))
        if unknown:
            raise StageError(f"pack.sources: {unknown} are not sources of this corpus; its sources: {sorted(known)}")
        stats["sources"] = sorted(params.sources)
    for kind, split in ctx.progress(PACKED, desc="pack", unit="set"):
        chosen = frozenset(params.sources) if params.sources is not None and split == "train" else None
        tokens, ends, probe_tokens = tokenize(corpus, kind, split, tokenizer_path, eos, work, params.seed, chosen)
        entry = write_blocks(tokens, ends, params.seq_len, out, f"{kind}_{split}")
        if probe_tokens:  # the first rows, up to the one holding the probe's last token
            entry["probe_blocks"] = min(entry["blocks"], -(-probe_tokens // params.seq_len))
            entry["probe_tokens"] = probe_tokens
        stats["sets"][f"{kind}_{split}"] = entry
        del tokens
    (out / "pack.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)
    for name, entry in stats["sets"].items():
        ctx.log.info("pack %s: %s", name, entry)
    return {"outputs": {"packed": out}, "metrics": stats}


SPEC = StageSpec(
    name="pack",
    version=2,
    params=PackParams,
    inputs=("corpus", "tokenizer"),
    wiring=Wiring(inputs={"corpus": "corpus.data", "tokenizer": "model.model"}),
    run=run,
    doc="Tokenize (datatrove) and pack the corpus into seq_len blocks that keep document boundaries.",
    libraries=("datatrove", "tokenizers", "numpy"),
)
