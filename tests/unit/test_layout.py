"""The code's layout, as a specification: short modules, imports that only point down, no cycles.

The product is five packages. `ingest` turns files into chunks (no database, no model);
`retriever` is the service, built in rooms that each may use only the rooms below it;
`eval` and `bench` use the retriever; `hybrid_rag` assembles the `hybrid-rag` command line.
Every rule is read from the source with `ast`, so nothing here imports the product.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("ingest", "retriever", "eval", "bench", "hybrid_rag")
MAX_LINES = 330  # the guideline is "about 300 lines"; this is the hard limit

CORE = (
    "errors",
    "settings",
    "results",
    "fusion",
    "filters",
    "embeddings",
    "local_model",
    "onnx_export",
    "onnx_embeddings",
    "torch_embeddings",
)

# Where function-local imports of project modules are by design: lazy subcommands,
# the facade's lazy LangChain export, benchmark modules loaded per command.
LAZY_BY_DESIGN = {"hybrid_rag.cli", "retriever", "bench.cli"}


def rank(module: str) -> int | None:
    """The module's room, as a height: a module may import only modules of its own height or lower."""
    top, _, rest = module.partition(".")
    if top == "ingest":
        return 0
    if top == "retriever":
        room = rest.partition(".")[0]
        if not rest:
            return 6  # the public facade, retriever/__init__.py
        if room in CORE and rest == room:
            return 1
        if room == "store":
            return 2
        if rest in (
            "query",
            "text_leg",
            "search",
            "search_settings",
            "nearest",
            "connections",
            "boundary",
            "query_embedder",
        ):
            return 3
        if rest in ("engine", "serving", "lifecycle", "backups", "topics", "searching", "reembed"):
            return 4
        if rest in ("langchain", "vectorstore", "vectorstore_plan", "vectorstore_search", "vectorstore_retriever"):
            return 5
        if room in ("cli", "http"):
            return 5
        return None
    return {"eval": 7, "bench": 8, "hybrid_rag": 9}.get(top)


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


# -- reading the source --------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    importer: str  # the importing module
    imported: str  # the project module it names
    line: int
    local: bool  # inside a function body
    top_level: bool  # runs when the module is imported (not in a function, not under TYPE_CHECKING)

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported} (line {self.line})"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def product_files() -> dict[str, Path]:
    """Every product module by dotted name (a package's `__init__.py` under the package's name)."""
    files = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                files[module_name(path)] = path
    return files


def is_package(module: str) -> bool:
    return product_files()[module].name == "__init__.py"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, local: bool, type_checking: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    """Every import statement under ``node``, with whether it is in a function and under TYPE_CHECKING."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, local, type_checking
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _walk(child, True, type_checking)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.body:
                yield from _walk_statement(statement, local, True)
            for statement in child.orelse:
                yield from _walk_statement(statement, local, type_checking)
        else:
            yield from _walk(child, local, type_checking)


def _walk_statement(
    statement: ast.stmt, local: bool, type_checking: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    wrapper = ast.Module(body=[statement], type_ignores=[])
    yield from _walk(wrapper, local, type_checking)


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The dotted names an import statement brings in (relative imports resolved)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    if node.level:
        package = module if is_package(module) else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        # `from pkg import name` imports the submodule pkg.name when there is one.
        yield submodule if alias.name != "*" and submodule in product_files() else base


@cache
def project_imports() -> tuple[Import, ...]:
    """Every import of a project module by a project module, wherever it sits in the file."""
    found = []
    for module, path in product_files().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, local, type_checking in _walk(tree, False, False):
            for target in _targets(module, node):
                if target.partition(".")[0] in PACKAGES:
                    found.append(Import(module, target, node.lineno, local, not local and not type_checking))
    return tuple(found)


def broken_rule(edge: Import) -> str | None:
    """Why this import goes the wrong way, or None when it is allowed."""
    importer, imported = edge.importer, edge.imported
    if importer == imported:
        return None
    if imported not in product_files():
        return "no such product module"
    if in_package(importer, "ingest") and not in_package(imported, "ingest"):
        return "ingest imports nothing of retriever, eval, bench or hybrid_rag"
    if in_package(importer, "retriever.store") and any(
        in_package(imported, f"retriever.{room}")
        for room in ("engine", "connections", "query", "search", "cli", "http", "langchain")
    ):
        return "the store knows nothing of the engine, connections, statements or edges"
    if in_package(importer, "retriever.http") and in_package(imported, "retriever.cli"):
        return "the HTTP API never imports the CLI"
    if importer.startswith("retriever.") and imported == "retriever":
        return "inside retriever, import the module itself, not the facade (import cycle)"
    if importer == "retriever" and imported == "retriever.langchain":
        return None  # the facade's lazy export
    low, high = rank(imported), rank(importer)
    if low is None or high is None:
        return None  # a module without a room: see test_every_product_module_belongs_to_a_room
    if low > high:
        return f"imports upward (room {high} -> room {low})"
    return None


def listing(items: Iterable[object]) -> str:
    return "\n  " + "\n  ".join(str(item) for item in items)


# -- the specification ------------------------------------------------------------------------


def test_the_layout_checks_see_the_product() -> None:
    modules = product_files()

    assert {"ingest", "retriever", "retriever.engine", "retriever.store.writer", "hybrid_rag.cli"} <= set(modules)
    assert any(edge.imported == "retriever.engine" for edge in project_imports())


def test_no_product_module_is_much_longer_than_300_lines() -> None:
    lengths = {module: len(path.read_text(encoding="utf-8").splitlines()) for module, path in product_files().items()}

    too_long = sorted(f"{product_files()[m].relative_to(REPO)}: {n} lines" for m, n in lengths.items() if n > MAX_LINES)

    assert not too_long, f"modules over {MAX_LINES} lines (split them by responsibility):{listing(too_long)}"


def test_every_product_module_belongs_to_a_room() -> None:
    roomless = sorted(module for module in product_files() if rank(module) is None)

    assert not roomless, f"modules outside every room of the layout:{listing(roomless)}"


def test_imports_follow_the_rooms() -> None:
    violations = [f"{edge}: {reason}" for edge in project_imports() if (reason := broken_rule(edge))]

    assert not violations, f"imports against the layout:{listing(violations)}"


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per back edge of a depth-first search (empty when the graph is acyclic)."""
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for neighbour in sorted(graph.get(node, ())):
            if state.get(neighbour) == "open":
                cycles.append([*path[path.index(neighbour) :], neighbour])
            elif neighbour not in state:
                visit(neighbour)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_there_is_no_import_cycle_between_modules() -> None:
    graph: dict[str, set[str]] = {module: set() for module in product_files()}
    for edge in project_imports():
        if edge.top_level and edge.importer != edge.imported and edge.imported in graph:
            graph[edge.importer].add(edge.imported)

    cycles = [" -> ".join(cycle) for cycle in find_cycles(graph)]

    assert not cycles, f"module-level import cycles:{listing(cycles)}"


def test_function_local_imports_stay_within_the_rules() -> None:
    """Imports inside functions are held to the rules above too (test_imports_follow_the_rooms reads
    them all); beyond that, project modules are imported inside functions only where laziness is the design."""
    hidden = [str(edge) for edge in project_imports() if edge.local and edge.importer not in LAZY_BY_DESIGN]

    assert not hidden, (
        "function-local imports of project modules outside hybrid_rag/cli.py, retriever/__init__.py "
        f"and bench/cli.py (import at the top, or fix the layout that made it necessary):{listing(hidden)}"
    )
