"""The table of provider error shapes: every example gets its verdict, whichever way it arrives.

``failover._core.classify.providers.SHAPES`` is what the fake provider server sends and what
docs/providers.md lists; a new shape is added there and checked here.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest

from failover import BadRequest, RateLimited, classify
from failover._core.classify import classify_answer
from failover._core.classify.providers import PLACEHOLDERS, SHAPES, ErrorShape, shape
from failover.http import classify_response, to_provider_error
from failover.testing.fake.behaviour import OUTCOME_OF_KIND
from failover.testing.fake.shapes import DIALECT


def name(entry: ErrorShape) -> str:
    return f"{entry.provider}-{entry.situation}"


def example_response(entry: ErrorShape) -> httpx.Response:
    body, headers = entry.example()
    request = httpx.Request("POST", "https://api.example.com/v1/generate")
    return httpx.Response(entry.status, headers=headers, json=body, request=request)


@pytest.mark.parametrize("entry", SHAPES, ids=name)
def test_the_core_gives_each_example_its_verdict(entry: ErrorShape) -> None:
    body, headers = entry.example()
    assert classify_answer(entry.status, dict(headers), json.dumps(body)) == entry.verdict


@pytest.mark.parametrize("entry", SHAPES, ids=name)
def test_an_httpx_error_gets_the_same_verdict_with_or_without_failover_http(
    entry: ErrorShape,
) -> None:
    response = example_response(entry)
    with pytest.raises(httpx.HTTPStatusError) as caught:
        response.raise_for_status()
    assert classify(caught.value) == entry.verdict
    assert classify_response(response) == entry.verdict


@pytest.mark.parametrize("entry", SHAPES, ids=name)
def test_to_provider_error_raises_the_kind_of_each_example(entry: ErrorShape) -> None:
    error = to_provider_error(example_response(entry))
    assert type(error).kind_name == entry.kind.value
    assert error.status_code == entry.status
    if isinstance(error, BadRequest):
        assert error.reason == entry.reason
    if isinstance(error, RateLimited):
        assert error.retry_after == entry.retry_after


def test_one_shape_per_provider_and_situation() -> None:
    keys = [(entry.provider, entry.situation) for entry in SHAPES]
    assert len(keys) == len(set(keys))


def test_shapes_use_only_known_placeholders() -> None:
    text = json.dumps([(entry.body, entry.headers) for entry in SHAPES])
    assert set(re.findall(r"\{(\w+)\}", text)) <= set(PLACEHOLDERS)


@pytest.mark.parametrize("dialect", sorted(set(DIALECT.values())))
def test_every_failure_the_fake_serves_has_a_shape(dialect: str) -> None:
    for situation in OUTCOME_OF_KIND:
        if situation in ("hanging", "stream_cut"):
            continue  # no error body: the request hangs or the connection drops
        assert shape(dialect, situation) is not None, (dialect, situation)


def test_a_header_whose_value_is_missing_is_left_out() -> None:
    limited = shape("openai", "rate_limited")
    assert limited is not None
    values = {**PLACEHOLDERS, "retry_after": None, "retry_after_ms": None, "wait": None}
    body, headers = limited.render(values)
    assert [header for header, _ in headers] == [
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
    ]
    assert json.dumps(body).count('Requested 1."') == 1  # no wait in words either
