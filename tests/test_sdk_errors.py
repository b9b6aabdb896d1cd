"""Each official SDK's own exceptions get failover's verdict, end to end.

The real SDK client (built as ``docs/sdks.md`` recommends: no retries of its own, a short
timeout) calls its platform on the fake provider server, which fails one way: out of credits,
rate limited with ``Retry-After: 20``, a bad key, overloaded, a 500, or no answer at all. The
exception the SDK raises must get the verdict DESIGN §2 asks for, and through a manager it must
cool what it should: credit and a bad key the whole platform, a rate limit the pair for the
provider's 20 s, a 5xx or a timeout nothing but a failure counted toward the breaker. The
canary key (``sdk_support.KEY``) must not appear in the SDK's exception, in any log line, in
the health report.

Where the fake server cannot send a shape (Gemini's ``RetryInfo``, Django REST framework's
throttle wording), the SDK's exception is built from a response the way the SDK builds it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import httpx
import pytest

from failover import Classification, ErrorKind, PlatformManager, PlatformSpec, classify
from failover._core.classify.providers import shape
from failover.testing import Behaviour, FakeProviderServer
from sdk_support import KEY, SDKS, Sdk, sdk_fixture  # noqa: F401  (the sdk fixture)

pytestmark = pytest.mark.anyio

TIMEOUT = 0.5
FAILURES: dict[str, tuple[Behaviour, ErrorKind]] = {
    "out_of_credits": (Behaviour.out_of_credits(), ErrorKind.CREDIT_EXHAUSTED),
    "rate_limited": (Behaviour.rate_limited(retry_after=20), ErrorKind.RATE_LIMITED),
    "bad_key": (Behaviour.bad_key(), ErrorKind.AUTH),
    "overloaded": (Behaviour.overloaded(), ErrorKind.TRANSIENT),
    "server_error": (Behaviour.flaky(1.0, status=500), ErrorKind.TRANSIENT),
    "no_answer": (Behaviour.hanging(), ErrorKind.TRANSIENT),
}
#: The status each platform answers with (the fake's table, from the providers' own).
CREDIT_STATUS = {"openai": 429, "google": 429, "anthropic": 400, "replicate": 402, "fal": 403}
STATUS = {"rate_limited": 429, "bad_key": 401, "server_error": 500, "no_answer": None}


def expected_verdict(sdk: Sdk, failure: str) -> Classification:
    kind = FAILURES[failure][1]
    if failure == "out_of_credits":
        status: int | None = CREDIT_STATUS[sdk.platform]
    elif failure == "overloaded":
        status = 529 if sdk.platform == "anthropic" else 503
    else:
        status = STATUS[failure]
    retry_after = 20.0 if failure == "rate_limited" else None
    return Classification(kind, retry_after=retry_after, status_code=status)


async def raised_by(sdk: Sdk, behaviour: Behaviour) -> Exception:
    async with FakeProviderServer(behaviours={sdk.platform: behaviour}) as server:
        with pytest.raises(Exception) as caught:
            await sdk.call(server, TIMEOUT)
        assert server.stats()[sdk.platform]["total"] == 1  # no retry inside the SDK
    return caught.value


@pytest.mark.parametrize("failure", FAILURES)
async def test_the_sdks_exception_gets_failovers_verdict(sdk: Sdk, failure: str) -> None:
    error = raised_by_sdk = await raised_by(sdk, FAILURES[failure][0])
    assert classify(error) == expected_verdict(sdk, failure), repr(error)
    assert KEY not in f"{raised_by_sdk} {raised_by_sdk!r}"


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


@pytest.mark.parametrize("failure", FAILURES)
async def test_through_the_manager_the_failure_cools_what_it_should(
    sdk: Sdk, failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    behaviour, kind = FAILURES[failure]
    manager = PlatformManager(
        {
            sdk.operation: [
                PlatformSpec(sdk.platform, sdk.model, api_key_env=None),
                PlatformSpec("backup", "local", api_key_env=None),
            ]
        }
    )
    async with FakeProviderServer(behaviours={sdk.platform: behaviour}) as server:

        async def operation(platform: PlatformSpec) -> Any:
            if platform.name == "backup":
                return "served by the backup"
            return await sdk.call(server, TIMEOUT)

        for _ in range(2):
            result, spec = await manager.with_fallback(sdk.operation, operation)
            assert (result, spec.name) == ("served by the backup", "backup")
        requests = server.stats()[sdk.platform]["total"]

    health = manager.get_health_status()
    platform = health[sdk.platform]
    pair = platform["operations"][sdk.operation]
    assert pair["last_error_kind"] == kind.value
    if kind is ErrorKind.CREDIT_EXHAUSTED:
        assert (platform["cooldown_reason"], pair["skip_reason"]) == ("credit", "credit")
    elif kind is ErrorKind.AUTH:
        assert (platform["cooldown_reason"], pair["skip_reason"]) == ("auth", "auth")
    elif kind is ErrorKind.RATE_LIMITED:
        assert (platform["cooldown_reason"], pair["cooldown_reason"]) == (None, "rate_limited")
        assert seconds_between(pair["last_failure"], pair["cooldown_until"]) == pytest.approx(20)
    else:
        assert (platform["cooldown_reason"], pair["cooldown_reason"]) == (None, None)
        assert (pair["consecutive_failures"], pair["state"]) == (2, "closed")
    # A cooled platform is skipped without a request; a transient failure is tried again.
    assert requests == (2 if kind is ErrorKind.TRANSIENT else 1)

    assert KEY not in caplog.text
    assert KEY not in json.dumps(health)


# -- exceptions built the way the SDKs build them, for shapes the fake does not send -------------


def test_genai_reads_geminis_retry_info_as_the_wait() -> None:
    import httpx2
    from google.genai import errors

    quota = shape("google", "quota_with_retry_delay")
    assert quota is not None
    body, _ = quota.example()
    response = httpx2.Response(429, json=body, request=httpx2.Request("POST", "https://g.test"))
    with pytest.raises(errors.ClientError) as caught:
        errors.APIError.raise_for_response(response)
    assert classify(caught.value) == quota.verdict  # rate limited for 37 s, not out of credit


def test_genai_reads_the_wait_geminis_message_names() -> None:
    import httpx2
    from google.genai import errors

    body = {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota, please check your plan and billing "
            "details. Please retry in 38.66s.",
            "status": "RESOURCE_EXHAUSTED",
        }
    }
    response = httpx2.Response(429, json=body, request=httpx2.Request("POST", "https://g.test"))
    with pytest.raises(errors.ClientError) as caught:
        errors.APIError.raise_for_response(response)
    assert classify(caught.value) == Classification(
        ErrorKind.RATE_LIMITED, retry_after=38.66, status_code=429
    )


@pytest.mark.parametrize(
    ("detail", "wait"),
    [
        ("Request was throttled. Your rate limit resets in ~30s.", 30.0),
        ("Request was throttled. Expected available in 7 seconds.", 7.0),
        ("Request was throttled.", None),
    ],
)
def test_replicate_keeps_no_headers_so_the_wait_is_read_from_its_detail(
    detail: str, wait: float | None
) -> None:
    from replicate.exceptions import ReplicateError

    response = httpx.Response(
        429,
        headers={"retry-after": "99"},
        json={"title": "Request was throttled", "detail": detail, "status": 429},
    )
    error = ReplicateError.from_response(response)
    assert not hasattr(error, "response")  # the header is gone with the response
    assert classify(error) == Classification(
        ErrorKind.RATE_LIMITED, retry_after=wait, status_code=429
    )


def test_httpx2s_errors_are_read_like_httpxs() -> None:
    import httpx2

    request = httpx2.Request("POST", "https://g.test")
    assert classify(httpx2.ReadTimeout("credit card quota", request=request)) == Classification(
        ErrorKind.TRANSIENT
    )  # a RequestError is transient whatever its words
    quota = shape("google", "quota_with_retry_delay")
    assert quota is not None
    body, _ = quota.example()
    response = httpx2.Response(429, json=body, request=request)
    with pytest.raises(httpx2.HTTPStatusError) as caught:
        response.raise_for_status()
    assert classify(caught.value) == quota.verdict
