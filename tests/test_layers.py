"""Dependencies point one way (DESIGN §3): these tests fail the build when an import breaks it."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import failover

PACKAGE = Path(failover.__file__).parent
CORE = "failover._core"

#: Core modules that still import outside the standard library and the core. Known debts,
#: each to be removed from this set when its module is fixed (the test says when):
#: ``clock`` imports anyio; ``breaker`` and ``pair`` reach into ``failover._engine.mirror``
#: and ``pair`` into ``failover.policies.policy``.
PENDING = {"failover._core.breaker", "failover._core.clock", "failover._core.pair"}


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


def test_core_imports_only_the_standard_library_and_itself() -> None:
    offenders: dict[str, list[str]] = {}
    for path in sorted((PACKAGE / "_core").rglob("*.py")):
        outside = sorted({m for m in imported_modules(path) if not allowed_in_core(m)})
        if outside:
            offenders[module_name(path)] = outside
    assert {name: found for name, found in offenders.items() if name not in PENDING} == {}
    assert PENDING - offenders.keys() == set(), "fixed: remove these from PENDING"
