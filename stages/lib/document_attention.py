"""Attention over packed rows that computes each document on its own, instead of masking the others out.

Why this exists: cpt's blocks and sft's padding-free rows hold several documents, their position ids restarting
at each one. transformers turns that into a block-diagonal causal mask, and PyTorch's SDPA then computes the
whole ``L x L`` score matrix and throws most of it away; with a mask it also gives up grouped-query heads
(``repeat_kv`` copies the keys and values). FlashAttention's varlen kernels skip the masked blocks, but only on
CUDA (``torch.nn.attention.varlen`` and ``flash-attn`` both are CUDA-only; flex attention on CPU needs
``torch.compile``, minutes of compiling on 2 cores). So on CPU each document of a row goes to SDPA by itself,
causal and unmasked, which is the same arithmetic as the masked call restricted to the scores it keeps.

It is registered with transformers' ``AttentionInterface`` under ``NAME`` (with SDPA's mask builder), so a model
loaded with ``attn_implementation=NAME`` uses it. Anything that is not a packed row without padding (a padded
eval batch, a KV cache, one document per row) goes to transformers' own SDPA function unchanged.
"""

from __future__ import annotations

from typing import Any

NAME = "sdpa_documents"


def document_spans(position_ids: Any) -> list[list[tuple[int, int]]]:
    """Per row, the ``(start, end)`` of each document: a new one starts wherever the position does not go up by 1."""
    import torch

    starts = torch.ones_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] != position_ids[:, :-1] + 1
    spans = []
    length = position_ids.shape[1]
    for row in starts:
        first = row.nonzero().flatten().tolist()
        spans.append(list(zip(first, [*first[1:], length], strict=True)))
    return spans


def _causal_pairs(spans: list[list[tuple[int, int]]]) -> int:
    """How many (query, key) pairs a block-diagonal causal mask over these spans keeps."""
    return sum((end - start) * (end - start + 1) // 2 for row in spans for start, end in row)


def document_sdpa_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' attention-function signature; returns ``(output [batch, length, heads, dim], None)``."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    position_ids = kwargs.get("position_ids")
    spans = None
    if position_ids is not None and position_ids.ndim == 2 and query.shape[2] == key.shape[2] == position_ids.shape[1]:
        spans = document_spans(position_ids)
        if all(len(row) == 1 for row in spans):
            spans = None  # one document per row: SDPA's own causal path is already the fast one
        elif attention_mask is not None and (
            attention_mask.dtype != torch.bool
            or int(attention_mask.sum()) != _causal_pairs(spans) * attention_mask.shape[1]
        ):
            spans = None  # the mask holds more than document boundaries (padding): keep it
    if spans is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    grouped = query.shape[1] != key.shape[1]
    rows = []
    for row, row_spans in enumerate(spans):
        pieces = [
            torch.nn.functional.scaled_dot_product_attention(
                query[row : row + 1, :, start:end],
                key[row : row + 1, :, start:end],
                value[row : row + 1, :, start:end],
                dropout_p=dropout if module.training else 0.0,
                is_causal=True,
                scale=scaling,
                enable_gqa=grouped,
            )
            for start, end in row_spans
        ]
        rows.append(torch.cat(pieces, dim=2))
    return torch.cat(rows, dim=0).transpose(1, 2).contiguous(), None


def register() -> str:
    """Make ``NAME`` an attention implementation transformers knows (idempotent); returns ``NAME``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, document_sdpa_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME
