"""Shared model plumbing for stages: device and precision choice, loading, saving with a model card.

Every model a stage writes is a normal Hugging Face folder (safetensors, tokenizer, README.md
model card saying how it was made) that ``from_pretrained`` loads.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True where the CPU multiplies bf16 natively (AMX or AVX512-BF16).

    Measured: with AMX, bf16 autocast trains SmolLM2-135M about 2x faster than fp32; on a CPU
    without it (an AVX2-only EPYC here) a bf16 matmul ran about 500x slower than fp32, so bf16
    must never be a blind default on CPU.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(flag in flags for flag in (" amx_bf16", " avx512_bf16"))


def device_and_precision() -> tuple[str, bool]:
    """(device, use_bf16): CUDA with bf16 when present, else CPU with bf16 only where it is fast."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.cuda.is_bf16_supported()
    return "cpu", cpu_has_fast_bf16()


def attention_implementation(requested: str | None = None) -> str:
    """The attention implementation a model loads with: ``requested`` (a name ``training_kernels.Attention``
    allows, checked there), else the machine's default. The default is FlashAttention 2 on CUDA where the package
    is installed (varlen kernels for packed blocks), SDPA on other CUDA machines, and on CPU SDPA called once per
    document of a packed row (``document_attention``).

    Measured on the 2-core AVX2 machine with SmolLM2-135M (``bench/attention_throughput.py``, forward and
    backward of one micro-batch, the two taking turns): cpt's 2 x 512 blocks 83.5 -> 97.1 tokens/s, a
    padding-free sft row of 4 pairs 97.4 -> 107.1, the loss equal to 5e-7. On CUDA the per-document loop
    is unmeasured, so it is not the default there."""
    import importlib.util

    import torch

    from stages.lib import document_attention

    if requested == document_attention.NAME or (requested is None and not torch.cuda.is_available()):
        return document_attention.register()
    if requested is not None:
        return requested
    return "flash_attention_2" if importlib.util.find_spec("flash_attn") is not None else "sdpa"


def runtime_choices(bf16: bool | None = None, attention: str | None = None) -> dict[str, str]:
    """What this process chose at run time and no recipe key says: device, precision, attention kernel.

    Stages put it in their metrics (so in the manifest, which ``explain`` shows): two results of one
    key made on different hardware can differ in their last digits, and this says why.
    ``bf16``: the precision a Trainer actually used, where it differs from the default choice;
    ``attention``: the kernel of a model another library loaded (lm-eval's), where it differs from ours."""
    device, default_bf16 = device_and_precision()
    return {
        "device": device,
        "precision": "bf16" if (default_bf16 if bf16 is None else bf16) else "fp32",
        "attention": attention or attention_implementation(),
    }


def load_model(path: str, trust_remote_code: bool = False, dtype: Any = None, attention: str | None = None) -> Any:
    """``AutoModelForCausalLM.from_pretrained`` on a local folder, fp32 weights unless told otherwise
    (mixed precision comes from the Trainer's bf16 autocast), with ``attention_implementation(attention)``."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        path,
        dtype=dtype or torch.float32,
        trust_remote_code=trust_remote_code,
        attn_implementation=attention_implementation(attention),
    )


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def save_model(model: Any, tokenizer: Any, out: Path, card: str, details: dict[str, Any] | None = None) -> Path:
    """Save a loadable HF folder with safetensors, tokenizer and a model card."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    write_model_card(out, card, details)
    return out


def write_model_card(out: Path, card: str, details: dict[str, Any] | None = None) -> None:
    text = f"# {out.parent.name}/{out.name}\n\n{card.strip()}\n"
    if details:
        text += (
            "\n## How it was made\n\n```json\n" + json.dumps(details, indent=2, sort_keys=True, default=str) + "\n```\n"
        )
    (out / "README.md").write_text(text, encoding="utf-8")


def build_from_config(shape: dict[str, Any], tokenizer: Any, out: Path, seed: int = 0) -> dict[str, int]:
    """A model of ``shape`` (config keys; ``model_type`` default llama) with random weights (``seed``), sized to
    ``tokenizer``'s vocabulary, saved with the tokenizer in ``out``. Returns its parameter counts: all, and
    without the embedding tables (what Kaplan et al. found scaling laws follow at small sizes)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    special = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = AutoConfig.for_model(**{**special, **shape, "model_type": shape.get("model_type", "llama")})
    if config.vocab_size < len(tokenizer):
        raise ValueError(f"vocab_size {config.vocab_size} is under the tokenizer's {len(tokenizer)} tokens")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    parameters = sum(p.numel() for p in model.parameters())
    embeddings = {id(m.weight): m.weight.numel() for m in (model.get_input_embeddings(), model.get_output_embeddings())}
    return {"parameters": parameters, "non_embedding": parameters - sum(embeddings.values())}
