"""Continual pre-training's machinery: its params, the replay stream over packed blocks, and training on
transformers' Trainer. The cpt stage runs it once; the plan stage runs it for each proxy.

The replay ratio is the share of *general tokens* in the training stream (not of documents or
examples): the pack stage cut each kind's documents into fixed-length blocks with EOS between
them (shared with the plan proxies), and the stream holds ``round(r * blocks)`` general blocks
and the rest domain blocks, shuffled together. Validation loss on the general and the domain
held-out sets is logged every ``eval_every`` steps (the plan stage fits scaling laws to these
curves). The Trainer supplies the schedule, checkpoints and resume: a killed run resumes from its
last complete checkpoint.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from stages.base import StageError
from stages.lib import launch
from stages.lib.modeling import load_model, load_tokenizer
from stages.lib.packed_blocks import PackedBlocks, one_row_collator, read_pack
from stages.lib.training import (
    TrainingRunParams,
    checkpoint_callback,
    common_arguments,
    curve_callback,
    train_resuming,
    write_history,
)
from stages.lib.training_kernels import choose_kernels

DEFAULT_REPLAY_RATIO = 0.25  # a quarter general tokens: the low end of what CPT studies found to curb forgetting


class CptParams(TrainingRunParams):
    replay_ratio: float | None = Field(None, ge=0.0, le=1.0)
    """Share of general tokens in the stream; more replay, less forgetting, slower gain. None: the
    plan stage's choice, or DEFAULT_REPLAY_RATIO when the recipe has no plan."""
    max_tokens: int = Field(32768, ge=1)
    """Training tokens in total (both kinds); cost grows linearly with it."""
    seq_len: int = Field(512, ge=8)
    """Block length of packed documents."""
    batch_size: int = Field(4, ge=1)
    """Blocks per optimizer step."""
    micro_batch_size: int = Field(2, ge=1)
    """Blocks per forward pass; batch_size / micro_batch_size steps of gradient accumulation."""
    learning_rate: float = Field(1e-4, gt=0)
    """Peak learning rate; CPT uses less than pre-training to limit forgetting."""
    schedule: Literal["cosine", "warmup_stable_decay", "constant"] = "cosine"
    """Learning-rate shape after warmup (plan proxies use constant, so every eval point is a fair budget)."""
    decay_fraction: float = Field(0.2, gt=0, le=1)
    """warmup_stable_decay only: share of steps spent decaying."""
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    """Final learning rate as a share of the peak."""
    weight_decay: float = Field(0.01, ge=0)
    eval_every: int = Field(4, ge=1)
    """Steps between validation-loss points of the logged curves."""
    eval_tokens: int = Field(2048, ge=8)
    """Held-out tokens per validation set at each point (each costs a forward pass)."""

    @model_validator(mode="after")
    def _trainable(self) -> CptParams:
        """What ``train`` would refuse after the corpus and pack stages ran, refused at recipe load instead."""
        problems = [launch.batch_problem("cpt", self.batch_size, self.micro_batch_size, self.num_processes)]
        if self.max_tokens < self.seq_len:
            problems.append(
                f"cpt.max_tokens={self.max_tokens} is under one block of cpt.seq_len={self.seq_len}: "
                f"raise cpt.max_tokens to {self.seq_len} or more (or lower cpt.seq_len)"
            )
        found = [p for p in problems if p]
        if found:
            raise ValueError("; ".join(found))
        return self


def choose_rows(available: int, count: int, seed: int) -> tuple[list[int], int]:
    """``count`` row numbers out of ``available``: shuffled passes over all rows, as many as needed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    passes = -(-count // available)
    rows = np.concatenate([rng.permutation(available) for _ in range(passes)])[:count]
    return rows.tolist(), passes


def build_stream(packed: Path, params: CptParams) -> tuple[PackedBlocks, dict[str, PackedBlocks], dict[str, Any]]:
    """Shuffled training blocks at the replay ratio, and the held-out validation blocks.

    A kind's first rows hold the training documents a closed-book probe asks about (the pack stage's
    ``probe_blocks``): they are always among the chosen blocks, so the probe asks about text cpt read;
    a budget too small for all of them trains on a sample, and the stream info says how many."""
    replay_ratio = DEFAULT_REPLAY_RATIO if params.replay_ratio is None else params.replay_ratio
    n_blocks = params.max_tokens // params.seq_len
    if n_blocks < 1:
        raise StageError(f"cpt.max_tokens={params.max_tokens} is below one block of seq_len={params.seq_len}")
    pack = read_pack(packed, params.seq_len)
    general_blocks = round(replay_ratio * n_blocks)
    domain_blocks = n_blocks - general_blocks
    rows: list[tuple[str, int]] = []
    info: dict[str, Any] = {"blocks": n_blocks, "general_blocks": general_blocks, "domain_blocks": domain_blocks}
    for offset, (kind, count) in enumerate((("domain", domain_blocks), ("general", general_blocks))):
        if count == 0:
            continue
        available = pack["sets"][f"{kind}_train"]["blocks"]
        if available == 0:
            raise StageError(f"cpt: no {kind} training blocks in {packed}; check the corpus sources")
        probe = pack["sets"][f"{kind}_train"].get("probe_blocks", 0)
        if probe and count < available:  # the probe's blocks (the first rows) always, then a sample of the rest
            trained = choose_rows(probe, min(probe, count), params.seed + offset)[0]
            more = count - len(trained)
            rest = choose_rows(available - probe, more, params.seed + offset)[0] if more else []
            chosen, passes = trained + [probe + row for row in rest], 1
        else:
            chosen, passes = choose_rows(available, count, params.seed + offset)
        rows += [(f"{kind}_train", row) for row in chosen]
        info[f"{kind}_passes"] = passes
        if probe:
            info[f"{kind}_probe_blocks"] = probe
            info[f"{kind}_probe_blocks_trained"] = len({row for row in chosen if row < probe})
    random.Random(params.seed).shuffle(rows)
    validation = {}
    for kind in ("general", "domain"):
        available = pack["sets"][f"{kind}_validation"]["blocks"]
        count = min(available, max(1, params.eval_tokens // params.seq_len))
        validation[kind] = PackedBlocks(packed, [(f"{kind}_validation", row) for row in range(count)])
    info["general_token_share"] = general_blocks / n_blocks
    return PackedBlocks(packed, rows), validation, info


def scheduler_choice(params: CptParams, steps: int) -> tuple[str, dict[str, Any]]:
    """transformers' scheduler name and kwargs for ``params.schedule`` over ``steps`` optimizer steps."""
    return {
        "cosine": ("cosine_with_min_lr", {"min_lr_rate": params.min_lr_ratio}),
        "warmup_stable_decay": (
            "warmup_stable_decay",
            {"num_decay_steps": max(1, round(steps * params.decay_fraction)), "min_lr_ratio": params.min_lr_ratio},
        ),
        "constant": ("constant_with_warmup", {}),
    }[params.schedule]


def training_steps(params: CptParams) -> int:
    """Optimizer steps of a run of ``params`` (``build_stream``'s blocks over the batch size)."""
    return max(1, params.max_tokens // params.seq_len // params.batch_size)


def warmup_steps(params: CptParams) -> int:
    """Warmup steps of a run of ``params``, counted as TrainingArguments counts a fractional ``warmup_steps``."""
    import math

    fraction = params.warmup_fraction
    return math.ceil(fraction * training_steps(params)) if fraction < 1 else int(fraction)


def with_planned_ratio(params: CptParams, plan: str | Path | None) -> CptParams:
    """``params`` with the plan stage's chosen replay ratio (``plan``: its plan.json), unless the recipe pins one."""
    if params.replay_ratio is not None or not plan:
        return params
    chosen = json.loads(Path(plan).read_text(encoding="utf-8"))["chosen"]
    return params.model_copy(update={"replay_ratio": chosen["replay_ratio"]})


def learning_rates(params: CptParams) -> list[float]:
    """The rate of each optimizer update of a run of ``params``, from the scheduler the Trainer builds (on a
    one-parameter optimizer, so the learning-dynamics law can price a schedule without training it)."""
    import torch
    from transformers import get_scheduler

    steps = training_steps(params)
    name, kwargs = scheduler_choice(params, steps)
    warmup = warmup_steps(params)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=params.learning_rate)
    scheduler = get_scheduler(name, optimizer, warmup, steps, scheduler_specific_kwargs=kwargs)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def _last_eval(history: list[dict[str, Any]], step: int) -> dict[str, float]:
    """Held-out losses logged at ``step``, if the schedule already evaluated there (saves a pass)."""
    found = {}
    for record in history:
        if record.get("step") == step:
            found.update({k: v for k, v in record.items() if k in ("eval_general_loss", "eval_domain_loss")})
    return found if len(found) == 2 else {}


def train(
    out_dir: Path, model_path: str, packed: Path, params: CptParams, log: Any, callbacks: list[Any] | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """Train on the packed stream in ``out_dir/checkpoints`` (resuming there); returns trainer, tokenizer, metrics.

    ``callbacks``: more Trainer callbacks (the throughput bench's step clock)."""
    from transformers import Trainer, TrainingArguments, default_data_collator

    # CptParams checks this at load; the plan stage's proxies are copies (model_copy) that skip validation
    if problem := launch.batch_problem("cpt", params.batch_size, params.micro_batch_size, params.num_processes):
        raise StageError(problem)
    kernels = choose_kernels("cpt", params.attention, params.liger, params.torch_compile)
    per_step = params.micro_batch_size * params.num_processes
    tokenizer = load_tokenizer(model_path, params.trust_remote_code)
    blocks, validation, info = build_stream(packed, params)
    log.info("cpt stream: %s", info)
    steps = max(1, len(blocks) // params.batch_size)
    schedule, scheduler_kwargs = scheduler_choice(params, steps)
    args = TrainingArguments(
        **common_arguments(out_dir, params.seed, list(params.report_to), 1),
        per_device_train_batch_size=params.micro_batch_size,
        per_device_eval_batch_size=params.micro_batch_size,
        gradient_accumulation_steps=params.batch_size // per_step,
        max_steps=steps,
        learning_rate=params.learning_rate,
        lr_scheduler_type=schedule,
        lr_scheduler_kwargs=scheduler_kwargs,
        warmup_steps=params.warmup_fraction,
        weight_decay=params.weight_decay,
        activation_checkpointing=params.gradient_checkpointing,
        eval_strategy="steps",
        eval_steps=params.eval_every,
        eval_on_start=True,
        prediction_loss_only=True,  # the curves need the loss only; else every eval batch's logits are gathered
        **kernels.trainer_arguments(),
    )
    model = load_model(model_path, params.trust_remote_code, attention=kernels.attention)
    model.config.use_cache = False  # training needs no KV cache, and with one transformers skips packed-sequence masks
    flash = kernels.attention.startswith("flash_attention")  # its varlen kernel needs one row a batch
    with kernels.confined(model):  # Liger's patches end with this run
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=blocks,
            eval_dataset=validation,
            data_collator=one_row_collator if flash else default_data_collator,
            callbacks=[
                curve_callback(out_dir / "curves_live.jsonl"),
                checkpoint_callback(params.save_every, params.save_minutes),
                *(callbacks or []),
            ],
        )
        started = time.time()
        _, checkpoint = train_resuming(trainer, out_dir, log)
        seconds = time.time() - started
        final = _last_eval(trainer.state.log_history, trainer.state.global_step) or trainer.evaluate()
    if trainer.is_world_process_zero():
        write_history(out_dir / "curves.jsonl", trainer.state.log_history)
    resumed_steps = int(checkpoint.name.split("-")[1]) if checkpoint else 0
    tokens_this_run = (steps - resumed_steps) * params.batch_size * params.seq_len
    metrics = {
        "final_eval_general_loss": final.get("eval_general_loss"),
        "final_eval_domain_loss": final.get("eval_domain_loss"),
        "train_tokens": len(blocks) * params.seq_len,
        "target_tokens": blocks.target_tokens(),
        "steps": steps,
        "tokens_per_second": round(tokens_this_run / seconds, 1) if seconds > 0 else None,
        "resumed_from": checkpoint.name if checkpoint else None,
        "bf16": args.bf16,
        "runtime": kernels.runtime(args.bf16),
        "processes": args.world_size,  # as the distributed environment reports it
        **info,
    }
    return trainer, tokenizer, metrics


def evaluated_losses(log_history: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Held-out losses by step from a Trainer log, ``{step: {"domain": ..., "general": ...}}``, for the steps
    that evaluated both sets."""
    by_step: dict[int, dict[str, float]] = {}
    for record in log_history:
        for kind in ("domain", "general"):
            if f"eval_{kind}_loss" in record:
                by_step.setdefault(record["step"], {})[kind] = record[f"eval_{kind}_loss"]
    return {step: losses for step, losses in sorted(by_step.items()) if len(losses) == 2}


def constant_rate(params: CptParams, domain_share: float, max_tokens: int, eval_every: int) -> CptParams:
    """``params`` for a law's measuring run: the given mixture and budget at a constant rate (after warmup), so every
    evaluation is a fair budget, and no checkpoints but the final state."""
    update = {"replay_ratio": 1 - domain_share, "max_tokens": max_tokens, "schedule": "constant"}
    return params.model_copy(update=update | {"eval_every": eval_every, "save_every": 10**9})


def measured_run(
    folder: Path, model_path: str, packed: Path, params: CptParams, log: Any, callbacks: list[Any] | None = None
) -> list[dict[str, Any]]:
    """A short run whose evaluated losses a scaling law is fitted to: one point per evaluation (step, tokens,
    domain share, both losses). Resumable: a finished run's points are kept in ``folder/points.json``."""
    done = folder / "points.json"
    if done.exists():
        return json.loads(done.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    trainer, _, _ = train(folder, model_path, packed, params, log, callbacks=callbacks)
    share = 1 - (DEFAULT_REPLAY_RATIO if params.replay_ratio is None else params.replay_ratio)
    points = [
        {
            "step": step,
            "domain_share": share,
            "tokens": step * params.batch_size * params.seq_len,
            "domain_loss": losses["domain"],
            "general_loss": losses["general"],
        }
        for step, losses in evaluated_losses(trainer.state.log_history).items()
    ]
    done.write_text(json.dumps(points, indent=2) + "\n", encoding="utf-8")
    return points
