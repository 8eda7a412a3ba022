"""kill -9 a real node during load, restart it, and check nothing committed was lost.

Every tx the API reported as committed must be present at the height reported; every
block the event stream announced must have the same hash after restart; the chain of
blocks must link without gaps; and the node must continue producing blocks.
"""

from __future__ import annotations

import json
import random
import threading
import time

import httpx
import pytest

from sharechain.client import Client
from sharechain.crypto import PrivateKey
from sharechain.node.launcher import NodeProcess
from tests.conftest import new_node_home

pytestmark = pytest.mark.integration

SENDERS = [PrivateKey.from_name(n) for n in ("alice", "bob", "carol", "dave")]
SINK = PrivateKey.from_name("erin").address


def _load(url: str, key: PrivateKey, committed: dict[str, int], stop: threading.Event) -> None:
    with Client(url, timeout_s=10) as c:
        while not stop.is_set():
            try:
                raws = [c.build_tx(key, [("bank/send", {"to": SINK, "amount": 1})],
                                   nonce=c.next_nonce(key) + i) for i in range(5)]
                for raw in raws[:-1]:
                    c.submit(raw, "sync")
                res = c.submit(raws[-1], "commit")
                committed[res["hash"]] = res["height"]
                c._nonces[key.address] = c.next_nonce(key) + 5
            except Exception:
                c._nonces.pop(key.address, None)  # node died or nonce drift: re-read next time
                time.sleep(0.05)


def _follow(url: str, blocks: dict[int, str], stop: threading.Event) -> None:
    try:
        with httpx.stream("GET", url + "/v1/events", timeout=5) as r:
            for line in r.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("data: "):
                    d = json.loads(line[6:])
                    blocks[d["height"]] = d["hash"]
    except Exception:
        return


def _crash_round(proc: NodeProcess, rng: random.Random) -> tuple[dict[str, int], dict[int, str]]:
    committed: dict[str, int] = {}
    blocks: dict[int, str] = {}
    stop = threading.Event()
    threads = [threading.Thread(target=_follow, args=(proc.url, blocks, stop), daemon=True)]
    threads += [threading.Thread(target=_load, args=(proc.url, k, committed, stop), daemon=True)
                for k in SENDERS]
    for t in threads:
        t.start()
    time.sleep(rng.uniform(1.0, 2.5))
    proc.kill()
    stop.set()
    for t in threads:
        t.join(15)
    return dict(committed), dict(blocks)


def _check_after_restart(c: Client, committed: dict[str, int], blocks: dict[int, str]) -> None:
    for h, tx_height in committed.items():
        t = c.tx(h)
        assert t["status"] == "committed" and t["height"] == tx_height, (h, t)
    for height, bhash in blocks.items():
        assert c.block(height)["hash"] == bhash, f"block {height} changed after the crash"
    top = c.status()["height"]
    prev = None
    for height in range(max(1, top - 40), top + 1):
        b = c.block(height)
        if prev is not None:
            assert b["header"]["prev_hash"] == prev, f"chain broken at {height}"
        prev = b["hash"]


def _run(tmp_path, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    home = new_node_home(tmp_path, interval_ms=100)
    proc = NodeProcess(home)
    proc.start()
    total_committed = 0
    for _ in range(rounds):
        committed, blocks = _crash_round(proc, rng)
        total_committed += len(committed)
        proc.start()
        with Client(proc.url) as c:
            _check_after_restart(c, committed, blocks)
            h = c.status()["height"]
            c.wait_for_height(h + 2, 20)  # and it keeps going
    proc.stop()
    assert total_committed > 0, "the load produced committed txs to check"


def test_kill9_under_load_loses_nothing(tmp_path):
    _run(tmp_path, rounds=2, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 7))
def test_kill9_soak(tmp_path, seed):
    _run(tmp_path, rounds=4, seed=seed)


def test_restart_resumes_with_identical_state(tmp_path):
    home = new_node_home(tmp_path, interval_ms=100)
    proc = NodeProcess(home).start()
    with Client(proc.url) as c:
        c.send(SENDERS[0], SINK, 7)
        c.wait_for_height(c.status()["height"] + 1)
        before = c.status()
        roots = {h: c.block(h)["header"]["state_root"] for h in range(1, before["height"] + 1)}
    proc.stop()
    proc.start()
    with Client(proc.url) as c:
        after = c.status()
        assert after["height"] >= before["height"]
        for h, root in roots.items():
            assert c.block(h)["header"]["state_root"] == root
        assert c.balance(SINK) >= 7
    proc.stop()
