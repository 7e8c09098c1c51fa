"""Instruction tuning with trl's SFTTrainer, full or LoRA, loss on the answer only.

The corpus stage writes prompt-completion pairs in conversational form; SFTTrainer applies the
model's chat template and, for prompt-completion data, masks the prompt out of the loss. LoRA
adapters (peft) are merged back after training so the output is a plain Hugging Face model that
the merge and eval stages load like any other.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from stages.base import Params, StageContext, StageError, StageSpec
from stages.corpus import read_jsonl
from stages.modeling import load_model, load_tokenizer, write_model_card
from stages.training import common_arguments, curve_callback, last_complete_checkpoint, write_history


class SftParams(Params):
    method: Literal["full", "lora"] = "full"
    """Full fine-tuning for small models; LoRA when the model is large or memory is short."""
    lora_r: int = Field(16, ge=1)
    """LoRA rank (method=lora)."""
    lora_alpha: int = Field(32, ge=1)
    """LoRA scaling numerator (method=lora)."""
    learning_rate: float = Field(5e-5, gt=0)
    """Peak learning rate; LoRA usually wants about 10x more than full tuning."""
    epochs: float = Field(1.0, gt=0)
    """Passes over the instruction pairs."""
    max_pairs: int | None = Field(None, ge=1)
    """Use at most this many pairs (None: all the corpus built)."""
    batch_size: int = Field(8, ge=1)
    """Pairs per optimizer step."""
    micro_batch_size: int = Field(4, ge=1)
    """Pairs per forward pass."""
    max_length: int = Field(256, ge=16)
    """Tokens per pair after the chat template; longer pairs are truncated."""
    warmup_fraction: float = Field(0.1, ge=0, lt=1)
    save_every: int = Field(10, ge=1)
    """Steps between resumable checkpoints."""
    seed: int = 0
    report_to: list[Literal["tensorboard", "wandb"]] = Field(default_factory=list)
    """Trackers that also receive the training metrics."""
    trust_remote_code: bool = False

    COSMETIC = frozenset({"report_to"})


def run(ctx: StageContext, inputs: dict[str, Any], params: SftParams) -> dict[str, Any]:
    import datasets
    from trl import SFTConfig, SFTTrainer

    if params.batch_size % params.micro_batch_size:
        raise StageError(f"sft.batch_size={params.batch_size} must be a multiple of sft.micro_batch_size")
    pairs = read_jsonl(Path(inputs["corpus"]) / "sft_train.jsonl")
    if not pairs:
        raise StageError("sft: the corpus built no instruction pairs (corpus.tasks is empty?)")
    pairs = [{"prompt": p["prompt"], "completion": p["completion"]} for p in pairs[: params.max_pairs]]
    train = datasets.Dataset.from_list(pairs)
    tokenizer = load_tokenizer(inputs["model"], params.trust_remote_code)
    if tokenizer.chat_template is None:
        raise StageError(f"sft: the tokenizer of '{inputs['model']}' has no chat template")

    config = SFTConfig(
        **common_arguments(ctx.out_dir, params.seed, list(params.report_to), params.save_every, 1),
        per_device_train_batch_size=params.micro_batch_size,
        gradient_accumulation_steps=params.batch_size // params.micro_batch_size,
        num_train_epochs=params.epochs,
        learning_rate=params.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=params.warmup_fraction,
        max_length=params.max_length,
        completion_only_loss=True,
        packing=False,
    )
    peft_config = None
    if params.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=params.lora_r, lora_alpha=params.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    trainer = SFTTrainer(
        model=load_model(inputs["model"], params.trust_remote_code),
        args=config,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[curve_callback(ctx.out_dir / "curves_live.jsonl")],
    )
    if len(trainer.train_dataset) == 0:
        raise StageError(
            f"sft: every pair lost its answer to truncation at sft.max_length={params.max_length}; raise it"
        )
    checkpoint = last_complete_checkpoint(ctx.out_dir / "checkpoints")
    if checkpoint:
        ctx.log.info("resuming from %s", checkpoint.name)
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    write_history(ctx.out_dir / "curves.jsonl", trainer.state.log_history)

    model = trainer.model
    if params.method == "lora":
        model = model.merge_and_unload()
    out = ctx.out_dir / "model"
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    metrics = {
        "pairs": len(pairs),
        "steps": trainer.state.global_step,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "resumed_from": checkpoint.name if checkpoint else None,
        "method": params.method,
    }
    write_model_card(
        out,
        f"Instruction tuning ({params.method}) of `{inputs['model']}` with trl's SFTTrainer on {len(pairs)} "
        "prompt-completion pairs, loss on the completion only.",
        {"params": params.model_dump(mode="json"), "metrics": metrics},
    )
    (ctx.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(ctx.out_dir / "checkpoints", ignore_errors=True)
    return {"outputs": {"model": out}, "metrics": metrics}


SPEC = StageSpec(
    name="sft",
    version=1,
    params=SftParams,
    inputs=("model", "corpus"),
    run=run,
    doc="Instruction tuning with trl's SFTTrainer (full or LoRA), loss on answers only.",
    libraries=("torch", "transformers", "trl", "peft", "datasets"),
)
