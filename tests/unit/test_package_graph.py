"""The import graph of chalicelib's packages: no cycles, and the layers point one way.

Read from the source (nothing is imported), counting every import: at the top of a module,
inside a function, under ``TYPE_CHECKING``. A function-local import that only hides a
cycle from the interpreter is still an edge here. A node is a package
(``chalicelib.imap``) or a top-level module (``chalicelib.errors``)::

    api        blueprints                    -> services, schemas
    services   use cases                     -> schemas, adapters, sync
    adapters   imap smtp store events webhooks
    sync       pure change detection (imap, store and the watcher use its types)
    top-level  errors, settings, message_ids, varint, ...: below every package

The layers, as rules on edges:
- nothing imports ``api``; ``api`` reaches adapters only through ``services``;
- adapters import neither ``services`` nor ``schemas`` (the API's shapes);
- ``schemas`` import no ``store`` (its models would load with every request shape);
- ``imap`` imports no ``store``; ``sync`` imports no adapter but the event contract
  (``events``), and nothing it loads, however indirectly, imports boto3, botocore,
  pynamodb or imapclient;
- only ``imap`` imports imapclient, only ``store`` pynamodb;
- the watcher image (``workers``) imports neither ``app`` nor ``local``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "chalicelib"

ADAPTERS = frozenset({"imap", "smtp", "store", "events", "webhooks"})
FORBIDDEN_EDGES: dict[str, frozenset[str]] = {
    "api": ADAPTERS | {"sync"},
    "schemas": frozenset({"api", "services", "store"}),
    **{adapter: frozenset({"api", "services", "schemas"}) for adapter in ADAPTERS},
    "imap": frozenset({"api", "services", "schemas", "store"}),
    "sync": (ADAPTERS - {"events"}) | {"api", "services", "schemas"},  # events: the contract sync emits
}
SIDE_EFFECT_LIBRARIES = frozenset({"boto3", "botocore", "pynamodb", "imapclient"})
LIBRARY_OWNERS = {"imapclient": "imap", "pynamodb": "store"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. chalicelib.sync.reconcile
    target: str  # the imported module or name, e.g. chalicelib.message_ids.MessageRef
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = ROOT) -> list[Import]:
    """Every import in the file, wherever it appears, with relative imports made absolute."""
    source = module_name(path, root)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(source, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # ``from chalicelib import errors`` names a module: the edge goes to it.
            found += [Import(source, f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


@cache
def all_imports() -> tuple[Import, ...]:
    files = [*sorted((ROOT / PACKAGE).rglob("*.py")), *sorted((ROOT / "workers").rglob("*.py"))]
    return tuple(found for path in files for found in imports_of(path))


def node_of(module: str) -> str | None:
    """``chalicelib.imap.pool`` -> ``imap``; ``chalicelib.errors.ApiError`` -> ``errors``; else None."""
    parts = module.split(".")
    return parts[1] if parts[0] == PACKAGE and len(parts) > 1 else None


def package_graph(imports: tuple[Import, ...]) -> dict[str, dict[str, list[Import]]]:
    graph: dict[str, dict[str, list[Import]]] = defaultdict(lambda: defaultdict(list))
    for found in imports:
        source, target = node_of(found.source), node_of(found.target)
        if source and target and source != target:
            graph[source][target].append(found)
    return graph


def cycles(graph: dict[str, dict[str, list[Import]]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph.get(node, {}):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    nodes = set(graph) | {target for targets in graph.values() for target in targets}
    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return components


def module_path(module: str) -> Path | None:
    """The file of a chalicelib module, or None for a name inside a module or outside chalicelib."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def loaded_modules(start: str) -> dict[str, Path]:
    """The chalicelib modules (and their files) that importing ``start`` can load, through any
    import in any of them."""
    seen: dict[str, Path] = {}
    pending = [start]
    while pending:
        module = pending.pop()
        path = module_path(module)
        if path is None or module in seen:
            continue
        seen[module] = path
        parts = module.split(".")
        pending += [".".join(parts[:i]) for i in range(2, len(parts))]  # parent packages' __init__
        for found in imports_of(path):
            if found.target.startswith(PACKAGE + "."):
                target = found.target
                pending += [target, target.rpartition(".")[0]]  # a module, or a name in a module
    return seen


# -- the tree as it is ----------------------------------------------------------------------------


def test_chalicelib_packages_import_each_other_without_cycles():
    graph = package_graph(all_imports())
    found = cycles(graph)
    # One import per edge of each cycle, enough to start untangling it.
    explained = [f"{source} -> {target}: {graph[source][target][0]}" for component in found
                 for source in component for target in component if target in graph[source]]
    assert not found, f"package cycles {found}:\n" + "\n".join(explained)


def test_layers_point_one_way():
    graph = package_graph(all_imports())
    wrong = [str(edge) for source, forbidden in FORBIDDEN_EDGES.items() for target in sorted(forbidden)
             for edge in graph.get(source, {}).get(target, [])]
    wrong += [str(edge) for targets in graph.values() for edge in targets.get("api", [])]
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_only_the_owning_adapter_imports_imapclient_and_pynamodb():
    wrong = [str(found) for found in all_imports() for library, owner in LIBRARY_OWNERS.items()
             if found.target.split(".")[0] == library and node_of(found.source) != owner]
    assert not wrong, "\n".join(wrong)


def test_sync_loads_no_aws_or_imap_library_however_indirectly():
    sync_modules = [module_name(path) for path in sorted((ROOT / PACKAGE / "sync").rglob("*.py"))]
    loaded = {module: path for start in sync_modules for module, path in loaded_modules(start).items()}
    wrong = [f"{found} (loaded by the sync package)" for module, path in sorted(loaded.items())
             for found in imports_of(path) if found.target.split(".")[0] in SIDE_EFFECT_LIBRARIES]
    assert not wrong, "\n".join(wrong)


def test_the_watcher_image_imports_nothing_only_the_repository_has():
    wrong = [str(found) for found in all_imports() if found.source.startswith("workers")
             and found.target.split(".")[0] in {"app", "local", "tests"}]
    assert not wrong, "\n".join(wrong)


# -- the checker itself ---------------------------------------------------------------------------


def imports_in(tmp_path: Path, relative: str, text: str) -> list[Import]:
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return imports_of(path, tmp_path)


def test_a_function_local_import_is_an_edge(tmp_path):
    # Given a module whose only import of another package sits inside a function
    found = imports_in(tmp_path, "chalicelib/sync/late.py",
                       "def f():\n    from chalicelib.services.messages import x\n    return x\n")
    # Then the late import is an edge sync -> services all the same
    assert [(f.target, f.line) for f in found] == [("chalicelib.services.messages.x", 2)]
    assert set(package_graph(tuple(found))["sync"]) == {"services"}


def test_relative_and_package_imports_resolve_to_the_module_they_name(tmp_path):
    assert [f.target for f in imports_in(tmp_path, "chalicelib/imap/x.py", "from ..store import leases\n")] \
        == ["chalicelib.store.leases"]
    assert [f.target for f in imports_in(tmp_path, "chalicelib/imap/__init__.py", "from . import pool\n")] \
        == ["chalicelib.imap.pool"]
    assert node_of("chalicelib.errors.ApiError") == "errors" and node_of("chalicelib") is None


def test_a_cycle_through_three_packages_is_found_and_a_chain_is_not():
    edges = (Import("chalicelib.a.m", "chalicelib.b.n", 1), Import("chalicelib.b.n", "chalicelib.c", 1),
             Import("chalicelib.c", "chalicelib.d.f", 1))
    assert cycles(package_graph(edges)) == []
    closing = Import("chalicelib.c", "chalicelib.a.m.f", 2)
    assert cycles(package_graph((*edges, closing))) == [["a", "b", "c"]]
