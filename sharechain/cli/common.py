"""Shared CLI plumbing: error reporting, the node URL, the keystore and passphrases."""

from __future__ import annotations

import functools
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from sharechain.errors import ShareChainError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_NODE = "http://127.0.0.1:8700"


def node_url() -> str:
    return os.environ.get("SHARECHAIN_NODE", DEFAULT_NODE)


def keyring_dir() -> Path:
    return Path(os.environ.get("SHARECHAIN_KEYRING", Path.home() / ".sharechain" / "keys"))


def passphrase(prompt: str = "Passphrase", confirm: bool = False) -> str:
    env = os.environ.get("SHARECHAIN_PASSPHRASE")
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise ShareChainError("no_passphrase",
                              "no terminal to ask for a passphrase; set SHARECHAIN_PASSPHRASE")
    p = getpass.getpass(f"{prompt}: ")
    if confirm and getpass.getpass("Repeat passphrase: ") != p:
        raise ShareChainError("passphrase_mismatch", "the passphrases do not match")
    return p


def handle_errors(fn: F) -> F:
    """Print a ShareChainError as one sentence and exit non-zero."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ShareChainError as exc:
            err_console.print(f"[red]error[/red] ({exc.code}): {exc.message}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------- shared by every command group

def client_for(node: str | None) -> Any:
    """An SDK client for ``--node`` (or SHARECHAIN_NODE, or the default)."""
    from sharechain.client import Client

    return Client(node or node_url())


def keystore(path: Path | None) -> Any:
    from sharechain.keystore import Keystore

    return Keystore(path or keyring_dir())


def load_key(name: str, keyring: Path | None) -> Any:
    """A key from the keystore, asking for (or reading) its passphrase."""
    return keystore(keyring).load(name, passphrase(f"Passphrase for {name}"))


def resolve(name_or_addr: str, keyring: Path | None) -> bytes:
    """A ``share1…`` address as is, or the address of a named key."""
    return keystore(keyring).resolve_address(name_or_addr)


def print_json(obj: Any) -> None:
    import json

    console.print_json(json.dumps(obj))


def print_tx_result(res: dict[str, Any]) -> None:
    """One line per committed tx (and its events); exit 1 if its messages failed."""
    r = res.get("result")
    if r is None:
        console.print(f"submitted tx [bold]{res['hash']}[/bold] ({res.get('status')})")
        return
    status = "[green]ok[/green]" if r["ok"] else f"[red]failed[/red] ({r['code']}): {r['message']}"
    console.print(f"tx [bold]{res['hash']}[/bold] committed at height {res['height']}: {status}"
                  f"  fee {r['fee']}")
    for e in r["events"]:
        console.print(f"  event {e['type']}: {e['attrs']}")
    if not r["ok"]:
        raise typer.Exit(1)
