"""What providers really send when they fail, kept as data.

Two parts:

* **Markers**: the codes and phrases providers write, grouped by what they mean. The rules
  (:mod:`.rules`, :mod:`.body`) read these tuples instead of spelling out provider words
  (:func:`.body.parse_error_body` knows where each dialect puts its codes and message).
* **Shapes**: :data:`SHAPES`, one :class:`ErrorShape` per (provider, situation): the status,
  an example body (and headers) as the provider sends it, and the verdict failover must reach.
  A test classifies every example; the fake provider server (``failover.testing.fake``)
  answers with these bodies; ``docs/providers.md`` lists them for people.

A new provider error shape goes here: add its :class:`ErrorShape`; if the test says its example
is misread, add its code or phrase to the matching marker tuple below. Only a status that
means something new needs :mod:`.rules`.

Strings in a shape's body and headers may hold ``{placeholders}`` for what varies per request
(:data:`PLACEHOLDERS`); :meth:`ErrorShape.example` fills in typical values,
:meth:`ErrorShape.render` the caller's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, NamedTuple, TypeAlias

from failover._core.classify.kinds import Classification, ErrorKind

# -- markers: what providers write, by meaning ---------------------------------------------------

#: Codes of an empty account that arrive as a 429, like a rate limit: OpenAI's (and every
#: OpenAI-compatible API's) ``insufficient_quota``. They win over everything else on a 429.
QUOTA_CODES: Final = ("insufficient_quota",)

#: Explicit rate-limit codes and messages (not the generic "Too Many Requests" reason). A
#: rate-limit message may mention billing ("add a payment method to raise your limit"): these
#: win over credit words. OpenAI and Stability ``rate_limit_exceeded``, Anthropic
#: ``rate_limit_error``, OpenAI "Rate limit reached for ...", FAL "Rate limit exceeded."
RATE_LIMIT_CODES: Final = (
    "rate_limit_exceeded",
    "rate_limit_error",
    "rate limit reached",
    "rate limit exceeded",
)

#: A 429 that says when to come back is a rate limit even when its message mentions quota:
#: Gemini's ``RetryInfo``/``retryDelay``, per-minute limits.
RATE_LIMIT_HINTS: Final = ("retryinfo", "retrydelay", "retry_delay", "per minute", "perminute")

#: Where providers write how long to wait, for answers whose headers do not say it (an SDK's
#: exception may keep only the body: replicate's ``ReplicateError`` drops the headers). Each
#: pattern reads lower-cased text; its group is a duration (``37s``, ``820ms``,
#: ``2h42m9.504s``) or a bare number of seconds. Gemini's ``RetryInfo`` as seen in an
#: exception's text (``"retryDelay": "37s"``, or ``'retryDelay': '37s'`` in a dict's repr) and
#: its message's "Please retry in 37.5s."; OpenAI and Groq "Please try again in 20s" (or
#: ``820ms``, ``2h42m9.504s``); Replicate "Your rate limit resets in ~30s."; Django REST
#: framework's "Expected available in 30 seconds." (an older Replicate wording). Read only for
#: a 429, and a wait in words makes it a rate limit even when its message mentions quota or
#: billing, like :data:`RATE_LIMIT_HINTS`.
WAIT_PHRASES: Final = (
    r"""retrydelay["']?\s*:\s*["']((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)["']""",
    r"(?:try again|retry) in ~?((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)\b",
    r"resets in ~?((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)\b",
    r"expected available in (\d+(?:\.\d+)?) seconds?\b",
)

#: A 403 that means an empty account, besides the credit words: FAL's "User is locked.
#: Reason: Exhausted balance."
LOCKED_ACCOUNT_WORDS: Final = ("locked",)

#: A 400 (or another plain 4xx) that means an empty account: Anthropic's "Your credit balance
#: is too low", and billing problems.
CREDIT_REQUEST_WORDS: Final = ("credit balance", "billing", "insufficient credit")

#: Codes of a bad key whatever the status: Gemini answers one with 400 INVALID_ARGUMENT and
#: ``details[].reason: "API_KEY_INVALID"``.
BAD_KEY_CODES: Final = ("api_key_invalid",)

#: A 400 (or another plain 4xx) that means a bad key: xAI answers one with 400 ``{"code":
#: "Client specified an invalid argument", "error": "Incorrect API key provided: ..."}``.
BAD_KEY_WORDS: Final = ("incorrect api key", "invalid api key")

#: The request was refused for what it asks: OpenAI ``content_policy_violation`` and "safety
#: system", Azure ``content_filter``, Stability ``content_moderation``, Anthropic "content
#: filtering policy", Replicate "flagged as sensitive" (E005), FAL's content checker.
CONTENT_POLICY_WORDS: Final = (
    "content_policy",
    "content policy",
    "content_filter",
    "safety system",
    "moderation",
    "content filtering",
    "flagged as sensitive",
    "nsfw",
)

#: A job's final state or error that means its input or output was refused, not that the
#: provider failed: Black Forest Labs' ``Request Moderated`` / ``Content Moderated`` states,
#: Replicate's and FAL's NSFW checks.
JOB_REFUSED_WORDS: Final = ("moderated", "nsfw", "safety checker")

#: The prompt does not fit the model: OpenAI ``context_length_exceeded``, Anthropic "prompt is
#: too long", Gemini "exceeds the maximum number of tokens".
CONTEXT_WINDOW_WORDS: Final = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "too many tokens",
    "prompt is too long",
    "exceeds the maximum number of tokens",
    "maximum number of tokens",
)

#: The status an error *type* arrives with, for errors that come without one: an error event
#: in the middle of a server-sent-events stream (Anthropic's ``event: error``, OpenAI's
#: ``data: {"error": ...}``).
STATUS_OF_ERROR_TYPE: Final[Mapping[str, int]] = {
    "overloaded_error": 529,
    "api_error": 500,
    "server_error": 500,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "invalid_request_error": 400,
}

# -- shapes: each provider's real error answers --------------------------------------------------

#: What a shape's ``{placeholders}`` stand for, with the value :meth:`ErrorShape.example` uses.
PLACEHOLDERS: Final[Mapping[str, str]] = {
    "model": "gpt-4o-mini",  # the model the request named
    "key": "sk-proj-************************wxyz",  # the request's key, masked as OpenAI does
    "id": "3f2b6c1d9e8a7b6c5d4e3f2a1b0c9d8e",  # a random error id
    "wait": " Please try again in 2s.",  # the wait, in words ("" when none is given)
    "retry_after": "2",  # Retry-After, whole seconds (the header is left out without one)
    "retry_after_ms": "2000",  # retry-after-ms (likewise)
    "reset": " Your rate limit resets in ~2s.",  # Replicate's wait in words ("" when none)
}
_PLACEHOLDER: Final = re.compile(r"\{(\w+)\}")

#: A JSON value, as :func:`json.dumps` writes it.
JSON: TypeAlias = Mapping[str, "JSON"] | list["JSON"] | str | int | float | bool | None


class ErrorShape(NamedTuple):
    """One error a provider really sends, and the verdict failover must reach on it.

    ``provider`` is the API dialect (``"openai"`` stands for OpenAI and the OpenAI-compatible
    APIs: Groq, xAI, Together); ``situation`` names the case (the fake provider server's
    behaviour names where it serves it: ``out_of_credits``, ``rate_limited``, ``bad_key``,
    ``overloaded``, ``content_policy``, ``context_length_exceeded``). ``headers`` are sent
    with the body; a header whose placeholder has no value is left out (in the body, such a
    placeholder becomes ``""``). ``kind``, ``reason`` and ``retry_after`` (the wait the
    example asks for) are the :attr:`verdict`.
    """

    provider: str
    situation: str
    status: int
    body: JSON
    kind: ErrorKind
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    retry_after: float | None = None

    @property
    def verdict(self) -> Classification:
        """What failover must conclude from :meth:`example`."""
        return Classification(self.kind, self.reason, self.retry_after, self.status)

    def render(self, values: Mapping[str, str | None]) -> tuple[JSON, list[tuple[str, str]]]:
        """The body and headers with ``values`` in their placeholders."""
        headers = []
        for name, template in self.headers:
            value, complete = _fill(template, values)
            if complete:
                headers.append((name, value))
        return fill(self.body, values), headers

    def example(self) -> tuple[JSON, list[tuple[str, str]]]:
        """The body and headers with the typical values of :data:`PLACEHOLDERS`."""
        return self.render(PLACEHOLDERS)


def _fill(template: str, values: Mapping[str, str | None]) -> tuple[str, bool]:
    """``template`` with its placeholders filled (``None`` gives ``""``), and whether every
    placeholder had a value."""
    complete = True

    def value(match: re.Match[str]) -> str:
        nonlocal complete
        try:
            filled = values[match.group(1)]
        except KeyError:  # not one of ours: left as written
            return match.group(0)
        if filled is None:
            complete = False
            return ""
        return filled

    return _PLACEHOLDER.sub(value, template), complete


def fill(body: JSON, values: Mapping[str, str | None]) -> JSON:
    """``body`` with ``values`` in the placeholders of its strings (``None`` gives ``""``).

    ``values[name]`` is looked up only for placeholders the body has, so a mapping may
    compute a value on first use."""
    if isinstance(body, str):
        return _fill(body, values)[0]
    if isinstance(body, Mapping):
        return {key: fill(item, values) for key, item in body.items()}
    if isinstance(body, list):
        return [fill(item, values) for item in body]
    return body


# -- dialects: each provider's error envelope ------------------------------------------------


def openai_body(message: str, type_: str, code: str | None, param: str | None = None) -> JSON:
    """OpenAI and the OpenAI-compatible APIs: ``{"error": {message, type, param, code}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def google_body(status: int, message: str, google_status: str) -> JSON:
    """Gemini: ``{"error": {code, message, status}}`` (``status`` as ``RESOURCE_EXHAUSTED``)."""
    return {"error": {"code": status, "message": message, "status": google_status}}


def anthropic_body(type_: str, message: str) -> JSON:
    """Anthropic: ``{"type": "error", "error": {type, message}}``."""
    return {"type": "error", "error": {"type": type_, "message": message}}


def stability_body(name: str, message: str) -> JSON:
    """Stability: ``{id, name, errors: [message]}``, with a random ``{id}``."""
    return {"id": "{id}", "name": name, "errors": [message]}


def replicate_body(status: int, title: str, detail: str) -> JSON:
    """Replicate (RFC 7807 problem details): ``{title, detail, status}``."""
    return {"title": title, "detail": detail, "status": status}


def fal_validation_body(message: str, type_: str) -> JSON:
    """FAL's FastAPI validation error: ``{"detail": [{loc, msg, type}]}`` (others are
    ``{"detail": "..."}``)."""
    return {"detail": [{"loc": ["body", "prompt"], "msg": message, "type": type_}]}


# -- the table ---------------------------------------------------------------------------------

_CREDIT: Final = ErrorKind.CREDIT_EXHAUSTED
_RATE_LIMITED: Final = ErrorKind.RATE_LIMITED
_AUTH: Final = ErrorKind.AUTH
_TRANSIENT: Final = ErrorKind.TRANSIENT
_REQUEST: Final = ErrorKind.REQUEST

_RETRY_AFTER: Final = (("retry-after", "{retry_after}"),)

SHAPES: Final[tuple[ErrorShape, ...]] = (
    # -- OpenAI and the OpenAI-compatible APIs (Groq, xAI, Together) ----------------------------
    ErrorShape(
        "openai",
        "out_of_credits",
        429,
        openai_body(
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        _CREDIT,
    ),
    ErrorShape(
        "openai",
        "rate_limited",
        429,
        openai_body(
            "Rate limit reached for {model} in organization org-fake on requests per min "
            "(RPM): Limit 60, Used 60, Requested 1.{wait}",
            "requests",
            "rate_limit_exceeded",
        ),
        _RATE_LIMITED,
        headers=(
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "0"),
            *_RETRY_AFTER,
            ("retry-after-ms", "{retry_after_ms}"),
        ),
        retry_after=2.0,
    ),
    ErrorShape(
        "openai",
        "rate_limit_mentioning_billing",
        429,
        openai_body(
            "Rate limit reached for gpt-4o-mini on requests per min. Please add a payment "
            "method to your account to increase your rate limit. Visit "
            "https://platform.openai.com/account/billing",
            "requests",
            "rate_limit_exceeded",
        ),
        _RATE_LIMITED,
    ),
    ErrorShape(
        "openai",
        "bad_key",
        401,
        openai_body(
            "Incorrect API key provided: {key}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        _AUTH,
    ),
    ErrorShape(
        "openai",
        "missing_key",
        401,
        openai_body(
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
            None,
        ),
        _AUTH,
    ),
    ErrorShape(
        "openai",
        "overloaded",
        503,
        openai_body(
            "The engine is currently overloaded, please try again later.", "server_error", None
        ),
        _TRANSIENT,
    ),
    ErrorShape(
        "openai",
        "content_policy",
        400,
        openai_body(
            "Your request was rejected as a result of our safety system. Your prompt may "
            "contain text that is not allowed by our safety system.",
            "invalid_request_error",
            "content_policy_violation",
        ),
        _REQUEST,
        "content_policy",
    ),
    ErrorShape(
        "openai",
        "context_length_exceeded",
        400,
        openai_body(
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 131072 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            "context_length_exceeded",
            param="messages",
        ),
        _REQUEST,
        "context_window",
    ),
    ErrorShape(
        "openai",
        "model_not_found",
        404,
        openai_body(
            "The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        ),
        _REQUEST,
        "not_found",
    ),
    ErrorShape(
        "xai",
        "out_of_credits",
        403,
        {
            "code": "The caller does not have permission to execute the specified operation",
            "error": "Your newly created team doesn't have any credits yet. You can purchase "
            "credits on https://console.x.ai.",
        },
        _CREDIT,
    ),
    ErrorShape(
        "xai",
        "bad_key",
        400,
        {
            "code": "Client specified an invalid argument",
            "error": "Incorrect API key provided: {key}. You can obtain an API key from "
            "https://console.x.ai.",
        },
        _AUTH,
    ),
    ErrorShape(
        "openrouter",
        "out_of_credits",
        402,
        {"error": {"code": 402, "message": "Insufficient credits. Add more using /credits"}},
        _CREDIT,
    ),
    # -- Gemini (google), also on its OpenAI-compatible endpoint -------------------------------
    ErrorShape(
        "google",
        "out_of_credits",
        429,
        google_body(
            429,
            "Your prepayment credits are depleted. Please go to AI Studio at "
            "https://ai.studio/projects to manage your project and billing.",
            "RESOURCE_EXHAUSTED",
        ),
        _CREDIT,
    ),
    ErrorShape(
        "google",
        "rate_limited",
        429,
        google_body(429, "Resource exhausted. Please try again later.", "RESOURCE_EXHAUSTED"),
        _RATE_LIMITED,
        headers=_RETRY_AFTER,
        retry_after=2.0,
    ),
    ErrorShape(
        "google",
        "quota_with_retry_delay",
        429,
        [
            {
                "error": {
                    "code": 429,
                    "message": "You exceeded your current quota, please check your plan and "
                    "billing details.",
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [
                        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"},
                    ],
                }
            }
        ],
        _RATE_LIMITED,
        retry_after=37.0,
    ),
    ErrorShape(
        "google",
        "bad_key",
        401,
        google_body(401, "API key not valid. Please pass a valid API key.", "UNAUTHENTICATED"),
        _AUTH,
    ),
    ErrorShape(
        "google",
        "bad_key_as_invalid_argument",
        400,
        {
            "error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            }
        },
        _AUTH,
    ),
    ErrorShape(
        "google",
        "model_not_found",
        404,
        google_body(
            404,
            "models/{model} is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods.",
            "NOT_FOUND",
        ),
        _REQUEST,
        "not_found",
    ),
    ErrorShape(
        "google",
        "overloaded",
        503,
        google_body(503, "The model is overloaded. Please try again later.", "UNAVAILABLE"),
        _TRANSIENT,
    ),
    ErrorShape(
        "google",
        "content_policy",
        400,
        google_body(
            400,
            "The request was blocked by the safety system: the prompt violates the content "
            "policy (SAFETY).",
            "INVALID_ARGUMENT",
        ),
        _REQUEST,
        "content_policy",
    ),
    ErrorShape(
        "google",
        "context_length_exceeded",
        400,
        google_body(
            400,
            "The input token count (1200000) exceeds the maximum number of tokens allowed "
            "(1048576).",
            "INVALID_ARGUMENT",
        ),
        _REQUEST,
        "context_window",
    ),
    # -- Anthropic -----------------------------------------------------------------------------
    ErrorShape(
        "anthropic",
        "out_of_credits",
        400,
        anthropic_body(
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. "
            "Please go to Plans & Billing to upgrade or purchase credits.",
        ),
        _CREDIT,
    ),
    ErrorShape(
        "anthropic",
        "rate_limited",
        429,
        anthropic_body(
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 requests "
            "per minute. Please reduce the request rate or try again later.",
        ),
        _RATE_LIMITED,
        headers=(("anthropic-ratelimit-requests-remaining", "0"), *_RETRY_AFTER),
        retry_after=2.0,
    ),
    ErrorShape(
        "anthropic",
        "bad_key",
        401,
        anthropic_body("authentication_error", "invalid x-api-key"),
        _AUTH,
    ),
    ErrorShape(
        "anthropic",
        "permission_denied",
        403,
        anthropic_body(
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        _AUTH,
    ),
    ErrorShape(
        "anthropic",
        "model_not_found",
        404,
        anthropic_body("not_found_error", "model: {model}"),
        _REQUEST,
        "not_found",
    ),
    ErrorShape(
        "anthropic", "overloaded", 529, anthropic_body("overloaded_error", "Overloaded"), _TRANSIENT
    ),
    ErrorShape(
        "anthropic",
        "content_policy",
        400,
        anthropic_body("invalid_request_error", "Output blocked by content filtering policy"),
        _REQUEST,
        "content_policy",
    ),
    ErrorShape(
        "anthropic",
        "context_length_exceeded",
        400,
        anthropic_body(
            "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"
        ),
        _REQUEST,
        "context_window",
    ),
    # -- Stability -----------------------------------------------------------------------------
    ErrorShape(
        "stability",
        "out_of_credits",
        402,
        stability_body(
            "payment_required",
            "You lack sufficient credits to make this request. Please purchase more credits "
            "at https://platform.stability.ai/account/credits and try again.",
        ),
        _CREDIT,
    ),
    ErrorShape(
        "stability",
        "rate_limited",
        429,
        stability_body(
            "rate_limit_exceeded",
            "You have been rate limited as you have made more than 150 requests within a "
            "10 second period.",
        ),
        _RATE_LIMITED,
        headers=_RETRY_AFTER,
        retry_after=2.0,
    ),
    ErrorShape(
        "stability",
        "bad_key",
        401,
        stability_body("unauthorized", "authorization: invalid or missing header value"),
        _AUTH,
    ),
    ErrorShape(  # the v1 API (account, balance) writes "message" where v2beta writes "errors"
        "stability_v1",
        "bad_key",
        401,
        {"id": "{id}", "name": "unauthorized", "message": "Incorrect API key provided"},
        _AUTH,
    ),
    ErrorShape(
        "stability",
        "overloaded",
        503,
        stability_body(
            "service_unavailable", "The service is temporarily overloaded, please try again later."
        ),
        _TRANSIENT,
    ),
    ErrorShape(  # a moderated prompt is the request's fault, not a bad key
        "stability",
        "content_policy",
        403,
        stability_body(
            "content_moderation",
            "Your request was flagged by our content moderation system, as a result your "
            "request was denied and you were not charged.",
        ),
        _REQUEST,
        "content_policy",
    ),
    ErrorShape(
        "stability",
        "context_length_exceeded",
        400,
        stability_body("bad_request", "prompt: must be no more than 10000 characters"),
        _REQUEST,
        "bad_request",
    ),
    # -- Replicate -----------------------------------------------------------------------------
    ErrorShape(
        "replicate",
        "out_of_credits",
        402,
        replicate_body(
            402,
            "Insufficient credit",
            "You have insufficient credit to run this model. Go to "
            "https://replicate.com/account/billing to purchase credit. Once you purchase "
            "credit, please wait a few minutes before trying again.",
        ),
        _CREDIT,
    ),
    ErrorShape(
        "replicate",
        "rate_limited",
        429,
        replicate_body(429, "Request was throttled", "Request was throttled.{reset}"),
        _RATE_LIMITED,
        headers=_RETRY_AFTER,
        retry_after=2.0,
    ),
    ErrorShape(
        "replicate",
        "bad_key",
        401,
        replicate_body(401, "Unauthenticated", "You did not pass a valid authentication token"),
        _AUTH,
    ),
    ErrorShape(
        "replicate",
        "model_not_found",
        404,
        {"detail": "The requested resource could not be found.", "status": 404},
        _REQUEST,
        "not_found",
    ),
    ErrorShape(
        "replicate",
        "overloaded",
        503,
        replicate_body(
            503, "Service Unavailable", "The service is overloaded. Please try again later."
        ),
        _TRANSIENT,
    ),
    ErrorShape(
        "replicate",
        "content_policy",
        422,
        replicate_body(
            422,
            "Input flagged",
            "The input or output was flagged as sensitive. Please try again with different "
            "inputs. (E005)",
        ),
        _REQUEST,
        "content_policy",
    ),
    ErrorShape(
        "replicate",
        "context_length_exceeded",
        422,
        replicate_body(
            422,
            "Input validation failed",
            "- input.prompt: String should have at most 10000 characters",
        ),
        _REQUEST,
        "bad_request",
    ),
    # -- FAL -----------------------------------------------------------------------------------
    ErrorShape(
        "fal",
        "out_of_credits",
        403,
        {
            "detail": "User is locked. Reason: Exhausted balance. "
            "Top up your balance at fal.ai/dashboard/billing."
        },
        _CREDIT,
    ),
    ErrorShape(
        "fal",
        "rate_limited",
        429,
        {"detail": "Rate limit exceeded.{wait}"},
        _RATE_LIMITED,
        headers=_RETRY_AFTER,
        retry_after=2.0,
    ),
    ErrorShape("fal", "bad_key", 401, {"detail": "No user found for Key ID and Secret"}, _AUTH),
    ErrorShape(
        "fal",
        "overloaded",
        503,
        {"detail": "The service is overloaded. Please try again later."},
        _TRANSIENT,
    ),
    ErrorShape(
        "fal",
        "content_policy",
        422,
        fal_validation_body(
            "The content could not be processed because it contained material flagged by a "
            "content checker.",
            "content_policy_violation",
        ),
        _REQUEST,
        "content_policy",
    ),
    ErrorShape(
        "fal",
        "context_length_exceeded",
        422,
        fal_validation_body("String should have at most 10000 characters", "string_too_long"),
        _REQUEST,
        "bad_request",
    ),
    # -- OpenAI images (the openai dialect; request faults of images/edits) -------------------
    ErrorShape(
        "openai",
        "image_mask_mismatch",
        400,
        openai_body(
            "Invalid input image - the image and mask must have the same dimensions.",
            "invalid_request_error",
            "invalid_image",
            param="mask",
        ),
        _REQUEST,
        "bad_request",
    ),
    # -- Hugging Face Inference ({"error": "..."}; the token is optional) ------------------------
    ErrorShape(
        "huggingface",
        "out_of_credits",
        402,
        {
            "error": "You have exceeded your monthly included credits for Inference Providers. "
            "Subscribe to PRO to get 20x more monthly included credits."
        },
        _CREDIT,
    ),
    ErrorShape(
        "huggingface",
        "rate_limited",
        429,
        {
            "error": "Rate limit reached. You reached free usage limit (reset hourly). Please "
            "subscribe to a plan at https://huggingface.co/pricing to use the API at this rate"
        },
        _RATE_LIMITED,
        headers=_RETRY_AFTER,
        retry_after=2.0,
    ),
    ErrorShape(
        "huggingface",
        "bad_key",
        401,
        {"error": "Invalid credentials in Authorization header"},
        _AUTH,
    ),
    ErrorShape(  # the Hub's model info; without a token it answers 401 with the same header
        "huggingface",
        "model_not_found",
        404,
        {"error": "Repository not found"},
        _REQUEST,
        "not_found",
        headers=(("x-error-code", "RepoNotFound"),),
    ),
    ErrorShape(
        "huggingface",
        "overloaded",
        503,
        {
            "error": "Model black-forest-labs/FLUX.1-schnell is currently loading",
            "estimated_time": 20.0,
        },
        _TRANSIENT,
    ),
    # -- Black Forest Labs (FLUX; FastAPI {"detail": ...}) -------------------------------------
    ErrorShape("bfl", "out_of_credits", 402, {"detail": "Insufficient credits"}, _CREDIT),
    ErrorShape(
        "bfl",
        "rate_limited",
        429,
        {
            "detail": "You have exceeded the number of active tasks (24). Please wait for "
            "some to complete before submitting more."
        },
        _RATE_LIMITED,
    ),
    ErrorShape(
        "bfl", "bad_key", 403, {"detail": "Not authenticated - Invalid Authentication"}, _AUTH
    ),
    ErrorShape(
        "bfl",
        "overloaded",
        503,
        {"detail": "Service temporarily unavailable. Please try again later."},
        _TRANSIENT,
    ),
    ErrorShape(
        "bfl",
        "context_length_exceeded",
        422,
        fal_validation_body("String should have at most 10000 characters", "string_too_long"),
        _REQUEST,
        "bad_request",
    ),
    # -- Pollinations (keyless; its gateway answers {"error": reason, "message": ...}) -------
    ErrorShape(
        "pollinations",
        "rate_limited",
        429,
        {"error": "Too Many Requests", "message": "Rate limit exceeded.{wait}"},
        _RATE_LIMITED,
        headers=_RETRY_AFTER,
        retry_after=2.0,
    ),
    ErrorShape(
        "pollinations",
        "overloaded",
        503,
        {"error": "Service Unavailable", "message": "The image queue is full, try again later."},
        _TRANSIENT,
    ),
    ErrorShape(
        "pollinations",
        "content_policy",
        400,
        {"error": "Bad Request", "message": "The prompt was flagged as NSFW by the safety filter."},
        _REQUEST,
        "content_policy",
    ),
)


def shape(provider: str, situation: str) -> ErrorShape | None:
    """The shape ``provider`` sends in ``situation``, or ``None`` if the table has none."""
    return _BY_KEY.get((provider, situation))


_BY_KEY: Final = {(entry.provider, entry.situation): entry for entry in SHAPES}
