"""GPU paths: marked ``gpu`` and skipped without CUDA (tests/conftest.py). Run on a GPU machine with
``pytest -m gpu tests/gpu``."""

import importlib.util
import json
import math

import pytest
import torch

from stages import cpt, sft
from stages.base import StageContext
from stages.evaluate import choose_backend
from stages.lib.modeling import attention_implementation
from tests.integration.test_distributed import _packed

pytestmark = pytest.mark.gpu


def _cuda_llama():
    """A two-layer Llama on the GPU, the same random weights at every call."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, use_cache=False)  # fmt: skip
    return LlamaForCausalLM(config).cuda()


def _run_cpt(tmp_path, tiny_model, params):
    """The cpt stage on the tiny model and ``_packed``'s blocks."""
    out = tmp_path / "out"
    out.mkdir()
    packed = _packed(tmp_path / "c", tiny_model)
    return cpt.run(StageContext(out_dir=out), {"model": str(tiny_model), "packed": str(packed)}, params)


def test_cpt_trains_in_bf16_with_packed_masks_on_cuda(tmp_path, tiny_model):
    params = cpt.CptParams(max_tokens=1024, seq_len=64, batch_size=4, micro_batch_size=4, eval_every=2,
                           eval_tokens=128, save_every=2, learning_rate=1e-3)  # fmt: skip
    result = _run_cpt(tmp_path, tiny_model, params)
    assert result["metrics"]["bf16"] is True
    assert json.loads((result["outputs"]["model"] / "config.json").read_text())["model_type"] == "llama"


def test_packed_attention_stays_inside_documents_on_cuda():
    model = _cuda_llama().eval()
    a, b = torch.randint(0, 64, (1, 5), device="cuda"), torch.randint(0, 64, (1, 7), device="cuda")
    positions = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6]], device="cuda")
    with torch.no_grad():
        together = model(input_ids=torch.cat([a, b], 1), position_ids=positions).logits[:, 5:]
        alone = model(input_ids=b).logits
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-3)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is an optional extra")
def test_eval_backend_is_vllm_where_installed():
    assert choose_backend("auto") == "vllm"


needs_liger = pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is None, reason="liger-kernel not installed")
needs_flash = pytest.mark.skipif(importlib.util.find_spec("flash_attn") is None, reason="flash-attn not installed")


@needs_flash
def test_flash_attention_keeps_the_documents_of_several_blocks_apart_in_one_row():
    """transformers runs FlashAttention's varlen kernel only for a one-row batch: cpt flattens its micro-batches."""
    from stages.lib.packed_blocks import one_row_collator

    model = _cuda_llama().to(torch.bfloat16).eval()
    positions = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8]])
    ids = torch.randint(0, 64, (2, 12))
    features = [{"input_ids": ids[r], "labels": ids[r], "position_ids": positions[r]} for r in range(2)]
    flat = {k: v.cuda() for k, v in one_row_collator(features).items()}
    with torch.no_grad():
        model.set_attn_implementation("sdpa")
        separate = model(input_ids=ids.cuda(), position_ids=positions.cuda()).logits
        model.set_attn_implementation("flash_attention_2")
        together = model(input_ids=flat["input_ids"], position_ids=flat["position_ids"]).logits.reshape(2, 12, -1)
    torch.testing.assert_close(together.float(), separate.float(), atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("attention", ["sdpa", "sdpa_documents", "flex_attention"])
def test_each_attention_keeps_packed_documents_apart_on_cuda_at_any_length(attention):
    """Rows of 5 + 7 + 11 tokens: sft's padding-free rows have any length, not a multiple of a kernel's block."""
    model = _cuda_llama()
    lengths = (5, 7, 11)
    ids = torch.randint(0, 64, (1, sum(lengths)), device="cuda")
    positions = torch.cat([torch.arange(n) for n in lengths])[None].cuda()
    model.set_attn_implementation("sdpa")
    with torch.no_grad():
        alone, start = [], 0
        for n in lengths:
            alone.append(model(input_ids=ids[:, start : start + n]).logits)
            start += n
    model.set_attn_implementation(attention_implementation(attention))
    out = model(input_ids=ids, position_ids=positions, labels=ids)
    out.loss.backward()
    torch.testing.assert_close(out.logits, torch.cat(alone, 1), atol=1e-4, rtol=1e-3)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    "levers",
    [
        {"attention": "flex_attention"},
        {"attention": "sdpa_documents"},
        pytest.param({"attention": "flash_attention_2"}, marks=needs_flash),
        {"torch_compile": True},
        pytest.param({"liger": True}, marks=needs_liger),
        pytest.param({"liger": True, "torch_compile": True, "attention": "flex_attention"}, marks=needs_liger),
    ],
    ids=["flex", "per-document-sdpa", "flash-attn", "compile", "liger", "all-three"],
)
def test_cpt_trains_with_each_kernel_lever_and_records_it_on_cuda(tmp_path, tiny_model, levers):
    from transformers.models.llama import modeling_llama

    rope = modeling_llama.apply_rotary_pos_emb
    params = cpt.CptParams(max_tokens=1024, seq_len=64, batch_size=4, micro_batch_size=4, eval_every=2,
                           eval_tokens=128, learning_rate=1e-3, **levers)  # fmt: skip
    result = _run_cpt(tmp_path, tiny_model, params)
    runtime = result["metrics"]["runtime"]
    assert {key: runtime[key] for key in levers} == levers
    assert math.isfinite(result["metrics"]["final_eval_domain_loss"])
    assert modeling_llama.apply_rotary_pos_emb is rope  # Liger's process-wide patch ended with the stage


@pytest.mark.skipif(importlib.util.find_spec("trl") is None, reason="trl not installed")
@pytest.mark.parametrize("levers", [{"attention": "flex_attention"}, pytest.param({"liger": True}, marks=needs_liger)])
def test_sft_trains_padding_free_with_each_kernel_lever_on_cuda(tmp_path, tiny_model, levers):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    pairs = [
        {"prompt": [{"role": "user", "content": f"Which licence is number {i}?"}],
         "completion": [{"role": "assistant", "content": "The MIT licence" + " again" * (i % 5)}]}
        for i in range(16)
    ]  # fmt: skip
    (corpus / "sft_train.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    out = tmp_path / "out"
    out.mkdir()
    params = sft.SftParams(batch_size=4, micro_batch_size=4, max_pairs=16, **levers)
    result = sft.run(StageContext(out_dir=out), {"model": str(tiny_model), "corpus": str(corpus)}, params)
    runtime = result["metrics"]["runtime"]
    assert {key: runtime[key] for key in levers} == levers
    assert math.isfinite(result["metrics"]["last_loss"])
