"""``sharechain market …``: listings visible to every platform, search, bookings through
another platform, consumer requests, and the optimal matcher (a typer sub-app).

Keys are names in the keystore (addresses may be bech32 text); assets are given by code
(``BIKE-0001``) or hex id; listings, requests and rentals by their hex id. Every write waits
for the commit and prints the result; a failed transaction prints its error code and exits
non-zero.

    sharechain market list bikeco BIKE-0001 --geohash wtw3sjq --hours 12 --condition 90
    sharechain market search bike --area wtw3s --start-in-s 600 --duration-s 1800
    sharechain market book alice 0000000000000001 --via carshare --start-in-s 60 \\
        --duration-s 1800
    sharechain market request bob bike --geohash wtw3sjq --radius-m 800 --start-in-s 900 \\
        --duration-s 1800 --max-price 600 --max-deposit 2000 --via carshare
    sharechain market match carshare --class bike            # assign and fill, optimally
    sharechain market match carshare --class bike --dry-run  # the plan only
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from sharechain.cli.common import console, handle_errors
from sharechain.cli.common import (  # the shared plumbing, under this module's names
    client_for as _client,
    load_key as _key,
    resolve as _addr,
    print_json as _print,
)

app = typer.Typer(help="Market: cross-platform listings, search, bookings, requests and "
                       "optimal matching.", no_args_is_help=True)

NodeOpt = typer.Option(None, "--node", help="Node API URL (env SHARECHAIN_NODE).")
KeyringOpt = typer.Option(None, "--keyring", help="Keystore folder (env SHARECHAIN_KEYRING).")
StartInOpt = typer.Option(0, help="Window start, in seconds from now.")
ClassesOpt = typer.Option(["bike"], "--class", help="Asset class to match (repeatable).")
DurationOpt = typer.Option(..., help="Window length in seconds.")


# ---------------------------------------------------------------- plumbing









def _api(c: Any) -> Any:
    from sharechain.client.market import MarketAPI

    return MarketAPI(c)


def _write(sender: str, keyring: Path | None, node: str | None, call: Any) -> None:
    """Run ``call(market_api, key, client)`` and print the committed result."""
    from sharechain.cli.main import print_tx_result

    key = _key(sender, keyring)
    with _client(node) as c:
        res = call(_api(c), key, c)
    print_tx_result(res)


def _read(node: str | None, call: Any) -> None:
    with _client(node) as c:
        _print(call(_api(c), c))


def _asset_id(c: Any, asset: str) -> bytes:
    """A 32-character hex id as is; anything else is an asset code looked up on the node."""
    if len(asset) == 32:
        try:
            return bytes.fromhex(asset)
        except ValueError:
            pass
    return bytes.fromhex(c.query("assets", "asset", code=asset)["id"])


def _window(start_in_s: int, duration_s: int) -> tuple[int, int]:
    start = int(time.time() * 1000) + start_in_s * 1000
    return start, start + duration_s * 1000


# ==================================================================== listings

@app.command("list")
@handle_errors
def list_(sender: str, asset: str,
          geohash: str = typer.Option(..., help="Where the asset is (5-12 characters)."),
          from_in_s: int = typer.Option(0, help="Bookable from this many seconds from now."),
          hours: int = typer.Option(24, help="Bookable for this many hours."),
          condition: int = typer.Option(100, help="Asset condition, 0 (poor) to 100 (new)."),
          node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """List ASSET's current rental offer for every platform (SENDER: its operator)."""
    start, end = _window(from_in_s, hours * 3600)
    _write(sender, keyring, node, lambda m, k, c: m.list_tx(
        k, _asset_id(c, asset), geohash, start, end, condition, check=False))


@app.command("delist")
@handle_errors
def delist(sender: str, listing_id: str, node: str | None = NodeOpt,
           keyring: Path | None = KeyringOpt) -> None:
    """Remove a listing (the listing platform, or the asset's owner or operator)."""
    _write(sender, keyring, node, lambda m, k, c: m.delist(k, listing_id, check=False))


@app.command("search")
@handle_errors
def search(class_name: str = typer.Argument(..., metavar="CLASS"),
           area: str = typer.Option("", help="Geohash prefix of the area."),
           start_in_s: int = typer.Option(-1, help="Window start in seconds from now "
                                                   "(with --duration-s)."),
           duration_s: int = typer.Option(0, help="Window length in seconds."),
           max_price: int = typer.Option(0, help="Most the window (or, without one, an hour) "
                                                 "may cost."),
           tier: str = typer.Option("", help="Your credit tier (A-D or a rank 0-4)."),
           min_condition: int = typer.Option(0, help="Least asset condition."),
           limit: int = typer.Option(50), cursor: str = typer.Option(""),
           node: str | None = NodeOpt) -> None:
    """Listings of CLASS, cheapest first within each cell; pass --cursor for the next page."""
    start, end = _window(start_in_s, duration_s) if start_in_s >= 0 and duration_s else (0, 0)
    _read(node, lambda m, c: m.search(class_name, area, start, end, max_price, tier or None,
                                      min_condition, limit, cursor))


@app.command("show-listing")
@handle_errors
def show_listing(listing_id: str, node: str | None = NodeOpt) -> None:
    _read(node, lambda m, c: m.listing(listing_id))


# ==================================================================== bookings and requests

@app.command("book")
@handle_errors
def book(sender: str, listing_id: str,
         via: str = typer.Option(..., help="The platform you book through (name or address)."),
         start_in_s: int = StartInOpt, duration_s: int = DurationOpt,
         max_price: int = typer.Option(0, help="Refuse if the window costs more (0: no cap)."),
         node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """Book a listed asset through platform VIA; the platform fee is split between the
    listing platform and VIA."""
    start, end = _window(start_in_s, duration_s)
    via_addr = _addr(via, keyring)
    _write(sender, keyring, node, lambda m, k, c: m.book_tx(
        k, listing_id, start, end, via_addr, max_price, check=False))


@app.command("request")
@handle_errors
def request(sender: str, class_name: str = typer.Argument(..., metavar="CLASS"),
            geohash: str = typer.Option(..., help="Where you are (5-12 characters)."),
            radius_m: int = typer.Option(1_000, help="How far the asset may be (metres)."),
            start_in_s: int = StartInOpt, duration_s: int = DurationOpt,
            max_price: int = typer.Option(..., help="Most the window may cost."),
            max_deposit: int = typer.Option(..., help="Most the deposit may be."),
            min_condition: int = typer.Option(0, help="Least asset condition (0-100)."),
            via: str = typer.Option("", help="Your platform (gets its share of the fee)."),
            node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """Post a request: any platform's matcher may fill it within these limits."""
    start, end = _window(start_in_s, duration_s)
    via_addr = _addr(via, keyring) if via else None
    _write(sender, keyring, node, lambda m, k, c: m.request_tx(
        k, class_name, geohash, radius_m, start, end, max_price, max_deposit, min_condition,
        via_addr, check=False))


@app.command("cancel-request")
@handle_errors
def cancel_request(sender: str, request_id: str, node: str | None = NodeOpt,
                   keyring: Path | None = KeyringOpt) -> None:
    _write(sender, keyring, node, lambda m, k, c: m.cancel_request(k, request_id, check=False))


@app.command("fill")
@handle_errors
def fill(sender: str, request_id: str, listing_id: str, node: str | None = NodeOpt,
         keyring: Path | None = KeyringOpt) -> None:
    """As a platform, book LISTING_ID for REQUEST_ID on the consumer's behalf."""
    _write(sender, keyring, node,
           lambda m, k, c: m.fill(k, request_id, listing_id, check=False))


@app.command("show-request")
@handle_errors
def show_request(request_id: str, node: str | None = NodeOpt) -> None:
    _read(node, lambda m, c: m.get_request(request_id))


@app.command("requests")
@handle_errors
def requests(class_name: str = typer.Argument(..., metavar="CLASS"),
             node: str | None = NodeOpt) -> None:
    """Every open request of CLASS, oldest first."""
    _read(node, lambda m, c: list(m.open_requests(class_name)))


@app.command("booking")
@handle_errors
def booking(rental_id: str, node: str | None = NodeOpt) -> None:
    """How a rental was booked through the market (listing, platforms)."""
    _read(node, lambda m, c: m.booking(rental_id))


# ==================================================================== matching

@app.command("match")
@handle_errors
def match(sender: str,
          classes: list[str] = ClassesOpt,
          weight: float = typer.Option(100.0, help="Tokens one km of distance is worth."),
          dry_run: bool = typer.Option(False, help="Print the plan, submit nothing."),
          node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """Assign open requests to listings optimally (most served, then least price +
    distance) and submit the fills signed by SENDER (a platform)."""
    from sharechain.client.market import match_and_book
    from sharechain.market.matcher import MatchConfig

    key = None if dry_run else _key(sender, keyring)
    with _client(node) as c:
        report = match_and_book(c, key, classes, MatchConfig(weight), dry_run=dry_run)
    console.print(f"{report.requests} open requests, {report.offers} listings, "
                  f"{report.edges} feasible pairs: {len(report.planned)} planned "
                  f"(cost {report.cost:,.1f}), {len(report.filled)} filled, "
                  f"{len(report.skipped)} skipped")
    _print({"planned": report.planned, "filled": report.filled, "skipped": report.skipped})
    if report.skipped:
        raise typer.Exit(1)
