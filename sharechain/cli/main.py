"""The ``sharechain`` command line."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from sharechain.cli.common import (
    client_for as _client,
    console,
    handle_errors,
    keystore as _keystore,
    load_key,
    passphrase,
    print_json as _print_json,
    print_tx_result,
    resolve,
)
from sharechain.crypto import PrivateKey
from sharechain.errors import ShareChainError

app = typer.Typer(help="ShareChain: a blockchain for the sharing economy.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
keys_app = typer.Typer(help="Manage keys in the encrypted keystore.", no_args_is_help=True)
tx_app = typer.Typer(help="Sign and submit transactions.", no_args_is_help=True)
bank_tx = typer.Typer(help="Token transfers.", no_args_is_help=True)
query_app = typer.Typer(help="Read the chain.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(tx_app, name="tx")
tx_app.add_typer(bank_tx, name="bank")
app.add_typer(query_app, name="query")

NodeOpt = typer.Option(None, "--node", help="Node API URL (env SHARECHAIN_NODE).")
KeyringOpt = typer.Option(None, "--keyring", help="Keystore folder (env SHARECHAIN_KEYRING).")


# ==================================================================== keys
@keys_app.command("add")
@handle_errors
def keys_add(name: str, keyring: Optional[Path] = KeyringOpt,
             recover: bool = typer.Option(False, help="Recover from a hex seed (prompted).")) -> None:
    """Create a new key (or recover one from its seed) and store it encrypted."""
    ks = _keystore(keyring)
    if ks.exists(name):
        raise ShareChainError("key_exists", f"a key named {name!r} already exists")
    key = None
    if recover:
        seed = typer.prompt("Seed (64 hex chars)", hide_input=True)
        try:
            key = PrivateKey(bytes.fromhex(seed.strip()))
        except ValueError:
            raise ShareChainError("invalid_seed", "the seed must be 64 hex characters") from None
    info = ks.add(name, passphrase("New passphrase", confirm=True), key)
    console.print(f"[green]created[/green] key [bold]{info.name}[/bold]  {info.address}")


@keys_app.command("list")
@handle_errors
def keys_list(keyring: Optional[Path] = KeyringOpt) -> None:
    """List keys in the keystore."""
    t = Table("name", "address")
    for k in _keystore(keyring).list():
        t.add_row(k.name, k.address)
    console.print(t)


@keys_app.command("show")
@handle_errors
def keys_show(name: str, keyring: Optional[Path] = KeyringOpt) -> None:
    """Show a key's address and public key."""
    k = _keystore(keyring).info(name)
    _print_json({"name": k.name, "address": k.address, "pub_key": k.pub_key})


@keys_app.command("export")
@handle_errors
def keys_export(name: str, keyring: Optional[Path] = KeyringOpt) -> None:
    """Print a key's secret seed (hex). Anyone who sees it controls the account."""
    key = _keystore(keyring).load(name, passphrase())
    console.print(key.seed.hex())


@keys_app.command("import")
@handle_errors
def keys_import(name: str, seed_hex: str = typer.Option(..., prompt=True, hide_input=True),
                keyring: Optional[Path] = KeyringOpt) -> None:
    """Import a key from its hex seed."""
    try:
        key = PrivateKey(bytes.fromhex(seed_hex.strip()))
    except ValueError:
        raise ShareChainError("invalid_seed", "the seed must be 64 hex characters") from None
    info = _keystore(keyring).add(name, passphrase("New passphrase", confirm=True), key)
    console.print(f"[green]imported[/green] key [bold]{info.name}[/bold]  {info.address}")


@keys_app.command("delete")
@handle_errors
def keys_delete(name: str, keyring: Optional[Path] = KeyringOpt,
                yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete a key file."""
    if not yes:
        typer.confirm(f"Delete key {name}?", abort=True)
    _keystore(keyring).delete(name)
    console.print(f"deleted {name}")


# ==================================================================== tx
@bank_tx.command("send")
@handle_errors
def bank_send(sender: str, to: str, amount: int, node: Optional[str] = NodeOpt,
              keyring: Optional[Path] = KeyringOpt, memo: str = "",
              fee: Optional[int] = typer.Option(None, help="Fee; default: the required fee."),
              wait: bool = typer.Option(True, help="Wait until the tx is committed.")) -> None:
    """Send AMOUNT tokens from key SENDER to TO (address or key name)."""
    key = load_key(sender, keyring)
    dest = resolve(to, keyring)
    with _client(node) as c:
        res = c.broadcast(key, [("bank/send", {"to": dest, "amount": amount})],
                          wait=wait, check=False, memo=memo, fee=fee)
    print_tx_result(res)


# ==================================================================== query
@query_app.command("account")
@handle_errors
def q_account(who: str, node: Optional[str] = NodeOpt, keyring: Optional[Path] = KeyringOpt) -> None:
    """Balance and nonce of an address or named key."""
    with _client(node) as c:
        _print_json(c.account(resolve(who, keyring)))


@query_app.command("block")
@handle_errors
def q_block(height: Optional[int] = typer.Argument(None), node: Optional[str] = NodeOpt) -> None:
    """A block (latest by default)."""
    with _client(node) as c:
        _print_json(c.block(height))


@query_app.command("tx")
@handle_errors
def q_tx(tx_hash: str, node: Optional[str] = NodeOpt) -> None:
    """A transaction and its result."""
    with _client(node) as c:
        _print_json(c.tx(tx_hash))


@query_app.command("state")
@handle_errors
def q_state(key_hex: str, node: Optional[str] = NodeOpt,
            verify: bool = typer.Option(True, help="Verify the Merkle proof against a committed header.")
            ) -> None:
    """A raw state value by hex key, proven against the state root."""
    with _client(node) as c:
        v = c.state(bytes.fromhex(key_hex), verify=verify)
    _print_json({"key": key_hex, "value": v.hex() if v is not None else None, "verified": verify})


@query_app.command("module")
@handle_errors
def q_module(module: str, name: str, params: list[str] = typer.Argument(None),
             node: Optional[str] = NodeOpt) -> None:
    """A module query: sharechain query module bank balance address=share1..."""
    kv = dict(p.split("=", 1) for p in (params or []))
    with _client(node) as c:
        _print_json(c.query(module, name, **kv))


@app.command("status")
@handle_errors
def status(node: Optional[str] = NodeOpt) -> None:
    """The node's status."""
    with _client(node) as c:
        _print_json(c.status())


# ==================================================================== nodes
def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command("init")
@handle_errors
def init(home: Path = typer.Option(..., help="Node home folder."),
         chain_id: str = "sharechain-local", moniker: str = "node0",
         api_port: int = 8700, block_interval_ms: int = 1000,
         demo: bool = typer.Option(True, help="Fund the demo accounts at genesis."),
         force: bool = typer.Option(False, help="Overwrite an existing home.")) -> None:
    """Create a single-validator node home (key, genesis, config)."""
    from sharechain.node.devnet import demo_genesis
    from sharechain.node.home import Home, NodeConfig

    h = Home(home)
    if h.exists() and not force:
        raise ShareChainError("home_exists", f"{home} already holds a node; use --force to replace it")
    if force and home.exists():
        shutil.rmtree(home)
    key = PrivateKey.generate()
    h.save_node_key(key)
    doc = demo_genesis(chain_id, [key], block_interval_ms)
    if not demo:
        doc["app_state"]["bank"]["balances"] = [{"address": key.bech32, "amount": 10**12}]
    h.save_genesis(doc)
    h.save_config(NodeConfig(moniker=moniker, api_port=api_port))
    console.print(f"initialised node home {home}: chain {chain_id}, validator {key.bech32}")


@app.command("start")
@handle_errors
def start(home: Path = typer.Option(..., help="Node home folder."),
          api_port: Optional[int] = typer.Option(None, help="Override the API port."),
          log_level: Optional[str] = None,
          profile: Optional[Path] = typer.Option(
              None, help="Profile the node's main thread (cProfile) and write the "
                         "statistics to this file when it stops; read them with "
                         "'python -m pstats FILE'. Slows the node about 1.7x.")) -> None:
    """Run a node from its home until Ctrl-C; restarts resume at the last committed height."""
    from sharechain.node.home import Home
    from sharechain.node.node import Node
    from sharechain.node.node import run as run_node

    h = Home(home)
    cfg = h.load_config()
    if api_port is not None:
        cfg.api_port = api_port
    _setup_logging(log_level or cfg.log_level)
    node = Node(h, cfg)
    console.print(f"node [bold]{cfg.moniker}[/bold] chain {node.chain.chain_id} "
                  f"height {node.chain.height()}  API http://{cfg.api_host}:{cfg.api_port}")
    if profile is not None:
        console.print(f"profiling the main thread: statistics go to {profile} at stop")
    run_node(node.run(), profile=profile)


@app.command("devnet")
@handle_errors
def devnet(home: Path = typer.Option(Path(".devnet"), help="Devnet folder."),
           reset: bool = typer.Option(False, help="Start from a fresh genesis."),
           api_port: int = 8700, block_interval_ms: int = 1000,
           validators: int = typer.Option(1, help="Validators in this process (1: solo, >1: bft)."),
           log_level: str = "warning") -> None:
    """Run a local devnet with the demo world and the API (state persists in --home)."""
    from sharechain.keystore import Keystore
    from sharechain.node.devnet import DEMO_ACCOUNTS, DEMO_CHAIN_ID, demo_genesis, validator_key
    from sharechain.node.home import Home, NodeConfig
    from sharechain.node.node import Node
    from sharechain.node.node import run as run_node

    if reset and home.exists():
        shutil.rmtree(home)
    node_home = Home(home / "node0")
    if not node_home.exists():
        vkeys = [validator_key(i) for i in range(validators)]
        node_home.save_node_key(vkeys[0])
        node_home.save_genesis(demo_genesis(DEMO_CHAIN_ID, vkeys, block_interval_ms))
        node_home.save_config(NodeConfig(moniker="devnet", api_port=api_port,
                                         engine="solo" if validators == 1 else "bft",
                                         local_validators=validators if validators > 1 else 0))
        ks = Keystore(home / "keys", opslimit=1, memlimit=8192)
        for name in DEMO_ACCOUNTS:
            ks.add(name, "devnet", PrivateKey.from_name(name), overwrite=True)
    cfg = node_home.load_config()
    cfg.api_port = api_port
    _setup_logging(log_level)
    node = Node(node_home, cfg)
    url = f"http://127.0.0.1:{api_port}"
    t = Table("demo account", "address", title="ShareChain devnet — demo world")
    for name in DEMO_ACCOUNTS:
        t.add_row(name, PrivateKey.from_name(name).bech32)
    console.print(t)
    engine = (f"bft with {cfg.local_validators} in-process validators" if cfg.local_validators > 1
              else "solo validator")
    console.print(f"chain [bold]{node.chain.chain_id}[/bold] at height {node.chain.height()}, "
                  f"{engine}, a block every {node.genesis.consensus.block_interval_ms} ms")

    def serving() -> None:  # printed once the API accepts connections, so "Try" works
        console.print(f"API:       {url}/v1/status")
        console.print(f"API docs:  {url}/docs")
        console.print(f"Events:    {url}/v1/events")
        console.print(f"Try:       SHARECHAIN_KEYRING={home}/keys SHARECHAIN_PASSPHRASE=devnet "
                      f"sharechain tx bank send alice bob 25")
        console.print("Stop with Ctrl-C; state is kept in " + str(home)
                      + " (use --reset to start over).")

    run_node(node.run(on_serving=serving))


def _mount_optional() -> None:
    from sharechain.cli import network

    network.register(app)
    from sharechain.cli.sharing import app as sharing_app

    app.add_typer(sharing_app, name="sharing",
                  help="Participants, assets and IoT devices (identity, assets, iot).")
    from sharechain.cli.rental import app as rental_app
    from sharechain.demo.cli import app as demo_app

    app.add_typer(rental_app, name="rental", help="Rental contracts and incentives.")
    app.add_typer(demo_app, name="demo", help="Demo stories against a running node.")
    from sharechain.cli.trust import app as trust_app

    app.add_typer(trust_app, name="trust", help="Credit scores, blacklist, bureau reports, arbitration.")
    from sharechain.cli.market import app as market_app

    app.add_typer(market_app, name="market",
                  help="Cross-platform listings, bookings, requests, optimal matching.")
    try:
        from sharechain.sim.cli import app as sim_app
    except ImportError:
        return
    app.add_typer(sim_app, name="sim", help="Deterministic BFT network simulator.")


_mount_optional()

if __name__ == "__main__":
    app()
