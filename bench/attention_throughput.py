"""Packed rows on CPU: transformers' masked SDPA against SDPA once per document, in one process.

Each arm runs the forward and backward pass of one micro-batch as cpt and sft feed it, on the recipe's own
data: cpt's blocks from the pack stage (``seq_len`` tokens, position ids restarting per document) and sft's
padding-free rows (trl's collator flattening ``n`` pairs into one row). The two attention implementations
see the same tensors and weights; the bench reports tokens per second of each (median of ``--repeats``
passes after one warm-up, the two taking turns), the ratio, and the largest loss difference, which must stay
below ``--tolerance``. Two micro-batch sizes each, as a recipe may set them.
This times the model's passes alone; ``cpt_throughput.py`` times the stage's Trainer steps::

    python bench/attention_throughput.py --recipe legal --out bench/results/attention_legal.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _pipeline_outputs(recipe: str) -> tuple[str, Path, Path]:
    """The model folder, corpus data folder and packed folder of the recipe (run up to pack if not cached)."""
    from cpt_throughput import recipe_outputs  # this script's folder is on sys.path when run as a script

    outputs = recipe_outputs(recipe, "pack")
    return outputs["model"]["model"], Path(outputs["corpus"]["data"]), Path(outputs["pack"]["packed"])


def cpt_batch(packed: Path, rows: int) -> dict[str, Any]:
    import numpy as np
    import torch

    ids = torch.from_numpy(np.load(packed / "domain_train.input_ids.npy")[:rows].astype(np.int64))
    positions = torch.from_numpy(np.load(packed / "domain_train.position_ids.npy")[:rows].astype(np.int64))
    return {"input_ids": ids, "labels": ids, "position_ids": positions}


def sft_batch(corpus: Path, tokenizer: Any, pairs: int, max_length: int) -> dict[str, Any]:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    examples = []
    for line in (corpus / "sft_train.jsonl").read_text(encoding="utf-8").splitlines()[:pairs]:
        pair = json.loads(line)
        messages = pair["prompt"] + pair["completion"]  # conversational pairs, as the corpus stage writes them
        ids = list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])[:max_length]
        examples.append({"input_ids": ids})
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch = DataCollatorForLanguageModeling(pad_token_id=pad, padding_free=True)(examples)
    return {"input_ids": batch["input_ids"], "labels": batch["labels"], "position_ids": batch["position_ids"]}


def one_pass(model: Any, batch: dict[str, Any]) -> tuple[float, float]:
    """(seconds of a forward and backward pass, the loss)."""
    started = time.perf_counter()
    out = model(**batch)
    out.loss.backward()
    seconds = time.perf_counter() - started
    model.zero_grad(set_to_none=True)
    return seconds, float(out.loss.detach())


def time_arms(models: dict[str, Any], batch: dict[str, Any], repeats: int) -> dict[str, tuple[float, float]]:
    """Per model, (median seconds of a pass, the loss): one warm-up pass each, then the models take turns, so a
    slow spell of a shared machine falls on both."""
    for model in models.values():
        one_pass(model, batch)
    seconds: dict[str, list[float]] = {name: [] for name in models}
    losses: dict[str, float] = {}
    for _ in range(repeats):
        for name, model in models.items():
            elapsed, losses[name] = one_pass(model, batch)
            seconds[name].append(elapsed)
    return {name: (statistics.median(seconds[name]), losses[name]) for name in models}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="legal")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from stages.lib import document_attention

    model_dir, corpus, packed = _pipeline_outputs(args.recipe)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    workloads = {
        "cpt 2 x 512 blocks": cpt_batch(packed, 2),
        "cpt 4 x 512 blocks": cpt_batch(packed, 4),
        "sft 4 pairs, one row": sft_batch(corpus, tokenizer, 4, 192),
        "sft 8 pairs, one row": sft_batch(corpus, tokenizer, 8, 192),
    }
    models = {
        name: AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=name).train()
        for name in ("sdpa", document_attention.register())
    }
    for model in models.values():
        model.config.use_cache = False
    results: dict[str, Any] = {"device": "cpu", "threads": torch.get_num_threads(), "workloads": {}}
    worst = 0.0
    for label, batch in workloads.items():
        tokens = int(batch["input_ids"].numel())
        documents = int((batch["position_ids"] == 0).sum())
        row: dict[str, Any] = {"tokens": tokens, "documents": documents}
        losses = []
        for name, (seconds, loss) in time_arms(models, batch, args.repeats).items():
            row[name] = {"seconds": round(seconds, 3), "tokens_per_second": round(tokens / seconds, 1), "loss": loss}
            losses.append(loss)
        row["speedup"] = round(row["sdpa"]["seconds"] / row[document_attention.NAME]["seconds"], 3)
        row["loss_difference"] = abs(losses[0] - losses[1])
        worst = max(worst, row["loss_difference"])
        results["workloads"][label] = row
        print(
            f"{label}: {tokens} tokens, {documents} documents; sdpa {row['sdpa']['tokens_per_second']} tok/s, "
            f"per document {row[document_attention.NAME]['tokens_per_second']} tok/s (x{row['speedup']}); "
            f"loss difference {row['loss_difference']:.1e}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if worst > args.tolerance:
        sys.exit(f"the two attention paths disagree: loss difference {worst:.1e} > {args.tolerance}")


if __name__ == "__main__":
    main()
