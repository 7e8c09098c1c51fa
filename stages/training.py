"""What the two training stages share: resumable checkpoints, curve logging, common arguments.

transformers' Trainer writes a checkpoint's ``trainer_state.json`` last but not atomically: a
kill during a save leaves a folder without it. ``last_complete_checkpoint`` skips such folders
so a rerun resumes from the last checkpoint that was written in full.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from stages.base import require
from stages.modeling import device_and_precision

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The highest-step checkpoint that has its trainer state; incomplete ones are removed."""
    if not folder.exists():
        return None
    found = []
    for path in folder.iterdir():
        match = _CHECKPOINT.match(path.name)
        if match and path.is_dir():
            if (path / "trainer_state.json").exists():
                found.append((int(match.group(1)), path))
            else:
                shutil.rmtree(path)  # killed mid-save: unusable
    return max(found)[1] if found else None


def common_arguments(
    out_dir: Path, seed: int, report_to: list[str], save_steps: int, logging_steps: int
) -> dict[str, Any]:
    """Arguments both trainers take: device, precision, checkpoints, logging, seeds."""
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
        "save_strategy": "steps",
        "save_steps": save_steps,
        "save_total_limit": 2,
        "logging_steps": logging_steps,
        "report_to": report_to or "none",
        "dataloader_num_workers": 0,
        "disable_tqdm": False,
    }


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
