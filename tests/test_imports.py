"""The shape of agentr_lib's imports (issue 31): no import cycle among its modules, counting the
imports inside functions too (a lazy import hides a cycle, it does not remove it); the
algorithm modules reach nothing of `profiles` (the settings registry sits above the algorithms,
it reads their configs, never the other way round); and no function takes more than 8
parameters except through a config object."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "agentr_lib"
#: the modules that implement the method: they take their settings as config objects
ALGORITHMS = ("agentr_lib.mcts", "agentr_lib.revision", "agentr_lib.train", "agentr_lib.evaluate",
              "agentr_lib.agent", "agentr_lib.data", "agentr_lib.llm")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> set[str]:
    """The agentr_lib modules `name` imports anywhere in its body (top level or in a function)."""
    package = name if _is_package(name) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            # a module's own packages are imported before it runs: not an edge of its own
            if target in MODULES and not name.startswith(target + "."):
                found.add(target)
    found.discard(name)
    return found


GRAPH: dict[str, set[str]] = {name: _imports(name) for name in MODULES}
KNOWN_CYCLES: list[list[str]] = []


def _reach(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in GRAPH[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(GRAPH[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    return out


def test_the_walk_sees_lazy_imports():
    """A guard on the walk itself: pipeline imports the profiles at the top, shard inside functions."""
    assert "agentr_lib.profiles" in GRAPH["agentr_lib.pipeline"]
    assert "agentr_lib.pipeline" in GRAPH["agentr_lib.shard"]


def test_no_import_cycle():
    assert _cycles() == KNOWN_CYCLES


def _builders(name: str) -> list[str]:
    return sorted(m for m in _reach(name) if m == "agentr_lib.build" or m.startswith("agentr_lib.build."))


def test_the_runtime_finds_embedded_models_without_their_builder():
    """Checking a profile imports no model builder; the run layout reads the embedded models'
    folders from the registry (agentr_lib.models), and no module outside agentr_lib.build (the
    layout, the pipeline, the samplers, the notebooks' helpers) reaches any builder module."""
    assert "agentr_lib.smol" not in _reach("agentr_lib.profiles")
    assert _builders("agentr_lib.layout") == []
    runtime = [name for name in MODULES if name != "agentr_lib.build" and not name.startswith("agentr_lib.build.")]
    assert {name: found for name in runtime if (found := _builders(name))} == {}
    assert GRAPH["agentr_lib.models"] == set(), "the registry imports nothing of the project"


def test_algorithm_modules_reach_no_profiles_module():
    algorithms = [name for name in MODULES if any(name == a or name.startswith(a + ".") for a in ALGORITHMS)]
    reached = {name: sorted(m for m in _reach(name) | {name} if m.startswith("agentr_lib.profiles"))
               for name in algorithms}
    assert {name: found for name, found in reached.items() if found} == {}


def _wide_functions(limit: int = 8) -> set[str]:
    """Every function or method of agentr_lib taking more than `limit` parameters (self and
    cls not counted, *args and **kwargs not counted)."""
    found = set()
    for name, path in MODULES.items():
        def visit(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}.{child.name}")
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    args = child.args
                    named = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs
                             if a.arg not in ("self", "cls")]
                    if len(named) > limit:
                        found.add(f"{prefix}.{child.name}")
                    visit(child, f"{prefix}.{child.name}")
        visit(ast.parse(path.read_text()), name)
    return found


def test_no_function_takes_more_than_eight_parameters():
    assert _wide_functions() == set(), "take a config object (EvalConfig, EpisodeSettings, Runner, ...) instead"


def test_the_parameter_count_sees_a_wide_function(tmp_path, monkeypatch):
    """A guard on the count itself: nine named parameters are found, self and **kwargs are not counted."""
    (tmp_path / "wide.py").write_text("def f(a, b, c, d, e, f, g, h, i):\n    pass\n\n\n"
                                      "class C:\n    def m(self, a, b, c, d, e, f, g, h, **kw):\n        pass\n")
    monkeypatch.setattr(sys.modules[__name__], "MODULES", {"agentr_lib.wide": tmp_path / "wide.py"})
    assert _wide_functions() == {"agentr_lib.wide.f"}
