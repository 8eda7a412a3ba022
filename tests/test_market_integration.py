"""The market story (``sharechain demo market``) against a real node process.

One single-validator node (the devnet demo world, 150 ms blocks) is started for the module;
the story runs through the SDK only and its outcome is checked here: a cross-platform
booking whose platform fee is split between the listing and the booking platform, an
optimal matcher filling two requests, and a stale fill refused without a state change.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sharechain.client import Client
from sharechain.crypto import PrivateKey
from sharechain.demo.market import MarketStory
from sharechain.modules.market.rules import split_fee

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def story(client: Client) -> Iterator[MarketStory]:
    yield MarketStory(client, out=lambda _line: None)


def test_cross_platform_booking_splits_the_fee(story: MarketStory, client: Client) -> None:
    supply = client.query("bank", "supply")["supply"]
    r = story.cross_platform_booking()
    bikeco, carshare = (PrivateKey.from_name(n).bech32 for n in ("bikeco", "carshare"))
    assert r["found"] and (r["lister"], r["via"]) == (bikeco, carshare)
    assert r["booking"]["via"] == carshare and r["booking"]["lister"] == bikeco
    operator_part = r["platform_fee"] - r["pool_fee"]
    bps = client.query("market", "params")["booking_platform_bps"]
    assert (r["lister_amount"], r["via_amount"]) == split_fee(operator_part, bps)
    assert r["via_amount"] > 0 and r["lister_amount"] > r["via_amount"]
    assert r["gains"] == {"bikeco": r["lister_amount"], "carshare": r["via_amount"]}
    assert client.query("bank", "supply")["supply"] == supply


def test_matcher_fills_requests_optimally(story: MarketStory) -> None:
    r = story.matching()
    assert r["states"] == ["filled", "filled"]
    # each request gets the bike in its own cell (the other one is 200 m away)
    first, second = r["requests"]
    assert r["assigned"] == {first: r["listings"][1], second: r["listings"][0]}


def test_stale_fill_is_refused_without_a_state_change(story: MarketStory) -> None:
    r = story.stale_fill()
    assert r["planned"] == 1
    assert r["code"] == "offer_unavailable" and r["message"].startswith("offer_not_found")
    assert r["request_state"] == "open" and r["rider_balance_unchanged"]


def test_cli_search_and_dry_run_match(client: Client) -> None:
    from typer.testing import CliRunner

    from sharechain.cli.market import app

    runner = CliRunner()
    found = runner.invoke(app, ["search", "bike", "--area", "wtw3s", "--node", client.url])
    assert found.exit_code == 0, found.output
    assert '"listings"' in found.output
    bad = runner.invoke(app, ["search", "bike", "--area", "wtw3a", "--node", client.url])
    assert bad.exit_code != 0 and "invalid_geohash" in bad.output
    plan = runner.invoke(app, ["match", "carshare", "--class", "bike", "--dry-run",
                               "--node", client.url])
    assert plan.exit_code == 0, plan.output
    text = " ".join(plan.output.split())           # rich wraps long lines
    assert "open requests" in text and "0 filled" in text and '"filled": []' in text
