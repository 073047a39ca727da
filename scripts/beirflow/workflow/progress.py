"""Progress lines in long jobs' logs, so that ``tail -f logs/encode_documents/...`` tells a slow job
from a hung one: done and total, rate, elapsed and estimated time left, at least every 5 % of the
work or every 30 s, whichever comes first (checked whenever a piece of work finishes)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("beirflow.workflow.progress")


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class Progress:
    """``progress.advance(n)`` after each piece of work; a line is logged when due and at the end."""

    def __init__(
        self,
        what: str,
        total: int,
        unit: str,
        every_s: float = 30.0,
        every_fraction: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.every_s, self.step = every_s, max(1, int(total * every_fraction))
        self.clock = clock
        self.started = self.last_time = clock()
        self.done = 0
        self.next_count = self.step
        self.lines: list[str] = []
        self._emit(f"{what}: 0/{total:,} {unit}")

    def advance(self, count: int) -> None:
        self.done += count
        now = self.clock()
        if self.done >= self.total or self.done >= self.next_count or now - self.last_time >= self.every_s:
            self._report(now)

    def _report(self, now: float) -> None:
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        left = (self.total - self.done) / rate if rate and rate != float("inf") else 0.0
        share = 100 * self.done / self.total if self.total else 100.0
        self._emit(
            f"{self.what}: {self.done:,}/{self.total:,} {self.unit} ({share:.0f}%), {rate:,.1f} {self.unit}/s, elapsed {_duration(elapsed)}, ETA {_duration(left)}"
        )
        self.last_time = now
        while self.next_count <= self.done:
            self.next_count += self.step

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        log.info(line)
