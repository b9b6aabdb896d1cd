"""What kind of failure is this? Exceptions and provider answers -> :class:`ErrorKind`.

Pure functions, no I/O, standard library only. The package, top to bottom:

* :mod:`.kinds`: :class:`ErrorKind`, :class:`Classification` (the verdict), ``Classifier``.
* :mod:`.providers`: what providers really send, as data: the codes and phrases the rules
  read, and :data:`~.providers.SHAPES`, one example per provider and situation with the
  verdict it must get. A new provider error shape goes there.
* :mod:`.rules`: an HTTP status and its body words -> verdict (:func:`classify_status`), and a
  bare message's words -> verdict.
* :mod:`.retry_after`: ``Retry-After``, ``retry-after-ms`` and a wait written in words
  ("please retry in 37.5s") -> seconds, capped.
* :mod:`.body`: a provider's error body (its JSON dialect) -> codes and message -> verdict.
* :mod:`.exceptions`: :func:`classify`, which reads an exception (duck typing; httpx's errors
  by their class names, see there) and applies the above.

``failover.http`` adds only what needs httpx itself: reading a streamed body, its exception
classes for ``to_provider_error``, and the exceptions' scrubbed text.
"""

from __future__ import annotations

from failover._core.classify.body import (
    MAX_ERROR_BODY_BYTES,
    ErrorBody,
    classify_answer,
    classify_body,
    parse_error_body,
)
from failover._core.classify.exceptions import (
    CALLER_BUGS,
    caller_bugs_as_failures,
    classify,
    is_caller_bug,
)
from failover._core.classify.kinds import (
    ATTEMPT_TIMEOUT,
    CALLER_BUG,
    CANCELLED,
    TRANSIENT,
    Classification,
    Classifier,
    ErrorKind,
)
from failover._core.classify.retry_after import (
    MAX_RETRY_AFTER_SECONDS,
    parse_retry_after,
    retry_after_of,
)
from failover._core.classify.rules import classify_status

__all__ = [
    "ATTEMPT_TIMEOUT",
    "CALLER_BUG",
    "CALLER_BUGS",
    "CANCELLED",
    "MAX_ERROR_BODY_BYTES",
    "MAX_RETRY_AFTER_SECONDS",
    "TRANSIENT",
    "Classification",
    "Classifier",
    "ErrorBody",
    "ErrorKind",
    "caller_bugs_as_failures",
    "classify",
    "classify_answer",
    "classify_body",
    "classify_status",
    "is_caller_bug",
    "parse_error_body",
    "parse_retry_after",
    "retry_after_of",
]
