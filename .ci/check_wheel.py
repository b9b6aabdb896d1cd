"""The built wheel holds every file of the package: modules, py.typed and every asset.

Run by .ci/package after `python -m build`: compares the wheel's listing with the files under
src/failover (caches aside), so an asset added later (a template, a static file, a bundled
config) that the build leaves out fails CI instead of a user's install.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = ("failover/py.typed", "failover/cli/_demo/demo.toml", "failover/web/static/")


def main(wheel: str) -> int:
    with zipfile.ZipFile(wheel) as archive:
        listed = {name for name in archive.namelist() if not name.endswith("/")}
    source = ROOT / "src"
    expected = {
        path.relative_to(source).as_posix()
        for path in (source / "failover").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    missing = sorted(expected - listed)
    absent = [item for item in REQUIRED if not any(name.startswith(item) for name in listed)]
    for name in [*missing, *absent]:
        print(f"{wheel}: missing {name}", file=sys.stderr)
    if missing or absent:
        return 1
    print(f"{Path(wheel).name}: all {len(expected)} package files present")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
