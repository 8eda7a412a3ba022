"""A small in-memory chain for rental and incentive tests (an explicit test seam).

:class:`World` runs the real application (auth, bank, identity, assets, iot, rental,
incentive) over a dict instead of LMDB: blocks are executed exactly as the node executes
them (begin block, each tx through the ante and its messages, end block), the block's writes
are applied to the dict, and every registered invariant is checked after every block. Keys
are the deterministic demo keys (``PrivateKey.from_name``); transactions are built unsigned
(signatures are the mempool's business, not the state machine's).

Device reports go through the real iot module: each confirmed asset has a device bound at
genesis (the demo device key of its code), reports are signed by it and relayed by the
``gateway`` account.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

from sharechain.app.builder import build_app
from sharechain.app.framework import Context, TxResult
from sharechain.app.state import Overlay
from sharechain.chain.types import Tx, TxBody
from sharechain.crypto import PrivateKey, cid_of, sha256
from sharechain.encoding import encode, to_obj
from sharechain.errors import InvariantViolation
from sharechain.modules import auth
from sharechain.modules.rental.keeper import RentalKeeper
from sharechain.modules.rental.types import Rental

CHAIN_ID = "rental-test"
GENESIS_TIME_MS = 1_700_000_000_000

# name -> (kind, roles, platform fee bps)
PARTICIPANTS: dict[str, tuple[str, tuple[str, ...], int | None]] = {
    "regulator": ("organisation", ("regulator",), None),
    "arbitrator": ("organisation", ("arbitrator",), None),
    "bikeco": ("organisation", ("platform",), 500),
    "carshare": ("organisation", ("platform",), 800),
    "gateway": ("organisation", ("gateway",), None),
    "carol": ("person", ("provider", "consumer"), None),
    "dave": ("person", ("provider", "consumer"), None),
    "alice": ("person", ("consumer",), None),
    "bob": ("person", ("consumer",), None),
    "erin": ("person", ("consumer",), None),
}
BALANCE = 10_000_000

# code -> (class, owner, operator, confirmed, pledged)
ASSETS: dict[str, tuple[str, str, str, bool, bool]] = {
    "BIKE-0001": ("bike", "carol", "bikeco", True, True),
    "BIKE-0002": ("bike", "carol", "bikeco", True, True),
    "BIKE-0003": ("bike", "dave", "bikeco", True, True),
    "BIKE-0004": ("bike", "carol", "bikeco", True, False),   # not pledged
    "BIKE-0005": ("bike", "carol", "bikeco", False, False),  # not confirmed
    "CAR-0001": ("car", "dave", "carshare", True, True),
}

TERMS = {
    "price_per_unit": 100, "unit_ms": 60_000, "deposit": 5_000,
    "min_duration_ms": 60_000, "max_duration_ms": 4 * 3_600_000,
    "cancel_window_ms": 600_000, "cancel_fee": 200, "late_fee_per_unit": 300,
    "grace_ms": 120_000, "damage_cap": 3_000, "claim_window_ms": 3_600_000,
    "min_credit_tier": 0,
}


def key(name: str) -> PrivateKey:
    return PrivateKey.from_name(name)


def addr(name: str) -> bytes:
    return PrivateKey.from_name(name).address


def device_key(code: str) -> PrivateKey:
    return PrivateKey.from_name(f"device/{code}")


class MemState:
    """Committed state in a dict, with ordered range reads (a Readable)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._sorted: list[bytes] | None = None

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def iter_range(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        if self._sorted is None:
            self._sorted = sorted(self.data)
        ks = self._sorted
        i = bisect.bisect_left(ks, start)
        while i < len(ks) and ks[i] < end:
            yield ks[i], self.data[ks[i]]
            i += 1

    def apply(self, writes: dict[bytes, bytes | None]) -> None:
        for k, v in writes.items():
            if v is None:
                self.data.pop(k, None)
            else:
                self.data[k] = v
        self._sorted = None


def app_state(names: dict[str, int], assets: dict[str, tuple[str, str, str, bool, bool]],
              rental_params: dict[str, int], incentive_params: dict[str, int],
              pool: int) -> dict[str, Any]:
    from sharechain.modules.assets.genesis import DEMO_CLASSES

    participants = []
    for name, (kind, roles, fee) in PARTICIPANTS.items():
        if name in names:
            entry: dict[str, Any] = {"address": key(name).bech32, "kind": kind,
                                     "name": name.capitalize(), "roles": list(roles)}
            if fee is not None:
                entry["fee_bps"] = fee
            participants.append(entry)
    return {
        "auth": {"params": {"fee_per_cost_unit": 1}},
        "bank": {"balances": [{"address": key(n).bech32, "amount": a} for n, a in names.items()]},
        "identity": {"participants": participants},
        "assets": {"classes": [to_obj(c) for c in DEMO_CLASSES], "assets": [
            {"class_name": cls, "code": code, "metadata_cid": cid_of(code.encode()),
             "owner": key(owner).bech32, "operator": key(op).bech32, "confirmed": confirmed,
             "pledged": pledged}
            for code, (cls, owner, op, confirmed, pledged) in assets.items()]},
        "iot": {"devices": [{"pub_key": device_key(code).public_key.hex(), "asset_code": code}
                            for code, (_c, _o, _op, confirmed, _p) in assets.items()
                            if confirmed]},
        "rental": {"params": rental_params},
        "incentive": {"params": incentive_params, "pool": pool},
    }


class World:
    def __init__(self, names: dict[str, int] | None = None,
                 assets: dict[str, tuple[str, str, str, bool, bool]] | None = None,
                 rental_params: dict[str, int] | None = None,
                 incentive_params: dict[str, int] | None = None, pool: int = 1_000_000,
                 time_ms: int = GENESIS_TIME_MS, check_invariants: bool = True) -> None:
        self.app, self.ante, self.keepers = build_app(CHAIN_ID)
        self.rental_keeper: RentalKeeper = self.keepers.extra["rental"]
        self.state = MemState()
        self.time_ms = time_ms
        self.height = 0
        self.check = check_invariants
        self.assets = dict(ASSETS if assets is None else assets)
        self.names = {n: BALANCE for n in PARTICIPANTS} if names is None else dict(names)
        self._pending: list[Tx] = []
        self._nonces: dict[bytes, int] = {}
        self._device_counters: dict[str, int] = {}
        self._tx_seq = 0
        genesis = app_state(self.names, self.assets, rental_params or {},
                            incentive_params or {}, pool)
        ctx = Context(Overlay(self.state), CHAIN_ID, 0, time_ms, b"", self.app)
        self.app.init_genesis(ctx, genesis)
        self.state.apply(ctx.state.writes)
        self.blocks_events: list[Any] = []

    # ------------------------------------------------------------ lookups
    @property
    def bank(self) -> Any:
        return self.keepers.bank

    def asset_id(self, code: str) -> bytes:
        from sharechain.modules.assets.types import asset_id_of

        return asset_id_of(self.assets[code][0], code)

    def balance(self, who: str | bytes) -> int:
        a = addr(who) if isinstance(who, str) else who
        return int(self.bank.balance(self.state, a))

    def supply(self) -> int:
        return int(self.bank.supply(self.state))

    def escrow(self, escrow_id: bytes) -> int:
        from sharechain.modules.rental import bank_escrow_of

        return bank_escrow_of(self.state, escrow_id)

    def rental(self, rental_id: bytes) -> Rental:
        r = self.rental_keeper.rental(self.state, rental_id)
        assert r is not None
        return r

    def query(self, module: str, name: str, **params: str) -> Any:
        return self.app.by_name[module].queries[name](self.state, params)

    # ------------------------------------------------------------ transactions
    def submit(self, who: str, msgs: list[tuple[str, Any]]) -> Tx:
        k = key(who)
        nonce = self._nonces.get(k.address)
        if nonce is None:
            nonce = auth.get_nonce(self.state, k.address)
        plain = tuple((t, to_obj(m)) for t, m in msgs)
        body = TxBody(CHAIN_ID, k.public_key, nonce, 0, 0, plain)
        probe = Tx(raw=b"", hash=b"", body=body, body_bytes=b"", sig=b"", sender=k.address)
        fee = self.app.required_fee(probe, 1) if all(t in self.app.msg_specs
                                                      for t, _ in msgs) else 0
        body = TxBody(CHAIN_ID, k.public_key, nonce, fee, 0, plain)
        self._tx_seq += 1
        tx = Tx(raw=b"", hash=sha256(encode(body) + self._tx_seq.to_bytes(8, "big")), body=body,
                body_bytes=b"", sig=b"", sender=k.address)
        self._pending.append(tx)
        self._nonces[k.address] = nonce + 1
        return tx

    def block(self, advance_ms: int = 1_000) -> list[TxResult]:
        """Execute the pending transactions in one block ``advance_ms`` after the last."""
        self.height += 1
        self.time_ms += advance_ms
        overlay = Overlay(self.state)
        ctx = Context(overlay, CHAIN_ID, self.height, self.time_ms, b"", self.app)
        self.app.begin_block(ctx)
        results = [self.app.deliver_tx(ctx, tx, self.ante) for tx in self._pending]
        self._pending = []
        self.app.end_block(ctx)
        self.blocks_events.append(list(ctx.events))
        if self.check:
            broken = self.app.check_invariants(overlay)
            if broken:
                raise InvariantViolation(f"invariants broken at height {self.height}: {broken}")
        self.state.apply(overlay.writes)
        self._nonces.clear()
        return results

    def do(self, who: str, mtype: str, msg: Any, advance_ms: int = 1_000) -> TxResult:
        """One message in one transaction in one block."""
        self.submit(who, [(mtype, msg)])
        return self.block(advance_ms)[0]

    def in_block(self, fn: Any, advance_ms: int = 1_000) -> list[Any]:
        """Run ``fn(ctx)`` inside the next block as a keeper call from another module would
        (arbitration, say); its writes revert if it raises. Returns the events it emitted."""
        self.height += 1
        self.time_ms += advance_ms
        overlay = Overlay(self.state)
        ctx = Context(overlay, CHAIN_ID, self.height, self.time_ms, b"", self.app)
        child = ctx.branch()
        fn(child)
        child.state.merge_into_parent()
        if self.check:
            broken = self.app.check_invariants(overlay)
            if broken:
                raise InvariantViolation(f"invariants broken at height {self.height}: {broken}")
        self.state.apply(overlay.writes)
        return list(child.events)

    def advance(self, ms: int) -> list[Any]:
        """An empty block ``ms`` later (the end-block sweep runs); returns its block events."""
        self.block(ms)
        return list(self.blocks_events[-1])

    # ------------------------------------------------------------ devices
    def report_msg(self, code: str, kind: str, rental_id: bytes = b"",
                   at_ms: int | None = None, device_code: str | None = None,
                   counter_jump: int = 1, signer: PrivateKey | None = None,
                   **payload: Any) -> tuple[str, Any]:
        """A signed report of the device of asset ``device_code`` (default ``code``).

        ``counter_jump`` > ``counter_gap_max`` makes iot flag it suspect; 0 replays the last
        counter; ``signer`` forges the signature with another key."""
        from sharechain.modules.iot.types import Payload, Report, SignedReport, report_sign_bytes

        at = self.time_ms + 500 if at_ms is None else at_ms
        dcode = device_code or code
        dk = device_key(dcode)
        counter = self._device_counters.get(dcode, 0) + counter_jump
        self._device_counters[dcode] = counter
        if kind in ("unlock", "lock"):
            payload.setdefault("rental_id", rental_id or None)
        rep = Report(dk.address, self.asset_id(dcode), counter, at, kind, Payload(**payload))
        sig = (signer or dk).sign(report_sign_bytes(CHAIN_ID, rep))
        return ("iot/submit_reports", {"reports": [to_obj(SignedReport(rep, sig))]})

    def report(self, code: str, kind: str, rental_id: bytes = b"", advance_ms: int = 1_000,
               **kw: Any) -> TxResult:
        self.submit("gateway", [self.report_msg(code, kind, rental_id, **kw)])
        return self.block(advance_ms)[0]
