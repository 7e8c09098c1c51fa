"""What the two training stages share: resumable checkpoints, curve logging, common arguments.

Checkpoints are taken by a callback, every N steps when a recipe asks for steps and otherwise every few minutes of
training: a checkpoint of a 135M model with its AdamW state is 1.6 GB and about 7 s to write on the CPU machine, so
a short run pays nothing for it and a long one loses at most those minutes to a crash. None is written at the last
step, where the stage saves the final model itself (the Trainer's own ``save_strategy="steps"`` writes one there).

transformers' Trainer writes a checkpoint's ``trainer_state.json`` last but not atomically: a
kill during a save leaves a folder without it, or with a truncated one. ``last_complete_checkpoint``
removes such folders so a rerun resumes from the last checkpoint that was written in full.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from stages.base import Params, require
from stages.lib.modeling import device_and_precision
from stages.lib.training_kernels import Attention

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class TrainingRunParams(Params):
    """The params of how a training stage runs, the same for cpt and sft: warmup, processes, checkpoints, seed,
    trackers. Each stage adds what it trains and at which rates."""

    warmup_fraction: float = Field(0.1, ge=0, lt=1)
    """Share of steps spent warming up."""
    num_processes: int = Field(1, ge=1)
    """Training processes (GPUs); above 1 the stage reruns itself under accelerate launch (torchrun on CPU)."""
    strategy: Literal["ddp", "fsdp", "deepspeed"] = "ddp"
    """With num_processes > 1: the accelerate config in recipes/accelerate/ (ddp replicates, fsdp and
    deepspeed ZeRO-3 shard the model for ones that do not fit one GPU)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: about a third more compute for far less memory (large models)."""
    save_every: int | None = Field(None, ge=1)
    """Steps between resumable checkpoints; None: one every ``save_minutes`` of training."""
    save_minutes: float = Field(10.0, gt=0)
    """Training minutes between checkpoints when save_every is None: each costs seconds, a crash loses at most this."""
    seed: int = 0
    report_to: list[Literal["tensorboard", "wandb"]] = Field(default_factory=list)
    """Trackers that also receive the training metrics (they are always kept in the stage output)."""
    trust_remote_code: bool = False
    attention: Attention | None = None
    """Attention kernel (sdpa, sdpa_documents, flex_attention, flash_attention_2); None: the machine's choice
    (``stages/lib/training_kernels.py`` says which and why)."""
    liger: bool | None = None
    """Liger Kernel's fused loss and layers (sft: layers only, trl fuses its loss itself); None: on in cpt where CUDA
    and the liger-kernel package are present, off in sft."""
    torch_compile: bool | None = None
    """Compile the model for training; None: off (minutes of compiling on CPU; unmeasured on GPU)."""

    COSMETIC = frozenset({"report_to"})
    KEYED_WHEN_SET = frozenset({"attention", "liger", "torch_compile"})


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The highest-step checkpoint that has its trainer state; incomplete ones are removed."""
    if not folder.exists():
        return None
    found = []
    for path in folder.iterdir():
        match = _CHECKPOINT.match(path.name)
        if match and path.is_dir():
            if _readable_state(path / "trainer_state.json"):
                found.append((int(match.group(1)), path))
            else:
                shutil.rmtree(path)  # killed mid-save (no state, or a truncated one): unusable
    return max(found)[1] if found else None


def _readable_state(path: Path) -> bool:
    """The trainer state exists and parses: a kill during its write leaves it truncated."""
    try:
        return isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
    except (OSError, ValueError):
        return False


def common_arguments(out_dir: Path, seed: int, report_to: list[str], logging_steps: int) -> dict[str, Any]:
    """Arguments both trainers take: device, precision, checkpoints (taken by ``checkpoint_callback``), logging,
    seeds."""
    device, bf16 = device_and_precision()
    for tracker, install in (("tensorboard", "pip install tensorboard"), ("wandb", "pip install wandb")):
        if tracker in report_to:
            require(tracker, install)  # fail now, not after the model has loaded
    if "tensorboard" in report_to:  # transformers 5 takes the TensorBoard folder from the environment only
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(out_dir / "tensorboard")
    return {
        "output_dir": str(out_dir / "checkpoints"),
        "seed": seed,
        "data_seed": seed,
        "bf16": bf16,
        "use_cpu": device == "cpu",
        "optim": "adamw_torch_fused" if device == "cuda" else "adamw_torch",  # one kernel for all parameters
        "save_strategy": "no",  # checkpoint_callback decides when
        "save_total_limit": 2,
        "logging_steps": logging_steps,
        "report_to": report_to or "none",
        "dataloader_num_workers": 0,
        "disable_tqdm": False,
    }


def checkpoint_callback(every_steps: int | None, every_minutes: float) -> Any:
    """A TrainerCallback that asks for a resumable checkpoint every ``every_steps`` steps, or (``every_steps`` None)
    after every ``every_minutes`` of training; never at the last step."""
    from transformers import TrainerCallback

    class Checkpointing(TrainerCallback):
        last_save = time.monotonic()

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.last_save = time.monotonic()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step >= state.max_steps:
                return
            if every_steps is not None:
                control.should_save = state.global_step % every_steps == 0
            else:
                control.should_save = time.monotonic() - self.last_save >= every_minutes * 60

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.last_save = time.monotonic()

    return Checkpointing()


def train_resuming(trainer: Any, out_dir: Path, log: Any) -> tuple[Any, Path | None]:
    """``trainer.train()`` from the last complete checkpoint in ``out_dir/checkpoints`` if there is one, with the
    quiet progress bar; returns the Trainer's result and the checkpoint it resumed from."""
    quiet_progress(trainer)
    checkpoint = last_complete_checkpoint(out_dir / "checkpoints")
    if checkpoint:
        log.info("resuming from %s", checkpoint.name)
    return trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None), checkpoint


def quiet_progress(trainer: Any) -> None:
    """Keep the Trainer's progress bar but not the log dicts it prints under it at every step: the console stays
    readable, and ``curve_callback`` keeps every record in the stage's folder."""
    from transformers.trainer_callback import ProgressCallback

    class BarOnly(ProgressCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            return None

    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(BarOnly())


def curve_callback(path: Path) -> Any:
    """A TrainerCallback that appends each log record (loss, lr, eval losses) to a JSONL file."""
    from transformers import TrainerCallback

    class CurveLogger(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            if logs and state.is_world_process_zero:
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return CurveLogger()


def write_history(path: Path, log_history: list[dict[str, Any]]) -> None:
    """The trainer's full log history (restored across resumes), one JSON record per line."""
    with path.open("w", encoding="utf-8") as fh:
        for record in log_history:
            fh.write(json.dumps(record) + "\n")
