"""Imports run only downward: every module of ``harness_node`` and ``harness`` is parsed with ``ast``
(nothing is imported) and checked against the layer order each package declares in ``LAYERS`` in its
``__init__.py``.

Rules (the name in brackets starts every message, after ``file:line:``):

- [layer] a module imports only from its own layer or lower ones. Every import statement counts,
  wherever it sits: module level, inside a function, under ``if TYPE_CHECKING:``, in ``try``;
  relative imports are resolved; ``from pkg import name`` is an import of ``pkg.name`` when that is a
  module; ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name count too.
  A package's own ``__init__.py`` sits below all its layers (importing ``pkg.x.y`` runs it first),
  so it may import none of its sub-modules.
- [package] ``harness_node`` never imports ``harness`` (the packages are layers too, node lowest).
- [cycle] no import cycle between modules, within a layer or across them (strongly connected
  components of the module graph). Only explicit imports are edges: importing ``a.b.c`` is an edge
  to ``a.b.c``, not to the ``__init__`` of ``a`` and ``a.b`` that Python also runs.
- [unlisted] every sub-package and top-level module is named in exactly one layer, and every name in
  ``LAYERS`` exists.
- [unresolved] an import of the package itself that names no module in it (a typo, or a module that
  moved), and a relative import above the top-level package.
- [layers] ``LAYERS`` is missing or is not a literal tuple of tuples of strings.

Run by hand on other trees (lowest package first): ``python tests/test_layers.py DIR [DIR ...]``.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Lowest first: a package may import the ones before it, never a later one.
PACKAGES = (REPO / "node_image" / "harness_node", REPO / "harness")
RULES = ("layers", "unlisted", "unresolved", "package", "layer", "cycle")


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] {self.message}"


@dataclass
class Package:
    name: str
    root: Path
    index: int  # position in the package order, lowest 0
    rank: dict[str, int] = field(default_factory=dict)  # unit name -> layer number


@dataclass
class Module:
    name: str  # dotted, e.g. harness_node.addr.addrman
    path: Path
    package: Package
    is_init: bool

    @property
    def unit(self) -> str | None:
        """The sub-package or top-level module this module belongs to; None for the package root."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else None

    @property
    def parent(self) -> str:
        """The package a relative import starts from."""
        return self.name if self.is_init else self.name.rsplit(".", 1)[0]


def _show(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def read_layers(init: Path, base: Path) -> tuple[tuple[tuple[str, ...], ...] | None, list[Violation]]:
    """``LAYERS`` from a package's ``__init__.py``, read with ast (the package is not imported)."""
    where = _show(init, base)
    if not init.is_file():
        return None, [Violation(where, 1, "layers", "no __init__.py, so no LAYERS declaration")]
    tree = ast.parse(init.read_text(), filename=str(init))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "LAYERS" for t in targets) and node.value is not None:
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError):  # a call, a name, an expression
                value = None
            ok = isinstance(value, tuple) and all(
                isinstance(layer, tuple) and layer and all(isinstance(n, str) for n in layer) for layer in value
            )
            if not ok:
                return None, [Violation(where, node.lineno, "layers", "LAYERS must be a literal tuple of non-empty tuples of str")]
            return value, []
    return None, [Violation(where, 1, "layers", "declares no LAYERS: tuple[tuple[str, ...], ...] (lowest layer first)")]


def discover(package: Package) -> dict[str, Module]:
    modules = {}
    for path in sorted(package.root.rglob("*.py")):
        rel = path.relative_to(package.root)
        if "__pycache__" in rel.parts:
            continue
        parts = [package.name, *rel.with_suffix("").parts]
        is_init = parts[-1] == "__init__"
        if is_init:
            parts.pop()
        name = ".".join(parts)
        modules[name] = Module(name, path, package, is_init)
    return modules


def _imported_names(module: Module, tree: ast.AST, known: dict[str, Module]) -> list[tuple[str, int]]:
    """(dotted target, line) for every import in the module, wherever it sits."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.parent.split(".")
                if node.level - 1 >= len(anchor):
                    found.append(("." * node.level + (node.module or ""), node.lineno))  # unresolvable
                    continue
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in known else base, node.lineno))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.args[0].value, node.lineno))
    return found


def _layer_name(package: Package, unit: str | None) -> str:
    return "the package __init__" if unit is None else f"layer {package.rank[unit]} ({unit!r})"


def _cycles(edges: dict[str, dict[str, int]], modules: dict[str, Module], base: Path) -> list[Violation]:
    """Tarjan's strongly connected components, iteratively; one violation per component of size > 1."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    out = []
    for component in components:
        members = set(component)
        links = [
            f"{_show(modules[a].path, base)}:{line} imports {b}"
            for a in component
            for b, line in sorted(edges[a].items())
            if b in members
        ]
        first = modules[component[0]]
        out.append(Violation(
            _show(first.path, base), min(edges[component[0]][b] for b in edges[component[0]] if b in members), "cycle",
            f"import cycle between {', '.join(component)}: " + "; ".join(links),
        ))
    return out


def check(roots: tuple[Path, ...] | list[Path], base: Path = REPO) -> list[Violation]:
    """Every violation of the rules above in the packages at ``roots`` (lowest package first)."""
    violations: list[Violation] = []
    packages: dict[str, Package] = {}
    modules: dict[str, Module] = {}
    for i, root in enumerate(roots):
        package = Package(root.name, root, i)
        packages[package.name] = package
        layers, problems = read_layers(root / "__init__.py", base)
        violations += problems
        found = discover(package)
        modules.update(found)
        if layers is None:
            continue
        init_where = _show(root / "__init__.py", base)
        for number, layer in enumerate(layers):
            for unit in layer:
                if unit in package.rank:
                    violations.append(Violation(init_where, 1, "unlisted", f"{unit!r} is declared in two layers"))
                package.rank[unit] = number
        units = {m.unit for m in found.values() if m.unit is not None}
        for unit in sorted(package.rank.keys() - units):
            violations.append(Violation(init_where, 1, "unlisted", f"LAYERS names {unit!r}, which is neither a module nor a sub-package of {package.name}"))
        for module in found.values():
            if module.unit is not None and module.unit not in package.rank:
                violations.append(Violation(_show(module.path, base), 1, "unlisted", f"{module.unit!r} is in no layer of {package.name}.LAYERS"))
                package.rank.setdefault(module.unit, -2)  # reported once per module; skip its edges below

    edges: dict[str, dict[str, int]] = {name: {} for name in modules}
    for module in modules.values():
        where = _show(module.path, base)
        tree = ast.parse(module.path.read_text(), filename=str(module.path))
        for target, line in _imported_names(module, tree, modules):
            top = target.split(".")[0]
            if target.startswith("."):
                violations.append(Violation(where, line, "unresolved", f"relative import {target!r} climbs above the top-level package"))
                continue
            if top not in packages:
                continue  # standard library or a dependency
            dst = modules.get(target)  # `import a.b` and `from a.b import c` need a.b to be a module
            if dst is None:
                violations.append(Violation(where, line, "unresolved", f"imports {target}, which is no module of {top}"))
                continue
            if dst.name == module.name:
                continue
            edges[module.name].setdefault(dst.name, line)
            src_pkg, dst_pkg = module.package, dst.package
            if dst_pkg.index > src_pkg.index:
                violations.append(Violation(where, line, "package", f"{src_pkg.name} imports {dst.name}: {dst_pkg.name} sits above {src_pkg.name} and must never be imported by it"))
                continue
            if dst_pkg is not src_pkg or not src_pkg.rank:
                continue
            src_rank = -1 if module.unit is None else src_pkg.rank[module.unit]
            dst_rank = -1 if dst.unit is None else src_pkg.rank[dst.unit]
            if -2 in (src_rank, dst_rank):
                continue  # an unlisted unit, already reported
            if dst_rank > src_rank:
                violations.append(Violation(
                    where, line, "layer",
                    f"{module.name} ({_layer_name(src_pkg, module.unit)}) imports {dst.name} "
                    f"({_layer_name(src_pkg, dst.unit)}): imports must run to the same or a lower layer",
                ))
    violations += _cycles(edges, modules, base)
    return violations


# ---------------------------------------------------------------- the repository's own packages


@pytest.mark.parametrize("rule", RULES)
def test_repository_packages_follow_their_layers(rule):
    found = [v for v in check(PACKAGES) if v.rule == rule]
    assert not found, f"{len(found)} [{rule}] violation(s):\n" + "\n".join(map(str, found))


# ---------------------------------------------------------------- the checker catches violations


def write_package(root: Path, name: str, files: dict[str, str]) -> Path:
    """A package ``name`` under ``root`` from {relative path: source}; returns its directory."""
    for rel, source in files.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root / name


THREE_LAYERS = 'LAYERS = (("low",), ("mid", "mid2"), ("high", "top"))\n'


def clean_files() -> dict[str, str]:
    return {
        "__init__.py": THREE_LAYERS,
        "low/__init__.py": "",
        "low/codec.py": "import struct\n",
        "low/frames.py": "from . import codec\nfrom .codec import struct\n",
        "mid.py": "from typing import TYPE_CHECKING\nfrom pkg.low import frames\nif TYPE_CHECKING:\n    from pkg.low.codec import struct\n",
        "mid2.py": "import pkg.mid\nfrom pkg import low\n",
        "high.py": "from pkg import mid, mid2\nfrom .low.frames import codec\nimport importlib\nimportlib.import_module('pkg.mid')\n",
        "top.py": "import json\n",  # a leaf: upward imports of it make no cycle, so each test sees one rule
    }


def only(violations: list[Violation], rule: str) -> list[Violation]:
    assert violations, "the checker found nothing"
    assert {v.rule for v in violations} == {rule}, "\n".join(map(str, violations))
    return violations


def test_a_clean_package_passes(tmp_path):
    """Downward, same-layer, relative and TYPE_CHECKING imports that run downward are all allowed."""
    pkg = write_package(tmp_path, "pkg", clean_files())
    assert check([pkg], tmp_path) == []


def test_an_upward_import_is_caught_with_file_and_line(tmp_path):
    files = clean_files()
    files["low/codec.py"] = "import struct\n\nimport pkg.top\n"
    [v] = only(check([write_package(tmp_path, "pkg", files)], tmp_path), "layer")
    assert str(v).startswith("pkg/low/codec.py:3: [layer] pkg.low.codec (layer 0 ('low')) imports pkg.top (layer 2 ('top'))")


def test_an_upward_import_under_type_checking_is_caught(tmp_path):
    files = clean_files()
    files["mid.py"] = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.top import Thing\n"
    [v] = only(check([write_package(tmp_path, "pkg", files)], tmp_path), "layer")
    assert (v.path, v.line) == ("pkg/mid.py", 3)


def test_an_upward_import_inside_a_function_is_caught(tmp_path):
    files = clean_files()
    files["low/frames.py"] = "def later():\n    from pkg import top\n    return top\n"
    [v] = only(check([write_package(tmp_path, "pkg", files)], tmp_path), "layer")
    assert (v.path, v.line) == ("pkg/low/frames.py", 2) and "pkg.top" in v.message


def test_relative_and_from_package_imports_are_resolved(tmp_path):
    files = clean_files()
    files["low/codec.py"] = "from .. import top\n"  # relative, from-package: pkg.top is a module
    files["low/up.py"] = "from ..mid2 import X\n"
    found = sorted(only(check([write_package(tmp_path, "pkg", files)], tmp_path), "layer"), key=lambda v: v.path)
    assert [(v.path, v.line) for v in found] == [("pkg/low/codec.py", 1), ("pkg/low/up.py", 1)]
    assert "imports pkg.top " in found[0].message and "imports pkg.mid2 " in found[1].message


def test_a_literal_import_module_call_is_an_import(tmp_path):
    files = clean_files()
    files["low/codec.py"] = "import importlib\nimportlib.import_module('pkg.top')\n"
    [v] = only(check([write_package(tmp_path, "pkg", files)], tmp_path), "layer")
    assert v.line == 2


def test_the_package_init_may_not_import_its_modules(tmp_path):
    files = clean_files()
    files["__init__.py"] = THREE_LAYERS + "from pkg.low import codec\n"
    [v] = only(check([write_package(tmp_path, "pkg", files)], tmp_path), "layer")
    assert v.path == "pkg/__init__.py" and "the package __init__" in v.message


def test_a_cycle_within_one_layer_is_caught(tmp_path):
    files = clean_files()
    files["low/codec.py"] = "from . import frames\n"  # frames already imports codec
    [v] = only(check([write_package(tmp_path, "pkg", files)], tmp_path), "cycle")
    assert "pkg.low.codec, pkg.low.frames" in v.message
    assert "pkg/low/codec.py:1 imports pkg.low.frames" in v.message and "pkg/low/frames.py:1 imports pkg.low.codec" in v.message


def test_a_cycle_through_type_checking_across_layers_is_caught(tmp_path):
    files = clean_files()
    files["low/codec.py"] = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.mid import M\n"
    found = check([write_package(tmp_path, "pkg", files)], tmp_path)
    assert {v.rule for v in found} == {"layer", "cycle"}, "\n".join(map(str, found))
    cycle = next(v for v in found if v.rule == "cycle")
    assert "pkg.low.codec" in cycle.message and "pkg.mid" in cycle.message


def test_a_module_in_no_layer_and_a_stale_layer_name_are_caught(tmp_path):
    files = clean_files()
    files["__init__.py"] = THREE_LAYERS.replace("))", "), (\"gone\",))")
    files["extra.py"] = "from pkg import high\n"
    found = only(check([write_package(tmp_path, "pkg", files)], tmp_path), "unlisted")
    assert sorted(v.path for v in found) == ["pkg/__init__.py", "pkg/extra.py"]
    assert any("'gone'" in v.message for v in found) and any("'extra' is in no layer" in v.message for v in found)


def test_missing_or_malformed_layers_are_reported(tmp_path):
    files = clean_files()
    files["__init__.py"] = '"""no layers here"""\n'
    [v] = only(check([write_package(tmp_path, "pkg", files)], tmp_path), "layers")
    assert v.path == "pkg/__init__.py"
    files["__init__.py"] = "LAYERS = (('low',), make())\n"
    [v] = only(check([write_package(tmp_path / "b", "pkg", files)], tmp_path / "b"), "layers")
    assert v.line == 1


def test_an_import_of_a_missing_module_is_unresolved(tmp_path):
    files = clean_files()
    files["high.py"] = "from pkg.low import nothere\nimport pkg.low.gone\n"
    found = only(check([write_package(tmp_path, "pkg", files)], tmp_path), "unresolved")
    assert [v.line for v in found] == [2]  # `from pkg.low import nothere` may name an attribute of pkg.low


def test_the_lower_package_may_not_import_the_higher_one(tmp_path):
    node = write_package(tmp_path, "nodepkg", {"__init__.py": 'LAYERS = (("wire",),)\n', "wire.py": "import harnesspkg.cli\n"})
    harness = write_package(tmp_path, "harnesspkg", {"__init__.py": 'LAYERS = (("cli",),)\n', "cli.py": "from nodepkg import wire\n"})
    found = check([node, harness], tmp_path)
    assert {v.rule for v in found} == {"package", "cycle"}, "\n".join(map(str, found))
    [v] = [v for v in found if v.rule == "package"]
    assert (v.path, v.line) == ("nodepkg/wire.py", 1) and "harnesspkg sits above nodepkg" in v.message


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python tests/test_layers.py PACKAGE_DIR [PACKAGE_DIR ...]  (lowest package first)")
    found = check([Path(p).resolve() for p in sys.argv[1:]], Path.cwd())
    print("\n".join(map(str, found)) or "no violations")
    sys.exit(1 if found else 0)
