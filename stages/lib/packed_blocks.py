"""The pack stage's blocks, as the training stages read them: memory-mapped rows, their training targets.

The pack stage writes ``<set>.input_ids.npy`` and ``<set>.position_ids.npy`` (blocks of ``seq_len``,
position ids restarting at every document) and ``pack.json``; cpt and the plan proxies read them here,
so neither imports the pack stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stages.base import StageError

ROWS_PER_CHUNK = 4096
"""Blocks handled per step, writing or counting: bounds memory whatever the stream's length."""


def target_count(positions: Any) -> int:
    """Training targets among blocks' position ids: every token but a document's first one past a block start."""
    return int(positions.size - (positions == 0).sum() + len(positions))


class PackedBlocks:
    """Rows of the pack stage's memory-mapped blocks, in a chosen order, as training examples.

    Labels are the input ids except at a document's first token (``position_ids`` 0 past the block's
    start): predicting it from the previous document's text would teach noise."""

    def __init__(self, packed: Path, rows: list[tuple[str, int]]) -> None:
        import numpy as np

        names = sorted({name for name, _ in rows})
        self.arrays = {
            name: (
                np.load(packed / f"{name}.input_ids.npy", mmap_mode="r"),
                np.load(packed / f"{name}.position_ids.npy", mmap_mode="r"),
            )
            for name in names
        }
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import numpy as np
        import torch

        name, row = self.rows[index]
        ids, positions = self.arrays[name]
        input_ids = torch.from_numpy(np.asarray(ids[row], dtype=np.int64))
        position_ids = torch.from_numpy(np.asarray(positions[row], dtype=np.int64))
        labels = input_ids.clone()
        starts = position_ids == 0
        starts[0] = False
        labels[starts] = -100
        return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}

    def target_tokens(self) -> int:
        """Tokens that are training targets (every token but documents' first ones past a block start)."""
        total = 0
        for name, (_, positions) in self.arrays.items():
            chosen = [row for n, row in self.rows if n == name]
            for first in range(0, len(chosen), ROWS_PER_CHUNK):
                total += target_count(positions[sorted(chosen[first : first + ROWS_PER_CHUNK])])
        return total


def one_row_collator(features: list[dict[str, Any]]) -> dict[str, Any]:
    """A micro-batch of blocks as one row, for FlashAttention: transformers runs its varlen kernel, which keeps
    the documents of a row apart by their position ids, only for a batch of one row, and plain causal attention
    across the documents of each row otherwise. Every block starts a document (position 0), so the block
    boundaries stay boundaries. Each block's first label becomes -100: flattened, it would be the target of the
    previous block's last token, which the batch of separate rows never trains on; the targets stay the same."""
    from transformers import default_data_collator

    batch = default_data_collator(features)
    if bool((batch["position_ids"][:, 0] != 0).any()):
        raise StageError("a packed block does not start at position 0; rerun the pack stage")
    labels = batch["labels"].clone()
    labels[:, 0] = -100
    return {
        "input_ids": batch["input_ids"].reshape(1, -1),
        "labels": labels.reshape(1, -1),
        "position_ids": batch["position_ids"].reshape(1, -1),
    }


def read_pack(packed: Path, seq_len: int) -> dict[str, Any]:
    """The pack stage's stats, after checking it was cut at this sequence length."""
    info = json.loads((packed / "pack.json").read_text(encoding="utf-8"))
    if info["seq_len"] != seq_len:
        raise StageError(f"cpt.seq_len={seq_len}, but the packed corpus at {packed} has blocks of {info['seq_len']}")
    return info
