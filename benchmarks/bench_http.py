"""HTTP at scale: failover's adapters next to raw httpx (and LiteLLM Router, when installed).

    PYTHONPATH=src python benchmarks/bench_http.py            # about 2 minutes
    PYTHONPATH=src python benchmarks/bench_http.py --quick    # a smoke run

The fake provider server runs in its own process, so the client's figures are its own: client
CPU per call is the benchmark thread's CPU clock (``time.thread_time``) over the calls.
Variants run interleaved round by round (order rotating); a figure is the median over rounds,
with the worst round beside it.

* throughput: sequential calls, then 200 concurrent callers, for ``TextGeneration.complete``
  (openai-compatible chat), ``ImageGeneration.generate`` (Stability), raw httpx doing the same
  requests with its default client, and LiteLLM Router's ``acompletion`` (text);
* outage and credit exhaustion: the primary answers 503 (or out of credits) from the start;
  100 callers and 1 caller; how many requests reach the dead primary, the wall time and the
  callers' failures.
* ``--compare-limits``: throughput only, ``TextGeneration`` with today's pool limits (httpx's
  defaults, 20 kept alive) beside the former ones (100 kept alive) and raw httpx.

LiteLLM is optional (``pip install failover[bench]``); without it, its rows say so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from failover import PlatformManager
from failover.http import ImageGeneration, OpenAICompatibleChat, TextGeneration

KEYS = {"OPENAI_API_KEY": "sk-bench-0123456789", "GROQ_API_KEY": "gsk_bench_0123456789"}
KEYS |= {"STABILITY_API_KEY": "sk-stab-bench-0123", "REPLICATE_API_TOKEN": "r8_bench_0123"}
MESSAGES = [{"role": "user", "content": "say something nice"}]
Call = Callable[[], Awaitable[Any]]


# -- the server, in its own process ------------------------------------------------------------


def start_server() -> tuple[subprocess.Popen[str], str]:
    code = "from failover.cli import main; main(['fake-providers', '--port', '0'])"
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, line.rsplit(" ", 1)[-1].strip()


def admin(url: str, path: str, body: object | None = None) -> Any:
    with httpx.Client(base_url=url) as client:
        if body is None:
            return client.get(f"/_admin/{path}").json()
        return client.post(f"/_admin/{path}", json=body).json()


# -- the variants --------------------------------------------------------------------------------


async def variants(
    url: str, stack: list[Callable[[], Awaitable[None]]], compare_limits: bool = False
) -> dict[str, Call]:
    os.environ.update(KEYS)
    text_manager = PlatformManager({"text_generation": [("openai", "gpt-4o-mini")]})
    image_manager = PlatformManager({"image_generation": [("stability", "core")]})
    chat = TextGeneration(text_manager, base_urls={"openai": f"{url}/openai/v1"})
    images = ImageGeneration(image_manager, base_urls={"stability": f"{url}/stability"})
    raw = httpx.AsyncClient(base_url=url)
    stack += [text_manager.aclose, image_manager.aclose, raw.aclose]
    auth = {"authorization": f"Bearer {KEYS['OPENAI_API_KEY']}"}
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}

    async def raw_text() -> Any:
        response = await raw.post("/openai/v1/chat/completions", json=body, headers=auth)
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"]

    async def raw_image() -> bytes:
        response = await raw.post(
            "/stability/v2beta/stable-image/generate/core",
            headers={**auth, "accept": "image/*"},
            data={"prompt": "a cat", "output_format": "png"},
            files={"none": ("", b"")},
        )
        response.raise_for_status()
        return response.content

    calls: dict[str, Call] = {
        "raw httpx: chat": raw_text,
        "TextGeneration.complete": lambda: chat.complete(MESSAGES),
        "raw httpx: Stability image": raw_image,
        "ImageGeneration.generate (Stability)": lambda: images.generate("a cat"),
    }
    if compare_limits:  # the pool failover used before: 100 connections, all kept alive
        wide = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        adapter = OpenAICompatibleChat(f"{url}/openai/v1", limits=wide)
        wide_chat = TextGeneration(text_manager, adapters={"openai": adapter})
        calls["TextGeneration, 100 kept alive"] = lambda: wide_chat.complete(MESSAGES)
        return calls
    router = litellm_router(url)
    if router is not None:
        calls["LiteLLM Router.acompletion"] = lambda: router.acompletion(
            model="chat", messages=MESSAGES
        )
    return calls


def litellm_router(url: str, fallback: bool = False) -> Any:
    # LiteLLM fetches a model price list from GitHub on import unless told not to: this
    # benchmark stays on the loopback interface.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
        from litellm import Router
    except ImportError:
        return None
    litellm.telemetry = False
    models = [
        {
            "model_name": "chat",
            "litellm_params": {
                "model": "openai/gpt-4o-mini",
                "api_base": f"{url}/openai/v1",
                "api_key": KEYS["OPENAI_API_KEY"],
            },
        }
    ]
    if not fallback:
        return Router(model_list=models)
    models.append(
        {
            "model_name": "backup",
            "litellm_params": {
                "model": "openai/gpt-4o-mini",
                "api_base": f"{url}/groq/v1",
                "api_key": KEYS["GROQ_API_KEY"],
            },
        }
    )
    return Router(model_list=models, fallbacks=[{"chat": ["backup"]}], num_retries=0)


# -- throughput ----------------------------------------------------------------------------------


async def one_round(call: Call, callers: int, per_caller: int) -> tuple[float, float]:
    """(calls per second, client CPU milliseconds per call) for one round."""
    total = callers * per_caller

    async def caller() -> None:
        for _ in range(per_caller):
            await call()

    cpu, wall = time.thread_time(), time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(callers):
            group.start_soon(caller)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    return total / wall, cpu / total * 1000


async def throughput(
    calls: dict[str, Call], rounds: int, sequential: int, concurrent: int
) -> dict[str, Any]:
    results: dict[str, dict[str, list[tuple[float, float]]]] = {
        name: {"sequential": [], "200 concurrent": []} for name in calls
    }
    for call in calls.values():  # warm up: connections, TLS context, first-call imports
        await one_round(call, 10, 2)
    names = list(calls)
    for index in range(rounds):
        order = names[index % len(names) :] + names[: index % len(names)]
        for name in order:
            results[name]["sequential"].append(await one_round(calls[name], 1, sequential))
            results[name]["200 concurrent"].append(
                await one_round(calls[name], 200, concurrent // 200)
            )
    return results


# -- outage and credit exhaustion ----------------------------------------------------------------


async def scenario(url: str, kind: str, what: str, callers: int, per_caller: int) -> dict[str, Any]:
    """The primary fails (``kind``) from the start; ``what`` is text, image or litellm."""
    os.environ.update(KEYS)
    primary = {"text": "openai", "image": "stability", "litellm": "openai"}[what]
    admin(url, "behaviour", {"platform": "*", "behaviour": "healthy"})
    admin(url, "behaviour", {"platform": primary, "behaviour": kind})
    admin(url, "reset", {})
    failures = 0
    async with PlatformManager(
        {
            "text_generation": [("openai", "gpt-4o-mini"), ("groq", "llama-3.3-70b-versatile")],
            "image_generation": [("stability", "core"), ("replicate", "flux")],
        }
    ) as manager:
        if what == "text":
            chat = TextGeneration(
                manager, base_urls={"openai": f"{url}/openai/v1", "groq": f"{url}/groq/v1"}
            )
            call: Call = lambda: chat.complete(MESSAGES)  # noqa: E731
        elif what == "image":
            images = ImageGeneration(
                manager,
                base_urls={"stability": f"{url}/stability", "replicate": f"{url}/replicate"},
            )
            call = lambda: images.generate("a cat")  # noqa: E731
        else:
            router = litellm_router(url, fallback=True)
            if router is None:
                return {"skipped": "litellm is not installed (pip install failover[bench])"}
            call = lambda: router.acompletion(model="chat", messages=MESSAGES)  # noqa: E731

        async def caller() -> None:
            nonlocal failures
            for _ in range(per_caller):
                try:
                    await call()
                except Exception:
                    failures += 1

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(callers):
                group.start_soon(caller)
        wall = time.perf_counter() - started
    stats = admin(url, "stats")
    admin(url, "behaviour", {"platform": "*", "behaviour": "healthy"})
    return {
        "calls": callers * per_caller,
        "reached_primary": stats[primary]["total"],
        "wall_s": round(wall, 3),
        "caller_failures": failures,
    }


# -- report --------------------------------------------------------------------------------------


def render(results: dict[str, Any], scenarios: dict[str, Any], litellm: bool) -> str:
    lines = [
        "| variant | mode | calls/s median | calls/s worst round | client CPU ms/call (median) |",
        "|---|---|---|---|---|",
    ]
    for name, modes in results.items():
        for mode, rounds in modes.items():
            rates = [rate for rate, _ in rounds]
            cpus = [cpu for _, cpu in rounds]
            lines.append(
                f"| {name} | {mode} | {statistics.median(rates):.0f} | {min(rates):.0f} | "
                f"{statistics.median(cpus):.2f} |"
            )
    if not litellm:
        lines.append(
            "| LiteLLM Router | - | skipped: litellm not installed (`failover[bench]`) | | |"
        )
    lines += [
        "",
        "| scenario | client | callers x calls | requests reaching the dead primary | wall s | "
        "caller failures |",
        "|---|---|---|---|---|---|",
    ]
    for key, row in scenarios.items():
        kind, what, shape = key.split("|")
        if "skipped" in row:
            lines.append(f"| {kind} | {what} | {shape} | {row['skipped']} | | |")
            continue
        lines.append(
            f"| {kind} | {what} | {shape} | {row['reached_primary']} of {row['calls']} | "
            f"{row['wall_s']} | {row['caller_failures']} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    process, url = start_server()
    stack: list[Callable[[], Awaitable[None]]] = []
    try:
        calls = await variants(url, stack, args.compare_limits)
        results = await throughput(calls, args.rounds, args.sequential, args.concurrent)
        if args.compare_limits:
            print(render(results, {}, litellm=True))
            return
        scenarios: dict[str, Any] = {}
        for kind in ("overloaded", "out_of_credits"):
            for what in ("text", "image", "litellm"):
                for callers, per_caller in ((100, 5), (1, 20)):
                    key = f"{kind}|{what}|{callers} x {per_caller}"
                    scenarios[key] = await scenario(url, kind, what, callers, per_caller)
        report = render(results, scenarios, "LiteLLM Router.acompletion" in calls)
        print(report)
        if args.json:
            figures = json.dumps({"throughput": results, "scenarios": scenarios}, indent=1)
            await anyio.Path(args.json).write_text(figures)
    finally:
        for close in stack:
            await close()
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures here")
    parser.add_argument(
        "--compare-limits",
        action="store_true",
        help="only throughput, with the old pool limits (100 kept alive) beside the new",
    )
    args = parser.parse_args()
    args.rounds = 2 if args.quick else 5
    args.sequential = 50 if args.quick else 300
    args.concurrent = 200 if args.quick else 600
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
