"""MkDocs hook: links from the docs to files outside ``docs/`` point at the repository.

The README is the site's home page and links to files such as ``benchmarks/RESULTS.md`` that
are not pages of the site; on GitHub the relative link works, on the site it would be dead
(and ``mkdocs build --strict`` refuses it), so it is pointed at the file in the repository.
"""

from __future__ import annotations

import re
from typing import Any

_OUTSIDE = re.compile(r"\]\(((?:\.\./)+)([^)#\s]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    repo = str(config.get("repo_url") or "").rstrip("/")
    if not repo:
        return markdown
    depth = page.file.src_uri.count("/")

    def rewrite(match: re.Match[str]) -> str:
        ups, target, anchor = match.group(1), match.group(2), match.group(3) or ""
        if ups.count("../") <= depth:  # still inside docs/: an ordinary page link
            return match.group(0)
        return f"]({repo}/blob/main/{target}{anchor})"

    return _OUTSIDE.sub(rewrite, markdown)
