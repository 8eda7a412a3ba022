"""The off-chain matcher: its geodesy replicates the chain's exactly, its feasibility is the
chain's fill check, its sparse solver equals a dense exact assignment, and the greedy
baseline is first come, first served."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from sharechain.market.matcher import (
    Demand,
    Market,
    MatchConfig,
    Offer,
    distance_mm_np,
    geohash_of,
    match,
    match_greedy,
    match_optimal,
)
from sharechain.modules.iot.geo import decode_geohash, distance_mm
from sharechain.modules.market.rules import fit_error

MIN = 60_000
T0 = 1_750_000_000_000
CENTRE = (31_230_400, 121_473_700)

lat = st.integers(-80_000_000, 80_000_000)
lon = st.integers(-180_000_000, 179_999_999)
offset = st.integers(-300_000, 300_000)     # within ~33 km


@given(lat, lon, offset, offset)
def test_vectorised_distance_equals_the_chains(la: int, lo: int, dla: int, dlo: int) -> None:
    la2 = max(-90_000_000, min(90_000_000, la + dla))
    lo2 = lo + dlo
    got = distance_mm_np(*(np.array([v], dtype=np.int64) for v in (la, lo, la2, lo2)))
    assert int(got[0]) == distance_mm(la, lo, la2, lo2)


@given(st.integers(-89_999_999, 89_999_999), lon, st.integers(1, 12))
def test_geohash_of_names_the_cell_holding_the_point(la: int, lo: int, n: int) -> None:
    gh = geohash_of(la, lo, n)
    c_lat, c_lon, h_lat, h_lon = decode_geohash(gh)
    assert len(gh) == n
    assert abs(la - c_lat) <= h_lat and abs(lo - c_lon) <= h_lon


def _city(seed: int, n_d: int, n_o: int) -> tuple[list[Demand], list[Offer]]:
    r = random.Random(seed)

    def place() -> str:
        return geohash_of(CENTRE[0] + r.randint(-12_000, 12_000),
                          CENTRE[1] + r.randint(-14_000, 14_000), 7)

    offers = [Offer(i.to_bytes(8, "big"), r.choice(["bike", "car"]), place(),
                    r.randint(1, 6), MIN, r.choice([0, 500, 2_000]), MIN, 240 * MIN,
                    T0 + r.randint(0, 4) * 60 * MIN, T0 + r.randint(6, 12) * 60 * MIN,
                    r.choice([0, 0, 2, 3]), r.randint(30, 100),
                    ((T0 + 300 * MIN, T0 + 330 * MIN),) if r.random() < 0.2 else ())
              for i in range(n_o)]
    demands = []
    for i in range(n_d):
        start = T0 + r.randint(60, 600) * MIN
        minutes = r.randint(10, 120)
        demands.append(Demand(i.to_bytes(8, "big"), r.choice(["bike", "car"]), place(),
                              r.randint(200, 2_000), start, start + minutes * MIN,
                              r.randint(minutes, 6 * minutes), r.choice([0, 1_000, 5_000]),
                              r.choice([0, 0, 50, 90]), r.randint(0, 4),
                              r.choice([5_000, 10_000, 15_000])))
    return demands, offers


def _chain_accepts(d: Demand, o: Offer) -> bool:
    """What the chain would say about filling ``d`` with ``o`` (fit + rental + deposit)."""
    dur = d.end_ms - d.start_ms
    if fit_error(d, o) is not None:
        return False
    if not o.min_duration_ms <= dur <= o.max_duration_ms or d.tier < o.min_credit_tier:
        return False
    if -(-o.deposit * d.deposit_multiplier_bps // 10_000) > d.max_deposit:
        return False
    return all(d.end_ms <= s or e <= d.start_ms for s, e in o.booked)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_feasible_pairs_are_exactly_what_the_chain_accepts(seed: int) -> None:
    demands, offers = _city(seed, 40, 40)
    edges = Market(demands, offers).edges()
    got = set(zip(edges.rows.tolist(), edges.cols.tolist(), strict=True))
    want = {(i, j) for i, d in enumerate(demands) for j, o in enumerate(offers)
            if _chain_accepts(d, o)}
    assert got == want


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0, 1_000))
def test_sparse_solver_equals_a_dense_exact_assignment(seed: int, weight: float) -> None:
    demands, offers = _city(seed, 30, 25)
    edges = Market(demands, offers).edges(MatchConfig(weight))
    opt = match_optimal(edges)
    assert len({o for _, o in opt.pairs}) == len(opt.pairs) == len({d for d, _ in opt.pairs})
    feasible = set(zip(edges.rows.tolist(), edges.cols.tolist(), strict=True))
    assert set(opt.pairs) <= feasible
    n_d, n_o = len(demands), len(offers)
    big = (float(edges.cost.max()) if len(edges.cost) else 1.0) * (n_d + 1) + 1.0
    m = np.full((n_d, n_o + n_d), big * 10)
    m[edges.rows, edges.cols] = edges.cost
    m[np.arange(n_d), n_o + np.arange(n_d)] = big
    ri, ci = linear_sum_assignment(m)
    real = ci < n_o
    assert opt.matched == int(real.sum())
    assert abs(opt.cost - float(m[ri[real], ci[real]].sum())) < 1e-6 * max(1.0, opt.cost)
    greedy = match_greedy(edges, n_d)
    assert greedy.matched <= opt.matched
    if greedy.matched == opt.matched:
        assert opt.cost <= greedy.cost + 1e-6


def test_greedy_is_first_come_cheapest_and_optimal_serves_more() -> None:
    # two requests, two bikes: A is cheap and near both; B is reachable only by request 0
    here, near, far = "wtw3sjq", "wtw3sjr", "wtw3sjm"

    def bike(i: int, gh: str, price: int) -> Offer:
        return Offer(bytes([i]) * 8, "bike", gh, price, MIN, 0, MIN, 600 * MIN, T0,
                     T0 + 600 * MIN)

    def rider(i: int, gh: str, radius: int) -> Demand:
        return Demand(bytes([i]) * 8, "bike", gh, radius, T0 + MIN, T0 + 31 * MIN, 1_000, 0)

    offers = [bike(1, here, 1), bike(2, far, 5)]
    demands = [rider(1, here, 400), rider(2, near, 140)]     # rider 2 reaches only `here`
    edges = Market(demands, offers).edges()
    greedy = match_greedy(edges, 2)
    assert greedy.pairs == [(0, 0)]                          # the first takes the cheap bike
    assert sorted(match_optimal(edges).pairs) == [(0, 1), (1, 0)]
    triples = match(demands, offers)
    assert {(d.id, o.id) for d, o, _ in triples} == {(demands[0].id, offers[1].id),
                                                     (demands[1].id, offers[0].id)}


def test_nothing_to_match_is_fine() -> None:
    assert match([], []) == []
    demands, offers = _city(1, 5, 0)
    assert match_optimal(Market(demands, offers).edges()).pairs == []
