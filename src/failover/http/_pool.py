"""The connection side every adapter shares: pool limits and one TLS context per process.

Pool limits were chosen by measurement (``benchmarks/bench_http.py``, ``benchmarks/RESULTS.md``).
httpcore scans its whole pool for an idle connection on every request and again on every
release, so the work per request grows with the pool (encode/httpcore#1035). With 100 idle
connections kept alive, 200 concurrent callers ran at 58-350 calls/s depending on the round;
with httpx's own default of 20 kept alive (and up to 100 open) the same load ran steadily
faster. So :data:`DEFAULT_LIMITS` are httpx's defaults.

An ``httpx.AsyncClient`` made without ``verify=`` builds its own ``ssl.SSLContext`` and loads
the CA bundle into it: about 330 KB and tens of milliseconds of a blocked event loop per
client, even for a plain ``http://`` base URL. Every adapter client instead gets
:func:`tls_context`: one verifying context per process, built once in a worker thread
(:func:`prepare_tls`) so the first call does not stall the loop; a client whose base URL is
plain HTTP gets :data:`PLAIN_HTTP_CONTEXT`, which holds no trust anchors at all: it is never
used for plain HTTP, and an ``https://`` URL sent through it fails verification instead of
passing unverified.
"""

from __future__ import annotations

import ssl
import threading
from typing import Final

import anyio.to_thread
import httpx

#: Up to 100 connections per platform, 20 of them kept alive (httpx's defaults; see above).
DEFAULT_LIMITS: Final = httpx.Limits(
    max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0
)

#: The context of clients whose base URL is plain HTTP: verification on, nothing trusted.
PLAIN_HTTP_CONTEXT: Final = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

_lock = threading.Lock()
_context: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """The process's verifying TLS context (certifi's CA bundle, as httpx uses by default)."""
    global _context
    context = _context
    if context is not None:
        return context
    with _lock:
        if _context is None:
            _context = httpx.create_ssl_context()
        return _context


def tls_ready() -> bool:
    """Whether :func:`tls_context` is built (then calling it costs nothing)."""
    return _context is not None


async def prepare_tls() -> None:
    """Build the TLS context in a worker thread, once, so no event loop waits on the CA file."""
    if _context is None:
        await anyio.to_thread.run_sync(tls_context)


def context_for(url: str) -> ssl.SSLContext:
    """The context for a client whose base URL is ``url``."""
    return PLAIN_HTTP_CONTEXT if url.startswith("http://") else tls_context()
