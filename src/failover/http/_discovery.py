"""``check_platforms``: check every configured platform of a manager that has an adapter.

Each (platform, model) pair of the manager's priority lists is checked once, with the adapter
its operation speaks (a chat adapter for ``text_generation``, an image or video adapter for
the media operations, whichever failover has for the name elsewhere), all at once with a
bounded number in flight and a bounded time each. Adapters made here are closed before it
returns. Nothing is recorded on the manager: its breakers and health do not move.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias

import anyio

from failover._core import validate
from failover._core.errors import ConfigError
from failover._core.spec import TEXT_GENERATION, PlatformSpec
from failover.http._adapters import (
    ANTHROPIC_BASE_URLS,
    OPENAI_COMPATIBLE_BASE_URLS,
    AnthropicMessages,
    OpenAICompatibleChat,
)
from failover.http._base import ChatAdapter
from failover.http._check import CHECK_TIMEOUT, KeyStatus, ModelStatus, PlatformCheck
from failover.http._media import MEDIA_ADAPTERS
from failover.http._media_base import MediaAdapter

if TYPE_CHECKING:
    from failover._manager import PlatformManager

Adapter: TypeAlias = ChatAdapter | MediaAdapter

#: At most this many platforms are checked at once, by default.
CHECK_CONCURRENCY: Final = 8
_MEDIA_OPERATIONS: Final = frozenset({"image_generation", "image_editing", "video_generation"})


@dataclass(slots=True)
class _Target:
    spec: PlatformSpec
    adapter: Adapter | None
    why_none: str = ""


def _adapter_for(
    name: str,
    operation: str,
    base_url: str | None,
    environ: Mapping[str, str],
) -> Adapter | None:
    """The adapter failover would use for ``name`` in ``operation``, or ``None``."""
    chat = name in ANTHROPIC_BASE_URLS or name in OPENAI_COMPATIBLE_BASE_URLS
    media = name in MEDIA_ADAPTERS
    if operation in _MEDIA_OPERATIONS or (operation != TEXT_GENERATION and media and not chat):
        kind = MEDIA_ADAPTERS.get(name)
        return None if kind is None else kind(base_url, environ=environ)
    if name in ANTHROPIC_BASE_URLS:
        return AnthropicMessages(base_url, environ=environ)
    if chat or base_url is not None:
        return OpenAICompatibleChat(base_url, environ=environ)
    return None


def _targets(
    manager: PlatformManager,
    operations: Iterable[str] | None,
    base_urls: Mapping[str, str],
    adapters: Mapping[str, Adapter],
    environ: Mapping[str, str],
) -> tuple[list[_Target], list[Adapter]]:
    """One target per (platform, model), in priority-list order; and the adapters made."""
    chosen = list(manager.operations if operations is None else operations)
    names = {spec.name for operation in chosen for spec in manager.platforms(operation)}
    for label, mapping in (("base_urls", base_urls), ("adapters", adapters)):
        unknown = sorted(set(mapping) - names)
        if unknown:
            raise ConfigError(
                f"{label} names {unknown[0]!r}, which is not a configured platform "
                f"(platforms: {', '.join(sorted(names)) or '(none)'})",
                key=label,
            )
    for name, given in adapters.items():
        validate.instance(
            f"adapters[{name!r}]",
            given,
            (ChatAdapter, MediaAdapter),
            "an adapter such as OpenAICompatibleChat() or StabilityImages()",
        )
    for name, url in base_urls.items():
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"base_urls[{name!r}] must be an http(s) URL, got {validate.shown(url)}",
                key=name,
            )
    targets: dict[tuple[str, str], _Target] = {}
    made: dict[tuple[str, bool], Adapter | None] = {}
    for operation in chosen:
        for spec in manager.platforms(operation):
            if (spec.name, spec.model) in targets:
                continue
            adapter: Adapter | None = adapters.get(spec.name)
            if adapter is None:
                slot = (spec.name, operation in _MEDIA_OPERATIONS)
                if slot not in made:
                    made[slot] = _adapter_for(
                        spec.name, operation, base_urls.get(spec.name), environ
                    )
                adapter = made[slot]
            why = "" if adapter is not None else _no_adapter(spec.name)
            targets[(spec.name, spec.model)] = _Target(spec, adapter, why)
    created = [adapter for adapter in dict.fromkeys(made.values()) if adapter is not None]
    return list(targets.values()), created


def _no_adapter(name: str) -> str:
    return (
        f"failover.http has no adapter for {name!r}: give it a base URL (an "
        "OpenAI-compatible server) or an adapter"
    )


def _unchecked(target: _Target, why: str) -> PlatformCheck:
    spec = target.spec
    return PlatformCheck(
        spec.name, spec.model, KeyStatus.NOT_CHECKED, ModelStatus.NOT_CHECKED, detail=why
    )


def _plan(
    manager: PlatformManager | None,
    operations: Iterable[str] | None,
    base_urls: Mapping[str, str] | None,
    adapters: Mapping[str, Adapter] | None,
    timeout: float,
    concurrency: int,
    environ: Mapping[str, str] | None,
) -> tuple[float, int, list[_Target], list[Adapter]]:
    """Both twins' arguments checked: the timeout, the concurrency, the targets and the
    adapters made for them (closed by the caller)."""
    if manager is None:
        from failover import default_manager

        manager = default_manager()
    seconds = validate.seconds("timeout", timeout, above=0)
    limit = validate.integer("concurrency", concurrency, at_least=1)
    env = manager.environ if environ is None else environ
    targets, created = _targets(manager, operations, base_urls or {}, adapters or {}, env)
    return seconds, limit, targets, created


async def check_platforms(
    manager: PlatformManager | None = None,
    *,
    operations: Iterable[str] | None = None,
    base_urls: Mapping[str, str] | None = None,
    adapters: Mapping[str, Adapter] | None = None,
    timeout: float = CHECK_TIMEOUT,
    concurrency: int = CHECK_CONCURRENCY,
    environ: Mapping[str, str] | None = None,
) -> list[PlatformCheck]:
    """Check the key and model of every platform of ``manager`` (default: the process's
    default manager) that has an adapter, and return one :class:`PlatformCheck` per
    (platform, model), in priority-list order::

        for result in await check_platforms(manager):
            print(result.platform, result.model, result.status, result.summary())

    ``operations`` limits it to some operation types; ``base_urls`` and ``adapters`` point a
    platform elsewhere, as for :class:`TextGeneration`; keys are read from ``environ``
    (default: the manager's, ``PlatformManager(environ=)`` or else ``os.environ``). At most
    ``concurrency`` checks run at once, each bounded by ``timeout`` seconds. A platform
    with no adapter is in the list, not checked, with the reason. Nothing is recorded on
    the manager; no key reaches the results.
    """
    seconds, limit, targets, created = _plan(
        manager, operations, base_urls, adapters, timeout, concurrency, environ
    )
    results: list[PlatformCheck | None] = [None] * len(targets)
    limiter = anyio.CapacityLimiter(limit)

    async def run(index: int, target: _Target) -> None:
        async with limiter:
            results[index] = await _check_one(target, seconds)

    try:
        async with anyio.create_task_group() as group:
            for index, target in enumerate(targets):
                group.start_soon(run, index, target)
    finally:
        with anyio.CancelScope(shield=True):
            for adapter in created:
                await adapter.aclose()
    return [result for result in results if result is not None]


async def _check_one(target: _Target, timeout: float) -> PlatformCheck:
    if target.adapter is None:
        return _unchecked(target, target.why_none)
    try:
        return await target.adapter.check(target.spec, timeout=timeout)
    except ConfigError as exc:  # e.g. an adapter with no base URL for this platform
        return _unchecked(target, str(exc))


def check_platforms_sync(
    manager: PlatformManager | None = None,
    *,
    operations: Iterable[str] | None = None,
    base_urls: Mapping[str, str] | None = None,
    adapters: Mapping[str, Adapter] | None = None,
    timeout: float = CHECK_TIMEOUT,
    concurrency: int = CHECK_CONCURRENCY,
    environ: Mapping[str, str] | None = None,
) -> list[PlatformCheck]:
    """:func:`check_platforms` for synchronous code: the checks run in up to
    ``concurrency`` threads with blocking I/O (no event loop). Each request is bounded by
    ``timeout``; a check as a whole is not (a blocking request cannot be cut short)."""
    seconds, limit, targets, created = _plan(
        manager, operations, base_urls, adapters, timeout, concurrency, environ
    )

    def check(target: _Target) -> PlatformCheck:
        if target.adapter is None:
            return _unchecked(target, target.why_none)
        try:
            return target.adapter.check_sync(target.spec, timeout=seconds)
        except ConfigError as exc:
            return _unchecked(target, str(exc))

    try:
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="failover-check") as pool:
            return list(pool.map(check, targets))
    finally:
        for adapter in created:
            adapter.close()
