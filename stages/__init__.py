"""Stages: one module per job, each exposing ``SPEC`` (see ``stages.base``), collected here by name.

Adding a stage is one new module plus one entry in ``STAGES``: its ``SPEC.wiring`` says where the default chain
places it, in this order, so the engine names no stage.
"""

from __future__ import annotations

from stages import (
    compare,
    corpus,
    cpt,
    doc_translation,
    evaluate,
    merge,
    model,
    pack,
    plan,
    plan_schedule,
    plan_sizes,
    report,
    sft,
)
from stages.base import StageSpec

STAGES = (
    model,
    corpus,
    pack,
    plan,
    plan_schedule,
    plan_sizes,
    cpt,
    sft,
    merge,
    evaluate,
    doc_translation,
    report,
    compare,
)
REGISTRY: dict[str, StageSpec] = {m.SPEC.name: m.SPEC for m in STAGES}
