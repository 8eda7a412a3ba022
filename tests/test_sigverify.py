"""Batch signature verification in worker processes: verdicts, fallbacks, worker death."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from sharechain.crypto import PrivateKey
from sharechain.errors import ShareChainError
from sharechain.node.home import NodeConfig
from sharechain.node.testnet import write_testnet
from sharechain.sigverify import INLINE_MAX, SignatureVerifier, shared_machine_processes, verify_chunk


def _triples(n: int, bad: set[int]) -> list[tuple[bytes, bytes, bytes]]:
    k = PrivateKey.from_name("sigverify")
    out = []
    for i in range(n):
        msg = b"message %d" % i
        sig = k.sign(msg)
        if i in bad:
            sig = bytes([sig[0] ^ 1]) + sig[1:]
        out.append((k.public_key, msg, sig))
    return out


def _expected(n: int, bad: set[int]) -> bytes:
    return bytes(0 if i in bad else 1 for i in range(n))


@pytest.fixture
def verifier():
    v = SignatureVerifier(processes=2)
    yield v
    v.close()


def test_big_batches_are_verified_in_workers_with_per_item_verdicts(verifier) -> None:
    n, bad = 5 * INLINE_MAX + 3, {0, 7, 200, 5 * INLINE_MAX + 2}
    assert verifier.verify(_triples(n, bad)) == _expected(n, bad)
    assert verifier._pool is not None  # the batch went to the workers


def test_async_verification_matches(verifier) -> None:
    n, bad = 3 * INLINE_MAX, {1, 2, 3}
    got = asyncio.run(verifier.verify_async(_triples(n, bad)))
    assert got == _expected(n, bad)


def test_small_batches_stay_inline(verifier) -> None:
    assert verifier.verify(_triples(INLINE_MAX, {5})) == _expected(INLINE_MAX, {5})
    assert verifier._pool is None


def test_malformed_keys_and_signatures_are_false_not_errors() -> None:
    good = _triples(1, set())[0]
    bad = [(b"short", good[1], good[2]), (good[0], good[1], b"x" * 10)]
    assert verify_chunk([*bad, good]) == b"\x00\x00\x01"


def test_a_killed_worker_loses_no_verdict(verifier) -> None:
    n, bad = 4 * INLINE_MAX, {9}
    assert verifier.verify(_triples(n, bad)) == _expected(n, bad)
    pool = verifier._pool
    assert pool is not None
    for pid in list(pool._processes):  # a worker dies (OOM killer, operator)
        os.kill(pid, signal.SIGKILL)
    # The broken pool is noticed and the batch verified inline; the next batch gets a new pool.
    assert verifier.verify(_triples(n, bad)) == _expected(n, bad)
    assert verifier.verify(_triples(n, {3})) == _expected(n, {3})
    assert asyncio.run(verifier.verify_async(_triples(n, bad))) == _expected(n, bad)


def test_processes_zero_verifies_inline_and_close_is_final() -> None:
    v = SignatureVerifier(processes=0)
    n = 3 * INLINE_MAX
    assert v.verify(_triples(n, {4})) == _expected(n, {4})
    assert v._pool is None
    w = SignatureVerifier(processes=1)
    w.close()
    assert w.verify(_triples(n, set())) == _expected(n, set())
    assert w._pool is None


def test_start_brings_every_worker_up_before_the_first_batch(verifier) -> None:
    verifier.start()
    pool = verifier._pool
    assert pool is not None and len(pool._processes) == verifier.processes
    assert all(p.is_alive() for p in pool._processes.values())
    n, bad = 4 * INLINE_MAX, {2}
    assert verifier.verify(_triples(n, bad)) == _expected(n, bad)
    assert verifier._pool is pool  # the batch used the started pool
    SignatureVerifier(processes=0).start()  # inline verifiers have nothing to start


def test_nodes_sharing_a_machine_get_the_cores_left_over_as_workers() -> None:
    # Each node's main thread takes a core first; what is left is split, at most 2 each.
    assert [shared_machine_processes(n, cores=2) for n in (1, 2, 4, 8)] == [1, 0, 0, 0]
    assert [shared_machine_processes(n, cores=16) for n in (1, 4, 5, 8, 16)] == [2, 2, 2, 1, 0]


def test_signature_workers_setting_is_checked_and_reaches_the_testnet_homes(tmp_path) -> None:
    assert NodeConfig.from_dict({"signature_workers": 0}).signature_workers == 0
    assert NodeConfig.from_dict({}).signature_workers is None
    for bad in (-1, 65, "2", 1.5, True):
        with pytest.raises(ShareChainError, match="signature_workers"):
            NodeConfig.from_dict({"signature_workers": bad})
    # A loopback testnet runs every node here: it writes the shared-machine count.
    homes = write_testnet(tmp_path / "lo", 4, base_p2p_port=0, base_api_port=0)
    assert {h.load_config().signature_workers for h in homes} == {shared_machine_processes(4)}
    # Homes for other machines keep the per-node default unless told otherwise.
    homes = write_testnet(tmp_path / "lan", 2, host="10.0.0.7")
    assert {h.load_config().signature_workers for h in homes} == {None}
    homes = write_testnet(tmp_path / "set", 2, host="10.0.0.7", signature_workers=1)
    assert {h.load_config().signature_workers for h in homes} == {1}
