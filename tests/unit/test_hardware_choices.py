"""What the stages choose for the hardware at hand, checked on this (CPU) machine; GPU paths are in tests/gpu."""

import pytest
import torch

from stages.base import StageError
from stages.evaluate import choose_backend
from stages.lib import document_attention
from stages.lib.launch import command
from stages.lib.modeling import attention_implementation
from stages.sft import SftParams, _quantized_model

needs_cpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallbacks")


@needs_cpu
def test_eval_backend_falls_back_to_hf_and_refuses_vllm_without_a_gpu():
    assert choose_backend("auto") == "hf" and choose_backend("hf") == "hf"
    with pytest.raises(StageError, match=r"eval\.backend=vllm needs a CUDA GPU and vllm"):
        choose_backend("vllm")


@needs_cpu
def test_multi_process_launch_on_cpu_is_torchrun_ddp(tmp_path):
    cmd = command("cpt", 2, "ddp", tmp_path / "args.json")
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert cmd[-4:] == ["-m", "stages.lib.launch", "cpt", str(tmp_path / "args.json")]
    with pytest.raises(StageError, match=r"cpt\.strategy=fsdp needs GPUs"):
        command("cpt", 2, "fsdp", tmp_path / "args.json")


@needs_cpu
def test_cpu_attention_is_per_document_sdpa_and_qlora_is_refused(tiny_model):
    assert attention_implementation() == document_attention.NAME
    with pytest.raises(StageError, match=r"bitsandbytes|sft.method=qlora needs a CUDA GPU"):
        _quantized_model(str(tiny_model), SftParams(method="qlora"))
