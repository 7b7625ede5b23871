"""The `qwen3-recipe` command. argparse, not typer/click: `validate` and `plan` must start fast
(benchmarks/plan_startup.py), and every import here is deferred to the command that needs it."""

from __future__ import annotations

import argparse
import sys

from qwen3_recipe.cli.commands import COMMANDS


def _recipe_args(p: argparse.ArgumentParser, run_dir: bool = True) -> argparse.ArgumentParser:
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value by dotted path (value parsed as YAML); repeatable")
    if run_dir:
        p.add_argument("-o", "--run-dir", default=None, help="run directory (default: runs/<recipe name>)")
    return p


def _verbose_arg(p: argparse.ArgumentParser) -> None:
    """-v after the command too (`run -v`); SUPPRESS keeps a top-level -v when it is absent here."""
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qwen3-recipe",
                                     description="The Qwen3 training recipe as declarative YAML.")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the engines' output (vLLM, torchtitan, datatrove, Ray) on the terminal too; "
                             "it always goes to each job's jobs/<job>/job.log")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _recipe_args(sub.add_parser("validate", help="check a recipe; print every located error"), run_dir=False)
    p = sub.add_parser("plan", help="show the job DAG, estimates and what is cached")
    _recipe_args(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p = _recipe_args(sub.add_parser("compile", help="write the run directory (manifest, lockfile, jobs)"))
    p.add_argument("--diff", default=None, metavar="OTHER_RUN_DIR",
                   help="then list what each job's engine is told differently from another compiled run")
    p = sub.add_parser("run", help="compile, then run the jobs (upstream jobs first)")
    _recipe_args(p)
    p.add_argument("--only", default=None, metavar="GROUPS",
                   help="comma list of jobs or groups: data,tokenizer,pretrain,sft,synth,posttrain,evals")
    p.add_argument("--executor", choices=["local", "slurm", "ray"], default=None)
    # a Slurm job's own command: run the selected jobs here from the artifacts compiled at submission
    p.add_argument("--in-allocation", action="store_true", help=argparse.SUPPRESS)
    _verbose_arg(p)
    p = sub.add_parser("synth", help="run synthetic-data jobs")
    _recipe_args(p)
    p.add_argument("--job", default=None, help="one synth job by name")
    _verbose_arg(p)
    p = sub.add_parser("query", help="run SQL over a run's provenance database")
    p.add_argument("run_dir")
    p.add_argument("sql")
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--output", default=None, help="file for csv/json/parquet (default: stdout; parquet needs a file)")
    sub.add_parser("check", help="check the provenance invariants of a run").add_argument("run_dir")
    p = sub.add_parser("provenance", help="rebuild: the run's provenance database again from its shards")
    p.add_argument("action", choices=["rebuild"])
    p.add_argument("run_dir")
    p = sub.add_parser("report", help="canned reports over provenance; html: one self-contained page for the run")
    p.add_argument("kind", choices=["funnel", "contamination", "mixture", "html"])
    p.add_argument("run_dir")
    p.add_argument("-o", "--output", default=None, help="html only: the page to write (default: RUN_DIR/report.html)")
    p = sub.add_parser("model", help="print a preset (or a recipe's model) as HF config.json")
    p.add_argument("preset", help="a preset (Qwen3-8B, 0.6B, ...) or a recipe file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p = sub.add_parser("schema", help="print the recipe JSON Schema")
    p.add_argument("-o", "--output", default=None)
    sub.add_parser("doctor", help="versions, engines that import, GPU visibility")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from qwen3_recipe.errors import RecipeError

    try:
        return COMMANDS[args.command](args) or 0
    except RecipeError as exc:
        if args.debug:
            raise
        from qwen3_recipe.cli.render import print_problems
        print_problems(exc.problems)
        return 1
    except Exception as exc:  # an engine's own error (e.g. bad SQL): one line, not a traceback
        if args.debug or type(exc).__module__.split(".")[0] not in ("duckdb", "_duckdb"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
