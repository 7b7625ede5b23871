"""A DAG of named jobs: topological order, cycle errors naming the path, descendants."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class CycleError(ValueError):
    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


def toposort(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Jobs in dependency order; ties keep declaration order (stable, deterministic)."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, stack: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            raise CycleError(stack[stack.index(node):] + [node])
        state[node] = 1
        for dep in deps.get(node, ()):
            visit(dep, stack + [node])
        state[node] = 2
        order.append(node)

    for node in deps:
        visit(node, [])
    return order


def descendants(deps: Mapping[str, Iterable[str]], roots: Iterable[str]) -> set[str]:
    """Every job downstream of `roots` (roots excluded)."""
    children: dict[str, list[str]] = {}
    for node, parents in deps.items():
        for parent in parents:
            children.setdefault(parent, []).append(node)
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def ancestors(deps: Mapping[str, Iterable[str]], roots: Iterable[str]) -> set[str]:
    """Every job upstream of `roots` (roots excluded)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        for parent in deps.get(todo.pop(), ()):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen
