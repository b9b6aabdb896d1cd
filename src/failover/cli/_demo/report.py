"""How the demo looks: live lines and a progress bar while it runs, a health table at the end.

:class:`RichReporter` draws a progress bar and coloured tables with ``rich`` (the ``cli``
extra) on a terminal; :class:`PlainReporter` writes plain lines anywhere else (a pipe, a CI
log, no ``rich``). Both render the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TextIO

from failover.cli._demo.runner import NOBODY, DemoOptions, DemoResult
from failover.cli._demo.scenarios import Phase, Scenario

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

COLUMNS: Final = (
    "platform",
    "operation",
    "state",
    "requests",
    "fail %",
    "avg ms",
    "p95 ms",
    "cost $",
    "last error",
)
_NUMERIC: Final = frozenset(range(3, 8))
_STATE_WORDS: Final = {
    "credit": "cooling: out of credits",
    "auth": "cooling: key refused",
    "rate_limited": "cooling: rate limited",
    "half_open": "half-open",
}


def health_rows(result: DemoResult) -> Iterator[tuple[str, ...]]:
    """One row per (platform, operation), in priority order, formatted for display."""
    health = result.health
    for operation, names in result.priorities.items():
        for name in names:
            platform = health[name]
            pair = platform["operations"][operation]
            yield (
                name,
                operation,
                _state(platform, pair),
                str(pair["total_requests"]),
                f"{pair['failure_rate'] * 100:.0f}",
                _millis(pair["avg_response_time"]),
                _millis(pair["p95_response_time"]),
                f"{pair['cost']:.4f}",
                pair["last_error_kind"] or "-",
            )


def _state(platform: Mapping[str, Any], pair: Mapping[str, Any]) -> str:
    cooling = platform.get("cooldown_reason") or pair.get("cooldown_reason")
    if cooling:
        return _STATE_WORDS.get(cooling, f"cooling: {cooling}")
    state = str(pair["state"])
    return _STATE_WORDS.get(state, state)


def _pace(options: DemoOptions) -> str:
    rate = f"{options.rate:g} per second, " if options.rate else ""
    return f"{rate}at most {options.concurrency} at a time"


def _millis(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def totals_line(result: DemoResult) -> str:
    served = ", ".join(f"{name} {count}" for name, count in result.by_platform.most_common())
    return (
        f"{result.requests} requests in {result.elapsed:.1f}s: {result.succeeded} succeeded "
        f"({result.fell_back} fell back), {result.failed} failed. "
        f"Served by: {served or 'nobody'}."
    )


def switch_text(operation: str, old: str | None, new: str, why: str, arrow: str) -> str:
    target = "nobody: requests fail" if new == NOBODY else new
    move = f"{old} {arrow} {target}" if old is not None else f"served by {target}"
    return f"{operation}: {move}" + (f"  ({why})" if why else "")


class PlainReporter:
    """Plain lines on ``stream``; ``progress`` adds a line at each quarter of the run."""

    def __init__(self, stream: TextIO, *, progress: bool = True) -> None:
        self.stream = stream
        self.show_progress = progress
        self._next_quarter = 1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stream.flush()

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def started(self, scenario: Scenario, options: DemoOptions, server_url: str) -> None:
        self._line(
            f"failover demo: scenario {scenario.name!r} ({scenario.description}); "
            f"{options.requests} requests, {_pace(options)}; "
            f"fake providers on {server_url}"
        )

    def phase(self, elapsed: float, phase: Phase) -> None:
        self._line(f"[{elapsed:5.1f}s] scenario: {phase.note}")

    def switch(self, elapsed: float, operation: str, old: str | None, new: str, why: str) -> None:
        self._line(f"[{elapsed:5.1f}s] {switch_text(operation, old, new, why, '->')}")

    def note(self, text: str) -> None:
        """Any other line worth showing (a library log line, a tracing notice)."""
        self._line(text)

    def advanced(self, done: int, total: int) -> None:
        if not self.show_progress:
            return
        while self._next_quarter <= 4 and done * 4 >= total * self._next_quarter:
            self._line(f"        {done}/{total} requests done")
            self._next_quarter += 1

    def finished(self, result: DemoResult) -> None:
        rows = [COLUMNS, *health_rows(result)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        self._line("")
        for index, row in enumerate(rows):
            cells = [
                cell.rjust(widths[i]) if i in _NUMERIC else cell.ljust(widths[i])
                for i, cell in enumerate(row)
            ]
            self._line("  ".join(cells).rstrip())
            if index == 0:
                self._line("  ".join("-" * width for width in widths))
        self._line("")
        self._line(totals_line(result))


class RichReporter:
    """A live progress bar with the switches printed above it, then a coloured table."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.progress: Progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]requests"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def started(self, scenario: Scenario, options: DemoOptions, server_url: str) -> None:
        self.console.print(
            f"[bold]failover demo[/]: scenario [cyan]{scenario.name}[/] ({scenario.description})\n"
            f"{options.requests} requests, {_pace(options)}, "
            f"fake providers on {server_url}",
            highlight=False,
        )
        self._task = self.progress.add_task("requests", total=options.requests)

    def phase(self, elapsed: float, phase: Phase) -> None:
        self.console.print(
            f"[dim]{elapsed:5.1f}s[/] [magenta]scenario[/]: {phase.note}", highlight=False
        )

    def switch(self, elapsed: float, operation: str, old: str | None, new: str, why: str) -> None:
        from rich.markup import escape

        colour = "red" if new == NOBODY else "yellow"
        text = escape(switch_text(operation, old, new, why, "→"))
        self.console.print(f"[dim]{elapsed:5.1f}s[/] [{colour}]{text}[/]", highlight=False)

    def note(self, text: str) -> None:
        """Any other line worth showing (a library log line, a tracing notice)."""
        from rich.markup import escape

        self.console.print(f"[dim]{escape(text)}[/]", highlight=False)

    def advanced(self, done: int, total: int) -> None:
        if self._task is not None:
            self.progress.update(self._task, completed=done)

    def finished(self, result: DemoResult) -> None:
        from rich.table import Table

        table = Table(title="Health per platform and operation", title_justify="left")
        for index, name in enumerate(COLUMNS):
            table.add_column(name, justify="right" if index in _NUMERIC else "left")
        for row in health_rows(result):
            state = row[2]
            style = "green" if state == "closed" else "red" if state == "open" else "yellow"
            table.add_row(row[0], row[1], f"[{style}]{state}[/]", *row[3:])
        self.console.print()
        self.console.print(table)
        colour = "green" if result.failed == 0 else "yellow"
        self.console.print(f"[bold {colour}]{totals_line(result)}[/]", highlight=False)
