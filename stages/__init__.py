"""Stages: one module per job, each exposing ``SPEC`` (see ``stages.base``), collected here by name."""

from __future__ import annotations

from stages import compare, corpus, cpt, evaluate, merge, model, pack, plan, report, sft
from stages.base import StageSpec

_STAGES = (model, corpus, pack, plan, cpt, sft, merge, evaluate, report, compare)
REGISTRY: dict[str, StageSpec] = {m.SPEC.name: m.SPEC for m in _STAGES}
