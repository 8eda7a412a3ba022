"""App execution rules, bank escrow, the mempool, and state overlays against a dict model."""

from __future__ import annotations

import tempfile

import lmdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharechain.app.state import CommittedView, Overlay
from sharechain.chain.types import Block, TxBody, sign_tx
from sharechain.consensus.solo import SoloEngine
from sharechain.crypto import PrivateKey, merkle_root, sha256
from sharechain.errors import ShareChainError
from sharechain.mempool import MempoolLimits
from sharechain.modules.bank import FEE_COLLECTOR
from sharechain.node.chain import Chain
from sharechain.node.devnet import demo_genesis, validator_key
from sharechain.node.genesis import parse_genesis

CID = "unit"
alice, bob = PrivateKey.from_name("alice"), PrivateKey.from_name("bob")


def make_chain(limits: MempoolLimits | None = None) -> tuple[Chain, SoloEngine]:
    g = parse_genesis(demo_genesis(CID, [validator_key(0, CID)], genesis_time_ms=1_000))
    ch = Chain(tempfile.mkdtemp(), g, limits, check_invariants=True)
    return ch, SoloEngine(ch, validator_key(0, CID), 100)


def tx(key, nonce, msgs, fee=100, expiry=0):
    return sign_tx(TxBody(CID, key.public_key, nonce, fee, expiry, tuple(msgs)), key.sign)


def send(to, amount):
    return ("bank/send", {"to": to.address, "amount": amount})


def bal(ch, key_or_addr):
    addr = key_or_addr if isinstance(key_or_addr, bytes) else key_or_addr.address
    with ch.store.view() as v:
        return ch.keepers.bank.balance(v, addr)


def test_failed_message_reverts_but_fee_and_nonce_stay():
    ch, eng = make_chain()
    a0, b0 = bal(ch, alice), bal(ch, bob)
    # first message succeeds, second overdraws: the whole tx's messages revert
    raw = tx(alice, 0, [send(bob, 10), send(bob, 10**15)], fee=100)
    ch.mempool.add(raw)
    eng.produce(2_000)
    _, _, res = ch.tx_result(__import__("hashlib").sha256(raw).digest())
    assert res.code == "insufficient_funds" and res.fee == 100
    assert bal(ch, bob) == b0 and bal(ch, alice) == a0 - 100
    assert bal(ch, FEE_COLLECTOR) == 100
    ch.mempool.add(tx(alice, 1, [send(bob, 10)]))  # nonce advanced to 1
    eng.produce(3_000)
    assert bal(ch, bob) == b0 + 10


def test_a_blocks_fees_reach_the_collector_once_and_failed_messages_leave_no_events():
    ch, eng = make_chain()
    carol = PrivateKey.from_name("carol")
    fc0, b0, c0 = bal(ch, FEE_COLLECTOR), bal(ch, bob), bal(ch, carol)
    ok = tx(alice, 0, [send(carol, 7)], fee=100)
    failing = tx(bob, 0, [send(carol, 10), send(carol, 10**15)], fee=150)
    for raw in (ok, failing):
        ch.mempool.add(raw)
    eng.produce(2_000)  # check_invariants=True: supply == Σ balances + escrows
    _, _, r_ok = ch.tx_result(sha256(ok))
    _, _, r_fail = ch.tx_result(sha256(failing))
    assert r_ok.ok and [e.type for e in r_ok.events] == ["transfer"]
    # The first message's transfer and its event are rolled back with the second's failure.
    assert r_fail.code == "insufficient_funds" and r_fail.fee == 150 and r_fail.events == ()
    assert bal(ch, carol) == c0 + 7 and bal(ch, bob) == b0 - 150
    assert bal(ch, FEE_COLLECTOR) == fc0 + 250
    # A tx whose ante step fails (its nonce is reused) pays nothing.
    header = ch.propose_block(2, 3_000, validator_key(0, CID).address).header
    changes, results, *_ = ch.execute(Block(header, (ok,)))
    assert results[0].code == "nonce_reused" and results[0].fee == 0
    assert not any(k.endswith(FEE_COLLECTOR) for k in changes)


def test_multi_send_and_supply_invariant():
    ch, eng = make_chain()
    outs = [{"to": PrivateKey.from_name(f"o{i}").address, "amount": i + 1} for i in range(5)]
    ch.mempool.add(tx(alice, 0, [("bank/multi_send", {"outputs": outs})]))
    eng.produce(2_000)  # check_invariants=True: supply == Σ balances + escrows
    assert bal(ch, PrivateKey.from_name("o4").address) == 5


def test_mempool_admission_rules():
    ch, eng = make_chain()
    mp = ch.mempool
    mp.add(tx(alice, 0, [send(bob, 1)]))
    with pytest.raises(ShareChainError) as e:
        mp.add(tx(alice, 0, [send(bob, 2)]))
    assert e.value.code == "nonce_reused"
    with pytest.raises(ShareChainError) as e:
        mp.add(tx(alice, 3, [send(bob, 1)]))
    assert e.value.code == "nonce_in_future"
    mp.add(tx(alice, 1, [send(bob, 1)]))  # pending nonce continues the sequence
    with pytest.raises(ShareChainError) as e:
        mp.add(tx(alice, 2, [send(bob, 1)], fee=1))
    assert e.value.code == "fee_too_low"
    raw = tx(bob, 0, [send(alice, 1)])
    mp.add(raw)
    with pytest.raises(ShareChainError) as e:
        mp.add(raw)
    assert e.value.code == "duplicate_tx"
    assert len(mp) == 3
    eng.produce(2_000)
    assert len(mp) == 0
    with pytest.raises(ShareChainError) as e:
        mp.add(raw)  # committed already
    assert e.value.code == "duplicate_tx"


def test_mempool_recheck_drops_txs_that_can_no_longer_execute():
    ch, eng = make_chain()
    poor = PrivateKey.from_name("poor")
    ch.mempool.add(tx(alice, 0, [send(poor, 250)]))
    eng.produce(2_000)
    ch.mempool.add(tx(poor, 0, [send(bob, 1)], fee=100))
    ch.mempool.add(tx(poor, 1, [send(bob, 1)], fee=100))
    with pytest.raises(ShareChainError) as e:
        ch.mempool.add(tx(poor, 2, [send(bob, 1)], fee=100))
    assert e.value.code == "insufficient_funds"
    ch.mempool.add(tx(alice, 1, [send(bob, 1)], expiry=2))
    eng.produce(3_000)  # height 2 includes everything valid
    assert len(ch.mempool) == 0


def test_mempool_limits_and_eviction():
    ch, _ = make_chain(MempoolLimits(bytes_max=10**9, txs_max=3, txs_per_sender_max=2))
    mp = ch.mempool
    mp.add(tx(alice, 0, [send(bob, 1)], fee=100))
    mp.add(tx(alice, 1, [send(bob, 1)], fee=100))
    with pytest.raises(ShareChainError) as e:
        mp.add(tx(alice, 2, [send(bob, 1)], fee=100))
    assert e.value.code == "mempool_full"  # per-sender cap
    carol = PrivateKey.from_name("carol")
    mp.add(tx(bob, 0, [send(alice, 1)], fee=100))
    with pytest.raises(ShareChainError):
        mp.add(tx(carol, 0, [send(alice, 1)], fee=100))  # full, pays no more than the tail
    mp.add(tx(carol, 0, [send(alice, 1)], fee=10_000))  # pays more: evicts a tail
    assert len(mp) == 3 and mp.stats["evicted"] == 1


def test_bank_escrow_lock_release():
    ch, _ = make_chain()
    bank = ch.keepers.bank
    from sharechain.app.framework import Context

    with ch.store.view() as v:
        ctx = Context(Overlay(v), CID, 1, 1, b"", ch.app)
        bank.lock(ctx, alice.address, 500, b"test/e1")
        assert bank.escrowed(ctx, b"test/e1") == 500
        with pytest.raises(ShareChainError) as e:
            bank.release(ctx, b"test/e1", bob.address, 501)
        assert e.value.code == "escrow_insufficient"
        bank.release(ctx, b"test/e1", bob.address, 200)
        assert bank.release_all(ctx, b"test/e1", alice.address) == 300
        for bad in (0, -1):
            with pytest.raises(ShareChainError):
                bank.lock(ctx, alice.address, bad, b"test/e2")
        assert ch.app.check_invariants(ctx.state) == []


# ------------------------------------------------------------------ overlays vs a dict model
keys = st.binary(min_size=1, max_size=3)
ops = st.lists(st.tuples(st.sampled_from(["set", "del", "commit", "drop", "save", "undo"]), keys,
                         st.binary(max_size=4)), max_size=40)


@given(st.dictionaries(keys, st.binary(max_size=4), max_size=10), ops,
       keys, keys)
@settings(max_examples=150, deadline=None)
def test_overlay_matches_dict_model(base, operations, lo, hi):
    path = tempfile.mkdtemp()
    env = lmdb.open(path, max_dbs=2, map_size=2**24)
    db = env.open_db(b"s")
    with env.begin(write=True) as w:
        for k, v in base.items():
            w.put(k, v, db=db)
    with env.begin() as txn:
        block = Overlay(CommittedView(txn, db), ordered=True)
        model = dict(base)
        child, child_model = Overlay(block), dict(model)
        saved = None  # (savepoint, model then) of the current child
        for op, k, v in operations:
            if op == "save":
                saved = (child.savepoint(), dict(child_model))
            elif op == "undo":
                if saved is not None:
                    child.roll_back(saved[0])
                    child_model = saved[1]
                    saved = None
            elif op == "set":
                child.set(k, v)
                child_model[k] = v
            elif op == "del":
                child.delete(k)
                child_model.pop(k, None)
            elif op == "commit":
                child.merge_into_parent()
                model = dict(child_model)
                child, saved = Overlay(block), None
            else:
                child, child_model, saved = Overlay(block), dict(model), None
            for kk in set(model) | set(child_model) | {k}:
                assert child.get(kk) == child_model.get(kk)
                assert block.get(kk) == model.get(kk)
        lo, hi = min(lo, hi), max(lo, hi)
        got = list(child.iter_range(lo, hi))
        assert got == sorted((k, v) for k, v in child_model.items() if lo <= k < hi)
        with pytest.raises(TypeError):
            block.savepoint()  # the block overlay keeps a sorted index; no savepoints there
    env.close()


def test_slow_event_subscriber_is_dropped_and_told_to_close(tmp_path):
    from types import SimpleNamespace

    from sharechain.node.launcher import free_port, make_single_node_home
    from sharechain.node.node import SUBSCRIBER_QUEUE_LEN_MAX, Node

    vkey = validator_key(0, CID)
    home = make_single_node_home(tmp_path / "n", demo_genesis(CID, [vkey], genesis_time_ms=1),
                                 vkey, free_port())
    node = Node(home)
    try:
        q = node.subscribe()
        block = SimpleNamespace(tx_hashes=[], results=[], commit=SimpleNamespace(round=0))
        for _ in range(SUBSCRIBER_QUEUE_LEN_MAX + 1):  # the subscriber never reads
            node._on_commit(block)  # type: ignore[arg-type]
        items = [q.get_nowait() for _ in range(q.qsize())]
        assert items[-1] is None, "the dropped subscriber's stream must end"
        assert q not in node._subscribers
    finally:
        node.chain.close()


def test_block_hooks_have_a_block_budget_and_txs_one_per_message():
    """A busy end-block (sweeps of several modules) must never fail on the per-tx event cap."""
    from sharechain.app.framework import EVENTS_PER_MSG_MAX, Context, Module

    ch, _ = make_chain()
    fired = []

    def sweep(ctx: Context) -> None:
        for i in range(EVENTS_PER_MSG_MAX + 50):
            child = ctx.branch()
            child.emit("due", i=i)
            ctx.merge(child)
        fired.append(len(ctx.events))

    ch.app.modules.append(Module("sweep_a", end_block=sweep))
    ch.app.modules.append(Module("sweep_b", end_block=sweep))
    eng = SoloEngine(ch, validator_key(0, CID), 100)
    eng.produce(2_000)
    assert fired == [EVENTS_PER_MSG_MAX + 50, 2 * (EVENTS_PER_MSG_MAX + 50)]
    with ch.store.view() as v:
        ctx = Context(Overlay(v), CID, 1, 1, b"", ch.app)
    tx_ctx = ctx.branch()
    tx_ctx.events_max = EVENTS_PER_MSG_MAX
    for _ in range(EVENTS_PER_MSG_MAX):
        tx_ctx.emit("e")
    with pytest.raises(ShareChainError) as e:
        tx_ctx.emit("one too many")
    assert e.value.code == "too_many_events"
    child = tx_ctx.branch()
    assert child.events_max == 0, "a branch spends its parent's remaining budget"


def test_record_cache_never_shares_records_holding_dicts():
    from dataclasses import dataclass

    from sharechain.encoding import encode, record_from_state

    @dataclass(frozen=True)
    class WithDict:
        weights: dict[str, int]

    @dataclass(frozen=True)
    class Frozen:
        items: tuple[int, ...]

    raw = encode({"weights": {"a": 1}})
    first = record_from_state(WithDict, raw)
    first.weights["a"] = 99  # a careless caller
    assert record_from_state(WithDict, raw).weights == {"a": 1}
    raw2 = encode({"items": [1, 2]})
    assert record_from_state(Frozen, raw2) is record_from_state(Frozen, raw2)


def test_validate_block_refuses_proposals_repeating_txs(tmp_path) -> None:
    import dataclasses

    from sharechain.chain.types import Block
    from sharechain.crypto import merkle_root
    from sharechain.modules.identity.testkit import TestNet, key

    net = TestNet(tmp_path)
    try:
        raw = net.sign("alice", [("bank/send", {"to": key("bob").address, "amount": 5})])
        assert net.submit_block([raw])[0].code == ""
        c = net.chain
        fresh = net.sign("alice", [("bank/send", {"to": key("bob").address, "amount": 6})])
        proposer = c.validator_set().validators[0].address
        header = c.propose_block(c.height() + 1, net.now_ms + 1000, proposer).header

        def block(*txs: bytes) -> Block:
            return Block(dataclasses.replace(header, tx_root=merkle_root(list(txs))), txs)

        assert c.validate_block(block(fresh)) is None
        assert c.validate_block(block(fresh, raw)) == "block repeats a committed tx"
        assert c.validate_block(block(fresh, fresh)) == "block repeats a tx"
    finally:
        net.close()


def test_txs_seen_in_a_proposal_are_not_parsed_or_verified_again_at_gossip(monkeypatch):
    # A proposal can outrun the gossip of its txs: validation decodes and verifies them
    # (off the loop, in prevalidate). When the same txs then arrive by gossip they are
    # reused, and txs already pooled or committed are refused before any decoding.
    import asyncio
    import dataclasses

    import sharechain.mempool as mempool_mod
    from sharechain.chain.types import Block

    ch, eng = make_chain()
    checked = []
    real_verify = ch.mempool.verifier.verify_async

    async def counting_verify(items):
        checked.extend(items)
        return await real_verify(items)

    monkeypatch.setattr(ch.mempool.verifier, "verify_async", counting_verify)
    decoded = []
    real_decode = mempool_mod.decode_tx
    monkeypatch.setattr(mempool_mod, "decode_tx", lambda raw, h=None: decoded.append(raw)
                        or real_decode(raw, h))
    raws = [tx(alice, n, [send(bob, 1)]) for n in range(3)]
    proposal = ch.propose_block(1, 2_000, validator_key(0, CID).address)
    proposal = Block(dataclasses.replace(proposal.header, tx_root=merkle_root(raws)), tuple(raws))
    assert asyncio.run(ch.prevalidate(proposal)) is None
    assert ch.validate_block(proposal) is None
    assert len(checked) == 3
    checked.clear()
    parsed = asyncio.run(ch.mempool.prepare_async(raws))
    assert [r.hash for r in ch.mempool.admit_many(parsed)] == [sha256(r) for r in raws]
    assert not checked and not decoded  # reused: no second parse, no second signature check
    # Pooled now: a repeat is refused without decoding; so is one committed later.
    assert [e.code for e in ch.mempool.parse_many(raws[:1])] == ["duplicate_tx"]
    eng.produce(2_000)
    assert ch.height() == 1 and len(ch.mempool) == 0
    assert [e.code for e in ch.mempool.parse_many(raws)] == ["duplicate_tx"] * 3
    assert not decoded


def _recheck_model(queues, nonces, balances, next_height):
    """The re-check rule spelled out: per sender, consecutive nonces from the committed
    one, not expired, fees covered by the balance; everything after a failure goes."""
    kept = set()
    for sender, queue in queues.items():
        nonce, fees = nonces[sender], 0
        for t in queue:
            b = t.body
            if b.nonce < nonce:
                continue
            if b.nonce != nonce or (b.expiry_height and b.expiry_height < next_height) \
                    or fees + b.fee > balances[sender]:
                break
            fees += b.fee
            nonce += 1
            kept.add(t.hash)
    return kept


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_mempool_update_agrees_with_the_recheck_rule(data):
    from sharechain.app.builder import build_app
    from sharechain.mempool import ChainFacts, Mempool
    from sharechain.sigverify import SignatureVerifier

    keys = [PrivateKey.from_name(f"m{i}") for i in range(4)]
    world = {"height": 1, "nonce": {k.address: 0 for k in keys},
             "balance": {k.address: 10_000 for k in keys}}
    app, _, _ = build_app(CID)
    mp = Mempool(app, ChainFacts(
        next_height=lambda: world["height"], state=lambda: None,
        nonce_of=lambda _s, a: world["nonce"][a], balance_of=lambda _s, a: world["balance"][a],
        fee_per_cost_unit=lambda _s: 0, committed_among=lambda hs: set()),
        verifier=SignatureVerifier(processes=0))
    next_nonce = {k.address: 0 for k in keys}
    for _ in range(data.draw(st.integers(1, 6))):
        for _ in range(data.draw(st.integers(0, 12))):
            k = data.draw(st.sampled_from(keys))
            fee = data.draw(st.integers(100, 3_000))
            expiry = data.draw(st.sampled_from([0, 0, world["height"] + 1, world["height"] + 3]))
            try:
                mp.add(tx(k, next_nonce[k.address], [send(bob, 1)], fee=fee, expiry=expiry))
                next_nonce[k.address] += 1
            except ShareChainError:
                pass
        # A block: each sender's nonce moves by some amount (its pooled txs, or others
        # committed through another node), balances change, the height advances.
        committed = []
        for k in keys:
            a = k.address
            step = data.draw(st.integers(0, 3))
            queue = mp._by_sender.get(a, [])
            committed += [t.hash for t in queue if t.body.nonce < world["nonce"][a] + step]
            world["nonce"][a] += step
            next_nonce[a] = max(next_nonce[a], world["nonce"][a])
            world["balance"][a] = data.draw(st.integers(0, 12_000))
        world["height"] += data.draw(st.integers(1, 2))
        before = {a: list(q) for a, q in mp._by_sender.items()}
        order = [h for h in mp._txs if h not in set(committed)]
        want = _recheck_model(before, world["nonce"], world["balance"], world["height"])
        mp.update(committed)
        assert list(mp._txs) == [h for h in order if h in want]  # arrival order kept
        assert mp.bytes == sum(t.size for t in mp._txs.values())
        for a, q in mp._by_sender.items():
            assert [t.body.nonce for t in q] == list(range(world["nonce"][a],
                                                           world["nonce"][a] + len(q)))
            assert mp._pending_fees[a] == sum(t.body.fee for t in q)
            assert mp._committed_nonce[a] == world["nonce"][a]
        for a in world["nonce"]:  # new txs continue where the pool or the chain is
            q = mp._by_sender.get(a)
            next_nonce[a] = q[-1].body.nonce + 1 if q else world["nonce"][a]
