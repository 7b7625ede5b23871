"""One function per command; each imports only what it needs (validate/plan stay light)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _load(args: argparse.Namespace, extra: list[str] | None = None):
    from qwen3_recipe.recipe.validate import load_recipe
    return load_recipe(args.recipe, [*args.overrides, *(extra or [])])


def _plan(args: argparse.Namespace, extra: list[str] | None = None):
    from qwen3_recipe.compiler.plan import make_plan
    loaded = _load(args, extra)
    return make_plan(loaded, Path(args.run_dir) if getattr(args, "run_dir", None) else None)


def _plan_view(args: argparse.Namespace) -> dict:
    """The plan as data, from the plan cache when nothing it read has changed."""
    from qwen3_recipe.compiler import plan_cache
    view = plan_cache.lookup(Path(args.recipe), args.overrides, args.run_dir)
    if view is None:
        from qwen3_recipe.compiler.plan_view import plan_view
        the_plan = _plan(args)  # building the plan also checks the DAG (cycles)
        view = plan_view(the_plan)
        plan_cache.store(the_plan, view, args.run_dir)
    return view


def validate(args: argparse.Namespace) -> int:
    args.run_dir = None
    view = _plan_view(args)
    print(f"ok: {view['files'][-1]} is valid ({len(view['jobs'])} jobs)")
    return 0


def plan(args: argparse.Namespace) -> int:
    view = _plan_view(args)
    if args.format == "json":
        print(json.dumps(view, indent=2))
        return 0
    from qwen3_recipe.cli.render import print_plan
    print_plan(view)
    return _gate(view)


def _gate(view: dict) -> int:
    """Refuse (exit 1) when the run's provenance already shows a stage over the contamination threshold."""
    from qwen3_recipe.provenance.gate import refusals
    refused = refusals(view, Path(view["run_dir"]))
    for message in refused:
        print(f"error: {message}", file=sys.stderr)
    return 1 if refused else 0


def compile_(args: argparse.Namespace) -> int:
    from qwen3_recipe.compiler.rundir import compile_run_dir
    the_plan = _plan(args)
    run_dir = compile_run_dir(the_plan)
    print(f"compiled {len(the_plan.jobs)} jobs into {run_dir}/")
    if getattr(args, "diff", None):
        from qwen3_recipe.compiler.diff import diff_run_dirs
        from qwen3_recipe.compiler.explain import explain
        recipe_lines, setters = explain(the_plan, Path(args.diff))
        lines = diff_run_dirs(run_dir, Path(args.diff), setters)
        print("\n".join(recipe_lines + lines) if lines or recipe_lines
              else f"no job is told anything different from {args.diff}")
    return 0


def run(args: argparse.Namespace) -> int:
    from qwen3_recipe.compiler.rundir import compile_run_dir
    from qwen3_recipe.compiler.select import select
    from qwen3_recipe.runners import run_jobs

    extra = [f"execution.executor={args.executor}"] if args.executor else []
    the_plan = _plan(args, extra)
    from qwen3_recipe.compiler.plan_view import plan_view
    in_allocation = getattr(args, "in_allocation", False)
    if not in_allocation:  # compiled at submission: recompiling there would rewrite others' artifacts
        compile_run_dir(the_plan)
    if _gate(plan_view(the_plan)):  # the gate is not in any fingerprint: checked before each run
        return 1
    if in_allocation:
        return run_jobs(the_plan, select(the_plan, args.only), debug=args.debug, verbose=args.verbose)
    if the_plan.loaded.recipe.execution.executor == "slurm":
        from qwen3_recipe.launch.slurm import submit
        return submit(the_plan, select(the_plan, args.only))
    return run_jobs(the_plan, select(the_plan, args.only), debug=args.debug, verbose=args.verbose)


def synth(args: argparse.Namespace) -> int:
    args.only = f"synth.{args.job}" if args.job else "synth"
    args.executor = None
    return run(args)


def _require_db(run_dir: str) -> Path:
    """The run's database; rebuilt from the shards when missing, corrupt or stale."""
    from qwen3_recipe.errors import Loc, Problem, RecipeError
    from qwen3_recipe.provenance.database import DB_NAME, ensure_database
    db = ensure_database(Path(run_dir))
    if db is None:
        raise RecipeError([Problem(f"no provenance database in {run_dir} (run the data jobs first: "
                                   "qwen3-recipe run RECIPE --only data)", loc=Loc(str(Path(run_dir) / DB_NAME)))])
    return db


def provenance(args: argparse.Namespace) -> int:
    """`provenance rebuild RUN`: the database again from the run's shards, atomically. Refused
    without shards: the database is then the only copy of the run's provenance."""
    from qwen3_recipe.provenance.database import DB_NAME, build_database, shards
    run_dir = Path(args.run_dir)
    if not shards(run_dir) and not (run_dir / "manifest.json").exists():
        where = "its database is kept as it is" if (run_dir / DB_NAME).exists() else "nothing to build"
        print(f"error: no provenance shards under {run_dir / 'jobs'} to rebuild from ({where})", file=sys.stderr)
        return 1
    db = build_database(run_dir)
    print(f"rebuilt {db} from {len(shards(run_dir))} shards under {run_dir / 'jobs'}")
    return 0


def query(args: argparse.Namespace) -> int:
    import duckdb

    from qwen3_recipe.console import print_query
    from qwen3_recipe.provenance.safe_query import QueryRefused, checked, connect_read_only, one_line
    db = _require_db(args.run_dir)
    with connect_read_only(db) as con:
        try:
            rel = con.sql(checked(con, args.sql))
            print_query(rel, args.format, args.output)
        except QueryRefused as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except duckdb.Error as exc:
            print(f"error: {one_line(exc)}", file=sys.stderr)
            return 1
    return 0


def check(args: argparse.Namespace) -> int:
    _require_db(args.run_dir)
    from qwen3_recipe.provenance.check import check_run
    return check_run(Path(args.run_dir))


def report(args: argparse.Namespace) -> int:
    if args.kind == "html":  # works on any compiled run: sections without data say what fills them
        from qwen3_recipe.report import write_report
        print(f"wrote {write_report(Path(args.run_dir), Path(args.output) if args.output else None)}")
        return 0
    if args.output:
        print("error: --output is for `report html` only", file=sys.stderr)
        return 2
    _require_db(args.run_dir)
    from qwen3_recipe.provenance.reports import print_report
    return print_report(args.kind, Path(args.run_dir))


def model(args: argparse.Namespace) -> int:
    from qwen3_recipe.errors import Problem, RecipeError, did_you_mean
    from qwen3_recipe.presets import PRESETS, find_preset, yarn_scaling
    if args.preset.endswith((".yaml", ".yml")) or Path(args.preset).is_file():
        from qwen3_recipe.recipe.validate import load_recipe
        loaded = load_recipe(args.preset, args.overrides)
        config = loaded.arch.to_hf_config(loaded.recipe.model.name or loaded.recipe.name,
                                          yarn_scaling(loaded.recipe.model.yarn))
    else:
        name = find_preset(args.preset)
        if name is None:
            raise RecipeError([Problem(f"unknown preset '{args.preset}'", "preset", None,
                                       did_you_mean(args.preset, PRESETS))])
        config = PRESETS[name].to_hf_config(f"Qwen/{name}")
    print(json.dumps(config, indent=2))
    return 0


def schema(args: argparse.Namespace) -> int:
    from qwen3_recipe.recipe.json_schema import schema_text
    text = schema_text()
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def doctor(args: argparse.Namespace) -> int:
    from qwen3_recipe.doctor import print_doctor
    return print_doctor()


COMMANDS = {"validate": validate, "plan": plan, "compile": compile_, "run": run, "synth": synth,
            "query": query, "check": check, "report": report, "model": model, "schema": schema,
            "doctor": doctor, "provenance": provenance}
