"""The training stages' callbacks on a real Trainer and a tiny model: when checkpoints are written, and a console
with the progress bar but without a printed log dict per step."""

from __future__ import annotations

from pathlib import Path

import pytest


def _train(tiny_model: Path, out: Path, steps: int, every_steps: int | None, every_minutes: float) -> None:
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from stages.lib.training import checkpoint_callback, common_arguments, quiet_progress

    rows = [{"input_ids": torch.arange(3, 19), "labels": torch.arange(3, 19)} for _ in range(steps)]
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    args = TrainingArguments(
        **common_arguments(out, 0, [], 1), per_device_train_batch_size=1, max_steps=steps, learning_rate=1e-3
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=rows, callbacks=[checkpoint_callback(every_steps, every_minutes)]
    )
    quiet_progress(trainer)
    trainer.train()


def test_checkpoints_every_n_steps_but_not_at_the_last(tiny_model: Path, tmp_path: Path, capfd) -> None:
    _train(tiny_model, tmp_path, steps=5, every_steps=2, every_minutes=10)
    saved = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert saved == ["checkpoint-2", "checkpoint-4"]  # none at step 5: the stage saves the final model itself
    console = capfd.readouterr()
    output = console.out + console.err
    assert "5/5" in output  # the progress bar is kept
    assert "'loss'" not in output and "train_runtime" not in output  # the log dicts are not printed


@pytest.mark.parametrize(("minutes", "expected"), [(10.0, []), (1e-9, ["checkpoint-2", "checkpoint-3"])])
def test_checkpoints_by_training_time(tiny_model: Path, tmp_path: Path, minutes: float, expected: list[str]) -> None:
    _train(tiny_model, tmp_path, steps=4, every_steps=None, every_minutes=minutes)
    folder = tmp_path / "checkpoints"
    saved = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert saved == expected  # a short run writes none; past the interval one per step (two kept), none at the last


def test_resume_skips_a_checkpoint_whose_state_was_cut_short(tmp_path: Path) -> None:
    from stages.lib.training import last_complete_checkpoint

    for step, state in ((2, '{"global_step": 2}'), (4, '{"global_step": 4, "log_hi'), (6, None)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]  # the killed saves are removed
