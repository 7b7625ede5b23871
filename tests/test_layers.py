"""The package's layers, read from the source with ast (issue 14.7): the engines never import the
CLI, no module takes another package's private names, and the data, quality and launch modules
import each other without a cycle - counting imports inside functions, which run later but still
tie the modules together. Imports under `if TYPE_CHECKING:` never run and are left out; imports
by name string (runners.RUNNER_MODULES, launch/slurm_data.STAGES) are not seen."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import qwen3_recipe

ROOT = Path(qwen3_recipe.__file__).parent
PKG = "qwen3_recipe"
CYCLE_FREE = ("data", "quality", "launch")
# Function-level imports allowed to close a cycle among CYCLE_FREE modules, each with its reason.
ALLOWED_BACK_EDGES: dict[tuple[str, str], str] = {}
# The back-edges issue 14.7 named; they must stay gone.
REMOVED_EDGES = [
    ("qwen3_recipe.data.stages", "qwen3_recipe.data.runner"),        # run_stages -> execute
    ("qwen3_recipe.data.runner", "qwen3_recipe.launch.slurm_data"),  # make_executor -> slurm_executor
    ("qwen3_recipe.launch.slurm_data", "qwen3_recipe.data.runner"),  # make_executor, quiet_datatrove
    ("qwen3_recipe.quality.filter", "qwen3_recipe.data.dedup"),      # _publish, _reader, _write_listing
]


def module_files(root: Path = ROOT, pkg: str = PKG) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [pkg, *path.relative_to(root).with_suffix("").parts]
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def import_nodes(tree: ast.Module):
    """(node, runs at import time) for every import that can run: at module level (in its if/try
    blocks and class bodies too) or inside a function."""
    def visit(node: ast.AST, top: bool):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, top
            return
        inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in node.orelse if _type_checking(node) else ast.iter_child_nodes(node):
            yield from visit(child, inner)
    yield from visit(tree, True)


def imports(name: str, path: Path, is_pkg: bool, modules: dict) -> list[tuple[str, str | None, bool, int]]:
    """(imported module, imported name or None, at module level, line) for each import of `name`;
    `from M import sub` names the submodule M.sub when there is one."""
    out = []
    for node, top in import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, None, top, node.lineno) for alias in node.names]
            continue
        base = node.module or ""
        if node.level:
            anchor = name.split(".") if is_pkg else name.split(".")[:-1]
            anchor = anchor[:len(anchor) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            out.append((sub, None, top, node.lineno) if sub in modules else (base, alias.name, top, node.lineno))
    return out


def subpackage(module: str) -> str:
    """The top-level subpackage of a module of ours (qwen3_recipe.data.dedup -> data)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def ours(module: str) -> bool:
    return module == PKG or module.startswith(PKG + ".")


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def cli_imports(modules: dict) -> list[str]:
    """Imports of qwen3_recipe.cli from outside it (the CLI itself and `python -m qwen3_recipe` may)."""
    bad = []
    for name, (path, is_pkg) in modules.items():
        if name == f"{PKG}.cli" or name.startswith(f"{PKG}.cli.") or name == f"{PKG}.__main__":
            continue
        for target, _, _, line in imports(name, path, is_pkg, modules):
            if target == f"{PKG}.cli" or target.startswith(f"{PKG}.cli."):
                bad.append(f"{name}:{line} imports {target}")
    return sorted(set(bad))  # one line per import statement


def private_imports(modules: dict) -> list[str]:
    """Private names (or private modules) of one of our subpackages imported from another."""
    bad = []
    for name, (path, is_pkg) in modules.items():
        for target, imported, _, line in imports(name, path, is_pkg, modules):
            if not ours(target) or subpackage(target) == subpackage(name):
                continue
            names = target.split(".")[1:] + ([imported] if imported else [])
            if any(private(n) for n in names):
                bad.append(f"{name}:{line} imports {target}" + (f" {imported}" if imported else ""))
    return bad


def import_graph(modules: dict, module_level_only: bool) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports. Importing a.b.c also runs the packages a.b and a
    (unless they are the importer's own packages, already running)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_pkg) in modules.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for target, _, top, _ in imports(name, path, is_pkg, modules):
            if not ours(target) or (module_level_only and not top):
                continue
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dep = ".".join(parts[:i])
                if dep in modules and dep not in own:
                    graph[name].add(dep)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    out.append(sorted(component))
    return out


def cycles(graph: dict[str, set[str]], among: tuple[str, ...] = CYCLE_FREE) -> list[list[str]]:
    """The strongly connected components of more than one module that hold a module of `among`
    (the cycle may pass through modules of other packages)."""
    return [c for c in strongly_connected(graph) if len(c) > 1 and any(subpackage(m) in among for m in c)]


@pytest.fixture(scope="module")
def modules():
    return module_files()


def test_only_the_cli_imports_the_cli(modules):
    assert cli_imports(modules) == []


def test_no_private_names_across_packages(modules):
    assert private_imports(modules) == []


@pytest.mark.parametrize("module_level_only", [True, False], ids=["module-level", "with-function-level"])
def test_data_quality_launch_import_no_cycle(modules, module_level_only):
    graph = import_graph(modules, module_level_only)
    for src, dst in ALLOWED_BACK_EDGES:
        graph[src].discard(dst)
    assert cycles(graph) == []


def test_the_cycles_of_issue_14_stay_broken(modules):
    graph = import_graph(modules, module_level_only=False)
    assert [edge for edge in REMOVED_EDGES if edge[1] in graph[edge[0]]] == []


def test_the_checks_see_violations(tmp_path):
    """A tiny package with one of each violation: the checks must find them."""
    pkg = tmp_path / PKG
    for sub in ("cli", "data", "launch", "quality"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "render.py").write_text("def console(): pass\n")
    (pkg / "data" / "stages.py").write_text("def run():\n    from qwen3_recipe.launch.run import execute\n")
    (pkg / "launch" / "run.py").write_text("from qwen3_recipe.data.stages import run\n"
                                           "def execute():\n    from ..cli.render import console\n")
    (pkg / "quality" / "filter.py").write_text("from qwen3_recipe.data.stages import _publish\n"
                                               "from typing import TYPE_CHECKING\n"
                                               "if TYPE_CHECKING:\n    from qwen3_recipe.data import x\n")
    found = module_files(pkg, PKG)
    assert cli_imports(found) == ["qwen3_recipe.launch.run:3 imports qwen3_recipe.cli.render"]
    assert private_imports(found) == ["qwen3_recipe.quality.filter:1 imports qwen3_recipe.data.stages _publish"]
    assert cycles(import_graph(found, module_level_only=True)) == []
    assert cycles(import_graph(found, module_level_only=False)) == [
        ["qwen3_recipe.data.stages", "qwen3_recipe.launch.run"]]

