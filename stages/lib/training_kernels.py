"""Which kernels a training run uses: the attention implementation, Liger Kernel's fused layers and loss, and
``torch.compile``.

Each is a recipe key of cpt and sft (``attention``, ``liger``, ``torch_compile``) whose unset value lets the
machine decide; the choice goes into the stage's metrics, so into the manifest. A choice this machine cannot run
is refused before the model loads, naming the key and what would run. The defaults, and why:

- attention: on CUDA FlashAttention 2 where ``flash-attn`` is installed (varlen kernels keep packed documents
  apart without a mask), else SDPA with transformers' block-diagonal mask; on CPU SDPA once per document
  (``document_attention``, measured x1.16 on cpt's blocks). ``flex_attention`` (transformers builds a block mask
  from the position ids; the kernel skips masked blocks) is offered, not chosen: it is unmeasured on a GPU here,
  and on CPU PyTorch has no backward pass for it.
- liger: in cpt, on where CUDA and ``liger-kernel`` are both present (no default install pulls the package, so
  having it is the request). Its fused linear cross-entropy never builds the logits of a 49k-152k-word vocabulary;
  RMSNorm, RoPE and SwiGLU run fused. In sft, off unless asked: trl's SFTTrainer already computes the loss through
  its own fused LM head and applies only Liger's layer kernels. Its kernels are Triton's, which need a GPU (it has
  no CPU implementation). Liger patches transformers for the whole process; ``KernelChoice.confined`` undoes it.
- torch_compile: off. On the 2-core CPU machine compiling one training step of a two-layer test model took 37 s,
  and sft's padding-free rows change length at every step, which compiles again; on a GPU it is unmeasured here
  (``bench/gpu_run.sh`` measures it).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from stages.base import StageError
from stages.lib.modeling import attention_implementation, runtime_choices

Attention = Literal["sdpa", "sdpa_documents", "flex_attention", "flash_attention_2"]
"""What a recipe may name: transformers' SDPA with the block-diagonal mask, SDPA once per document
(``document_attention``), PyTorch's flex attention, FlashAttention 2 (the ``flash-attn`` package)."""


@dataclass(frozen=True)
class KernelChoice:
    """The kernels one training run uses."""

    attention: str
    liger: bool
    torch_compile: bool

    def trainer_arguments(self) -> dict[str, Any]:
        """The ``TrainingArguments`` (trl's ``SFTConfig`` too) that turn Liger and compilation on."""
        return {"use_liger_kernel": self.liger, "torch_compile": self.torch_compile}

    def runtime(self, bf16: bool) -> dict[str, Any]:
        """What the run chose, for the stage's metrics: ``runtime_choices`` with this attention, Liger, compile."""
        return runtime_choices(bf16, self.attention) | {"liger": self.liger, "torch_compile": self.torch_compile}

    @contextmanager
    def confined(self, model: Any) -> Iterator[None]:
        """Around a trainer's life: with Liger, the model's transformers module and class are put back as they were.

        Liger patches them for the whole process (``modeling_llama.apply_rotary_pos_emb``, the RMSNorm and MLP
        classes that models built later pick up), so without this a later stage in the same process (sft after a
        Liger cpt, the eval's model, the plan stage's next proxy) would run Liger's layers while its manifest says
        ``liger: false``. The trained model keeps its own patched layers; its weights are the same tensors."""
        if not self.liger:
            yield
            return
        module, cls = sys.modules[type(model).__module__], type(model)
        saved_module, saved_class = dict(vars(module)), dict(vars(cls))
        try:
            yield
        finally:
            for name, value in saved_module.items():
                if vars(module).get(name) is not value:
                    setattr(module, name, value)
            for name, value in saved_class.items():
                if vars(cls).get(name) is not value:
                    setattr(cls, name, value)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def kernel_problems(stage: str, attention: str | None, liger: bool | None) -> list[str]:
    """Why the kernels a recipe names for ``stage`` cannot train on this machine, each naming ``stage.key``; empty
    when they can, or when none is named (torch is imported only then)."""
    if attention not in ("flash_attention_2", "flex_attention") and not liger:
        return []
    import torch

    cuda = torch.cuda.is_available()
    problems = []
    if attention == "flash_attention_2" and not (cuda and _installed("flash_attn")):
        missing = "the flash-attn package (pip install flash-attn)" if cuda else "a CUDA GPU"
        problems.append(f"{stage}.attention=flash_attention_2 needs {missing}")
    if attention == "flex_attention" and not cuda:
        problems.append(
            f"{stage}.attention=flex_attention trains on CUDA only: PyTorch has no flex-attention backward pass on "
            "CPU; use sdpa_documents (SDPA once per document)"
        )
    if liger and not cuda:
        problems.append(f"{stage}.liger=true needs a CUDA GPU: Liger Kernel's kernels are Triton kernels")
    elif liger and not _installed("liger_kernel"):
        problems.append(f"{stage}.liger=true needs the liger-kernel package (pip install liger-kernel)")
    here = "this machine has a CUDA GPU" if cuda else "this machine has no CUDA GPU"
    return [f"{problem} ({here}); or leave the key unset to let the machine choose" for problem in problems]


def choose_kernels(
    stage: str,
    attention: str | None = None,
    liger: bool | None = None,
    torch_compile: bool | None = None,
    liger_by_default: bool = True,
) -> KernelChoice:
    """The kernels for a training run of ``stage``: each given choice checked against this machine, each unset one
    chosen for it (Liger only where ``liger_by_default``). Raises ``StageError`` (``kernel_problems``) for a choice
    that cannot run here."""
    import torch

    if problems := kernel_problems(stage, attention, liger):
        raise StageError("; ".join(problems))
    return KernelChoice(
        attention=attention_implementation(attention),
        liger=(liger_by_default and torch.cuda.is_available() and _installed("liger_kernel"))
        if liger is None
        else liger,
        torch_compile=bool(torch_compile),
    )
