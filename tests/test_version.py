"""The version users see is the version the package is built with."""

from __future__ import annotations

import tomllib
from pathlib import Path

import failover


def test_version_matches_pyproject() -> None:
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    assert failover.__version__ == declared
