"""Optimal supply/demand matching for the market — an off-chain service.

Theory of operation
-------------------
Open requests (demands) are assigned to available listings (offers) so that as many
requests as possible are served and, among all such assignments, the total cost is the
least, where the cost of serving a request with an offer is

    cost = price of the request's window + distance_weight_per_km × distance

and a pair is *feasible* only if it passes exactly the checks the chain makes when the fill
arrives (``market/fill``): same class, distance between the two geohash cell centres within
the request's radius, the window inside the offer's availability and its duration within the
offer's limits, the offer's condition, tier and price within the request's limits, the
deposit (scaled by the consumer's credit multiplier) within the request's limit, and the
window not booked already. Distances use a vectorised, exact replica of the chain's integer
geodesy (``modules/iot/geo.py``), so the matcher and the chain never disagree about
"within the radius".

Candidate pairs come from a grid, not from all pairs: per class, offers are bucketed in the
cells of a geohash bit grid whose cells are at least as large as the largest radius of that
class, and a request looks only at its own cell and the eight neighbours (geohash
neighbours); everything beyond them is further than any radius. The feasible pairs form a
sparse bipartite graph; each of its connected components (never larger than a class, often
much smaller) is an independent problem, solved exactly by SciPy's
``min_weight_full_bipartite_matching`` (LAPJVsp, a sparse Jonker–Volgenant shortest
augmenting path method) on the component plus one private dummy offer per request whose
cost exceeds what any augmenting path can save: the solution first maximises the number of
matched requests and then minimises the total cost. Requests and offers without any feasible
pair are left out before solving; a component with one request or one offer is just its
cheapest pair.

The greedy baseline serves requests in arrival order, each taking its cheapest feasible
offer still free — what a first-come platform does.

Floats are fine here: this is not consensus state. The resulting assignment is submitted as
ordinary signed ``market/fill`` transactions (see ``sharechain.client.market``), which the
chain checks again; a pair gone stale in between fails cleanly there.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching

from sharechain.modules.iot.geo import (
    COS_E6,
    GEOHASH_ALPHABET,
    LAT_SPAN_UDEG,
    LON_SPAN_UDEG,
    MM_PER_UDEG_DEN,
    MM_PER_UDEG_NUM,
    UDEG,
    decode_geohash,
)

BPS_DENOM = 10_000
I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
_COS_E6 = np.array(COS_E6, dtype=np.int64)
GRID_MARGIN = 1.02          # cells a little larger than the radius: integer rounding slack
GRID_BITS_MAX = 26          # per axis; cells of a few metres at most


# ---------------------------------------------------------------- inputs and outputs

@dataclass(frozen=True, slots=True)
class Offer:
    """An available listing, as the matcher sees it."""

    id: bytes
    class_name: str
    geohash: str
    price_per_unit: int
    unit_ms: int
    deposit: int
    min_duration_ms: int
    max_duration_ms: int
    available_from_ms: int
    available_to_ms: int
    min_credit_tier: int = 0
    condition: int = 100
    booked: tuple[tuple[int, int], ...] = ()    # windows already reserved


@dataclass(frozen=True, slots=True)
class Demand:
    """An open request, with its consumer's credit standing."""

    id: bytes
    class_name: str
    geohash: str
    radius_m: int
    start_ms: int
    end_ms: int
    max_price: int
    max_deposit: int
    min_condition: int = 0
    tier: int = 4                        # the consumer's tier rank (credit: 4 = A ... 0)
    deposit_multiplier_bps: int = BPS_DENOM


@dataclass(frozen=True)
class MatchConfig:
    distance_weight_per_km: float = 100.0   # tokens one kilometre of distance is worth


@dataclass
class Edges:
    """Feasible pairs: demand index, offer index, cost (sorted by demand, then cost)."""

    rows: I64
    cols: I64
    cost: F64
    candidates: int = 0                     # pairs looked at before the checks
    seconds: float = 0.0


@dataclass
class Assignment:
    pairs: list[tuple[int, int]]            # (demand index, offer index)
    cost: float
    seconds: float
    method: str
    per_pair_cost: list[float] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return len(self.pairs)


# ---------------------------------------------------------------- geodesy (vectorised)

def geohash_of(lat_udeg: int, lon_udeg: int, length: int) -> str:
    """The geohash of ``length`` characters of a point in micro-degrees (exact integers:
    the cell whose index is ``floor((x - lo) × 2**bits / span)`` on each axis)."""
    bits = 5 * length
    lon_bits, lat_bits = (bits + 1) // 2, bits // 2
    lon_k = min((lon_udeg + 180 * UDEG) * (1 << lon_bits) // LON_SPAN_UDEG, (1 << lon_bits) - 1)
    lat_k = min((lat_udeg + 90 * UDEG) * (1 << lat_bits) // LAT_SPAN_UDEG, (1 << lat_bits) - 1)
    value = 0
    for i in range(bits):          # interleave, longitude first, most significant first
        if i % 2 == 0:
            lon_bits -= 1
            value = value * 2 + ((lon_k >> lon_bits) & 1)
        else:
            lat_bits -= 1
            value = value * 2 + ((lat_k >> lat_bits) & 1)
    return "".join(GEOHASH_ALPHABET[(value >> (5 * (length - 1 - j))) & 31]
                   for j in range(length))


def distance_mm_np(lat1: I64, lon1: I64, lat2: I64, lon2: I64) -> I64:
    """Exactly ``iot.geo.distance_mm`` over arrays (for points less than ~3000 km apart,
    where the squares fit in 64 bits)."""
    dlat = np.abs(lat1 - lat2)
    dlon = np.abs(lon1 - lon2) % LON_SPAN_UDEG
    dlon = np.minimum(dlon, LON_SPAN_UDEG - dlon)
    dy = dlat * MM_PER_UDEG_NUM // MM_PER_UDEG_DEN
    a = np.minimum(np.abs((lat1 + lat2) // 2), 90 * UDEG)
    d, frac = np.divmod(a, UDEG)
    lo = _COS_E6[np.minimum(d, 90)]
    hi = _COS_E6[np.minimum(d + 1, 90)]
    cos = np.where(d >= 90, 0, lo - (lo - hi) * frac // UDEG)
    dx = (dlon * MM_PER_UDEG_NUM // MM_PER_UDEG_DEN) * cos // UDEG
    sq = dx * dx + dy * dy
    r = np.floor(np.sqrt(sq.astype(np.float64))).astype(np.int64)
    r -= (r * r > sq).astype(np.int64)
    r += ((r + 1) * (r + 1) <= sq).astype(np.int64)
    return r


class _Centres:
    """Cell centres of geohashes in micro-degrees, decoded once per distinct text."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, int]] = {}

    def __call__(self, hashes: Sequence[str]) -> tuple[I64, I64]:
        cache = self._cache
        lat = np.empty(len(hashes), dtype=np.int64)
        lon = np.empty(len(hashes), dtype=np.int64)
        for i, h in enumerate(hashes):
            c = cache.get(h)
            if c is None:
                la, lo, _, _ = decode_geohash(h)
                c = cache[h] = (la, lo)
            lat[i], lon[i] = c
        return lat, lon


def _grid_bits(span_udeg: int, cell_min_udeg: float) -> int:
    """The most bits (finest geohash grid) whose cells are still at least ``cell_min``."""
    bits = 0
    while bits < GRID_BITS_MAX and span_udeg / (1 << (bits + 1)) >= cell_min_udeg:
        bits += 1
    return bits


# ---------------------------------------------------------------- the problem

class Market:
    """Demands and offers as arrays, ready for edge generation."""

    def __init__(self, demands: Sequence[Demand], offers: Sequence[Offer]) -> None:
        self.demands = list(demands)
        self.offers = list(offers)
        centres = _Centres()
        d, o = self.demands, self.offers
        classes = sorted({x.class_name for x in d} | {x.class_name for x in o})
        cls = {c: i for i, c in enumerate(classes)}
        self.classes = classes

        def arr(items: Sequence[object], name: str) -> I64:
            return np.fromiter((getattr(x, name) for x in items), dtype=np.int64,
                               count=len(items))

        self.d_cls = np.fromiter((cls[x.class_name] for x in d), np.int64, len(d))
        self.d_lat, self.d_lon = centres([x.geohash for x in d])
        self.d_radius_mm = arr(d, "radius_m") * 1000
        self.d_start, self.d_end = arr(d, "start_ms"), arr(d, "end_ms")
        self.d_max_price = np.fromiter((x.max_price for x in d), np.float64, len(d))
        self.d_max_deposit = np.fromiter((x.max_deposit for x in d), np.float64, len(d))
        self.d_min_condition, self.d_tier = arr(d, "min_condition"), arr(d, "tier")
        self.d_mult = arr(d, "deposit_multiplier_bps")
        self.o_cls = np.fromiter((cls[x.class_name] for x in o), np.int64, len(o))
        self.o_lat, self.o_lon = centres([x.geohash for x in o])
        self.o_ppu = np.fromiter((x.price_per_unit for x in o), np.float64, len(o))
        self.o_unit = arr(o, "unit_ms")
        self.o_deposit = np.fromiter((x.deposit for x in o), np.float64, len(o))
        self.o_min_dur, self.o_max_dur = arr(o, "min_duration_ms"), arr(o, "max_duration_ms")
        self.o_from, self.o_to = arr(o, "available_from_ms"), arr(o, "available_to_ms")
        self.o_tier, self.o_condition = arr(o, "min_credit_tier"), arr(o, "condition")
        self.o_booked = np.fromiter((bool(x.booked) for x in o), np.bool_, len(o))

    # ------------------------------------------------------------ candidate pairs
    def _candidates(self, c: int) -> tuple[I64, I64]:
        """Pairs (demand, offer) of class ``c`` in the same or a neighbouring grid cell."""
        di = np.flatnonzero(self.d_cls == c)
        oi = np.flatnonzero(self.o_cls == c)
        if len(di) == 0 or len(oi) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        lats = np.concatenate([self.d_lat[di], self.o_lat[oi]])
        radius_mm = float(self.d_radius_mm[di].max()) * GRID_MARGIN
        cos_min = max(np.cos(np.radians(min(float(np.abs(lats).max()) / UDEG + 1, 89.9))),
                      1e-3)
        mm_per_udeg = MM_PER_UDEG_NUM / MM_PER_UDEG_DEN
        lat_bits = _grid_bits(LAT_SPAN_UDEG, radius_mm / mm_per_udeg)
        lon_bits = _grid_bits(LON_SPAN_UDEG, radius_mm / (mm_per_udeg * cos_min))
        nx = (1 << lon_bits) + 2

        def cells(lat: I64, lon: I64) -> tuple[I64, I64]:
            iy = (lat + 90 * UDEG) * (1 << lat_bits) // LAT_SPAN_UDEG + 1
            ix = (lon + 180 * UDEG) * (1 << lon_bits) // LON_SPAN_UDEG + 1
            return iy, ix

        oy, ox = cells(self.o_lat[oi], self.o_lon[oi])
        okey = oy * nx + ox
        order = np.argsort(okey, kind="stable")
        sorted_keys = okey[order]
        dy, dx = cells(self.d_lat[di], self.d_lon[di])
        rows, cols = [], []
        for sy in (-1, 0, 1):
            for sx in (-1, 0, 1):
                k = (dy + sy) * nx + dx + sx
                lo = np.searchsorted(sorted_keys, k, "left")
                hi = np.searchsorted(sorted_keys, k, "right")
                cnt = hi - lo
                total = int(cnt.sum())
                if not total:
                    continue
                starts = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt)
                rows.append(np.repeat(di, cnt))
                cols.append(oi[order[starts + np.arange(total)]])
        if not rows:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(rows), np.concatenate(cols)

    def _feasible(self, r: I64, c: I64, cfg: MatchConfig) -> tuple[I64, I64, F64]:
        """Keep the pairs the chain would accept; return them with their costs."""
        start, end = self.d_start[r], self.d_end[r]
        dur = end - start
        keep = ((self.o_from[c] <= start) & (end <= self.o_to[c])
                & (self.o_min_dur[c] <= dur) & (dur <= self.o_max_dur[c])
                & (self.d_tier[r] >= self.o_tier[c])
                & (self.o_condition[c] >= self.d_min_condition[r]))
        r, c, dur = r[keep], c[keep], dur[keep]
        units = np.maximum(1, -(-dur // self.o_unit[c]))
        price = units * self.o_ppu[c]
        deposit = np.ceil(self.o_deposit[c] * self.d_mult[r] / BPS_DENOM)
        keep = (price <= self.d_max_price[r]) & (deposit <= self.d_max_deposit[r])
        r, c, price = r[keep], c[keep], price[keep]
        dist = distance_mm_np(self.d_lat[r], self.d_lon[r], self.o_lat[c], self.o_lon[c])
        keep = dist <= self.d_radius_mm[r]
        r, c, price, dist = r[keep], c[keep], price[keep], dist[keep]
        if self.o_booked[c].any():
            keep = np.ones(len(r), np.bool_)
            for i in np.flatnonzero(self.o_booked[c]):
                s, e = int(self.d_start[r[i]]), int(self.d_end[r[i]])
                keep[i] = all(e <= bs or be <= s for bs, be in self.offers[c[i]].booked)
            r, c, price, dist = r[keep], c[keep], price[keep], dist[keep]
        cost = price + cfg.distance_weight_per_km * (dist / 1e6)
        return r, c, cost

    def edges(self, cfg: MatchConfig | None = None) -> Edges:
        """Every feasible (demand, offer) pair with its cost, sorted by demand then cost."""
        cfg = cfg or MatchConfig()
        t0 = time.perf_counter()
        parts, candidates = [], 0
        for c in range(len(self.classes)):
            r, o = self._candidates(c)
            candidates += len(r)
            parts.append(self._feasible(r, o, cfg))
        rows = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        cols = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
        cost = np.concatenate([p[2] for p in parts]) if parts else np.empty(0, np.float64)
        order = np.lexsort((cols, cost, rows))
        return Edges(rows[order], cols[order], cost[order], candidates,
                     time.perf_counter() - t0)


# ---------------------------------------------------------------- solvers

def _assignment(pairs: list[tuple[int, int]], costs: list[float], t0: float,
                method: str) -> Assignment:
    return Assignment(pairs, float(sum(costs)), time.perf_counter() - t0, method, costs)


def match_optimal(edges: Edges) -> Assignment:
    """Most requests matched, then least total cost — exactly, one connected component of
    the feasible-pair graph at a time (components never share a request or an offer, and
    each class is at least one component of its own)."""
    t0 = time.perf_counter()
    if len(edges.rows) == 0:
        return _assignment([], [], t0, "optimal")
    rows_u, r = np.unique(edges.rows, return_inverse=True)
    cols_u, c = np.unique(edges.cols, return_inverse=True)
    n_r = len(rows_u)
    graph = coo_matrix((np.ones(len(r)), (r, n_r + c)), shape=(n_r + len(cols_u),) * 2)
    n_comp, label = connected_components(graph, directed=False)
    comp = label[r]
    order = np.argsort(comp, kind="stable")   # keeps the (row, cost, col) order inside
    bounds = np.searchsorted(comp[order], np.arange(n_comp + 1))
    pairs: list[tuple[int, int]] = []
    costs: list[float] = []
    for k in range(n_comp):
        e = order[bounds[k]:bounds[k + 1]]
        for i, j, cost in _solve_component(r[e], c[e], edges.cost[e]):
            pairs.append((int(rows_u[i]), int(cols_u[j])))
            costs.append(cost)
    return _assignment(pairs, costs, t0, "optimal")


def _solve_component(r: I64, c: I64, cost: F64) -> list[tuple[int, int, float]]:
    """The exact assignment of one component: (row, column, cost) triples."""
    rows, ri = np.unique(r, return_inverse=True)
    cols, ci = np.unique(c, return_inverse=True)
    n_r, n_c = len(rows), len(cols)
    if n_r == 1 or n_c == 1:          # a star: one match, the cheapest edge
        best = int(np.argmin(cost))
        return [(int(r[best]), int(c[best]), float(cost[best]))]
    # A dummy column per row: leaving a request unmatched costs more than any augmenting
    # path can save (a path has at most n_r real edges), so cardinality comes first.
    dummy = float(cost.max()) * (n_r + 1) + 1.0
    data = np.concatenate([cost, np.full(n_r, dummy)])
    graph = csr_matrix((data, (np.concatenate([ri, np.arange(n_r)]),
                               np.concatenate([ci, n_c + np.arange(n_r)]))),
                       shape=(n_r, n_c + n_r))
    row_ind, col_ind = min_weight_full_bipartite_matching(graph)
    real = col_ind < n_c
    row_ind, col_ind = row_ind[real], col_ind[real]
    got = np.asarray(graph[row_ind, col_ind]).ravel()
    return [(int(rows[i]), int(cols[j]), float(x))
            for i, j, x in zip(row_ind, col_ind, got, strict=True)]


def match_greedy(edges: Edges, n_demands: int) -> Assignment:
    """Requests in arrival order (their index), each takes its cheapest free offer."""
    t0 = time.perf_counter()
    taken: set[int] = set()
    pairs: list[tuple[int, int]] = []
    costs: list[float] = []
    bounds = np.searchsorted(edges.rows, np.arange(n_demands + 1))
    cols, cost = edges.cols.tolist(), edges.cost.tolist()
    for d in range(n_demands):
        for i in range(int(bounds[d]), int(bounds[d + 1])):
            if cols[i] not in taken:
                taken.add(cols[i])
                pairs.append((d, cols[i]))
                costs.append(cost[i])
                break
    return _assignment(pairs, costs, t0, "greedy")


def match(demands: Sequence[Demand], offers: Sequence[Offer],
          cfg: MatchConfig | None = None) -> list[tuple[Demand, Offer, float]]:
    """The optimal assignment as (demand, offer, cost) triples."""
    m = Market(demands, offers)
    a = match_optimal(m.edges(cfg))
    return [(m.demands[d], m.offers[o], cost)
            for (d, o), cost in zip(a.pairs, a.per_pair_cost, strict=True)]
