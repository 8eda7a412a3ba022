"""credit queries (GET /v1/query/credit/<name>?…); every one is public.

``at_ms`` (optional, decimal) scores as of that block time. Without it the query scores at
the block time of the last write to credit state (``credit/clock``), which lags the chain
when nothing credit-related happened for a while; the SDK passes the latest block time.
"""

from __future__ import annotations

from typing import Any

from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import decode_trusted, from_obj, to_obj
from sharechain.errors import ShareChainError
from sharechain.modules.credit import keys
from sharechain.modules.credit.keeper import CreditKeeper
from sharechain.modules.credit.types import BlacklistEntry
from sharechain.modules.identity.common import q_address, q_int, q_limit

EXPLAIN_LIMIT_DEFAULT = 5


def make_queries(k: CreditKeeper) -> dict[str, Any]:
    def _at(state: Readable, q: dict[str, str]) -> int:
        return q_int(q, "at_ms", k.clock(state))

    def score(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """score?address=share1…[&at_ms=] → score, parts, tier and what the tier allows."""
        addr = q_address(q, "address")
        return to_obj(k.score(state, addr, _at(state, q)))  # type: ignore[no-any-return]

    def explain(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """explain?address=…[&limit=5][&at_ms=] → the score and the events that moved it
        most (by decayed effect), the carried sum of folded events and the bureau reports."""
        addr = q_address(q, "address")
        limit = q_int(q, "limit", EXPLAIN_LIMIT_DEFAULT, 1, 64)
        return k.explain(state, addr, _at(state, q), limit)

    def events(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """events?address=…[&limit=100] → the kept events, oldest first."""
        addr = q_address(q, "address")
        evs = k.events(state, addr)[: q_limit(q)]
        return {"address": addr, "summary": to_obj(k.summary(state, addr)),
                "events": [to_obj(e) for e in evs]}

    def blacklist(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """blacklist?address=… → the subject's entries (active ones flagged);
        blacklist (no address)[&after=<id>][&limit=] → every entry in id order."""
        now = _at(state, q)
        if q.get("address"):
            addr = q_address(q, "address")
            entries = k.entries_of(state, addr)
            active = k.active_entry(state, addr, now)
            return {"address": addr, "blacklisted": active is not None,
                    "entries": [_entry(e, now) for e in entries]}
        limit = q_limit(q)
        start = keys.entry_key(q_int(q, "after", 0) + 1)
        out = []
        for _, raw in state.iter_range(start, prefix_end(keys.ENTRY_PREFIX)):
            out.append(_entry(from_obj(BlacklistEntry, decode_trusted(raw)), now))
            if len(out) >= limit:
                break
        return {"entries": out}

    def entry(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """entry?id=<n> → one blacklist entry with its evidence."""
        e = k.entry(state, q_int(q, "id", None, 1))
        if e is None:
            raise ShareChainError("not_found", "no such blacklist entry")
        return _entry(e, _at(state, q))

    def consents(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """consents?address=… → the subject's consents to bureaus (active ones flagged)."""
        addr = q_address(q, "address")
        now = _at(state, q)
        return {"address": addr, "consents": [dict(to_obj(c), active=now < c.until_ms)
                                              for c in k.consents_of(state, addr)]}

    def reports(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """reports?address=… → bureau reports on the subject (those counted flagged)."""
        addr = q_address(q, "address")
        now = _at(state, q)
        counted = {r.bureau for r in k.valid_reports(state, addr, now)}
        return {"address": addr, "reports": [dict(to_obj(r), counted=r.bureau in counted)
                                             for r in k.reports_of(state, addr)]}

    def params(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """params → weights, half-life, tiers and bureau weighting."""
        return to_obj(k.params(state))  # type: ignore[no-any-return]

    return {"score": score, "explain": explain, "events": events, "blacklist": blacklist,
            "entry": entry, "consents": consents, "reports": reports, "params": params}


def _entry(e: BlacklistEntry, now_ms: int) -> dict[str, Any]:
    return dict(to_obj(e), active=e.active(now_ms))
