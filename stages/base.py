"""The stage contract: what every stage declares and what the engine hands it.

A stage never imports the engine (``pipeline/``). It receives a ``StageContext`` (its own
output directory, a logger, a progress-bar factory) and resolved ``inputs`` (paths or ids of
upstream outputs), so it runs and tests alone and the engine can change without touching it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class KeyedWhenSet(BaseModel):
    """A model whose options added after results were stored enter its dump, so the cache key, only when set.

    Such an option defaults to None, meaning the behaviour from before it existed; leaving it out of the dump
    then keeps every stored key valid, so adding an option reruns nothing (``tests/unit/test_keys.py``)."""

    KEYED_WHEN_SET: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """A name here that is not a field defaulting to None would be dumped, changing every stored key."""
        super().__pydantic_init_subclass__(**kwargs)
        wrong = sorted(
            n for n in cls.KEYED_WHEN_SET if n not in cls.model_fields or cls.model_fields[n].default is not None
        )
        if wrong:
            raise TypeError(f"{cls.__name__}.KEYED_WHEN_SET: {wrong} are not fields that default to None")

    @model_serializer(mode="wrap")
    def _omit_unset_options(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in self.KEYED_WHEN_SET:
                if data.get(name, 0) is None:
                    del data[name]
        return data


class Params(KeyedWhenSet):
    """Base of every stage's params: unknown keys are refused, so a typo fails before anything runs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Fields that change how a stage reports, not what it computes: left out of the cache key.
    COSMETIC: ClassVar[frozenset[str]] = frozenset()


@dataclass
class StageContext:
    """What the engine gives a running stage: where to write, how to log, how to show progress."""

    out_dir: Path
    """Temporary output directory; the engine renames it into the store when ``run`` returns."""
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("stage"))
    node: str = ""
    """The DAG node's name (``eval_cpt``), for messages and model cards."""
    recipe: str = ""

    def progress(self, iterable: Iterable[Any] | None = None, **kwargs: Any) -> Any:
        """A tqdm progress bar, so long loops show how far they are."""
        from tqdm.auto import tqdm

        kwargs.setdefault("desc", self.node)
        kwargs.setdefault("dynamic_ncols", True)
        return tqdm(iterable, **kwargs)


MODEL = "<model>"
"""In a default binding: the newest model upstream in the chain (for a per-model stage, the model it is run on)."""


@dataclass(frozen=True)
class Wiring:
    """Where a stage sits in the default chain a recipe gets when it shapes nothing.

    The engine walks ``stages.STAGES`` in order and places each stage that has a wiring, binding its inputs as
    declared here; a binding to a node the graph lacks (a skipped or unplanned stage) is dropped, so a stage
    names its neighbours once, here, and the engine names none.
    """

    inputs: Mapping[str, str] = field(default_factory=dict)
    """input -> ``node.output``, or ``MODEL`` for the newest model upstream."""
    model: str = ""
    """The output holding a model: the node becomes the newest model and one of the models a recipe evaluates."""
    label: str = ""
    """The name the model is evaluated under (default: the node's name; the model stage's is ``base``)."""
    skippable: bool = False
    """A recipe may leave it out (``skip:``); what read its model reads the one before."""
    with_section: bool = False
    """Placed only when the recipe has a section of this stage's name (the plan)."""
    per_model: bool = False
    """One node per evaluated model, named ``<stage>_<label>``, all sharing this stage's params section."""
    gathers: Mapping[str, str] = field(default_factory=dict)
    """stage -> output: one input per per-model node of that stage, named as the node (the report's evals)."""
    sweep_gathers: Mapping[str, str] = field(default_factory=dict)
    """stage -> output: in a sweep only, one input per branch node of that stage, ``<node>@<branch>``."""


@dataclass(frozen=True)
class StageSpec:
    """A registered stage: its name, version, params type, named inputs and the function that runs it."""

    name: str
    version: int
    params: type[Params]
    inputs: tuple[str, ...]
    """Named inputs; each must be bound to an upstream node's output."""
    run: Callable[[StageContext, dict[str, Any], Any], dict[str, Any]]
    """``run(ctx, inputs, params) -> outputs``: writes only into ``ctx.out_dir``; returns metrics."""
    doc: str = ""
    optional_inputs: tuple[str, ...] = ()
    """Inputs a graph may bind or leave out (cpt's ``plan``, the report's ``plan``)."""
    input_prefixes: tuple[str, ...] = ()
    """Any number of inputs whose names start with one of these (the sweep comparison's ``eval_cpt@<branch>``)."""
    libraries: tuple[str, ...] = ()
    """Distributions whose version can change the result; their versions enter the cache key."""
    fingerprint: Callable[[Any], dict[str, Any]] | None = None
    """Content fingerprint of external data the params point at (source files, a local model)."""
    wiring: Wiring | None = None
    """How a default recipe wires it; None: only a recipe's own ``nodes:`` place it."""
    accelerated: bool = False
    """Heavy compute: sent to the accelerator's jobs by a Slurm executor unless the recipe names other stages."""
    page: str = ""
    """The file a person reads (``report.md``): ``make report`` prints the last such page of the graph."""


class StageError(RuntimeError):
    """A stage failed for a reason the user can act on (bad data, missing package)."""


def require(module: str, install: str) -> Any:
    """Import an optional heavy package, or fail at once with the command that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise StageError(f"package '{module}' is missing: install it with `{install}`") from exc
