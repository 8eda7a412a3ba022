"""A real node process driven over HTTP with the SDK: happy paths, proofs, bad input."""

from __future__ import annotations

import os

import cborx
import httpx
import pytest

from sharechain.chain.types import TxBody, sign_tx
from sharechain.client import Client
from sharechain.crypto import PrivateKey
from sharechain.encoding import encode
from sharechain.errors import ShareChainError
from sharechain.modules.bank.keys import balance_key

pytestmark = pytest.mark.integration

alice = PrivateKey.from_name("alice")
bob = PrivateKey.from_name("bob")
carol = PrivateKey.from_name("carol")


def test_send_and_read_back(client: Client):
    before = client.balance(bob.address)
    res = client.send(alice, bob.bech32, 25)
    assert res["status"] == "committed" and res["result"]["ok"]
    assert res["result"]["events"][0]["type"] == "transfer"
    assert client.balance(bob.address) == before + 25
    tx = client.tx(res["hash"])
    assert tx["height"] == res["height"] and tx["tx"]["msgs"][0]["type"] == "bank/send"
    block = client.block(res["height"])
    assert res["hash"] in block["txs"]
    assert block["commit"]["sigs"], "blocks carry their commit certificate"
    txs = client.get(f"/v1/accounts/{bob.bech32}/txs")["txs"]
    assert any(t["hash"] == res["hash"] for t in txs), "txs are indexed by recipient"


def test_state_proofs_verify_and_tampering_is_caught(client: Client):
    client.send(alice, carol.bech32, 5)
    key = balance_key(carol.address)
    value = client.state(key, verify=True)
    assert value is not None and cborx.loads(value) == client.balance(carol.address)
    absent = balance_key(PrivateKey.from_name("nobody-ever").address)
    assert client.state(absent, verify=True) is None
    d = client.get(f"/v1/state/{key.hex()}")
    forged_value = cborx.dumps(10**15)
    with pytest.raises(ShareChainError) as e:
        client.verify_state(key, forged_value, d)
    assert e.value.code == "proof_invalid"
    with pytest.raises(ShareChainError):
        client.verify_state(absent, forged_value, client.get(f"/v1/state/{absent.hex()}"))


def _raw(client: Client, key=alice, **over):
    body = dict(chain_id=client.chain_id, signer=key.public_key, nonce=client.next_nonce(key),
                fee=1000, expiry_height=0, msgs=(("bank/send", {"to": bob.address, "amount": 1}),))
    body.update(over)
    return sign_tx(TxBody(**body), key.sign)


def _post(client: Client, raw: bytes) -> httpx.Response:
    return client.http.post("/v1/txs", content=raw, headers={"content-type": "application/cbor"})


def test_bad_input_rejected_without_state_change(client: Client):
    client.send(alice, bob.bech32, 1)  # settle the nonce cache
    acct_before = client.account(alice.address)
    height = client.status()["height"]
    good = _raw(client)
    d = cborx.loads(good)
    cases = {
        "malformed_tx": b"\xffgarbage",
        "non_canonical": good + b"\x00",
        "invalid_signature": encode({"body": d["body"], "sig": bytes(64)}),
        "wrong_chain_id": _raw(client, chain_id="other-chain"),
        "nonce_reused": _raw(client, nonce=acct_before["nonce"] - 1),
        "nonce_in_future": _raw(client, nonce=acct_before["nonce"] + 5),
        "fee_too_low": _raw(client, fee=1),
        "tx_expired": _raw(client, expiry_height=1),
        "unknown_msg_type": _raw(client, msgs=(("bank/steal", {"amount": 1}),)),
        "invalid_msg": _raw(client, msgs=(("bank/send", {"to": bob.address, "amount": -5}),)),
        "unknown_field": encode({"body": d["body"], "sig": d["sig"], "x": 1}),
        "tx_too_large": _raw(client, memo="", msgs=(("bank/send", {"to": b"x" * 70000}),)),
    }
    for code, raw in cases.items():
        r = _post(client, raw)
        assert 400 <= r.status_code < 500, (code, r.text)
        assert r.json()["code"] == code, (code, r.json())
    dup = _post(client, good)
    assert dup.status_code == 200
    assert _post(client, good).json()["code"] == "duplicate_tx"
    client.wait_for_tx(dup.json()["hash"])
    after = client.account(alice.address)
    assert after["nonce"] == acct_before["nonce"] + 1, "only the one good tx executed"
    assert client.status()["height"] > height, "node keeps producing blocks"


def test_api_errors_are_json(client: Client):
    for path, status, code in [("/v1/blocks/999999", 404, "block_not_found"),
                               ("/v1/txs/" + "00" * 32, 404, "tx_not_found"),
                               ("/v1/accounts/notanaddress", 400, "invalid_address"),
                               ("/v1/query/bank/nope", 404, "not_found"),
                               ("/v1/nowhere", 404, "not_found")]:
        r = client.http.get(path)
        assert r.status_code == status and r.json()["code"] == code, (path, r.text)
    r = client.http.post("/v1/txs/batch", content=b"not cbor",
                         headers={"content-type": "application/cbor"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_request"


def test_batch_submit(client: Client):
    n0 = client.next_nonce(carol)
    raws = [client.build_tx(carol, [("bank/send", {"to": bob.address, "amount": 1})], nonce=n0 + i)
            for i in range(20)]
    res = client.submit_batch(raws + [b"junk"])
    assert res["accepted"] == 20 and res["results"][-1]["code"] == "malformed_tx"
    client.wait_for_tx(res["results"][19]["hash"])
    assert client.account(carol.address)["nonce"] == n0 + 20


def test_event_stream_reports_blocks(node, client: Client):
    with httpx.stream("GET", node.url + "/v1/events", timeout=10) as r:
        client.send(alice, bob.bech32, 3, wait=False)
        for line in r.iter_lines():
            if line.startswith("data: "):
                assert '"height"' in line
                break


def test_start_with_profile_writes_the_main_threads_statistics_at_stop(tmp_path):
    import pstats

    from sharechain.node.launcher import NodeProcess
    from tests.conftest import new_node_home

    out = tmp_path / "node.prof"
    proc = NodeProcess(new_node_home(tmp_path), args=("--profile", str(out))).start()
    try:
        with Client(proc.url) as c:
            res = c.send(alice, bob.bech32, 7)
            assert res["status"] == "committed"
            c.wait_for_height(res["height"] + 2, timeout_s=20)  # a few more blocks
        assert not out.exists(), "written when the node stops, not before"
    finally:
        assert proc.stop() == 0
    names = {func[2] for func in pstats.Stats(str(out)).stats}  # type: ignore[attr-defined]
    assert {"commit_block", "deliver_tx"} <= names


def test_devnet_prints_its_try_lines_only_once_the_api_answers(tmp_path):
    import subprocess
    import sys

    from sharechain.node.launcher import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sharechain.cli.main", "devnet", "--home",
                             str(tmp_path / "dn"), "--api-port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True,
                            env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    try:
        lines = []
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "Stop with Ctrl-C" in line:
                break
        assert any(line.startswith("Try:") for line in lines), "".join(lines)
        with Client(f"http://127.0.0.1:{port}") as c:  # at once, no retry
            assert c.status()["height"] >= 0
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


def test_node_stops_cleanly_on_a_closed_terminal_and_keeps_its_chain(tmp_path):
    """SIGHUP (the terminal closed) stops a node as Ctrl-C and SIGTERM do: exit code 0, and
    on restart the chain is where it was."""
    import signal

    from sharechain.node.launcher import NodeProcess
    from tests.conftest import new_node_home

    home = new_node_home(tmp_path)
    proc = NodeProcess(home).start()
    try:
        with Client(proc.url) as c:
            res = c.send(alice, bob.bech32, 9)
            height = c.status()["height"]
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        assert proc.proc.wait(20) == 0
    finally:
        proc.stop()
    proc = NodeProcess(home).start()
    try:
        with Client(proc.url) as c:
            assert c.status()["height"] >= height
            assert c.tx(res["hash"])["height"] == res["height"]
    finally:
        assert proc.stop() == 0


def test_a_full_store_stops_the_node_with_a_clear_error_and_a_larger_one_resumes(tmp_path):
    """At its size limit (db_map_mib) the store writes nothing of the block that does not
    fit: the node warns first, then stops with exit code 1 and says what to do. Restarted
    with a larger limit it resumes at the last committed block, every committed tx kept."""
    import re
    import time

    from sharechain.node.launcher import NodeProcess
    from tests.conftest import new_node_home

    home = new_node_home(tmp_path, db_map_mib=4)
    proc = NodeProcess(home).start()
    accepted: dict[int, str] = {}  # nonce -> tx hash
    try:
        assert proc.proc is not None
        with Client(proc.url) as c:
            nonce = c.next_nonce(alice)
            deadline = time.monotonic() + 120
            while proc.proc.poll() is None:
                assert time.monotonic() < deadline, "the store never filled"
                raws = [c.build_tx(alice, [("bank/send", {"to": bob.address, "amount": 1})],
                                   nonce=nonce + i) for i in range(50)]
                try:
                    res = c.submit_batch(raws)
                except (httpx.HTTPError, ShareChainError):
                    break  # the node is stopping
                accepted.update((nonce + i, r["hash"]) for i, r in enumerate(res["results"])
                                if "hash" in r)
                nonce += 50
                time.sleep(0.05)  # blocks of ~50 txs: the store fills a little at a time
        code = proc.proc.wait(60)
    finally:
        proc.stop()
    log = proc.log_path.read_text()
    assert code == 1, log[-2000:]
    assert "error (store_full)" in log and "raise db_map_mib" in log
    assert re.search(r"WARNING .*the store is 9\d % full \(\d+ of 4 MiB\)", log), \
        "it warned before it stopped"
    assert "Traceback" not in log

    cfg = home.load_config()
    cfg.db_map_mib = 64
    home.save_config(cfg)
    proc = NodeProcess(home).start()
    try:
        with Client(proc.url) as c:
            st = c.status()
            height = st["height"]
            assert 3 * 2**20 < st["store"]["bytes_used"] < st["store"]["bytes_max"] == 64 * 2**20
            n = c.account(alice.address)["nonce"]  # txs 0..n-1 committed, in nonce order
            assert n >= 100 and all(i in accepted for i in range(n))
            for i in [*range(0, n, max(1, n // 20)), n - 1]:
                assert c.tx(accepted[i])["height"] <= height
            # Those in the pool when it stopped were never committed (the pool is memory).
            assert not any(_committed(c, accepted[i]) for i in range(n, n + 5) if i in accepted)
            res = c.send(alice, bob.bech32, 9)
            assert res["result"]["ok"] and res["height"] > height
    finally:
        assert proc.stop() == 0


def _committed(c: Client, tx_hash: str) -> bool:
    try:
        c.tx(tx_hash)
        return True
    except ShareChainError:
        return False
