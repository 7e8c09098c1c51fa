"""Command line: ``python -m pipeline {run,plan,explain,report,list,new}``.

The Makefile is a thin layer over this; everything it does can be done here too.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from pipeline import gc
from pipeline.new_recipe import DEFAULT_BASE_MODEL, NewRecipeError, write_recipe
from pipeline.recipe import RECIPES_DIR, RecipeError, available_recipes, load_recipe
from pipeline.runner import Runner, configure_console
from pipeline.store import Store, StoreError
from stages import REGISTRY
from stages.base import StageError

DEFAULT_STORE = Path(os.environ.get("DAPT_STORE", "runs"))


def _epilog() -> str:
    stages = "\n".join(f"  {name:8s} {spec.doc}" for name, spec in REGISTRY.items())
    example = "python -m pipeline run legal --set cpt.replay_ratio=0.5"
    new = "python -m pipeline new mydomain --domain docs/ [--general FILE] [--instructions FILE] [--evals FILE]"
    return (
        f"stages:\n{stages}\n\nrecipes: {', '.join(available_recipes())}\n\nexample: {example}\n"
        f"your own data: {new}\n"
        "console: a line per stage, progress bars and warnings; library logs go to each stage's stage.log "
        "(--verbose shows them)"
    )


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
        if name == "run":
            cmd.add_argument(
                "--wait",
                action=argparse.BooleanOptionalAction,
                default=True,
                help="a stage another run on this store is computing: wait for it and reuse its result (default); "
                "--no-wait fails at once (exit 3), naming that run's pid and host",
            )
            cmd.add_argument(
                "--until",
                metavar="STAGE",
                help="stop after this stage (and the ones before it in the run order), e.g. --until corpus",
            )
        _add_verbose(cmd)
    sub.add_parser("list", help="list stages and recipes")
    gc = sub.add_parser(
        "gc",
        help="list abandoned .partial folders and results no recipe refers to, with sizes (--delete removes them)",
    )
    gc.add_argument("--delete", action="store_true", help="remove what is listed (default: a dry run)")
    gc.add_argument("--store", type=Path, default=DEFAULT_STORE, help="store to clean (default: runs/ or $DAPT_STORE)")
    new = sub.add_parser(
        "new",
        help="write a commented recipe for your own files, plan it, and print the command to run it",
        description="Write recipes/NAME.yaml over your files (every choice commented), then plan it.",
    )
    new.add_argument("name", help="recipe name, [A-Za-z0-9_.-]+: writes recipes/NAME.yaml")
    new.add_argument(
        "--domain",
        action="append",
        required=True,
        metavar="PATH",
        help="domain text, repeatable: a folder (.md .txt .html .htm .pdf under it), .jsonl, .txt or .parquet",
    )
    new.add_argument(
        "--general",
        action="append",
        default=[],
        metavar="PATH",
        help="general replay text, repeatable (default: the packaged Python docs and GCIDE dictionary)",
    )
    new.add_argument(
        "--instructions", metavar="PATH", help="instruction pairs for sft: {prompt, completion} or {messages} JSONL"
    )
    new.add_argument(
        "--evals",
        action="append",
        default=[],
        metavar="PATH",
        help="eval set, repeatable: {question, choices, answer} or {question, answer} JSONL",
    )
    new.add_argument("--base-model", default=DEFAULT_BASE_MODEL, help=f"default: {DEFAULT_BASE_MODEL}")
    new.add_argument("--force", action="store_true", help="overwrite an existing recipe of that name")
    new.add_argument("--out-dir", type=Path, default=RECIPES_DIR, help="where to write NAME.yaml (default: recipes/)")
    new.add_argument(
        "--store", type=Path, default=DEFAULT_STORE, help="store the plan looks at (default: runs/ or $DAPT_STORE)"
    )
    _add_verbose(new)
    return parser


def _add_verbose(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--verbose",
        action="store_true",
        help="also print library logs (datatrove stats, lm-eval, transformers) to the console, not only stage.log",
    )


def _split_overrides(values: list[str]) -> list[str]:
    """``--set "a=1 b=2"`` and ``--set a=1 --set b=2`` mean the same."""
    return [item for value in values for item in value.split()]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_console(verbose=getattr(args, "verbose", False))
    if args.command == "list":
        print(_epilog())
        return 0
    if args.command == "new":
        return _new(args)
    if args.command == "gc":
        return _gc(args.store, args.delete)
    runner: Runner | None = None
    try:
        recipe = load_recipe(args.recipe, _split_overrides(args.overrides))
        runner = Runner(recipe, Store(args.store), wait=getattr(args, "wait", True))
        if args.command in ("plan", "explain"):
            _print_plan(runner, args.stage, explain=args.command == "explain")
            return 0
        if args.command == "report":
            return _print_report(runner)
        runner.run(force=args.stage, until=args.until)
        if args.until is None:
            _print_report(runner, brief=True)
        return 0
    except KeyboardInterrupt:
        resume = "python -m pipeline " + shlex.join(sys.argv[1:] if argv is None else argv)
        print("\n" + (runner.interrupted(resume) if runner else "interrupted before any stage ran"), file=sys.stderr)
        return 130
    except StoreError as exc:  # another run holds a key (--no-wait), or the store refused to lose a result
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (RecipeError, StageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _print_plan(runner: Runner, force: list[str], explain: bool = False) -> None:
    warnings: list[str] = []
    for decision in runner.plan(force=force):
        spec = REGISTRY[decision.node.stage]
        print(f"{decision.action:6s} {decision.node.name:12s} {'; '.join(decision.reasons)}")
        reused = decision.action == "reuse"
        metrics = runner.store.manifest(spec.name, decision.key).get("metrics", {}) if reused else {}
        if explain:
            print(f"{'':19s}key {decision.key[:12]}  ->  {runner.store.final_dir(spec.name, decision.key)}")
            if runtime := metrics.get("runtime"):  # chosen at run time, not by the key: say what it was
                order = ["device", "precision", "attention", "backend"]  # the manifest stores keys sorted
                named = sorted(runtime.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
                print(f"{'':19s}made with {', '.join(f'{k} {v}' for k, v in named)}")
        warnings += metrics.get("warnings", [])  # a finished stage's warnings (a gutted source) stay visible
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)


def _gc(store_path: Path, delete: bool) -> int:
    if not store_path.is_dir():
        print(f"error: no store at {store_path}", file=sys.stderr)
        return 2
    items, busy = gc.collect(Store(store_path), delete=delete)
    for item in items:
        print(f"{gc.human(item.size):>10s}  {item.path}  ({item.why})")
    total = gc.human(sum(item.size for item in items))
    if delete:
        print(f"removed {len(items)} folder(s), {total}")
    else:
        print(f"{len(items)} folder(s), {total}: nothing removed (dry run); `gc --delete` removes them")
    for name in busy:
        print(f"skipped {name}: another run holds it", file=sys.stderr)
    return 0


def _new(args: argparse.Namespace) -> int:
    """Write the recipe, then plan it as ``plan`` would; a recipe error leaves the file to fix (exit 2)."""
    try:
        path = write_recipe(
            args.name,
            args.domain,
            args.general,
            args.instructions,
            args.evals,
            base_model=args.base_model,
            force=args.force,
            recipes_dir=args.out_dir,
        )
    except NewRecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    in_recipes = path.parent.resolve() == RECIPES_DIR.resolve()
    command = f"make recipe={args.name}" if in_recipes else f"python -m pipeline run {path}"
    try:
        _print_plan(Runner(load_recipe(str(path)), Store(args.store)), [])
    except (RecipeError, StageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"{path} is kept: fix what is named above, then `{command}`", file=sys.stderr)
        return 2
    print(f"run it: {command}")
    return 0


def _print_report(runner: Runner, brief: bool = False) -> int:
    # The last page of the graph: a sweep's comparison of its branches (each branch keeps its report beside it).
    node = [n for n in runner.recipe.nodes if REGISTRY[n.stage].page][-1]
    page = REGISTRY[node.stage].page
    ref = runner.store.read_ref(runner.recipe.name, node.name)
    if ref is None or not runner.store.is_done(node.stage, ref["key"]):
        print(
            f"no report yet for recipe '{runner.recipe.name}': run `make recipe={runner.recipe.name}` first",
            file=sys.stderr,
        )
        return 1
    folder = runner.store.final_dir(node.stage, ref["key"])
    if not brief:
        print((folder / page).read_text(encoding="utf-8"))
    print(f"report: {folder / page}\n        {(folder / page).with_suffix('.html')}")
    return 0
