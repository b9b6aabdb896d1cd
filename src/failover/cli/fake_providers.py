"""``failover fake-providers``: the fake AI-provider server in the foreground."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from failover.cli._common import BACKENDS, CommandError, port, require, run_async

if TYPE_CHECKING:
    from failover.testing.fake import Behaviour


def add_parser(subparsers: Any) -> None:
    """Declare ``failover fake-providers``."""
    parser = subparsers.add_parser(
        "fake-providers",
        help="run the fake AI-provider server in the foreground (Ctrl-C stops it)",
        description=(
            "Serve provider-shaped endpoints (OpenAI-compatible chat completions for openai, "
            "groq, xai, together and google; Anthropic messages; Stability, Replicate, FAL, "
            "OpenAI images, Pollinations, Hugging Face and Black Forest Labs image and video "
            "endpoints, with jobs) that fail like the real ones. Change a platform's behaviour at "
            "runtime with POST /_admin/behaviour."
        ),
    )
    parser.add_argument(
        "--port",
        type=port,
        default=8765,
        metavar="N",
        help="TCP port (default: %(default)s; 0 picks a free one)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed for the draws")
    parser.add_argument(
        "--behaviour",
        action="append",
        default=[],
        metavar="PLATFORM=KIND",
        help="a starting behaviour, e.g. stability=out_of_credits or "
        '\'replicate={"kind": "flaky", "error_rate": 0.5}\' (repeatable; \'*\' = all)',
    )
    parser.add_argument(
        "--models",
        action="append",
        default=[],
        metavar="PLATFORM=MODEL[,MODEL...]",
        help="the only models PLATFORM has (others get its 'model not found' answer); "
        "repeatable; without it every model exists",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="asyncio",
        help="the event loop to run on (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; 0 then, or one clear line when the address is taken."""
    require(["h11"], "http", "failover fake-providers")
    from failover.testing.fake import ALL_PLATFORMS, FakeProviderServer

    behaviours = _parse_behaviours(args.behaviour)
    models = _parse_models(args.models)

    async def serve() -> None:
        try:
            server = FakeProviderServer(
                args.port, host=args.host, seed=args.seed, behaviours=behaviours, models=models
            )
            async with server:
                print(f"fake providers listening on {server.url}", flush=True)
                for platform in ALL_PLATFORMS:
                    print(f"  {platform:<10} {server.base_url(platform)}", flush=True)
                print(f"  admin      {server.url}/_admin/behaviour  (Ctrl-C stops)", flush=True)
                await anyio.sleep_forever()
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
            ) from None

    try:
        run_async(args.backend, serve)
    except KeyboardInterrupt:
        print("fake providers stopped", flush=True)
    return 0


def _parse_models(specs: Sequence[str]) -> dict[str, list[str]]:
    from failover.testing.fake import ALL_PLATFORMS

    models: dict[str, list[str]] = {}
    for spec in specs:
        platform, sep, text = spec.partition("=")
        names = [name.strip() for name in text.split(",") if name.strip()]
        if not sep or not platform or not names:
            raise CommandError(
                f"--models must look like PLATFORM=MODEL[,MODEL...], got {spec!r}", 2
            )
        if platform not in ALL_PLATFORMS:
            raise CommandError(
                f"--models: unknown platform {platform!r}; known: {', '.join(ALL_PLATFORMS)}", 2
            )
        models.setdefault(platform, []).extend(names)
    return models


def _parse_behaviours(specs: Sequence[str]) -> dict[str, Behaviour]:
    from failover.testing.fake import ALL_PLATFORMS, Behaviour

    behaviours: dict[str, Behaviour] = {}
    for spec in specs:
        platform, sep, text = spec.partition("=")
        if not sep or not platform or not text:
            raise CommandError(f"--behaviour must look like PLATFORM=KIND, got {spec!r}", 2)
        if platform != "*" and platform not in ALL_PLATFORMS:
            raise CommandError(
                f"--behaviour: unknown platform {platform!r}; known: {', '.join(ALL_PLATFORMS)}", 2
            )
        try:
            data = json.loads(text) if text.lstrip().startswith("{") else text
            behaviour = Behaviour.from_dict(data)
        except ValueError as exc:
            raise CommandError(f"--behaviour {platform}: {exc}", 2) from None
        for name in ALL_PLATFORMS if platform == "*" else (platform,):
            behaviours[name] = behaviour
    return behaviours
