"""Static checks of the source tree's shape: size limits and the direction of imports.

Both read the sources with :mod:`ast` (nothing is imported or run), so they work on any tree; the tests
point them at the checkout and at small synthetic trees that break a rule on purpose.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("shared", "realtime", "model")
"""Top-level packages whose sources the limits cover."""
MAX_FILE_LINES = 500
MAX_CLASS_LINES = 250
MAX_FUNCTION_LINES = 80
SPECIAL_LIMITS = {"model/train.py": 400, "model/README.md": 220}
"""Files with a limit of their own, lines: the training recipe kept to its steps, the model card short."""


@dataclass(frozen=True)
class Oversize:
    """One file, class or function over its limit."""

    path: str
    """Source file relative to the root, POSIX separators."""
    kind: str
    """``"file"``, ``"class"`` or ``"function"``."""
    name: str
    """Qualified name inside the file (``""`` for the file itself)."""
    lines: int

    def __str__(self) -> str:
        where = f"{self.path}:{self.name}" if self.name else self.path
        return f"{self.kind} {where} has {self.lines} lines"


def _sources(root: Path, packages: Iterable[str]) -> Iterator[Path]:
    for package in packages:
        yield from sorted((root / package).rglob("*.py"))


def _is_kernel_loop(path: str, node: ast.AST) -> bool:
    """Compiled kernel loops (``shared/kernels.py``'s ``*_loops``, numba ``nopython``) are exempt."""
    return path == "shared/kernels.py" and getattr(node, "name", "").endswith("_loops")


def _kernel_loop_lines(rel: str, tree: ast.Module) -> int:
    """Lines of a file's compiled kernel loops, which its own length does not count."""
    return sum(
        (node.end_lineno or node.lineno) - node.lineno + 1 for node in tree.body if _is_kernel_loop(rel, node)
    )


def oversized(root: Path, packages: Iterable[str] = PACKAGES) -> list[Oversize]:
    """Every file over :data:`MAX_FILE_LINES` (compiled kernel loops not counted, :data:`SPECIAL_LIMITS`
    where named), class over :data:`MAX_CLASS_LINES` and function over :data:`MAX_FUNCTION_LINES` lines
    (decorators excluded, docstrings included) under ``root``."""
    found: list[Oversize] = []
    for rel, limit in SPECIAL_LIMITS.items():
        file = root / rel
        if file.suffix == ".py" or not file.exists():  # sources are measured below
            continue
        if (n := len(file.read_text(encoding="utf-8").splitlines())) > limit:
            found.append(Oversize(rel, "file", "", n))
    for file in _sources(root, packages):
        rel = file.relative_to(root).as_posix()
        text = file.read_text(encoding="utf-8")
        tree = ast.parse(text)
        n = len(text.splitlines()) - _kernel_loop_lines(rel, tree)
        if n > SPECIAL_LIMITS.get(rel, MAX_FILE_LINES):
            found.append(Oversize(rel, "file", "", n))

        def visit(node: ast.AST, prefix: str, rel: str = rel) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    name = f"{prefix}{child.name}"
                    n = (child.end_lineno or child.lineno) - child.lineno + 1
                    is_class = isinstance(child, ast.ClassDef)
                    limit = MAX_CLASS_LINES if is_class else MAX_FUNCTION_LINES
                    if n > limit and not _is_kernel_loop(rel, child):
                        found.append(Oversize(rel, "class" if is_class else "function", name, n))
                    visit(child, name + ".", rel)
                else:
                    visit(child, prefix, rel)

        visit(tree, "")
    return found


# ------------------------------------------------------------------------------------------ import graph


def module_name(root: Path, file: Path) -> str:
    """``realtime/aws/lambda_types.py`` → ``realtime.aws.lambda_types`` (``__init__`` → the package)."""
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names ``module`` imports, anywhere in it (function-level imports too), except inside
    ``if TYPE_CHECKING:``. ``from a import b`` yields ``a`` and ``a.b`` (``b`` may be a module)."""
    found: set[str] = set()
    base = module.split(".") if is_package else module.split(".")[:-1]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    anchor = base[: len(base) - (child.level - 1)]
                    target = ".".join([*anchor, child.module] if child.module else anchor)
                else:
                    target = child.module or ""
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in child.names if alias.name != "*")
            visit(child)

    visit(ast.parse(source))
    return {name for name in found if name and name != "__future__"}


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    """``{module: names it imports}`` for every module of ``packages`` under ``root``."""
    graph: dict[str, set[str]] = {}
    for file in _sources(root, packages):
        name = module_name(root, file)
        graph[name] = imports_of(file.read_text(encoding="utf-8"), name, file.name == "__init__.py")
    return graph


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def closure(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every name importing ``start`` may import: first-party modules followed (with their parent
    packages, which Python imports first), third-party names kept as written."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        module = stack.pop()
        if module in seen:
            continue
        seen.add(module)
        if module in graph:
            stack.extend(_parents(module))
            stack.extend(graph[module])
    return seen


def within(name: str, prefixes: Iterable[str]) -> bool:
    """Whether ``name`` is one of ``prefixes`` or inside one of them (``a.b`` is within ``a``)."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


CORE = (
    "shared",
    "realtime.protocol",
    "realtime.messages",
    "realtime.access",
    "realtime.logs",
    "realtime.paths",
)
"""The pure core: preprocessing, inference, the sans-I/O protocol."""
ADAPTERS = ("realtime.server", "realtime.aws", "realtime.tools", "model")
"""Code that runs somewhere: the local server, Lambda, the command line, training."""
WEB_FRAMEWORKS = ("fastapi", "starlette", "uvicorn")
LAMBDA_WEBSOCKET_HANDLER = "realtime.aws.websocket_handler"
ALLOWED = {("realtime.aws.http_handler", "realtime.server.app")}
"""Edges that cross a boundary on purpose: the HTTP Lambda serves the local server's app behind Mangum."""


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports against the direction rules, one sentence each (empty: the tree obeys them).

    1. The core imports no adapter and no web framework.
    2. ``realtime.aws`` imports nothing from ``realtime.server`` or ``realtime.tools`` (except
       :data:`ALLOWED`).
    3. The Lambda WebSocket handler's import closure holds no fastapi, starlette or uvicorn.
    """
    found: list[str] = []
    for module, names in sorted(graph.items()):
        for name in sorted(names):
            if any(module == source and within(name, (target,)) for source, target in ALLOWED):
                continue
            if within(module, CORE) and within(name, ADAPTERS + WEB_FRAMEWORKS):
                found.append(f"core module {module} imports {name}")
            if within(module, ("realtime.aws",)) and within(name, ("realtime.server", "realtime.tools")):
                found.append(f"{module} (Lambda) imports {name}")
    if LAMBDA_WEBSOCKET_HANDLER in graph:
        heavy = sorted(n for n in closure(graph, LAMBDA_WEBSOCKET_HANDLER) if within(n, WEB_FRAMEWORKS))
        found.extend(f"{LAMBDA_WEBSOCKET_HANDLER} imports {name} (through its closure)" for name in heavy)
    return found
