"""The wheel check (.ci/check_wheel.py) that .ci/package runs on the built wheel."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_wheel", ROOT / ".ci" / "check_wheel.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wheel_of(tmp_path: Path, leave_out: str | None = None) -> str:
    """A wheel-shaped zip of src/failover, optionally without one file."""
    path = tmp_path / "failover-0-py3-none-any.whl"
    source = ROOT / "src"
    with zipfile.ZipFile(path, "w") as archive:
        for file in (source / "failover").rglob("*"):
            name = file.relative_to(source).as_posix()
            if file.is_file() and "__pycache__" not in file.parts and name != leave_out:
                archive.write(file, name)
    return str(path)


def test_a_complete_wheel_passes(tmp_path: Path) -> None:
    assert checker().main(wheel_of(tmp_path)) == 0


@pytest.mark.parametrize(
    "left_out",
    [
        "failover/py.typed",
        "failover/cli/_demo/demo.toml",
        "failover/web/static/dashboard.js",
        "failover/_core/spec.py",
    ],
)
def test_a_wheel_without_a_package_file_fails(
    tmp_path: Path, left_out: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert checker().main(wheel_of(tmp_path, left_out)) == 1
    assert f"missing {left_out}" in capsys.readouterr().err
