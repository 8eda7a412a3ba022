"""The asyncio driver with real timers: a LocalBus of 4 validators, a lone validator, the
persist-before-send order, restarts and block sync."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sharechain.chain.types import verify_commit
from sharechain.consensus.bft import BftConfig, BftDriver, FileWal, LocalBus, MemoryWal
from sharechain.consensus.bft.engine import WalAheadOfChainError
from sharechain.consensus.bft.local import local_drivers
from sharechain.consensus.bft.messages import Vote, decode_message
from sharechain.consensus.bft.wal import (
    WAL_MAGIC,
    WalCorruptError,
    WalRecord,
    encode_record,
    frame,
)
from sharechain.sim.fakechain import FakeChain
from sharechain.sim.harness import CHAIN_ID, make_validators

FAST = BftConfig(timeout_propose_ms=400, timeout_propose_delta_ms=100,
                 timeout_prevote_ms=100, timeout_prevote_delta_ms=50,
                 timeout_precommit_ms=100, timeout_precommit_delta_ms=50,
                 timeout_commit_ms=20, rebroadcast_ms=200, sync_interval_ms=100)
WAIT_S = 20


def cluster(n: int):
    keys, vset = make_validators([f"d{i}" for i in range(n)])
    signers = [keys[f"d{i}"] for i in range(n)]
    chains = [FakeChain(CHAIN_ID, vset, 1_700_000_000_000) for _ in range(n)]
    return signers, vset, chains


async def wait_until(cond: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def check_chains_agree(chains: list[FakeChain], vset) -> None:
    top = min(c.height() for c in chains)
    for h in range(1, top + 1):
        hashes = {c.blocks[h - 1].hash() for c in chains}
        assert len(hashes) == 1, f"disagreement at height {h}"
        for c in chains:
            verify_commit(CHAIN_ID, vset, c.commits[h - 1], c.blocks[h - 1].hash(), h)
    times = [b.header.time_ms for b in chains[0].blocks]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_four_drivers_on_a_local_bus_commit_heights():
    async def main() -> None:
        signers, vset, chains = cluster(4)
        _, drivers = local_drivers(chains, signers, [MemoryWal() for _ in range(4)], FAST)
        for d in drivers:
            await d.start()
        await wait_until(lambda: min(c.height() for c in chains) >= 5)
        for d in drivers:
            await d.stop()
        check_chains_agree(chains, vset)

    asyncio.run(main())


class Recorder:
    """A transport and a WAL that log into one shared list, to check their order."""

    def __init__(self, log: list[tuple[str, object]], inner: MemoryWal) -> None:
        self.log = log
        self.inner = inner

    def recover(self) -> list[WalRecord]:
        return self.inner.recover()

    def append_sync(self, rec: WalRecord, data: bytes = b"") -> None:
        self.inner.append_sync(rec, data)
        self.log.append(("wal", rec))

    def reset(self, recs: tuple[WalRecord, ...]) -> None:
        self.inner.reset(recs)

    def broadcast(self, msg_bytes: bytes) -> None:
        self.log.append(("send", decode_message(msg_bytes)))

    def set_receiver(self, callback: object) -> None:
        pass

    def relay(self, msg_bytes: bytes) -> None:
        pass

    def reject(self, msg_bytes: bytes, reason: str) -> None:
        pass


def test_one_validator_behaves_like_solo_and_persists_before_sending():
    async def main() -> None:
        signers, vset, chains = cluster(1)
        log: list[tuple[str, object]] = []
        rec = Recorder(log, MemoryWal())
        d = BftDriver(chains[0], signers[0], rec, rec, FAST)
        await d.start()
        await wait_until(lambda: chains[0].height() >= 5)
        await d.stop()
        check_chains_agree(chains, vset)
        # Blocks come one commit pause apart, each certified by the lone validator.
        assert all(len(c.sigs) == 1 for c in chains[0].commits)
        persisted: set[object] = set()
        sent_votes = 0
        for kind, item in log:
            if kind == "wal":
                persisted.add(item)
            elif isinstance(item, Vote):
                sent_votes += 1
                assert item in persisted, "a vote left the node before its WAL record"
        assert sent_votes >= 10

    asyncio.run(main())


def test_a_restarted_driver_recovers_from_its_file_wal_and_never_equivocates(tmp_path):
    async def main() -> None:
        signers, vset, chains = cluster(4)
        bus = LocalBus()
        wals = [FileWal(tmp_path / f"wal{i}") for i in range(4)]
        sent: dict[tuple[bytes, int, int, int], set[bytes]] = {}

        def spy(ep):
            orig = ep.broadcast

            def broadcast(data: bytes) -> None:
                m = decode_message(data)
                if isinstance(m, Vote):
                    sent.setdefault((m.validator, m.height, m.round, m.type), set()).add(
                        m.block_hash)
                orig(data)
            ep.broadcast = broadcast
            return ep

        drivers = [BftDriver(chains[i], signers[i], spy(bus.endpoint()), wals[i], FAST)
                   for i in range(4)]
        for d in drivers:
            await d.start()
        await wait_until(lambda: min(c.height() for c in chains) >= 2)
        await drivers[0].stop()
        wals[0].close()
        await asyncio.sleep(0.3)  # the other three go on (3 of 4 is a quorum)
        restarted = BftDriver(chains[0], signers[0], spy(bus.endpoint()),
                              FileWal(tmp_path / "wal0"), FAST)
        await restarted.start()
        target = max(c.height() for c in chains) + 3
        await wait_until(lambda: min(c.height() for c in chains) >= target)
        for d in [restarted, *drivers[1:]]:
            await d.stop()
        check_chains_agree(chains, vset)
        assert all(len(v) == 1 for v in sent.values()), "a validator signed two votes"

    asyncio.run(main())


def test_resync_after_block_sync_moves_the_engine_forward():
    async def main() -> None:
        signers, vset, chains = cluster(4)
        bus = LocalBus()
        drivers = [BftDriver(chains[i], signers[i], bus.endpoint(), MemoryWal(), FAST)
                   for i in range(3)]
        for d in drivers:
            await d.start()
        await wait_until(lambda: min(c.height() for c in chains[:3]) >= 4)
        # The fourth node syncs the first blocks "by block sync", then starts consensus.
        late = chains[3]
        for b, c in zip(chains[0].blocks[:3], chains[0].commits[:3], strict=True):
            late.commit_block(b, c)
        d3 = BftDriver(late, signers[3], bus.endpoint(), MemoryWal(), FAST)
        await d3.start()
        for b, c in zip(chains[0].blocks[3:4], chains[0].commits[3:4], strict=True):
            late.commit_block(b, c)
        d3.resync()
        target = max(c.height() for c in chains) + 2
        await wait_until(lambda: min(c.height() for c in chains) >= target)
        assert d3.engine.height >= target
        for d in [*drivers, d3]:
            await d.stop()
        check_chains_agree(chains, vset)

    asyncio.run(main())


def test_start_refuses_a_corrupt_wal_or_one_ahead_of_the_chain(tmp_path):
    async def main() -> None:
        signers, _, chains = cluster(1)
        k = signers[0]
        u = Vote(1, 5, 0, b"", 1, k.address, b"")
        ahead = Vote(1, 5, 0, b"", 1, k.address, k.sign(u.sign_bytes(CHAIN_ID)))
        path = tmp_path / "ahead.wal"
        path.write_bytes(WAL_MAGIC + frame(encode_record(ahead)))
        with pytest.raises(WalAheadOfChainError):
            await BftDriver(chains[0], k, LocalBus().endpoint(), FileWal(path), FAST).start()
        bad = bytearray(WAL_MAGIC + frame(encode_record(ahead)) * 2)
        bad[len(WAL_MAGIC) + 40] ^= 0xFF
        path.write_bytes(bytes(bad))
        with pytest.raises(WalCorruptError):
            await BftDriver(chains[0], k, LocalBus().endpoint(), FileWal(path), FAST).start()

    asyncio.run(main())


def test_validation_awaits_prevalidate_then_checks_and_reports_either_verdict():
    # A proposal's unseen txs have their signatures checked by ``prevalidate`` (worker
    # processes, awaited: the loop runs on meanwhile); ``validate_block`` follows only if
    # that found nothing wrong, and an exception in either is an invalid block.
    from sharechain.consensus.bft.events import BlockValidated, ValidateBlock

    class Connector(FakeChain):
        def __init__(self, *a, pre: str | None = None, boom: bool = False) -> None:
            super().__init__(*a)
            self.calls: list[str] = []
            self.pre, self.boom = pre, boom

        async def prevalidate(self, block):
            self.calls.append("prevalidate")
            await asyncio.sleep(0)  # the driver must await it, not call it and move on
            if self.boom:
                raise RuntimeError("worker pool gone")
            return self.pre

        def validate_block(self, block):
            self.calls.append("validate_block")
            return super().validate_block(block)

    async def verdict(**kw) -> tuple[BlockValidated, list[str]]:
        signers, vset, _ = cluster(1)
        c = Connector(CHAIN_ID, vset, 1_700_000_000_000, **kw)
        block = c.propose_block(1, 1_700_000_001_000, signers[0].address)
        d = BftDriver(c, signers[0], LocalBus().endpoint(), MemoryWal(), FAST)
        out = await d._perform(ValidateBlock(1, block, block.hash()))
        assert isinstance(out, BlockValidated) and out.block_hash == block.hash()
        return out, c.calls

    ok, calls = asyncio.run(verdict())
    assert ok.error is None and calls == ["prevalidate", "validate_block"]
    bad, calls = asyncio.run(verdict(pre="block holds a tx with a bad signature"))
    assert bad.error == "block holds a tx with a bad signature" and calls == ["prevalidate"]
    boom, _ = asyncio.run(verdict(boom=True))
    assert "worker pool gone" in boom.error
