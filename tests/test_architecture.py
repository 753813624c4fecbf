"""The package's structure, as docs/architecture.md draws it: every import points down the data's path.

Two rules, checked on the source of every module (module-level and function-level imports, not the
ones under ``if TYPE_CHECKING:``, which never run):

1. a module imports only modules of its own room or of a room listed before it in :data:`LAYERS`;
2. no import inside a function, except the CLI's deliberate lazy loading (``iphbench/cli/``: each
   verb imports its machinery when it runs, so ``iphbench --help`` stays fast) and the optional
   extras in :data:`LAZY_EXTRAS`, which may be absent or are slow to import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import iphbench

SRC = Path(iphbench.__file__).parent

#: The rooms of ``src/iphbench`` in the data's order: a room may import the ones before it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("iphbench", "_files", "_device", "views", "masks"),  # foundations, no iphbench imports but these
    ("config",),
    ("layout",),
    ("io",),
    ("synth",),
    ("preprocessing",),
    ("models",),
    ("training",),
    ("inference",),
    ("evaluation",),
    ("nnunet",),
    ("styles",),
    ("study",),
    ("stats",),
    ("report",),
    ("demo",),
    ("cli",),
)
#: Imported inside functions on purpose: optional extras (iphbench[nnunet], [ray], [dicom]), the one
#: iphbench module that needs nnunetv2 to import, and torch's compiler internals (only when compiling).
LAZY_EXTRAS: tuple[str, ...] = (
    "nnunetv2",
    "iphbench.nnunet._trainer",
    "ray",
    "pydicom",
    "highdicom",
    "torch._inductor",
)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. iphbench.study.grid
    target: str  # the imported module, e.g. iphbench.layout
    line: int
    in_function: bool

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer(module: str) -> int:
    name = room(module)
    for i, rooms in enumerate(LAYERS):
        if name in rooms:
            return i
    raise AssertionError(f"{module}: room {name!r} is not in LAYERS; add it where the data's path puts it")


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    name = ".".join(rel.parts)
    return name.removesuffix(".__init__")


def imports_of(path: Path) -> list[Import]:
    module = module_name(path)
    found: list[Import] = []

    class Visitor(ast.NodeVisitor):
        depth = 0

        def visit_If(self, node: ast.If) -> None:
            if "TYPE_CHECKING" in ast.unparse(node.test):
                return  # annotations only: never executed
            self.generic_visit(node)

        def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
            self.depth += 1
            self.generic_visit(node)
            self.depth -= 1

        visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

        def visit_Import(self, node: ast.Import) -> None:
            for alias in node.names:
                found.append(Import(module, alias.name, node.lineno, self.depth > 0))

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            assert node.level == 0, f"{module}:{node.lineno}: relative import; write the absolute module"
            target = node.module or ""
            if target == "iphbench":  # from iphbench import x: x may be a room (import of a sub-module)
                for alias in node.names:
                    is_module = (SRC / alias.name).is_dir() or (SRC / f"{alias.name}.py").is_file()
                    name = f"iphbench.{alias.name}" if is_module else target
                    found.append(Import(module, name, node.lineno, self.depth > 0))
            else:
                found.append(Import(module, target, node.lineno, self.depth > 0))

    Visitor().visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


ALL = [imp for path in sorted(SRC.rglob("*.py")) for imp in imports_of(path)]


def test_the_scan_found_the_imports() -> None:
    """The checks below are not vacuous: the scan sees the package's imports, deep and lazy ones too."""
    internal = [i for i in ALL if i.target.startswith("iphbench.")]
    assert len({i.module for i in ALL}) > 100 and len(internal) > 300
    assert any(i.in_function and i.module.startswith("iphbench.cli.") for i in ALL)
    assert any(i.module == "iphbench.study.grid" and i.target == "iphbench.layout" for i in internal)


def test_every_import_points_down_the_data_path() -> None:
    upward = [
        f"{i} ({room(i.module)} is before {room(i.target)} in LAYERS)"
        for i in ALL
        if i.target.startswith("iphbench") and layer(i.target) > layer(i.module)
    ]
    assert not upward, "imports running back up:\n" + "\n".join(upward)


def test_no_import_inside_a_function_but_the_cli_and_optional_extras() -> None:
    lazy = [
        str(i)
        for i in ALL
        if i.in_function
        and room(i.module) != "cli"
        and not any(i.target == e or i.target.startswith(e + ".") for e in LAZY_EXTRAS)
    ]
    assert not lazy, "imports inside functions (move them to the module's top):\n" + "\n".join(lazy)


@pytest.mark.parametrize("extra", LAZY_EXTRAS)
def test_every_listed_lazy_extra_is_still_used(extra: str) -> None:
    """The allowance list stays the list of what is really imported lazily (no stale entries)."""
    assert any(i.in_function and (i.target == extra or i.target.startswith(extra + ".")) for i in ALL), extra


def test_every_room_is_placed() -> None:
    rooms = {room(module_name(p)) for p in SRC.rglob("*.py")}
    placed = {r for rooms_ in LAYERS for r in rooms_}
    assert rooms <= placed, f"rooms missing from LAYERS: {sorted(rooms - placed)}"


def test_the_cli_starts_without_the_heavy_machinery() -> None:
    """The CLI's lazy loading does its job: `iphbench --help` imports neither torch nor the stages."""
    import subprocess
    import sys

    code = (
        "import sys, iphbench.cli; "
        "heavy = [m for m in ('torch', 'pandas', 'matplotlib', 'statsmodels', 'iphbench.study') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported when the CLI starts: {out.stdout.strip()}"
