"""The bike-sharing demo story against a real node process (``sharechain devnet``).

Starts a devnet with 200 ms blocks in a temporary home on a free port, runs the story of
``sharechain demo bike-sharing`` through the SDK, checks the settlements, rewards, pledge,
expiry and that every token is accounted for, then stops the node with SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharechain.client import Client
from sharechain.demo.bike_sharing import DEMO_TERMS, run
from sharechain.errors import ShareChainError

pytestmark = pytest.mark.integration

SHARECHAIN = Path(sys.executable).parent / "sharechain"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def node_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "node.log").open("w")
    proc = subprocess.Popen([str(SHARECHAIN), "devnet", "--home", str(tmp_path / "devnet"),
                             "--api-port", str(port), "--block-interval-ms", "200"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        with Client(url, timeout_s=5) as c:
            while True:
                try:
                    if c.status()["height"] >= 1:
                        break
                except ShareChainError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the devnet did not start:\n" +
                                       (tmp_path / "node.log").read_text()[-3000:])
                time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_bike_sharing_story(node_url: str) -> None:
    lines: list[str] = []
    t0 = time.monotonic()
    r = run(node_url, out=lines.append)
    elapsed = time.monotonic() - t0
    story = "\n".join(lines)
    assert elapsed < 90, story

    alice, bob, erin = r.rides
    deposit_plus = {"alice": 8, "bob": 2, "erin": 8}  # reserved seconds → prepaid units
    for ride in r.rides:
        s = ride.settled
        assert s, f"{ride.rider}'s ride was not settled by the lock report\n{story}"
        escrow = DEMO_TERMS["deposit"] + deposit_plus[ride.rider] * 1_000
        assert s["usage_fee"] % 1_000 == 0 and s["usage_fee"] >= s["usage_ms"]
        assert s["platform_fee"] == s["usage_fee"] * 500 // 10_000        # bikeco: 5 %
        assert s["pool_fee"] == s["platform_fee"] * 2_000 // 10_000       # demo: 20 % of it
        assert s["usage_fee"] + s["late_fee"] + s["hold"] + s["refund"] == escrow
    assert alice.settled["late_fee"] == 0 and erin.settled["late_fee"] == 0
    assert bob.settled["late_fee"] > 0
    # rewards: the provider for every ride, the consumer only for on-time returns
    assert alice.rewards == {"carol": 20, "alice": 10}
    assert bob.rewards == {"carol": 20}
    assert erin.rewards == {"carol": 20, "erin": 10}
    assert r.pledge_returned, story
    assert r.expired_state == "expired", story
    assert set(r.states.values()) == {"closed"}, story
    # every token is accounted for: whatever left one account arrived in another listed one
    # (escrows are empty again: rides closed, reservation expired, pledge returned)
    assert sum(r.end_balances.values()) == sum(r.start_balances.values()), story
    delta = {n: r.end_balances[n] - r.start_balances[n] for n in r.end_balances}
    assert delta["dave"] == -500 - 40                 # cancellation fee + reserve tx fee
    assert delta["carol"] > 0 and delta["bikeco"] > 0
    assert len(r.tx_hashes) >= 15 and all(len(h) == 64 for h in r.tx_hashes)
