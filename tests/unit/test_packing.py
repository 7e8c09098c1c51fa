"""Packed CPT blocks keep document boundaries: positions restart, attention stops, no cross-document target."""

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from stages.lib.packed_blocks import PackedBlocks, one_row_collator
from stages.pack import write_blocks


def _pack(tmp_path, lengths, seq_len):
    tokens = np.arange(100, 100 + sum(lengths), dtype=np.uint16)
    ends = np.cumsum(lengths)
    stats = write_blocks(tokens, ends, seq_len, tmp_path, "domain_train")
    return stats, PackedBlocks(tmp_path, [("domain_train", row) for row in range(stats["blocks"])])


def _tiny_llama(vocab_size):
    """A two-layer Llama with SDPA, in eval mode, the same random weights at every call."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, attn_implementation="sdpa", use_cache=False,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


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
    model = _tiny_llama(vocab_size=64)
    doc_a, doc_b = torch.randint(0, 64, (1, 5)), torch.randint(0, 64, (1, 7))
    packed = torch.cat([doc_a, doc_b], dim=1)
    positions = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        together = model(input_ids=packed, position_ids=positions).logits[:, 5:]
        alone = model(input_ids=doc_b).logits
        crossing = model(input_ids=packed).logits[:, 5:]  # plain causal attention sees document a
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(crossing, alone, atol=1e-3)


def test_one_row_batches_for_flash_attention_train_on_the_same_targets_with_the_same_loss(tmp_path):
    """FlashAttention keeps packed documents apart only in a batch of one row: cpt flattens its micro-batches for it.
    The flattened batch must score every token as the batch of separate blocks does, on the same targets."""
    from transformers import default_data_collator

    _, blocks = _pack(tmp_path, [5, 9, 3, 7, 4, 4], 8)  # 4 blocks of 8; documents cross block boundaries
    features = [blocks[i] for i in range(4)]
    rows, flat = default_data_collator(features), one_row_collator(features)
    assert flat["input_ids"].shape == (1, 32) and flat["position_ids"][0, 8].item() == 0
    assert flat["labels"][0, ::8].tolist() == [-100] * 4  # a block's first token: never a target, flattened or not
    model = _tiny_llama(vocab_size=128)
    rows["input_ids"], flat["input_ids"] = rows["input_ids"] - 100, flat["input_ids"] - 100  # into the vocabulary
    for batch in (rows, flat):
        batch["labels"] = torch.where(batch["labels"] >= 0, batch["labels"] - 100, batch["labels"])
    with torch.no_grad():
        separate, together = model(**rows), model(**flat)
    torch.testing.assert_close(together.logits.reshape(4, 8, -1), separate.logits, atol=1e-5, rtol=1e-4)
    assert abs(float(together.loss) - float(separate.loss)) < 1e-6


def test_probe_documents_come_first_and_cpt_always_trains_on_them(tmp_path, tiny_model):
    """The corpus marks the documents a closed-book probe asks about; pack puts them first (datatrove
    tokenizes them apart), and cpt's stream always holds their blocks, whatever the budget leaves."""
    import json

    from transformers import AutoTokenizer

    from stages.base import StageContext
    from stages.cpt import CptParams, build_stream
    from stages.lib.corpus_engine import PROBE_FIELD
    from stages.pack import PackParams, tokenize
    from stages.pack import run as pack_run

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    words = ["licensee", "shall", "retain", "the", "notice", "in", "every", "copy", "of", "the", "work"]
    texts = [f"section {i}: " + " ".join(words[i % 5 :] * 6) for i in range(40)]
    docs = [{"id": f"d{i}", "text": text, "source": "s"} for i, text in enumerate(texts)]
    for doc in docs[17:20]:
        doc[PROBE_FIELD] = True
    for kind in ("domain", "general"):
        for split in ("train", "validation"):
            rows = docs if (kind, split) == ("domain", "train") else docs[:4]
            (corpus / f"{kind}_{split}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in rows))
    (corpus / "stats.json").write_text(json.dumps({"probe_documents": {"domain": 3}}))

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    probe_text = [doc["text"] for doc in docs[17:20]]
    probe_length = sum(len(tokenizer(text)["input_ids"]) + 1 for text in probe_text)  # EOS after each
    work = tmp_path / "work"
    tokens, ends, probe_tokens = tokenize(
        corpus, "domain", "train", tiny_model / "tokenizer.json", tokenizer.eos_token, work, 0
    )
    assert probe_tokens == probe_length and len(ends) == 40
    head = tokenizer.decode(np.asarray(tokens[:probe_tokens]), skip_special_tokens=True)
    assert all(text in head for text in probe_text)  # the probe's documents, and only they, come first
    assert not any(doc["text"] in head for doc in docs if doc["text"] not in probe_text)

    ctx = StageContext(out_dir=tmp_path / "pack")
    result = pack_run(ctx, {"corpus": corpus, "tokenizer": str(tiny_model)}, PackParams(seq_len=16))
    packed = result["outputs"]["packed"]
    entry = json.loads((packed / "pack.json").read_text())["sets"]["domain_train"]
    assert entry["probe_blocks"] == -(-probe_length // 16) and entry["probe_tokens"] == probe_length
    probe_rows = set(range(entry["probe_blocks"]))
    for budget_blocks in (entry["probe_blocks"] + 3, entry["probe_blocks"] - 1):
        params = CptParams(
            max_tokens=16 * budget_blocks, seq_len=16, replay_ratio=0.0, batch_size=1, micro_batch_size=1
        )
        blocks, _, info = build_stream(packed, params)
        chosen = {row for _, row in blocks.rows}
        assert len(chosen) == budget_blocks == len(blocks.rows)
        assert info["domain_probe_blocks"] == entry["probe_blocks"]
        assert info["domain_probe_blocks_trained"] == min(budget_blocks, entry["probe_blocks"])
        assert probe_rows <= chosen or chosen < probe_rows


def test_pack_sources_choose_the_training_documents_and_keep_every_held_out_one(tmp_path, tiny_model):
    """Two packs of one corpus that train on different sources (plain vs interlinear CPT) are measured on the
    same held-out blocks; a source the corpus lacks is refused by name."""
    import json

    import pytest

    from stages.base import StageContext, StageError
    from stages.pack import PackParams
    from stages.pack import run as pack_run

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = {
        source: [{"id": f"{source}{i}", "text": f"{source} text number {i} " * 8, "source": source} for i in range(6)]
        for source in ("plain", "interlinear", "replay")
    }
    for kind, split in (("domain", "train"), ("domain", "validation"), ("general", "train"), ("general", "validation")):
        docs = rows["replay"] if kind == "general" else rows["plain"] + rows["interlinear"]
        (corpus / f"{kind}_{split}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (corpus / "stats.json").write_text(json.dumps({"sources": {name: {} for name in rows}}))

    def packed(sources):
        out = tmp_path / f"pack-{sources}"
        params = PackParams(seq_len=16, sources=sources)
        result = pack_run(StageContext(out_dir=out), {"corpus": corpus, "tokenizer": str(tiny_model)}, params)
        return json.loads((result["outputs"]["packed"] / "pack.json").read_text())

    everything = packed(None)
    plain = packed(["plain", "replay"])
    assert plain["sets"]["domain_train"]["documents"] == 6 == everything["sets"]["domain_train"]["documents"] // 2
    assert plain["sets"]["domain_validation"] == everything["sets"]["domain_validation"]
    assert plain["sets"]["general_train"] == everything["sets"]["general_train"]
    assert plain["sources"] == ["plain", "replay"] and "sources" not in everything
    with pytest.raises(StageError, match=r"\['bible'\] are not sources of this corpus"):
        packed(["bible", "replay"])
