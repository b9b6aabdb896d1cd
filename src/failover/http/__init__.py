"""failover over HTTP (extra ``failover[http]``): httpx error classification and adapters
for text, image and video generation.

* Classification: :func:`classify_http` (a per-platform classifier for httpx exceptions),
  :func:`classify_response`, :func:`to_provider_error` and the httpx response hook
  :func:`raise_for_provider_status`, which turn provider responses into failover's
  ``CreditExhausted``, ``RateLimited(retry_after=...)``, ``AuthFailed``, ``Transient`` and
  ``BadRequest(reason=...)``.
* Adapters: :class:`OpenAICompatibleChat` and :class:`AnthropicMessages` call one platform and
  return a :class:`TextResult` (or a :class:`TextStream`); :class:`TextGeneration` runs them
  down a manager's fallback chain (``complete_sync``/``stream_sync`` from synchronous code,
  which gets a :class:`SyncTextStream`).
* Images and video: :class:`ImageGeneration`, :class:`ImageEditing` (``inpaint``, ``erase``)
  and :class:`VideoGeneration` run the provider adapters (:class:`StabilityImages`,
  :class:`OpenAIImages`, :class:`PollinationsImages`, :class:`HuggingFaceImages`,
  :class:`ReplicatePredictions`, :class:`FalQueue`, :class:`BlackForestLabs`) down the chain
  and return a :class:`MediaResult`; jobs are polled as :class:`Polling` says.
* Connections: :data:`DEFAULT_LIMITS`, httpcore's pool handing each idle connection to one
  waiting request, and one TLS context per process (:mod:`._pool`).
* Discovery: every adapter's ``check(platform)`` (and ``check_sync``, from
  :class:`Discoverable`) asks the provider, with a cheap read-only request, whether the key
  is accepted and the model exists, and returns a :class:`PlatformCheck`;
  :func:`check_platforms` checks every platform of a manager. A check records nothing on the
  manager.
"""

from __future__ import annotations

from failover._core.classify import ErrorBody, classify_body, parse_error_body
from failover.http._adapters import (
    ANTHROPIC_BASE_URLS,
    OPENAI_COMPATIBLE_BASE_URLS,
    AnthropicMessages,
    OpenAICompatibleChat,
)
from failover.http._base import DEFAULT_TIMEOUT, ChatAdapter, InvalidArgument
from failover.http._check import (
    CHECK_TIMEOUT,
    CheckPlan,
    CheckProblem,
    Discoverable,
    KeyStatus,
    Lookup,
    ModelStatus,
    PlatformCheck,
    Reading,
)
from failover.http._classify import (
    classify_http,
    classify_response,
    error_from_body,
    raise_for_provider_status,
    to_provider_error,
)
from failover.http._discovery import CHECK_CONCURRENCY, check_platforms, check_platforms_sync
from failover.http._images import (
    HuggingFaceImages,
    OpenAIImages,
    PollinationsImages,
    StabilityImages,
)
from failover.http._jobs import Job, JobState, Polling
from failover.http._media import MEDIA_ADAPTERS, ImageEditing, ImageGeneration, VideoGeneration
from failover.http._media_base import MEDIA_TIMEOUT, MediaAdapter
from failover.http._media_jobs import BlackForestLabs, FalQueue, ReplicatePredictions
from failover.http._media_result import MediaResult
from failover.http._pool import DEFAULT_LIMITS
from failover.http._result import TextResult, TokenPrice
from failover.http._streaming import (
    ServerSentEvent,
    StreamDecoder,
    StreamInterrupted,
    TextStream,
)
from failover.http._sync_stream import SyncTextStream
from failover.http._text import TextGeneration

__all__ = [
    "ANTHROPIC_BASE_URLS",
    "CHECK_CONCURRENCY",
    "CHECK_TIMEOUT",
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "MEDIA_ADAPTERS",
    "MEDIA_TIMEOUT",
    "OPENAI_COMPATIBLE_BASE_URLS",
    "AnthropicMessages",
    "BlackForestLabs",
    "ChatAdapter",
    "CheckPlan",
    "CheckProblem",
    "Discoverable",
    "ErrorBody",
    "FalQueue",
    "HuggingFaceImages",
    "ImageEditing",
    "ImageGeneration",
    "InvalidArgument",
    "Job",
    "JobState",
    "KeyStatus",
    "Lookup",
    "MediaAdapter",
    "MediaResult",
    "ModelStatus",
    "OpenAICompatibleChat",
    "OpenAIImages",
    "PlatformCheck",
    "PollinationsImages",
    "Polling",
    "Reading",
    "ReplicatePredictions",
    "ServerSentEvent",
    "StabilityImages",
    "StreamDecoder",
    "StreamInterrupted",
    "SyncTextStream",
    "TextGeneration",
    "TextResult",
    "TextStream",
    "TokenPrice",
    "VideoGeneration",
    "check_platforms",
    "check_platforms_sync",
    "classify_body",
    "classify_http",
    "classify_response",
    "error_from_body",
    "parse_error_body",
    "raise_for_provider_status",
    "to_provider_error",
]
