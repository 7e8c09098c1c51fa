"""Plan and run a recipe's DAG against the store: reuse what is cached, run the rest, say why.

For each node, in order: compute its key from its params, its inputs' keys, its external
fingerprints and its libraries; reuse the stored result when that key is done; otherwise run the
stage into a partial directory and commit it atomically. ``plan`` does the same without running
and names, for every node that would run, the param, input or library that changed since the
recipe's last run.

Several runs may share a store: a node that runs holds its key's store lock from ``begin`` to
``commit``. A run that needs a key another run is computing waits for it and then reuses its
result (``wait=True``, the CLI's ``--wait``), or fails at once naming the other run's pid and host
(``--no-wait``). Nothing another run finished is ever removed, except by an explicit ``--stage``
of a result that was already finished when this run planned.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.dag import MANIFEST_OUTPUT, Node, downstream_of, split_binding
from pipeline.executor import run_stage
from pipeline.keys import library_versions, stage_key
from pipeline.recipe import Recipe
from pipeline.store import Store, StoreBusy, describe_owner
from stages import REGISTRY
from stages.base import StageContext

log = logging.getLogger("pipeline")

VERBOSE_ENV = "DAPT_VERBOSE"
"""Set by ``configure_console``; datatrove's worker processes read it (``stages.lib.corpus_engine``)."""
_LIBRARY_LOGGERS = ("transformers", "datasets")
"""Libraries that print through their own stderr handler; routed through the root logger instead."""


class _ConsoleFilter(logging.Filter):
    """The quiet console: the pipeline's own lines and every warning; the rest stays in stage.log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return record.name == "pipeline" or record.name.startswith("pipeline.")


def configure_console(verbose: bool = False) -> None:
    """Set up the console once per process: quiet (a line per stage, warnings, progress bars) or verbose.

    Library logs (lm-eval, transformers, datasets, accelerate, datatrove) still reach the root
    logger at INFO, so the stage.log handler that ``Runner`` attaches to the root logger keeps
    them; only the console hides them. ``verbose`` shows everything, as before this existed.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_pipeline_console", False):
            root.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console._pipeline_console = True  # type: ignore[attr-defined]
    console.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    if not verbose:
        console.addFilter(_ConsoleFilter())
    root.addHandler(console)
    root.setLevel(logging.INFO)
    # datatrove's worker processes configure their own loguru sinks; they read this to choose a level.
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"


def route_library_logs() -> None:
    """Make transformers and datasets log through the root logger rather than their own stderr handler.

    Both add a StreamHandler on import (transformers also stops propagation), so their warnings
    printed twice or missed stage.log. Called before each stage runs, once they are importable;
    their levels (WARNING by default) are left alone."""
    for name in _LIBRARY_LOGGERS:
        try:
            __import__(f"{name}.utils.logging")  # configures the library's handler first, once
        except ImportError:
            continue
        library = logging.getLogger(name)
        for handler in list(library.handlers):
            if type(handler) is logging.StreamHandler:
                library.removeHandler(handler)
        library.propagate = True
    if os.environ.get(VERBOSE_ENV) != "1":
        try:  # "Loading weights" and "Writing model shards" bars, a few per stage, under a second each
            from transformers.utils import logging as transformers_logging
        except ImportError:
            return
        transformers_logging.disable_progress_bar()  # the Trainer's own bars use tqdm directly and stay


@dataclass
class Decision:
    node: Node
    key: str
    action: str
    """``reuse`` or ``run``."""
    reasons: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    """What the key was made of, saved as the node's ref after it is done."""
    done_at_plan: bool = False
    """The key was finished when planned: a forced rerun replaces that result, and only that one."""
    forced: bool = False
    """``--stage`` (or downstream of it): start clean, never from an earlier attempt's checkpoints."""


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves by dotted key; lists of mappings (sources, tasks) by index, so a diff names the one field."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        flat = {}
        for index, item in enumerate(value):
            flat.update(_flatten(item, f"{prefix}.{index}"))
        return flat
    return {prefix: value}


def _diff(section: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``param cpt.lr changed 0.0001 -> 0.0002`` lines for every differing leaf."""
    old_flat, new_flat = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(old_flat) | set(new_flat)):
        if old_flat.get(key, "<unset>") != new_flat.get(key, "<unset>"):
            lines.append(
                f"{section}.{key} changed {old_flat.get(key, '<unset>')!r} -> {new_flat.get(key, '<unset>')!r}"
            )
    return lines


class Runner:
    """Plans and executes one recipe over a store."""

    def __init__(self, recipe: Recipe, store: Store, wait: bool = True):
        self.recipe = recipe
        self.store = store
        self.wait = wait
        """A key another run holds: wait for it and reuse its result (True), or fail at once (False)."""
        self.current: Decision | None = None
        """The node running now, so an interrupted run can say where it stopped."""

    def plan(self, force: list[str] | None = None) -> list[Decision]:
        """Decide reuse or run for every node; ``force`` reruns those nodes and all downstream."""
        forced: set[str] = set()
        for name in force or []:
            if name not in {n.name for n in self.recipe.nodes}:
                known = ", ".join(n.name for n in self.recipe.nodes)
                raise ValueError(f"unknown stage '{name}' to rerun; stages of this recipe: {known}")
            forced |= downstream_of(self.recipe.nodes, name)
        keys: dict[str, str] = {}
        decisions = []
        for node in self.recipe.nodes:
            spec = REGISTRY[node.stage]
            params = self.recipe.params[node.name]
            params_json = params.model_dump(mode="json", exclude=set(type(params).COSMETIC))
            inputs = {}
            for input_name, binding in node.inputs.items():
                upstream, output = split_binding(binding)
                inputs[input_name] = f"{keys[upstream]}:{output}"
            external = spec.fingerprint(params) if spec.fingerprint else {}
            libraries = library_versions(spec.libraries)
            key = stage_key(spec.name, spec.version, params_json, inputs, external, libraries)
            keys[node.name] = key
            record = {
                "key": key,
                "stage": spec.name,
                "version": spec.version,
                "params": params_json,
                "inputs": inputs,
                "external": external,
                "libraries": libraries,
            }
            done = self.store.is_done(spec.name, key)
            decision = Decision(node, key, "reuse", record=record, done_at_plan=done)
            if node.name in forced:
                decision.action = "run"
                decision.forced = True
                if self.store.partial_dir(spec.name, key).exists():
                    decision.reasons.append("an interrupted attempt's files are discarded: a forced stage starts clean")
                decision.reasons.append(
                    "forced (--stage/--force)" if force and node.name in force else "downstream of a forced stage"
                )
            elif not done:
                decision.action = "run"
                decision.reasons.extend(self._why_changed(node, record))
                holder = self.store.holder(spec.name, key)
                if holder is not None:
                    decision.reasons.append(
                        f"another run is computing it now ({describe_owner(holder)}): waits for it, then reuses it"
                    )
                elif self.store.partial_dir(spec.name, key).exists():
                    decision.reasons.append("an interrupted run of this key exists: resuming it")
            else:
                decision.reasons.append(f"unchanged, cached at {self.store.final_dir(spec.name, key)}")
            decisions.append(decision)
        return decisions

    def _why_changed(self, node: Node, record: dict[str, Any]) -> list[str]:
        previous = self.store.read_ref(self.recipe.name, node.name)
        if previous is None:
            return ["never run for this recipe"]
        reasons = []
        if previous.get("version") != record["version"]:
            reasons.append(f"stage version changed {previous.get('version')} -> {record['version']}")
        reasons += [
            f"param {line}" for line in _diff(node.params_section, previous.get("params", {}), record["params"])
        ]
        for name, value in record["inputs"].items():
            if previous.get("inputs", {}).get(name) != value:
                reasons.append(f"input '{name}' changed (from {split_binding(node.inputs[name])[0]})")
        reasons += [f"input '{name}' removed" for name in previous.get("inputs", {}) if name not in record["inputs"]]
        reasons += [f"external {line}" for line in _diff("source", previous.get("external", {}), record["external"])]
        reasons += [f"library {line}" for line in _diff("lib", previous.get("libraries", {}), record["libraries"])]
        return reasons or ["its result is no longer in the store"]

    def run(self, force: list[str] | None = None, until: str | None = None) -> list[Decision]:
        """Execute the plan; each finished node is committed before the next one starts.

        ``until`` stops after that node (and what it needs, which comes before it in the order)."""
        decisions = self.plan(force)
        if until is not None:
            names = [d.node.name for d in decisions]
            if until not in names:
                raise ValueError(f"unknown stage '{until}'; stages of this recipe: {', '.join(names)}")
            decisions = decisions[: names.index(until) + 1]
        if not self.wait:
            self._fail_if_busy(decisions)
        outputs: dict[str, dict[str, Any]] = {}
        total = len(decisions)
        self.outputs = outputs
        for index, decision in enumerate(decisions, 1):
            node, spec = decision.node, REGISTRY[decision.node.stage]
            header = f"[{index}/{total}] {node.name}"
            if decision.action == "reuse":
                log.info("%s: reused (%s)", header, "; ".join(decision.reasons))
            else:
                self._run_locked(decision, header, outputs)
            outputs[node.name] = self._resolve_outputs(spec.name, decision.key)
            self.store.write_ref(self.recipe.name, node.name, decision.record)
        ran = sum(d.action == "run" for d in decisions)
        log.info("done: %d stage(s) ran, %d reused", ran, total - ran)
        return decisions

    def _fail_if_busy(self, decisions: list[Decision]) -> None:
        """``--no-wait``: refuse before anything runs when another run holds a key this one must compute."""
        busy = []
        for decision in decisions:
            if decision.action != "run":
                continue
            stage = REGISTRY[decision.node.stage].name
            holder = self.store.holder(stage, decision.key)
            if holder is not None:
                busy.append(f"{decision.node.name} ({stage} {decision.key[:12]}) by {describe_owner(holder)}")
        if busy:
            raise StoreBusy(
                "another run is computing what this one needs: "
                + "; ".join(busy)
                + ". Rerun with --wait (the default) to wait for it and reuse its results"
            )

    def _run_locked(self, decision: Decision, header: str, outputs: dict[str, dict[str, Any]]) -> None:
        """Run one node holding its key's lock; reuse the result instead when another run finished it meanwhile."""
        spec = REGISTRY[decision.node.stage]

        def say_waiting(owner: dict[str, Any] | None) -> None:
            computing = f"{spec.name} {decision.key[:12]}"
            log.info("%s: waiting for %s, which is computing %s", header, describe_owner(owner), computing)

        with self.store.lock(spec.name, decision.key, wait=self.wait, recipe=self.recipe.name, on_wait=say_waiting):
            finished_meanwhile = self.store.complete_interrupted_commit(spec.name, decision.key) or (
                self.store.is_done(spec.name, decision.key) and not decision.done_at_plan
            )
            if finished_meanwhile:
                decision.action = "reuse"
                decision.reasons.append("finished by another run while this one planned or waited")
                log.info("%s: reused (%s)", header, decision.reasons[-1])
                return
            if self.store.is_done(spec.name, decision.key):
                self.store.invalidate(spec.name, decision.key)  # forced: the result this run planned over goes
            if decision.forced:
                self.store.discard_partial(spec.name, decision.key)
            log.info("%s: running (%s)", header, "; ".join(decision.reasons))
            self.current = decision
            self._execute(decision, outputs)
            self.current = None

    def interrupted(self, resume_command: str) -> str:
        """One line for Ctrl-C: the stage interrupted, what of it is kept, and the command that resumes it.

        Read-only: the checkpoint named is the highest one with its trainer state; the stage's own
        resume logic decides again when it reruns."""
        decision = self.current
        if decision is None:
            return f"interrupted between stages: every finished stage is kept; resume with: {resume_command}"
        stage = REGISTRY[decision.node.stage].name
        partial = self.store.partial_dir(stage, decision.key)
        steps = []
        for state in partial.glob("checkpoints/checkpoint-*/trainer_state.json"):
            suffix = state.parent.name.removeprefix("checkpoint-")
            if suffix.isdigit():
                steps.append((int(suffix), state.parent))
        kept = (
            f"last complete checkpoint {max(steps)[1]}" if steps else f"no checkpoint yet (its files stay in {partial})"
        )
        where = f"{decision.node.name} ({stage} {decision.key[:12]})"
        return f"interrupted during stage {where}; kept: {kept}; resume with: {resume_command}"

    def _resolve_outputs(self, stage: str, key: str) -> dict[str, Any]:
        """A finished node's declared outputs by name, plus ``manifest``: its manifest.json (params, keys,
        metrics, timings), an output of every node, so a downstream stage reads another's metrics
        through a binding rather than a path into its folder."""
        manifest = self.store.manifest(stage, key)
        final = self.store.final_dir(stage, key)
        resolved = {MANIFEST_OUTPUT: str(final / "manifest.json")}
        for name, entry in manifest["outputs"].items():
            resolved[name] = str(final / entry["path"]) if "path" in entry else entry["ref"]
        return resolved

    def _execute(self, decision: Decision, outputs: dict[str, dict[str, Any]]) -> None:
        node, spec = decision.node, REGISTRY[decision.node.stage]
        params = self.recipe.params[node.name]
        out_dir = self.store.begin(spec.name, decision.key)
        inputs = {}
        input_record = {}
        for input_name, binding in node.inputs.items():
            upstream, output = split_binding(binding)
            inputs[input_name] = outputs[upstream][output]
            input_record[input_name] = {
                "node": upstream,
                "output": output,
                "key": decision.record["inputs"][input_name],
            }
        stage_log = logging.getLogger(f"stage.{node.name}")
        # On the root logger: the stage's own lines (stage.<node> propagates) and every library's
        # log (lm-eval, datasets, accelerate, datatrove forwarded from loguru) land in stage.log.
        route_library_logs()
        root = logging.getLogger()
        handler = logging.FileHandler(out_dir / "stage.log", encoding="utf-8")
        handler.setLevel(logging.INFO)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root_level = root.level
        if root.getEffectiveLevel() > logging.INFO:  # a caller that configured no logging still gets a stage.log
            root.setLevel(logging.INFO)
        ctx = StageContext(out_dir=out_dir, log=stage_log, node=node.name, recipe=self.recipe.name)
        started = time.time()
        try:
            result = run_stage(self.recipe.executor, spec.name, ctx, inputs, params)
        finally:
            root.removeHandler(handler)
            root.setLevel(root_level)
            handler.close()
        finished = time.time()
        manifest_outputs = {}
        for name, value in (result.get("outputs") or {}).items():
            if isinstance(value, Path):
                manifest_outputs[name] = {"path": str(value.resolve().relative_to(out_dir.resolve()))}
            else:
                manifest_outputs[name] = {"ref": str(value)}
        manifest = {
            "node": node.name,
            "recipe": self.recipe.name,
            **decision.record,
            "inputs": input_record,
            "outputs": manifest_outputs,
            "metrics": result.get("metrics", {}),
            "timings": {"started": started, "finished": finished, "seconds": round(finished - started, 3)},
            "host": {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine()},
        }
        final = self.store.commit(spec.name, decision.key, manifest)
        log.info("%s: done in %.1f s -> %s", node.name, finished - started, final)
        for line in result.get("metrics", {}).get("summary", []):  # what a stage decided, said on the console
            log.info("%s: %s", node.name, line)
