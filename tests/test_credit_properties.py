"""Property tests of the credit score: always within 0..1000, deterministic for any event
sequence, and folding old events away does not change it beyond the rounding of the carry."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sharechain.app.framework import Context
from sharechain.app.state import Overlay
from sharechain.modules.credit import score
from sharechain.modules.credit.keeper import CreditKeeper
from sharechain.modules.credit.types import (
    BLOCKED,
    EVENT_KINDS,
    SCORE_MAX,
    TIER_RANK,
    WEIGHT_ABS_MAX,
    Params,
)
from sharechain.modules.rental.testing import MemState

DAY = 86_400_000
SUBJECT = b"\x07" * 20

weights = st.integers(-WEIGHT_ABS_MAX, WEIGHT_ABS_MAX)
half_lives = st.integers(1, 3_650 * DAY)
events = st.lists(st.tuples(st.sampled_from(EVENT_KINDS), st.integers(0, 400 * DAY)),
                  max_size=90)


@given(v=st.integers(-10**12, 10**12), t=st.integers(-DAY, 10**13), a=st.integers(-DAY, 10**13),
       b=st.integers(0, 10**13), hl=half_lives)
def test_decay_shrinks_toward_zero_keeps_its_sign_and_composes(v: int, t: int, a: int, b: int,
                                                              hl: int) -> None:
    d = score.decay(v, t, t + a, hl)
    assert abs(d) <= abs(v) and (d == 0 or (d > 0) == (v > 0))
    later = score.decay(v, t, t + a + b, hl)
    assert abs(later) <= abs(d)                                  # older never weighs more
    if a >= 0:
        assert abs(score.decay(d, t + a, t + a + b, hl) - later) <= 1 + (abs(v) >> 15)


@given(base=st.integers(0, SCORE_MAX), pairs=st.lists(st.tuples(weights, st.integers(0, 10**13))),
       carry=st.integers(-10**9, 10**9), now=st.integers(0, 2 * 10**13), hl=half_lives,
       bureau=st.lists(st.integers(0, SCORE_MAX), max_size=5), bps=st.integers(0, 10_000),
       blacklisted=st.booleans(), blocked_below=st.integers(0, SCORE_MAX))
def test_score_is_bounded_and_deterministic(base: int, pairs: list[tuple[int, int]], carry: int,
                                            now: int, hl: int, bureau: list[int], bps: int,
                                            blacklisted: bool, blocked_below: int) -> None:
    s1 = score.onchain_score(base, carry, 0, pairs, now, hl)
    assert 0 <= s1 <= SCORE_MAX
    assert s1 == score.onchain_score(base, carry, 0, list(pairs), now, hl)
    combined = score.combine(s1, bureau, bps)
    assert 0 <= combined <= SCORE_MAX
    tier = score.tier_of(combined, blacklisted, Params().tiers, blocked_below)
    assert tier in TIER_RANK and (not blacklisted or tier == BLOCKED)


def _keeper_score(seq: list[tuple[str, int]], now_offset: int) -> tuple[int, int]:
    k = CreditKeeper(roles=None, assets=None)  # type: ignore[arg-type]
    state = MemState()
    t = DAY
    for i, (kind, dt) in enumerate(seq):
        t += dt
        ctx = Context(Overlay(state), "p", i + 1, t, b"", None)  # type: ignore[arg-type]
        k.record(ctx, SUBJECT, kind, "consumer")
        state.apply(ctx.state.writes)
    now = t + now_offset
    view = k.score(state, SUBJECT, now)
    return view.score, view.events


@settings(max_examples=60, deadline=None)
@given(seq=events, now_offset=st.integers(0, 1_000 * DAY))
def test_keeper_score_is_bounded_deterministic_and_folds_faithfully(
        seq: list[tuple[str, int]], now_offset: int) -> None:
    s1, kept = _keeper_score(seq, now_offset)
    assert 0 <= s1 <= SCORE_MAX and kept == min(len(seq), 64)
    assert _keeper_score(seq, now_offset) == (s1, kept)       # a second node agrees
    p = Params()
    times, t = [], DAY
    for _, dt in seq:
        t += dt
        times.append(t)
    pairs = [(p.weights[kind], tm) for (kind, _), tm in zip(seq, times, strict=True)]
    exact = score.onchain_score(p.base_score, 0, 0, pairs, t + now_offset, p.half_life_ms)
    assert abs(s1 - exact) <= 1                                # folding rounds the carry only
