"""The cpt stage: continual pre-training with replay of general text (``stages/lib/continual_pretraining.py``
holds the params, the replay stream and the training loop it shares with the plan stage's proxies).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from stages.base import StageContext, StageSpec, Wiring
from stages.lib import launch
from stages.lib.continual_pretraining import CptParams, build_stream, train, with_planned_ratio
from stages.lib.modeling import write_model_card

__all__ = ["SPEC", "CptParams", "build_stream", "run", "train"]


def run(ctx: StageContext, inputs: dict[str, Any], params: CptParams) -> dict[str, Any]:
    if params.replay_ratio is None and inputs.get("plan"):
        params = with_planned_ratio(params, inputs["plan"])
        ctx.log.info("replay ratio %.3f chosen by the plan stage", params.replay_ratio)
    if inputs.get("schedule"):
        chosen = json.loads(Path(inputs["schedule"]).read_text(encoding="utf-8"))["chosen"]
        schedule = {key: chosen[key] for key in ("learning_rate", "schedule", "decay_fraction")}
        params = params.model_copy(update=schedule)
        ctx.log.info("schedule %s chosen by the plan_schedule stage: %s", chosen["name"], schedule)
    if params.num_processes > 1 and not launch.in_worker():
        return launch.relaunch("cpt", ctx, inputs, params)
    trainer, tokenizer, metrics = train(ctx.out_dir, inputs["model"], Path(inputs["packed"]), params, ctx.log)
    out = ctx.out_dir / "model"
    trainer.save_model(str(out))  # every rank takes part (FSDP gathers the shards); rank 0 writes
    outputs = {"model": out, "curves": ctx.out_dir / "curves.jsonl"}
    if not trainer.is_world_process_zero():
        return {"outputs": outputs, "metrics": metrics}
    tokenizer.save_pretrained(out)
    write_model_card(
        out,
        f"Continual pre-training of `{inputs['model']}` on the {ctx.recipe or 'recipe'} corpus with "
        f"{metrics['general_token_share']:.3f} of its {metrics['train_tokens']} tokens general (replay).",
        {"params": params.model_dump(mode="json"), "metrics": metrics},
    )
    (ctx.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(ctx.out_dir / "checkpoints", ignore_errors=True)  # the final model supersedes them
    return {"outputs": outputs, "metrics": metrics}


SPEC = StageSpec(
    name="cpt",
    version=5,
    params=CptParams,
    inputs=("model", "packed"),
    optional_inputs=("plan", "schedule"),
    wiring=Wiring(
        inputs={
            "model": "model.model",
            "packed": "pack.packed",
            "plan": "plan.plan",
            "schedule": "plan_schedule.schedule",
        },
        model="model",
    ),
    accelerated=True,
    run=run,
    doc="Continual pre-training with replay (share of general tokens), resumable, curves logged.",
    libraries=("torch", "transformers", "accelerate", "numpy"),
)
