"""Packed CPT blocks keep document boundaries: positions restart, attention stops, no cross-document target."""

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from stages.cpt import PackedBlocks
from stages.pack import write_blocks


def _pack(tmp_path, lengths, seq_len):
    tokens = np.arange(100, 100 + sum(lengths), dtype=np.uint16)
    ends = np.cumsum(lengths)
    stats = write_blocks(tokens, ends, seq_len, tmp_path, "domain_train")
    return stats, PackedBlocks(tmp_path, [("domain_train", row) for row in range(stats["blocks"])])


def test_blocks_restart_positions_per_document_and_at_the_block_start(tmp_path):
    # Three documents of lengths 3, 4, 5 (EOS included) in blocks of 6.
    stats, blocks = _pack(tmp_path, [3, 4, 5], 6)
    first, second = blocks[0], blocks[1]
    assert first["position_ids"].tolist() == [0, 1, 2, 0, 1, 2]
    assert first["labels"].tolist() == [100, 101, 102, -100, 104, 105]
    # The second block starts with document two's last token: its positions restart at the block start.
    assert second["position_ids"].tolist() == [0, 0, 1, 2, 3, 4]
    assert second["labels"].tolist() == [106, -100, 108, 109, 110, 111]
    assert stats["blocks"] == 2 and stats["tail_tokens_dropped"] == 0 and stats["padding_tokens"] == 0
    assert stats["target_share"] == round(10 / 12, 6) and blocks.target_tokens() == 10


def test_tail_is_dropped_and_a_short_stream_fills_one_block(tmp_path):
    stats, _ = _pack(tmp_path, [5, 4], 4)
    assert stats["blocks"] == 2 and stats["tail_tokens_dropped"] == 1
    stats, blocks = _pack(tmp_path, [3], 8)  # held-out sets of tiny corpora: repeated, and said so
    assert stats["blocks"] == 1 and stats["repeated_to_fill_a_block"]
    assert blocks[0]["position_ids"].tolist() == [0, 1, 2, 0, 1, 2, 0, 1]


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
