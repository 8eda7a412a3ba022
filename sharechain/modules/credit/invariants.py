"""credit invariants, checked after every block in tests and simulation.

* every kept event has a known kind and a weight within bounds, and each subject keeps at
  most ``EVENTS_KEPT_MAX`` events, exactly as many as its summary says, numbered below its
  ``next_seq``;
* open-rental counters are positive (a zero counter is deleted);
* every blacklist entry expires after it was added and is indexed under its subject.
"""

from __future__ import annotations

from collections.abc import Callable

from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import decode_trusted, from_obj
from sharechain.modules.credit import keys
from sharechain.modules.credit.types import (
    EVENT_KINDS,
    EVENTS_KEPT_MAX,
    WEIGHT_ABS_MAX,
    BlacklistEntry,
    CreditEvent,
    Summary,
)

ADDR = 20


def _range(state: Readable, prefix: bytes):  # type: ignore[no-untyped-def]
    return state.iter_range(prefix, prefix_end(prefix))


def events_match_summaries(state: Readable) -> str | None:
    counts: dict[bytes, tuple[int, int]] = {}
    for k, raw in _range(state, keys.EVENT_PREFIX):
        e = from_obj(CreditEvent, decode_trusted(raw))
        if e.kind not in EVENT_KINDS or abs(e.weight) > WEIGHT_ABS_MAX:
            return f"event {k.hex()} has kind {e.kind!r} weight {e.weight}"
        n, top = counts.get(e.subject, (0, 0))
        counts[e.subject] = (n + 1, max(top, e.seq))
    seen = set()
    for k, raw in _range(state, keys.SUMMARY_PREFIX):
        addr = k[len(keys.SUMMARY_PREFIX):]
        s = from_obj(Summary, decode_trusted(raw))
        n, top = counts.get(addr, (0, 0))
        if s.kept != n or n > EVENTS_KEPT_MAX or top >= s.next_seq:
            return f"subject {addr.hex()} keeps {n} events, summary says {s.kept}"
        seen.add(addr)
    missing = set(counts) - seen
    return f"events without a summary for {min(missing).hex()}" if missing else None


def open_counters_positive(state: Readable) -> str | None:
    for k, raw in _range(state, keys.OPEN_PREFIX):
        if int(decode_trusted(raw)) <= 0:
            return f"open-rental counter {k.hex()} is not positive"
    return None


def blacklist_consistent(state: Readable) -> str | None:
    for _, raw in _range(state, keys.ENTRY_PREFIX):
        e = from_obj(BlacklistEntry, decode_trusted(raw))
        if e.expires_ms <= e.added_ms:
            return f"blacklist entry {e.id} expires before it was added"
        if state.get(keys.subject_entry_key(e.subject, e.id)) is None:
            return f"blacklist entry {e.id} is not indexed under its subject"
    return None


INVARIANTS: dict[str, Callable[[Readable], str | None]] = {
    "events_match_summaries": events_match_summaries,
    "open_counters_positive": open_counters_positive,
    "blacklist_consistent": blacklist_consistent,
}
