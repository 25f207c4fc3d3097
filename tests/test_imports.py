"""No module of epochbench imports one that imports it back, directly or through a chain.

Read from the source with ast, imports inside functions included: a lazy import
keeps a circle from failing at import time, not from tangling the modules.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "epochbench"


def import_graph(package: Path) -> dict:
    """{module: the package's modules it imports anywhere in its file}, for every module of `package`."""
    modules = {path.stem for path in package.glob("*.py")} - {"__init__"}
    return {module: imported_modules(package / f"{module}.py", modules) for module in modules}


def imported_modules(path: Path, modules: set) -> set:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.removeprefix("epochbench.") for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from .x import y, from . import x
                base = node.module or ""
            elif node.level == 0 and (node.module or "").split(".")[0] == "epochbench":
                base = node.module.removeprefix("epochbench").removeprefix(".")
            else:
                continue
            # `from x import y` imports module x, and module x.y if y is one: `from . import stepdown` does.
            found |= {base} | {f"{base}.{alias.name}".lstrip(".") for alias in node.names}
    return found & modules


def circle_through(graph: dict, start: str) -> "list | None":
    """The shortest chain of imports from `start` back to `start`, or None."""
    chains, seen = [[start]], set()
    while chains:
        chain = chains.pop(0)
        for imported in sorted(graph[chain[-1]]):
            if imported == start:
                return [*chain, start]
            if imported not in seen:
                seen.add(imported)
                chains.append([*chain, imported])
    return None


def test_a_circle_is_found_through_lazy_and_absolute_imports(tmp_path):
    (tmp_path / "a.py").write_text("from .b import something\n")
    (tmp_path / "b.py").write_text("def later():\n    from . import c\n")
    (tmp_path / "c.py").write_text("import epochbench.a\nfrom epochbench.d import other\n")
    (tmp_path / "d.py").write_text("import json\n")
    graph = import_graph(tmp_path)
    assert graph == {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert circle_through(graph, "a") == ["a", "b", "c", "a"] and circle_through(graph, "d") is None


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph(PACKAGE)
    assert graph["data"] >= {"datasets", "io"}  # a reader that found no imports would find no circle either
    circles = [" -> ".join(chain) for module in sorted(graph) if (chain := circle_through(graph, module))]
    assert not circles, f"import circles: {circles}"
