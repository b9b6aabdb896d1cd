"""Error classification: every row of DESIGN §2's recognition list, from real-shaped errors."""

from __future__ import annotations

import email.message
import email.utils
import io
import json
import math
import time
import urllib.error
from typing import Any, ClassVar

import anyio
import httpx
import pytest

from failover import (
    AuthFailed,
    BadRequest,
    Classification,
    CreditExhausted,
    ErrorKind,
    ProviderError,
    RateLimited,
    Transient,
    classify,
    parse_retry_after,
)
from failover._core.classify import MAX_RETRY_AFTER_SECONDS, classify_status

TRANSIENT = ErrorKind.TRANSIENT
RATE_LIMITED = ErrorKind.RATE_LIMITED
CREDIT = ErrorKind.CREDIT_EXHAUSTED
AUTH = ErrorKind.AUTH
REQUEST = ErrorKind.REQUEST
CANCELLED = ErrorKind.CANCELLED


def http_error(
    status: int,
    body: object = "",
    headers: dict[str, str] | None = None,
    url: str = "https://api.example.com/v1/generate",
) -> httpx.HTTPStatusError:
    """A real httpx.HTTPStatusError, as ``response.raise_for_status()`` raises it."""
    content = body if isinstance(body, str) else json.dumps(body)
    request = httpx.Request("POST", url)
    response = httpx.Response(status, headers=headers, text=content, request=request)
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        return exc
    raise AssertionError(f"{status} did not raise")


class StatusCodeError(Exception):
    """Shaped like the openai/anthropic SDK errors: ``status_code``, ``body``, ``code``."""

    def __init__(
        self, message: str, status_code: int, body: object = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.code = code


class FakeResponse:
    def __init__(self, status_code: int, text: str = "", headers: Any = None) -> None:
        self.status_code = status_code
        self.text = text
        self.headers = {} if headers is None else headers


class ResponseError(Exception):
    """Shaped like requests' HTTPError or a hand-rolled client error: only ``.response``."""

    def __init__(self, response: FakeResponse) -> None:
        super().__init__("request failed")
        self.response = response


# -- credit, quota, billing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "body"),
    [
        ("stability", {"name": "payment_required", "errors": ["lack sufficient balance"]}),
        ("replicate", {"title": "Insufficient credit", "status": 402}),
        ("openrouter", {"error": {"code": 402, "message": "Insufficient credits"}}),
        ("any", ""),
    ],
)
def test_402_payment_required_is_credit_exhausted(platform: str, body: object) -> None:
    verdict = classify(http_error(402, body))
    assert verdict.kind is CREDIT
    assert verdict.status_code == 402


def test_openai_429_insufficient_quota_is_credit_not_rate_limit() -> None:
    body = {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing.",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
    assert classify(http_error(429, body, {"retry-after": "20"})).kind is CREDIT
    sdk_error = StatusCodeError("Error code: 429", 429, body=body, code="insufficient_quota")
    assert classify(sdk_error).kind is CREDIT


def test_anthropic_400_credit_balance_too_low_is_credit() -> None:
    body = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "Your credit balance is too low to access the Anthropic API.",
        },
    }
    assert classify(http_error(400, body)).kind is CREDIT
    assert classify(StatusCodeError("Error code: 400", 400, body=body)).kind is CREDIT


@pytest.mark.parametrize(
    "detail", ["User is locked. Reason: Exhausted balance.", "Exhausted balance", "User is locked"]
)
def test_fal_403_exhausted_balance_or_locked_user_is_credit(detail: str) -> None:
    verdict = classify(http_error(403, {"detail": detail}))
    assert verdict.kind is CREDIT
    assert verdict.status_code == 403


@pytest.mark.parametrize(
    "message",
    [
        "Your prepayment credits are depleted. Please go to AI Studio to manage your billing.",
        "Billing account is not active for the project.",
        "Prepaid balance exhausted.",
    ],
)
def test_gemini_429_resource_exhausted_with_billing_detail_is_credit(message: str) -> None:
    body = {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}
    assert classify(http_error(429, body)).kind is CREDIT


# -- rate limits ----------------------------------------------------------------------------------


def test_plain_429_is_rate_limited_with_retry_after_seconds() -> None:
    verdict = classify(http_error(429, {"error": "slow down"}, {"Retry-After": "17"}))
    assert verdict == Classification(RATE_LIMITED, retry_after=17.0, status_code=429)


def test_plain_429_with_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    verdict = classify(http_error(429, "", {"Retry-After": when}))
    assert verdict.kind is RATE_LIMITED
    assert verdict.retry_after is not None
    assert 115 <= verdict.retry_after <= 120


def test_plain_429_without_retry_after_has_no_hint() -> None:
    verdict = classify(http_error(429, "Too Many Requests"))
    assert verdict.kind is RATE_LIMITED
    assert verdict.retry_after is None


def test_retry_after_is_found_in_a_plain_dict_of_headers_whatever_the_case() -> None:
    for headers in ({"Retry-After": "9"}, {"retry-after": "9"}):
        verdict = classify(ResponseError(FakeResponse(429, "", headers)))
        assert verdict.kind is RATE_LIMITED
        assert verdict.retry_after == 9.0


def test_huge_retry_after_is_capped() -> None:
    verdict = classify(http_error(429, "", {"Retry-After": "999999"}))
    assert verdict.retry_after == MAX_RETRY_AFTER_SECONDS


@pytest.mark.parametrize(
    ("message", "wait"),
    [
        ("Rate limit reached for gpt-4o-mini. Please try again in 20s.", 20.0),
        ("Rate limit reached for gpt-4o-mini. Please try again in 820ms.", 0.82),
        ("Rate limit reached on tokens per day. Please try again in 2m9.5s.", 129.5),
        ("Request was throttled. Your rate limit resets in ~30s.", 30.0),
        ("Request was throttled. Expected available in 1 second.", 1.0),
        ("Please try again in 20 minutes.", None),  # not a duration failover reads
        ("Please try again in 2h42m9.504s.", MAX_RETRY_AFTER_SECONDS),  # capped
    ],
)
def test_without_a_header_the_wait_the_message_names_is_read(
    message: str, wait: float | None
) -> None:
    # An SDK's exception may keep the body and drop the headers (replicate's does).
    verdict = classify(http_error(429, {"detail": message}))
    assert verdict == Classification(RATE_LIMITED, retry_after=wait, status_code=429)


def test_the_header_wins_over_the_wait_in_words() -> None:
    body = {"detail": "Request was throttled. Your rate limit resets in ~30s."}
    verdict = classify(http_error(429, body, {"Retry-After": "12"}))
    assert verdict.retry_after == 12.0


def test_a_quota_message_that_names_a_wait_is_a_rate_limit() -> None:
    # Gemini's per-minute and per-day quotas speak of quota and billing, then say when to
    # come back: a wait, not an empty account.
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        "Please retry in 38.66s."
    )
    body = {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}
    verdict = classify(http_error(429, body))
    assert verdict == Classification(RATE_LIMITED, retry_after=38.66, status_code=429)
    # OpenAI's insufficient_quota is an empty account whatever else the text says.
    quota = {"error": {"code": "insufficient_quota", "message": f"{message}"}}
    assert classify(http_error(429, quota)).kind is CREDIT


# -- auth -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_auth(status: int) -> None:
    verdict = classify(http_error(status, {"error": {"message": "Incorrect API key provided"}}))
    assert verdict.kind is AUTH
    assert verdict.status_code == status


# -- transient ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529, 408])
def test_5xx_and_408_are_transient(status: int) -> None:
    verdict = classify(http_error(status, "upstream error"))
    assert verdict.kind is TRANSIENT
    assert verdict.status_code == status


@pytest.mark.parametrize(
    "error",
    [
        TimeoutError("read timed out"),
        ConnectionError("connection reset"),
        ConnectionResetError(),
        OSError("network unreachable"),
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
    ],
)
def test_timeouts_and_connection_errors_are_transient(error: Exception) -> None:
    assert classify(error).kind is TRANSIENT


def test_an_exception_failover_cannot_classify_is_transient() -> None:
    assert classify(ValueError("something odd happened")) == Classification(TRANSIENT)
    # A KeyError is the caller's bug (ErrorKind.CALLER_BUG, below), not an unknown failure.
    assert classify(KeyError("choices")).kind is ErrorKind.CALLER_BUG


# -- the request's own fault ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"error": {"code": "content_policy_violation", "message": "rejected"}}, "content_policy"),
        ("Your request was rejected as a result of our safety system.", "content_policy"),
        ({"error": {"code": "context_length_exceeded"}}, "context_window"),
        ("This model's maximum context length is 8192 tokens.", "context_window"),
        ("prompt is too long: 210000 tokens > 200000 maximum", "context_window"),
        ({"error": {"message": "'messages' is a required property"}}, "bad_request"),
        ("", "bad_request"),
    ],
)
def test_400_is_a_request_fault_with_a_reason(body: object, reason: str) -> None:
    verdict = classify(http_error(400, body))
    assert verdict.kind is REQUEST
    assert verdict.reason == reason
    assert verdict.status_code == 400


def test_other_4xx_request_faults() -> None:
    assert classify(http_error(404, "no such model")).reason == "not_found"
    assert classify(http_error(413, "payload too large")).reason == "context_window"
    unprocessable = classify(http_error(422, "invalid field"))
    assert unprocessable.kind is REQUEST
    assert unprocessable.reason == "bad_request"


# -- failover's own exception types ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (Transient("blip"), Classification(TRANSIENT)),
        (CreditExhausted("out"), Classification(CREDIT)),
        (AuthFailed("bad key", status_code=401), Classification(AUTH, status_code=401)),
        (
            RateLimited(retry_after=12),
            Classification(RATE_LIMITED, retry_after=12.0, status_code=429),
        ),
        (RateLimited(), Classification(RATE_LIMITED, status_code=429)),
        (BadRequest("no"), Classification(REQUEST, reason="bad_request", status_code=400)),
        (
            BadRequest("nsfw", reason="content_policy"),
            Classification(REQUEST, reason="content_policy", status_code=400),
        ),
        (
            BadRequest("long", reason="context_window"),
            Classification(REQUEST, reason="context_window", status_code=400),
        ),
    ],
)
def test_failover_exception_types_say_what_they_are(
    error: ProviderError, expected: Classification
) -> None:
    assert classify(error) == expected


def test_failover_types_win_over_their_message_words() -> None:
    # The user said "transient"; the word "quota" in the text must not override it.
    assert classify(Transient("quota service timed out")).kind is TRANSIENT
    assert classify(CreditExhausted("HTTP 500")).kind is CREDIT


# -- duck typing ----------------------------------------------------------------------------------


def test_duck_typed_status_code_attribute() -> None:
    assert classify(StatusCodeError("boom", 503)).kind is TRANSIENT
    assert classify(StatusCodeError("no", 401)).kind is AUTH
    assert classify(StatusCodeError("pay", 402)).kind is CREDIT


def test_duck_typed_response_with_status_headers_and_text() -> None:
    error = ResponseError(
        FakeResponse(
            429,
            '{"error": {"code": "insufficient_quota"}}',
            {"retry-after": "3"},
        )
    )
    assert classify(error).kind is CREDIT
    limited = classify(ResponseError(FakeResponse(429, "busy", {"retry-after": "3"})))
    assert limited == Classification(RATE_LIMITED, retry_after=3.0, status_code=429)
    assert classify(ResponseError(FakeResponse(400, "content_filter triggered"))).reason == (
        "content_policy"
    )


def test_response_whose_body_cannot_be_read_is_classified_by_status() -> None:
    class Unread:
        status_code = 503
        headers: ClassVar[dict[str, str]] = {}

        @property
        def text(self) -> str:
            raise RuntimeError("Attempted to access streaming response content")

    assert classify(ResponseError(Unread())).kind is TRANSIENT  # type: ignore[arg-type]


def test_status_attribute_and_urllib_http_error_code() -> None:
    class AiohttpLike(Exception):
        status = 401

    assert classify(AiohttpLike()).kind is AUTH
    headers = email.message.Message()
    headers["Retry-After"] = "4"
    error = urllib.error.HTTPError(
        "https://api.example.com", 429, "Too Many Requests", headers, io.BytesIO(b"")
    )
    assert classify(error) == Classification(RATE_LIMITED, retry_after=4.0, status_code=429)


def test_out_of_range_or_boolean_status_values_are_ignored() -> None:
    class Odd(Exception):
        status_code = True
        code = 1011

    assert classify(Odd("websocket closed")).kind is TRANSIENT


# -- message words --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "kind", "reason"),
    [
        ("Insufficient credit to run this model", CREDIT, None),
        ("monthly quota exceeded", CREDIT, None),
        ("billing hard limit reached", CREDIT, None),
        ("payment method declined", CREDIT, None),
        ("account balance is zero", CREDIT, None),
        ("rate limit exceeded, slow down", RATE_LIMITED, None),
        ("Too Many Requests", RATE_LIMITED, None),
        ("Invalid API key", AUTH, None),
        ("request blocked by content policy", REQUEST, "content_policy"),
        ("input exceeds the context window", REQUEST, "context_window"),
    ],
)
def test_message_words_classify_plain_exceptions(
    message: str, kind: ErrorKind, reason: str | None
) -> None:
    verdict = classify(RuntimeError(message))
    assert verdict.kind is kind
    assert verdict.reason == reason


# -- per-platform classifiers ---------------------------------------------------------------------


def test_per_platform_classifiers_are_asked_first_in_order() -> None:
    asked: list[str] = []

    def no_opinion(exc: BaseException) -> Classification | None:
        asked.append("first")
        return None

    def knows_better(exc: BaseException) -> Classification | None:
        asked.append("second")
        if "model loading" in str(exc):
            return Classification(RATE_LIMITED, retry_after=30)
        return None

    classifiers = (no_opinion, knows_better)
    # Without the classifier, a 503 is transient; with it, the platform's own rule wins.
    error = StatusCodeError("model loading", 503)
    assert classify(error).kind is TRANSIENT
    assert classify(error, classifiers) == Classification(RATE_LIMITED, retry_after=30)
    assert asked == ["first", "second"]
    # Even failover's own types are re-read by a platform classifier.
    assert classify(Transient("model loading"), classifiers).kind is RATE_LIMITED
    # No opinion: the defaults apply.
    assert classify(StatusCodeError("x", 402), classifiers).kind is CREDIT


# -- cancellation ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_event_loops_cancellation_is_cancelled() -> None:
    caught: list[BaseException] = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.sleep(1)
        except anyio.get_cancelled_exc_class() as exc:
            caught.append(exc)
            raise
    assert len(caught) == 1
    assert classify(caught[0]).kind is CANCELLED

    def would_count_it(exc: BaseException) -> Classification | None:
        return Classification(TRANSIENT)

    assert classify(caught[0], (would_count_it,)).kind is CANCELLED


def test_base_exceptions_are_never_the_platforms_fault_even_outside_an_event_loop() -> None:
    assert classify(KeyboardInterrupt()).kind is CANCELLED
    assert classify(SystemExit(1)).kind is CANCELLED


# -- classify_status ------------------------------------------------------------------------------


def test_classify_status_directly() -> None:
    assert classify_status(200).kind is TRANSIENT  # not an error status: nothing better to say
    assert classify_status(429, "", 5.0) == Classification(
        RATE_LIMITED, retry_after=5.0, status_code=429
    )
    assert classify_status(400, "insufficient credit").kind is CREDIT


# -- parse_retry_after ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        (" 2.5 ", 2.5),
        (b"12", 12.0),
        (7, 7.0),
        (1.5, 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        (-5, 0.0),
        ("86400000", MAX_RETRY_AFTER_SECONDS),
        ("inf", MAX_RETRY_AFTER_SECONDS),
        ("nan", None),
        ("soon", None),
        ("", None),
        (b"\xff\xfe", None),
        (None, None),
        (True, None),
        ([30], None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
    ],
)
def test_parse_retry_after_edge_cases(value: object, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_relative_to_now() -> None:
    now = 1_767_225_600.0
    header = email.utils.formatdate(now + 90, usegmt=True)
    assert parse_retry_after(header, now=now) == 90.0
    assert parse_retry_after(header.encode(), now=now) == 90.0
    assert parse_retry_after(header, now=now + 100) == 0.0
    far = email.utils.formatdate(now + 10 * 86400, usegmt=True)
    assert parse_retry_after(far, now=now) == MAX_RETRY_AFTER_SECONDS


def test_parse_retry_after_never_returns_nan_or_negative() -> None:
    for value in ("-0", "-inf", float("nan"), -math.inf):
        result = parse_retry_after(value)
        assert result is None or (result == result and result >= 0)


def test_load_balancer_in_a_message_is_not_a_credit_word() -> None:
    assert classify(RuntimeError("upstream load balancer reset the stream")).kind is TRANSIENT


def test_a_429_with_retry_info_is_a_rate_limit_even_when_it_mentions_quota() -> None:
    body = {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota (generate_content_free_tier_requests).",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "31s"}],
        }
    }
    assert classify(http_error(429, body)).kind is RATE_LIMITED


def test_an_exception_group_is_classified_by_its_first_leaf() -> None:
    group = ExceptionGroup("fan-out", [ExceptionGroup("inner", [CreditExhausted("dry")])])
    assert classify(group).kind is CREDIT


def test_httpx_errors_get_the_provider_aware_reading_without_set_up() -> None:
    # Gemini's 400 API_KEY_INVALID is a key problem only failover.http's body reading knows.
    body = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [{"reason": "API_KEY_INVALID"}],
        }
    }
    assert classify(http_error(400, body)).kind is ErrorKind.AUTH


def test_an_attempts_repr_leaves_out_the_provider_error() -> None:
    from failover import Attempt

    attempt = Attempt(
        "openai", "gpt", "text_generation", "failure", error=RuntimeError("key sk-secret-123456")
    )
    assert "sk-secret" not in repr(attempt)
    assert attempt.error is not None


@pytest.mark.parametrize(
    "error",
    [
        KeyError("quota"),
        AttributeError("'Account' object has no attribute 'balance'"),
        TypeError("unauthorized keyword argument"),
        IndexError("billing list index out of range"),
    ],
)
def test_a_bug_in_the_callers_code_never_reads_as_a_provider_verdict(error: Exception) -> None:
    # Its message words must not cool a whole platform as "out of credits" or "bad key":
    # it is the caller's bug, which changes no platform's health at all.
    assert classify(error).kind is ErrorKind.CALLER_BUG
