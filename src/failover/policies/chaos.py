"""Chaos injection: rehearse an outage by making platforms fail, slow down or lie, on purpose.

A :class:`Chaos` rule injects, at given rates, a fault (any exception, or a provider-shaped
error: ``"transient"`` 503, ``"rate_limited"`` 429, ``"credit"`` 402, ``"auth"`` 401, or an
HTTP status code), latency, or a replaced result, for the platforms and operations it names.
Injection sits innermost, right around the operation, so every real policy sees it: attempt
timeouts fire on injected latency, breakers count injected faults, credit errors cool the
platform down. That is what makes a staging drill honest.

Chaos is never active unless explicitly enabled: by ``PlatformManager(chaos=...)``, at
runtime with ``manager.chaos.enable(...)`` / ``disable()``, or with ``FAILOVER_CHAOS`` in
the environment (syntax in :func:`parse_chaos`). Disabled chaos costs nothing per call.
Every injection is logged (``failover`` logger, WARNING) and marked on the attempt span as
``failover.chaos`` (``fault``, ``latency``, ``result``).
"""

from __future__ import annotations

import copy
import inspect
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from failover._core import validate
from failover._core.errors import (
    AuthFailed,
    BadRequest,
    ConfigError,
    CreditExhausted,
    RateLimited,
    Transient,
)
from failover._observe.scrub import get_logger
from failover._observe.telemetry import current_recording_span
from failover.policies.base import Strategy

if TYPE_CHECKING:
    from failover._core.clock import Clock
    from failover._core.spec import PlatformSpec

logger = get_logger("failover")

#: The environment variable read when a manager is built without ``chaos=``.
ENV_CHAOS: Final = "FAILOVER_CHAOS"

Fault = BaseException | type[BaseException] | Callable[[], BaseException] | str | int

_NAMED_STATUS: Final = {
    "transient": 503,
    "5xx": 503,
    "rate_limited": 429,
    "rate_limit": 429,
    "credit": 402,
    "auth": 401,
}


def provider_fault(status: int) -> BaseException:
    """A fresh provider-shaped error for an HTTP ``status``, marked as injected."""
    message = f"chaos: injected HTTP {status}"
    if status == 402:
        return CreditExhausted(message + " (credit balance exhausted)", status_code=status)
    if status == 429:
        return RateLimited(message + " (rate limited)", status_code=status)
    if status in (401, 403):
        return AuthFailed(message + " (key refused)", status_code=status)
    if status == 408 or status >= 500:
        return Transient(message, status_code=status)
    if 400 <= status < 500:
        return BadRequest(message, status_code=status)
    raise ConfigError(f"chaos fault status must be 4xx or 5xx, got {status}", key="fault")


def _fault_factory(fault: Fault) -> Callable[[], BaseException]:
    if isinstance(fault, str):
        status = _NAMED_STATUS.get(fault.strip().lower())
        if status is None:
            raise ConfigError(
                f"Chaos.fault {fault!r} is not one of {', '.join(_NAMED_STATUS)} "
                "(or give an HTTP status, an exception or a factory)",
                key="fault",
            )
        provider_fault(status)
        return lambda: provider_fault(status)
    if isinstance(fault, int) and not isinstance(fault, bool):
        provider_fault(fault)  # validates the status now, not on the first injection
        return lambda: provider_fault(fault)
    if isinstance(fault, BaseException):
        instance = fault

        def fresh() -> BaseException:
            # A copy per injection, so tracebacks do not pile up on one shared instance.
            try:
                return copy.copy(instance).with_traceback(None)
            except Exception:
                return instance.with_traceback(None)

        return fresh
    if isinstance(fault, type) and issubclass(fault, BaseException):
        return lambda: fault("chaos: injected fault")
    if callable(fault):
        return cast("Callable[[], BaseException]", fault)
    raise ConfigError(
        f"Chaos.fault must be an exception, an exception class, a factory, a status code "
        f"or a name, got {fault!r}",
        key="fault",
    )


def _names(name: str, value: Iterable[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    if not items or not all(isinstance(item, str) and item for item in items):
        raise ConfigError(f"Chaos.{name} must be names (strings), got {value!r}", key=name)
    return frozenset(items)


@dataclass(frozen=True, slots=True)
class Chaos:
    """Inject faults, latency or results at given rates (each in ``[0, 1]``).

    Per call and per matching platform, independently: with probability ``latency_rate``
    wait ``latency`` seconds first; with ``fault_rate`` raise ``fault`` instead of calling
    the operation; with ``result_rate`` return ``result`` instead of calling it (a callable
    ``result`` is called with the platform, and awaited if it returns an awaitable).
    ``platforms``/``operations`` limit where it applies (``None``: everywhere). ``seed`` makes
    the dice reproducible.
    """

    fault_rate: float = 0.0
    latency_rate: float = 0.0
    latency: float = 1.0
    result_rate: float = 0.0
    result: Any = None
    fault: Fault = "transient"
    platforms: Iterable[str] | str | None = None
    operations: Iterable[str] | str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("fault_rate", "latency_rate", "result_rate"):
            rate = validate.fraction(name, getattr(self, name), label=f"Chaos.{name}")
            object.__setattr__(self, name, rate)
        latency = validate.seconds("latency", self.latency, at_least=0, label="Chaos.latency")
        object.__setattr__(self, "latency", latency)
        _fault_factory(self.fault)
        object.__setattr__(self, "platforms", _names("platforms", self.platforms))
        object.__setattr__(self, "operations", _names("operations", self.operations))
        if self.seed is not None:
            validate.integer("seed", self.seed, label="Chaos.seed")

    def applies_to(self, operation: str) -> bool:
        operations = self.operations
        return operations is None or operation in operations


#: The dice chose no fault and no result: the real operation runs.
_REAL: Final = object()


class _Armed:
    """A rule with its dice and fault factory, while enabled."""

    __slots__ = ("make_fault", "platforms", "random", "rule")

    def __init__(self, rule: Chaos) -> None:
        import random  # with the first rule: ``import failover`` does not load it

        self.rule = rule
        self.random = random.Random(rule.seed)
        self.make_fault = _fault_factory(rule.fault)
        self.platforms: frozenset[str] | None = rule.platforms  # type: ignore[assignment]


class ChaosControl:
    """``manager.chaos``: switch chaos on and off at runtime, and see what it injected.

    ``enable(*rules)`` arms the given rules (or the ones configured before) and
    ``disable()`` disarms them; ``injected`` counts injections by kind.
    """

    def __init__(self, clock: Clock, on_change: Callable[[], None]) -> None:
        self._clock = clock
        self._on_change = on_change
        self._rules: tuple[Chaos, ...] = ()
        self._armed: tuple[_Armed, ...] = ()
        self.injected: Counter[str] = Counter()

    @property
    def enabled(self) -> bool:
        return bool(self._armed)

    @property
    def rules(self) -> tuple[Chaos, ...]:
        return self._rules

    def enable(self, *rules: Chaos) -> None:
        """Arm ``rules`` (replacing the configured ones), or re-arm the configured ones."""
        for rule in rules:
            if not isinstance(rule, Chaos):
                raise ConfigError(f"expected failover.Chaos rules, got {rule!r}", key="chaos")
        if rules:
            self._rules = tuple(rules)
        if not self._rules:
            raise ConfigError("no chaos rules to enable; pass Chaos(...) rules", key="chaos")
        self._armed = tuple(_Armed(rule) for rule in self._rules)
        logger.warning("Chaos enabled: %s", "; ".join(describe(rule) for rule in self._rules))
        self._on_change()

    def disable(self) -> None:
        """Disarm every rule; calls run untouched again."""
        if not self._armed:
            return
        self._armed = ()
        logger.warning("Chaos disabled")
        self._on_change()

    def armed_for(self, operation: str) -> tuple[_Armed, ...]:
        return tuple(armed for armed in self._armed if armed.rule.applies_to(operation))

    def roll(
        self, armed: tuple[_Armed, ...], operation: str, platform: PlatformSpec
    ) -> tuple[float | None, Callable[[], BaseException] | None, Any]:
        """The dice for one attempt: the latency to add (``None``: none injected), the fault
        to raise (its factory) or the result to return instead (``_REAL``: call the
        operation)."""
        injected = self.injected
        latency: float | None = None
        for item in armed:
            if item.platforms is not None and platform.name not in item.platforms:
                continue
            rule = item.rule
            dice = item.random.random
            if rule.latency_rate and dice() < rule.latency_rate:
                _mark("latency", f"{rule.latency:g}s", rule, platform, operation, injected)
                latency = (latency or 0.0) + rule.latency
            if rule.fault_rate and dice() < rule.fault_rate:
                _mark("fault", fault_label(rule.fault), rule, platform, operation, injected)
                return latency, item.make_fault, _REAL
            if rule.result_rate and dice() < rule.result_rate:
                _mark("result", "canned", rule, platform, operation, injected)
                value = rule.result
                return latency, None, value(platform) if callable(value) else value
        return latency, None, _REAL

    def wrap(
        self, armed: tuple[_Armed, ...], operation: str, func: Callable[..., Any]
    ) -> Callable[..., Any]:
        """``func`` with ``armed`` rules rolled before each call of it."""
        clock = self._clock

        async def chaotic(platform: PlatformSpec, *args: Any, **kwargs: Any) -> Any:
            latency, fault, result = self.roll(armed, operation, platform)
            if latency is not None:
                await clock.sleep(latency)
            if fault is not None:
                raise fault()
            if result is _REAL:
                result = func(platform, *args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return chaotic

    def wrap_blocking(
        self, armed: tuple[_Armed, ...], operation: str, func: Callable[..., Any]
    ) -> Callable[..., Any]:
        """:meth:`wrap` for a synchronous call: latency slept with a blocking sleep."""
        sleep = getattr(self._clock, "sleep_blocking", None) or time.sleep

        def chaotic(platform: PlatformSpec, *args: Any, **kwargs: Any) -> Any:
            latency, fault, result = self.roll(armed, operation, platform)
            if latency is not None:
                sleep(latency)
            if fault is not None:
                raise fault()
            return func(platform, *args, **kwargs) if result is _REAL else result

        return chaotic


class ChaosStrategy(Strategy):
    """The ``wrap`` hook: an operation's armed rules, rolled before each attempt."""

    __slots__ = ("armed", "control")

    name = "chaos"

    def __init__(self, control: ChaosControl, armed: tuple[_Armed, ...]) -> None:
        self.control = control
        self.armed = armed

    def wrap(self, operation: str, func: Callable[..., Any]) -> Callable[..., Any]:
        return self.control.wrap(self.armed, operation, func)

    def wrap_blocking(self, operation: str, func: Callable[..., Any]) -> Callable[..., Any]:
        return self.control.wrap_blocking(self.armed, operation, func)


def _mark(
    kind: str,
    detail: str,
    rule: Chaos,
    platform: PlatformSpec,
    operation: str,
    injected: Counter[str],
) -> None:
    injected[kind] += 1
    span = current_recording_span()
    if span is not None:
        previous = span.attributes.get("failover.chaos") if hasattr(span, "attributes") else None
        span.set_attribute("failover.chaos", f"{previous},{kind}" if previous else kind)
    # The rule's settings ride along so a log reader can tell a drill from a real outage
    # and which rule to switch off.
    logger.warning(
        "Chaos: injecting %s (%s) into %s for %s [rule %s]",
        kind,
        detail,
        platform.name,
        operation,
        describe(rule),
    )


def fault_label(fault: Fault) -> str:
    """What a rule's ``fault`` is, in a word: ``transient``, ``HTTP 503``, an exception's type."""
    if isinstance(fault, str):
        return fault
    if isinstance(fault, int):
        return f"HTTP {fault}"
    if isinstance(fault, BaseException):
        return type(fault).__qualname__
    return str(getattr(fault, "__qualname__", type(fault).__qualname__))


def describe(rule: Chaos) -> str:
    parts = []
    if rule.fault_rate:
        parts.append(f"fault={rule.fault_rate:g}")
    if rule.latency_rate:
        parts.append(f"latency={rule.latency_rate:g}:{rule.latency:g}s")
    if rule.result_rate:
        parts.append(f"result={rule.result_rate:g}")
    for name in ("platforms", "operations"):
        names = getattr(rule, name)
        if names is not None:
            parts.append(f"{name}={'|'.join(sorted(names))}")
    return ",".join(parts) or "no injection"


# -- FAILOVER_CHAOS ----------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s)?\s*$")


def _duration(text: str, key: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(
            f"{key}: expected a duration like 1.5s or 250ms, got {text!r}",
            source=ENV_CHAOS,
            key=key,
        )
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def _env_rate(text: str, key: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise ConfigError(
            f"{key}: expected a rate between 0 and 1, got {text!r}", source=ENV_CHAOS, key=key
        )
    return value


def parse_chaos(text: str) -> tuple[Chaos, ...]:
    """Rules from ``FAILOVER_CHAOS``; empty, ``0`` or ``off`` means none.

    Rules are separated by ``;``, settings within a rule by ``,``::

        fault=RATE[:KIND]       KIND: transient (default), rate_limited, credit, auth, or a status
        latency=RATE:DURATION   DURATION: 1.5s, 1.5 or 250ms
        platforms=NAME|NAME     operations=NAME|NAME     seed=INT

    e.g. ``FAILOVER_CHAOS="fault=0.1:credit,platforms=stability; latency=0.2:1.5s"``.
    """
    text = text.strip()
    if text.lower() in ("", "0", "off", "false", "no", "none"):
        return ()
    rules = []
    for chunk in text.split(";"):
        if not chunk.strip():
            continue
        settings: dict[str, Any] = {}
        for item in chunk.split(","):
            key, sep, value = (part.strip() for part in item.partition("="))
            if not sep or not value:
                raise ConfigError(
                    f"expected key=value, got {item.strip()!r}", source=ENV_CHAOS, key=key
                )
            if key == "fault":
                rate, _, kind = value.partition(":")
                settings["fault_rate"] = _env_rate(rate, key)
                if kind:
                    settings["fault"] = int(kind) if kind.strip().isdigit() else kind
            elif key == "latency":
                rate, _, duration = value.partition(":")
                settings["latency_rate"] = _env_rate(rate, key)
                if not duration:
                    raise ConfigError(
                        f"latency: expected RATE:DURATION, got {value!r}", source=ENV_CHAOS, key=key
                    )
                settings["latency"] = _duration(duration, key)
            elif key in ("platforms", "operations"):
                settings[key] = [name.strip() for name in value.split("|") if name.strip()]
            elif key == "seed":
                if not value.lstrip("-").isdigit():
                    raise ConfigError(
                        f"seed: expected an integer, got {value!r}", source=ENV_CHAOS, key=key
                    )
                settings["seed"] = int(value)
            else:
                raise ConfigError(
                    f"unknown setting {key!r} (known: fault, latency, platforms, operations, seed)",
                    source=ENV_CHAOS,
                    key=key,
                )
        try:
            rules.append(Chaos(**settings))
        except ConfigError as exc:
            raise ConfigError(str(exc), source=ENV_CHAOS, key=exc.key) from None
    return tuple(rules)


def chaos_rules(
    chaos: Chaos | Sequence[Chaos] | None, environ: Mapping[str, str]
) -> tuple[Chaos, ...]:
    """The rules a manager starts with: ``chaos=`` if given, else ``$FAILOVER_CHAOS``."""
    if chaos is None:
        return parse_chaos(environ.get(ENV_CHAOS, ""))
    return validate.instances("chaos", chaos, Chaos, "a failover.Chaos or a list of them")
