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
  callers' failures;
* memory: what a platform client adds, its adapter included (tracemalloc), for a chat and an
  image adapter, on an ``https://`` and a plain ``http://`` base URL;
* ``--compare-pools``: throughput only, raw httpx beside ``TextGeneration`` and
  ``ImageGeneration`` on failover's pool (``failover.http._pool``) and on httpcore's own pool
  (as before failover's), same limits, and ``TextGeneration`` with 100 kept alive.

LiteLLM is optional (``pip install failover[bench]``); without it, its rows say so.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from failover import PlatformManager
from failover.http import (
    DEFAULT_LIMITS,
    ImageGeneration,
    OpenAICompatibleChat,
    StabilityImages,
    TextGeneration,
)
from failover.http._pool import context_for, tls_context

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
    url: str, stack: list[Callable[[], Awaitable[None]]], compare_pools: bool = False
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
    if compare_pools:
        # A transport given to an adapter is used as it is: httpcore's own pool, same limits.
        def own_pool() -> httpx.AsyncHTTPTransport:
            return httpx.AsyncHTTPTransport(verify=context_for(url), limits=DEFAULT_LIMITS)

        own_chat = chat_with(text_manager, url, transport=own_pool())
        wide = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        wide_chat = chat_with(text_manager, url, limits=wide)
        stability = StabilityImages(f"{url}/stability", transport=own_pool())
        own_images = ImageGeneration(image_manager, adapters={"stability": stability})
        calls["TextGeneration, httpcore's own pool (before)"] = lambda: own_chat.complete(MESSAGES)
        calls["TextGeneration, 100 kept alive"] = lambda: wide_chat.complete(MESSAGES)
        calls["ImageGeneration, httpcore's own pool (before)"] = lambda: own_images.generate(
            "a cat"
        )
        return calls
    router = litellm_router(url)
    if router is not None:
        calls["LiteLLM Router.acompletion"] = lambda: router.acompletion(
            model="chat", messages=MESSAGES
        )
    return calls


def chat_with(manager: PlatformManager, url: str, **options: Any) -> TextGeneration:
    adapter = OpenAICompatibleChat(f"{url}/openai/v1", **options)
    return TextGeneration(manager, adapters={"openai": adapter})


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


def client_memory() -> dict[str, float]:
    """KB a platform client adds with its adapter (tracemalloc over 20 of each, the shared TLS
    context built before)."""
    makers: dict[str, Callable[[], object]] = {
        "chat, https": lambda: OpenAICompatibleChat().client("openai"),
        "chat, http": lambda: OpenAICompatibleChat("http://127.0.0.1:9/v1").client("openai"),
        "image, https": lambda: StabilityImages().client("stability"),
        "image, http": lambda: StabilityImages("http://127.0.0.1:9/s").client("stability"),
    }
    tls_context()
    figures: dict[str, float] = {}
    for name, make in makers.items():
        make()  # first-use imports and caches are not the client's
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            clients = [make() for _ in range(20)]
            gc.collect()
            figures[name] = (tracemalloc.get_traced_memory()[0] - before) / len(clients) / 1024
        finally:
            tracemalloc.stop()
        del clients
    return figures


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
        "| variant | mode | calls/s median | calls/s worst round | client CPU ms/call median "
        "| client CPU ms/call worst round |",
        "|---|---|---|---|---|---|",
    ]
    for name, modes in results.items():
        for mode, rounds in modes.items():
            rates = [rate for rate, _ in rounds]
            cpus = [cpu for _, cpu in rounds]
            lines.append(
                f"| {name} | {mode} | {statistics.median(rates):.0f} | {min(rates):.0f} | "
                f"{statistics.median(cpus):.2f} | {max(cpus):.2f} |"
            )
    if not litellm:
        lines.append(
            "| LiteLLM Router | - | skipped: litellm not installed (`failover[bench]`) | | | |"
        )
    if not scenarios:
        return "\n".join(lines)
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
        calls = await variants(url, stack, args.compare_pools)
        results = await throughput(calls, args.rounds, args.sequential, args.concurrent)
        if args.compare_pools:
            print(render(results, {}, litellm=True))
            return
        scenarios: dict[str, Any] = {}
        for kind in ("overloaded", "out_of_credits"):
            for what in ("text", "image", "litellm"):
                for callers, per_caller in ((100, 5), (1, 20)):
                    key = f"{kind}|{what}|{callers} x {per_caller}"
                    scenarios[key] = await scenario(url, kind, what, callers, per_caller)
        report = render(results, scenarios, "LiteLLM Router.acompletion" in calls)
        memory = client_memory()
        print(report)
        print()
        print(
            "Memory per platform client (tracemalloc): "
            + ", ".join(f"{name} {kb:.1f} KB" for name, kb in memory.items())
        )
        if args.json:
            figures = {"throughput": results, "scenarios": scenarios, "client_kb": memory}
            await anyio.Path(args.json).write_text(json.dumps(figures, indent=1))
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
        "--compare-pools",
        action="store_true",
        help="only throughput: the adapters on httpcore's own pool too, and 100 kept alive",
    )
    args = parser.parse_args()
    args.rounds = 2 if args.quick else 7
    args.sequential = 50 if args.quick else 300
    args.concurrent = 200 if args.quick else 600
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
