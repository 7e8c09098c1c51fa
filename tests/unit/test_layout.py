"""Imports run one way: engine -> stages -> eval, and no stage imports another stage (over the source)."""

from __future__ import annotations

import ast
from pathlib import Path

from stages import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
STAGE_MODULES = {Path(spec.run.__code__.co_filename).stem for spec in REGISTRY.values()}


def _imports(path: Path) -> set[str]:
    """Dotted names a module imports (``from stages import cpt`` counts as ``stages.cpt``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _stage_imports(path: Path) -> set[str]:
    return {name.split(".")[1] for name in _imports(path) if name.startswith("stages.")} & STAGE_MODULES


def test_the_registry_names_every_stage_file():
    assert {"model", "corpus", "pack", "plan", "cpt", "sft", "merge", "evaluate", "report"} <= STAGE_MODULES


def test_no_stage_imports_another_stage():
    found = {}
    for module in STAGE_MODULES:
        path = ROOT / "stages" / f"{module}.py"
        others = _stage_imports(path) - {module}
        if others:
            found[module] = sorted(others)
    assert found == {}, f"stages importing stages (move the shared code to a helper module): {found}"


def test_stage_helpers_import_no_stage():
    helpers = [p for p in (ROOT / "stages").rglob("*.py") if p.stem not in STAGE_MODULES and p.stem != "__init__"]
    assert helpers
    found = {str(p.relative_to(ROOT)): sorted(_stage_imports(p)) for p in helpers if _stage_imports(p)}
    assert found == {}


def test_the_engine_imports_no_stage_and_eval_imports_neither():
    engine = {str(p.relative_to(ROOT)): sorted(_stage_imports(p)) for p in (ROOT / "pipeline").glob("*.py")}
    assert {k: v for k, v in engine.items() if v} == {}
    for path in (ROOT / "eval").glob("*.py"):
        assert not {n for n in _imports(path) if n.split(".")[0] in ("stages", "pipeline")}, path.name


CLI_VERBS = {"plan", "report"}
"""``make plan`` and ``make report`` are commands (show the plan, print the page), not the stages of those names."""


def test_the_engine_names_no_stage_so_stages_declare_their_wiring():
    """No string in pipeline/ is a stage name or binds a stage's output (``cpt.model``): the default graph comes
    from each spec's wiring, so adding or changing a stage never edits the engine."""
    found = []
    for path in (ROOT / "pipeline").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            value, verbs = node.value, CLI_VERBS if path.name == "cli.py" else set()
            named = value in REGISTRY and value not in verbs
            bound = "." in value and value.split(".")[0] in REGISTRY and " " not in value and value[-3:] != ".py"
            if named or bound or (value.startswith("eval_") and " " not in value):
                found.append(f"{path.name}:{node.lineno} {value!r}")
    assert found == []


def test_stages_folder_shows_the_stages_and_their_contract_only():
    """A newcomer sees the stages at a glance: helpers live in stages/lib/."""
    top = {p.stem for p in (ROOT / "stages").glob("*.py")} - {"__init__", "base"}
    assert top == STAGE_MODULES


def test_paths_helpers_compute_from_their_own_file_still_point_at_the_repository():
    from stages.lib import launch

    assert launch.ROOT == ROOT and launch.CONFIGS.is_dir() and (launch.ROOT / "stages" / "lib" / "launch.py").exists()
