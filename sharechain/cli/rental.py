"""``sharechain rental …``: offers, reservations, the rental lifecycle, damage claims, and
the incentive pool (a typer sub-app).

Keys are names in the keystore (addresses may be bech32 text); assets are given by code
(``BIKE-0001``) or hex id; rentals and claims by their hex id. Every write waits for the
commit and prints the result; a failed transaction prints its error code and exits non-zero.

    sharechain rental offer carol BIKE-0001 --price 10 --unit-ms 60000 --deposit 5000 \\
        --min-ms 60000 --max-ms 14400000 --damage-cap 2000 --claim-window-ms 3600000
    sharechain rental reserve alice BIKE-0001 --start-in-s 60 --duration-s 1800
    sharechain rental start alice 0000000000000007      # and the provider: start carol …
    sharechain rental return alice 0000000000000007
    sharechain rental confirm-return carol 0000000000000007
    sharechain rental show 0000000000000007
    sharechain rental incentive pool
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from sharechain.cli.common import handle_errors
from sharechain.cli.common import (  # the shared plumbing, under this module's names
    client_for as _client,
    load_key as _key,
    resolve as _addr,
    print_json as _print,
    print_tx_result as _done,
)

app = typer.Typer(help="Rentals: offers, reservations, start/return, settlement, claims.",
                  no_args_is_help=True)
incentive_app = typer.Typer(help="Incentives: the reward pool and rewards per account.",
                            no_args_is_help=True)
app.add_typer(incentive_app, name="incentive")

NodeOpt = typer.Option(None, "--node", help="Node API URL (env SHARECHAIN_NODE).")
KeyringOpt = typer.Option(None, "--keyring", help="Keystore folder (env SHARECHAIN_KEYRING).")


# ---------------------------------------------------------------- plumbing











def _asset_id(c: Any, asset: str) -> bytes:
    """A 32-character hex id as is; anything else is an asset code looked up on the node."""
    if len(asset) == 32:
        try:
            return bytes.fromhex(asset)
        except ValueError:
            pass
    return bytes.fromhex(c.query("assets", "asset", code=asset)["id"])


def _apis(c: Any) -> tuple[Any, Any]:
    from sharechain.client.rental import IncentiveAPI, RentalAPI

    return RentalAPI(c), IncentiveAPI(c)


def _write(sender: str, keyring: Path | None, node: str | None, call: Any) -> None:
    """Run ``call(rental_api, incentive_api, key, client)`` and print the committed result."""
    key = _key(sender, keyring)
    with _client(node) as c:
        rentals, incentives = _apis(c)
        res = call(rentals, incentives, key, c)
    _done(res)


def _read(node: str | None, call: Any) -> None:
    with _client(node) as c:
        rentals, incentives = _apis(c)
        _print(call(rentals, incentives, c))


# ==================================================================== offers

@app.command("offer")
@handle_errors
def offer(sender: str, asset: str,
          price: int = typer.Option(..., help="Tokens per started time unit."),
          unit_ms: int = typer.Option(60_000, help="The time unit in ms."),
          deposit: int = typer.Option(0, help="Deposit held in escrow."),
          min_ms: int = typer.Option(60_000, help="Shortest reservable window (ms)."),
          max_ms: int = typer.Option(86_400_000, help="Longest window; past it + grace the "
                                                      "rental defaults (ms)."),
          cancel_window_ms: int = typer.Option(0, help="Cancelling later than this before "
                                                       "start costs the cancel fee."),
          cancel_fee: int = typer.Option(0, help="Also charged when a reservation expires."),
          late_fee: int = typer.Option(0, help="Per started unit past the end + grace."),
          grace_ms: int = typer.Option(0, help="Tolerance after the reserved end (ms)."),
          damage_cap: int = typer.Option(0, help="Most of the deposit a claim may hold."),
          claim_window_ms: int = typer.Option(0, help="How long after settlement claims may "
                                                      "be filed (ms)."),
          min_tier: int = typer.Option(0, help="Minimum credit tier (enforced by credit)."),
          node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """Offer (or replace) the rental terms of ASSET; SENDER is its owner or operator."""
    from sharechain.client.rental import terms

    t = terms(price_per_unit=price, unit_ms=unit_ms, deposit=deposit, min_duration_ms=min_ms,
              max_duration_ms=max_ms, cancel_window_ms=cancel_window_ms, cancel_fee=cancel_fee,
              late_fee_per_unit=late_fee, grace_ms=grace_ms, damage_cap=damage_cap,
              claim_window_ms=claim_window_ms, min_credit_tier=min_tier)
    _write(sender, keyring, node,
           lambda r, i, k, c: r.offer(k, _asset_id(c, asset), t, check=False))


@app.command("withdraw-offer")
@handle_errors
def withdraw_offer(sender: str, asset: str, node: str | None = NodeOpt,
                   keyring: Path | None = KeyringOpt) -> None:
    """Withdraw ASSET's offer (existing reservations keep their terms)."""
    _write(sender, keyring, node,
           lambda r, i, k, c: r.withdraw_offer(k, _asset_id(c, asset), check=False))


# ==================================================================== lifecycle

@app.command("reserve")
@handle_errors
def reserve(sender: str, asset: str,
            start_ms: int | None = typer.Option(None, help="Window start (ms since epoch)."),
            start_in_s: int = typer.Option(0, help="Or: start this many seconds from now."),
            duration_s: int = typer.Option(..., help="Window length in seconds."),
            offer_version: int = typer.Option(0, help="Refuse if the terms changed since "
                                                      "this version (0: accept current)."),
            node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """Reserve ASSET: the deposit and the expected fee move into escrow."""
    start = start_ms if start_ms is not None else int(time.time() * 1000) + start_in_s * 1000
    _write(sender, keyring, node, lambda r, i, k, c: r.reserve_tx(
        k, _asset_id(c, asset), start, start + duration_s * 1000, offer_version, check=False))


def _ref_command(name: str, method: str, doc: str) -> None:
    def command(sender: str, rental_id: str, node: str | None = NodeOpt,
                keyring: Path | None = KeyringOpt) -> None:
        _write(sender, keyring, node,
               lambda r, i, k, c: getattr(r, method)(k, rental_id, check=False))
    command.__doc__ = doc
    app.command(name)(handle_errors(command))


_ref_command("start", "start", "Sign the start of RENTAL_ID (consumer and provider both "
                               "sign when no device starts it).")
_ref_command("confirm-asset", "confirm_asset", "As the consumer, confirm the asset is as "
                                               "described (counts toward its pledge).")
_ref_command("return", "return_", "As the consumer, return the asset.")
_ref_command("confirm-return", "confirm_return", "As the provider, confirm the return: the "
                                                 "rental settles.")
_ref_command("cancel", "cancel", "Cancel a reservation that has not started.")


# ==================================================================== claims

@app.command("claim")
@handle_errors
def claim(sender: str, rental_id: str, amount: int, reason: str,
          evidence: str = typer.Option("", help="CID of the evidence document."),
          node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """As the provider, claim AMOUNT of the damage hold of an ended rental."""
    _write(sender, keyring, node, lambda r, i, k, c: r.claim_tx(
        k, rental_id, amount, reason, evidence, check=False))


@app.command("accept-claim")
@handle_errors
def accept_claim(sender: str, claim_id: str, note: str = "", node: str | None = NodeOpt,
                 keyring: Path | None = KeyringOpt) -> None:
    """As the consumer, accept a claim: the amount goes to the owner."""
    _write(sender, keyring, node,
           lambda r, i, k, c: r.accept_claim(k, claim_id, note, check=False))


@app.command("dispute-claim")
@handle_errors
def dispute_claim(sender: str, claim_id: str, note: str = "", node: str | None = NodeOpt,
                  keyring: Path | None = KeyringOpt) -> None:
    """As the consumer, dispute a claim: it waits for arbitration or its timeout."""
    _write(sender, keyring, node,
           lambda r, i, k, c: r.dispute_claim(k, claim_id, note, check=False))


# ==================================================================== reads

@app.command("show")
@handle_errors
def show(rental_id: str, node: str | None = NodeOpt) -> None:
    """A rental: state, window, escrow, settlement."""
    _read(node, lambda r, i, c: r.get(rental_id))


@app.command("offer-show")
@handle_errors
def offer_show(asset: str, node: str | None = NodeOpt) -> None:
    """The current terms of ASSET."""
    _read(node, lambda r, i, c: r.get_offer(_asset_id(c, asset)))


@app.command("quote")
@handle_errors
def quote(asset: str, duration_s: int = typer.Option(..., help="Window length in seconds."),
          node: str | None = NodeOpt) -> None:
    """What reserving ASSET for DURATION would lock: expected fee and deposit."""
    _read(node, lambda r, i, c: r.quote(_asset_id(c, asset), 0, duration_s * 1000))


@app.command("calendar")
@handle_errors
def calendar(asset: str, limit: int = 100, node: str | None = NodeOpt) -> None:
    """The bookings of ASSET ordered by reserved end."""
    _read(node, lambda r, i, c: r.calendar(_asset_id(c, asset), limit))


@app.command("claims")
@handle_errors
def claims(rental_id: str, node: str | None = NodeOpt) -> None:
    """The damage claims of a rental."""
    _read(node, lambda r, i, c: r.claims(rental_id))


@app.command("list")
@handle_errors
def list_rentals(consumer: str, limit: int = 100, node: str | None = NodeOpt,
                 keyring: Path | None = KeyringOpt) -> None:
    """The rentals of CONSUMER (key name or address)."""
    who = _addr(consumer, keyring)
    _read(node, lambda r, i, c: r.by_consumer(who, limit))


@app.command("due")
@handle_errors
def due(limit: int = 100, node: str | None = NodeOpt) -> None:
    """The next deadlines of the expiry sweep."""
    _read(node, lambda r, i, c: r.due(limit))


@app.command("params")
@handle_errors
def params(node: str | None = NodeOpt) -> None:
    """The rental module's parameters."""
    _read(node, lambda r, i, c: r.params())


# ==================================================================== incentive

@incentive_app.command("pool")
@handle_errors
def pool(node: str | None = NodeOpt) -> None:
    """The reward pool's address and balance."""
    _read(node, lambda r, i, c: i.pool())


@incentive_app.command("account")
@handle_errors
def account(who: str, node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """Rewards paid to WHO this epoch and in total."""
    a = _addr(who, keyring)
    _read(node, lambda r, i, c: i.account(a))


@incentive_app.command("params")
@handle_errors
def incentive_params(node: str | None = NodeOpt) -> None:
    """The reward rules."""
    _read(node, lambda r, i, c: i.params())


@incentive_app.command("fund-pool")
@handle_errors
def fund_pool(sender: str, amount: int, node: str | None = NodeOpt,
              keyring: Path | None = KeyringOpt) -> None:
    """Donate AMOUNT to the reward pool."""
    _write(sender, keyring, node, lambda r, i, k, c: i.fund_pool(k, amount, check=False))
