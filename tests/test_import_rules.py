"""The import rules of docs/architecture.rst, checked on the source of every module.

Layers, lowest first: ``facestack.core`` <- ``facestack.vision`` <- the services (``sfapi``,
``facerouter`` with ``plugins``, ``video_worker``) <- ``facestack.stack``. A module imports its own
layer and those below; a service reaches another service only through that service's public
modules (:data:`PUBLIC`). Imports inside functions count too: a lazy import is still a dependency.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("facestack", "sfapi", "facerouter", "video_worker", "plugins", "ntech", "sfapi_client")

#: what other services may import of each service
PUBLIC = {
    "sfapi": ("sfapi.client",),
    "facerouter": ("facerouter.plugin", "facerouter.objects", "facerouter.delivery", "facerouter.signing"),
    "video_worker": (),
}
BELOW = ("facestack.core", "facestack.vision")
#: for each part of the tree (longest prefix wins), what it may import besides itself
ALLOWED: dict[str, tuple[str, ...]] = {
    "facestack.core": (),
    "facestack.vision": ("facestack.core",),
    "sfapi": BELOW,
    "facerouter": BELOW + PUBLIC["sfapi"],
    "video_worker": BELOW + PUBLIC["sfapi"],
    "plugins": BELOW + PUBLIC["sfapi"] + PUBLIC["facerouter"],
    # the reference client's import names (compatibility shims over sfapi's client)
    "ntech": PUBLIC["sfapi"],
    "sfapi_client": PUBLIC["sfapi"],
    "facestack.stack": PACKAGES,  # the top: it runs and wires everything
    "facestack": (),  # the package face itself re-exports nothing
}


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(name: str, path: Path, at_import: bool = False) -> set[str]:
    """Every module of ours that ``name`` imports (relative imports resolved); ``at_import``: only
    those importing ``name`` runs (not in functions, not under ``if TYPE_CHECKING``)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    for node in (_run_at_import(tree.body) if at_import else ast.walk(tree)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # ``from pkg import module`` needs the module; a name, the face
                sub = f"{target}.{alias.name}"
                found.add(sub if _is_module(sub) else target)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _run_at_import(body: list[ast.stmt]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                out += _run_at_import(node.body) + _run_at_import(node.orelse)
        elif isinstance(node, ast.Try):
            out += _run_at_import(node.body)
            for handler in node.handlers:
                out += _run_at_import(handler.body)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
    return out


def part_of(module: str) -> str:
    return max((p for p in ALLOWED if module == p or module.startswith(p + ".")), key=len)


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_every_import_follows_the_layers() -> None:
    mods = modules()
    broken = []
    for name, path in sorted(mods.items()):
        part = part_of(name)
        for target in sorted(imports_of(name, path)):
            if target not in mods and target.rpartition(".")[0] in mods:
                target = target.rpartition(".")[0]  # ``from pkg.module import name``
            if target not in mods:
                broken.append(f"{name} imports {target}, which does not exist")
                continue
            if within(target, (part,)) or within(target, ALLOWED[part]):
                continue
            if part == "facestack" or target == "facestack":
                continue  # the bare package face
            broken.append(f"{name} imports {target} ({part} may import {ALLOWED[part] or 'only itself'})")
    assert broken == [], "\n".join(broken)


def test_no_import_cycle() -> None:
    """Importing a module never needs that module back through others (a package face included:
    ``pkg/__init__.py`` importing a module of ``pkg`` that imports ``pkg``'s face)."""
    mods = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        for target in imports_of(name, path, at_import=True):
            while target not in mods and "." in target:
                target = target.rpartition(".")[0]
            if target in mods and target != name:
                graph[name].add(target)
    cycles = _cycles(graph)
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_rules_catch_a_broken_import(tmp_path: Path) -> None:
    """The checker itself: a video worker module that reaches into sfapi's server is caught."""
    path = tmp_path / "bad.py"
    path.write_text("from sfapi.server.app import create_app\nfrom sfapi.client import SfapiClient\n")
    targets = imports_of("video_worker.bad", path)
    part = part_of("video_worker.bad")
    bad = [t for t in targets if not within(t, (part,)) and not within(t, ALLOWED[part])]
    assert "sfapi.server.app" in bad and not any(t.startswith("sfapi.client") for t in bad)
