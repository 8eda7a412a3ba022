"""rental invariants, checked after every block in tests and simulation.

* every rental and claim is in a state of the transition tables;
* each rental's bank escrow holds exactly what its state says it should:
  deposit + prepaid while reserved/active/returned, hold + held once ended, held once closed,
  held (0 unless claims pend) after expiry, cancellation or default;
* ``held`` equals the sum of the rental's pending claims;
* the booking calendar lists exactly the reserved/active/returned rentals, its summaries
  count them and bound their ends, and bookings of one asset do not overlap;
* ``rental/u/`` points exactly at the active/returned rentals;
* the deadline index holds exactly one entry per non-terminal rental and per pending claim.

Checks walk all rentals: they are for tests, not for production blocks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from sharechain.app.framework import InvariantCheck
from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import decode, from_obj
from sharechain.modules.rental import keys
from sharechain.modules.rental.codec import decode_rental
from sharechain.modules.rental.states import (
    ACTIVE,
    BOOKED_STATES,
    CLAIM_PENDING_STATES,
    CLAIM_STATES,
    CLOSED,
    ENDED,
    RENTAL_STATES,
    RESERVED,
    RETURNED,
)
from sharechain.modules.rental.types import Claim, Rental

EscrowOf = Callable[[Readable, bytes], int]
_DUE_KIND = {RESERVED: keys.DUE_EXPIRE, ACTIVE: keys.DUE_DEFAULT, RETURNED: keys.DUE_RETURN,
             ENDED: keys.DUE_CLOSE}


def _scan(state: Readable, prefix: bytes) -> list[tuple[bytes, bytes]]:
    return list(state.iter_range(prefix, prefix_end(prefix)))


def _expected_escrow(r: Rental) -> int:
    if r.state in BOOKED_STATES:
        return r.escrow_total
    if r.state == ENDED:
        return r.hold + r.held
    return r.held


def make_invariants(escrow_of: EscrowOf) -> dict[str, InvariantCheck]:
    def ledger(state: Readable) -> str | None:
        rentals = {k[len(keys.RENTAL_PREFIX):]: decode_rental(v)
                   for k, v in _scan(state, keys.RENTAL_PREFIX)}
        pending: dict[bytes, int] = {}
        for _, v in _scan(state, keys.CLAIM_PREFIX):
            c = from_obj(Claim, decode(v))
            if c.state not in CLAIM_STATES:
                return f"claim {c.id.hex()} is in unknown state {c.state!r}"
            if c.state in CLAIM_PENDING_STATES:
                pending[c.rental_id] = pending.get(c.rental_id, 0) + c.amount
        for rid, r in rentals.items():
            if r.state not in RENTAL_STATES:
                return f"rental {rid.hex()} is in unknown state {r.state!r}"
            if r.held != pending.get(rid, 0):
                return f"rental {rid.hex()} holds {r.held} but its claims pend {pending.get(rid, 0)}"
            have = escrow_of(state, keys.escrow_id(rid))
            if have != _expected_escrow(r):
                return (f"rental {rid.hex()} ({r.state}) escrow is {have}, "
                        f"expected {_expected_escrow(r)}")
            if r.state == CLOSED and r.hold:
                return f"closed rental {rid.hex()} still has a hold"
        return None

    def calendar(state: Readable) -> str | None:
        rentals = {k[len(keys.RENTAL_PREFIX):]: decode_rental(v)
                   for k, v in _scan(state, keys.RENTAL_PREFIX)}
        booked = {rid for rid, r in rentals.items() if r.state in BOOKED_STATES}
        seen: set[bytes] = set()
        per_asset: dict[bytes, list[tuple[int, int]]] = {}
        for k, v in _scan(state, keys.BOOKING_PREFIX):
            rid = k[-8:]
            r = rentals.get(rid)
            if r is None or rid not in booked or k != keys.booking_key(r.asset_id, r.end_ms, rid):
                return f"stray booking {k.hex()}"
            seen.add(rid)
            per_asset.setdefault(r.asset_id, []).append((r.start_ms, r.end_ms))
        if seen != booked:
            return f"{len(booked - seen)} booked rental(s) missing from the calendar"
        for asset_id, windows in per_asset.items():
            windows.sort(key=lambda w: w[1])
            for (s1, e1), (s2, _e2) in itertools.pairwise(windows):
                if s2 < e1:
                    return f"overlapping bookings on asset {asset_id.hex()}"
            raw = state.get(keys.booking_summary_key(asset_id))
            if raw is None:
                return f"asset {asset_id.hex()} has bookings but no summary"
            count, latest = decode(raw)
            if count != len(windows) or latest < max(e for _, e in windows):
                return f"booking summary of asset {asset_id.hex()} is wrong"
        summaries = len(_scan(state, keys.BOOKING_SUMMARY_PREFIX))
        if summaries != len(per_asset):
            return "a booking summary outlived its bookings"
        using = {r.id for r in rentals.values() if r.state in (ACTIVE, RETURNED)}
        in_use = set()
        for k, v in _scan(state, keys.IN_USE_PREFIX):
            r = rentals.get(v)
            if r is None or r.id not in using or k != keys.in_use_key(r.asset_id):
                return f"stray in-use entry {k.hex()}"
            in_use.add(v)
        if in_use != using:
            return "an active rental is missing from the in-use index"
        return None

    def deadlines(state: Readable) -> str | None:
        want: set[bytes] = set()
        for k, v in _scan(state, keys.RENTAL_PREFIX):
            r = decode_rental(v)
            kind = _DUE_KIND.get(r.state)
            if kind is not None and not (r.state == ENDED and r.due_ms == 0):
                want.add(keys.deadline_key(r.due_ms, kind, r.id))
        for _, v in _scan(state, keys.CLAIM_PREFIX):
            c = from_obj(Claim, decode(v))
            if c.state in CLAIM_PENDING_STATES:
                want.add(keys.deadline_key(c.timeout_ms, keys.DUE_CLAIM, c.id))
        have = {k for k, _ in _scan(state, keys.DEADLINE_PREFIX)}
        if have != want:
            return (f"deadline index differs: {len(have - want)} stray, "
                    f"{len(want - have)} missing")
        return None

    return {"ledger": ledger, "calendar": calendar, "deadlines": deadlines}
