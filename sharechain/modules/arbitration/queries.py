"""arbitration queries (GET /v1/query/arbitration/<name>?…). Rulings are open: every
dispute, its panels, commitments and (once revealed) votes are public."""

from __future__ import annotations

from typing import Any

from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import decode_trusted, from_obj, to_obj
from sharechain.errors import ShareChainError
from sharechain.modules.arbitration import keys
from sharechain.modules.arbitration.keeper import ArbitrationKeeper
from sharechain.modules.arbitration.states import STATES
from sharechain.modules.arbitration.types import (
    AMOUNT_MAX,
    DISPUTE_ID_BYTES,
    KINDS,
    ROUNDS_MAX,
    Dispute,
)
from sharechain.modules.identity.common import (
    INVALID_QUERY,
    q_address,
    q_hex,
    q_int,
    q_limit,
    q_str,
)


def make_queries(k: ArbitrationKeeper) -> dict[str, Any]:
    def _dispute(state: Readable, q: dict[str, str]) -> Dispute:
        d = k.dispute(state, q_hex(q, "id", DISPUTE_ID_BYTES))
        if d is None:
            raise ShareChainError("not_found", "no such dispute")
        return d

    def _votes(state: Readable, d: Dispute, index: int) -> list[dict[str, Any]]:
        return [to_obj(v) for v in k.votes(state, d.id, index)]

    def dispute(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """dispute?id=<hex> → the dispute, its rounds, evidence and every round's votes."""
        d = _dispute(state, q)
        out: dict[str, Any] = to_obj(d)
        out["votes"] = [_votes(state, d, r.index) for r in d.rounds]
        return out

    def ruling(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """ruling?id=<hex> → the decided rounds with their panels and revealed votes, and
        the final outcome and what executing it did (``final`` false while appealable)."""
        d = _dispute(state, q)
        decided = [r for r in d.rounds if r.outcome]
        if not decided:
            raise ShareChainError("not_found", "this dispute has no ruling yet")
        rounds = []
        for r in decided:
            rounds.append({"index": r.index, "outcome": r.outcome, "by_default": r.by_default,
                           "panel": list(r.panel), "uphold": r.uphold_votes,
                           "reject": r.reject_votes, "fees_paid": r.fees_paid,
                           "slashed": r.slashed, "decided_ms": r.decided_ms,
                           "votes": _votes(state, d, r.index)})
        final = d.state == "closed"
        return {"dispute_id": d.id, "kind": d.kind, "target": d.target, "seq": d.seq,
                "upholder": d.upholder, "rejecter": d.rejecter, "final": final,
                "outcome": d.outcome if final else decided[-1].outcome,
                "appeal_by_ms": d.due_ms if d.state == "appealable" else 0,
                "execution": d.execution, "rounds": rounds}

    def votes(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """votes?id=<hex>[&round=0] → commitments and, once revealed, the votes."""
        d = _dispute(state, q)
        index = q_int(q, "round", d.round, 0, ROUNDS_MAX - 1)
        if index >= len(d.rounds):
            raise ShareChainError("not_found", f"dispute has no round {index}")
        return {"dispute_id": d.id, "round": index, "panel": list(d.rounds[index].panel),
                "votes": _votes(state, d, index)}

    def disputes(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """disputes[?party=share1…][&state=voting][&after=<hex id>][&limit=100] → newest
        last."""
        limit = q_limit(q)
        want = q.get("state") or None
        if want is not None and want not in STATES:
            raise ShareChainError(INVALID_QUERY, f"state must be one of {', '.join(STATES)}")
        after = q_hex(q, "after", DISPUTE_ID_BYTES) if q.get("after") else b""
        if q.get("party"):
            party = q_address(q, "party")
            prefix = keys.PARTY_PREFIX + party
            ids = (kk[len(prefix):] for kk, _ in state.iter_range(
                prefix + after + (b"\x00" if after else b""), prefix_end(prefix)))
            found = (k.dispute(state, i) for i in ids)
        else:
            start = keys.dispute_key(after) + b"\x00" if after else keys.DISPUTE_PREFIX
            found = (from_obj(Dispute, decode_trusted(v)) for _, v in state.iter_range(
                start, prefix_end(keys.DISPUTE_PREFIX)))
        out = []
        for d in found:
            if d is not None and (want is None or d.state == want):
                out.append(to_obj(d))
                if len(out) >= limit:
                    break
        return {"disputes": out}

    def of_target(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """of_target?kind=claim&target=<hex>[&seq=] → the dispute about it (if any)."""
        kind = q_str(q, "kind")
        if kind not in KINDS:
            raise ShareChainError(INVALID_QUERY, f"kind must be one of {', '.join(KINDS)}")
        target = q_hex(q, "target") if q.get("target") else b""
        did = k.dispute_of(state, kind, target, q_int(q, "seq", 0))
        return {"dispute_id": did}

    def arbitrator(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """arbitrator?address=share1… → stake, open seats and record."""
        addr = q_address(q, "address")
        a = k.arbitrator(state, addr)
        if a is None:
            raise ShareChainError("not_found", "this address never staked as an arbitrator")
        return dict(to_obj(a), eligible=addr in k.eligible(state))

    def arbitrators(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """arbitrators[?limit=100] → every arbitrator that ever staked, eligible ones flagged."""
        limit = q_limit(q)
        eligible = set(k.eligible(state))
        out = []
        for a in k.arbitrators(state):
            out.append(dict(to_obj(a), eligible=a.address in eligible))
            if len(out) >= limit:
                break
        return {"arbitrators": out}

    def bond(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """bond?amount=<n>[&round=0] → each side's bond and the panel fee of that round."""
        p = k.params(state)
        amount = q_int(q, "amount", None, 0, AMOUNT_MAX)
        index = q_int(q, "round", 0, 0, ROUNDS_MAX - 1)
        return {"amount": amount, "round": index, "bond": p.bond(amount, index),
                "panel_fee": p.panel_fee(index), "panel_size": p.size_of(index)}

    def params(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """params → panel sizes, windows, fees, bond rates, stake rules."""
        return to_obj(k.params(state))  # type: ignore[no-any-return]

    return {"dispute": dispute, "ruling": ruling, "votes": votes, "disputes": disputes,
            "of_target": of_target, "arbitrator": arbitrator, "arbitrators": arbitrators,
            "bond": bond, "params": params}
