"""Multi-process training: a training stage reruns itself under ``accelerate launch`` (or ``torchrun``).

A stage whose params ask for more than one process calls ``relaunch``: it starts the launcher on
``python -m stages.lib.launch``, which rebuilds the stage's context, inputs and params in every process
and calls the same ``run`` with ``DAPT_WORKER`` set, so Trainer finds the distributed environment
the launcher made (DDP, FSDP or DeepSpeed from the accelerate config shipped in
``recipes/accelerate/``). Rank 0 writes the outputs and a result file; the parent returns that
result to the engine, which commits the folder as for any stage: the cache, the manifest and the
atomic rename do not change. On a CPU-only machine the launcher is ``torchrun`` (gloo DDP); the
accelerate configs are for GPUs.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

from stages.base import StageContext, StageError

WORKER_ENV = "DAPT_WORKER"
RESULT_FILE = ".launch_result.json"
ROOT = Path(__file__).resolve().parents[2]
"""The repository root: where ``python -m stages.lib.launch`` finds the packages."""
CONFIGS = ROOT / "recipes" / "accelerate"
Strategy = Literal["ddp", "fsdp", "deepspeed"]


def batch_problem(section: str, batch_size: int, micro_batch_size: int, num_processes: int) -> str | None:
    """A recipe's batch that no gradient accumulation reaches, found at load time instead of when training starts.

    One optimizer step takes ``micro_batch_size`` examples in each of ``num_processes`` processes,
    ``batch_size / (micro_batch_size x num_processes)`` times over, so that quotient must be whole."""
    per_step = micro_batch_size * num_processes
    if batch_size % per_step == 0:
        return None
    return (
        f"{section}.batch_size={batch_size} is not a multiple of {section}.micro_batch_size x "
        f"{section}.num_processes = {micro_batch_size} x {num_processes} = {per_step}: set {section}.batch_size "
        f"to {per_step}, {2 * per_step}, ... or pick a {section}.micro_batch_size that divides it"
    )


def in_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that writes files beside what Trainer saves."""
    return int(os.environ.get("RANK", "0")) == 0


def command(stage: str, num_processes: int, strategy: Strategy, args_file: Path) -> list[str]:
    """The launcher command for this machine: accelerate with the strategy's config on CUDA, torchrun on CPU."""
    import torch

    worker = ["-m", "stages.lib.launch", stage, str(args_file)]
    if not torch.cuda.is_available():
        if strategy != "ddp":
            raise StageError(f"{stage}.strategy={strategy} needs GPUs; on CPU only ddp (gloo) runs")
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={num_processes}",
            *worker,
        ]
    if strategy == "deepspeed" and shutil.which("deepspeed") is None:
        raise StageError(f"{stage}.strategy=deepspeed needs DeepSpeed: pip install deepspeed")
    config = CONFIGS / f"{strategy}.yaml"
    extra = shlex.split(os.environ.get("DAPT_LAUNCH_ARGS", ""))  # multi-node: machines, rank, main address
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
        "--num_processes", str(num_processes), *extra, *worker,
    ]  # fmt: skip


def relaunch(stage: str, ctx: StageContext, inputs: dict[str, Any], params: Any) -> dict[str, Any]:
    """Run ``stage`` in ``params.num_processes`` processes and return rank 0's result."""
    args_file = ctx.out_dir / ".launch_args.json"
    args_file.write_text(
        json.dumps(
            {
                "out_dir": str(ctx.out_dir),
                "node": ctx.node,
                "recipe": ctx.recipe,
                "inputs": {k: str(v) for k, v in inputs.items()},
                "params": params.model_dump(mode="json"),
            }
        ),
        encoding="utf-8",
    )
    cmd = command(stage, params.num_processes, params.strategy, args_file)
    ctx.log.info("launching %d processes (%s): %s", params.num_processes, params.strategy, " ".join(cmd))
    root = str(ROOT)
    env = {
        **os.environ,
        WORKER_ENV: "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    completed = subprocess.run(cmd, env=env, cwd=root, check=False)
    result_path = ctx.out_dir / RESULT_FILE
    if completed.returncode != 0 or not result_path.exists():
        raise StageError(f"{stage}: the {params.num_processes}-process run failed (exit {completed.returncode})")
    result = json.loads(result_path.read_text(encoding="utf-8"))
    result_path.unlink()
    args_file.unlink()
    result["outputs"] = {k: Path(v) for k, v in result["outputs"].items()}
    return result


def run_here(
    stage: str, out_dir: str, node: str, recipe: str, inputs: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """Rebuild a stage's context and params from plain values and run it in this process: the body of a
    launched rank here and of a cluster job (``pipeline.executor``)."""
    import logging

    from stages import REGISTRY

    spec = REGISTRY[stage]
    ctx = StageContext(out_dir=Path(out_dir), log=logging.getLogger(f"stage.{node}"), node=node, recipe=recipe)
    return spec.run(ctx, inputs, spec.params(**params)) or {}


def _worker(stage: str, args_file: Path) -> None:
    args = json.loads(args_file.read_text(encoding="utf-8"))
    result = run_here(stage, args["out_dir"], args["node"], args["recipe"], args["inputs"], args["params"])
    if is_main_process():
        serialisable = {**result, "outputs": {k: str(v) for k, v in result["outputs"].items()}}
        (Path(args["out_dir"]) / RESULT_FILE).write_text(json.dumps(serialisable, default=str), encoding="utf-8")


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s rank" + os.environ.get("RANK", "0") + " %(message)s")
    _worker(sys.argv[1], Path(sys.argv[2]))
