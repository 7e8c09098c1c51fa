"""Batched greedy generation behind one call, ``generate(prompts, max_new_tokens, stop)``: vllm or transformers.

The document-level translation decoders need many short greedy generations whose prompts depend on
earlier outputs, outside lm-eval's request model; this is the thin wrapper they call. vllm (GPU, the
``gpu`` extra) batches and caches prefixes itself; with transformers, prompts are sorted by length and
generated in left-padded batches, so a batch wastes little on padding. Both backends see the same tokens
(no special tokens added, as lm-eval's generation tasks do) and stop on the generated text alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import StoppingCriteria, StoppingCriteriaList

STOP_TAIL_TOKENS = 16
"""Generated tokens decoded at each step to look for the stop string (a stop string spans a few at most)."""


def _cut(text: str, stop: str) -> str:
    return text.split(stop, 1)[0] if stop else text


class StopInGenerated(StoppingCriteria):
    """Stop a row once the text it generated holds ``stop``. transformers' own ``stop_strings`` also match
    across the end of the prompt, so a prompt ending in a newline would stop at a first generated newline
    when the stop is a blank line; vllm looks at generated text only, and so does this."""

    def __init__(self, tokenizer: Any, prompt_width: int, stop: str) -> None:
        self.tokenizer = tokenizer
        self.prompt_width = prompt_width
        self.stop = stop

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        tails = input_ids[:, self.prompt_width :][:, -STOP_TAIL_TOKENS:].tolist()
        done = [self.stop in self.tokenizer.decode(tail, skip_special_tokens=True) for tail in tails]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def check_fits(prompt_tokens: int, budget: int, context: int) -> None:
    """Refuse a prompt that, with the tokens it may generate, exceeds the model's context: cutting its start
    would drop the sentences a document decoder reads back line by line."""
    if prompt_tokens + budget > context:
        raise ValueError(
            f"a prompt of {prompt_tokens} tokens plus {budget} to generate exceeds the model's context of {context} "
            "tokens; translate fewer sentences per document, show fewer few-shot pairs or use a smaller window"
        )


class HFGenerator:
    """Greedy ``model.generate`` over left-padded batches; each output cut before its first ``stop``."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8, max_context: int | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        limit = getattr(model.config, "max_position_embeddings", None) or 2048
        self.max_context = max_context or limit
        self.generated_tokens = 0

    def __call__(self, prompts: Sequence[str], max_new_tokens: Sequence[int], stop: str) -> list[str]:
        import torch

        tokenizer = self.tokenizer
        encoded = [tokenizer(prompt, add_special_tokens=False)["input_ids"] for prompt in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        outputs: list[str] = [""] * len(prompts)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        device = next(self.model.parameters()).device
        for i, ids in enumerate(encoded):
            check_fits(len(ids), max_new_tokens[i], self.max_context)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            budget = max(max_new_tokens[i] for i in batch)
            ids = [encoded[i] for i in batch]
            width = max(len(x) for x in ids)
            input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=device)
            mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=device)
            stopping = StoppingCriteriaList([StopInGenerated(tokenizer, width, stop)] if stop else [])
            with torch.inference_mode():
                generated = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=mask,
                    max_new_tokens=budget,
                    do_sample=False,
                    stopping_criteria=stopping,
                    pad_token_id=pad,
                )
            for row, i in enumerate(batch):
                new = generated[row, width:].tolist()
                ends = [n for n, token in enumerate(new) if token in (pad, tokenizer.eos_token_id)]
                kept = (new[: ends[0]] if ends else new)[: max_new_tokens[i]]
                self.generated_tokens += len(kept)
                outputs[i] = _cut(tokenizer.decode(kept, skip_special_tokens=True), stop)
        return outputs


class VLLMGenerator:  # pragma: no cover - needs CUDA and vllm
    """vllm's offline engine, greedy, stopping at ``stop``; it batches and reuses shared prompt prefixes."""

    def __init__(self, model_path: str, dtype: str, tensor_parallel_size: int = 1) -> None:
        from vllm import LLM

        self.llm = LLM(
            model=model_path,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=0.85,
            enable_prefix_caching=True,
        )
        self.generated_tokens = 0

    def __call__(self, prompts: Sequence[str], max_new_tokens: Sequence[int], stop: str) -> list[str]:
        from vllm import SamplingParams

        tokenizer = self.llm.get_tokenizer()
        requests: list[Any] = [
            {"prompt_token_ids": tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts
        ]
        stops = [stop] if stop else None
        sampling = [SamplingParams(temperature=0.0, max_tokens=n, stop=stops) for n in max_new_tokens]
        results = self.llm.generate(requests, sampling, use_tqdm=False)
        self.generated_tokens += sum(len(r.outputs[0].token_ids) for r in results)
        return [r.outputs[0].text for r in results]
