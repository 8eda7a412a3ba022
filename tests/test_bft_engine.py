"""Unit tests of the BFT engine's rules, its WAL, evidence, messages and admission gate."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from sharechain.chain.types import (
    VOTE_PRECOMMIT,
    VOTE_PREVOTE,
    Commit,
    CommitSig,
    Validator,
    ValidatorSet,
    verify_commit,
    vote_sign_bytes,
    weighted_median_time,
)
from sharechain.consensus.bft.engine import Engine, Phase, WalAheadOfChainError
from sharechain.consensus.bft.events import (
    NEW_HEIGHT,
    PRECOMMIT,
    PREVOTE,
    PROPOSE,
    BftConfig,
    Broadcast,
    CommitBlock,
    FutureHeightSeen,
    PersistWAL,
    Recover,
    ReportEvidence,
    ScheduleTimeout,
    StartHeight,
    TimeoutFired,
)
from sharechain.consensus.bft.evidence import DuplicateVoteEvidence
from sharechain.consensus.bft.messages import (
    NIL,
    Decision,
    Proposal,
    SyncRequest,
    Vote,
    decode_message,
    encode_message,
)
from sharechain.consensus.bft.proposer import PROPOSER_SLOTS_MAX, proposer_schedule
from sharechain.consensus.bft.replica import FUTURE_HEIGHTS_MAX, Replica
from sharechain.consensus.bft.valset import check_commit, index_of
from sharechain.consensus.bft.wal import (
    WAL_MAGIC,
    FileWal,
    MemoryWal,
    WalCorruptError,
    WalDecided,
    WalError,
    encode_record,
    frame,
    scan,
)
from sharechain.crypto import PrivateKey
from sharechain.encoding import encode
from sharechain.errors import DecodeError, ShareChainError
from sharechain.sim.fakechain import FakeChain
from sharechain.sim.harness import CHAIN_ID, GENESIS_MS, TEST_CONFIG, Harness, make_validators


def kinds(actions: list) -> list[str]:
    return [type(a).__name__ for a in actions]


def own_votes(h: Harness, actions: list) -> list[Vote]:
    return [a.record for a in actions if isinstance(a, PersistWAL)
            and isinstance(a.record, Vote) and a.record.validator == h.addr(h.me)]


def timeouts(actions: list, kind: str) -> list[ScheduleTimeout]:
    return [a for a in actions if isinstance(a, ScheduleTimeout) and a.kind == kind]


def non_proposer_harness(rounds: int = 1, **kw) -> Harness:
    """A 4-validator harness whose engine proposes in none of rounds 0..rounds-1 of
    height 1 (so the tests play every proposer)."""
    for me in ("v0", "v1", "v2", "v3"):
        h = Harness(me=me, **kw)
        h.start()
        if all(h.proposer(r) != me for r in range(rounds)):
            return h
    raise AssertionError("no such layout")


def others(h: Harness, k: int, skip: tuple[str, ...] = ()) -> list[str]:
    return [n for n in sorted(h.keys) if n != h.me and n not in skip][:k]


def lock_on(h: Harness, round_: int = 0):
    """Drive the engine to lock on a block in ``round_`` (it precommits it)."""
    b = h.block(h.proposer(round_))
    h.drive(h.proposal(round_, b))
    h.votes(others(h, 2), "prevote", round_, b)
    return b


# ---------------------------------------------------------------- proposer rotation


def test_proposer_rotation_is_weighted_by_power():
    _, vset = make_validators(["a", "b", "c"], [3, 2, 1])
    sched = proposer_schedule(vset)
    assert len(sched) == 6
    counts = {v.address: sched.count(v.address) for v in vset.validators}
    assert sorted(counts.values()) == [1, 2, 3]
    for v in vset.validators:
        assert counts[v.address] == v.power
    # Smooth: the power-3 validator never proposes three slots in a row.
    top = max(vset.validators, key=lambda v: v.power).address
    assert all(not (sched[i] == sched[i + 1] == sched[i + 2] == top) for i in range(4))


def test_proposer_ties_break_by_address_and_are_deterministic():
    _, vset = make_validators(["a", "b", "c", "d"])
    sched = proposer_schedule(vset)
    # Equal power: one slot each, in address order (the set's order).
    assert sched == tuple(v.address for v in vset.validators)
    _, again = make_validators(["d", "c", "b", "a"])
    assert proposer_schedule(again) == sched


def test_proposer_schedule_scales_large_stakes():
    _, vset = make_validators(["a", "b", "c"], [10**12, 10**12, 1])
    sched = proposer_schedule(vset)
    assert len(sched) <= PROPOSER_SLOTS_MAX + 3
    assert vset.validators[0].address in sched and min(
        sched.count(v.address) for v in vset.validators) >= 1


def test_engine_proposer_moves_with_round_and_height():
    h = Harness()
    h.start()
    seen = [h.engine.proposer(r) for r in range(4)]
    assert len(set(seen)) == 4  # four equal validators: every one gets a turn in 4 rounds


# ---------------------------------------------------------------- timeouts


def test_timeouts_grow_with_the_round():
    cfg = BftConfig()
    for kind in (PROPOSE, PREVOTE, PRECOMMIT):
        ts = [cfg.timeout_ms(kind, r) for r in range(5)]
        assert ts == sorted(ts) and len(set(ts)) == 5
    h = non_proposer_harness()
    first = timeouts(h.log, PROPOSE)
    assert [t.delay_ms for t in first] == [TEST_CONFIG.timeout_propose_ms]
    # Round 0 fails: propose timeout, nil prevotes, nil precommits, precommit timeout.
    h.drive(TimeoutFired(PROPOSE, 1, 0), now=1000)
    h.votes(others(h, 3), "prevote", 0, None)
    out = h.votes(others(h, 3), "precommit", 0, None)
    pc = [t for acts in out for t in timeouts(acts, PRECOMMIT)]
    assert [t.delay_ms for t in pc] == [TEST_CONFIG.timeout_precommit_ms]
    out = h.drive(TimeoutFired(PRECOMMIT, 1, 0), now=2000)
    assert h.engine.round == 1
    assert [t.delay_ms for t in timeouts(out, PROPOSE)] == [
        TEST_CONFIG.timeout_propose_ms + TEST_CONFIG.timeout_propose_delta_ms]


def test_stale_timeouts_are_ignored():
    h = non_proposer_harness()
    h.drive(TimeoutFired(PROPOSE, 1, 0))
    assert h.engine.phase == Phase.PREVOTE
    assert h.drive(TimeoutFired(PROPOSE, 1, 0)) == []          # already past propose
    assert h.drive(TimeoutFired(PREVOTE, 1, 5)) == []           # another round
    assert h.drive(TimeoutFired(PRECOMMIT, 7, 0)) == []         # another height


# ---------------------------------------------------------------- the happy path


def test_good_case_commits_with_a_certificate_anyone_can_check():
    h = non_proposer_harness()
    b = h.block(h.proposer(0))
    out = h.drive(h.proposal(0, b))
    assert [v.type for v in own_votes(h, out)] == [VOTE_PREVOTE]
    out = [a for acts in h.votes(others(h, 2), "prevote", 0, b) for a in acts]
    assert [(v.type, v.block_hash) for v in own_votes(h, out)] == [(VOTE_PRECOMMIT, b.hash())]
    assert h.engine.locked == (0, b.hash())
    out = [a for acts in h.votes(others(h, 2), "precommit", 0, b) for a in acts]
    commits = [a for a in out if isinstance(a, CommitBlock)]
    assert len(commits) == 1
    commit = commits[0].commit
    verify_commit(CHAIN_ID, h.vset, commit, b.hash(), 1)  # the chain's own check
    assert h.chain.height() == 1 and h.engine.height == 2


def test_single_validator_commits_alone_like_solo():
    h = Harness(names=["solo"], me="solo", config=replace(TEST_CONFIG, timeout_commit_ms=50))
    h.start()
    assert h.chain.height() == 1  # proposal, prevote, precommit, commit: all by itself
    h.drive(TimeoutFired(NEW_HEIGHT, 2, 0), now=50)
    assert h.chain.height() >= 2
    verify_commit(CHAIN_ID, h.vset, h.chain.commits[0], h.chain.blocks[0].hash(), 1)


def _new_height_waits(actions: list) -> list[int]:
    return [a.delay_ms for a in timeouts(actions, NEW_HEIGHT)]


def test_paced_heights_start_one_interval_after_the_last_round_0_not_after_the_commit():
    cfg = replace(TEST_CONFIG, timeout_commit_ms=200, pace_from_round_start=True)
    h = Harness(names=["solo"], me="solo", config=cfg)
    h.start(now=1_000)                # height 1: round 0 at 1000, decided within it
    assert h.chain.height() == 1 and _new_height_waits(h.log) == [200]
    # Height 2 starts at 1250; its round is decided at 1250: 200 ms left of the interval.
    out = h.drive(TimeoutFired(NEW_HEIGHT, 2, 0), now=1_250)
    assert h.chain.height() == 2 and _new_height_waits(out) == [200]
    # A 4-validator height decided 150 ms after its round 0 began waits the other 50 ms;
    # one decided after the whole interval starts the next height's round 0 at once.
    for decided_at, waits in ((150, [50]), (500, [])):
        h = non_proposer_harness(config=cfg)
        b = h.block(h.proposer(0))
        h.drive(h.proposal(0, b), now=decided_at)
        h.votes(others(h, 2), "prevote", 0, b)
        out = [a for acts in h.votes(others(h, 2), "precommit", 0, b) for a in acts]
        assert h.chain.height() == 1
        assert _new_height_waits(out) == waits
        assert h.engine.phase == (Phase.NEW_HEIGHT if waits else Phase.PROPOSE)
    # Unpaced (the default): the full pause after every commit.
    plain = non_proposer_harness(config=replace(TEST_CONFIG, timeout_commit_ms=200))
    b = plain.block(plain.proposer(0))
    plain.drive(plain.proposal(0, b), now=500)
    plain.votes(others(plain, 2), "prevote", 0, b)
    out = [a for acts in plain.votes(others(plain, 2), "precommit", 0, b) for a in acts]
    assert _new_height_waits(out) == [200]


def test_commit_needs_more_than_two_thirds_not_exactly_two_thirds():
    # Powers 2+2+1+1 = 6: exactly 2/3 is 4; more than 2/3 needs 5.
    h = Harness(names=["a", "b", "c", "d"], powers=[2, 2, 1, 1], me=None)
    h.start()
    b = h.block(h.proposer(0))
    h.drive(h.proposal(0, b))
    heavy = [v.name for v in h.vset.validators if v.power == 2]
    light = [v.name for v in h.vset.validators if v.power == 1]
    h.votes(heavy, "prevote", 0, b)
    out = [a for acts in h.votes(heavy, "precommit", 0, b) for a in acts]
    assert not any(isinstance(a, CommitBlock) for a in out)   # 4 of 6: exactly 2/3
    out = h.drive(h.vote(light[0], "precommit", 0, b))
    assert any(isinstance(a, CommitBlock) for a in out)       # 5 of 6
    assert h.chain.height() == 1


def test_two_thirds_of_nil_prevotes_is_not_a_quorum_at_exactly_two_thirds():
    h = Harness(names=["a", "b", "c"], me="a")
    h.start()
    if h.engine.phase != Phase.PROPOSE or h.proposer(0) == "a":
        pytest.skip("engine is the proposer in this layout")
    h.drive(TimeoutFired(PROPOSE, 1, 0))
    out = h.drive(h.vote("b", "prevote", 0, None))          # 2 of 3 = exactly 2/3
    assert not any(v.type == VOTE_PRECOMMIT for v in own_votes(h, out))
    out = h.drive(h.vote("c", "prevote", 0, None))
    assert [v.block_hash for v in own_votes(h, out)] == [NIL]


# ---------------------------------------------------------------- locks and POL


def test_locked_validator_prevotes_nil_for_a_new_value():
    h = non_proposer_harness(2)
    b = lock_on(h, 0)
    assert h.engine.locked == (0, b.hash())
    h.votes(others(h, 3), "precommit", 0, None)        # the round fails anyway
    h.drive(TimeoutFired(PRECOMMIT, 1, 0))
    assert h.engine.round == 1
    other = h.block(h.proposer(1), variant=1)
    out = h.drive(h.proposal(1, other))
    assert [v.block_hash for v in own_votes(h, out)] == [NIL]
    assert h.engine.locked == (0, b.hash())


def test_locked_validator_prevotes_its_locked_value_again():
    h = non_proposer_harness(2)
    b = lock_on(h, 0)
    h.votes(others(h, 3), "precommit", 0, None)
    h.drive(TimeoutFired(PRECOMMIT, 1, 0))
    out = h.drive(h.proposal(1, b, pol_round=0))
    assert [v.block_hash for v in own_votes(h, out)] == [b.hash()]


def test_unlock_on_a_newer_pol():
    h = non_proposer_harness(3)
    b = lock_on(h, 0)
    assert h.engine.locked == (0, b.hash())
    h.votes(others(h, 3), "precommit", 0, None)
    h.drive(TimeoutFired(PRECOMMIT, 1, 0))
    # Round 1: the others saw a different value reach a POL (we missed the proposal).
    other = h.block(h.proposer(1), variant=1)
    h.drive(TimeoutFired(PROPOSE, 1, 1))
    h.votes(others(h, 3), "prevote", 1, other)
    h.votes(others(h, 3), "precommit", 1, None)
    h.drive(TimeoutFired(PRECOMMIT, 1, 1))
    assert h.engine.round == 2
    out = h.drive(h.proposal(2, other, pol_round=1))
    assert [v.block_hash for v in own_votes(h, out)] == [other.hash()]
    assert h.engine.locked[0] == 0  # the lock moves only when it precommits again


def test_a_pol_older_than_the_lock_does_not_unlock():
    h = non_proposer_harness(3)
    other = h.block(h.proposer(0), variant=1)
    # Round 0: a POL for `other` forms, but we missed the proposal; round 1 locks on b.
    h.drive(TimeoutFired(PROPOSE, 1, 0))
    h.votes(others(h, 3), "prevote", 0, other)
    h.votes(others(h, 3), "precommit", 0, None)
    h.drive(TimeoutFired(PRECOMMIT, 1, 0))
    b = lock_on(h, 1)
    assert h.engine.locked == (1, b.hash())
    h.votes(others(h, 3), "precommit", 1, None)
    h.drive(TimeoutFired(PRECOMMIT, 1, 1))
    out = h.drive(h.proposal(2, other, pol_round=0))
    assert [v.block_hash for v in own_votes(h, out)] == [NIL]


def test_valid_value_is_reproposed_with_its_pol_round():
    for me in ("v0", "v1", "v2", "v3"):
        h = Harness(me=me)
        h.start()
        if h.proposer(0) == me:
            continue
        rounds = [r for r in range(1, 6) if h.proposer(r) == me]
        b = lock_on(h, 0)
        assert h.engine.valid == (0, b.hash())
        for r in range(rounds[0]):
            h.votes(others(h, 3), "precommit", r, None)
            out = h.drive(TimeoutFired(PRECOMMIT, 1, r))
        props = [a.msg for a in out if isinstance(a, Broadcast) and isinstance(a.msg, Proposal)]
        assert [(p.round, p.pol_round, p.block.hash()) for p in props] == [
            (rounds[0], 0, b.hash())]
        relayed = [a.msg for a in out if isinstance(a, Broadcast) and isinstance(a.msg, Vote)
                   and a.msg.round == 0]
        assert len(relayed) >= 3  # the POL travels with the re-proposal
        return
    pytest.fail("no layout where the engine proposes after round 0")


def test_polka_seen_late_updates_valid_value_without_relocking():
    h = non_proposer_harness()
    b = h.block(h.proposer(0))
    h.drive(h.proposal(0, b))
    h.votes(others(h, 3), "prevote", 0, None)  # we prevoted b; the others nil
    assert h.engine.phase == Phase.PRECOMMIT and h.engine.locked == (-1, None)


# ---------------------------------------------------------------- validity


def test_invalid_block_gets_a_nil_prevote():
    h = non_proposer_harness()
    good = h.block(h.proposer(0))
    bad = h.chain.make_block(1, good.header.time_ms, good.header.proposer, good.txs,
                             state_root=b"\x07" * 32)
    out = h.drive(h.proposal(0, bad))
    assert [v.block_hash for v in own_votes(h, out)] == [NIL]


def test_block_time_must_follow_the_rule():
    h = non_proposer_harness()
    early = h.block(h.proposer(0), time_ms=GENESIS_MS + 5)  # height 1 must be genesis + 1
    out = h.drive(h.proposal(0, early))
    assert [v.block_hash for v in own_votes(h, out)] == [NIL]


def test_block_time_is_the_weighted_median_of_the_last_commit():
    h = Harness(names=["a", "b", "c", "d"], powers=[1, 1, 1, 3], me=None)
    h.start()
    b = h.block(h.proposer(0))
    assert b.header.time_ms == GENESIS_MS + 1
    h.drive(h.proposal(0, b))
    h.votes(["a", "b", "c", "d"], "prevote", 0, b)
    for name, t in (("a", 5000), ("b", 1000), ("c", 999_000), ("d", 7000)):
        h.drive(h.vote(name, "precommit", 0, b, time_ms=GENESIS_MS + t))
    assert h.chain.height() == 1
    commit = h.chain.commits[0]
    want = max(weighted_median_time(h.vset, commit), b.header.time_ms + 1)
    assert h.engine.block_time_ms() == want == GENESIS_MS + 7000


def test_votes_never_carry_a_time_before_the_block():
    h = non_proposer_harness()
    b = h.block(h.proposer(0))
    out = h.drive(h.proposal(0, b), now=0)  # the local clock is far behind block time
    (v,) = own_votes(h, out)
    assert v.time_ms == b.header.time_ms + 1


# ---------------------------------------------------------------- validator set changes


def test_validator_set_can_change_between_heights():
    h = Harness(names=["a", "b", "c", "d"], me="a")
    h.start()
    b = h.block(h.proposer(0))
    h.drive(h.proposal(0, b))
    h.votes(others(h, 3), "prevote", 0, b)
    h.votes(others(h, 3), "precommit", 0, b)
    assert h.chain.height() == 1
    # Height 2: "d" leaves, "e" joins with power 2.
    e = PrivateKey.from_name("e")
    h.keys["e"] = e
    h.names[e.address] = "e"
    vals = [v for v in h.vset.validators if v.name != "d"] + [Validator(e.public_key, 2, "e")]
    new = ValidatorSet.of(vals)
    eng = Engine(CHAIN_ID, h.keys["a"], TEST_CONFIG)
    eng.step(Recover(1, h.vset, GENESIS_MS), 0)
    eng.last = h.engine.last
    eng.step(StartHeight(2, new, h.chain.last_block_time_ms()), 0)
    assert eng.validators == new and eng.height == 2
    assert eng.proposer(0) in {v.address for v in new.validators}
    assert eng.pub_key_of(h.addr("d")) is None and eng.pub_key_of(e.address) == e.public_key


def test_votes_from_non_validators_are_ignored():
    h = non_proposer_harness()
    stranger = PrivateKey.from_name("stranger")
    v = Vote(VOTE_PREVOTE, 1, 0, NIL, 5, stranger.address, b"")
    v = Vote(VOTE_PREVOTE, 1, 0, NIL, 5, stranger.address,
             stranger.sign(v.sign_bytes(CHAIN_ID)))
    replica = Replica(h.engine)
    assert replica.receive(encode_message(v), 0) == []
    assert replica.stats.get("rejected") == 1


# ---------------------------------------------------------------- round skip


def test_more_than_a_third_in_a_later_round_pulls_us_forward():
    h = non_proposer_harness()
    a, b = others(h, 2)
    h.drive(h.vote(a, "prevote", 3, None))
    assert h.engine.round == 0  # 1 of 4 is not more than 1/3
    h.drive(h.vote(b, "prevote", 5, None))
    assert h.engine.round == 3  # 2 of 4 are at round >= 3


# ---------------------------------------------------------------- WAL recovery


def test_restart_recovers_votes_and_lock_and_never_signs_a_conflict():
    h = non_proposer_harness()
    b = lock_on(h, 0)
    before = [v for v in h.engine.signed_messages() if isinstance(v, Vote)]
    assert {(v.type, v.block_hash) for v in before} == {(VOTE_PREVOTE, b.hash()),
                                                         (VOTE_PRECOMMIT, b.hash())}
    out = h.restart(now=5000)
    eng = h.engine
    assert eng.round == 0 and eng.phase == Phase.PRECOMMIT and eng.locked == (0, b.hash())
    resent = [a.msg for a in out if isinstance(a, Broadcast) and not a.forward]
    assert set(resent) == set(before)              # the same signed bytes, re-sent
    passed_on = [a.msg for a in out if isinstance(a, Broadcast) and a.forward]
    assert all(getattr(m, "validator", None) != eng.address for m in passed_on)
    assert not any(isinstance(a, PersistWAL) for a in out)
    # Whatever arrives now, nothing new is signed for round 0.
    other = h.block(h.proposer(0), variant=1)
    acts = h.drive(h.proposal(0, other))
    acts += h.drive(TimeoutFired(PROPOSE, 1, 0))
    acts += h.drive(TimeoutFired(PREVOTE, 1, 0))
    for n in others(h, 3):
        acts += h.drive(h.vote(n, "prevote", 0, other))
    assert own_votes(h, acts) == []


def test_restart_keeps_the_valid_value_and_its_pol_for_reproposal():
    # Locked validators that forget their valid value after a crash could never be
    # released: nobody else may hold the POL. (A simulator seed found this.)
    for me in ("v0", "v1", "v2", "v3"):
        h = Harness(me=me)
        h.start()
        mine = [r for r in range(1, 4) if h.proposer(r) == me]
        if h.proposer(0) == me or not mine:
            continue
        b = lock_on(h, 0)
        h.restart(now=100)
        assert h.engine.valid == (0, b.hash()) and h.engine.locked == (0, b.hash())
        out: list = []
        for r in range(mine[0]):
            h.votes(others(h, 3), "precommit", r, None)
            out = h.drive(TimeoutFired(PRECOMMIT, 1, r))
        sent = [a.msg for a in out if isinstance(a, Broadcast)]
        props = [m for m in sent if isinstance(m, Proposal)]
        assert [(p.pol_round, p.block.hash()) for p in props] == [(0, b.hash())]
        pol = [m for m in sent if isinstance(m, Vote) and m.round == 0 and m.type == VOTE_PREVOTE]
        assert len(pol) >= 3
        return
    pytest.fail("no suitable layout")


def test_restart_in_propose_step_does_not_sign_a_second_proposal():
    for me in ("v0", "v1", "v2", "v3"):
        h = Harness(me=me)
        out = h.start()
        props = [a.msg for a in out if isinstance(a, Broadcast) and isinstance(a.msg, Proposal)]
        if not props:
            continue
        # Crash right after the proposal and the own prevote were persisted and sent.
        out = h.restart(now=10)
        again = [a.msg for a in out if isinstance(a, Broadcast) and isinstance(a.msg, Proposal)]
        assert again == props and not any(isinstance(a, PersistWAL) for a in out)
        return
    pytest.fail("no validator proposes at height 1")


def test_the_guard_refuses_to_sign_a_different_vote_for_the_same_step():
    h = non_proposer_harness()
    h.drive(TimeoutFired(PROPOSE, 1, 0))             # signs a nil prevote
    eng = h.engine
    eng.phase = Phase.PROPOSE                       # simulate a bug that re-enters the step
    b = h.block(h.proposer(0))
    out = h.drive(h.proposal(0, b))
    assert own_votes(h, out) == [] and eng.stats["refused_resign"] == 1


def test_decided_but_not_committed_before_a_crash_is_committed_on_restart():
    h = non_proposer_harness()
    b = lock_on(h, 0)

    def crash(block, commit):  # the process dies after the WAL append, before the commit
        raise RuntimeError("crash")

    h.chain.commit_block = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        h.votes(others(h, 2), "precommit", 0, b)
    assert isinstance(h.log[-1], CommitBlock)
    h.chain = FakeChain(CHAIN_ID, h.vset, GENESIS_MS)  # the chain never saw block 1
    out = h.restart()
    assert any(isinstance(a, CommitBlock) and a.block.hash() == b.hash() for a in out)
    assert h.chain.height() == 1 and h.engine.height == 2


def test_a_wal_ahead_of_the_chain_refuses_to_start():
    h = non_proposer_harness()
    k = h.keys[h.me]
    u = Vote(VOTE_PREVOTE, 3, 0, NIL, 5, k.address, b"")
    ahead = Vote(VOTE_PREVOTE, 3, 0, NIL, 5, k.address, k.sign(u.sign_bytes(CHAIN_ID)))
    eng = Engine(CHAIN_ID, k, TEST_CONFIG)
    with pytest.raises(WalAheadOfChainError):
        eng.step(Recover(1, h.vset, GENESIS_MS, (ahead,)), 0)


def test_every_broadcast_of_an_own_signature_is_preceded_by_its_wal_record():
    h = non_proposer_harness()
    b = lock_on(h, 0)
    h.votes(others(h, 2), "precommit", 0, b)
    persisted: set[object] = set()
    me = h.addr(h.me)
    for a in h.log:
        if isinstance(a, PersistWAL):
            persisted.add(a.record)
        elif isinstance(a, Broadcast) and isinstance(a.msg, (Vote, Proposal)):
            if isinstance(a.msg, Vote) and a.msg.validator != me:
                continue
            assert a.msg in persisted, "sent before it was persisted"
            assert a.data == encode_message(a.msg)


# ---------------------------------------------------------------- evidence


def test_double_vote_produces_verifiable_evidence():
    h = non_proposer_harness()
    b = h.block(h.proposer(0))
    x = others(h, 1)[0]
    h.drive(h.vote(x, "prevote", 0, b))
    out = h.drive(h.vote(x, "prevote", 0, None))
    (rep,) = [a for a in out if isinstance(a, ReportEvidence)]
    ev = rep.evidence
    assert ev.validator == h.addr(x) and ev.verify(CHAIN_ID, h.vset) is None
    assert h.engine.evidence == [ev]
    assert DuplicateVoteEvidence.of(ev.vote_b, ev.vote_a) == ev  # canonical
    # The same pair again is not reported twice.
    assert not any(isinstance(a, ReportEvidence) for a in h.drive(h.vote(x, "prevote", 0, b)))
    forged = DuplicateVoteEvidence(ev.vote_a, Vote(
        ev.vote_b.type, ev.vote_b.height, ev.vote_b.round, ev.vote_b.block_hash,
        ev.vote_b.time_ms, ev.vote_b.validator, b"\x01" * 64))
    assert forged.verify(CHAIN_ID, h.vset) is not None
    same = DuplicateVoteEvidence(ev.vote_a, ev.vote_a)
    assert same.verify(CHAIN_ID, h.vset) is not None


def test_an_equivocators_votes_count_for_each_block_they_name():
    # The POL that locked others may need the vote this node saw second.
    h = non_proposer_harness()
    b = h.block(h.proposer(0))
    h.drive(h.proposal(0, b))
    x, y = others(h, 2)
    h.drive(h.vote(x, "prevote", 0, None))   # x shows us nil first...
    h.drive(h.vote(y, "prevote", 0, b))
    out = h.drive(h.vote(x, "prevote", 0, b))  # ...then its prevote for b
    assert any(isinstance(a, ReportEvidence) for a in out)
    assert [v.type for v in own_votes(h, out)] == [VOTE_PRECOMMIT]  # 3 prevotes for b


# ---------------------------------------------------------------- messages


def test_vote_sign_bytes_are_the_chains():
    k = PrivateKey.from_name("x")
    v = Vote(VOTE_PRECOMMIT, 3, 1, b"\x01" * 32, 99, k.address, b"\x00" * 64)
    assert v.sign_bytes("c") == vote_sign_bytes("c", VOTE_PRECOMMIT, 3, 1, b"\x01" * 32, 99)


def test_messages_round_trip_and_reject_bad_shapes():
    h = Harness()
    h.start()
    b = h.block("v0")
    p = h.proposal(0, b).proposal
    v = h.vote("v1", "prevote", 0, b).vote
    commit = Commit(1, 0, b.hash(), (CommitSig(h.addr("v1"), 5, b"\x02" * 64),))
    for m in (p, v, Decision(b, commit), SyncRequest(4, 77)):
        assert decode_message(encode_message(m)) == m
    bad = [
        b"",
        b"\xff\x00",
        encode(["vote", {"x": 1}]),
        encode(["nope", {}]),
        encode_message(Vote(9, 1, 0, NIL, 0, v.validator, v.sig)),
        encode_message(Vote(1, 1, 0, b"short", 0, v.validator, v.sig)),
        encode_message(Vote(1, 0, 0, NIL, 0, v.validator, v.sig)),
        encode_message(Proposal(1, 0, 0, b, 0, None, p.sig)),   # pol_round must be < round
        encode_message(SyncRequest(0)),
    ]
    for raw in bad:
        with pytest.raises(DecodeError):
            decode_message(raw)


def test_wal_record_of_a_signed_message_is_its_wire_encoding():
    h = Harness()
    h.start()
    v = h.vote("v1", "prevote", 0, None).vote
    assert encode_record(v) == encode_message(v)


# ---------------------------------------------------------------- the admission gate


def test_replica_drops_garbage_and_duplicates_and_verifies_once():
    h = non_proposer_harness()
    calls = []

    def counting(pub, msg, sig):
        from sharechain.crypto import verify
        calls.append(1)
        return verify(pub, msg, sig)

    r = Replica(h.engine, verifier=counting)
    v = h.vote(others(h, 1)[0], "prevote", 0, None).vote
    raw = encode_message(v)
    assert r.receive(b"\x00garbage", 0) == [] and r.stats["garbage"] == 1
    r.receive(raw, 0)
    r.receive(raw, 0)
    assert len(calls) == 1 and r.stats["duplicate"] == 1
    forged = Vote(v.type, v.height, v.round, v.block_hash, v.time_ms + 1, v.validator, v.sig)
    r.receive(encode_message(forged), 0)
    assert r.stats["rejected"] == 1


def test_replica_buffers_the_next_heights_and_drops_far_future_ones():
    h = non_proposer_harness()
    r = Replica(h.engine)
    x = others(h, 1)[0]
    k = h.keys[x]

    def vote_at(height: int) -> bytes:
        u = Vote(VOTE_PREVOTE, height, 0, NIL, 5, k.address, b"")
        return encode_message(Vote(VOTE_PREVOTE, height, 0, NIL, 5, k.address,
                                   k.sign(u.sign_bytes(CHAIN_ID))))

    out = r.receive(vote_at(2), 0)
    assert r._future_msgs == 1 and out == []
    r.receive(vote_at(1 + FUTURE_HEIGHTS_MAX + 5), 0)
    assert r.stats["future_dropped"] == 1
    # Falling behind is noticed: after a sync interval, the engine asks for decisions.
    out = r.step(FutureHeightSeen(2, k.address), TEST_CONFIG.sync_interval_ms + 1)
    assert any(isinstance(a, Broadcast) and isinstance(a.msg, SyncRequest) for a in out)


# ---------------------------------------------------------------- commit helpers


def _random_commit(rng: random.Random, keys: dict, vset: ValidatorSet, bh: bytes) -> Commit:
    sigs = []
    for name in rng.sample(sorted(keys), rng.randint(0, len(keys))):
        t = rng.randint(0, 10_000)
        sig = keys[name].sign(vote_sign_bytes(CHAIN_ID, VOTE_PRECOMMIT, 5, 0, bh, t))
        if rng.random() < 0.1:
            sig = bytes(64)
        sigs.append(CommitSig(keys[name].address, t, sig))
    if sigs and rng.random() < 0.1:
        sigs.append(sigs[0])
    return Commit(5, 0, bh, tuple(sigs))


def _median_time_reference(idx, commit: Commit) -> int:
    """The power-weighted median over the index (the rule consensus used to copy)."""
    pairs = sorted((cs.time_ms, idx.power[cs.validator]) for cs in commit.sigs
                   if cs.validator in idx.power)
    half = sum(p for _, p in pairs) // 2
    acc = 0
    for t, p in pairs:
        acc += p
        if acc > half:
            return t
    return pairs[-1][0] if pairs else 0


def test_check_commit_and_median_agree_with_the_chain_versions():
    rng = random.Random(5)
    keys, vset = make_validators([f"k{i}" for i in range(6)], [1, 2, 3, 1, 5, 2])
    idx = index_of(vset)
    bh = b"\x09" * 32
    for _ in range(200):
        c = _random_commit(rng, keys, vset, bh)
        try:
            verify_commit(CHAIN_ID, vset, c, bh, 5)
            want = None
        except ShareChainError as exc:
            want = exc.message
        assert check_commit(CHAIN_ID, idx, c, bh, 5) == want
        assert _median_time_reference(idx, c) == weighted_median_time(vset, c)


# ---------------------------------------------------------------- the WAL format


def _records(h: Harness) -> list:
    b = lock_on(h, 0)
    h.votes(others(h, 2), "precommit", 0, b)
    return [a.record for a in h.log if isinstance(a, PersistWAL)]


def test_wal_torn_tail_is_truncated_and_corruption_elsewhere_is_an_error():
    recs = _records(non_proposer_harness())
    data = WAL_MAGIC + b"".join(frame(encode_record(r)) for r in recs)
    for cut in range(len(WAL_MAGIC), len(data)):
        payloads, good = scan(data[:cut])
        assert good <= cut and len(payloads) <= len(recs)
    payloads, good = scan(data + b"\x00" * 100)   # a zero-filled tail
    assert len(payloads) == len(recs) and good == len(data)
    last = len(frame(encode_record(recs[-1])))
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF                            # damage inside the final record
    assert len(scan(bytes(flipped))[0]) == len(recs) - 1
    flipped = bytearray(data)
    flipped[len(data) - last - 5] ^= 0xFF          # damage in an earlier record
    with pytest.raises(WalCorruptError):
        scan(bytes(flipped))
    with pytest.raises(WalCorruptError):
        scan(b"NOTAWAL!" + data[8:])


def test_memory_wal_tear_then_recover():
    recs = _records(non_proposer_harness())
    w = MemoryWal()
    for r in recs:
        w.append_sync(r)
    w.tear(recs[0], 20)
    assert w.recover() == recs
    assert w.recover() == recs  # idempotent


def test_file_wal_round_trip_reset_and_repair(tmp_path):
    recs = _records(non_proposer_harness())
    path = tmp_path / "cs.wal"
    w = FileWal(path)
    assert w.recover() == []
    for r in recs:
        w.append_sync(r)
    w.close()
    with open(path, "ab") as f:
        f.write(frame(encode_record(recs[0]))[:17])  # a torn append
    w2 = FileWal(path)
    assert w2.recover() == recs
    decided = [r for r in recs if isinstance(r, WalDecided)]
    w2.reset(tuple(decided))
    w2.close()
    assert FileWal(path).recover() == decided
    raw = bytearray(path.read_bytes())
    raw[len(WAL_MAGIC) + 40] ^= 0xFF
    path.write_bytes(bytes(raw) + frame(b"x" * 10))
    with pytest.raises(WalCorruptError):
        FileWal(path).recover()


def test_wal_caps_record_size():
    with pytest.raises(WalError):
        frame(b"")
    with pytest.raises(WalError):
        frame(b"x" * (8 * 1024 * 1024 + 1))


def test_a_full_disk_under_the_file_wal_is_a_clear_fatal_error(tmp_path, monkeypatch):
    """ENOSPC on an append or a reset stops the node with disk_full (what it should do),
    and the log still recovers what was written before; other I/O errors pass through."""
    import errno
    import os

    from sharechain.errors import FatalError

    recs = _records(non_proposer_harness())
    w = FileWal(tmp_path / "cs.wal")
    w.recover()
    w.append_sync(recs[0])
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(FatalError) as err:
        w.append_sync(recs[1])
    assert err.value.code == "disk_full" and "free space" in err.value.message
    with pytest.raises(FatalError):
        w.reset((recs[0],))
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "EIO")))
    with pytest.raises(OSError) as io_err:
        FileWal(tmp_path / "other.wal").recover()
    assert io_err.value.errno == errno.EIO
    monkeypatch.setattr(os, "fsync", real_fsync)
    w.close()
    assert FileWal(tmp_path / "cs.wal").recover()[:1] == recs[:1]
