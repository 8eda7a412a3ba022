"""The admission gate's verdicts and the driver's relay contract; signatures verified once
per node; the validator set's cached index; evidence forgotten by height, never refused."""

from __future__ import annotations

import asyncio

from sharechain.chain.types import VOTE_PREVOTE, Commit
from sharechain.consensus.bft import BftConfig, BftDriver, MemoryWal
from sharechain.consensus.bft.engine import Engine
from sharechain.consensus.bft.events import (
    EVIDENCE_HEIGHTS_KEPT,
    Action,
    CommitBlock,
    ReportEvidence,
    StartHeight,
    TimeoutFired,
    VoteReceived,
)
from sharechain.consensus.bft.messages import NIL, WIRE_BYTES_MAX, Vote, encode_message
from sharechain.consensus.bft.replica import (
    ADMITTED,
    BUFFERED,
    IGNORED,
    REJECTED,
    Replica,
)
from sharechain.crypto import sha256, verify
from sharechain.encoding import encode, to_obj
from sharechain.sim.fakechain import FakeChain
from sharechain.sim.harness import CHAIN_ID, TEST_CONFIG, Harness, make_validators


def non_proposer(h_me: tuple[str, ...] = ("v0", "v1", "v2", "v3")) -> Harness:
    for me in h_me:
        h = Harness(me=me)
        h.start()
        if h.proposer(0) != me:
            return h
    raise AssertionError("no such layout")


def vote_bytes(h: Harness, name: str, height: int, forged: bool = False) -> bytes:
    k = h.keys[name]
    u = Vote(VOTE_PREVOTE, height, 0, NIL, 5, k.address, b"")
    sig = bytes(64) if forged else k.sign(u.sign_bytes(CHAIN_ID))
    return encode_message(Vote(VOTE_PREVOTE, height, 0, NIL, 5, k.address, sig))


def others(h: Harness) -> list[str]:
    return [n for n in sorted(h.keys) if n != h.me]


# ---------------------------------------------------------------- verdicts


def test_replica_verdicts_admit_valid_reject_invalid_and_ignore_the_rest():
    h = non_proposer()
    r = Replica(h.engine)
    x = others(h)[0]

    def verdict(raw: bytes) -> tuple[str, str]:
        r.receive(raw, 0)
        assert r.last_verdict is not None and r.last_verdict.raw is raw
        return r.last_verdict.outcome, r.last_verdict.reason

    good, forged, garbage = vote_bytes(h, x, 1), vote_bytes(h, x, 1, True), b"\x00junk"
    oversize = b"\x00" * (WIRE_BYTES_MAX + 1)
    assert verdict(good) == (ADMITTED, "valid")
    assert verdict(good) == (IGNORED, "duplicate")
    assert verdict(forged) == (REJECTED, "bad_signature")
    assert verdict(garbage) == (REJECTED, "garbage")
    assert verdict(oversize) == (REJECTED, "oversize")
    # Only admissions and rejections are queued for the transport, in order.
    assert [(v.outcome, v.raw) for v in r.take_verdicts()] == [
        (ADMITTED, good), (REJECTED, forged), (REJECTED, garbage), (REJECTED, oversize)]
    assert r.take_verdicts() == []


def test_a_buffered_future_message_is_admitted_or_rejected_when_released():
    h = non_proposer()
    r = Replica(h.engine)
    x, y = others(h)[:2]
    good, forged = vote_bytes(h, x, 2), vote_bytes(h, y, 2, True)
    for raw in (good, forged):
        r.receive(raw, 0)
        assert r.last_verdict is not None and r.last_verdict.outcome == BUFFERED
    assert r.take_verdicts() == []  # nothing relayed before its signature is checked
    commit_height_one(h)
    r.step(TimeoutFired("propose", 1, 0), 0)  # any step releases what height 2 buffered
    assert [(v.outcome, v.raw) for v in r.take_verdicts()] == [
        (ADMITTED, good), (REJECTED, forged)]
    r.receive(vote_bytes(h, x, 1), 0)
    assert r.last_verdict is not None and r.last_verdict.outcome == IGNORED
    assert r.last_verdict.reason == "stale" and r.take_verdicts() == []


def commit_height_one(h: Harness) -> Commit:
    b = h.block(h.proposer(0))
    h.drive(h.proposal(0, b))
    h.votes(others(h), "prevote", 0, b)
    out = [a for acts in h.votes(others(h), "precommit", 0, b) for a in acts]
    (c,) = [a.commit for a in out if isinstance(a, CommitBlock)]
    assert h.engine.height == 2
    return c


# ---------------------------------------------------------------- the driver


class RecordingTransport:
    def __init__(self) -> None:
        self.receiver = None
        self.relayed: list[bytes] = []
        self.rejected: list[tuple[bytes, str]] = []

    def broadcast(self, msg_bytes: bytes) -> None:
        pass

    def set_receiver(self, callback) -> None:
        self.receiver = callback

    def relay(self, msg_bytes: bytes) -> None:
        self.relayed.append(msg_bytes)

    def reject(self, msg_bytes: bytes, reason: str) -> None:
        self.rejected.append((msg_bytes, reason))


def test_the_driver_relays_admitted_messages_and_reports_invalid_ones():
    slow = BftConfig(timeout_propose_ms=60_000, timeout_commit_ms=0, rebroadcast_ms=60_000)
    keys, vset = make_validators(["v0", "v1", "v2", "v3"])
    h = Harness()  # for its keys and vote helper only

    async def main() -> tuple[RecordingTransport, bytes, bytes, bytes]:
        chain = FakeChain(CHAIN_ID, vset, 1_700_000_000_000)
        t = RecordingTransport()
        d = BftDriver(chain, keys["v0"], t, MemoryWal(), slow)
        await d.start()
        good, forged = vote_bytes(h, "v1", 1), vote_bytes(h, "v2", 1, True)
        for raw in (good, good, forged, b"\x00junk"):
            t.receiver(raw)  # type: ignore[misc]
        for _ in range(50):
            await asyncio.sleep(0.01)
            if len(t.rejected) >= 2:
                break
        await d.stop()
        return t, good, forged, b"\x00junk"

    t, good, forged, junk = asyncio.run(main())
    assert t.relayed == [good]  # once: a duplicate is neither relayed nor rejected
    assert t.rejected == [(forged, "bad_signature"), (junk, "garbage")]


def test_a_stalled_round_passes_admitted_messages_on_through_relay():
    """While a round makes no progress, each rebroadcast hands the other validators'
    admitted votes to ``transport.relay`` again (for peers that lost the first copy);
    its own messages still go through ``broadcast``."""
    stall = BftConfig(timeout_propose_ms=60_000, timeout_commit_ms=0, rebroadcast_ms=100)
    keys, vset = make_validators(["v0", "v1", "v2", "v3"])
    h = Harness()

    async def main() -> tuple[RecordingTransport, bytes]:
        chain = FakeChain(CHAIN_ID, vset, 1_700_000_000_000)
        t = RecordingTransport()
        d = BftDriver(chain, keys["v0"], t, MemoryWal(), stall)
        await d.start()
        good = vote_bytes(h, "v1", 1)
        t.receiver(good)  # type: ignore[misc]
        for _ in range(100):
            await asyncio.sleep(0.01)
            if t.relayed.count(good) >= 3:
                break
        await d.stop()
        return t, good

    t, good = asyncio.run(main())
    assert t.relayed.count(good) >= 3  # admitted once, then passed on at each rebroadcast
    assert set(t.relayed) == {good}


# ---------------------------------------------------------------- verified once


def test_each_precommit_signature_is_verified_once_per_node():
    calls: list[bytes] = []

    def counting(pub: bytes, msg: bytes, sig: bytes) -> bool:
        calls.append(sig)
        return verify(pub, msg, sig)

    h = non_proposer()
    h.engine = Engine(CHAIN_ID, h.keys[h.me], TEST_CONFIG, verifier=counting)
    h.start()
    r = Replica(h.engine)
    x, y, z = others(h)
    b = h.block(h.proposer(0))
    pump(h, r, r.receive(encode_message(h.proposal(0, b).proposal), 0))
    for n in (x, y, z):  # their precommits decide before our own prevote quorum
        pump(h, r, r.receive(encode_message(h.vote(n, "precommit", 0, b).vote), 0))
    assert h.engine.height == 2 and len(calls) == 4 == len(set(calls))
    own = h.engine.last.commit  # type: ignore[union-attr]
    assert len(own.sigs) == 3
    # A proposal on our own last commit: only the proposal's signature is verified.
    calls.clear()
    p = h.proposal(0, h.block(h.proposer(0)), last_commit=own).proposal
    pump(h, r, r.receive(encode_message(p), 0))
    assert calls == [p.sig]
    # Another commit of the same precommits (in another order) costs no Ed25519 check.
    other = Commit(own.height, own.round, own.block_hash, tuple(reversed(own.sigs)))
    assert other != own
    assert h.engine._time_from(other) == h.engine._time_from(own)
    assert calls == [p.sig]


def pump(h: Harness, r: Replica, actions: list[Action]) -> None:
    """Answer app requests through the replica, as a driver does."""
    pending = [actions]
    while pending:
        for a in pending.pop(0):
            answer = h.answer(a)
            if answer is not None:
                pending.append(r.step(answer, 0))


# ---------------------------------------------------------------- validator set cache


def test_validator_set_caches_do_not_change_its_encoding_or_equality():
    keys, vset = make_validators(["a", "b", "c"], [1, 2, 3])
    before = encode(vset)
    assert vset.by_address(keys["b"].address).power == 2  # type: ignore[union-attr]
    assert vset.by_address(b"\x00" * 20) is None
    assert vset.hash() == sha256(before) and vset.total_power == 6
    assert encode(vset) == before and list(to_obj(vset)) == ["validators"]
    _, again = make_validators(["a", "b", "c"], [1, 2, 3])
    assert again == vset and hash(again) == hash(vset)


# ---------------------------------------------------------------- evidence


def test_old_evidence_is_forgotten_by_height_and_reporting_goes_on():
    h = non_proposer()
    k = h.keys[others(h)[0]]

    def double_vote(height: int) -> list[ReportEvidence]:
        out: list[Action] = []
        for bh in (b"\x01" * 32, NIL):
            u = Vote(VOTE_PREVOTE, height, 0, bh, 5, k.address, b"")
            v = Vote(VOTE_PREVOTE, height, 0, bh, 5, k.address, k.sign(u.sign_bytes(CHAIN_ID)))
            out += h.engine.step(VoteReceived(v), 0)
        return [a for a in out if isinstance(a, ReportEvidence)]

    assert len(double_vote(1)) == 1 and len(h.engine.evidence) == 1
    far = 1 + EVIDENCE_HEIGHTS_KEPT + 1
    h.engine.step(StartHeight(far, h.vset, h.chain.last_block_time_ms()), 0)
    assert h.engine.evidence == [] and h.engine._evidence_keys == set()
    assert len(double_vote(far)) == 1
    assert [e.vote_a.height for e in h.engine.evidence] == [far]


# ---------------------------------------------------------------- the P2P relay


class _FakePeers:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, ...]]] = []
        self.reports: list[str] = []

    def broadcast(self, channel: int, msg: bytes, exclude: tuple[str, ...] = ()) -> None:
        self.sent.append((msg, tuple(exclude)))

    def report(self, peer_id: str, reason: str, points: int) -> None:
        self.reports.append(peer_id)


def test_the_p2p_relay_redelivers_repeats_until_the_driver_settles_them():
    # The transport contract: every message goes to the driver, which de-duplicates (a
    # re-sent message it could not use the first time, e.g. one from a height it had not
    # reached, is news). The relay stops repeats once the driver has admitted or rejected
    # the message, and hands over at most REPEATS_DELIVERED_MAX copies of one message.
    from sharechain.node.network import REPEATS_DELIVERED_MAX, ConsensusRelay

    from sharechain.node.network import REDELIVER_AFTER_S

    now = [100.0]
    peers = _FakePeers()
    relay = ConsensusRelay(peers, clock=lambda: now[0])  # type: ignore[arg-type]
    got: list[bytes] = []
    relay.set_receiver(got.append)
    a, b, own = b"message a", b"message b", b"our own"
    relay.on_message("p1", a)
    relay.on_message("p2", a)          # the flood's copy, right behind the first: dropped
    assert got == [a]
    now[0] += REDELIVER_AFTER_S
    relay.on_message("p2", a)          # a re-send, and not settled yet: delivered again
    assert got == [a, a]
    relay.relay(a)                     # the driver admitted it: relayed around its first sender
    assert peers.sent == [(a, ("p1",))]
    now[0] += REDELIVER_AFTER_S
    relay.on_message("p3", a)
    assert got == [a, a]               # settled: repeats stop here
    for _ in range(3 * REPEATS_DELIVERED_MAX):
        now[0] += REDELIVER_AFTER_S
        relay.on_message("p2", b)      # never settled (say, too far ahead): bounded
    assert got.count(b) == REPEATS_DELIVERED_MAX
    relay.reject(b, "bad_signature")
    assert peers.reports == ["p2"]     # blamed on its first sender
    relay.broadcast(own)
    relay.on_message("p1", own)        # our own message echoed back: not delivered
    assert own not in got


class _PullPeers(_FakePeers):
    """Fake peers for the relay's pull path: records sends per channel; some peers gone."""

    def __init__(self) -> None:
        super().__init__()
        self.out: list[tuple[str, int, bytes]] = []  # (peer, channel, payload)
        self.gone: set[str] = set()

    def broadcast(self, channel: int, msg: bytes, exclude: tuple[str, ...] = ()) -> None:
        for p in ("p1", "p2", "p3"):
            if p not in exclude and p not in self.gone:
                self.out.append((p, channel, msg))

    def send(self, peer_id: str, channel: int, msg: bytes) -> bool:
        if peer_id in self.gone:
            return False
        self.out.append((peer_id, channel, msg))
        return True


def test_large_consensus_messages_are_relayed_by_announcement_and_pulled_when_missing():
    """A proposal-sized message is sent whole by its author only; a relay announces its
    hash. A node that lacks it after PULL_DELAY_S asks an announcer, then the next one
    after PULL_TIMEOUT_S; a node that has it asks nothing. A request is answered once."""
    from sharechain.crypto import sha256
    from sharechain.encoding import decode, encode
    from sharechain.node.network import (
        ANNOUNCE_BYTES_MIN,
        PULL_DELAY_S,
        PULL_TIMEOUT_S,
        ConsensusRelay,
    )
    from sharechain.p2p.peers import CHANNEL_CONSENSUS, CHANNEL_CONSENSUS_PULL

    timers: list[tuple[float, object, tuple]] = []
    peers = _PullPeers()
    stats: dict[str, int] = {}
    relay = ConsensusRelay(peers, call_later=lambda d, fn, *a: timers.append((d, fn, a)),  # type: ignore[arg-type]
                           stats=stats)
    got: list[bytes] = []
    relay.set_receiver(got.append)
    big, small = b"P" * ANNOUNCE_BYTES_MIN, b"vote"
    key = sha256(big)

    def pulls(kind: str) -> list[str]:
        return [p for p, ch, m in peers.out if ch == CHANNEL_CONSENSUS_PULL
                and decode(m) == {"t": kind, "h": key}]

    # Relaying: small messages go whole, large ones by announcement, both around the origin.
    relay.on_message("p1", small)
    relay.relay(small)
    relay.on_message("p1", big)
    relay.relay(big)
    assert [(p, ch) for p, ch, m in peers.out if m == small] == [("p2", 0x20), ("p3", 0x20)]
    assert not any(m == big for _, _, m in peers.out), "not sent whole"
    assert pulls("have") == ["p2", "p3"] and stats["consensus_announced"] == 1
    # Answering: each peer's request for a held message once.
    peers.out.clear()
    for p in ("p2", "p2", "p3"):
        relay.on_pull_message(p, encode({"t": "want", "h": key}))
    assert [(p, ch) for p, ch, m in peers.out if m == big] == [("p2", CHANNEL_CONSENSUS),
                                                               ("p3", CHANNEL_CONSENSUS)]
    assert stats["consensus_pulls_served"] == 2
    relay.on_pull_message("p2", encode({"t": "want", "h": b"x" * 32}))  # not held: no answer
    # Once per connection: a peer that reconnected (it restarted and lost the message)
    # may ask again; the others still may not.
    peers.out.clear()
    relay.peer_gone("p2")
    for p in ("p2", "p2", "p3"):
        relay.on_pull_message(p, encode({"t": "want", "h": key}))
    assert [(p, ch) for p, ch, m in peers.out if m == big] == [("p2", CHANNEL_CONSENSUS)]

    # Pulling, on a node that has not got it: the first announcer after the delay, the
    # next one after the timeout, skipping one that is gone.
    peers2 = _PullPeers()
    timers.clear()
    relay2 = ConsensusRelay(peers2, call_later=lambda d, fn, *a: timers.append((d, fn, a)),  # type: ignore[arg-type]
                            stats={})
    relay2.set_receiver(got.append)
    peers = peers2
    for p in ("p1", "p2", "p3", "p1"):
        relay2.on_pull_message(p, encode({"t": "have", "h": key}))
    assert len(timers) == 1 and timers[0][0] == PULL_DELAY_S and pulls("want") == []
    delay, fn, args = timers.pop()
    fn(*args)  # type: ignore[operator]
    assert pulls("want") == ["p1"] and timers[0][0] == PULL_TIMEOUT_S
    peers2.gone.add("p2")
    delay, fn, args = timers.pop()
    fn(*args)  # type: ignore[operator]  # p1 did not answer: p2 is gone, so p3
    assert pulls("want") == ["p1", "p3"]
    relay2.on_message("p3", big)
    assert got[-1] == big and relay2.stats["consensus_pulled"] == 1
    delay, fn, args = timers.pop()
    fn(*args)  # type: ignore[operator]  # it came: nobody else is asked
    assert pulls("want") == ["p1", "p3"] and not timers
    relay2.on_pull_message("p2", encode({"t": "have", "h": key}))
    assert not timers, "an announcement of what it has starts no pull"
    relay2.on_pull_message("p1", b"junk")
    assert peers2.reports == ["p1"]


def test_announcements_of_messages_that_never_come_start_a_bounded_number_of_pulls():
    from sharechain.encoding import encode
    from sharechain.node.network import PULLS_PER_PEER_MAX, ConsensusRelay

    timers: list[tuple[float, object, tuple]] = []
    peers = _PullPeers()
    relay = ConsensusRelay(peers, call_later=lambda d, fn, *a: timers.append((d, fn, a)),  # type: ignore[arg-type]
                           stats={})
    for i in range(5 * PULLS_PER_PEER_MAX):
        relay.on_pull_message("p1", encode({"t": "have", "h": i.to_bytes(32, "big")}))
    assert len(timers) == PULLS_PER_PEER_MAX
    assert relay.stats["consensus_haves_ignored"] == 4 * PULLS_PER_PEER_MAX
    relay.on_pull_message("p2", encode({"t": "have", "h": b"\xff" * 32}))
    assert len(timers) == PULLS_PER_PEER_MAX + 1, "another peer's announcement is followed"
    while timers:  # nothing comes: each pull asks its announcer, times out and ends
        _, fn, args = timers.pop(0)
        fn(*args)  # type: ignore[operator]
    assert not relay._pulls and not relay._pulls_by
    relay.on_pull_message("p1", encode({"t": "have", "h": b"\x01" * 32}))
    assert len(timers) == 1, "its quota is back once those pulls ended"


def test_a_pull_ends_when_its_message_comes_another_way_and_old_timers_are_void():
    from sharechain.crypto import sha256
    from sharechain.encoding import encode
    from sharechain.node.network import ANNOUNCE_BYTES_MIN, ConsensusRelay

    timers: list[tuple[float, object, tuple]] = []
    peers = _PullPeers()
    relay = ConsensusRelay(peers, call_later=lambda d, fn, *a: timers.append((d, fn, a)),  # type: ignore[arg-type]
                           stats={})
    big = b"D" * ANNOUNCE_BYTES_MIN
    key = sha256(big)
    relay.on_pull_message("p1", encode({"t": "have", "h": key}))
    relay.broadcast(big)  # the node sends the same message itself before the pull is due
    _, fn, args = timers.pop()
    fn(*args)  # type: ignore[operator]
    assert not relay._pulls and not relay._pulls_by, "ended, its quota given back"
    assert not [m for _, ch, m in peers.out if ch == 0x21], "nothing asked"
    # A timer of a pull that ended does not drive a new pull of the same message.
    other = b"E" * ANNOUNCE_BYTES_MIN
    okey = sha256(other)
    relay.on_pull_message("p1", encode({"t": "have", "h": okey}))
    stale = timers.pop()
    relay._end_pull(okey)
    relay.on_pull_message("p2", encode({"t": "have", "h": okey}))
    stale[1](*stale[2])  # type: ignore[operator]
    assert not [m for _, ch, m in peers.out if ch == 0x21], "the stale timer asked nobody"
    _, fn, args = timers.pop()
    fn(*args)  # type: ignore[operator]
    assert [(p, ch) for p, ch, _ in peers.out] == [("p1", 0x20), ("p2", 0x20), ("p3", 0x20),
                                                   ("p2", 0x21)]
