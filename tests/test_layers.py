"""Dependencies point one way (DESIGN §3): these tests fail the build when an import breaks it."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import failover

PACKAGE = Path(failover.__file__).parent
CORE = "failover._core"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, wherever the import is (functions, TYPE_CHECKING)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                yield f"{base}.{node.module}" if node.module else base
            else:
                yield node.module or ""


def allowed_in_core(module: str) -> bool:
    return (
        module.partition(".")[0] in sys.stdlib_module_names
        or module == CORE
        or module.startswith(CORE + ".")
    )


#: The layers, lowest first. A module may import its own layer and the layers below it, never
#: one above (DESIGN §3: core <- policies <- engine <- manager <- integrations).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("failover._core",)),
    ("observe", ("failover._observe",)),
    ("policies", ("failover.policies",)),
    ("engine", ("failover._engine",)),
    ("config", ("failover._config",)),
    (
        "manager",
        ("failover._manager", "failover._config_report", "failover.decorators", "failover"),
    ),
    (
        "integrations",
        (
            "failover.http",
            "failover.redis",
            "failover.sdk",
            "failover._redis_topology",
            "failover.telemetry",
            "failover.testing",
            "failover.web",
        ),
    ),
    ("cli", ("failover.cli",)),
)

#: Third-party packages each layer may use (besides the standard library).
THIRD_PARTY: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "observe": frozenset({"opentelemetry"}),
    "policies": frozenset({"opentelemetry", "tenacity"}),
    # The async driver also asks sniffio which loop it is on, and trio for its token.
    "engine": frozenset({"opentelemetry", "tenacity", "anyio", "pybreaker", "sniffio", "trio"}),
}


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the layer ``module`` belongs to (longest prefix wins)."""
    best, best_length = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield module_name(path), path


def own_imports(path: Path) -> set[str]:
    return {m for m in imported_modules(path) if m == "failover" or m.startswith("failover.")}


def test_core_imports_only_the_standard_library_and_itself() -> None:
    offenders: dict[str, list[str]] = {}
    for path in sorted((PACKAGE / "_core").rglob("*.py")):
        outside = sorted({m for m in imported_modules(path) if not allowed_in_core(m)})
        if outside:
            offenders[module_name(path)] = outside
    assert offenders == {}


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward: dict[str, list[str]] = {}
    for name, path in modules():
        mine = layer_of(name)
        above = sorted(m for m in own_imports(path) if layer_of(m) > mine)
        if above:
            upward[name] = above
    assert upward == {}


def test_lower_layers_use_only_their_third_party_packages() -> None:
    found: dict[str, list[str]] = {}
    for name, path in modules():
        layer = LAYERS[layer_of(name)][0]
        allowed = THIRD_PARTY.get(layer)
        if allowed is None:
            continue
        foreign = sorted(
            m
            for m in imported_modules(path)
            if m.partition(".")[0] not in sys.stdlib_module_names
            and m.partition(".")[0] != "failover"
            and m.partition(".")[0] not in allowed
        )
        if foreign:
            found[name] = foreign
    assert found == {}


def test_only_the_cli_imports_the_cli() -> None:
    importers = sorted(
        name
        for name, path in modules()
        if not (name == "failover.cli" or name.startswith("failover.cli."))
        and any(m == "failover.cli" or m.startswith("failover.cli.") for m in own_imports(path))
    )
    assert importers == []


def test_only_the_cli_imports_the_dashboard() -> None:
    """``failover.web`` is a leaf: the library runs without its extra installed."""
    importers = sorted(
        name
        for name, path in modules()
        if not name.startswith(("failover.web", "failover.cli"))
        and any(m == "failover.web" or m.startswith("failover.web.") for m in own_imports(path))
    )
    assert importers == []


def test_the_decisions_never_await_nor_import_anyio() -> None:
    """The engine's decisions are driver-neutral: a synchronous driver can run them too."""
    neutral = ("decide", "book", "call", "route", "walk", "resort", "effects")
    for name in (f"_engine/{module}.py" for module in neutral):
        path = PACKAGE / name
        tree = ast.parse(path.read_text(encoding="utf-8"))
        awaits = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Await | ast.AsyncFunctionDef | ast.AsyncFor | ast.AsyncWith)
        ]
        assert awaits == [], name
        assert not any(m.startswith("anyio") for m in imported_modules(path)), name


def test_no_import_cycles_counting_type_checking_imports() -> None:
    """Between modules of different folders: a cycle there means a layer reaches upward.
    (Within one folder a package's ``__init__`` and its modules may refer to each other.)"""
    graph = {name: own_imports(path) for name, path in modules()}

    def folder(module: str) -> str:
        return (
            module.rpartition(".")[0]
            if module in graph and not graph_is_package(module)
            else module
        )

    def graph_is_package(module: str) -> bool:
        return (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists()

    edges = {
        name: {m for m in targets if m in graph and folder(m) != folder(name)}
        for name, targets in graph.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_a_planted_upward_import_is_caught(tmp_path: Path) -> None:
    """The checks can fail: an engine module importing the manager is reported."""
    planted = tmp_path / "planted.py"
    planted.write_text("from failover._manager import PlatformManager\n", encoding="utf-8")
    imports = set(imported_modules_of_text(planted.read_text()))
    assert any(layer_of(m) > layer_of("failover._engine.planted") for m in imports)


def imported_modules_of_text(text: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_the_core_loads_alone() -> None:
    """The pure core runs without the rest: loaded under a bare ``failover`` package (so the
    package's ``__init__`` does not pull in everything), it brings no third-party module."""
    script = (
        "import sys, types\n"
        f"package = types.ModuleType('failover'); package.__path__ = [{str(PACKAGE)!r}]\n"
        "sys.modules['failover'] = package\n"
        "before = set(sys.modules)\n"
        "import failover._core.breaker, failover._core.pair, failover._core.classify\n"
        "import failover._core.validate, failover._core.kinds, failover._core.health\n"
        "new = sorted(set(sys.modules) - before)\n"
        "print(' '.join(name for name in new if name.split('.')[0] != 'failover'"
        " and name.split('.')[0] not in sys.stdlib_module_names))\n"
        "print(len([name for name in new if name.startswith('failover.')]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == ""  # no third-party module
    assert 0 < int(out[1]) <= 20  # the core's own modules only
