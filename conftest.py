"""The documentation's Python blocks run as tests (Sybil): ``README.md`` and ``docs/*.md``.

Each page is one namespace: its blocks run in order, later ones seeing earlier names, as a
reader copying them top to bottom would. A block may ``await`` at top level; it runs on the
page's event loop (asyncio, one per page, so objects made by one block work in the next).
Hidden set-up is an ``<!-- invisible-code-block: python -->`` comment; a block that needs
what this machine has not (a real key, Jaeger...) is preceded by a visible
``<!-- skip: next "reason" -->``. Environment changes made by a page are undone after it.

What the pages leave to the reader is stood in for here, so the pages stay readable:
every well-known platform's key variable holds a fake key, and the HTTP adapters' default
base URLs point at a :class:`failover.testing.FakeProviderServer` started for the page (the
real providers are never reached); ``clients[name]`` (and ``stability``) is a provider client
whose methods answer ``b"png"``; ``edit``, ``edit_image`` and ``call_provider`` are operations
answering ``b"png"``; ``image``, ``mask``, ``img``, ``photo_png``, ``mask_png`` and ``prompt``
are sample inputs. A page runs in a temporary directory of its own.
"""

from __future__ import annotations

import ast
import inspect
import os
import shutil
import tempfile
from typing import Any

from anyio.from_thread import start_blocking_portal
from sybil import Example, Sybil
from sybil.parsers.markdown import ClearNamespaceParser, CodeBlockParser, SkipParser

_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
_PNG = b"\x89PNG\r\n\x1a\n" + bytes(24)  # enough of a PNG for the adapters' format check


def _evaluate(example: Example) -> None:
    __tracebackhide__ = True
    namespace = example.namespace
    source = "\n" * (example.line + example.parsed.line_offset) + example.parsed
    code = compile(source, example.path, "exec", flags=_FLAGS, dont_inherit=True)
    if code.co_flags & inspect.CO_COROUTINE:
        portal = namespace["_docs_portal"]

        async def run() -> None:
            await eval(code, namespace)

        portal.call(run)
    else:
        exec(code, namespace)
    namespace.pop("__builtins__", None)


class _Client:
    """Your provider client, as the pages call it: every method answers an image."""

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> bytes:
            return b"png"

        return call


async def _operation(platform: Any, *args: Any, **kwargs: Any) -> bytes:
    """Your provider call for one platform."""
    return b"png"


def _adapter_classes() -> list[type[Any]]:
    from failover.http._base import ChatAdapter
    from failover.http._media_base import MediaAdapter

    found: list[type[Any]] = []
    todo: list[type[Any]] = [ChatAdapter, MediaAdapter]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _fake_url(server: Any, platform: str, real: str) -> str:
    try:
        return str(server.adapter_base_url(platform))
    except ValueError:  # a platform the fake server does not serve: unreachable from here anyway
        return real


def _setup(namespace: dict[str, Any]) -> None:
    from failover import KNOWN_PLATFORMS
    from failover.testing import FakeProviderServer

    namespace["_docs_environ"] = dict(os.environ)
    namespace["_docs_cwd"] = os.getcwd()
    os.chdir(tempfile.mkdtemp(prefix="failover-docs-"))  # files a page writes land there
    for known in KNOWN_PLATFORMS.values():
        if known.api_key_env:
            os.environ[known.api_key_env] = "sk-docs-fake"
    portal_cm = start_blocking_portal("asyncio")
    portal = portal_cm.__enter__()
    namespace["_docs_portal_cm"] = portal_cm
    namespace["_docs_portal"] = portal
    server_cm = portal.wrap_async_context_manager(FakeProviderServer(seed=1))
    server = server_cm.__enter__()
    namespace["_docs_server_cm"] = server_cm
    saved = {}
    for cls in _adapter_classes():
        if "default_base_urls" in vars(cls):
            saved[cls] = cls.default_base_urls
            cls.default_base_urls = {
                name: _fake_url(server, name, url) for name, url in cls.default_base_urls.items()
            }
    namespace["_docs_base_urls"] = saved
    namespace.update(
        clients={name: _Client() for name in KNOWN_PLATFORMS},
        stability=_Client(),
        image=_PNG,
        mask=_PNG,
        img=_PNG,
        prompt="a lighthouse at dusk",
        photo_png=_PNG,
        mask_png=_PNG,
        edit=_operation,
        call_provider=_operation,
        edit_image=_operation,
    )


def _teardown(namespace: dict[str, Any]) -> None:
    manager = namespace.get("manager")
    close = getattr(manager, "close", None)
    if callable(close):
        close()
    for cls, urls in namespace.get("_docs_base_urls", {}).items():
        cls.default_base_urls = urls
    namespace["_docs_server_cm"].__exit__(None, None, None)
    namespace["_docs_portal_cm"].__exit__(None, None, None)
    page_dir = os.getcwd()
    os.chdir(namespace["_docs_cwd"])
    shutil.rmtree(page_dir, ignore_errors=True)
    os.environ.clear()
    os.environ.update(namespace["_docs_environ"])


pytest_collect_file = Sybil(
    parsers=[
        CodeBlockParser(language="python", evaluator=_evaluate),
        SkipParser(),
        ClearNamespaceParser(),
    ],
    patterns=["README.md", "docs/*.md"],
    setup=_setup,
    teardown=_teardown,
).pytest()
