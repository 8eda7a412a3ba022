"""BFT across real node processes on loopback: crashes, lost quorum, hostile peers, partitions."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import httpx
import pytest

from sharechain.chain.types import TxBody, sign_tx
from sharechain.client import Client
from sharechain.crypto import PrivateKey
from sharechain.errors import ShareChainError
from tests.netkit import LocalTestnet as Testnet

pytestmark = pytest.mark.integration

SINK = PrivateKey.from_name("erin").address


def _load(url: str, key: PrivateKey, stop: threading.Event, sent: list[str]) -> None:
    with Client(url, timeout_s=10) as c:
        while not stop.is_set():
            try:
                res = c.send(key, SINK, 1, wait=False)
                sent.append(res["hash"])
            except Exception:
                c._nonces.pop(key.address, None)
                time.sleep(0.1)
            time.sleep(0.02)


def _batch_load(urls: list[str], key: PrivateKey, stop: threading.Event, seed: int) -> None:
    """Batches of 100 transfers to a random node every ~0.2 s: blocks of ~20 KB and more,
    so proposals are relayed by announcement. Errors (a node down) are waited out."""
    import random

    rng = random.Random(seed)
    while not stop.is_set():
        try:
            with Client(rng.choice(urls), timeout_s=5) as c:
                nonce = c.next_nonce(key)
                c.submit_batch([c.build_tx(key, [("bank/send", {"to": SINK, "amount": 1})],
                                           nonce=nonce + i) for i in range(100)])
        except Exception:
            pass
        time.sleep(0.2)


def _tx_status(c: Client, tx_hash: str) -> str:
    """The tx's status on that node ("committed", "pending"), or "unknown" there yet."""
    try:
        return str(c.tx(tx_hash).get("status"))
    except ShareChainError as exc:
        assert exc.code == "tx_not_found", exc
        return "unknown"


def test_kill9_one_validator_under_load_then_it_catches_up(tmp_path):
    with Testnet(tmp_path, validators=4, interval_ms=300) as net:
        net.start()
        net.wait_height([0, 1, 2, 3], 3)
        stop = threading.Event()
        net.on_stop(stop.set)
        sent: list[str] = []
        loaders = [threading.Thread(target=_load, args=(net.procs[i].url, PrivateKey.from_name(n),
                                                        stop, sent), daemon=True)
                   for i, n in ((0, "alice"), (1, "bob"))]
        for t in loaders:
            t.start()
        time.sleep(1.5)
        net.procs[3].kill()
        h = net.height(0)
        net.wait_height([0, 1, 2], h + 5, 60)  # 3 of 4 keep committing
        net.procs[3].start()
        top = net.height(0)
        net.wait_height([3], top + 2, 90)      # it catches up and follows
        stop.set()
        for t in loaders:
            t.join(15)
        assert sent, "the load submitted transactions"
        final = min(net.height(i) for i in range(4))
        net.assert_same_chain([0, 1, 2, 3], final)
        with Client(net.procs[2].url) as c:  # txs submitted to node0/1 reached everyone
            committed = [h for h in sent[:20] if _tx_status(c, h) == "committed"]
            assert committed


def test_two_of_four_down_halts_without_fork_then_resumes(tmp_path):
    with Testnet(tmp_path, validators=4, interval_ms=300) as net:
        net.start()
        net.wait_height([0, 1, 2, 3], 3)
        net.procs[2].stop()
        net.procs[3].stop()
        time.sleep(1.0)
        stuck = net.height(0)
        time.sleep(4.0)
        assert net.height(0) <= stuck + 1 and net.height(1) <= stuck + 1, "no quorum, no commits"
        net.procs[2].start()
        net.procs[3].start()
        net.wait_height([0, 1, 2, 3], stuck + 4, 90)
        net.assert_same_chain([0, 1, 2, 3], min(net.height(i) for i in range(4)))


def test_partition_and_heal_no_divergence(tmp_path):
    with Testnet(tmp_path, validators=4, interval_ms=300, proxies=True) as net:
        net.start()
        net.wait_height([0, 1, 2, 3], 3)
        net.partition([0, 1], [2, 3])
        time.sleep(1.5)
        h = max(net.height(i) for i in range(4))
        time.sleep(4.0)
        assert max(net.height(i) for i in range(4)) <= h + 1, "a 2/2 split cannot commit"
        net.heal_all()
        net.wait_height([0, 1, 2, 3], h + 4, 90)
        net.assert_same_chain([0, 1, 2, 3], min(net.height(i) for i in range(4)))


def test_txs_and_proposals_cross_a_cut_link_by_announcement(tmp_path):
    # node0 and node2 cannot talk. node0 pushes its clients' txs whole to nodes 1 and 3,
    # which only announce them onwards; node2 must ask for them and get them. The same
    # holds for large proposals of node0 and node2.
    with Testnet(tmp_path, validators=4, interval_ms=300, proxies=True) as net:
        net.start()
        net.wait_height([0, 1, 2, 3], 2)
        net.partition([0], [2])
        alice = PrivateKey.from_name("alice")
        with Client(net.procs[0].url, timeout_s=10) as c:
            sent = [c.send(alice, SINK, 1, wait=False)["hash"] for _ in range(20)]
        deadline = time.monotonic() + 60
        with Client(net.procs[2].url) as c2:
            while time.monotonic() < deadline:  # (node2 may not have heard of one yet)
                if all(_tx_status(c2, h) == "committed" for h in sent):
                    break
                time.sleep(0.3)
            else:
                raise AssertionError("txs submitted to node0 did not commit on node2")
        s0, s1, s2 = (net.status(i)["p2p"]["stats"] for i in (0, 1, 2))
        assert s0["txs_gossiped_out"] >= 20 and s0["tx_hashes_announced"] == 0  # pushed whole
        assert s1["tx_hashes_announced"] >= 20 and s1["txs_gossiped_out"] == 0   # announced only
        assert s2["txs_requested"] >= 1   # node2 learned of them by hash and asked
        metrics = httpx.get(net.procs[2].url + "/metrics", timeout=5).text
        assert "sharechain_p2p_txs_requested_total" in metrics

        # Proposals of over 16 KiB are relayed by announcement: when node0 or node2
        # proposes one, the other hears of it only from nodes 1 and 3, and asks for it.
        def pulled() -> int:
            return sum(net.status(i)["p2p"]["stats"]["consensus_pulled"] for i in (0, 2))

        with Client(net.procs[0].url, timeout_s=10) as c:
            deadline = time.monotonic() + 60
            while pulled() < 1 and time.monotonic() < deadline:
                nonce = c.next_nonce(alice)
                raws = [c.build_tx(alice, [("bank/send", {"to": SINK, "amount": 1})],
                                   nonce=nonce + i) for i in range(120)]
                res = c.submit_batch(raws)
                assert res["accepted"] == 120
                c.wait_for_tx(res["results"][-1]["hash"])
        assert pulled() >= 1, "large proposals crossed the cut link by announcement"
        announced = [net.status(i)["p2p"]["stats"]["consensus_announced"] for i in range(4)]
        assert announced[1] >= 1 and announced[3] >= 1, announced
        h = min(net.height(i) for i in range(4))
        net.assert_same_chain([0, 1, 2, 3], h)


@pytest.mark.slow
def test_a_sparse_mesh_with_one_validator_down_recovers_from_a_restart(tmp_path):
    # node0 and node2 have no link and node3 is stopped: every height needs all three of
    # the others, and node0 and node2 hear each other only through node1. node2 is killed
    # while node0 and node1 wait for it, and restarted: the votes node0 cast meanwhile reach
    # it only if node1 passes them on (a relay forwards a message once, on first sight).
    with Testnet(tmp_path, validators=4, interval_ms=300, proxies=True) as net:
        net.start()
        net.wait_height([0, 1, 2, 3], 2)
        net.partition([0], [2])
        net.procs[3].stop()
        net.wait_height([0, 1, 2], net.height(0) + 3, 60)
        for _ in range(2):
            net.procs[2].kill()
            time.sleep(3.0)
            stuck = max(net.height(0), net.height(1))
            net.procs[2].start()
            net.wait_height([0, 1, 2], stuck + 3, 60)
        net.assert_same_chain([0, 1, 2], min(net.height(i) for i in range(3)))
        consensus = net.status(0)["consensus"]
        assert {"height", "round", "step", "locked_round"} <= consensus.keys()
        assert consensus["height"] >= net.height(0)


def test_hostile_peer_is_disconnected_and_honest_nodes_continue(tmp_path):
    import re

    from sharechain.p2p.peers import (
        CHANNEL_BLOCKSYNC,
        CHANNEL_CONSENSUS,
        CHANNEL_MEMPOOL,
        CHANNEL_P2P,
        CONTROL_PING,
    )
    from sharechain.p2p.secret_conn import handshake

    with Testnet(tmp_path, validators=4, interval_ms=300) as net:
        net.start()
        net.wait_height([0, 1, 2, 3], 3)
        target = net.homes[0]
        node_id = target.p2p_node_id()

        async def attack() -> tuple[bool, bool]:
            import nacl.signing

            # 1. garbage instead of a handshake
            r, w = await asyncio.open_connection("127.0.0.1", net.p2p_ports[0])
            w.write(os.urandom(4096))
            await w.drain()
            garbage_closed = (await asyncio.wait_for(r.read(1 << 16), 10)) is not None
            w.close()
            # 2. an authenticated peer that sends junk on every channel until banned
            r, w = await asyncio.open_connection("127.0.0.1", net.p2p_ports[0])
            conn = await handshake(r, w, nacl.signing.SigningKey.generate(), node_id, 10,
                                   network_id="net-test")
            junk_rejected = False
            try:
                for _ in range(200):
                    for ch in (CHANNEL_CONSENSUS, CHANNEL_MEMPOOL, CHANNEL_BLOCKSYNC):
                        await conn.send(bytes([ch]) + os.urandom(300))
                    await asyncio.sleep(0.01)
            except Exception:
                junk_rejected = True
            if not junk_rejected:
                try:
                    await asyncio.wait_for(conn.recv(), 5)
                    while True:
                        await asyncio.wait_for(conn.recv(), 5)
                except Exception:
                    junk_rejected = True
            conn.abort()
            return garbage_closed, junk_rejected

        async def closed_by(port: int, abuse) -> bool:
            """Whether the node closes an authenticated connection within 5 s of
            ``abuse(conn, w)`` (an idle one it would keep for its 30 s idle timeout)."""
            import nacl.signing

            r, w = await asyncio.open_connection("127.0.0.1", port)
            conn = await handshake(r, w, nacl.signing.SigningKey.generate(),
                                   node_id_of[port], 10, network_id="net-test")
            try:
                abuse(conn, w)
                await w.drain()
                until = time.monotonic() + 5
                while True:  # its consensus traffic until then, then the end of the stream
                    if not await asyncio.wait_for(r.read(1 << 16), until - time.monotonic()):
                        return True
            except TimeoutError:  # (an OSError too: caught first)
                return False
            except (ConnectionError, OSError):
                return True
            finally:
                conn.abort()

        def oversize(conn, w) -> None:  # 4. a frame header announcing 64 MiB
            w.write((64 << 20).to_bytes(4, "big"))

        def replay(conn, w) -> None:  # 5. a valid frame (a ping), then the same bytes again
            frame = conn._seal(bytes([CHANNEL_P2P, CONTROL_PING]) + bytes(8))
            w.write(frame + frame)

        node_id_of = {net.p2p_ports[i]: net.homes[i].p2p_node_id() for i in (2, 3)}

        async def lie() -> dict:
            """3. an authenticated peer that claims a far greater height and serves nothing:
            after one request timeout it is left alone and its height is not counted."""
            import nacl.signing

            from sharechain.encoding import encode
            from sharechain.p2p.secret_conn import node_id_from_pubkey

            key = nacl.signing.SigningKey.generate()
            liar_id = node_id_from_pubkey(bytes(key.verify_key))
            # node1: node0 has banned 127.0.0.1 for the junk above
            r, w = await asyncio.open_connection("127.0.0.1", net.p2p_ports[1])
            conn = await handshake(r, w, key, net.homes[1].p2p_node_id(), 10,
                                   network_id="net-test")
            claim = bytes([CHANNEL_BLOCKSYNC]) + encode({"t": "status", "height": 10**6})
            deadline = time.monotonic() + 30
            try:
                while True:
                    await conn.send(claim)
                    until = time.monotonic() + 0.5
                    try:  # read and ignore whatever comes, block requests included
                        while (left := until - time.monotonic()) > 0:
                            await asyncio.wait_for(conn.recv(), left)
                    except asyncio.TimeoutError:
                        pass
                    st = await asyncio.to_thread(net.status, 1)
                    mine = [p for p in st["p2p"]["peers"] if p["id"] == liar_id]
                    if mine and mine[0]["sync_cooldown_s"] > 0:
                        return {"status": st, "liar": mine[0]}
                    assert time.monotonic() < deadline, f"the liar was not set aside: {mine}"
            finally:
                conn.abort()

        garbage_closed, junk_rejected = asyncio.run(attack())
        assert garbage_closed and junk_rejected, "the hostile peer was cut off"
        assert asyncio.run(closed_by(net.p2p_ports[2], oversize)), "an oversize frame is refused"
        assert asyncio.run(closed_by(net.p2p_ports[3], replay)), "a replayed frame is refused"
        for i in (2, 3):  # counted as misbehaviour there
            metrics = httpx.get(net.procs[i].url + "/metrics", timeout=5).text
            assert re.search(r"sharechain_p2p_bans_total [1-9]", metrics), metrics[-2000:]
        h = net.height(0)
        net.wait_height([0, 1, 2, 3], h + 3, 60)
        peers = net.status(0)["p2p"]["peers"]
        assert len(peers) == 3, "only the honest validators stay connected"
        seen = asyncio.run(lie())
        assert seen["liar"]["sync_timeouts"] == 1 and seen["liar"]["height"] == 10**6
        assert seen["status"]["p2p"]["best_peer_height"] < 10**6, "its claim is not counted"
        assert seen["status"]["p2p"]["stats"]["sync_timeouts"] >= 1
        assert all(p["sync_timeouts"] == 0 for p in seen["status"]["p2p"]["peers"]
                   if p["id"] != seen["liar"]["id"])
        h = net.height(1)
        net.wait_height([0, 1, 2, 3], h + 2, 60)


def test_devnet_with_four_in_process_validators(tmp_path):
    import subprocess
    import sys

    from sharechain.node.launcher import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sharechain.cli.main", "devnet", "--home",
                             str(tmp_path / "dn"), "--validators", "4", "--api-port", str(port),
                             "--block-interval-ms", "200"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with Client(f"http://127.0.0.1:{port}") as c:
            deadline = time.monotonic() + 60
            while True:
                try:
                    c.status()
                    break
                except Exception:
                    assert time.monotonic() < deadline and proc.poll() is None, "devnet did not start"
                    time.sleep(0.2)
            res = c.send(PrivateKey.from_name("alice"), SINK, 5)
            assert res["result"]["ok"]
            assert c.status()["engine"] == "bft"
            block = c.block(res["height"])
            assert len(block["commit"]["sigs"]) >= 3, "committed by > 2/3 of 4 validators"
            proposers = {c.block(h)["header"]["proposer"] for h in range(1, res["height"] + 1)}
            assert len(proposers) > 1, "the proposer rotates"
    finally:
        proc.terminate()
        proc.wait(20)


def test_full_node_syncs_the_chain_then_follows(tmp_path):
    import httpx

    with Testnet(tmp_path, validators=4, interval_ms=200, full_nodes=1) as net:
        net.start([0, 1, 2, 3])
        net.wait_height([0, 1, 2, 3], 15)
        net.start([4])  # a non-validator that has never seen the chain
        target = net.height(0) + 3
        net.wait_height([4], target, 90)
        st = net.status(4)
        assert st["p2p"]["stats"]["blocks_synced"] > 0 or st["height"] >= target
        net.assert_same_chain([0, 4], target)
        metrics = httpx.get(net.procs[4].url + "/metrics", timeout=5).text
        assert "sharechain_height" in metrics and "sharechain_peers 4.0" in metrics
        assert "sharechain_committed_blocks_total" in metrics


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_network_soak_random_kills_and_partitions(tmp_path, seed):
    """A longer randomized fault run: ./dev.sh soak -k network_soak."""
    import random

    rng = random.Random(seed)
    stop = threading.Event()
    with Testnet(tmp_path, validators=4, interval_ms=200, proxies=True) as net:
        net.on_stop(stop.set)
        net.start()
        net.wait_height([0, 1, 2, 3], 3)
        load = threading.Thread(target=_batch_load, daemon=True,
                                args=([p.url for p in net.procs], PrivateKey.from_name("carol"),
                                      stop, seed))
        load.start()
        for _ in range(6):
            fault = rng.choice(["kill", "partition", "stop"])
            victim = rng.randrange(4)
            if fault == "kill":
                net.procs[victim].kill()
            elif fault == "stop":
                net.procs[victim].stop()
            else:
                others = [i for i in range(4) if i != victim]
                net.partition([victim], others)
            time.sleep(rng.uniform(1, 3))
            if fault in ("kill", "stop"):
                net.procs[victim].start()
            else:
                net.heal_all()
            h = max(net.height(i) for i in range(4) if net.procs[i].proc.poll() is None)
            net.wait_height([0, 1, 2, 3], h + 2, 120)
        stop.set()
        load.join(15)
        net.assert_same_chain([0, 1, 2, 3], min(net.height(i) for i in range(4)))
        stats = [net.status(i)["p2p"]["stats"] for i in range(4)]
        assert sum(s["consensus_announced"] for s in stats) > 0, "large proposals were relayed"


def test_full_node_catching_up_on_full_blocks_keeps_answering_its_api(tmp_path):
    """Block sync must not hold a node's event loop for a whole backlog: the node applies one
    block at a time (signatures checked in its workers) and serves its API in between."""
    senders = [PrivateKey.from_name(n) for n in ("alice", "bob", "carol", "dave", "faucet",
                                                  "regulator", "bureau", "gateway")]
    batches, per_batch = 56, 400
    with Testnet(tmp_path, validators=1, interval_ms=100, full_nodes=1) as net:
        net.start([0])
        with Client(net.procs[0].url, timeout_s=30) as c:
            fee = c.required_fee(["bank/send"])
            nonces = dict.fromkeys((k.address for k in senders), 0)
            raws = []
            for i in range(batches * per_batch):
                k = senders[i % len(senders)]
                body = TxBody("net-test", k.public_key, nonces[k.address], fee, 0,
                              (("bank/send", {"to": SINK, "amount": 1}),))
                raws.append(sign_tx(body, k.sign))
                nonces[k.address] += 1
            for b in range(batches):  # about one batch per block: a backlog of full blocks
                res = c.submit_batch(raws[b * per_batch:(b + 1) * per_batch])
                assert res["accepted"] == per_batch, res["results"][:3]
                time.sleep(0.1)
        deadline = time.monotonic() + 60
        while net.status(0)["mempool_txs"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        top = net.height(0)
        net.procs[0].stop()
        net.start([1])  # the full node is up and serving before it can reach its peer
        net.procs[0].start(wait=False)
        slowest = 0.0
        heights = set()
        started = time.monotonic()
        deadline = started + 90
        while True:
            t = time.monotonic()
            h = int(httpx.get(net.procs[1].url + "/v1/status", timeout=10).json()["height"])
            slowest = max(slowest, time.monotonic() - t)
            heights.add(h)
            if h >= top:
                break
            assert time.monotonic() < deadline, f"the full node is stuck at {h} of {top}"
            time.sleep(0.05)
        took = time.monotonic() - started
        # A node that held its loop for the backlog (56 blocks, less than one sync window)
        # would answer once, after about the whole catch-up. The bound is relative: other
        # tests' nodes may share the two cores (alone, the slowest answer takes < 1 s).
        assert slowest < max(1.0, took / 3), \
            f"/v1/status took {slowest:.2f}s of a {took:.2f}s catch-up"
        # It answered between blocks, not only between sync windows (of 64 blocks).
        seen = sorted(h for h in heights if 0 < h < top)
        assert len(seen) >= 5, f"the API answered during the sync only at heights {seen}"
        assert net.status(1)["p2p"]["stats"]["blocks_synced"] >= top // 2
        net.assert_same_chain([0, 1], top)


def _free_port_run(n: int) -> int:
    """A base port such that base .. base + n - 1 are all free on loopback now."""
    import random
    import socket

    for _ in range(200):
        base = random.randrange(20_000, 60_000 - n)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports found")


def _pids_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        out.append(int(entry))
            except OSError:
                pass
    return out


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds node processes through /proc")
@pytest.mark.parametrize("stop_signal", ["SIGINT", "SIGTERM"])
def test_localnet_starts_four_validators_and_stops_them_all(tmp_path, stop_signal):
    """`sharechain localnet`: four validator processes that reach consensus, all stopped by
    Ctrl-C and by SIGTERM alike, none left running without a parent."""
    import signal
    import subprocess
    import sys

    root = tmp_path / "ln"
    api = _free_port_run(4)
    p2p = _free_port_run(4)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharechain.cli.main", "localnet", "--validators", "4",
         "--dir", str(root), "--base-api-port", str(api), "--base-p2p-port", str(p2p),
         "--block-interval-ms", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, "localnet exited early"
            assert time.monotonic() < deadline, "the localnet did not reach height 2"
            try:
                st = [httpx.get(f"http://127.0.0.1:{api + i}/v1/status", timeout=2).json()
                      for i in range(4)]
                if all(s["height"] >= 2 and s["peers"] == 3 for s in st):
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.3)
        assert len(_pids_mentioning(str(root / "node"))) == 4
        proc.send_signal(getattr(signal, stop_signal))
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert b"stopped" in out
        # Not a terminal: plain status lines naming every node instead of a redrawn table.
        assert any(all(f"node{i} ".encode() in line for i in range(4))
                   for line in out.splitlines())
        assert _pids_mentioning(str(root / "node")) == [], "a node outlived the localnet"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{api}/v1/status", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _pids_mentioning(str(root / "node")):
            os.kill(pid, signal.SIGKILL)


def test_four_hosts_with_the_same_ports_form_a_network(tmp_path):
    """`testnet --hosts`: four loopback addresses stand for four machines; every node uses
    the same P2P and API ports on its own address, and they dial each other by address."""
    from sharechain.node.launcher import NodeProcess, free_port
    from sharechain.node.testnet import write_testnet

    hosts = [f"127.0.0.{i}" for i in range(1, 5)]
    homes = write_testnet(tmp_path, 4, "net-hosts", block_interval_ms=200, hosts=hosts,
                          base_p2p_port=free_port(), base_api_port=free_port())
    assert len({h.load_config().p2p_port for h in homes}) == 1
    procs = [NodeProcess(h) for h in homes]
    try:
        for p in procs:
            p.start(wait=False)
        for p in procs:
            p.wait_ready()
        assert [p.url.split("//")[1].split(":")[0] for p in procs] == hosts
        deadline = time.monotonic() + 60
        while True:
            st = [httpx.get(p.url + "/v1/status", timeout=5).json() for p in procs]
            if all(s["height"] >= 3 and s["peers"] == 3 for s in st):
                break
            assert time.monotonic() < deadline, [(s["height"], s["peers"]) for s in st]
            time.sleep(0.2)
        # Dialed by address (inbound ones show the dialer's source address, 127.0.0.1 here).
        port = homes[0].load_config().p2p_port
        dialed = {p["address"] for s in st for p in s["p2p"]["peers"]
                  if p["direction"] == "outbound"}
        assert dialed and dialed <= {f"{h}:{port}" for h in hosts}, dialed
        with Client(procs[3].url) as c:
            res = c.send(PrivateKey.from_name("alice"), SINK, 3)
        with Client(procs[0].url) as c:
            c.wait_for_height(res["height"])
            assert c.tx(res["hash"])["height"] == res["height"]
    finally:
        for p in procs:
            p.stop()


def test_a_validator_that_signs_conflicting_votes_is_exposed_with_checkable_evidence(tmp_path):
    """node3 is stopped and its key is used to sign two prevotes for different blocks at the
    height the others are deciding, sent to node0 over an authenticated connection. node0
    records the pair, relays both votes, and node1 records it too; the evidence served at
    /v1/evidence verifies against the validator set on its own."""
    import re

    import nacl.signing

    from sharechain.chain.types import VOTE_PREVOTE, vote_sign_bytes
    from sharechain.consensus.bft.evidence import DuplicateVoteEvidence
    from sharechain.consensus.bft.messages import Vote, encode_message
    from sharechain.encoding import decode, from_obj
    from sharechain.node.genesis import load_genesis
    from sharechain.p2p.peers import CHANNEL_CONSENSUS
    from sharechain.p2p.secret_conn import handshake

    with Testnet(tmp_path, validators=4, interval_ms=300) as net:
        net.start()
        net.wait_height([0, 1, 2, 3], 2)
        net.procs[3].stop()  # its own votes stay out of the way
        byzantine = net.homes[3].node_key()

        def evidence(i: int) -> list[dict]:
            return httpx.get(net.procs[i].url + "/v1/evidence", timeout=5).json()["evidence"]

        async def equivocate() -> None:
            r, w = await asyncio.open_connection("127.0.0.1", net.p2p_ports[0])
            conn = await handshake(r, w, nacl.signing.SigningKey.generate(),
                                   net.homes[0].p2p_node_id(), 10, network_id="net-test")
            deadline = time.monotonic() + 45
            try:
                # Until node0 and node1 (which gets the votes only by node0's relay) both
                # hold the proof: a pair that reaches node1 after it decided that height is
                # stale there, so a new pair goes out at the highest height being decided
                # (node0, if it lags, holds it until it gets there).
                while not (await asyncio.to_thread(evidence, 0)
                           and await asyncio.to_thread(evidence, 1)):
                    assert time.monotonic() < deadline, "no evidence recorded on node0 and node1"
                    h = await asyncio.to_thread(lambda: max(net.height(0), net.height(1))) + 1
                    t = int(time.time() * 1000)
                    for block_hash in (b"\x01" * 32, b"\x02" * 32):
                        sig = byzantine.sign(vote_sign_bytes("net-test", VOTE_PREVOTE, h, 0,
                                                             block_hash, t))
                        vote = Vote(VOTE_PREVOTE, h, 0, block_hash, t, byzantine.address, sig)
                        await conn.send(bytes([CHANNEL_CONSENSUS]) + encode_message(vote))
                    await asyncio.sleep(0.1)
            finally:
                conn.abort()

        asyncio.run(equivocate())
        found = evidence(0)[0]
        assert found["type"] == "prevote" and found["block_hashes"] == ["01" * 32, "02" * 32]
        ev = from_obj(DuplicateVoteEvidence, decode(bytes.fromhex(found["evidence"])))
        assert ev.validator == byzantine.address
        valset = load_genesis(net.homes[0].genesis_file).validators
        assert ev.verify("net-test", valset) is None, "anyone can check it"
        assert evidence(1)[0]["evidence"], "the votes were relayed: node1 holds the proof too"
        metrics = httpx.get(net.procs[0].url + "/metrics", timeout=5).text
        assert re.search(r"sharechain_consensus_evidence [1-9]", metrics)
        assert "signed two conflicting prevotes" in net.procs[0].log_path.read_text()
        h = net.height(0)
        net.wait_height([0, 1, 2], h + 2, 60)  # the honest three go on
