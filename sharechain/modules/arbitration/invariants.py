"""arbitration invariants, checked after every block in tests and simulation.

* every arbitrator's recorded stake equals its stake escrow in the bank;
* every arbitrator's open seats equal the voting rounds whose panel it sits on;
* every dispute is in a state of the transition table; a closed dispute holds no bond; an
  open round holds exactly its bonds (the opener's, and the respondent's once posted);
* the deadline index holds exactly one entry per dispute with a pending time deadline.
"""

from __future__ import annotations

from collections.abc import Callable

from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import decode_trusted, from_obj
from sharechain.modules.arbitration import keys
from sharechain.modules.arbitration.states import (
    APPEALABLE,
    AWAITING_PANEL,
    AWAITING_RESPONSE,
    CLOSED,
    STATES,
    VOTING,
)
from sharechain.modules.arbitration.types import Arbitrator, Dispute


def _escrow(state: Readable, escrow_id: bytes) -> int:
    from sharechain.modules.bank.keys import escrow_key

    raw = state.get(escrow_key(escrow_id))
    return 0 if raw is None else int(decode_trusted(raw))


def _disputes(state: Readable) -> list[Dispute]:
    p = keys.DISPUTE_PREFIX
    return [from_obj(Dispute, decode_trusted(v)) for _, v in state.iter_range(p, prefix_end(p))]


def stakes_match_escrow(state: Readable) -> str | None:
    p = keys.ARBITRATOR_PREFIX
    for _, v in state.iter_range(p, prefix_end(p)):
        a = from_obj(Arbitrator, decode_trusted(v))
        held = _escrow(state, keys.stake_escrow(a.address))
        if held != a.stake:
            return f"arbitrator {a.address.hex()} records stake {a.stake}, escrow holds {held}"
    return None


def seats_match_panels(state: Readable) -> str | None:
    seats: dict[bytes, int] = {}
    for d in _disputes(state):
        if d.state == VOTING:
            for arb in d.current.panel:
                seats[arb] = seats.get(arb, 0) + 1
    p = keys.ARBITRATOR_PREFIX
    for _, v in state.iter_range(p, prefix_end(p)):
        a = from_obj(Arbitrator, decode_trusted(v))
        if a.seats != seats.get(a.address, 0):
            return f"arbitrator {a.address.hex()} has {a.seats} seats, sits on " \
                   f"{seats.get(a.address, 0)} panels"
    return None


def disputes_hold_their_bonds(state: Readable) -> str | None:
    for d in _disputes(state):
        if d.state not in STATES:
            return f"dispute {d.id.hex()} is in unknown state {d.state!r}"
        for rd in d.rounds:
            live = d.state in (AWAITING_RESPONSE, AWAITING_PANEL, VOTING) and rd.index == d.round
            want = (rd.bond if live else 0, rd.bond if live and rd.responded else 0)
            have = (_escrow(state, keys.bond_escrow(d.id, rd.index, 0)),
                    _escrow(state, keys.bond_escrow(d.id, rd.index, 1)))
            if have != want:
                return f"dispute {d.id.hex()} round {rd.index} holds bonds {have}, not {want}"
        if d.state == CLOSED and not d.outcome:
            return f"closed dispute {d.id.hex()} has no outcome"
        if d.state == APPEALABLE and not d.current.outcome:
            return f"appealable dispute {d.id.hex()} has no first ruling"
    return None


def deadlines_indexed(state: Readable) -> str | None:
    want = {keys.due_key(d.due_ms, d.id) for d in _disputes(state) if d.due_ms}
    p = keys.DUE_PREFIX
    have = {k for k, _ in state.iter_range(p, prefix_end(p))}
    if want != have:
        return f"deadline index differs: {len(want - have)} missing, {len(have - want)} extra"
    return None


INVARIANTS: dict[str, Callable[[Readable], str | None]] = {
    "stakes_match_escrow": stakes_match_escrow,
    "seats_match_panels": seats_match_panels,
    "disputes_hold_their_bonds": disputes_hold_their_bonds,
    "deadlines_indexed": deadlines_indexed,
}
