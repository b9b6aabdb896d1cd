"""@fallback: run a function down an operation's fallback chain, on asyncio and trio."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

from failover import (
    AllPlatformsFailed,
    ConfigError,
    FallbackFunction,
    PlatformManager,
    PlatformSpec,
    SyncFallbackFunction,
    Transient,
    fallback,
    set_default_manager,
)
from failover.testing import FakeClock

pytestmark = pytest.mark.anyio

OP = "image_editing"


def make_manager(*platforms: str) -> PlatformManager:
    names = platforms or ("alpha", "beta", "gamma")
    return PlatformManager(
        {OP: [(name, f"{name}-model") for name in names]}, clock=FakeClock(), environ={}
    )


@pytest.fixture
def manager() -> PlatformManager:
    return make_manager()


@pytest.fixture
def no_default() -> Iterator[None]:
    set_default_manager(None)
    yield
    set_default_manager(None)


# -- calling -----------------------------------------------------------------------------------


async def test_decorated_function_runs_the_chain(manager: PlatformManager) -> None:
    calls: list[tuple[str, bytes, bytes]] = []

    @fallback(OP, manager=manager)
    async def erase(platform: PlatformSpec, image: bytes, mask: bytes) -> bytes:
        calls.append((platform.name, image, mask))
        if platform.name == "alpha":
            raise Transient("503")
        return platform.model.encode()

    result = await erase(b"img", mask=b"m")

    assert result == b"beta-model"
    assert calls == [("alpha", b"img", b"m"), ("beta", b"img", b"m")]


async def test_call_with_platform_returns_result_and_platform(manager: PlatformManager) -> None:
    @fallback(OP, manager=manager)
    async def erase(platform: PlatformSpec, image: bytes) -> int:
        return len(image)

    result, platform = await erase.call_with_platform(b"four")

    assert result == 4
    assert isinstance(platform, PlatformSpec)
    assert (platform.name, platform.model) == ("alpha", "alpha-model")


async def test_all_failing_raises_all_platforms_failed(manager: PlatformManager) -> None:
    @fallback(OP, manager=manager)
    async def erase(platform: PlatformSpec) -> bytes:
        raise ConnectionError(platform.name)

    with pytest.raises(AllPlatformsFailed) as caught:
        await erase()

    assert [attempt.platform for attempt in caught.value.attempts] == ["alpha", "beta", "gamma"]


async def test_decorator_works_with_an_async_callable_object(manager: PlatformManager) -> None:
    class Client:
        async def __call__(self, platform: PlatformSpec, text: str) -> str:
            return f"{platform.name}:{text}"

    wrapped = fallback(OP, manager=manager)(Client())

    assert await wrapped("hi") == "alpha:hi"


async def test_decorator_accepts_partial_of_async_function(manager: PlatformManager) -> None:
    async def edit(platform: PlatformSpec, image: bytes, *, strength: float) -> str:
        return f"{platform.name}:{strength}"

    wrapped = fallback(OP, manager=manager)(functools.partial(edit, strength=0.5))

    assert await wrapped(b"x") == "alpha:0.5"


# -- signature ---------------------------------------------------------------------------------


def test_wrapper_keeps_name_doc_and_signature_minus_platform(manager: PlatformManager) -> None:
    @fallback(OP, manager=manager)
    async def erase(platform: PlatformSpec, image: bytes, mask: bytes = b"", *, seed: int) -> bytes:
        """Erase the masked area."""
        return image

    assert isinstance(erase, FallbackFunction)
    assert erase.__name__ == "erase"
    assert erase.__qualname__.endswith("erase")
    assert erase.__doc__ == "Erase the masked area."
    assert erase.operation == OP
    signature = inspect.signature(erase)
    assert list(signature.parameters) == ["image", "mask", "seed"]
    assert signature.parameters["mask"].default == b""
    assert signature.parameters["seed"].kind is inspect.Parameter.KEYWORD_ONLY
    assert signature.return_annotation in (bytes, "bytes")
    # The undecorated function is still there, with its platform parameter.
    assert next(iter(inspect.signature(erase.__wrapped__).parameters)) == "platform"


# -- per-platform implementations --------------------------------------------------------------


async def test_platform_implementations_dispatch_by_chosen_platform() -> None:
    manager = make_manager("alpha", "beta", "gamma")
    calls: list[str] = []

    @fallback(OP, manager=manager)
    async def erase(platform: PlatformSpec, image: bytes) -> str:
        calls.append(f"default:{platform.name}")
        return f"default:{platform.name}"

    @erase.platform("alpha")
    async def _alpha(platform: PlatformSpec, image: bytes) -> str:
        calls.append("alpha-impl")
        raise Transient("alpha down")

    @erase.platform("beta")
    async def _beta(platform: PlatformSpec, image: bytes) -> str:
        calls.append(f"beta-impl:{image.decode()}")
        return f"beta-impl:{platform.model}"

    assert await erase(b"x") == "beta-impl:beta-model"
    assert calls == ["alpha-impl", "beta-impl:x"]

    manager.isolate("alpha", OP)
    manager.isolate("beta", OP)
    calls.clear()
    assert await erase(b"y") == "default:gamma"
    assert calls == ["default:gamma"]


async def test_platform_registration_returns_the_function_unchanged(
    manager: PlatformManager,
) -> None:
    @fallback(OP, manager=manager)
    async def erase(platform: PlatformSpec) -> str:
        return "default"

    async def alpha_impl(platform: PlatformSpec) -> str:
        return "alpha"

    assert erase.platform("alpha")(alpha_impl) is alpha_impl
    assert await alpha_impl(PlatformSpec("x", "y")) == "alpha"
    assert await erase() == "alpha"


def test_duplicate_platform_implementation_is_an_error(manager: PlatformManager) -> None:
    @fallback(OP, manager=manager)
    async def erase(platform: PlatformSpec) -> str:
        return "default"

    @erase.platform("alpha")
    async def _first(platform: PlatformSpec) -> str:
        return "first"

    with pytest.raises(ConfigError, match="already has an implementation for 'alpha'"):

        @erase.platform("alpha")
        async def _second(platform: PlatformSpec) -> str:
            return "second"


def test_platform_implementation_must_be_async_and_take_platform(manager: PlatformManager) -> None:
    @fallback(OP, manager=manager)
    async def erase(platform: PlatformSpec) -> str:
        return "default"

    def sync_impl(platform: PlatformSpec) -> str:
        return "sync"

    async def no_platform() -> str:
        return "none"

    with pytest.raises(TypeError, match="must be an async function to implement"):
        erase.platform("alpha")(sync_impl)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="first positional parameter"):
        erase.platform("alpha")(no_platform)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="platform name must be a non-empty string"):
        erase.platform("")


# -- decoration-time errors --------------------------------------------------------------------


def test_plain_def_gives_a_plain_function_that_runs_the_chain_synchronously(
    manager: PlatformManager,
) -> None:
    def erase(platform: PlatformSpec, image: bytes) -> bytes:
        return platform.name.encode() + image

    blocking = fallback(OP, manager=manager)(erase)
    assert isinstance(blocking, SyncFallbackFunction)
    assert not inspect.iscoroutinefunction(blocking.__call__)
    assert blocking(b"!") == b"alpha!"


def test_function_without_platform_parameter_is_rejected() -> None:
    async def erase() -> bytes:
        return b""

    async def keyword_only(*, platform: PlatformSpec) -> bytes:
        return b""

    for func in (erase, keyword_only):
        with pytest.raises(
            TypeError, match="must take the chosen platform as its first positional"
        ):
            fallback(OP)(func)  # type: ignore[arg-type]


def test_bad_operation_name_is_rejected_at_decoration() -> None:
    with pytest.raises(ConfigError, match="lowercase identifier"):
        fallback("Image Editing")


async def test_unknown_operation_is_reported_when_called(manager: PlatformManager) -> None:
    @fallback("image_edditing", manager=manager)
    async def erase(platform: PlatformSpec) -> str:
        return "never"

    with pytest.raises(ConfigError, match="unknown operation type 'image_edditing'"):
        await erase()


# -- the default manager -----------------------------------------------------------------------


async def test_manager_defaults_to_process_default_resolved_at_call_time(
    no_default: None,
) -> None:
    @fallback(OP)
    async def which(platform: PlatformSpec) -> str:
        return platform.name

    first, second = make_manager("alpha"), make_manager("beta")

    set_default_manager(first)
    assert which.manager is first
    assert await which() == "alpha"
    set_default_manager(second)  # after decoration: the call still sees it
    assert which.manager is second
    assert await which() == "beta"
    assert first.get_health_status()["alpha"]["total_requests"] == 1
    assert second.get_health_status()["beta"]["total_requests"] == 1


def test_a_sync_function_follows_the_process_default_at_call_time(no_default: None) -> None:
    @fallback(OP)
    def which(platform: PlatformSpec) -> str:
        return platform.name

    first, second = make_manager("alpha"), make_manager("beta")
    set_default_manager(first)
    assert which() == "alpha"
    set_default_manager(second)
    assert which() == "beta"
    assert which.call_with_platform()[0] == "beta"
    assert first.get_health_status()["alpha"]["total_requests"] == 1
    assert second.get_health_status()["beta"]["total_requests"] == 2


async def test_explicit_manager_is_not_replaced_by_default(no_default: None) -> None:
    mine, other = make_manager("alpha"), make_manager("beta")
    set_default_manager(other)

    @fallback(OP, manager=mine)
    async def which(platform: PlatformSpec) -> str:
        return platform.name

    assert await which() == "alpha"


async def test_decoration_does_not_build_the_default_manager(
    no_default: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []
    original = PlatformManager.from_env.__func__  # type: ignore[attr-defined]

    def spy(cls: type[PlatformManager], *args: Any, **kwargs: Any) -> PlatformManager:
        manager = original(cls, *args, environ={}, **kwargs)
        built.append(manager)
        return manager  # type: ignore[no-any-return]

    monkeypatch.setattr(PlatformManager, "from_env", classmethod(spy))

    @fallback(OP)
    async def which(platform: PlatformSpec) -> str:
        return platform.name

    assert built == []
    with pytest.raises(AllPlatformsFailed):  # built-in table, no keys set: all skipped
        await which()
    assert len(built) == 1


def test_an_implementation_registered_during_the_first_call_is_not_lost() -> None:
    """A first call caches what calls need (its target included); an implementation
    registered while it does so must not be shadowed by that cache."""
    from failover import PlatformManager, fallback

    manager = PlatformManager({"text_generation": [("alpha", "a-1")]}, environ={})

    @fallback("text_generation", manager=manager)
    def answer(platform: PlatformSpec) -> str:
        return "generic"

    original = manager._call_path

    def registering_meanwhile(operation: str) -> Any:
        path = original(operation)
        if not answer._implementations:

            @answer.platform("alpha")
            def _(platform: PlatformSpec) -> str:
                return "alpha's own"

        return path

    manager._call_path = registering_meanwhile  # type: ignore[method-assign]
    answer()  # binds while the implementation is registered
    manager._call_path = original  # type: ignore[method-assign]
    assert answer() == "alpha's own"
