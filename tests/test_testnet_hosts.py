"""`sharechain testnet --hosts`: node homes for a network across machines."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sharechain.errors import ShareChainError
from sharechain.node.testnet import write_testnet


def test_homes_for_four_machines_share_ports_and_dial_each_other_by_address(tmp_path):
    hosts = ["10.0.0.1", "10.0.0.2", "node3.example.org", "10.0.0.2"]  # two on 10.0.0.2
    homes = write_testnet(tmp_path, 3, full_nodes=1, hosts=hosts, base_p2p_port=26656,
                          base_api_port=8700)
    cfgs = [h.load_config() for h in homes]
    ids = [h.p2p_node_id() for h in homes]
    assert [c.p2p_port for c in cfgs] == [26656, 26656, 26656, 26657], "same host: next port"
    assert [c.api_port for c in cfgs] == [8700, 8700, 8700, 8701]
    assert {c.p2p_host for c in cfgs} == {"0.0.0.0"} and {c.api_host for c in cfgs} == {"127.0.0.1"}
    assert all(c.p2p_ban_ip and c.signature_workers is None for c in cfgs)
    assert cfgs[0].persistent_peers == [f"{ids[1]}@10.0.0.2:26656",
                                        f"{ids[2]}@node3.example.org:26656",
                                        f"{ids[3]}@10.0.0.2:26657"]
    assert f"{ids[0]}@10.0.0.1:26656" in cfgs[3].persistent_peers


@pytest.mark.parametrize("hosts", [["10.0.0.1"] * 3, ["10.0.0.1", "", "x", "y"],
                                   ["a@b", "c", "d", "e"]])
def test_a_wrong_host_list_is_refused(tmp_path, hosts):
    with pytest.raises(ShareChainError) as err:
        write_testnet(tmp_path, 4, hosts=hosts)
    assert err.value.code == "invalid_hosts"


def test_the_cli_writes_the_homes_and_prints_where_each_listens(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sharechain.cli.main", "testnet",
                          "--validators", "2", "--out", str(tmp_path / "net"),
                          "--hosts", "10.1.0.1, 10.1.0.2"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "200"})  # the table unwrapped
    assert out.returncode == 0, out.stderr
    assert "10.1.0.2:26656" in out.stdout and "0.0.0.0:26656" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "sharechain.cli.main", "testnet",
                          "--validators", "2", "--out", str(tmp_path / "bad"),
                          "--hosts", "10.1.0.1"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "invalid_hosts" in bad.stderr + bad.stdout
