"""Model merging with mergekit: the domain model with the original instruct model, over the base.

The stage writes the mergekit YAML into its output (``mergekit.yaml``, runnable by hand with
``mergekit-yaml``) and runs it through mergekit's Python API. Default: TIES of the domain (sft)
model and the instruct model over the base, as the SEC-finance study did. When the instruct model
*is* the base (the embedded default: SmolLM2-135M-Instruct is both), its task vector is zero and
it is left out; TIES then keeps the top ``density`` share of the domain delta, a partial return
towards the base that trades a little domain gain for less forgetting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from stages.base import Params, StageContext, StageError, StageSpec, require
from stages.modeling import write_model_card


class MergeParams(Params):
    method: Literal["ties", "slerp", "linear"] = "ties"
    """ties: sign-consensus of trimmed task vectors; slerp: spherical blend of two; linear: weighted mean."""
    domain_weight: float = Field(1.0, gt=0)
    """ties/linear: weight of the domain model."""
    instruct_weight: float = Field(1.0, gt=0)
    """ties/linear: weight of the instruct model."""
    density: float = Field(0.5, gt=0, le=1)
    """ties: share of each task vector's largest entries kept."""
    t: float = Field(0.5, ge=0, le=1)
    """slerp: 0 is the instruct model, 1 the domain model."""
    trust_remote_code: bool = False


def merge_config(domain: str, instruct: str, base: str, params: MergeParams) -> dict[str, Any]:
    """The mergekit configuration for the chosen method."""
    same = Path(instruct).resolve() == Path(base).resolve()
    if params.method == "ties":
        models = [{"model": domain, "parameters": {"weight": params.domain_weight, "density": params.density}}]
        if not same:
            models.append(
                {"model": instruct, "parameters": {"weight": params.instruct_weight, "density": params.density}}
            )
        return {
            "merge_method": "ties",
            "base_model": base,
            "models": models,
            "parameters": {"normalize": True},
            "dtype": "float32",
        }
    if params.method == "slerp":
        return {
            "merge_method": "slerp",
            "base_model": instruct,
            "models": [{"model": instruct}, {"model": domain}],
            "parameters": {"t": params.t},
            "dtype": "float32",
        }
    return {
        "merge_method": "linear",
        "models": [
            {"model": domain, "parameters": {"weight": params.domain_weight}},
            {"model": instruct, "parameters": {"weight": params.instruct_weight}},
        ],
        "dtype": "float32",
    }


def run(ctx: StageContext, inputs: dict[str, Any], params: MergeParams) -> dict[str, Any]:
    require("mergekit", "pip install mergekit==0.1.5")
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    config = merge_config(inputs["model"], inputs["instruct"], inputs["base"], params)
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
        f"{params.method.upper()} merge by mergekit of the domain model `{inputs['model']}` with the instruct "
        f"model `{inputs['instruct']}` over the base `{inputs['base']}` (config in ../mergekit.yaml).",
        {"mergekit_config": config},
    )
    return {"outputs": {"model": out}, "metrics": {"method": params.method, "models": len(config["models"])}}


SPEC = StageSpec(
    name="merge",
    version=1,
    params=MergeParams,
    inputs=("model", "instruct", "base"),
    run=run,
    doc="mergekit merge of the domain model with the instruct model (TIES by default).",
    libraries=("mergekit", "torch"),
)
