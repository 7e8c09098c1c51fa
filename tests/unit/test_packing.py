"""Packed CPT blocks keep document boundaries: positions restart, attention stops, no cross-document target."""

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from stages.cpt import _blocks


def test_blocks_restart_positions_per_document_and_at_the_block_start():
    # Stream of three documents of lengths 3, 4, 5 (EOS included), cut into blocks of 6.
    stream = list(range(100, 112))
    positions = [0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4]
    first, second = _blocks(stream, positions, 6)
    assert first["position_ids"] == [0, 1, 2, 0, 1, 2]
    assert first["labels"] == [100, 101, 102, -100, 104, 105]
    # The second block starts with document two's last token: its positions restart at the block start.
    assert second["position_ids"] == [0, 0, 1, 2, 3, 4]
    assert second["labels"] == [106, -100, 108, 109, 110, 111]


def test_attention_does_not_cross_documents_in_a_packed_block():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, attn_implementation="sdpa", use_cache=False,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    doc_a, doc_b = torch.randint(0, 64, (1, 5)), torch.randint(0, 64, (1, 7))
    packed = torch.cat([doc_a, doc_b], dim=1)
    positions = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        together = model(input_ids=packed, position_ids=positions).logits[:, 5:]
        alone = model(input_ids=doc_b).logits
        crossing = model(input_ids=packed).logits[:, 5:]  # plain causal attention sees document a
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(crossing, alone, atol=1e-3)
