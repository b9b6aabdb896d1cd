"""failover.http classification: every provider's real error bodies, over real HTTP, through
the ``raise_for_provider_status`` hook; plus the body shapes and headers no fake sends."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
import pytest

from failover import (
    AuthFailed,
    BadRequest,
    CreditExhausted,
    ErrorKind,
    ProviderError,
    RateLimited,
    Transient,
)
from failover.http import (
    classify_body,
    classify_http,
    classify_response,
    parse_error_body,
    raise_for_provider_status,
    to_provider_error,
)
from failover.testing import Behaviour, FakeProviderServer

pytestmark = pytest.mark.anyio

PATHS = {
    "anthropic": "v1/messages",
    "stability": "v2beta/stable-image/edit/inpaint",
    "replicate": "v1/predictions",
    "fal": "fal-ai/flux/dev",
}
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
OPENAI_FAMILY = ("openai", "groq", "xai", "together")
ALL = (*OPENAI_FAMILY, "google", "anthropic", "stability", "replicate", "fal")

# (behaviour, platform) -> (exception type, status, reason or retry_after)
EXPECTED: dict[tuple[str, str], tuple[type[ProviderError], int, Any]] = {}
for name in OPENAI_FAMILY:
    EXPECTED[("out_of_credits", name)] = (CreditExhausted, 429, None)
    EXPECTED[("overloaded", name)] = (Transient, 503, None)
    EXPECTED[("content_policy", name)] = (BadRequest, 400, "content_policy")
    EXPECTED[("context_length_exceeded", name)] = (BadRequest, 400, "context_window")
EXPECTED.update(
    {
        ("out_of_credits", "google"): (CreditExhausted, 429, None),
        ("out_of_credits", "anthropic"): (CreditExhausted, 400, None),
        ("out_of_credits", "stability"): (CreditExhausted, 402, None),
        ("out_of_credits", "replicate"): (CreditExhausted, 402, None),
        ("out_of_credits", "fal"): (CreditExhausted, 403, None),
        ("overloaded", "google"): (Transient, 503, None),
        ("overloaded", "anthropic"): (Transient, 529, None),
        ("overloaded", "stability"): (Transient, 503, None),
        ("overloaded", "replicate"): (Transient, 503, None),
        ("overloaded", "fal"): (Transient, 503, None),
        ("content_policy", "google"): (BadRequest, 400, "content_policy"),
        ("content_policy", "anthropic"): (BadRequest, 400, "content_policy"),
        ("content_policy", "stability"): (BadRequest, 403, "content_policy"),
        ("content_policy", "replicate"): (BadRequest, 422, "content_policy"),
        ("content_policy", "fal"): (BadRequest, 422, "content_policy"),
        ("context_length_exceeded", "google"): (BadRequest, 400, "context_window"),
        ("context_length_exceeded", "anthropic"): (BadRequest, 400, "context_window"),
        ("context_length_exceeded", "stability"): (BadRequest, 400, "bad_request"),
        ("context_length_exceeded", "replicate"): (BadRequest, 422, "bad_request"),
        ("context_length_exceeded", "fal"): (BadRequest, 422, "bad_request"),
    }
)
for name in ALL:
    EXPECTED[("bad_key", name)] = (AuthFailed, 401, None)
    EXPECTED[("rate_limited", name)] = (RateLimited, 429, 7.0)


def _behaviour(kind: str) -> Behaviour:
    if kind == "rate_limited":
        return Behaviour.rate_limited(retry_after=7)
    return Behaviour.from_dict(kind)


async def _post(server: FakeProviderServer, platform: str) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=server.base_url(platform),
        event_hooks={"response": [raise_for_provider_status]},
        headers={"authorization": "Bearer sk-proj-abcdefghijklmnop1234"},
    ) as client:
        return await client.post(PATHS.get(platform, "chat/completions"), json=BODY)


@pytest.mark.parametrize(("kind", "platform"), sorted(EXPECTED))
async def test_hook_raises_the_kind_each_provider_error_body_means(
    kind: str, platform: str
) -> None:
    expected_type, status, detail = EXPECTED[(kind, platform)]
    async with FakeProviderServer() as server:
        server.set_behaviour(platform, _behaviour(kind))
        with pytest.raises(ProviderError) as caught:
            await _post(server, platform)
    error = caught.value
    assert type(error) is expected_type
    assert error.status_code == status
    if isinstance(error, RateLimited):
        assert error.retry_after == detail
    if isinstance(error, BadRequest):
        assert error.reason == detail
    assert str(error).startswith(f"HTTP {status}")
    assert len(str(error)) < 260


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
async def test_server_errors_and_gateway_pages_are_transient(status: int) -> None:
    async with FakeProviderServer() as server:
        server.set_behaviour("openai", Behaviour.flaky(1.0, status=status))
        with pytest.raises(Transient) as caught:
            await _post(server, "openai")
    assert caught.value.status_code == status
    assert "<" not in str(caught.value)  # a gateway's HTML page is reduced to its words


async def test_hook_passes_successes_through() -> None:
    async with FakeProviderServer() as server:
        response = await _post(server, "groq")
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"].startswith("Fake groq")


async def test_an_echoed_key_never_reaches_the_exception_text() -> None:
    async with FakeProviderServer() as server:
        server.set_behaviour("openai", Behaviour.bad_key())
        with pytest.raises(AuthFailed) as caught:
            await _post(server, "openai")
    text = str(caught.value)
    assert "Incorrect API key provided" in text
    assert "[REDACTED]" in text
    assert "sk-proj" not in text
    assert "1234" not in text


async def test_hook_reads_a_streamed_error_body_and_closes_it() -> None:
    async with FakeProviderServer() as server:
        server.set_behaviour("anthropic", Behaviour.out_of_credits())
        async with httpx.AsyncClient(
            base_url=server.base_url("anthropic"),
            event_hooks={"response": [raise_for_provider_status]},
        ) as client:
            request = client.build_request("POST", "v1/messages", json=BODY)
            with pytest.raises(CreditExhausted):
                await client.send(request, stream=True)
            # The connection went back to the pool: the next call reuses it.
            server.set_behaviour("anthropic", Behaviour.healthy())
            response = await client.post("v1/messages", json=BODY)
    assert response.status_code == 200
    assert server.connections_accepted == 1


async def test_httpx_exceptions_become_failover_errors() -> None:
    async with FakeProviderServer() as server:
        server.set_behaviour("openai", Behaviour.hanging())
        async with httpx.AsyncClient(base_url=server.base_url("openai"), timeout=0.2) as client:
            with pytest.raises(httpx.ReadTimeout) as timeout:
                await client.post("chat/completions", json=BODY)
        server.set_behaviour("openai", Behaviour.rate_limited(retry_after=3))
        async with httpx.AsyncClient(base_url=server.base_url("openai")) as client:
            response = await client.post("chat/completions", json=BODY)
            with pytest.raises(httpx.HTTPStatusError) as status_error:
                response.raise_for_status()
    assert classify_http(timeout.value) == classify_http(httpx.ConnectError("refused"))
    assert classify_http(timeout.value).kind is ErrorKind.TRANSIENT  # type: ignore[union-attr]
    assert classify_http(ValueError("not httpx")) is None
    verdict = classify_http(status_error.value)
    assert verdict is not None
    assert (verdict.kind, verdict.retry_after, verdict.status_code) == (
        ErrorKind.RATE_LIMITED,
        3.0,
        429,
    )
    assert classify_response(response) == verdict
    as_error = to_provider_error(status_error.value)
    assert isinstance(as_error, RateLimited)
    assert as_error.retry_after == 3.0
    timeout_error = to_provider_error(timeout.value)
    assert type(timeout_error) is Transient
    assert timeout_error.status_code is None
    assert "timeout" in str(timeout_error)
    refused = to_provider_error(httpx.ConnectError("All connection attempts failed"))
    assert type(refused) is Transient
    assert "ConnectError" in str(refused)
    already = CreditExhausted("x")
    assert to_provider_error(already) is already


# -- shapes and headers the fake does not send -------------------------------------------------


def _response(
    status: int, body: bytes | str, headers: dict[str, str] | None = None
) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return httpx.Response(status, content=content, headers=headers or {})


def test_retry_after_ms_wins_over_retry_after() -> None:
    response = _response(
        429,
        '{"error": {"type": "tokens", "code": "rate_limit_exceeded", "message": "slow"}}',
        {"retry-after": "2", "retry-after-ms": "1500"},
    )
    assert classify_response(response).retry_after == 1.5


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    response = _response(429, '{"error": {"message": "slow down"}}', {"retry-after": when})
    retry_after = classify_response(response).retry_after
    assert retry_after is not None
    assert 25 <= retry_after <= 31


def test_retry_after_is_capped() -> None:
    response = _response(429, "{}", {"retry-after": "999999"})
    assert classify_response(response).retry_after == 3600.0


def test_unreadable_retry_after_is_ignored() -> None:
    response = _response(429, "{}", {"retry-after": "soon"})
    verdict = classify_response(response)
    assert (verdict.kind, verdict.retry_after) == (ErrorKind.RATE_LIMITED, None)


def test_openai_rate_limit_that_mentions_billing_is_still_a_rate_limit() -> None:
    body = (
        '{"error": {"message": "Rate limit reached for gpt-4o-mini on requests per min. '
        "Please add a payment method to your account to increase your rate limit. Visit "
        'https://platform.openai.com/account/billing", "type": "requests", '
        '"code": "rate_limit_exceeded"}}'
    )
    assert classify_response(_response(429, body)).kind is ErrorKind.RATE_LIMITED


def test_gemini_quota_with_retry_info_is_a_rate_limit_with_its_delay() -> None:
    body = """[{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
      "message": "You exceeded your current quota, please check your plan and billing details.",
      "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                  {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}}]"""
    verdict = classify_response(_response(429, body))
    assert (verdict.kind, verdict.retry_after) == (ErrorKind.RATE_LIMITED, 37.0)


def test_gemini_bad_key_arrives_as_400_and_is_auth() -> None:
    body = """{"error": {"code": 400, "status": "INVALID_ARGUMENT",
      "message": "API key not valid. Please pass a valid API key.",
      "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                   "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}"""
    assert classify_response(_response(400, body)).kind is ErrorKind.AUTH


def test_xai_no_credits_body_is_credit() -> None:
    body = (
        '{"code": "The caller does not have permission to execute the specified operation", '
        '"error": "Your newly created team doesn\'t have any credits yet. You can purchase '
        'credits on https://console.x.ai."}'
    )
    error = to_provider_error(_response(403, body))
    assert type(error) is CreditExhausted
    assert "credits" in str(error)


def test_anthropic_permission_error_is_auth() -> None:
    body = '{"type": "error", "error": {"type": "permission_error", "message": "no access"}}'
    assert classify_response(_response(403, body)).kind is ErrorKind.AUTH


def test_unread_streamed_body_is_classified_by_status_alone() -> None:
    response = httpx.Response(402, stream=httpx.ByteStream(b'{"detail": "nope"}'))
    assert classify_response(response).kind is ErrorKind.CREDIT_EXHAUSTED


@pytest.mark.parametrize(
    ("body", "codes", "message"),
    [
        (
            '{"error": {"message": "m", "type": "t", "param": null, "code": "c"}}',
            ("t", "c"),
            "m",
        ),
        (
            '{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}',
            ("overloaded_error",),
            "Overloaded",
        ),
        (
            '{"id": "1", "name": "payment_required", "errors": ["a", "b"]}',
            ("payment_required",),
            "a b",
        ),
        (
            '{"title": "Insufficient credit", "detail": "buy", "status": 402}',
            ("Insufficient credit",),
            "buy",
        ),
        (
            '{"detail": [{"loc": ["body"], "msg": "too long", "type": "string_too_long"}]}',
            ("string_too_long",),
            "too long",
        ),
        ('{"detail": "User is locked."}', (), "User is locked."),
        ('{"message": "plain"}', (), "plain"),
        ("not json at all", (), "not json at all"),
        ("[1, 2]", (), "[1, 2]"),
    ],
)
def test_error_body_shapes(body: str, codes: tuple[str, ...], message: str) -> None:
    parsed = parse_error_body(body)
    assert parsed.codes == codes
    assert parsed.message == message


def test_status_less_stream_errors_take_the_status_their_type_implies() -> None:
    overloaded = parse_error_body('{"type": "error", "error": {"type": "overloaded_error"}}')
    assert classify_body(None, overloaded).status_code == 529
    assert classify_body(None, overloaded).kind is ErrorKind.TRANSIENT
    limited = parse_error_body('{"error": {"type": "rate_limit_error", "message": "slow"}}')
    assert classify_body(None, limited).kind is ErrorKind.RATE_LIMITED
    unknown = parse_error_body('{"error": {"message": "boom"}}')
    assert classify_body(None, unknown).kind is ErrorKind.TRANSIENT


def test_long_messages_are_cut() -> None:
    body = '{"error": {"message": "' + "x" * 5000 + '"}}'
    error = to_provider_error(_response(500, body))
    assert len(str(error)) <= 220
    assert str(error).endswith("...")
