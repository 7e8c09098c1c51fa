"""CPT throughput: our cpt stage against a plain transformers Trainer on the same data, in one process.

Three arms train the same model for the same number of optimizer steps on the recipe's domain
training documents:

- ``cpt stage``: ``stages.lib.continual_pretraining.train`` as the pipeline runs it, on the pack stage's blocks
  (run here first): documents packed into full blocks, position ids restarting per document so attention
  stops at boundaries, no padding;
- ``packed, attention crosses documents``: the same blocks without position ids (the pipeline
  before document-aware packing), to show what the boundary masks cost;
- ``plain Trainer, unpacked``: one document per row, truncated to the sequence length and padded
  to the longest row of each batch (``DataCollatorForLanguageModeling``): the baseline.

With ``--arms``, more arms run: the cpt stage with one training-kernel lever set at a time (``ARMS``: attention
implementation, Liger Kernel, ``torch.compile``, a larger micro-batch), the ablation the GPU goal asks for. An arm
that fails (a package missing, out of memory) is recorded with its error and the others still run; the results
file is rewritten after every arm, so a run cut short keeps the arms it finished.

Throughput counts real tokens only (padding excluded), in the steady state: from the end of the
``--warmup-steps``-th optimizer step to the end of the last, so model loading, CUDA start-up and the
stage's evaluation passes are outside the timed span (no arm saves checkpoints). On CUDA the
script also prints MFU against the GPU's dense bf16 peak and peak memory. Usage::

    python bench/cpt_throughput.py --recipe legal --steps 6            # CPU, the embedded default model
    python bench/cpt_throughput.py --model-config qwen2.5-0.5b --seq-len 2048 --batch-size 16 \\
        --micro-batch-size 8 --steps 20 --corpus CORPUS_DIR               # one GPU, Qwen2.5-0.5B's shape
    python bench/cpt_throughput.py --model-config qwen2.5-1.5b --seq-len 4096 --arms sdpa,flex+liger ...
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
"""Dense bf16 peak by GPU name (NVIDIA datasheets, SXM parts)."""
QWEN25_05B = {  # Qwen2.5-0.5B's config.json shape, so the bench runs without downloading weights
    "architectures": ["Qwen2ForCausalLM"],
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "vocab_size": 151936,
}
QWEN25_15B = {**QWEN25_05B, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
              "num_attention_heads": 12}  # fmt: skip
"""Qwen2.5-1.5B's config.json shape (2 key-value heads, tied embeddings, as the 0.5B)."""
MODEL_CONFIGS = {"qwen2.5-0.5b": QWEN25_05B, "qwen2.5-1.5b": QWEN25_15B}

NO_LEVER = {"attention": "sdpa", "liger": False, "torch_compile": False}
"""The stage on CUDA without flash-attn or Liger installed: transformers' SDPA with the block-diagonal mask."""
ARMS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "plain": ("plain Trainer, unpacked", None),
    "stage": ("cpt stage (the machine's kernel choice)", {}),
    "nomask": ("packed, attention crosses documents", {}),
    "sdpa": ("cpt stage, SDPA with block mask", NO_LEVER),
    "documents": ("cpt stage, SDPA once per document", {**NO_LEVER, "attention": "sdpa_documents"}),
    "flex": ("cpt stage, flex attention", {**NO_LEVER, "attention": "flex_attention"}),
    "flash": ("cpt stage, FlashAttention 2 varlen", {**NO_LEVER, "attention": "flash_attention_2"}),
    "liger": ("cpt stage, SDPA + Liger Kernel", {**NO_LEVER, "liger": True}),
    "compile": ("cpt stage, SDPA + torch.compile", {**NO_LEVER, "torch_compile": True}),
    "flex+liger": ("cpt stage, flex + Liger", {**NO_LEVER, "attention": "flex_attention", "liger": True}),
    "flex+liger+2x": (
        "cpt stage, flex + Liger, micro-batch x2",
        {**NO_LEVER, "attention": "flex_attention", "liger": True, "micro_batch_size": 2},
    ),
    "flex+liger+compile": (
        "cpt stage, flex + Liger + compile",
        {**NO_LEVER, "attention": "flex_attention", "liger": True, "torch_compile": True},
    ),
}
"""Arm name -> (label, cpt params the arm sets; None: the plain Trainer). ``micro_batch_size`` is a factor on
``--micro-batch-size`` (what the fused loss frees memory for)."""


def _prepare(args: argparse.Namespace, work: Path) -> tuple[str, Path]:
    """A model folder and a corpus folder: the recipe's own (run through the pipeline) or given."""
    if args.model_config:
        import torch
        from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

        shape = MODEL_CONFIGS[args.model_config]
        config = Qwen2Config(**{k: v for k, v in shape.items() if k != "architectures"})
        torch.manual_seed(0)
        model_dir = work / "model"
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # 1.5B initialises in seconds there
            model = Qwen2ForCausalLM(config)
        model.to(torch.bfloat16).save_pretrained(model_dir)  # half the bytes to write; arms load it as fp32
        del model
        tokenizer_source = args.tokenizer or _pipeline_outputs(args)[0]
        AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(model_dir)
        corpus = Path(args.corpus) if args.corpus else _pipeline_outputs(args)[1]
        return str(model_dir), corpus
    model, corpus = _pipeline_outputs(args)
    return model, Path(args.corpus) if args.corpus else corpus


def recipe_outputs(recipe: str, until: str) -> dict[str, dict[str, Any]]:
    """Each stage's outputs of the recipe up to ``until``, in the default store (run there if not cached)."""
    from pipeline.cli import DEFAULT_STORE
    from pipeline.recipe import load_recipe
    from pipeline.runner import Runner
    from pipeline.store import Store

    runner = Runner(load_recipe(recipe), Store(DEFAULT_STORE))
    runner.run(until=until)
    return runner.outputs


def _pipeline_outputs(args: argparse.Namespace) -> tuple[str, Path]:
    outputs = recipe_outputs(args.recipe, "corpus")
    return outputs["model"]["model"], Path(outputs["corpus"]["data"])


class StepClock:
    """Trainer callback: the time (after a CUDA sync) and the real tokens counted so far at each step's end."""

    def __init__(self, counted: dict[str, int] | None = None) -> None:
        self.ends: list[tuple[float, int]] = []
        self.counted = counted

    def callback(self) -> Any:
        from transformers import TrainerCallback

        clock = self

        class _Clock(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                clock.ends.append((time.perf_counter(), clock.counted["real"] if clock.counted else 0))

        return _Clock()

    def steady(self, warmup: int, tokens_per_step: int | None = None) -> tuple[int, float]:
        """Tokens and seconds from the end of step ``warmup`` to the end of the last step."""
        if len(self.ends) <= warmup:
            raise SystemExit(f"--steps must exceed --warmup-steps ({warmup}); {len(self.ends)} steps ran")
        (start, counted_start), (end, counted_end) = self.ends[warmup - 1], self.ends[-1]
        steps = len(self.ends) - warmup
        tokens = steps * tokens_per_step if tokens_per_step else counted_end - counted_start
        return tokens, end - start


def _flops_per_token(model: Any, seq_len: int) -> float:
    """Training FLOPs per token (PaLM, appendix B): 6 x the parameters that multiply (every weight but the input
    embedding lookup; the output head counts even when tied to it) + 12 x layers x width x sequence (attention)."""
    config = model.config
    matmul = sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" not in name)
    if config.tie_word_embeddings:
        matmul += config.vocab_size * config.hidden_size
    return 6 * matmul + 12 * config.num_hidden_layers * config.hidden_size * seq_len


def pack_corpus(model: str, corpus: Path, args: argparse.Namespace, work: Path) -> Path:
    """The pack stage's blocks of the corpus at the bench's sequence length."""
    from stages import pack
    from stages.base import StageContext

    out = work / "pack"
    out.mkdir(parents=True)
    result = pack.run(
        StageContext(out_dir=out), {"corpus": str(corpus), "tokenizer": model}, pack.PackParams(seq_len=args.seq_len)
    )
    return Path(result["outputs"]["packed"])


def _no_checkpoints(arguments: dict[str, Any]) -> dict[str, Any]:
    """Trainer saves at the last step whenever it saves by steps; a bench times training, not disk writes."""
    return {**arguments, "save_strategy": "no"}


def arm_stage(
    model: str, packed: Path, args: argparse.Namespace, work: Path, packed_masks: bool, levers: dict[str, Any]
) -> dict[str, Any]:
    import stages.lib.continual_pretraining as cpt

    micro = args.micro_batch_size * levers.get("micro_batch_size", 1)
    kernels = {k: v for k, v in levers.items() if k != "micro_batch_size"}
    params = cpt.CptParams(
        replay_ratio=0.0,
        max_tokens=args.steps * args.batch_size * args.seq_len,
        seq_len=args.seq_len,
        batch_size=max(args.batch_size, micro),
        micro_batch_size=micro,
        eval_every=args.steps,
        eval_tokens=args.seq_len,
        save_every=10**6,
        schedule="constant",
        gradient_checkpointing=args.gradient_checkpointing,
        **kernels,
    )
    original_item, original_arguments = cpt.PackedBlocks.__getitem__, cpt.common_arguments
    if not packed_masks:  # the ablation: same blocks, no position ids, plain causal attention across documents

        def without_positions(self: Any, index: int) -> dict[str, Any]:
            item = original_item(self, index)
            return {"input_ids": item["input_ids"], "labels": item["input_ids"].clone()}

        cpt.PackedBlocks.__getitem__ = without_positions
    cpt.common_arguments = lambda *a, **k: _no_checkpoints(original_arguments(*a, **k))
    clock = StepClock()
    try:
        _reset_memory()
        trainer, _, metrics = cpt.train(work, model, packed, params, logging.getLogger("bench"), [clock.callback()])
    finally:
        cpt.PackedBlocks.__getitem__, cpt.common_arguments = original_item, original_arguments
    tokens, seconds = clock.steady(args.warmup_steps, params.batch_size * args.seq_len)
    result = _result(trainer.model, tokens, seconds, args)
    return result | {"runtime": metrics["runtime"], "micro_batch_size": micro}


def arm_plain(model_path: str, corpus: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import datasets
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from stages.lib.jsonl import read_jsonl
    from stages.lib.modeling import load_model, load_tokenizer
    from stages.lib.training import common_arguments

    tokenizer = load_tokenizer(model_path)
    docs = read_jsonl(corpus / "domain_train.jsonl")
    rows = args.steps * args.batch_size
    texts = [docs[i % len(docs)]["text"] for i in range(rows)]
    encoded = tokenizer(texts, truncation=True, max_length=args.seq_len, add_special_tokens=False)
    train = datasets.Dataset.from_dict({"input_ids": encoded["input_ids"]})
    model = load_model(model_path)
    training_args = TrainingArguments(
        **_no_checkpoints(common_arguments(work, 0, [], 1)),
        per_device_train_batch_size=args.micro_batch_size,
        gradient_accumulation_steps=args.batch_size // args.micro_batch_size,
        max_steps=args.steps,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        activation_checkpointing=args.gradient_checkpointing,
    )
    collate = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    computed = {"real": 0, "padded": 0}

    def counting_collator(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate(features)
        computed["real"] += int(batch["attention_mask"].sum())
        computed["padded"] += batch["input_ids"].numel()
        return batch

    clock = StepClock(computed)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train,
        data_collator=counting_collator,
        callbacks=[clock.callback()],
    )
    _reset_memory()
    trainer.train()
    tokens, seconds = clock.steady(args.warmup_steps)
    result = _result(model, tokens, seconds, args)
    result["padding_share"] = round(1 - computed["real"] / computed["padded"], 4)
    return result


def _reset_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _result(model: Any, tokens: int, seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    result: dict[str, Any] = {"tokens": tokens, "seconds": round(seconds, 2), "tokens_per_second": tokens / seconds}
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        achieved = _flops_per_token(model, args.seq_len) * tokens / seconds / 1e12
        result["tflops"] = round(achieved, 1)
        result["mfu"] = round(achieved / peak, 4) if peak else None
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def run_arm(name: str, model: str, corpus: Path, packed: Path, args: argparse.Namespace, work: Path) -> dict:
    """One arm's result, or the error that stopped it (the next arm still runs)."""
    import torch

    _, levers = ARMS[name]
    try:
        if levers is None:
            return arm_plain(model, corpus, args, work)
        return arm_stage(model, packed, args, work, packed_masks=name != "nomask", levers=levers)
    except (Exception, SystemExit) as exc:  # an arm's failure is a finding, not the end of the bench
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="legal", help="recipe whose model and corpus to use (run up to corpus)")
    parser.add_argument("--corpus", help="a corpus stage's data folder instead of the recipe's")
    parser.add_argument("--model-config", choices=sorted(MODEL_CONFIGS), help="random weights in this shape")
    parser.add_argument("--tokenizer", help="tokenizer folder for --model-config (default: the recipe's model)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--micro-batch-size", type=int, default=4)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--warmup-steps", type=int, default=2, help="optimizer steps left out of the timing")
    parser.add_argument("--arms", default="stage,nomask,plain", help=f"comma-separated, in order; of {', '.join(ARMS)}")
    parser.add_argument("--out", help="write the results as JSON here (after every arm)")
    args = parser.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if unknown := [a for a in arms if a not in ARMS]:
        parser.error(f"--arms: unknown {unknown}; known: {', '.join(ARMS)}")
    logging.basicConfig(level=logging.WARNING)

    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    results: dict[str, Any] = {"device": device, "threads": torch.get_num_threads(), "settings": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, corpus = _prepare(args, work)
        packed = pack_corpus(model, corpus, args, work)
        for name in arms:
            results[ARMS[name][0]] = run_arm(name, model, corpus, packed, args, work / name)
            if args.out:
                Path(args.out).write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
            print(_line(ARMS[name][0], results[ARMS[name][0]], results), flush=True)


def _line(label: str, result: dict[str, Any], results: dict[str, Any]) -> str:
    """One arm as a line: tokens/s, the ratio to the plain Trainer (else to the first arm), MFU, memory."""
    if "error" in result:
        return f"{label:42s} failed: {result['error']}"
    base = results.get(ARMS["plain"][0]) or next(r for r in results.values() if isinstance(r, dict) and "seconds" in r)
    ratio = result["tokens_per_second"] / base["tokens_per_second"] if "tokens_per_second" in base else float("nan")
    extra = "".join(
        f", {k} {result[k]}" for k in ("mfu", "tflops", "peak_memory_gib", "padding_share") if result.get(k) is not None
    )
    return f"{label:42s} {result['tokens_per_second']:10.1f} real tokens/s  x{ratio:.2f}{extra}"


if __name__ == "__main__":
    main()
