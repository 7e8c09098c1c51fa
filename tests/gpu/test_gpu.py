"""GPU paths: marked ``gpu`` and skipped without CUDA (tests/conftest.py). Run on a GPU machine with
``pytest -m gpu tests/gpu``."""

import importlib.util
import json

import pytest
import torch

from stages import cpt
from stages.base import StageContext
from stages.evaluate import choose_backend
from tests.integration.test_distributed import _packed

pytestmark = pytest.mark.gpu


def test_cpt_trains_in_bf16_with_packed_masks_on_cuda(tmp_path, tiny_model):
    params = cpt.CptParams(max_tokens=1024, seq_len=64, batch_size=4, micro_batch_size=4, eval_every=2,
                           eval_tokens=128, save_every=2, learning_rate=1e-3)  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    result = cpt.run(
        StageContext(out_dir=out),
        {"model": str(tiny_model), "packed": str(_packed(tmp_path / "c", tiny_model))},
        params,
    )
    assert result["metrics"]["bf16"] is True
    assert json.loads((result["outputs"]["model"] / "config.json").read_text())["model_type"] == "llama"


def test_packed_attention_stays_inside_documents_on_cuda():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, use_cache=False)  # fmt: skip
    model = LlamaForCausalLM(config).cuda().eval()
    a, b = torch.randint(0, 64, (1, 5), device="cuda"), torch.randint(0, 64, (1, 7), device="cuda")
    positions = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6]], device="cuda")
    with torch.no_grad():
        together = model(input_ids=torch.cat([a, b], 1), position_ids=positions).logits[:, 5:]
        alone = model(input_ids=b).logits
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-3)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is an optional extra")
def test_eval_backend_is_vllm_where_installed():
    assert choose_backend("auto") == "vllm"
