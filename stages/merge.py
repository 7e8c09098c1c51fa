"""Model merging with mergekit: the domain model with the original instruct model, over the base.

The stage writes the mergekit YAML into its output (``mergekit.yaml``, runnable by hand with
``mergekit-yaml``) and runs it through mergekit's Python API. Default: TIES of the domain (sft)
model and the instruct model over the base, as the SEC-finance study did. When the instruct model
*is* the base (the embedded default: SmolLM2-135M-Instruct is both), its task vector is zero and
it is left out; TIES then keeps the top ``density`` share of the domain delta, a partial return
towards the base that trades a little domain gain for less forgetting. A recipe's own merge node may bind
more domain models (``model@health: cpt_health.model``): TIES then merges every specialist's task vector,
as one model for several domains (``recipes/multi-domain.yaml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from stages.base import MODEL, Params, StageContext, StageError, StageSpec, Wiring, require
from stages.lib.modeling import write_model_card

TASK_VECTOR_METHODS = ("ties", "dare_ties", "task_arithmetic")
"""mergekit methods that add task vectors (model - base) to the base."""


class MergeParams(Params):
    method: Literal["ties", "dare_ties", "task_arithmetic", "slerp", "linear"] = "ties"
    """ties: sign-consensus of trimmed task vectors; dare_ties: the same with random drop and rescale (DARE);
    task_arithmetic: base + the sum of whole task vectors, with a cpt model of the base and an instruct model the
    chat vector (cpt + instruct - base); slerp: spherical blend of two; linear: weighted mean."""
    domain_weight: float = Field(1.0, gt=0)
    """ties, dare_ties, task_arithmetic, linear: weight of each domain model."""
    instruct_weight: float = Field(1.0, gt=0)
    """ties, dare_ties, task_arithmetic, linear: weight of the instruct model."""
    density: float = Field(0.5, gt=0, le=1)
    """ties: share of each task vector's largest entries kept; dare_ties: share of random entries kept."""
    t: float = Field(0.5, ge=0, le=1)
    """slerp: 0 is the instruct model, 1 the domain model."""
    trust_remote_code: bool = False


def merge_config(domains: list[str], instruct: str, base: str, params: MergeParams) -> dict[str, Any]:
    """The mergekit configuration for the chosen method; ``domains`` may hold several domain models (a legal and
    a health specialist), each weighted ``domain_weight``."""
    same = Path(instruct).resolve() == Path(base).resolve()
    if params.method == "slerp" and len(domains) > 1:
        raise StageError(f"merge.method: slerp blends two models, got {len(domains)} domain models; use ties or linear")
    if params.method in TASK_VECTOR_METHODS:
        sparse = params.method != "task_arithmetic"  # task arithmetic adds whole task vectors: the chat vector

        def entry(path: str, weight: float) -> dict[str, Any]:
            return {"model": path, "parameters": {"weight": weight, **({"density": params.density} if sparse else {})}}

        models = [entry(path, params.domain_weight) for path in domains]
        if not same:
            models.append(entry(instruct, params.instruct_weight))
        return {
            "merge_method": params.method,
            "base_model": base,
            "models": models,
            "parameters": {"normalize": sparse},
            "dtype": "float32",
        }
    if params.method == "slerp":
        return {
            "merge_method": "slerp",
            "base_model": instruct,
            "models": [{"model": instruct}, {"model": domains[0]}],
            "parameters": {"t": params.t},
            "dtype": "float32",
        }
    return {
        "merge_method": "linear",
        "models": [
            *({"model": path, "parameters": {"weight": params.domain_weight}} for path in domains),
            {"model": instruct, "parameters": {"weight": params.instruct_weight}},
        ],
        "dtype": "float32",
    }


def run(ctx: StageContext, inputs: dict[str, Any], params: MergeParams) -> dict[str, Any]:
    require("mergekit", "pip install mergekit==0.1.5")
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    domains = [inputs["model"], *(inputs[name] for name in sorted(inputs) if name.startswith("model@"))]
    config = merge_config(domains, inputs["instruct"], inputs["base"], params)
    (ctx.out_dir / "mergekit.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    out = ctx.out_dir / "model"
    try:
        run_merge(
            MergeConfiguration.model_validate(config),
            str(out),
            options=MergeOptions(
                copy_tokenizer=True, trust_remote_code=params.trust_remote_code, random_seed=0, quiet=True
            ),
        )
    except Exception as exc:  # mergekit raises plain exceptions; name the config that failed
        raise StageError(f"merge: mergekit failed on {ctx.out_dir / 'mergekit.yaml'}: {exc}") from exc
    if not (out / "config.json").exists():
        raise StageError(f"merge: mergekit wrote no model to {out}")
    write_model_card(
        out,
        f"{params.method.upper()} merge by mergekit of the domain model(s) {', '.join(f'`{d}`' for d in domains)} "
        f"with the instruct model `{inputs['instruct']}` over the base `{inputs['base']}` "
        "(config in ../mergekit.yaml).",
        {"mergekit_config": config},
    )
    return {"outputs": {"model": out}, "metrics": {"method": params.method, "models": len(config["models"])}}


SPEC = StageSpec(
    name="merge",
    version=1,
    params=MergeParams,
    inputs=("model", "instruct", "base"),
    input_prefixes=("model@",),  # more domain models merged with the first: model@health, model@finance
    wiring=Wiring(
        inputs={"model": MODEL, "instruct": "model.model", "base": "model.model"}, model="model", skippable=True
    ),
    accelerated=True,
    run=run,
    doc="mergekit merge of the domain model(s) with the instruct model (TIES by default).",
    libraries=("mergekit", "torch"),
)
