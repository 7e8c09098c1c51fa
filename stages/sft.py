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

from pydantic import Field, model_validator

from stages.base import MODEL, StageContext, StageError, StageSpec, Wiring, require
from stages.lib import launch
from stages.lib.jsonl import read_jsonl
from stages.lib.modeling import load_model, load_tokenizer, write_model_card
from stages.lib.training import (
    TrainingRunParams,
    checkpoint_callback,
    common_arguments,
    curve_callback,
    train_resuming,
    write_history,
)
from stages.lib.training_kernels import choose_kernels


class SftParams(TrainingRunParams):
    method: Literal["full", "lora", "qlora"] = "full"
    """Full fine-tuning for small models; LoRA when the model is large or memory is short; QLoRA (LoRA on a
    4-bit base, bitsandbytes, CUDA only) when even the bf16 weights do not fit."""
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
    padding_free: bool = True
    """Each micro-batch's pairs run as one flattened sequence (trl's padding-free collator), kept apart by their
    position ids: no compute on padding, the same loss as the padded batch."""

    @model_validator(mode="after")
    def _trainable(self) -> SftParams:
        """What ``run`` would refuse after cpt trained, refused at recipe load instead."""
        problems = [launch.batch_problem("sft", self.batch_size, self.micro_batch_size, self.num_processes)]
        if self.method != "full" and self.strategy != "ddp":
            problems.append(
                f"sft.method={self.method} with sft.strategy={self.strategy}: the adapters are merged on one "
                "process, so lora and qlora run under ddp only; set sft.strategy=ddp, or sft.method=full"
            )
        found = [p for p in problems if p]
        if found:
            raise ValueError("; ".join(found))
        return self


def run(ctx: StageContext, inputs: dict[str, Any], params: SftParams) -> dict[str, Any]:
    import datasets
    from trl import SFTConfig, SFTTrainer

    per_step = params.micro_batch_size * params.num_processes  # a whole divisor of batch_size: SftParams checks it
    if params.num_processes > 1 and not launch.in_worker():
        return launch.relaunch("sft", ctx, inputs, params)
    pairs = read_jsonl(Path(inputs["corpus"]) / "sft_train.jsonl")
    if not pairs:
        raise StageError("sft: the corpus built no instruction pairs (corpus.tasks is empty?)")
    pairs = [{"prompt": p["prompt"], "completion": p["completion"]} for p in pairs[: params.max_pairs]]
    train = datasets.Dataset.from_list(pairs)
    tokenizer = load_tokenizer(inputs["model"], params.trust_remote_code)
    if tokenizer.chat_template is None:
        raise StageError(f"sft: the tokenizer of '{inputs['model']}' has no chat template")

    # trl's SFTTrainer computes the loss through its own fused LM head and keeps only Liger's layer kernels
    # (it calls use_liger_kernel deprecated), so Liger is on in sft only when a recipe asks for it
    kernels = choose_kernels("sft", params.attention, params.liger, params.torch_compile, liger_by_default=False)
    config = SFTConfig(
        **common_arguments(ctx.out_dir, params.seed, list(params.report_to), 1),
        **kernels.trainer_arguments(),
        per_device_train_batch_size=params.micro_batch_size,
        gradient_accumulation_steps=params.batch_size // per_step,
        activation_checkpointing=params.gradient_checkpointing,
        num_train_epochs=params.epochs,
        learning_rate=params.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=params.warmup_fraction,
        max_length=params.max_length,
        completion_only_loss=True,
        packing=False,
    )
    peft_config = None
    if params.method in ("lora", "qlora"):
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=params.lora_r, lora_alpha=params.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    collator = None
    if params.padding_free:  # given as our collator so trl still truncates to max_length while preparing the data
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        collator = DataCollatorForLanguageModeling(pad_token_id=pad, padding_free=True)
    model = (
        _quantized_model(inputs["model"], params, kernels.attention)
        if params.method == "qlora"
        else load_model(inputs["model"], params.trust_remote_code, attention=kernels.attention)
    )
    with kernels.confined(model):  # Liger's patches end with this run
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=train,
            processing_class=tokenizer,
            data_collator=collator,
            peft_config=peft_config,
            callbacks=[
                curve_callback(ctx.out_dir / "curves_live.jsonl"),
                checkpoint_callback(params.save_every, params.save_minutes),
            ],
        )
        if len(trainer.train_dataset) == 0:
            raise StageError(
                f"sft: every pair lost its answer to truncation at sft.max_length={params.max_length}; raise it"
            )
        result, checkpoint = train_resuming(trainer, ctx.out_dir, ctx.log)
    out = ctx.out_dir / "model"
    if params.method == "full":
        trainer.save_model(str(out))  # every rank takes part (FSDP and ZeRO-3 gather the shards); rank 0 writes
    if not trainer.is_world_process_zero():
        return {"outputs": {"model": out}, "metrics": {}}
    write_history(ctx.out_dir / "curves.jsonl", trainer.state.log_history)
    if params.method == "lora":
        trainer.accelerator.unwrap_model(trainer.model).merge_and_unload().save_pretrained(out)
    elif params.method == "qlora":
        _merge_into_full_precision(trainer, inputs["model"], params, out)
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
        "runtime": kernels.runtime(trainer.args.bf16),
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


def _quantized_model(path: str, params: SftParams, attention: str) -> Any:
    """The base in 4-bit NF4 with bf16 compute (QLoRA); bitsandbytes and CUDA are required."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    require("bitsandbytes", "pip install bitsandbytes")
    if not torch.cuda.is_available():
        raise StageError("sft.method=qlora needs a CUDA GPU (bitsandbytes 4-bit); use lora or full on CPU")
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )
    return AutoModelForCausalLM.from_pretrained(
        path,
        quantization_config=quantization,
        dtype=torch.bfloat16,
        trust_remote_code=params.trust_remote_code,
        attn_implementation=attention,
    )


def _merge_into_full_precision(trainer: Any, base: str, params: SftParams, out: Path) -> None:
    """Merge the adapters into the bf16 base, not the 4-bit one, so the output is a normal full model."""
    import torch
    from peft import PeftModel

    adapter = out.parent / "adapter"
    trainer.model.save_pretrained(adapter)
    model = PeftModel.from_pretrained(load_model(base, params.trust_remote_code, dtype=torch.bfloat16), adapter)
    model.merge_and_unload().save_pretrained(out, safe_serialization=True)


SPEC = StageSpec(
    name="sft",
    version=2,
    params=SftParams,
    inputs=("model", "corpus"),
    wiring=Wiring(inputs={"model": MODEL, "corpus": "corpus.data"}, model="model", skippable=True),
    accelerated=True,
    run=run,
    doc="Instruction tuning with trl's SFTTrainer (full or LoRA), loss on answers only.",
    libraries=("torch", "transformers", "trl", "peft", "datasets"),
)
