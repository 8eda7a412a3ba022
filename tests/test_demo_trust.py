"""The trust stories (``sharechain demo trust``) against a real node process.

One single-validator node (the devnet demo world, 150 ms blocks) is started for the module;
each story runs through the SDK only and its outcome is checked here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sharechain.client import Client
from sharechain.demo.trust import CLAIM, TERMS, TrustStories

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stories(client: Client) -> Iterator[TrustStories]:
    yield TrustStories(client, out=lambda _line: None)


def test_late_rider_score_falls_and_deposit_rises(stories: TrustStories) -> None:
    r = stories.late_rider()
    assert (r["tier_before"], r["deposit_before"]) == ("B", TERMS["deposit"])
    assert r["score_after"] < r["score_before"] and r["tier_after"] == "C"
    assert r["deposit_after"] == TERMS["deposit"] * 3 // 2
    assert r["top_kinds"][0] == "late"


def test_provider_keeps_reputation_across_platforms(stories: TrustStories) -> None:
    r = stories.provider_moves()
    assert r["score_after_move"] == r["score_on_a"]
    assert r["score_on_b"] > r["score_on_a"]
    from sharechain.crypto import PrivateKey

    assert r["platforms"][-2:] == [PrivateKey.from_name("bikeco").bech32,
                                   PrivateKey.from_name("carshare").bech32]


def test_disputed_claim_is_ruled_and_moves_the_funds(stories: TrustStories,
                                                     client: Client) -> None:
    r = stories.disputed_claim()
    assert len(r["panel"]) == 3
    assert (r["outcome"], r["execution"]) == ("uphold", "ok")
    assert (r["claim_state"], r["paid_provider"], r["carol_gain"]) == ("resolved", CLAIM, CLAIM)
    assert sorted(r["votes"]) == ["reject", "uphold", "uphold"]
    takes = sorted(r["earned"].values())
    assert takes[0] < 0 < takes[1] == takes[2]      # the dissenter paid tx fees, earned nothing
    assert r["rider_events"][-2:] == ["damage_confirmed", "dispute_lost"]
    supply = client.query("bank", "supply")["supply"]
    assert supply > 0


def test_bureau_report_needs_consent(stories: TrustStories) -> None:
    r = stories.bureau_report()
    assert r["score_with_report"] > r["score_before"] and r["bureau_score"] == 900
    assert r["refused"] == "consent_required" and r["subject_reports"] == 1
    assert (r["score_after_revoke"], r["reports_after_revoke"]) == (r["score_before"], 0)
