"""Where a stage runs: in this process, or as a Slurm job through submitit, waited for.

The engine is unchanged by the choice: the stage writes into the same ``.partial`` folder of the
store (the cluster's shared file system), the runner waits for the job's result and commits the
folder with its manifest as for a local run, so cache keys, reuse and resumption behave the same.
Where a stage runs does not enter its cache key: a result is the same wherever it was computed.
``submitit_local`` runs each job as a local submitit subprocess, for tests and dry runs of a
Slurm set-up on one machine.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stages.base import StageContext, StageError, require


class ExecutorSpec(BaseModel):
    """The recipe's ``executor:`` section."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["local", "slurm", "submitit_local"] = "local"
    """local: in the pipeline's process; slurm: one Slurm job per stage (submitit); submitit_local: a local job."""
    stages: list[str] | None = None
    """Stages sent as jobs; default: those whose spec says they are accelerated (the training and eval stages);
    the others (model, corpus, report) stay on the submitting machine."""
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpus_per_node: int = Field(1, ge=0)
    """Set it to the training stages' num_processes to give them one GPU each."""
    cpus_per_task: int = Field(8, ge=1)
    mem_gb: int = Field(64, ge=1)
    timeout_min: int = Field(240, ge=1)


def runs_as_job(executor: ExecutorSpec, stage: str) -> bool:
    """Whether ``stage`` is sent as a submitit job (else it runs in the pipeline's process)."""
    from stages import REGISTRY

    jobs = executor.stages if executor.stages is not None else [n for n, s in REGISTRY.items() if s.accelerated]
    return executor.type != "local" and stage in jobs


def runs_on_this_machine(executor: ExecutorSpec, stage: str) -> bool:
    """Whether ``stage`` runs on the machine that loads the recipe: in the pipeline's process, or as a local job."""
    return executor.type != "slurm" or not runs_as_job(executor, stage)


def run_stage(executor: ExecutorSpec, stage: str, ctx: StageContext, inputs: dict[str, Any], params: Any) -> dict:
    """Run one stage where the executor says and return its result."""
    from stages import REGISTRY

    if not runs_as_job(executor, stage):
        return REGISTRY[stage].run(ctx, inputs, params) or {}
    require("submitit", "pip install submitit")
    import submitit

    folder = ctx.out_dir / "jobs"
    job_executor = submitit.AutoExecutor(folder=folder, cluster="slurm" if executor.type == "slurm" else "local")
    settings: dict[str, Any] = {
        "name": f"dapt-{ctx.recipe}-{ctx.node}",
        "timeout_min": executor.timeout_min,
        "gpus_per_node": executor.gpus_per_node,
        "cpus_per_task": executor.cpus_per_task,
    }
    if executor.type == "slurm":
        settings |= {"mem_gb": executor.mem_gb, "tasks_per_node": 1, "nodes": 1}
        settings |= {
            f"slurm_{key}": value
            for key, value in (("partition", executor.partition), ("account", executor.account), ("qos", executor.qos))
            if value
        }
    job_executor.update_parameters(**settings)
    job = job_executor.submit(
        _job, stage, str(ctx.out_dir), ctx.node, ctx.recipe, inputs, params.model_dump(mode="json")
    )
    ctx.log.info("%s submitted as %s job %s; logs in %s", ctx.node, executor.type, job.job_id, folder)
    try:
        return job.result()
    except Exception as exc:  # submitit re-raises the job's failure with its traceback
        raise StageError(f"{ctx.node}: {executor.type} job {job.job_id} failed: {exc}") from exc


def _job(stage: str, out_dir: str, node: str, recipe: str, inputs: dict[str, Any], params: dict) -> dict:
    """The job's body, on the compute node: log to the job's output, then run the stage there."""
    import logging

    from stages.lib.launch import run_here

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return run_here(stage, out_dir, node, recipe, inputs, params)
