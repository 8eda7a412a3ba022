"""Shared fixtures: real single-validator node processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from sharechain.client import Client
from sharechain.node.devnet import demo_genesis, validator_key
from sharechain.node.launcher import NodeProcess, free_port, make_single_node_home

# Property tests check logic, not speed: on a loaded 2-core CI machine a per-example time
# limit only produces flaky failures.
settings.register_profile("sharechain", deadline=None)
settings.load_profile("sharechain")

CHAIN_ID = "test-chain"


def new_node_home(tmp: Path, interval_ms: int = 150, **config: object):
    vkey = validator_key(0, CHAIN_ID)
    doc = demo_genesis(CHAIN_ID, [vkey], interval_ms)
    return make_single_node_home(tmp / "node", doc, vkey, free_port(), **config)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    home = new_node_home(tmp_path_factory.mktemp("node"))
    proc = NodeProcess(home).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(node: NodeProcess) -> Iterator[Client]:
    with Client(node.url) as c:
        yield c
