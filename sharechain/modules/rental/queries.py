"""rental queries (``GET /v1/query/rental/<name>?...``); ids are hex, addresses share1….

  params                                  module parameters
  offer        asset_id                   current terms of an asset
  quote        asset_id start_ms end_ms   what a reservation would lock (before any credit
                                          multiplier): prepaid fee and deposit
  rental       id                         one rental
  claim        id                         one damage claim
  claims       rental_id                  the claims of a rental
  by_consumer  address [limit]            a consumer's rentals, oldest first
  calendar     asset_id [limit]           bookings of an asset ordered by reserved end
  due          [limit]                    the next deadlines of the expiry sweep (with
                                          the failed attempts of an item being retried)
"""

from __future__ import annotations

from typing import Any

from sharechain.app.framework import Query
from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import decode_trusted as decode  # values this node stored
from sharechain.encoding import to_obj
from sharechain.errors import ShareChainError
from sharechain.modules.identity.common import q_address, q_hex, q_int, q_limit
from sharechain.modules.rental import keys, settlement
from sharechain.modules.rental.keeper import RentalKeeper
from sharechain.modules.rental.types import CLAIM_ID_BYTES, RENTAL_ID_BYTES

DUE_KIND_NAMES = {keys.DUE_EXPIRE: "expire", keys.DUE_DEFAULT: "default",
                  keys.DUE_RETURN: "return_confirm", keys.DUE_CLOSE: "claim_window_close",
                  keys.DUE_CLAIM: "claim_timeout"}


def _not_found(what: str) -> ShareChainError:
    return ShareChainError("not_found", f"no {what}")


def make_queries(k: RentalKeeper) -> dict[str, Query]:
    def params(state: Readable, q: dict[str, str]) -> Any:
        return to_obj(k.params(state))

    def offer(state: Readable, q: dict[str, str]) -> Any:
        o = k.offer(state, q_hex(q, "asset_id"))
        if o is None:
            raise _not_found("offer for this asset")
        return to_obj(o)

    def quote(state: Readable, q: dict[str, str]) -> Any:
        asset_id = q_hex(q, "asset_id")
        o = k.offer(state, asset_id)
        if o is None:
            raise _not_found("offer for this asset")
        start, end = q_int(q, "start_ms"), q_int(q, "end_ms")
        t = o.terms
        prepaid = settlement.usage_units(end - start, t.unit_ms) * t.price_per_unit
        return {"asset_id": asset_id, "offer_version": o.version, "prepaid": prepaid,
                "deposit": t.deposit, "total": prepaid + t.deposit,
                "duration_ok": t.min_duration_ms <= end - start <= t.max_duration_ms}

    def rental(state: Readable, q: dict[str, str]) -> Any:
        r = k.rental(state, q_hex(q, "id", RENTAL_ID_BYTES))
        if r is None:
            raise _not_found("rental with this id")
        return to_obj(r)

    def claim(state: Readable, q: dict[str, str]) -> Any:
        c = k.claim(state, q_hex(q, "id", CLAIM_ID_BYTES))
        if c is None:
            raise _not_found("claim with this id")
        return to_obj(c)

    def claims(state: Readable, q: dict[str, str]) -> Any:
        prefix = keys.CLAIM_PREFIX + q_hex(q, "rental_id", RENTAL_ID_BYTES)
        return {"claims": [decode(v) for _, v in state.iter_range(prefix, prefix_end(prefix))]}

    def by_consumer(state: Readable, q: dict[str, str]) -> Any:
        prefix = keys.CONSUMER_PREFIX + q_address(q, "address")
        out = []
        for key, _ in state.iter_range(prefix, prefix_end(prefix)):
            r = k.rental(state, key[len(prefix):])
            if r is not None:
                out.append(to_obj(r))
            if len(out) >= q_limit(q):
                break
        return {"rentals": out}

    def calendar(state: Readable, q: dict[str, str]) -> Any:
        prefix = keys.booking_prefix(q_hex(q, "asset_id"))
        limit = q_limit(q)
        out = []
        for key, v in state.iter_range(prefix, prefix_end(prefix)):
            tail = key[len(prefix):]
            out.append({"rental_id": tail[8:], "start_ms": decode(v),
                        "end_ms": int.from_bytes(tail[:8], "big")})
            if len(out) >= limit:
                break
        return {"bookings": out}

    def due(state: Readable, q: dict[str, str]) -> Any:
        limit = q_limit(q)
        out = []
        for key, v in state.iter_range(keys.DEADLINE_PREFIX, prefix_end(keys.DEADLINE_PREFIX)):
            due_ms, kind, item_id = keys.parse_deadline(key)
            # attempts: how many times the sweep already failed to run this item (retries)
            out.append({"due_ms": due_ms, "kind": DUE_KIND_NAMES.get(kind, str(kind)),
                        "id": item_id, "attempts": int(decode(v)) if v else 0})
            if len(out) >= limit:
                break
        return {"due": out}

    return {"params": params, "offer": offer, "quote": quote, "rental": rental,
            "claim": claim, "claims": claims, "by_consumer": by_consumer,
            "calendar": calendar, "due": due}
