"""Discovery: does a platform accept its key, and does its model exist?

An adapter's :meth:`~Discoverable.check` asks the provider with the cheapest authenticated
request its API has (listing a model, reading an account's balance, ...): what it sends is a
:class:`CheckPlan` of :class:`Lookup` requests, which each adapter describes
(:mod:`._check_plans` holds the providers' own) and which :func:`run_check` sends and reads.
The answer is a :class:`PlatformCheck`.

Terms, as the result uses them:

* **key** (:class:`KeyStatus`): *accepted* when a request that needs the key was answered
  (with the resource, or with "no such model", which a provider only says after
  authenticating); *rejected* when the provider refused it (401/403, or xAI's 400 "Incorrect
  API key"); *not set* when the platform's ``api_key_env`` is empty (then nothing is sent);
  *not needed* for a keyless platform; *not checked* when no request proves it.
* **model** (:class:`ModelStatus`): *found*, *missing* (the provider said there is no such
  model), or *not checked* (its API has no lookup, or the check stopped before it).
* **problem** (:class:`CheckProblem`): why a check could not conclude: the provider was
  *unreachable* (no HTTP answer: refused, DNS, TLS, timeout), answered with a *provider
  error* (5xx, an answer the check cannot read), was *rate limited*, or the account is *out
  of credits*. A problem is never reported as a bad key.

A check goes around the manager: it records nothing on any breaker, cool-down or health
counter, so asking does not change what the manager does. Only what a check is asked to send
is sent; keys go only in the request headers the provider expects, and every text of the
result is scrubbed of them.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import anyio
import httpx

from failover._core import validate
from failover._core.classify import ErrorBody, classify_body, parse_error_body, retry_after_of
from failover._core.classify.kinds import ErrorKind
from failover._core.errors import (
    AuthFailed,
    BadRequest,
    CheckInconclusive,
    CreditExhausted,
    RateLimited,
    Transient,
)
from failover._core.spec import PlatformSpec
from failover._observe.scrub import Scrubber
from failover.http._blocking import blocking, run_blocking
from failover.http._classify import describe, read_error_body, to_provider_error

#: How long a check may take, by default (each request, and in async code the whole check).
CHECK_TIMEOUT: Final = 10.0
#: The most of an answer a check reads (a provider's whole model list fits).
MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024
#: The longest :attr:`PlatformCheck.detail`.
MAX_DETAIL_CHARS: Final = 400


class KeyStatus(enum.StrEnum):
    """What the provider said of the platform's key."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    NOT_SET = "not_set"
    NOT_NEEDED = "not_needed"
    NOT_CHECKED = "not_checked"


class ModelStatus(enum.StrEnum):
    """What the provider said of the platform's model."""

    FOUND = "found"
    MISSING = "missing"
    NOT_CHECKED = "not_checked"


class CheckProblem(enum.StrEnum):
    """Why a check could not conclude (never a verdict on the key or the model)."""

    UNREACHABLE = "unreachable"
    PROVIDER_ERROR = "provider_error"
    RATE_LIMITED = "rate_limited"
    OUT_OF_CREDITS = "out_of_credits"


_KEY_WORDS: Final = {
    KeyStatus.ACCEPTED: "key accepted",
    KeyStatus.REJECTED: "key rejected",
    KeyStatus.NOT_SET: "key not set",
    KeyStatus.NOT_NEEDED: "no key needed",
    KeyStatus.NOT_CHECKED: "key not checked",
}
_MODEL_WORDS: Final = {
    ModelStatus.FOUND: "model found",
    ModelStatus.MISSING: "model missing",
    ModelStatus.NOT_CHECKED: "model not checked",
}


@dataclass(frozen=True, slots=True)
class PlatformCheck:
    """What a provider said when asked about one platform: its key, its model, and any
    problem that kept the check from concluding. ``detail`` is a short, scrubbed reason.

    As a health probe: :attr:`ok` is true only when the provider answered and nothing it
    said is wrong, so a probe that treats ``ok`` as success never closes a breaker on a
    platform that was not reached, refused the key, lacks the model or could not be asked.
    """

    platform: str
    model: str
    key: KeyStatus
    model_status: ModelStatus
    problem: CheckProblem | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """The provider answered, accepted the key (or needs none, and then found the model),
        and did not say the model is missing."""
        if self.problem is not None or self.model_status is ModelStatus.MISSING:
            return False
        if self.key is KeyStatus.ACCEPTED:
            return True
        return self.key is KeyStatus.NOT_NEEDED and self.model_status is ModelStatus.FOUND

    @property
    def misconfigured(self) -> bool:
        """The key was rejected or the model is missing: the configuration needs a fix
        (``failover check-config --online`` exits 1)."""
        return self.key is KeyStatus.REJECTED or self.model_status is ModelStatus.MISSING

    @property
    def status(self) -> str:
        """One word: ``ok``, ``failed`` (misconfigured), the problem's name, or
        ``not_checked``."""
        if self.misconfigured:
            return "failed"
        if self.problem is not None:
            return self.problem.value
        return "ok" if self.ok else "not_checked"

    def summary(self) -> str:
        """One line: ``key accepted, model missing: HTTP 404 ...``."""
        parts = [_KEY_WORDS[self.key]]
        if self.problem is not None:
            parts.insert(0, self.problem.value.replace("_", " "))
        elif self.key not in (KeyStatus.NOT_SET, KeyStatus.REJECTED):
            parts.append(_MODEL_WORDS[self.model_status])
        text = ", ".join(parts)
        return f"{text}: {self.detail}" if self.detail else text

    def raise_for_problem(self) -> None:
        """Raise what the check found, as failover's own errors, so a health check
        (:class:`failover.HealthChecks`) books it like an attempt's failure; return when
        :attr:`ok`.

        A rejected key raises :class:`~failover.AuthFailed`; out of credits
        :class:`~failover.CreditExhausted`; rate limited :class:`~failover.RateLimited`; an
        unreachable provider or a provider error :class:`~failover.Transient`; a missing
        model :class:`~failover.BadRequest` (``not_found``: the configuration's fault, not
        the platform's health); a check that proved nothing (no request to ask, as for FAL)
        :class:`~failover.CheckInconclusive`. The messages carry :attr:`detail` (scrubbed).
        """
        if self.ok:
            return
        detail = self.summary()
        if self.key is KeyStatus.REJECTED:
            raise AuthFailed(detail, status_code=None)
        if self.model_status is ModelStatus.MISSING:
            raise BadRequest(detail, reason="not_found", status_code=None)
        if self.problem is CheckProblem.OUT_OF_CREDITS:
            raise CreditExhausted(detail, status_code=None)
        if self.problem is CheckProblem.RATE_LIMITED:
            raise RateLimited(detail, status_code=None)
        if self.problem is not None:
            raise Transient(detail, status_code=None)
        raise CheckInconclusive(detail)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the fields, ``status`` and ``ok``)."""
        return {
            "platform": self.platform,
            "model": self.model,
            "status": self.status,
            "ok": self.ok,
            "key": self.key.value,
            "model_status": self.model_status.value,
            "problem": None if self.problem is None else self.problem.value,
            "detail": self.detail,
        }


# -- what a check sends ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    """What a successful answer says beyond "here it is": whether the model is in a list
    (``found``), and an account's balance (``credits``; zero or less is out of credits)."""

    found: bool | None = None
    credits: float | None = None


def _is_404(response: httpx.Response, body: ErrorBody) -> bool:
    return response.status_code == 404


@dataclass(frozen=True, slots=True)
class Lookup:
    """One ``GET`` a check sends, and what its answer proves.

    ``path`` is relative to the platform's base URL (no leading ``/``) or an absolute URL.
    ``model`` names the model this request looks up (``None``: it checks the key only).
    ``proves_key``: a success shows the key was accepted (a public endpoint proves nothing).
    ``keyed``: send the key (``auth`` builds its headers when they differ from the
    adapter's); ``only_with_key``: skip the request when there is no key to send.
    ``read`` reads a successful answer's JSON (a list of models, a balance). ``missing``
    says which error answers of a lookup without ``read`` mean "no such model" (by default
    a 404); after such an answer the key counts as accepted when the request proves it (a
    provider authenticates before it looks). A list's 404 only means there is no list.
    """

    path: str
    model: str | None = None
    proves_key: bool = True
    keyed: bool = True
    only_with_key: bool = False
    auth: Callable[[str], dict[str, str]] | None = None
    read: Callable[[Any], Reading] | None = None
    missing: Callable[[httpx.Response, ErrorBody], bool] | None = _is_404
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CheckPlan:
    """The requests of a check, in order, and why the key or the model cannot be checked
    when no request does it (shown in :attr:`PlatformCheck.detail`)."""

    lookups: tuple[Lookup, ...] = ()
    unchecked_key: str = ""
    unchecked_model: str = ""


def listed(model: str, *aliases: str) -> Callable[[Any], Reading]:
    """A reader of a model list (a JSON array of ids or of ``{"id": ...}`` objects, or
    ``{"data": [...]}``): found when ``model`` (or one of ``aliases``) is in it."""
    wanted = {model, *aliases}

    def read(data: Any) -> Reading:
        items = data.get("data") if isinstance(data, Mapping) else data
        if not isinstance(items, list):
            raise ValueError("not a list of models")
        ids = {item.get("id") if isinstance(item, Mapping) else item for item in items}
        return Reading(found=not wanted.isdisjoint(ids))

    return read


def any_listed(data: Any) -> Reading:
    """A reader of a model list that only needs one model in it (a provider's default)."""
    items = data.get("data") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise ValueError("not a list of models")
    return Reading(found=bool(items))


def balance(field_name: str = "credits") -> Callable[[Any], Reading]:
    """A reader of an account's balance: ``{field_name: number}``."""

    def read(data: Any) -> Reading:
        value = data.get(field_name) if isinstance(data, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"no {field_name!r} number in the answer")
        return Reading(credits=float(value))

    return read


# -- sending it ------------------------------------------------------------------------------


class FacadeChecks:
    """``check`` and ``check_sync`` for the façades (``TextGeneration`` and the media
    operations): the platform's own adapter answers."""

    def adapter(self, platform: PlatformSpec | str) -> Discoverable:
        raise NotImplementedError

    async def check(
        self, platform: PlatformSpec, /, *, timeout: float = CHECK_TIMEOUT
    ) -> PlatformCheck:
        """Ask ``platform``'s provider whether its key is accepted and its model exists (its
        adapter's :meth:`~failover.http.Discoverable.check`; nothing is recorded)."""
        return await self.adapter(platform).check(platform, timeout=timeout)

    def check_sync(
        self, platform: PlatformSpec, /, *, timeout: float = CHECK_TIMEOUT
    ) -> PlatformCheck:
        """:meth:`check` for synchronous code."""
        return self.adapter(platform).check_sync(platform, timeout=timeout)


class Discoverable:
    """What gives an adapter :meth:`check`: :class:`~failover.http.ChatAdapter` and
    :class:`~failover.http.MediaAdapter` inherit it; a subclass describes its provider's
    check in :meth:`check_plan`.

    The attributes and methods below are the adapter's own (its key variable source, key
    headers and pooled clients): a check goes through the same clients as the calls.
    """

    #: A key variable sent when set, for a platform declared keyless (``api_key_env=None``).
    optional_key_env: ClassVar[str | None] = None
    _environ: Mapping[str, str]

    def auth_headers(self, key: str) -> dict[str, str]:
        raise NotImplementedError

    def sync_client(self, platform: PlatformSpec | str) -> httpx.Client:
        raise NotImplementedError

    async def _client(self, platform: PlatformSpec) -> httpx.AsyncClient:
        raise NotImplementedError

    def check_plan(self, platform: PlatformSpec) -> CheckPlan:
        """The requests that check ``platform``'s key and model (override for a provider).

        By default nothing is sent and the result says so.
        """
        reason = f"{type(self).__name__} has no check"
        return CheckPlan(unchecked_key=reason, unchecked_model=reason)

    async def check(
        self, platform: PlatformSpec, /, *, timeout: float = CHECK_TIMEOUT
    ) -> PlatformCheck:
        """Ask the provider whether ``platform``'s key is accepted and its model exists.

        Sends :meth:`check_plan`'s requests (usually one or two ``GET`` requests that cost
        nothing) through the platform's pooled client, each bounded by ``timeout`` seconds,
        and the whole check too. It never raises for what the provider answers or for a
        provider that cannot be reached: the :class:`PlatformCheck` says so. Nothing is
        recorded on the manager (no breaker moves), which makes it usable as a probe:
        ``(await adapter.check(platform)).ok``.
        """
        if not isinstance(platform, PlatformSpec):
            raise TypeError(f"platform must be a PlatformSpec, got {validate.shown(platform)}")
        seconds = validate.seconds("timeout", timeout, above=0)
        plan = self.check_plan(platform)
        if blocking():
            return await run_check(self, platform, plan, seconds)
        with anyio.move_on_after(seconds):
            return await run_check(self, platform, plan, seconds)
        return PlatformCheck(
            platform.name,
            platform.model,
            KeyStatus.NOT_CHECKED,
            ModelStatus.NOT_CHECKED,
            CheckProblem.UNREACHABLE,
            f"no answer within {seconds:g} s",
        )

    def check_sync(
        self, platform: PlatformSpec, /, *, timeout: float = CHECK_TIMEOUT
    ) -> PlatformCheck:
        """:meth:`check` for synchronous code (no event loop; any thread). Each request is
        bounded by ``timeout``; the whole check is not (a blocking request cannot be cut)."""
        return run_blocking(self.check(platform, timeout=timeout))


@dataclass(slots=True)
class _Progress:
    """What a check has learnt so far."""

    key: KeyStatus
    found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problem: CheckProblem | None = None
    notes: list[str] = field(default_factory=list)


async def run_check(
    adapter: Discoverable, platform: PlatformSpec, plan: CheckPlan, timeout: float
) -> PlatformCheck:
    """Send ``plan``'s requests for ``platform`` through ``adapter`` and read the answers."""
    env = platform.api_key_env
    optional = adapter.optional_key_env
    scrub = Scrubber([name for name in (env, optional) if name], adapter._environ)
    if env is not None:
        key = adapter._environ.get(env)
        if not key:
            return PlatformCheck(
                platform.name,
                platform.model,
                KeyStatus.NOT_SET,
                ModelStatus.NOT_CHECKED,
                detail=f"nothing sent ({env} is empty)",
            )
    else:
        key = (adapter._environ.get(optional) if optional else None) or None
    progress = _Progress(KeyStatus.NOT_NEEDED if key is None else KeyStatus.NOT_CHECKED)
    models = [lookup.model for lookup in plan.lookups if lookup.model is not None]
    for lookup in plan.lookups:
        if lookup.only_with_key and key is None:
            continue
        headers = dict(lookup.headers)
        sent_key = key is not None and lookup.keyed
        if sent_key:
            assert key is not None
            headers.update((lookup.auth or adapter.auth_headers)(key))
        if not await _ask(adapter, platform, lookup, headers, sent_key, timeout, scrub, progress):
            break
    if progress.key is KeyStatus.NOT_CHECKED and plan.unchecked_key:
        progress.notes.insert(0, plan.unchecked_key)
    if progress.missing:
        model_status = ModelStatus.MISSING
    elif models and len(progress.found) == len(models):
        model_status = ModelStatus.FOUND
    else:
        model_status = ModelStatus.NOT_CHECKED
        if not models and plan.unchecked_model:
            progress.notes.append(plan.unchecked_model)
    detail = scrub("; ".join(dict.fromkeys(progress.notes)))
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 3] + "..."
    return PlatformCheck(
        platform.name, platform.model, progress.key, model_status, progress.problem, detail
    )


async def _ask(
    adapter: Discoverable,
    platform: PlatformSpec,
    lookup: Lookup,
    headers: dict[str, str],
    sent_key: bool,
    timeout: float,
    scrub: Scrubber,
    progress: _Progress,
) -> bool:
    """Send one lookup and record what its answer says; whether the check goes on."""
    try:
        response, content = await _get(adapter, platform, lookup, headers, timeout)
    except httpx.HTTPError as exc:
        progress.problem = CheckProblem.UNREACHABLE
        progress.notes.append(str(to_provider_error(exc, scrub=scrub)))
        return False
    if response.is_success:
        return _answered(lookup, content, sent_key, progress)
    body = parse_error_body(content)
    text = describe(response.status_code, body, scrub)
    # A list's 404 means the server has no such list (below), never that the model is gone.
    if lookup.model is not None and lookup.read is None and _says_missing(lookup, response, body):
        progress.missing.append(lookup.model)
        progress.notes.append(f"{lookup.model}: {text}")
        if sent_key and lookup.proves_key and progress.key is KeyStatus.NOT_CHECKED:
            progress.key = KeyStatus.ACCEPTED
        return True
    verdict = classify_body(response.status_code, body, retry_after_of(response.headers))
    progress.notes.append(text)
    if verdict.kind is ErrorKind.AUTH:
        if sent_key:
            progress.key = KeyStatus.REJECTED
        else:
            progress.problem = CheckProblem.PROVIDER_ERROR
        return False
    if verdict.kind is ErrorKind.RATE_LIMITED:
        progress.problem = CheckProblem.RATE_LIMITED
        return False
    if verdict.kind is ErrorKind.CREDIT_EXHAUSTED:
        progress.problem = CheckProblem.OUT_OF_CREDITS
        if sent_key and progress.key is KeyStatus.NOT_CHECKED:
            progress.key = KeyStatus.ACCEPTED  # the provider knew whose account it was
        return False
    if response.status_code == 404 and lookup.read is not None:
        return True  # no such list on this server: the model is not checked, nothing else
    progress.problem = CheckProblem.PROVIDER_ERROR
    return False


def _answered(lookup: Lookup, content: bytes, sent_key: bool, progress: _Progress) -> bool:
    """Record a successful answer; whether the check goes on."""
    reading = Reading()
    if lookup.read is not None:
        try:
            reading = lookup.read(json.loads(content))
        except ValueError as exc:  # JSONDecodeError too
            progress.problem = CheckProblem.PROVIDER_ERROR
            progress.notes.append(f"unreadable answer: {exc}"[:200])
            return False
    if sent_key and lookup.proves_key and progress.key is KeyStatus.NOT_CHECKED:
        progress.key = KeyStatus.ACCEPTED
    if lookup.model is not None:
        if reading.found is False:
            progress.missing.append(lookup.model)
            progress.notes.append(f"{lookup.model}: not in the provider's model list")
        else:
            progress.found.append(lookup.model)
    if reading.credits is not None:
        if reading.credits <= 0:
            progress.problem = CheckProblem.OUT_OF_CREDITS
            progress.notes.append(f"balance {reading.credits:g} credits")
            return False
        progress.notes.append(f"{reading.credits:g} credits left")
    return True


def _says_missing(lookup: Lookup, response: httpx.Response, body: ErrorBody) -> bool:
    return lookup.missing is not None and lookup.missing(response, body)


async def _get(
    adapter: Discoverable,
    platform: PlatformSpec,
    lookup: Lookup,
    headers: Mapping[str, str],
    timeout: float,
) -> tuple[httpx.Response, bytes]:
    """``GET`` the lookup through the platform's pooled client; the answer's first
    :data:`MAX_ANSWER_BYTES` (the response is closed)."""
    client = adapter.sync_client(platform) if blocking() else await adapter._client(platform)
    request = client.build_request("GET", lookup.path, headers=headers, timeout=timeout)
    if isinstance(client, httpx.Client):  # the adapters' blocking mode (see _blocking)
        response = client.send(request, stream=True)
    else:
        response = await client.send(request, stream=True)
    return response, await read_error_body(response, MAX_ANSWER_BYTES)
