"""Benchmark: optimal matching of open requests to listings on a generated city, next to a
greedy first-come baseline on the same data.

The city is 20 km × 20 km around People's Square, Shanghai: offers (bikes, e-bikes, cars)
and requests are scattered half uniformly and half around eight hot spots, with a day of
availability windows and requested windows, prices per minute or per quarter hour, a
budget per request, deposits scaled by the consumer's credit tier, minimum tiers and asset
conditions, and a search radius per request (bikes 0.3–1 km, e-bikes 0.5–1.5 km, cars
1–3 km). Locations are 7-character geohashes (153 m cells), as listings carry them on chain.

What is measured (all in process, no chain): from the request and offer records to the
assignment — decoding geohashes, building the candidate pairs from grid neighbours and
checking them as the chain would (``edges``), then the exact sparse assignment
(``solve``) or the greedy loop. ``optimal_seconds`` = prepare + edges + solve;
``greedy_seconds`` = prepare + edges + greedy. Costs are price + ``--weight`` tokens per km.

    .venv/bin/python benchmarks/matching.py                       # 10 000 × 10 000
    .venv/bin/python benchmarks/matching.py --requests 2000 --offers 3000 --seconds 20
    .venv/bin/python benchmarks/matching.py --check               # also verify on small cities

``--seconds N`` repeats the round with fresh seeds for about N seconds (at least once) and
reports the median times. Progress goes to stderr; the last line on stdout is one JSON object
with ``n_requests``, ``n_offers``, ``optimal_cost``, ``greedy_cost``, ``matched_optimal``,
``matched_greedy``, ``optimal_seconds`` and the other figures.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from sharechain.market.matcher import (
    Demand,
    Market,
    MatchConfig,
    Offer,
    geohash_of,
    match_greedy,
    match_optimal,
)

CENTRE_UDEG = (31_230_400, 121_473_700)     # People's Square
CITY_M = 20_000
MINUTE = 60_000
HOUR = 60 * MINUTE
T0 = 1_750_000_000_000
GEOHASH_LEN = 7


@dataclass(frozen=True)
class ClassSpec:
    offer_share: float
    request_share: float
    unit_ms: int
    price_per_unit: tuple[int, int]     # range
    deposit: int
    radius_m: tuple[int, int]           # range
    minutes: tuple[int, int]            # requested window, range
    max_duration_ms: int


CLASSES = {
    "bike": ClassSpec(0.55, 0.55, MINUTE, (1, 5), 500, (300, 1_000), (15, 90), 4 * HOUR),
    "ebike": ClassSpec(0.25, 0.25, MINUTE, (2, 8), 1_000, (500, 1_500), (30, 120), 6 * HOUR),
    "car": ClassSpec(0.20, 0.20, 15 * MINUTE, (150, 600), 20_000, (1_000, 3_000), (60, 360),
                     12 * HOUR),
}
TIERS = ((4, 5_000, 0.3), (3, 10_000, 0.4), (2, 15_000, 0.2), (1, 20_000, 0.1))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class City:
    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        r = self.rnd
        self.spots = [(r.uniform(0.15, 0.85) * CITY_M, r.uniform(0.15, 0.85) * CITY_M)
                      for _ in range(8)]

    def place(self) -> str:
        r = self.rnd
        if r.random() < 0.5:
            x, y = r.uniform(0, CITY_M), r.uniform(0, CITY_M)
        else:
            sx, sy = r.choice(self.spots)
            x = min(max(r.gauss(sx, 1_500), 0), CITY_M)
            y = min(max(r.gauss(sy, 1_500), 0), CITY_M)
        lat = CENTRE_UDEG[0] + int((y - CITY_M / 2) / 0.111195)
        cos = math.cos(math.radians(CENTRE_UDEG[0] / 1e6))
        lon = CENTRE_UDEG[1] + int((x - CITY_M / 2) / (0.111195 * cos))
        return geohash_of(lat, lon, GEOHASH_LEN)

    def pick_class(self, for_offer: bool) -> str:
        x, acc = self.rnd.random(), 0.0
        for name, spec in CLASSES.items():
            acc += spec.offer_share if for_offer else spec.request_share
            if x < acc:
                return name
        return "bike"

    def offer(self, i: int) -> Offer:
        r = self.rnd
        cls = self.pick_class(True)
        spec = CLASSES[cls]
        unit, (plo, phi), max_dur = spec.unit_ms, spec.price_per_unit, spec.max_duration_ms
        start = T0 + r.randint(0, 8) * HOUR
        return Offer(
            id=i.to_bytes(8, "big"), class_name=cls, geohash=self.place(),
            price_per_unit=r.randint(plo, phi), unit_ms=unit, deposit=spec.deposit,
            min_duration_ms=unit, max_duration_ms=max_dur, available_from_ms=start,
            available_to_ms=start + r.randint(6, 16) * HOUR,
            min_credit_tier=r.choices((0, 2, 3), (0.7, 0.2, 0.1))[0],
            condition=r.randint(40, 100))

    def demand(self, i: int) -> Demand:
        r = self.rnd
        cls = self.pick_class(False)
        spec = CLASSES[cls]
        unit, (plo, phi), deposit = spec.unit_ms, spec.price_per_unit, spec.deposit
        (rlo, rhi), (mlo, mhi) = spec.radius_m, spec.minutes
        minutes = r.randint(mlo, mhi)
        start = T0 + r.randint(1 * 60, 20 * 60) * MINUTE
        typical = -(-minutes * MINUTE // unit) * (plo + phi) / 2
        tier, mult, _ = r.choices(TIERS, [t[2] for t in TIERS])[0]
        return Demand(
            id=i.to_bytes(8, "big"), class_name=cls, geohash=self.place(),
            radius_m=r.randint(rlo, rhi), start_ms=start, end_ms=start + minutes * MINUTE,
            max_price=int(typical * r.uniform(0.7, 1.8)),
            max_deposit=deposit * 2 if r.random() < 0.9 else deposit // 2,
            min_condition=0 if r.random() < 0.7 else r.randint(60, 90),
            tier=tier, deposit_multiplier_bps=mult)


def generate(n_requests: int, n_offers: int, seed: int) -> tuple[list[Demand], list[Offer]]:
    city = City(seed)
    offers = [city.offer(i) for i in range(n_offers)]
    demands = [city.demand(i) for i in range(n_requests)]
    return demands, offers


def run_round(n_requests: int, n_offers: int, seed: int, weight: float) -> dict[str, Any]:
    demands, offers = generate(n_requests, n_offers, seed)
    cfg = MatchConfig(distance_weight_per_km=weight)
    t0 = time.perf_counter()
    market = Market(demands, offers)
    prepare = time.perf_counter() - t0
    edges = market.edges(cfg)
    opt = match_optimal(edges)
    greedy = match_greedy(edges, len(demands))
    return {
        "n_requests": n_requests, "n_offers": n_offers, "seed": seed,
        "candidates": edges.candidates, "edges": len(edges.rows),
        "optimal_cost": round(opt.cost, 3), "greedy_cost": round(greedy.cost, 3),
        "matched_optimal": opt.matched, "matched_greedy": greedy.matched,
        "matched_share_optimal": round(opt.matched / max(1, n_requests), 4),
        "matched_share_greedy": round(greedy.matched / max(1, n_requests), 4),
        "cost_per_match_optimal": round(opt.cost / max(1, opt.matched), 3),
        "cost_per_match_greedy": round(greedy.cost / max(1, greedy.matched), 3),
        "prepare_seconds": round(prepare, 3), "edges_seconds": round(edges.seconds, 3),
        "solve_seconds": round(opt.seconds, 3), "greedy_loop_seconds": round(greedy.seconds, 3),
        "optimal_seconds": round(prepare + edges.seconds + opt.seconds, 3),
        "greedy_seconds": round(prepare + edges.seconds + greedy.seconds, 3),
    }


def check(rounds: int, weight: float) -> int:
    """On small cities, compare the sparse solver with a dense exact assignment."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    for seed in range(rounds):
        demands, offers = generate(60, 50, 1_000 + seed)
        market = Market(demands, offers)
        edges = market.edges(MatchConfig(weight))
        opt = match_optimal(edges)
        n_r, n_o = len(demands), len(offers)
        big = float(edges.cost.max() if len(edges.cost) else 1.0) * (n_r + 1) + 1.0
        m = np.full((n_r, n_o + n_r), np.inf)
        m[edges.rows, edges.cols] = edges.cost
        m[np.arange(n_r), n_o + np.arange(n_r)] = big
        m[np.isinf(m)] = big * 10
        ri, ci = linear_sum_assignment(m)
        real = ci < n_o
        dense_matched, dense_cost = int(real.sum()), float(m[ri[real], ci[real]].sum())
        if (opt.matched, round(opt.cost, 6)) != (dense_matched, round(dense_cost, 6)):
            log(f"check FAILED on seed {seed}: sparse {opt.matched} / {opt.cost}, dense "
                f"{dense_matched} / {dense_cost}")
            return 1
    log(f"check: the sparse solver equals a dense exact assignment on {rounds} small cities")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--offers", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=0.0,
                    help="repeat rounds with fresh seeds for about this long (min one round)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--weight", type=float, default=100.0, help="tokens per km of distance")
    ap.add_argument("--check", action="store_true",
                    help="first verify the solver against a dense assignment on small cities")
    args = ap.parse_args(argv)
    if args.check and check(20, args.weight):
        return 1
    rounds: list[dict[str, Any]] = []
    started = time.perf_counter()
    while True:
        res = run_round(args.requests, args.offers, args.seed + len(rounds), args.weight)
        rounds.append(res)
        log(f"round {len(rounds)} (seed {res['seed']}): {res['candidates']:,} candidate "
            f"pairs, {res['edges']:,} feasible")
        log(f"  optimal: {res['matched_optimal']:,}/{res['n_requests']:,} matched "
            f"({res['matched_share_optimal']:.1%}), total cost {res['optimal_cost']:,.0f} "
            f"({res['cost_per_match_optimal']:,.1f} per match), {res['optimal_seconds']:.2f} s "
            f"(prepare {res['prepare_seconds']:.2f} + edges {res['edges_seconds']:.2f} + "
            f"solve {res['solve_seconds']:.2f})")
        log(f"  greedy:  {res['matched_greedy']:,}/{res['n_requests']:,} matched "
            f"({res['matched_share_greedy']:.1%}), total cost {res['greedy_cost']:,.0f} "
            f"({res['cost_per_match_greedy']:,.1f} per match), {res['greedy_seconds']:.2f} s")
        if time.perf_counter() - started >= args.seconds:
            break
    out = dict(rounds[0])
    if len(rounds) > 1:
        for k in ("optimal_seconds", "greedy_seconds", "solve_seconds", "edges_seconds"):
            out[k] = round(statistics.median(r[k] for r in rounds), 3)
        out["rounds"] = len(rounds)
        out["matched_optimal_minus_greedy_min"] = min(
            r["matched_optimal"] - r["matched_greedy"] for r in rounds)
    out["extra_matched_vs_greedy"] = out["matched_optimal"] - out["matched_greedy"]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
