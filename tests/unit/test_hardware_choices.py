"""What the stages choose for the hardware at hand, checked on this (CPU) machine; GPU paths are in tests/gpu."""

import importlib.util

import pytest
import torch

from pipeline.recipe import RecipeError, load_recipe
from stages.base import StageError
from stages.evaluate import choose_backend
from stages.lib import continual_pretraining, document_attention
from stages.lib.launch import command
from stages.lib.modeling import attention_implementation
from stages.lib.training_kernels import KernelChoice, choose_kernels
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
        _quantized_model(str(tiny_model), SftParams(method="qlora"), "sdpa")


@needs_cpu
def test_cpu_kernels_default_to_per_document_sdpa_without_liger_or_compile():
    chosen = choose_kernels("cpt")
    assert chosen == KernelChoice(attention=document_attention.NAME, liger=False, torch_compile=False)
    assert chosen.trainer_arguments() == {"use_liger_kernel": False, "torch_compile": False}


@needs_cpu
def test_kernels_the_cpu_cannot_train_with_are_refused_at_recipe_load_naming_the_key():
    overrides = ["cpt.attention=flex_attention", "sft.liger=true", "sft.attention=flash_attention_2"]
    with pytest.raises(RecipeError) as info:
        load_recipe("legal", overrides)
    message = str(info.value)
    assert "3 problem(s)" in message
    assert "cpt.attention=flex_attention trains on CUDA only" in message and "use sdpa_documents" in message
    assert "sft.liger=true needs a CUDA GPU" in message
    assert "sft.attention=flash_attention_2 needs a CUDA GPU" in message
    with pytest.raises(StageError, match=r"cpt\.attention=flex_attention trains on CUDA only"):
        choose_kernels("cpt", attention="flex_attention")  # the same check where a stage runs (a Slurm job)


@needs_cpu
def test_kernels_are_checked_in_sweep_branches_and_only_where_the_stage_runs():
    with pytest.raises(RecipeError, match=r"sweep \(branch attention-flex_attention\): cpt\.attention=flex_attention"):
        load_recipe("legal", ['sweep={"cpt.attention": ["sdpa", "flex_attention"]}'])
    # a Slurm job checks its own machine when it starts; a local job (submitit_local) runs on this one
    assert load_recipe("legal", ["cpt.attention=flex_attention", "executor.type=slurm"]).params["cpt"].attention
    with pytest.raises(RecipeError, match=r"cpt\.attention=flex_attention trains on CUDA only"):
        load_recipe("legal", ["cpt.attention=flex_attention", "executor.type=submitit_local"])


def test_liger_patches_to_transformers_end_with_the_training_run(tiny_model):
    """Liger patches the model's transformers module and class for the whole process (on CUDA only, so here the
    same assignments its ``apply_liger_kernel_to_llama`` makes stand in for it); ``confined`` puts them back, even
    when training fails."""
    from transformers.models.llama import modeling_llama

    from stages.lib.modeling import load_model

    model = load_model(str(tiny_model), attention="sdpa")
    originals = (modeling_llama.apply_rotary_pos_emb, modeling_llama.LlamaRMSNorm, modeling_llama.LlamaMLP)
    forward = modeling_llama.LlamaForCausalLM.forward
    with pytest.raises(RuntimeError), KernelChoice("sdpa", liger=True, torch_compile=False).confined(model):
        modeling_llama.apply_rotary_pos_emb = modeling_llama.LlamaRMSNorm = modeling_llama.LlamaMLP = object
        modeling_llama.LlamaForCausalLM.forward = lambda self: None
        raise RuntimeError("training failed")
    assert (modeling_llama.apply_rotary_pos_emb, modeling_llama.LlamaRMSNorm, modeling_llama.LlamaMLP) == originals
    assert modeling_llama.LlamaForCausalLM.forward is forward


def test_an_unknown_attention_name_is_refused_with_the_allowed_ones():
    with pytest.raises(RecipeError, match=r"cpt\.attention.*'sdpa', 'sdpa_documents', 'flex_attention'"):
        load_recipe("legal", ["cpt.attention=flash"])


def test_kernel_keys_enter_the_cache_key_only_when_set():
    """Unset, they leave every stored cpt and sft result valid; set, the result is another one."""
    params = continual_pretraining.CptParams()
    assert not {"attention", "liger", "torch_compile"} & set(params.model_dump(mode="json"))
    chosen = params.model_copy(update={"attention": "sdpa", "torch_compile": False})
    assert chosen.model_dump(mode="json")["attention"] == "sdpa" and "torch_compile" in chosen.model_dump()


def test_cpt_loads_the_attention_a_recipe_names_and_records_its_kernels(tmp_path, tiny_model):
    import logging

    from tests.integration.test_distributed import _packed

    params = continual_pretraining.CptParams(
        max_tokens=256, seq_len=64, batch_size=2, micro_batch_size=2, eval_every=2, eval_tokens=64, attention="sdpa"
    )
    packed = _packed(tmp_path / "c", tiny_model)
    trainer, _, metrics = continual_pretraining.train(
        tmp_path / "out", str(tiny_model), packed, params, logging.getLogger("test")
    )
    assert trainer.model.config._attn_implementation == "sdpa"
    assert metrics["runtime"]["attention"] == "sdpa"
    liger_here = torch.cuda.is_available() and importlib.util.find_spec("liger_kernel") is not None
    assert metrics["runtime"]["liger"] is liger_here and metrics["runtime"]["torch_compile"] is False
