"""List the import cycles among the project's packages (bot, handlers, storage).

Run: `.venv/bin/python scripts/import_cycles.py` (exit code 1 if any cycle is found). It builds
the same import graph as import-linter (grimp, which import-linter ships) and prints, for each
strongly connected group of modules, the modules and one shortest loop through them, with the
line of each import. Imports inside functions and under `if TYPE_CHECKING:` count too, as they do
for import-linter's contracts. `make lint` runs it beside import-linter, whose acyclic_siblings
contract does not see a loop between a package's `__init__` and one of its own modules (the
`bot.text` <-> `bot.text.corpus` loop was one).
"""

from __future__ import annotations

import itertools
import sys
from collections import deque

import grimp

PACKAGES = ("bot", "handlers", "storage")


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm over module -> imported module (iterative); groups of 2+ modules."""
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return groups


def shortest_loop(graph: grimp.ImportGraph, group: list[str]) -> list[str]:
    """One shortest cycle through the group's first module, within the group."""
    members = set(group)
    start = group[0]
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph.find_modules_directly_imported_by(node)):
            if child not in members:
                continue
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    return [start]


def main() -> int:
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=False, cache_dir=None)
    groups = strongly_connected(graph)
    for group in groups:
        print(f"cycle among {len(group)} modules: {', '.join(group)}")
        loop = shortest_loop(graph, group)
        for importer, imported in itertools.pairwise(loop):
            details = graph.get_import_details(importer=importer, imported=imported)
            lines = ", ".join(str(d["line_number"]) for d in details)
            print(f"  {importer} -> {imported} (line {lines})")
    if not groups:
        print("no import cycles among " + ", ".join(PACKAGES))
    return 1 if groups else 0


if __name__ == "__main__":
    sys.exit(main())
