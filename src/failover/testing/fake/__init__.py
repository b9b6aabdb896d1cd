"""Fake AI providers over real HTTP: a server that fails the way real providers fail.

* :mod:`.server`: :class:`FakeProviderServer` (HTTP/1.1 on anyio and h11, the admin endpoint,
  statistics) and :func:`serve_forever` (what ``failover fake-providers`` runs).
* :mod:`.behaviour`: the behaviour language, :class:`Behaviour`, and its switching rules.
* :mod:`.shapes`: each provider's request, response and error shapes; the error bodies come
  from the classifier's own table, ``failover._core.classify.providers``.
* :mod:`.media`: the jobs of Replicate, FAL's queue and Black Forest Labs (:class:`JobScript`)
  and the direct image answers of OpenAI images, Pollinations and Hugging Face.

Needs the ``http`` extra (h11). ``failover.testing.FakeProviderServer`` and
``failover.testing.Behaviour`` are the same objects.
"""

from __future__ import annotations

from failover.testing.fake.behaviour import Behaviour, BehaviourKind
from failover.testing.fake.media import JobScript
from failover.testing.fake.server import FakeProviderServer, serve_forever
from failover.testing.fake.shapes import (
    ALL_PLATFORMS,
    MEDIA_PLATFORMS,
    OPENAI_COMPATIBLE_PLATFORMS,
    PLATFORMS,
)

__all__ = [
    "ALL_PLATFORMS",
    "MEDIA_PLATFORMS",
    "OPENAI_COMPATIBLE_PLATFORMS",
    "PLATFORMS",
    "Behaviour",
    "BehaviourKind",
    "FakeProviderServer",
    "JobScript",
    "serve_forever",
]
