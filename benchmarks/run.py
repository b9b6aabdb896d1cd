"""failover next to its peers, every case in one run: ``make bench``.

Runs each case of the benchmark suite (happy path against a bare await, a hand-written loop,
pybreaker and tenacity; skip cost; failure path; throughput; outage blast radius; scale;
import time), prints a table per case and the goals as met or missed, and writes
``benchmarks/RESULTS.md`` and ``benchmarks/results.json``.

Run: ``.venv/bin/python benchmarks/run.py`` (``--quick`` for a smoke run of a few seconds,
``--only happy,skip`` for some cases, ``--no-write`` to leave the result files alone).

Figures are medians over repeated, interleaved rounds with their interquartile range in
brackets; per-call costs are thread CPU time (a noisy neighbour's time slices are not
counted); ratios are computed round by round within this run. See ``_harness.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

import _cases
import failover
from _harness import Spread, machine, versions

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_MD = HERE / "RESULTS.md"
#: Before/after figures of the engine rebuild (written by hand from two runs of this script).
ENGINE_MD = HERE / "ENGINE.md"
#: Figures of the benchmarks that run on their own (bench_dashboard.py, bench_http.py).
STANDALONE_MD = HERE / "STANDALONE.md"
RESULTS_JSON = HERE / "results.json"
OPTIMISATIONS_MD = HERE / "OPTIMISATIONS.md"
SECTIONS = ("happy", "sync", "skip", "failure", "throughput", "blast", "scale", "import", "profile")
BACKENDS = ("asyncio", "trio")
LIBRARIES = ("failover", "pybreaker", "tenacity", "anyio", "trio", "opentelemetry-api",
             "opentelemetry-sdk")  # fmt: skip


@dataclass(frozen=True)
class Settings:
    rounds: int
    target_ms: float
    skip_counts: tuple[int, ...]
    throughput_repeats: int
    concurrency: int
    blast_callers: int
    blast_phases: tuple[float, float, float]
    blast_repeats: int
    scale_platforms: int
    scale_operations: int
    ring_fill: int
    import_repeats: int
    profile_calls: int

    @classmethod
    def full(cls) -> Settings:
        return cls(
            rounds=51, target_ms=3.0, skip_counts=(0, 1, 5, 10), throughput_repeats=3,
            concurrency=10_000, blast_callers=100, blast_phases=(0.2, 0.8, 2.0), blast_repeats=3,
            scale_platforms=1_000, scale_operations=10, ring_fill=130, import_repeats=7,
            profile_calls=20_000,
        )  # fmt: skip

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            rounds=5, target_ms=1.0, skip_counts=(0, 1, 5, 10), throughput_repeats=1,
            concurrency=2_000, blast_callers=100, blast_phases=(0.1, 0.3, 0.6), blast_repeats=1,
            scale_platforms=1_000, scale_operations=10, ring_fill=130, import_repeats=2,
            profile_calls=2_000,
        )  # fmt: skip


@dataclass(frozen=True)
class Goal:
    name: str
    measured: float
    limit: float
    unit: str
    spread: Spread | None = None

    @property
    def met(self) -> bool:
        return self.measured <= self.limit

    def line(self) -> str:
        verdict = "met" if self.met else "MISSED"
        detail = ""
        if self.spread is not None:
            detail = f" (IQR {self.spread.q1:.2f}–{self.spread.q3:.2f})"
        return (
            f"{verdict:<6} {self.name}: {self.measured:.2f}{self.unit}{detail}"
            f" (goal <= {self.limit:g}{self.unit})"
        )


# -- running ----------------------------------------------------------------------------------


def run(settings: Settings, sections: tuple[str, ...]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for section in sections:
        started = time.perf_counter()
        print(f"... {section}", file=sys.stderr, flush=True)
        try:
            _run_section(section, settings, results)
        except Exception as error:  # one broken case must not cost the others' figures
            print(f"!!! {section} failed: {error!r}", file=sys.stderr, flush=True)
            results.setdefault("errors", {})[section] = repr(error)
        results.setdefault("seconds", {})[section] = round(time.perf_counter() - started, 1)
    return results


def _run_section(section: str, settings: Settings, results: dict[str, Any]) -> None:
    """Measure one case into ``results[section]``."""
    if section == "happy":
        results[section] = {
            backend: anyio.run(
                _cases.happy_path, settings.rounds, settings.target_ms, backend=backend
            )
            for backend in BACKENDS
        }
    elif section == "sync":
        results[section] = anyio.run(_cases.sync_happy_path, settings.rounds, settings.target_ms)
    elif section == "skip":
        results[section] = {
            backend: anyio.run(
                _cases.skip_cost,
                settings.rounds,
                settings.target_ms,
                settings.skip_counts,
                backend=backend,
            )
            for backend in BACKENDS
        }
    elif section == "failure":
        results[section] = {
            backend: anyio.run(
                _cases.failure_path, settings.rounds, settings.target_ms, backend=backend
            )
            for backend in BACKENDS
        }
    elif section == "throughput":
        results[section] = {
            backend: anyio.run(
                _cases.throughput,
                settings.throughput_repeats,
                settings.concurrency,
                0.001,
                backend=backend,
            )
            for backend in BACKENDS
        }
    elif section == "blast":
        results[section] = {
            backend: anyio.run(
                _cases.blast_radius,
                settings.blast_callers,
                0.01,
                0.1,
                0.3,
                settings.blast_phases,
                settings.blast_repeats,
                backend=backend,
            )
            for backend in BACKENDS
        }
    elif section == "scale":
        results[section] = anyio.run(
            _cases.scale,
            settings.scale_platforms,
            settings.scale_operations,
            settings.rounds,
            settings.target_ms,
            settings.ring_fill,
        )
    elif section == "import":
        results[section] = _cases.import_time(settings.import_repeats)
    elif section == "profile":
        results[section] = anyio.run(_cases.profile_happy_path, settings.profile_calls, 14)


def goals(results: dict[str, Any]) -> list[Goal]:
    found: list[Goal] = []
    for backend, happy in results.get("happy", {}).items():
        for api in ("with_fallback", "@fallback"):
            for telemetry in ("telemetry off", "OTel API, no SDK"):
                compared = happy["ratios"][f"{api}, {telemetry}"]
                for reference, limit in (
                    # The default install (OTel API, no SDK) at half pybreaker's cost.
                    ("pybreaker calling()", 0.5 if telemetry == "OTel API, no SDK" else 0.6),
                    ("tenacity @retry, 1 attempt", 0.1),
                ):
                    spread = compared[reference]
                    found.append(
                        Goal(
                            f"{backend}: {api}, {telemetry} overhead vs {reference}",
                            spread.median,
                            limit,
                            "x",
                            spread,
                        )
                    )
    sync = results.get("sync")
    if sync is not None:
        for name, compared in sync["ratios"].items():
            spread = compared["pybreaker call()"]
            found.append(
                Goal(f"{name} overhead vs pybreaker call()", spread.median, 0.5, "x", spread)
            )
    for backend, skip in results.get("skip", {}).items():
        most = max(skip["per_open_platform_ns"])
        spread = skip["per_open_platform_ns"][most].scaled(1e-3)
        found.append(
            Goal(
                f"{backend}: skip cost per open platform ({most} open)",
                spread.median,
                1.0,
                " µs",
                spread,
            )
        )
    for backend, happy in results.get("happy", {}).items():
        for label, spread in happy["sdk_own_share"].items():
            api = label.split(",")[0]
            found.append(
                Goal(
                    f"{backend}: {api} own share on top of the SDK's cost",
                    spread.median * 100,
                    25,
                    "%",
                    spread.scaled(100),
                )
            )
    if "scale" in results:
        scale = results["scale"]
        found.append(
            Goal(
                "memory per pair, response-time ring full",
                scale["bytes_per_pair_ring_full"] / 1024,
                2,
                " KB",
            )
        )
    if "import" in results:
        spread = results["import"]["importtime_cumulative_ms"]
        found.append(Goal("import failover (-X importtime)", spread.median, 100, " ms", spread))
    return found


# -- reporting --------------------------------------------------------------------------------


def _ns(spread: Spread) -> str:
    return spread.text(0)


def _range(spread: Spread, digits: int) -> str:
    """``median [min–max]``: for few runs, where quartiles mean little."""
    if spread.low == spread.high:
        return f"{spread.median:.{digits}f}"
    return f"{spread.median:.{digits}f} [{spread.low:.{digits}f}–{spread.high:.{digits}f}]"


def _x(spread: Spread) -> str:
    return f"{spread.median:.2f}x [{spread.q1:.2f}–{spread.q3:.2f}]"


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table (also readable as plain text)."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return [line(headers), rule, *(line(row) for row in rows)]


def overhead_table(section: dict[str, Any], floor: str, references: dict[str, str]) -> list[str]:
    """A happy-path section's note and table: per call, overhead over ``floor``, and the
    ratios to each reference (column header -> the reference's name in ``ratios``)."""
    rows = []
    for name, spread in section["per_call_ns"].items():
        compared = section["ratios"].get(name)
        ratios = [_x(compared[ref]) if compared else "" for ref in references.values()]
        rows.append([name, _ns(spread), _ns(section["overhead_ns"][name]), *ratios])
    return [
        f"Thread CPU ns per call, median [IQR] of {section['rounds']} interleaved rounds; "
        f"overhead = per call minus {floor}; ratios compare overheads round by round.",
        "",
        *table(["variant", "ns/call", "overhead ns", *references], rows),
    ]


def render(results: dict[str, Any], settings: Settings, found: list[Goal]) -> list[str]:
    out: list[str] = []
    if found:
        out += ["### Goals", ""]
        out += [
            *table(
                ["goal", "measured", "limit", ""],
                [
                    [
                        goal.name,
                        f"{goal.measured:.2f}{goal.unit}",
                        f"<= {goal.limit:g}{goal.unit}",
                        "met" if goal.met else "**missed**",
                    ]
                    for goal in found
                ],
            ),
            "",
        ]
    if "happy" in results:
        for backend, happy in results["happy"].items():
            out += [f"### Happy path, {backend}", ""]
            out += overhead_table(
                happy,
                "the bare await",
                {
                    "vs calling()": "pybreaker calling()",
                    "vs tenacity": "tenacity @retry, 1 attempt",
                },
            )
            shares = ", ".join(
                f"{label.split(',')[0]} {spread.median * 100:.0f}% "
                f"[{spread.q1 * 100:.0f}–{spread.q3 * 100:.0f}%]"
                for label, spread in happy["sdk_own_share"].items()
            )
            out += [
                "",
                "With the SDK, failover's own share on top of what the same spans and metrics "
                f"cost when written by hand: {shares}.",
                "",
            ]
            added = happy.get("failure_rate_added_ns")
            if added is not None:
                out += [
                    "A failure-rate breaker (`failure_rate_threshold=0.5`) adds "
                    f"{_ns(added)} ns per successful call (telemetry off).",
                    "",
                ]
    sync = results.get("sync")
    if sync is not None:
        out += ["### Happy path, synchronous", ""]
        out += [*overhead_table(sync, "the bare call", {"vs call()": "pybreaker call()"}), ""]
    if "skip" in results:
        out += ["### Skip cost: open platforms before the one that answers", ""]
        out.append(
            "`with_fallback` (OTel API, no SDK) with the first N platforms isolated; per open "
            "platform = (N open − 1 open) / (N − 1), round by round, thread CPU ns. With none "
            "open a call takes the fast path (no call record, no walk); what the first open "
            "platform costs, leaving that path included, is the first skip below."
        )
        out.append("")
        rows = []
        for backend, skip in results["skip"].items():
            for name, spread in skip["per_call_ns"].items():
                count = int(name.split()[0])
                per = skip["per_open_platform_ns"].get(count)
                rows.append([backend, name, _ns(spread), _ns(per) if per else ""])
        out += [*table(["backend", "case", "ns/call", "ns per open platform"], rows), ""]
        firsts = [
            f"{backend} {_ns(skip['first_skip_ns'])}"
            for backend, skip in results["skip"].items()
            if skip.get("first_skip_ns") is not None
        ]
        if firsts:
            out += [f"First skip (1 open − 0 open): {', '.join(firsts)} ns.", ""]
    if "failure" in results:
        out += ["### Failure path: the first platform raises a transient error", ""]
        out.append("The second platform answers. Thread CPU ns per call.")
        out.append("")
        rows = [
            [backend, name, _ns(spread)]
            for backend, failure in results["failure"].items()
            for name, spread in failure["per_call_ns"].items()
        ]
        out += [*table(["backend", "variant", "ns/call"], rows), ""]
    if "throughput" in results:
        first = next(iter(results["throughput"].values()))
        out += [
            f"### Throughput: {first['concurrency']:,} concurrent calls, "
            f"{first['latency_s'] * 1000:g} ms simulated latency",
            "",
            "Wall and process CPU time of the whole burst divided by the number of calls "
            f"(median [IQR] of {first['repeats']} bursts): the event loop's cost per call.",
            "",
        ]
        rows = []
        for backend, burst in results["throughput"].items():
            base_cpu = burst["cpu_ns_per_call"]["bare await"].median
            for name, spread in burst["wall_ns_per_call"].items():
                cpu = burst["cpu_ns_per_call"][name]
                rows.append([backend, name, _ns(spread), _ns(cpu), f"{cpu.median - base_cpu:+.0f}"])
        out += [
            *table(["backend", "variant", "wall ns/call", "CPU ns/call", "CPU vs bare"], rows),
            "",
        ]
    if "blast" in results:
        error_from, hang_from, end = settings.blast_phases
        out += [
            "### Outage blast radius",
            "",
            f"{settings.blast_callers} concurrent callers calling in a loop for {end:g} s; "
            "each call takes 10 ms. The primary answers, then from "
            f"{error_from:g} s fails with a 503 after 10 ms, then from {hang_from:g} s hangs; "
            "attempt timeout 100 ms, breakers open after 3 failures for 300 ms. Hits = "
            "attempts that reached the dead primary; latency lost = the time those attempts "
            "cost their callers, summed. p50/p99 over calls made during the outage. Median "
            f"[min–max] of {settings.blast_repeats} outages each.",
            "",
        ]
        rows = []
        for backend, blast in results["blast"].items():
            for name, item in blast.items():
                rows.append(
                    [
                        backend,
                        name,
                        _range(item["hits_on_errors"], 0),
                        _range(item["hits_on_hangs"], 0),
                        _range(item["latency_lost_s"], 2),
                        _range(item["calls_during_outage"], 0),
                        _range(item["p50_ms"], 1),
                        _range(item["p99_ms"], 1),
                    ]
                )
        headers = ["backend", "approach", "hits (errors)", "hits (hangs)", "latency lost s"]
        headers += ["calls", "p50 ms", "p99 ms"]
        out += [*table(headers, rows), ""]
    if "scale" in results:
        scale = results["scale"]
        out += [
            f"### Scale: {scale['pairs']:,} pairs",
            "",
            f"Building the manager took {scale['build_seconds']:.2f} s. Memory per pair "
            f"(tracemalloc): {scale['bytes_per_pair_fresh']:.0f} bytes fresh, "
            f"{scale['bytes_per_pair_ring_full']:.0f} bytes once its response-time ring is "
            f"full ({scale['ring_fill_calls']} recorded calls).",
            "",
        ]
        rows = [[name, _ns(spread)] for name, spread in scale["per_call_ns"].items()]
        out += [*table(["case (asyncio)", "ns/call"], rows), ""]
    if "import" in results:
        imported = results["import"]
        out += [
            "### Import time",
            "",
            f"`python -X importtime -c 'import failover'`, cumulative: "
            f"{imported['importtime_cumulative_ms'].text(1, ' ms')}; whole process "
            f"{imported['process_ms'].text(1, ' ms')}, against "
            f"{imported['dependencies_only_ms'].text(1, ' ms')} for a process importing only "
            "the core dependencies (anyio, pybreaker, tenacity, the OpenTelemetry API) and "
            f"{imported['empty_interpreter_ms'].text(1, ' ms')} for an empty interpreter "
            f"({imported['repeats']} runs). Measured from cached bytecode, as an installed "
            "package imports; the first run, which compiled failover's modules, took "
            f"{_ms_or_dash(imported.get('first_run_compiling_ms'))}.",
            "",
        ]
    return out


def _ms_or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def markdown(results: dict[str, Any], settings: Settings, found: list[Goal]) -> str:
    info = results["machine"]
    libraries = ", ".join(f"{name} {version}" for name, version in results["versions"].items())
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`benchmarks/run.py`) on {results['date']}.",
        "",
        f"- Machine: {info['cpu']}, {info['cpus']} CPUs, {info['platform']}; load average "
        f"at start {info['load_average_at_start']} (a shared, noisy VM).",
        f"- Python {info['python']} ({info['implementation']}); {libraries}.",
        "- Per-call figures are the thread's CPU time (`time.thread_time_ns`) per call, median "
        "[interquartile range] over interleaved rounds, the order rotating each round. "
        "Ratios are computed round by round from the same rounds, then summarised the same "
        "way: absolute times drift on this machine, ratios hold. Raw figures with min–max: "
        "`benchmarks/results.json`.",
        "",
        "## Results",
        "",
        *render(results, settings, found),
    ]
    for section, error in results.get("errors", {}).items():
        lines += [f"**The {section} case failed in this run:** `{error}`", ""]
    if "profile" in results:
        lines += [
            "## Where the time goes",
            "",
            "cProfile of `with_fallback` on the happy path (OTel API, no SDK), "
            f"{settings.profile_calls:,} calls, by own time. cProfile inflates small "
            "functions; read it for where the calls go, not for absolute times.",
            "",
            "```",
            results["profile"],
            "```",
            "",
        ]
    for notes in (ENGINE_MD, OPTIMISATIONS_MD, STANDALONE_MD):
        if notes.exists():
            text = notes.read_text(encoding="utf-8").rstrip()
            lines += [text.split("-->", 1)[1].lstrip() if text.startswith("<!--") else text, ""]
    return "\n".join(lines).rstrip() + "\n"


def jsonable(value: Any) -> Any:
    if isinstance(value, Spread):
        return value.as_dict()
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated cases: {', '.join(SECTIONS)}"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md/json")
    args = parser.parse_args()
    sections = tuple(part.strip() for part in args.only.split(",") if part.strip())
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}; known: {', '.join(SECTIONS)}")
    settings = Settings.quick() if args.quick else Settings.full()
    # Isolating platforms and the outage log warnings by design; they are not the point here.
    logging.getLogger("failover").setLevel(logging.ERROR)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": versions(LIBRARIES),
        "settings": settings.__dict__,
        "quick": args.quick,
    }
    results.update(run(settings, sections))
    found = goals(results)
    results["goals"] = [
        {"goal": goal.name, "measured": goal.measured, "limit": goal.limit, "unit": goal.unit,
         "met": goal.met, "spread": goal.spread}
        for goal in found
    ]  # fmt: skip
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    print(f"failover {failover.__version__}, Python {results['machine']['python']}")
    print("\n".join(render(results, settings, [])))
    print("Goals:")
    for goal in found:
        print("  " + goal.line())
    for section, error in results.get("errors", {}).items():
        print(f"  FAILED {section}: {error}")
    print(f"({results['total_seconds']:.0f} s: {results['seconds']})")
    if not args.no_write:
        RESULTS_JSON.write_text(json.dumps(jsonable(results), indent=1) + "\n", encoding="utf-8")
        RESULTS_MD.write_text(markdown(results, settings, found), encoding="utf-8")
        print(f"wrote {RESULTS_MD.relative_to(ROOT)} and {RESULTS_JSON.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
