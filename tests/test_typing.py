"""The typing check in CI can fail: mypy rejects a broken copy of tests/typing/api.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "tests" / "typing" / "api.py"

#: (text in api.py, what the broken copy says instead, the error mypy must report)
BREAKAGES = [
    (
        'assert_type(await erase(b"", b""), bytes)',
        'assert_type(await erase(b"", b""), str)',
        r'Expression is of type "bytes", not "str"  \[assert-type\]',
    ),
    (
        'await erase(b"")  # type: ignore[call-arg]',
        'await erase(b"")',
        r'Missing positional argument "mask".*\[call-arg\]',
    ),
    (
        'assert_type(await chat("hi", temperature=0.2), str)',
        'assert_type(await chat("hi", temperature=0.2), str)  # type: ignore[arg-type]',
        r'Unused "type: ignore" comment',
    ),
    (
        "tuple[list[bytes], PlatformSpec],",
        "tuple[bytes, PlatformSpec],",
        r"\[assert-type\]",
    ),
]


def test_mypy_accepts_api_and_rejects_each_breakage(tmp_path: Path) -> None:
    original = API.read_text(encoding="utf-8")
    (tmp_path / "api.py").write_text(original, encoding="utf-8")
    broken = original
    for text, replacement, _ in BREAKAGES:
        assert original.count(text) == 1, f"{text!r} must appear once in {API.name}"
        broken = broken.replace(text, replacement)
    (tmp_path / "broken.py").write_text(broken, encoding="utf-8")

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "api.py",
            "broken.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert not any(line.startswith("api.py:") for line in output.splitlines()), output
    errors = [line for line in output.splitlines() if line.startswith("broken.py:")]
    for _, _, expected in BREAKAGES:
        assert any(re.search(expected, line) for line in errors), f"{expected!r} in\n{output}"
    assert f"Found {len([e for e in errors if ': error:' in e])} errors in 1 file" in output
