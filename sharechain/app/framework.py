"""The application framework: modules, messages, fees and deterministic execution.

Theory of operation
-------------------
An :class:`App` is a fixed list of :class:`Module` s. Each module registers message types
(``"bank/send"`` → record class, handler, cost), read-only queries, genesis, optional
begin/end-block hooks and named invariants. Executing a block is a pure function of the
committed state and the block: no wall clock (``ctx.time_ms`` is the block time), no
randomness, no floats, sets sorted before iteration.

A transaction runs in its own overlay above the block's. The *ante* step checks expiry,
nonce and fee, takes the fee from the sender and advances the nonce; the messages run next.
If any message raises :class:`ShareChainError`, the overlay is rolled back to what the ante
step left (the message writes and events revert) but the ante writes stay: the fee is
charged and the nonce advances. A transaction whose ante step fails changes nothing and is
recorded with its error code. (The rollback is an overlay savepoint: a copy of the few
ante writes, which costs less than a second child overlay per transaction.)

Fees: ``required_fee = (TX_BASE_COST + Σ message cost) × fee_per_cost_unit``. The fees a
block's transactions pay add up on the block context (``Context.fees``) and reach the fee
collector account in one write, before the end-block hooks (``App.pay_fees``): one balance
update per block instead of one per transaction. Nothing reads the collector's balance
between two transactions (it has no key, so no transaction spends from it), so every block
ends in the same state as with a payment per transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sharechain.app.state import Overlay, Readable, prefix_end
from sharechain.chain.types import Tx
from sharechain.crypto import sha256
from sharechain.encoding import decode_trusted, encode, from_obj, record_from_state, to_obj
from sharechain.errors import DecodeError, ShareChainError, invariant
from sharechain.sigverify import VerifiedSignatures

TX_BASE_COST = 10
# Event budgets. A transaction may emit this many per message it carries; block hooks share
# one block-level budget, far above what the modules' bounded sweeps can produce, so a busy
# block never fails its end-block (which would halt every node on the same block).
EVENTS_PER_MSG_MAX = 256
EVENTS_PER_BLOCK_HOOKS_MAX = 100_000


def module_address(name: str) -> bytes:
    """The address of a module-owned account (fee collector, reward pool, ...)."""
    return sha256(b"sharechain/module:" + name.encode())[:20]


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    attrs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TxResult:
    code: str            # "" on success, else a stable error code
    message: str
    fee: int
    events: tuple[Event, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code == ""


class Context:
    """What a handler or hook sees: state, block facts, the sender, and an event sink."""

    __slots__ = ("state", "chain_id", "height", "time_ms", "proposer", "sender", "tx_hash",
                 "events", "events_max", "app", "prev_hash", "fees")

    def __init__(self, state: Overlay, chain_id: str, height: int, time_ms: int,
                 proposer: bytes, app: "App") -> None:
        self.state = state
        self.chain_id = chain_id
        self.height = height
        self.time_ms = time_ms
        self.proposer = proposer
        self.sender = b""
        self.tx_hash = b""
        self.events: list[Event] = []
        self.events_max = EVENTS_PER_BLOCK_HOOKS_MAX
        self.app = app
        # The previous block's header hash (b"" at genesis and where no block is executed);
        # set by the node. arbitration seeds its panel draws from it.
        self.prev_hash = b""
        # Block context only: fees taken from this block's senders, not yet paid to the fee
        # collector (App.end_block pays them).
        self.fees = 0

    # State access; values are canonical CBOR of plain data or records.
    def get(self, key: bytes) -> bytes | None:
        return self.state.get(key)

    def get_obj(self, key: bytes) -> Any:
        raw = self.state.get(key)
        return None if raw is None else decode_trusted(raw)

    def get_record(self, cls: type, key: bytes) -> Any:
        raw = self.state.get(key)
        return None if raw is None else record_from_state(cls, raw)

    def set_obj(self, key: bytes, obj: Any) -> None:
        self.state.set(key, encode(obj))

    def set_record(self, key: bytes, record: Any) -> None:
        self.state.set(key, encode(to_obj(record)))

    def delete(self, key: bytes) -> None:
        self.state.delete(key)

    def has(self, key: bytes) -> bool:
        return self.state.get(key) is not None

    def iter_prefix(self, prefix: bytes) -> Iterable[tuple[bytes, bytes]]:
        return self.state.iter_range(prefix, prefix_end(prefix))

    def iter_range(self, start: bytes, end: bytes) -> Iterable[tuple[bytes, bytes]]:
        return self.state.iter_range(start, end)

    def verify_signature(self, pubkey: bytes, message: bytes, signature: bytes) -> bool:
        """Ed25519 check for signatures carried inside messages (device reports, key
        bindings). A signature the node already verified at admission is not checked again;
        the verdict is the same either way, so execution stays deterministic."""
        return self.app.verified.check(pubkey, message, signature)

    def emit(self, type_: str, **attrs: Any) -> None:
        if len(self.events) >= self.events_max:
            raise ShareChainError("too_many_events", "too many events emitted")
        self.events.append(Event(type_, attrs))

    def branch(self) -> "Context":
        """A child whose writes and events count only once :meth:`merge` takes them."""
        child = Context(Overlay(self.state), self.chain_id, self.height, self.time_ms,
                        self.proposer, self.app)
        child.sender = self.sender
        child.tx_hash = self.tx_hash
        child.prev_hash = self.prev_hash
        child.events_max = self.events_max - len(self.events)  # it spends our budget
        return child

    def merge(self, child: "Context") -> None:
        """Keep a successful child's writes and events."""
        child.state.merge_into_parent()
        self.events.extend(child.events)


Handler = Callable[[Context, Any], None]
Query = Callable[[Readable, dict[str, str]], Any]
Hook = Callable[[Context], None]
InvariantCheck = Callable[[Readable], str | None]


@dataclass(frozen=True)
class MsgSpec:
    type: str
    cls: type
    handler: Handler
    cost: int


@dataclass
class Module:
    name: str
    msgs: list[MsgSpec] = field(default_factory=list)
    queries: dict[str, Query] = field(default_factory=dict)
    init_genesis: Callable[[Context, dict[str, Any]], None] | None = None
    begin_block: Hook | None = None
    end_block: Hook | None = None
    invariants: dict[str, InvariantCheck] = field(default_factory=dict)
    # Signatures a message carries besides the tx's own, as (public key, signed bytes,
    # signature), found with the committed state: the mempool verifies them in its worker
    # processes at admission, so block execution finds the verdict in App.verified.
    # Called as signatures(state, chain_id, msg) for each message of this module.
    signatures: Callable[[Readable, str, Any], list[tuple[bytes, bytes, bytes]]] | None = None


class App:
    """The deterministic state machine: modules + ante rules."""

    def __init__(self, modules: list[Module], chain_id: str) -> None:
        self.chain_id = chain_id
        self.modules = modules
        self.by_name = {m.name: m for m in modules}
        self.msg_specs: dict[str, MsgSpec] = {}
        self.verified = VerifiedSignatures()
        # Pays a block's collected fees (Context.fees) to the fee collector; set by the
        # builder, which knows the bank.
        self.pay_fees: Callable[[Context, int], None] | None = None
        self._signature_hooks: dict[str, Callable[[Readable, str, Any], list[Any]]] = {
            spec.type: m.signatures for m in modules if m.signatures for spec in m.msgs}
        self.has_embedded_signatures = bool(self._signature_hooks)
        for m in modules:
            for spec in m.msgs:
                if spec.type in self.msg_specs:
                    raise ValueError(f"message type {spec.type} registered twice")
                self.msg_specs[spec.type] = spec

    # ---------------------------------------------------------- checks shared by mempool
    def decode_msgs(self, tx: Tx) -> None:
        """Turn the tx's (type, body) pairs into typed records, or raise."""
        if tx.msgs:
            return
        out = []
        for i, item in enumerate(tx.body.msgs):
            mtype, body = item
            spec = self.msg_specs.get(mtype)
            if spec is None:
                raise ShareChainError("unknown_msg_type", f"unknown message type {mtype!r}")
            try:
                out.append(from_obj(spec.cls, body, f"msgs[{i}]"))
            except DecodeError as exc:
                raise ShareChainError(exc.code if exc.code != "malformed" else "invalid_msg",
                                      exc.message) from None
        tx.msgs = tuple(out)

    def embedded_signatures(self, state: Readable, tx: Tx) -> list[tuple[bytes, bytes, bytes]]:
        """Signatures inside the messages of a decoded tx (see ``Module.signatures``)."""
        hooks = self._signature_hooks
        if not hooks:
            return []
        out: list[tuple[bytes, bytes, bytes]] = []
        for (mtype, _), msg in zip(tx.body.msgs, tx.msgs):
            hook = hooks.get(mtype)
            if hook is not None:
                out.extend(hook(state, self.chain_id, msg))
        return out

    def required_fee(self, tx: Tx, fee_per_cost_unit: int) -> int:
        cost = TX_BASE_COST
        for mtype, _ in tx.body.msgs:
            cost += self.msg_specs[mtype].cost
        return cost * fee_per_cost_unit

    def stateless_check(self, tx: Tx) -> None:
        if tx.body.chain_id != self.chain_id:
            raise ShareChainError("wrong_chain_id",
                                  f"tx is for chain {tx.body.chain_id!r}, this is {self.chain_id!r}")
        self.decode_msgs(tx)

    # ---------------------------------------------------------- genesis
    def init_genesis(self, ctx: Context, app_state: dict[str, Any]) -> None:
        unknown = set(app_state) - set(self.by_name)
        if unknown:
            raise ShareChainError("invalid_genesis", f"unknown module(s) {sorted(unknown)}")
        for m in self.modules:
            if m.init_genesis is not None:
                m.init_genesis(ctx, app_state.get(m.name, {}))

    # ---------------------------------------------------------- block execution
    def begin_block(self, ctx: Context) -> None:
        for m in self.modules:
            if m.begin_block is not None:
                m.begin_block(ctx)

    def end_block(self, ctx: Context) -> None:
        if ctx.fees:
            fees, ctx.fees = ctx.fees, 0
            invariant(self.pay_fees is not None, "fees were taken but nothing pays them out")
            self.pay_fees(ctx, fees)  # type: ignore[misc]
        for m in self.modules:
            if m.end_block is not None:
                m.end_block(ctx)

    def deliver_tx(self, block_ctx: Context, tx: Tx, ante: "Ante") -> TxResult:
        """Execute one tx on top of ``block_ctx``'s overlay; never raises ShareChainError."""
        ctx = block_ctx.branch()
        ctx.events_max = EVENTS_PER_MSG_MAX * len(tx.body.msgs)
        ctx.sender = tx.sender
        ctx.tx_hash = tx.hash
        try:
            self.stateless_check(tx)
            fee = ante.run(ctx, tx)
        except ShareChainError as exc:
            return TxResult(exc.code, exc.message, 0)
        block_ctx.fees += fee
        state = ctx.state
        after_ante = state.savepoint()
        events_after_ante = len(ctx.events)
        try:
            for spec_type, msg in zip((m[0] for m in tx.body.msgs), tx.msgs):
                self.msg_specs[spec_type].handler(ctx, msg)
        except ShareChainError as exc:
            state.roll_back(after_ante)  # the messages' writes and events revert
            del ctx.events[events_after_ante:]
            state.merge_into_parent()
            return TxResult(exc.code, exc.message, fee, tuple(ctx.events))
        state.merge_into_parent()
        return TxResult("", "", fee, tuple(ctx.events))

    def check_invariants(self, view: Readable) -> list[str]:
        broken = []
        for m in self.modules:
            for name, check in m.invariants.items():
                problem = check(view)
                if problem:
                    broken.append(f"{m.name}/{name}: {problem}")
        return broken


class Ante:
    """Expiry, nonce and fee rules every transaction passes before its messages run."""

    def __init__(self, app: App, nonce_get: Callable[[Context, bytes], int],
                 nonce_set: Callable[[Context, bytes, int], None],
                 take_fee: Callable[[Context, bytes, int], None],
                 fee_per_cost_unit: Callable[[Context], int]) -> None:
        """``take_fee`` takes the fee from the payer's balance (``insufficient_funds`` if it
        cannot); the block pays the fees it took to the collector (see ``App.pay_fees``)."""
        self.app = app
        self._nonce_get = nonce_get
        self._nonce_set = nonce_set
        self._take_fee = take_fee
        self._fee_unit = fee_per_cost_unit

    def run(self, ctx: Context, tx: Tx) -> int:
        body = tx.body
        if body.expiry_height and body.expiry_height < ctx.height:
            raise ShareChainError("tx_expired", f"tx expired at height {body.expiry_height}")
        expected = self._nonce_get(ctx, tx.sender)
        if body.nonce != expected:
            code = "nonce_reused" if body.nonce < expected else "nonce_in_future"
            raise ShareChainError(code, f"tx nonce {body.nonce}, account expects {expected}")
        required = self.app.required_fee(tx, self._fee_unit(ctx))
        if body.fee < required:
            raise ShareChainError("fee_too_low", f"fee {body.fee} is below the required {required}")
        self._take_fee(ctx, tx.sender, body.fee)
        self._nonce_set(ctx, tx.sender, expected + 1)
        return body.fee
