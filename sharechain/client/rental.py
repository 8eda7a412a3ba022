"""SDK for the rental and incentive modules: every message and query.

    from sharechain.client import Client
    from sharechain.client.rental import RentalAPI, IncentiveAPI, terms
    c = Client("http://127.0.0.1:8700")
    rentals = RentalAPI(c)
    rentals.offer(carol, bike_id, terms(price_per_unit=10, unit_ms=1_000, deposit=500, ...))
    rid = rentals.reserve(alice, bike_id, start_ms, end_ms)      # the new rental id (hex)
    rentals.start(alice, rid); rentals.start(carol, rid)          # without a device
    rentals.return_(alice, rid); rentals.confirm_return(carol, rid)
    rentals.get(rid)["state"]                                      # "closed"

Writes sign with the given key, wait for the commit and raise
:class:`~sharechain.client.TxFailed` with the chain's stable error code if the tx failed
(``check=False`` returns the result instead). Messages are built as typed records first, so
bad input fails locally with the code the chain would give (``invalid_terms``,
``invalid_window``, ``invalid_msg``). Reads return the node's JSON (addresses as bech32 text,
ids as hex).
"""

from __future__ import annotations

from typing import Any

from sharechain.client.client import Client
from sharechain.client.sharing import Addr, Id, _ModuleAPI, addr, build, hex_id
from sharechain.crypto import PrivateKey, bech32_address, sha256
from sharechain.encoding import to_obj
from sharechain.modules.incentive.types import FundPool
from sharechain.modules.rental.types import (
    ClaimRef,
    FileClaim,
    OfferTerms,
    RentalRef,
    Reserve,
    Terms,
    WithdrawOffer,
)


def terms(**fields: Any) -> Terms:
    """Rental terms, checked locally like the chain checks them (``invalid_terms``)."""
    fields.setdefault("min_credit_tier", 0)
    return build(Terms, **fields)  # type: ignore[no-any-return]


def module_account(name: str) -> bytes:
    """The address of a module-owned account: "reward_pool", "fee_collector"."""
    return sha256(b"sharechain/module:" + name.encode())[:20]


def event_attrs(result: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    """The attributes of every event of ``type_`` in a committed tx result."""
    return [e["attrs"] for e in result["result"]["events"] if e["type"] == type_]


class RentalAPI(_ModuleAPI):
    module = "rental"

    # ------------------------------------------------------------ offers
    def offer(self, key: PrivateKey, asset_id: Id, t: Terms | dict[str, Any],
              **kw: Any) -> dict[str, Any]:
        """Offer (or replace) the terms of an asset; ``key`` is its owner or operator."""
        t = t if isinstance(t, Terms) else terms(**t)
        return self._tx(key, "rental/offer",
                        build(OfferTerms, asset_id=hex_id(asset_id), terms=to_obj(t)), **kw)

    def withdraw_offer(self, key: PrivateKey, asset_id: Id, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "rental/withdraw_offer",
                        build(WithdrawOffer, asset_id=hex_id(asset_id)), **kw)

    # ------------------------------------------------------------ lifecycle
    def reserve_tx(self, key: PrivateKey, asset_id: Id, start_ms: int, end_ms: int,
                   offer_version: int = 0, **kw: Any) -> dict[str, Any]:
        """Reserve and return the whole tx result."""
        return self._tx(key, "rental/reserve", build(
            Reserve, asset_id=hex_id(asset_id), start_ms=start_ms, end_ms=end_ms,
            offer_version=offer_version), **kw)

    def reserve(self, key: PrivateKey, asset_id: Id, start_ms: int, end_ms: int,
                offer_version: int = 0, **kw: Any) -> str:
        """Book [start_ms, end_ms) of the asset; returns the new rental id (hex)."""
        res = self.reserve_tx(key, asset_id, start_ms, end_ms, offer_version, **kw)
        return str(event_attrs(res, "rental_reserved")[0]["rental_id"])

    def _ref(self, key: PrivateKey, mtype: str, rental_id: Id, **kw: Any) -> dict[str, Any]:
        return self._tx(key, mtype, build(RentalRef, rental_id=hex_id(rental_id)), **kw)

    def start(self, key: PrivateKey, rental_id: Id, **kw: Any) -> dict[str, Any]:
        """One party's start signature; the rental starts when consumer and provider signed."""
        return self._ref(key, "rental/start", rental_id, **kw)

    def confirm_asset(self, key: PrivateKey, rental_id: Id, **kw: Any) -> dict[str, Any]:
        """The consumer confirms the asset is as described (counts toward the pledge)."""
        return self._ref(key, "rental/confirm_asset", rental_id, **kw)

    def return_(self, key: PrivateKey, rental_id: Id, **kw: Any) -> dict[str, Any]:
        return self._ref(key, "rental/return", rental_id, **kw)

    def confirm_return(self, key: PrivateKey, rental_id: Id, **kw: Any) -> dict[str, Any]:
        return self._ref(key, "rental/confirm_return", rental_id, **kw)

    def cancel(self, key: PrivateKey, rental_id: Id, **kw: Any) -> dict[str, Any]:
        return self._ref(key, "rental/cancel", rental_id, **kw)

    # ------------------------------------------------------------ claims
    def claim_tx(self, key: PrivateKey, rental_id: Id, amount: int, reason: str,
                 evidence: str = "", **kw: Any) -> dict[str, Any]:
        """File a damage claim on an ended rental and return the whole tx result."""
        return self._tx(key, "rental/claim", build(
            FileClaim, rental_id=hex_id(rental_id), amount=amount, reason=reason,
            evidence=evidence), **kw)

    def claim(self, key: PrivateKey, rental_id: Id, amount: int, reason: str,
              evidence: str = "", **kw: Any) -> str:
        """File a damage claim on an ended rental; returns the claim id (hex)."""
        res = self.claim_tx(key, rental_id, amount, reason, evidence, **kw)
        return str(event_attrs(res, "claim_filed")[0]["claim_id"])

    def accept_claim(self, key: PrivateKey, claim_id: Id, note: str = "",
                     **kw: Any) -> dict[str, Any]:
        return self._tx(key, "rental/accept_claim",
                        build(ClaimRef, claim_id=hex_id(claim_id), note=note), **kw)

    def dispute_claim(self, key: PrivateKey, claim_id: Id, note: str = "",
                      **kw: Any) -> dict[str, Any]:
        return self._tx(key, "rental/dispute_claim",
                        build(ClaimRef, claim_id=hex_id(claim_id), note=note), **kw)

    # ------------------------------------------------------------ reads
    def params(self) -> dict[str, Any]:
        return self._q("params")  # type: ignore[no-any-return]

    def get_offer(self, asset_id: Id) -> dict[str, Any]:
        return self._q("offer", asset_id=hex_id(asset_id).hex())  # type: ignore[no-any-return]

    def quote(self, asset_id: Id, start_ms: int, end_ms: int) -> dict[str, Any]:
        return self._q("quote", asset_id=hex_id(asset_id).hex(),  # type: ignore[no-any-return]
                       start_ms=start_ms, end_ms=end_ms)

    def get(self, rental_id: Id) -> dict[str, Any]:
        return self._q("rental", id=hex_id(rental_id).hex())  # type: ignore[no-any-return]

    def get_claim(self, claim_id: Id) -> dict[str, Any]:
        return self._q("claim", id=hex_id(claim_id).hex())  # type: ignore[no-any-return]

    def claims(self, rental_id: Id) -> list[dict[str, Any]]:
        return self._q("claims", rental_id=hex_id(rental_id).hex())["claims"]  # type: ignore[no-any-return]

    def by_consumer(self, consumer: Addr, limit: int = 100) -> list[dict[str, Any]]:
        return self._q("by_consumer", address=bech32_address(addr(consumer)),  # type: ignore[no-any-return]
                       limit=limit)["rentals"]

    def calendar(self, asset_id: Id, limit: int = 100) -> list[dict[str, Any]]:
        return self._q("calendar", asset_id=hex_id(asset_id).hex(),  # type: ignore[no-any-return]
                       limit=limit)["bookings"]

    def due(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._q("due", limit=limit)["due"]  # type: ignore[no-any-return]


class IncentiveAPI(_ModuleAPI):
    module = "incentive"

    def fund_pool(self, key: PrivateKey, amount: int, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "incentive/fund_pool", build(FundPool, amount=amount), **kw)

    def params(self) -> dict[str, Any]:
        return self._q("params")  # type: ignore[no-any-return]

    def pool(self) -> dict[str, Any]:
        return self._q("pool")  # type: ignore[no-any-return]

    def account(self, address: Addr) -> dict[str, Any]:
        return self._q("account", address=bech32_address(addr(address)))  # type: ignore[no-any-return]


__all__ = ["Client", "IncentiveAPI", "RentalAPI", "event_attrs", "module_account", "terms"]
