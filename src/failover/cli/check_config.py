"""``failover check-config FILE``: validate a config and show what it resolves to here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

import anyio

if TYPE_CHECKING:
    from failover._config_report import ConfigReport


def add_parser(subparsers: Any) -> None:
    """Declare ``failover check-config``."""
    parser = subparsers.add_parser(
        "check-config",
        help="validate a failover.toml and show what it resolves to",
        description=(
            "Validate a TOML config and print the resolved priority list per operation, "
            "which platforms are usable in this environment, and which would be skipped and "
            "why. Exits 1 naming every problem found."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="the TOML file (e.g. failover.toml)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--strict", action="store_true", help="treat warnings as problems (exit 1)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the report; 0 when the config is usable, 1 when it has problems."""
    from failover._config_report import check_config

    report: ConfigReport = anyio.run(check_config, args.file, dict(os.environ))
    if args.strict:
        report.problems.extend(f"(strict) {warning}" for warning in report.warnings)
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_report(report, sys.stdout)
    return 0 if report.ok else 1


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
