"""Command line: ``python -m pipeline {run,plan,explain,report,list}``.

The Makefile is a thin layer over this; everything it does can be done here too.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pipeline.recipe import RecipeError, available_recipes, load_recipe
from pipeline.runner import Runner
from pipeline.store import Store
from stages import REGISTRY
from stages.base import StageError

DEFAULT_STORE = Path(os.environ.get("DAPT_STORE", "runs"))


def _epilog() -> str:
    stages = "\n".join(f"  {name:8s} {spec.doc}" for name, spec in REGISTRY.items())
    example = "python -m pipeline run legal --set cpt.replay_ratio=0.5"
    return f"stages:\n{stages}\n\nrecipes: {', '.join(available_recipes())}\n\nexample: {example}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Domain-adaptation pipeline: corpus -> cpt (replay) -> sft -> merge -> eval -> report.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("run", "run the recipe's DAG, reusing cached stages"),
        ("plan", "show, per stage, whether it will be reused or run, and why"),
        ("explain", "like plan, with each stage's cache key and store path"),
        ("report", "print the recipe's latest report and where it is"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("recipe", help=f"recipe name ({', '.join(available_recipes())}) or a YAML path")
        cmd.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="dotted override, repeatable: --set cpt.replay_ratio=0.5",
        )
        cmd.add_argument(
            "--stage",
            action="append",
            default=[],
            metavar="STAGE",
            help="rerun this stage and everything downstream of it",
        )
        cmd.add_argument(
            "--store", type=Path, default=DEFAULT_STORE, help="output store (default: runs/ or $DAPT_STORE)"
        )
    sub.add_parser("list", help="list stages and recipes")
    return parser


def _split_overrides(values: list[str]) -> list[str]:
    """``--set "a=1 b=2"`` and ``--set a=1 --set b=2`` mean the same."""
    return [item for value in values for item in value.split()]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.command == "list":
        print(_epilog())
        return 0
    try:
        recipe = load_recipe(args.recipe, _split_overrides(args.overrides))
        runner = Runner(recipe, Store(args.store))
        if args.command in ("plan", "explain"):
            for decision in runner.plan(force=args.stage):
                spec = REGISTRY[decision.node.stage]
                print(f"{decision.action:6s} {decision.node.name:12s} {'; '.join(decision.reasons)}")
                if args.command == "explain":
                    print(f"{'':19s}key {decision.key[:12]}  ->  {runner.store.final_dir(spec.name, decision.key)}")
            return 0
        if args.command == "report":
            return _print_report(runner)
        runner.run(force=args.stage)
        _print_report(runner, brief=True)
        return 0
    except (RecipeError, StageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _print_report(runner: Runner, brief: bool = False) -> int:
    ref = runner.store.read_ref(runner.recipe.name, "report")
    if ref is None or not runner.store.is_done("report", ref["key"]):
        print(
            f"no report yet for recipe '{runner.recipe.name}': run `make recipe={runner.recipe.name}` first",
            file=sys.stderr,
        )
        return 1
    folder = runner.store.final_dir("report", ref["key"])
    if not brief:
        print((folder / "report.md").read_text(encoding="utf-8"))
    print(f"report: {folder / 'report.md'}\n        {folder / 'report.html'}")
    return 0
