"""lm-eval's HF model, scoring the choices of one multiple-choice item with one pass over their shared context.

Why this exists: lm-eval's ``HFLM._loglikelihood_tokens`` runs one forward pass per (context, choice) pair
and reuses logits only when every choice is a single token (its own TODO asks for "efficient-request-middleware
that lumps together requests with the same context"). Our items carry contexts of 70-130 tokens and choices of
1-10 tokens, so four choices cost four passes over the same context. Here the contexts of a batch of items run
once (keeping the KV cache and the logits at each context's last token only), and then every choice of every
item in the batch runs in a second, short pass over the cached context. On the 2-core CPU machine that is
about 40% fewer tokens through the model per eval for the legal recipe's tasks (bench/README.md).

The scores are the same quantities lm-eval computes (sum of the continuation's token log-probabilities and
whether each token is the greedy one), up to float rounding; ``tests/unit/test_shared_context.py`` checks them
against lm-eval's own path on a tiny model. Requests that share no context with another one (bits-per-byte
windows), contexts longer than the model's window, and non-causal models go through lm-eval unchanged.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from lm_eval.models.huggingface import HFLM

Request = tuple[tuple[str, str] | None, list[int], list[int]]


class SharedContextHFLM(HFLM):
    """``HFLM`` whose loglikelihood requests that share a context reuse one pass over that context."""

    def _loglikelihood_tokens(
        self, requests: list[Request], disable_tqdm: bool = False, override_bs: int | None = None
    ) -> list[tuple[float, bool]]:
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, (_, context, _) in enumerate(requests):
            groups.setdefault(tuple(context), []).append(index)
        shared = [
            indices
            for indices in groups.values()
            if self.backend == "causal"
            and len(indices) > 1
            and max(len(requests[i][1]) + len(requests[i][2]) for i in indices) <= self.max_length
        ]
        in_shared = {i for indices in shared for i in indices}
        alone = [i for i in range(len(requests)) if i not in in_shared]
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        if alone:
            scored = super()._loglikelihood_tokens([requests[i] for i in alone], disable_tqdm, override_bs)
            for index, answer in zip(alone, scored, strict=True):
                results[index] = answer
        if shared:
            self._score_shared(requests, shared, results, disable_tqdm)
        return results  # type: ignore[return-value]  # every slot is filled by one of the two paths

    def _score_shared(
        self,
        requests: list[Request],
        groups: list[list[int]],
        results: list[tuple[float, bool] | None],
        disable_tqdm: bool,
    ) -> None:
        import torch
        from tqdm import tqdm

        batch = self.batch_size if isinstance(self.batch_size, int) and self.batch_size > 0 else 8
        groups = sorted(groups, key=lambda g: -len(requests[g[0]][1]))  # longest first: little padding
        accepted = inspect.signature(self.model.forward).parameters
        keeps_logits = "logits_to_keep" in accepted
        cache_name = "cache" if "cache" in accepted else "past_key_values"  # transformers 5.2x renamed it
        bar = tqdm(total=sum(map(len, groups)), disable=disable_tqdm, desc="Scoring choices over shared contexts")
        with torch.inference_mode():
            for first in range(0, len(groups), batch):
                chunk = groups[first : first + batch]
                scored = self._score_chunk(requests, chunk, keeps_logits, cache_name)
                for indices, answers in zip(chunk, scored, strict=True):
                    for index, answer in zip(indices, answers, strict=True):
                        results[index] = answer
                        if requests[index][0] is not None:
                            self.cache_hook.add_partial("loglikelihood", requests[index][0], answer)
                bar.update(sum(map(len, chunk)))
        bar.close()

    def _score_chunk(
        self, requests: list[Request], chunk: list[list[int]], keeps_logits: bool, cache_name: str
    ) -> list[list[tuple[float, bool]]]:
        """Two passes for a batch of items: their contexts (right-padded), then all their choices."""
        import torch
        import torch.nn.functional as F

        device = self.device
        contexts = [requests[g[0]][1] for g in chunk]
        lengths = torch.tensor([len(c) for c in contexts], device=device)
        width = int(lengths.max())
        ids = torch.full((len(chunk), width), self.tokenizer.pad_token_id or 0, dtype=torch.long, device=device)
        mask = torch.zeros((len(chunk), width), dtype=torch.long, device=device)
        for row, context in enumerate(contexts):
            ids[row, : len(context)] = torch.tensor(context, device=device)
            mask[row, : len(context)] = 1
        last = lengths - 1
        kwargs: dict[str, Any] = {"attention_mask": mask, "use_cache": True}
        if keeps_logits:  # the vocabulary projection only at each context's last token
            kept = torch.unique(last)
            kwargs["logits_to_keep"] = kept
            column = torch.searchsorted(kept, last)
        else:
            column = last
        out = self.model(ids, **kwargs)
        rows = torch.arange(len(chunk), device=device)
        first_logprobs = F.log_softmax(out.logits[rows, column].float(), dim=-1)  # [items, vocab]

        owners = [row for row, g in enumerate(chunk) for _ in g]
        continuations = [requests[i][2] for g in chunk for i in g]
        cache = getattr(out, cache_name)  # out.past_key_values warns of its deprecation where ``cache`` exists
        later: dict[int, Any] = {}  # row -> log-probs after each of the choice's tokens but its last
        for rows_of_batch in _length_batches([len(c) - 1 for c in continuations]):
            owner_index = torch.tensor([owners[r] for r in rows_of_batch], device=device)
            longest = len(continuations[rows_of_batch[0]]) - 1
            inputs = torch.zeros((len(rows_of_batch), longest), dtype=torch.long, device=device)
            for slot, row in enumerate(rows_of_batch):
                tokens = continuations[row][:-1]
                inputs[slot, : len(tokens)] = torch.tensor(tokens, device=device)
            copied = copy.deepcopy(cache)
            copied.reorder_cache(owner_index)  # one copy of each item's cached context per choice
            full_mask = torch.cat(
                [mask[owner_index], torch.ones((len(rows_of_batch), longest), dtype=torch.long, device=device)], dim=1
            )
            positions = lengths[owner_index].unsqueeze(1) + torch.arange(longest, device=device)
            logits = self.model(
                inputs, attention_mask=full_mask, position_ids=positions, use_cache=False, **{cache_name: copied}
            ).logits
            logprobs = F.log_softmax(logits.float(), dim=-1)  # [rows, longest, vocab]
            for slot, row in enumerate(rows_of_batch):
                later[row] = logprobs[slot, : len(continuations[row]) - 1]

        answers: list[list[tuple[float, bool]]] = [[] for _ in chunk]
        for row, (owner, continuation) in enumerate(zip(owners, continuations, strict=True)):
            stacked = first_logprobs[owner].unsqueeze(0)
            if row in later:
                stacked = torch.cat([stacked, later[row]])  # [len(continuation), vocab]
            tokens = torch.tensor(continuation, device=device)
            total = float(stacked.gather(1, tokens.unsqueeze(1)).sum())
            greedy = bool((stacked.argmax(dim=-1) == tokens).all())
            answers[owner].append((total, greedy))
        return answers


def _length_batches(lengths: list[int], slack: float = 0.75, spare: int = 8) -> list[list[int]]:
    """Row numbers with a positive length, longest first, cut into batches whose rows are each at least ``slack``
    times the batch's longest or within ``spare`` tokens of it: choices of a few tokens are not padded to the
    length of a long definition, and short ones do not each pay a pass of their own."""
    order = sorted((row for row, length in enumerate(lengths) if length > 0), key=lambda row: -lengths[row])
    batches: list[list[int]] = []
    for row in order:
        longest = lengths[batches[-1][0]] if batches else 0
        if batches and (lengths[row] >= slack * longest or longest - lengths[row] <= spare):
            batches[-1].append(row)
        else:
            batches.append([row])
    return batches
