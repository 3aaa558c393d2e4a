"""The layout docs/architecture.md describes, checked from the code's own imports and definitions:
imports point down (no circle, type-only imports included), the model reads no file and prints
nothing, the hardware knows nothing of the kernel, and no function is longer than 120 lines."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

SIMULATOR = Path(__file__).resolve().parent.parent / "simulator"
MODEL = ("simulator.machine", "simulator.mm", "simulator.net", "simulator.sunrpc")
RUNNING = (
    "simulator.scenario",
    "simulator.run",
    "simulator.results",
    "simulator.executor",
    "simulator.sweep",
    "simulator.replay",
    "simulator.validation",
    "simulator.plots",
    "simulator.compare",
    "simulator.docgen",
    "simulator.cli",
)
# (these modules or packages, what they must never import: the layers above them, what they are)
NEVER = (
    (MODEL, ("simulator.system", "simulator.calibration", "simulator.workloads", *RUNNING), "the model"),
    (("simulator.machine",), ("simulator.mm", "simulator.net", "simulator.sunrpc"), "the hardware"),
    (("simulator.workloads",), RUNNING, "a workload"),
    (
        ("simulator.plots", "simulator.compare"),
        ("simulator.run", "simulator.executor", "simulator.sweep"),
        "tables",
    ),
)
# reading or writing files, or the terminal
IO_CALLS = {"open", "print", "input"}
IO_METHODS = {"read_text", "write_text", "read_bytes", "write_bytes"}
IO_MODULES = {"yaml", "json", "sys", "simulator.yamlio"}
MAX_FUNCTION_LINES = 120
LONG_FUNCTIONS: set[str] = set()  # exceptions to MAX_FUNCTION_LINES (none)


def _name(path: Path) -> str:
    parts = path.relative_to(SIMULATOR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, ast.Module]:
    return {_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(SIMULATOR.rglob("*.py"))}


def imports(module: str) -> set[str]:
    """Every simulator module `module` imports, anywhere in it (type-only and in functions too)."""
    known = modules()
    is_package = (SIMULATOR.parent / module.replace(".", "/") / "__init__.py").is_file()
    package = module if is_package else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(known[module]):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for a in node.names:
                full = f"{base}.{a.name}"
                out.add(full if full in known else base)
    return {m for m in out if m in known and m != module}


def _in(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_no_import_circle() -> None:
    graph = {m: imports(m) for m in modules()}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                circle = path[path.index(n) :] + [n]
                pytest.fail("import circle: " + " -> ".join(circle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


@pytest.mark.parametrize(("where", "never", "what"), NEVER, ids=[w for *_, w in NEVER])
def test_imports_point_down(where: tuple[str, ...], never: tuple[str, ...], what: str) -> None:
    wrong = {m: sorted(n for n in imports(m) if _in(n, never)) for m in modules() if _in(m, where)}
    wrong = {m: found for m, found in wrong.items() if found}
    assert not wrong, f"{what} imports what stands above it: {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in modules() if _in(m, MODEL)))
def test_the_model_reads_no_file_and_prints_nothing(module: str) -> None:
    found = []
    for node in ast.walk(modules()[module]):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in IO_CALLS:
                found.append(f"{f.id}() at line {node.lineno}")
            elif isinstance(f, ast.Attribute) and f.attr in IO_METHODS:
                found.append(f".{f.attr}() at line {node.lineno}")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name in IO_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module in IO_MODULES:
            found.append(f"from {node.module} import ...")
    assert not found, f"{module}: {found}"


def test_no_function_is_longer_than_120_lines() -> None:
    long = []
    for module, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                name = f"{module}.{node.name}"
                if lines > MAX_FUNCTION_LINES and name not in LONG_FUNCTIONS:
                    long.append(f"{name} ({lines} lines)")
    assert not long, long
