"""The encrypted keystore and the CLI's key commands and error reporting."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sharechain.cli.main import app
from sharechain.crypto import PrivateKey
from sharechain.errors import ShareChainError
from sharechain.keystore import Keystore


def fast_store(path):
    return Keystore(path, opslimit=1, memlimit=8192)


def test_keystore_round_trip_and_wrong_passphrase(tmp_path):
    ks = fast_store(tmp_path)
    info = ks.add("alice", "pw")
    assert info.address.startswith("share1")
    key = ks.load("alice", "pw")
    assert key.bech32 == info.address
    raw = (tmp_path / "alice.json").read_text()
    assert key.seed.hex() not in raw, "the seed is never stored in clear"
    assert (tmp_path / "alice.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ShareChainError) as e:
        ks.load("alice", "wrong")
    assert e.value.code == "wrong_passphrase"
    with pytest.raises(ShareChainError) as e:
        ks.add("alice", "pw")
    assert e.value.code == "key_exists"
    with pytest.raises(ShareChainError):
        ks.add("../evil", "pw")


def test_cli_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARECHAIN_KEYRING", str(tmp_path))
    monkeypatch.setenv("SHARECHAIN_PASSPHRASE", "secret")
    r = CliRunner()
    res = r.invoke(app, ["keys", "add", "bob"])
    assert res.exit_code == 0, res.output
    res = r.invoke(app, ["keys", "show", "bob"])
    addr = json.loads(res.output)["address"]
    res = r.invoke(app, ["keys", "list"])
    assert "bob" in res.output
    seed = r.invoke(app, ["keys", "export", "bob"]).output.strip()
    assert PrivateKey(bytes.fromhex(seed)).bech32 == addr
    res = r.invoke(app, ["keys", "import", "bob2", "--seed-hex", seed])
    assert res.exit_code == 0 and addr in res.output
    res = r.invoke(app, ["keys", "show", "nobody"])
    assert res.exit_code == 1 and "key_not_found" in res.output


def test_cli_unreachable_node_is_one_clear_error():
    res = CliRunner().invoke(app, ["status", "--node", "http://127.0.0.1:9"])
    assert res.exit_code == 1 and "unreachable" in res.output
