"""A readable, deterministic trace of a simulated run.

Lines look like ``  1234ms n2  commit h=5 r=0 #3fa2c1 txs=3 time=1001230``. The trace holds
no wall-clock times and no object ids, and the simulation iterates nothing in hash order,
so one seed gives byte-identical traces in every process. ``level`` "summary" records
faults, commits, round changes, evidence and violations; "full" adds every send, delivery,
drop and timer.
"""

from __future__ import annotations

from collections.abc import Callable

LEVELS = {"off": 0, "summary": 1, "full": 2}


def short(h: bytes) -> str:
    return "#" + h[:3].hex() if h else "nil"


class Trace:
    def __init__(self, level: str = "summary", sink: Callable[[str], None] | None = None,
                 keep: bool = True) -> None:
        self.level = LEVELS[level]
        self.lines: list[str] = []
        self._sink = sink
        self._keep = keep

    @property
    def full(self) -> bool:
        return self.level >= 2

    @property
    def on(self) -> bool:
        return self.level >= 1

    def log(self, now_ms: int, who: str, text: str) -> None:
        line = f"{now_ms:>8}ms {who:<4} {text}"
        if self._keep:
            self.lines.append(line)
        if self._sink is not None:
            self._sink(line)

    def text(self) -> str:
        return "\n".join(self.lines)
