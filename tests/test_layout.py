"""Layering: no module imports an entry point (a CLI that parses, calls and prints), not even another CLI,
and the package's top level holds only entry points (``python -m fgvc_mix.<name>``) and ``errors``: the
library lives in ``data/``, ``models/``, ``mixing/``, ``training/`` and ``evaluation/``.

Entry points are found from the source, not listed by hand: a module with a top-level
``if __name__ == "__main__":`` guard or a ``@hydra.main`` function. A new CLI is covered
the day it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fgvc_mix"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_entry_point(tree: ast.Module) -> bool:
    """A top-level ``__name__ == "__main__"`` guard, or a function decorated with ``hydra.main(...)``."""
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            operands = [node.test.left, *node.test.comparators]
            if any(isinstance(o, ast.Name) and o.id == "__name__" for o in operands) and any(
                isinstance(o, ast.Constant) and o.value == "__main__" for o in operands
            ):
                return True
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                call = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(call, ast.Attribute) and call.attr == "main" and ast.unparse(call.value) == "hydra":
                    return True
    return False


def imported_modules(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """Every dotted name an import statement anywhere in the module may refer to (``from a import b`` gives a, a.b)."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def parse_package() -> dict[str, tuple[ast.Module, bool]]:
    return {
        module_name(path): (ast.parse(path.read_text(), filename=str(path)), path.name == "__init__.py")
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def entry_point_imports(modules: dict[str, tuple[ast.Module, bool]]) -> list[str]:
    entry_points = {name for name, (tree, _) in modules.items() if is_entry_point(tree)}
    return [
        f"{name} imports entry point {target}"
        for name, (tree, is_package) in modules.items()
        for target in sorted(imported_modules(tree, name, is_package) & entry_points - {name})
    ]


def test_entry_points_are_found_from_the_source():
    modules = parse_package()
    entry_points = {name for name, (tree, _) in modules.items() if is_entry_point(tree)}
    assert {"fgvc_mix.train", "fgvc_mix.evaluate", "fgvc_mix.sweep"} <= entry_points
    assert "fgvc_mix.training.sweep_summary" not in entry_points and "fgvc_mix.training.module" not in entry_points


def test_the_top_level_holds_only_entry_points_and_errors():
    modules = parse_package()
    top_level = {name for name in modules if name.count(".") == 1 and not (PACKAGE / name.split(".")[1]).is_dir()}
    library = {name for name in top_level if not is_entry_point(modules[name][0])}
    assert library == {"fgvc_mix.errors"}, f"library modules at the top level: move them into a package: {library}"


def test_no_module_imports_an_entry_point():
    assert entry_point_imports(parse_package()) == []


def test_the_check_catches_absolute_and_relative_imports_of_an_entry_point():
    cli = ast.parse('import sys\n\nif __name__ == "__main__":\n    print(sys.argv)\n')
    hydra_cli = ast.parse("import hydra\n\n@hydra.main(version_base='1.3')\ndef main(cfg):\n    pass\n")
    modules = {
        "fgvc_mix.cli": (cli, False),
        "fgvc_mix.hydra_cli": (hydra_cli, False),
        "fgvc_mix.a": (ast.parse("from fgvc_mix.cli import x\n"), False),
        "fgvc_mix.b": (ast.parse("from fgvc_mix import hydra_cli\n"), False),
        "fgvc_mix.sub": (ast.parse("def f():\n    from .. import cli\n"), True),
        "fgvc_mix.fine": (ast.parse("from fgvc_mix.a import x\n"), False),
    }
    assert entry_point_imports(modules) == [
        "fgvc_mix.a imports entry point fgvc_mix.cli",
        "fgvc_mix.b imports entry point fgvc_mix.hydra_cli",
        "fgvc_mix.sub imports entry point fgvc_mix.cli",
    ]
    # train.py importing write_job_result from the sweep CLI: an entry point importing another one
    modules["fgvc_mix.hydra_cli"] = (ast.parse(ast.unparse(hydra_cli) + "\nfrom fgvc_mix.cli import x\n"), False)
    assert "fgvc_mix.hydra_cli imports entry point fgvc_mix.cli" in entry_point_imports(modules)
