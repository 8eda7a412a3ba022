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
