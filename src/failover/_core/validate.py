"""Every setting and argument check of failover, and the message it raises.

Each helper returns the value (converted: ``float`` for numbers and seconds) or raises exactly
one :class:`~failover.ConfigError` whose message names the setting and shows the value it got
(``cache_ttl_seconds must be a number > 0, got 0``), with ``key`` set to the setting's name.

The rules every number check shares:

* ``bool`` is never a number (``True`` is an ``int`` to Python, never to a setting);
* NaN is never valid (it compares false with everything, so a bound would let it through);
* infinity is refused unless the caller passes ``allow_inf=True``, which it does only where
  infinity means something ("off", "forever", "as long as it takes");
* an integer must fit what it becomes: 64 bits for an integer setting, a float for a number
  (``10**400`` is refused by name, not with an ``OverflowError`` from deep inside).

Values are shown in messages through :func:`failover._core.text.shown`: at most 200
characters, and a value whose ``repr`` raises, recurses too deep or has thousands of digits is
described instead of crashing the message.

The message's parts can be shaped so that each setting keeps the words users already see:
``label`` is how the message names the setting (``"Hedge.delay"``), ``kind`` what it must
be (``"a number"``, ``"seconds"``, ``""``), ``hint`` a remark after the bound, and
``bare_type_error`` leaves the bound out when the value is not a number at all
(``failure_threshold must be an integer, got 2.5``).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeGuard

from failover._core.errors import ConfigError
from failover._core.text import shown

__all__ = [
    "IDENTIFIER",
    "callable_",
    "callables",
    "flag",
    "fraction",
    "identifier",
    "instance",
    "instances",
    "integer",
    "mapping",
    "name",
    "number",
    "one_of",
    "provides",
    "seconds",
    "shown",
    "strings",
]

#: The largest integer setting: what a 64-bit counter (Redis, pybreaker, a metric) holds.
MAX_INTEGER: Final = 2**63 - 1
#: Platform and operation names: lowercase, starting with a letter (the whole string: a
#: trailing newline is not part of a name).
IDENTIFIER: Final = re.compile(r"[a-z][a-z0-9_\-\.]*")


def _fail(message: str, key: str | None, source: str | None) -> ConfigError:
    return ConfigError(message, source=source, key=key)


def _real(value: object, *, integer: bool, allow_inf: bool) -> TypeGuard[int | float]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, int):
        return True  # never NaN or infinite (math.isnan would overflow on 10**400)
    if integer:
        return False
    return not math.isnan(value) and (allow_inf or not math.isinf(value))


def _too_large(value: int | float, *, integer: bool) -> str | None:
    """What ``value`` does not fit, or ``None`` when it fits."""
    if not isinstance(value, int):
        return None
    if integer:
        return "at most 2**63 - 1" if abs(value) > MAX_INTEGER else None
    return "at most about 1.8e308, a float's largest" if abs(value) > sys.float_info.max else None


def _bounds(
    above: float | None, at_least: float | None, at_most: float | None, below: float | None
) -> str:
    parts = [
        f"{sign} {bound:g}"
        for sign, bound in ((">", above), (">=", at_least), ("<=", at_most), ("<", below))
        if bound is not None
    ]
    return " and ".join(parts)


def _in_range(
    value: float,
    above: float | None,
    at_least: float | None,
    at_most: float | None,
    below: float | None,
) -> bool:
    return (
        (above is None or value > above)
        and (at_least is None or value >= at_least)
        and (at_most is None or value <= at_most)
        and (below is None or value < below)
    )


def _checked(
    name: str,
    value: object,
    *,
    integer: bool,
    kind: str,
    above: float | None,
    at_least: float | None,
    at_most: float | None,
    below: float | None,
    allow_inf: bool,
    label: str | None,
    hint: str,
    bare_type_error: bool,
    key: str | None,
    source: str | None,
) -> int | float:
    said = label if label is not None else name
    key = name if key is None else key
    bound = _bounds(above, at_least, at_most, below)
    wanted = " ".join(part for part in (kind, bound) if part)
    if not _real(value, integer=integer, allow_inf=allow_inf):
        if bare_type_error:
            raise _fail(f"{said} must be {kind}{hint}, got {shown(value)}", key, source)
        raise _fail(f"{said} must be {wanted}{hint}, got {shown(value)}", key, source)
    if not _in_range(value, above, at_least, at_most, below):
        raise _fail(f"{said} must be {wanted}{hint}, got {shown(value)}", key, source)
    limit = _too_large(value, integer=integer)
    if limit is not None:
        raise _fail(f"{said} is too large ({limit}), got {shown(value)}", key, source)
    return value


def number(
    name: str,
    value: object,
    *,
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    allow_inf: bool = False,
    kind: str = "a number",
    label: str | None = None,
    hint: str = "",
    bare_type_error: bool = False,
    key: str | None = None,
    source: str | None = None,
) -> float:
    """``value`` as a float if it is a real number within every bound given."""
    checked = _checked(
        name,
        value,
        integer=False,
        kind=kind,
        above=above,
        at_least=at_least,
        at_most=at_most,
        below=below,
        allow_inf=allow_inf,
        label=label,
        hint=hint,
        bare_type_error=bare_type_error,
        key=key,
        source=source,
    )
    return float(checked)


def seconds(
    name: str,
    value: object,
    *,
    above: float | None = None,
    at_least: float | None = None,
    allow_inf: bool = False,
    kind: str = "seconds",
    label: str | None = None,
    hint: str = "",
    key: str | None = None,
    source: str | None = None,
) -> float:
    """A duration in seconds: :func:`number` whose message says ``seconds`` by default."""
    return number(
        name,
        value,
        above=above,
        at_least=at_least,
        allow_inf=allow_inf,
        kind=kind,
        label=label,
        hint=hint,
        key=key,
        source=source,
    )


def integer(
    name: str,
    value: object,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    kind: str = "an integer",
    label: str | None = None,
    hint: str = "",
    bare_type_error: bool = False,
    key: str | None = None,
    source: str | None = None,
) -> int:
    """``value`` if it is an ``int`` (not a ``bool``, not a whole float) within the bounds."""
    checked = _checked(
        name,
        value,
        integer=True,
        kind=kind,
        above=None,
        at_least=at_least,
        at_most=at_most,
        below=None,
        allow_inf=False,
        label=label,
        hint=hint,
        bare_type_error=bare_type_error,
        key=key,
        source=source,
    )
    return int(checked)


def fraction(
    name: str,
    value: object,
    *,
    upper_open: bool = False,
    label: str | None = None,
    key: str | None = None,
    source: str | None = None,
) -> float:
    """A number in ``[0, 1]`` (``[0, 1)`` with ``upper_open``), as a float."""
    interval = "[0, 1)" if upper_open else "[0, 1]"
    if not _real(value, integer=False, allow_inf=False) or not (
        0 <= value < 1 if upper_open else 0 <= value <= 1
    ):
        said = label if label is not None else name
        raise _fail(
            f"{said} must be a number in {interval}, got {shown(value)}",
            name if key is None else key,
            source,
        )
    return float(value)


def flag(
    name: str,
    value: object,
    *,
    label: str | None = None,
    spelling: tuple[str, str] = ("True", "False"),
    key: str | None = None,
    source: str | None = None,
) -> bool:
    """``value`` if it is a ``bool``; ``spelling`` is how the message writes the two values
    (``("true", "false")`` for a TOML file)."""
    if not isinstance(value, bool):
        said = label if label is not None else name
        raise _fail(
            f"{said} must be {spelling[0]} or {spelling[1]}, got {shown(value)}",
            name if key is None else key,
            source,
        )
    return value


def name(
    setting: str,
    value: object,
    *,
    label: str | None = None,
    key: str | None = None,
    source: str | None = None,
) -> str:
    """``value`` if it is a non-empty string."""
    if not isinstance(value, str) or not value:
        said = label if label is not None else setting
        raise _fail(
            f"{said} must be a non-empty string, got {shown(value)}",
            setting if key is None else key,
            source,
        )
    return value


def one_of(
    name: str,
    value: object,
    choices: Sequence[str],
    *,
    label: str | None = None,
    key: str | None = None,
    source: str | None = None,
) -> str:
    """``value`` if it is one of ``choices`` (strings)."""
    if isinstance(value, str) and value in choices:
        return value
    said = label if label is not None else name
    listed = [repr(choice) for choice in choices]
    wanted = " or ".join(listed) if len(listed) == 2 else "one of " + ", ".join(listed)
    raise _fail(
        f"{said} must be {wanted}, got {shown(value)}", name if key is None else key, source
    )


def mapping(
    name: str,
    value: object,
    *,
    of: str = "",
    label: str | None = None,
    key: str | None = None,
    source: str | None = None,
) -> Mapping[Any, Any]:
    """``value`` if it is a mapping; ``of`` says of what (``" of operation type -> ..."``).

    The message shows the type, not the value: a wrong mapping is often large.
    """
    if not isinstance(value, Mapping):
        said = label if label is not None else name
        raise _fail(
            f"{said} must be a mapping{of}, got {type(value).__name__}",
            name if key is None else key,
            source,
        )
    return value


def callable_(
    name: str,
    value: object,
    *,
    label: str | None = None,
    key: str | None = None,
    source: str | None = None,
) -> Callable[..., Any]:
    """``value`` if it can be called."""
    if not callable(value):
        said = label if label is not None else name
        raise _fail(
            f"{said} must be callable, got {shown(value)}", name if key is None else key, source
        )
    return value


def identifier(
    setting: str,
    value: object,
    *,
    label: str | None = None,
    hint: str = "",
    key: str | None = None,
    source: str | None = None,
) -> str:
    """``value`` if it is a lowercase identifier (:data:`IDENTIFIER`), the whole of it."""
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        said = label if label is not None else setting
        raise _fail(
            f"{said} must be a lowercase identifier{hint}, got {shown(value)}",
            setting if key is None else key,
            source,
        )
    return value


def instance(
    name: str,
    value: object,
    types: type | tuple[type, ...],
    wanted: str,
    *,
    label: str | None = None,
    key: str | None = None,
    source: str | None = None,
) -> Any:
    """``value`` if it is an instance of ``types``; ``wanted`` says what in words
    (``"a PlatformSpec or a platform name"``). The message shows the type it got."""
    if not isinstance(value, types):
        said = label if label is not None else name
        raise _fail(
            f"{said} must be {wanted}, got {type(value).__name__}",
            name if key is None else key,
            source,
        )
    return value


def strings(
    name: str,
    value: object,
    *,
    of: str = "strings",
    label: str | None = None,
    key: str | None = None,
    source: str | None = None,
) -> tuple[str, ...]:
    """``value`` as a tuple if it is a collection (not one string) of non-empty strings;
    ``of`` says of what (``"request-fault reasons"``)."""
    said = label if label is not None else name
    key = name if key is None else key
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise _fail(f"{said} must be a collection of {of}, got {shown(value)}", key, source)
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise _fail(
                f"{said} must be a collection of {of}, got an item {shown(item)}", key, source
            )
    return items


def callables(
    name: str,
    value: object,
    *,
    label: str | None = None,
    key: str | None = None,
    source: str | None = None,
) -> tuple[Callable[..., Any], ...]:
    """``value`` as a tuple if it is a collection of callables (a single callable is not)."""
    said = label if label is not None else name
    key = name if key is None else key
    if callable(value) or isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise _fail(f"{said} must be a list of callables, got {shown(value)}", key, source)
    items = tuple(value)
    for item in items:
        if not callable(item):
            raise _fail(
                f"{said} must be a list of callables, got an item {shown(item)}", key, source
            )
    return items


def instances(
    name: str,
    value: object,
    types: type | tuple[type, ...],
    wanted: str,
    *,
    label: str | None = None,
    key: str | None = None,
    source: str | None = None,
) -> tuple[Any, ...]:
    """``value`` as a tuple of instances of ``types``: one instance, or a collection of them;
    ``wanted`` says what in words (``"a failover.Chaos or a list of them"``)."""
    if isinstance(value, types):
        return (value,)
    said = label if label is not None else name
    key = name if key is None else key
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise _fail(f"{said} must be {wanted}, got {shown(value)}", key, source)
    items = tuple(value)
    for item in items:
        if not isinstance(item, types):
            raise _fail(f"{said} must be {wanted}, got an item {shown(item)}", key, source)
    return items


def provides(
    name: str,
    value: object,
    method: str,
    wanted: str,
    *,
    label: str | None = None,
    key: str | None = None,
    source: str | None = None,
) -> Any:
    """``value`` if it has a callable ``method`` (duck typing: ``wanted`` says what in words,
    ``"an OpenTelemetry tracer provider"``). The message shows the type it got."""
    if not callable(getattr(value, method, None)):
        said = label if label is not None else name
        raise _fail(
            f"{said} must be {wanted} (with {method}()), got {type(value).__name__}",
            name if key is None else key,
            source,
        )
    return value
