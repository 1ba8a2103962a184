"""Imports run one way: fails on an import of a higher layer or on an import cycle between our modules.

Every import counts, also one inside a function. `python scripts/check_layers.py` (run by `make lint` and by
tests/unit/test_layers.py) prints each offence and exits 1, or prints the layers and exits 0.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Package -> the packages of ours it may import. Bottom first: core is the contracts, settings, tables, object
# store and AWS clients; the stages sit on it (a stage may use another stage's public parser or models where
# named here); the local runtime of the AWS APIs beside them; the generators, benches and the CLI on top.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "streaming": {"core"},
    "flink_jobs": {"core", "streaming"},
    "forecast_orchestrator": {"core"},
    "query": {"core"},
    "alerts": {"core"},
    "glue_jobs": {"core", "forecast_orchestrator", "alerts"},
    "api": {"core", "query", "forecast_orchestrator", "alerts"},
    "local_stack": {"core"},
    "infra": {"core", "flink_jobs", "forecast_orchestrator", "glue_jobs"},
    "bench": {"core", "streaming", "flink_jobs", "forecast_orchestrator", "query", "glue_jobs", "api", "local_stack"},
    "demand": {"core", "streaming", "flink_jobs", "forecast_orchestrator", "query", "glue_jobs", "api", "local_stack"},
}
for _top in ("bench", "demand"):  # the benches and the CLI sit on every stage
    ALLOWED[_top] |= {"alerts"}
PACKAGES = set(ALLOWED)


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every Python file of our packages."""
    found = {}
    for package in sorted(PACKAGES):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> Iterator[tuple[int, str]]:
    """(line, module) for every import of one of our modules in the file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a.b import c`: c may be a module (a.b.c) or a name in a.b
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                     for alias in node.names]  # fmt: skip
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                yield node.lineno, name


def offences() -> list[str]:
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    found = []
    for name, path in known.items():
        package = name.split(".")[0]
        for line, target in imports(path, known):
            if target == name:
                continue
            graph[name].add(target)
            other = target.split(".")[0]
            if other != package and other not in ALLOWED[package]:
                rel = path.relative_to(ROOT)
                found.append(f"{rel}:{line}: {package} must not import {target} ({other} is not below it)")
    found += [f"import cycle among: {', '.join(cycle)}" for cycle in cycles(graph)]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The modules of each strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def main() -> int:
    sys.setrecursionlimit(10_000)
    found = offences()
    for line in found:
        print(line, file=sys.stderr)
    if found:
        return 1
    print(f"imports run one way: {len(modules())} modules in {len(PACKAGES)} packages, no cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
