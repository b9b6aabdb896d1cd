"""``failover check-config FILE``: validate a config and show what it resolves to here; with
``--online``, also ask each platform's provider whether its key and model are good."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from failover.cli._common import CommandError, require

if TYPE_CHECKING:
    from failover._config_report import ConfigReport
    from failover._manager import PlatformManager
    from failover.http import PlatformCheck

#: The longest a platform's online check may take, unless ``--timeout`` says otherwise.
ONLINE_TIMEOUT = 10.0


def add_parser(subparsers: Any) -> None:
    """Declare ``failover check-config``."""
    parser = subparsers.add_parser(
        "check-config",
        help="validate a failover.toml and show what it resolves to",
        description=(
            "Validate a TOML config and print the resolved priority list per operation, "
            "which platforms are usable in this environment, and which would be skipped and "
            "why. Exits 1 naming every problem found. Nothing is sent anywhere unless "
            "--online is given."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="the TOML file (e.g. failover.toml)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--strict", action="store_true", help="treat warnings as problems (exit 1)")
    parser.add_argument(
        "--online",
        action="store_true",
        help="also ask each platform's provider, with a read-only request that costs nothing, "
        "whether its key is accepted and its model exists (exit 1 when not); needs the http "
        "extra",
    )
    parser.add_argument(
        "--base-url",
        action="append",
        default=[],
        metavar="PLATFORM=URL",
        help="with --online: ask PLATFORM at URL instead of its public API (a proxy, a "
        "gateway, the fake providers); repeatable",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help=f"with --online: the longest one platform's check may take (default: "
        f"{ONLINE_TIMEOUT:g})",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the report; 0 when the config is usable (and, with ``--online``, every key was
    accepted and every model found), 1 otherwise."""
    from failover._config_report import check_config

    base_urls = parse_base_urls(args.base_url)
    if not args.online and (base_urls or args.timeout is not None):
        option = "--base-url" if base_urls else "--timeout"
        raise CommandError(f"{option} only applies with --online", 2)
    environ = dict(os.environ)
    online: list[PlatformCheck] | None = None
    with_manager = None
    if args.online:
        require(["httpx"], "http", "check-config --online")

        async def with_manager(manager: PlatformManager) -> None:
            nonlocal online
            online = await check_online(manager, base_urls, args, environ)

    report: ConfigReport = anyio.run(
        functools.partial(check_config, args.file, environ, with_manager=with_manager)
    )
    if args.strict:
        report.problems.extend(f"(strict) {warning}" for warning in report.warnings)
    failed = [check for check in online or () if check.misconfigured]
    if args.json:
        data = report.to_json()
        if args.online:
            data["ok"] = report.ok and not failed
            data["online"] = None if online is None else [check.to_json() for check in online]
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_report(report, sys.stdout)
        if args.online:
            print_online(online, sys.stdout)
    return 0 if report.ok and not failed else 1


def parse_base_urls(specs: Sequence[str]) -> dict[str, str]:
    """``PLATFORM=URL`` options as a mapping; a malformed one is a usage error."""
    base_urls: dict[str, str] = {}
    for spec in specs:
        name, sep, url = spec.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not name or not url:
            raise CommandError(f"--base-url must look like PLATFORM=URL, got {spec!r}", 2)
        if not url.startswith(("http://", "https://")) or not url.split("://", 1)[1].strip("/"):
            raise CommandError(
                f"--base-url {name}: expected an http:// or https:// URL, got {url!r}", 2
            )
        if name in base_urls and base_urls[name] != url:
            raise CommandError(f"--base-url gives {name!r} two URLs", 2)
        base_urls[name] = url
    return base_urls


async def check_online(
    manager: PlatformManager,
    base_urls: Mapping[str, str],
    args: argparse.Namespace,
    environ: Mapping[str, str],
) -> list[PlatformCheck]:
    """Check every platform of ``manager`` that has an adapter (``--base-url`` applied)."""
    from failover.http import check_platforms

    names = sorted({spec.name for op in manager.operations for spec in manager.platforms(op)})
    unknown = sorted(set(base_urls) - set(names))
    if unknown:
        raise CommandError(
            f"--base-url names {unknown[0]!r}, which is not a platform of {args.file} "
            f"(platforms: {', '.join(names)})",
            2,
        )
    timeout = ONLINE_TIMEOUT if args.timeout is None else args.timeout
    return await check_platforms(manager, base_urls=base_urls, timeout=timeout, environ=environ)


def print_report(report: ConfigReport, out: TextIO) -> None:
    """The report as text: the verdict, then each operation's priority list, then warnings."""
    if not report.ok:
        count = len(report.problems)
        print(f"{report.source}: {count} problem{'s' if count != 1 else ''}", file=out)
        for problem in report.problems:
            print(f"  - {problem}", file=out)
    else:
        print(f"{report.source}: OK", file=out)
    if report.operations:
        settings = ", ".join(f"{key}={value}" for key, value in report.settings.items())
        print(f"settings: {settings or '(defaults)'}; order: {report.ordering}", file=out)
        for operation, checks in report.operations.items():
            usable = sum(check.usable for check in checks)
            print(f"\n{operation}  ({usable} of {len(checks)} usable)", file=out)
            width = max(len(f"{check.name}/{check.model}") for check in checks)
            for index, check in enumerate(checks, 1):
                label = f"{check.name}/{check.model}".ljust(width)
                why = check.why_skipped()
                key = check.api_key_env or "no key needed"
                status = f"usable   ({key})" if why is None else f"skipped: {why}"
                print(f"  {index}. {label}  {status}", file=out)
    if report.warnings:
        print("\nwarnings:", file=out)
        for warning in report.warnings:
            print(f"  - {warning}", file=out)


def print_online(checks: Sequence[PlatformCheck] | None, out: TextIO) -> None:
    """One line per (platform, model) checked online, then the verdict."""
    print("\nonline (read-only requests to each provider; keys are not shown)", file=out)
    if checks is None:
        print("  not checked: the file has problems", file=out)
        return
    if not checks:
        print("  no platforms", file=out)
        return
    width = max(len(f"{check.platform}/{check.model}") for check in checks)
    for check in checks:
        label = f"{check.platform}/{check.model}".ljust(width)
        status = "FAILED" if check.misconfigured else check.status.replace("_", " ")
        print(f"  {label}  {status:<14} {check.summary()}", file=out)
    failed = [check for check in checks if check.misconfigured]
    if failed:
        reasons = "; ".join(
            f"{check.platform}/{check.model}: "
            + ("key rejected" if check.key == "rejected" else "model missing")
            for check in failed
        )
        print(f"online: {len(failed)} of {len(checks)} need a fix ({reasons})", file=out)
    else:
        print(f"online: no key rejected, no model missing ({len(checks)} checked)", file=out)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value
