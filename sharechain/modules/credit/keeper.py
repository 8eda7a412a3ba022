"""credit keeper: credit events, the score, tiers, the blacklist, consent and bureau reports.

Theory of operation
-------------------
Other modules write **credit events** about a participant through :meth:`CreditKeeper.record`
(rental through the listener :meth:`~CreditKeeper.on_rental`; arbitration when a ruling is
final; the regulator through this module's messages). Each event keeps its kind, the weight in
force when it happened, its source platform and a reference (rental, claim, dispute or tx) so
that any score can be explained. A subject keeps at most ``EVENTS_KEPT_MAX`` events; older
ones fold into one carried, decaying sum, so scoring a subject costs a bounded number of reads.

The **score** is a pure function of those records, the parameters, valid bureau reports and
the block time (``score.py``); nothing is cached, so a change of parameters applies at once
and two nodes can never disagree. :meth:`~CreditKeeper.check_reserve` is the rental module's
:class:`CreditGate`: it refuses blacklisted or too-low consumers and returns the deposit
multiplier of the consumer's tier.

Only this module writes ``credit/`` keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

from sharechain.app.params import ParamStore
from sharechain.app.framework import Context
from sharechain.app.state import Readable, prefix_end
from sharechain.crypto import bech32_address
from sharechain.encoding import decode_trusted, encode, from_obj, to_obj
from sharechain.errors import ShareChainError, invariant
from sharechain.modules.credit import keys, score
from sharechain.modules.credit.types import (
    AS_CONSUMER,
    AS_PROVIDER,
    ASSET_CLASS_NOT_ALLOWED,
    BLACKLISTED,
    BLOCKED,
    COMPLETED_ON_TIME,
    CREDIT_TOO_LOW,
    DAMAGE_CONFIRMED,
    DEFAULT,
    ENTRY_NOT_ACTIVE,
    ENTRY_NOT_FOUND,
    EVENT_KINDS,
    EVENTS_KEPT_MAX,
    LATE,
    TIER_RANK,
    TOO_MANY_RENTALS,
    BlacklistEntry,
    BureauReport,
    Consent,
    CreditEvent,
    Params,
    Summary,
)
from sharechain.modules.identity.common import iter_records, read_record

# ---------------------------------------------------------------- what credit needs

class RoleView(Protocol):
    def has_role(self, state: Readable, addr: bytes, role: str) -> bool: ...
    def require_role(self, ctx: Context, addr: bytes, role: str) -> None: ...


class AssetClassOf(Protocol):
    @property
    def class_name(self) -> str: ...


class AssetsView(Protocol):
    def get(self, state: Readable, asset_id: bytes) -> AssetClassOf | None: ...


class RentalView(Protocol):
    @property
    def id(self) -> bytes: ...
    @property
    def consumer(self) -> bytes: ...
    @property
    def owner(self) -> bytes: ...
    @property
    def operator(self) -> bytes: ...


class NoticeView(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def rental(self) -> RentalView: ...
    @property
    def on_time(self) -> bool: ...


class TermsView(Protocol):
    @property
    def min_credit_tier(self) -> int: ...


class OfferView(Protocol):
    @property
    def asset_id(self) -> bytes: ...
    @property
    def terms(self) -> TermsView: ...


# Rental notices that end a rental's claim on the consumer's concurrency allowance.
_CLOSING_NOTICES = frozenset({"completed", "defaulted", "expired", "cancelled"})


@dataclass(frozen=True, slots=True)
class ScoreView:
    """A subject's standing at ``at_ms``: the score, its parts, the tier and what it allows."""

    address: bytes
    at_ms: int
    score: int                    # combined score (what the tier is taken from)
    onchain_score: int
    bureau_score: int | None      # average band score of valid bureau reports (None: none)
    bureau_reports: int
    tier: str                     # A | B | C | D | blocked
    tier_rank: int                # 0 blocked ... 4 A (compared with an offer's min_credit_tier)
    blacklisted: bool
    blacklist_entry: int          # the active entry's id (0: none)
    deposit_multiplier_bps: int   # 0 while blocked
    max_concurrent_rentals: int
    asset_classes: tuple[str, ...]
    open_rentals: int
    events: int                   # events kept (older ones are folded into a carried sum)


def _err(code: str, message: str) -> ShareChainError:
    return ShareChainError(code, message)


class CreditKeeper:
    def __init__(self, roles: RoleView, assets: AssetsView) -> None:
        self.roles = roles
        self.assets = assets
        self.param_store = ParamStore(Params, keys.PARAMS_KEY, "credit")

    # ================================================================ parameters and clock
    def params(self, state: Readable) -> Params:
        return self.param_store.get(state)

    def set_params(self, ctx: Context, params: Params) -> None:
        self.param_store.set(ctx, params)

    def clock(self, state: Readable) -> int:
        """The block time of the last write to credit state: queries without ``at_ms`` score
        "now" with it (the SDK passes the latest block time instead)."""
        raw = state.get(keys.CLOCK_KEY)
        return 0 if raw is None else int(decode_trusted(raw))

    def tick(self, ctx: Context) -> None:
        """Remember the block time; every credit write calls this (not every block: a block
        that changes no credit state must leave it untouched)."""
        raw = encode(ctx.time_ms)
        if ctx.state.get(keys.CLOCK_KEY) != raw:
            ctx.state.set(keys.CLOCK_KEY, raw)

    # ================================================================ events
    def summary(self, state: Readable, addr: bytes) -> Summary:
        s = read_record(state, Summary, keys.summary_key(addr))
        return Summary() if s is None else s

    def events(self, state: Readable, addr: bytes) -> list[CreditEvent]:
        return [e for _, e in iter_records(state, CreditEvent, keys.event_prefix(addr))]

    def record(self, ctx: Context, subject: bytes, kind: str, role: str,
               platform: bytes = b"", ref: bytes = b"") -> CreditEvent:
        """Write a credit event about ``subject`` (the weight is the one in force now)."""
        if kind not in EVENT_KINDS:
            raise _err("invalid_credit_event", f"unknown credit event kind {kind!r}")
        p = self.params(ctx.state)
        s = self.summary(ctx.state, subject)
        e = CreditEvent(seq=s.next_seq, subject=subject, kind=kind, role=role,
                        weight=p.weights[kind], platform=platform, ref=ref,
                        tx_hash=ctx.tx_hash, time_ms=ctx.time_ms)
        ctx.set_record(keys.event_key(subject, e.seq), e)
        s = dataclasses.replace(s, next_seq=s.next_seq + 1, kept=s.kept + 1)
        if s.kept > EVENTS_KEPT_MAX:
            s = self._fold_oldest(ctx, subject, s, p.half_life_ms)
        ctx.set_record(keys.summary_key(subject), s)
        self.tick(ctx)
        ctx.emit("credit_event", subject=subject, kind=kind, role=role, weight=e.weight,
                 platform=platform, ref=ref, seq=e.seq)
        return e

    @staticmethod
    def _fold_oldest(ctx: Context, subject: bytes, s: Summary, half_life_ms: int) -> Summary:
        # Events are only ever removed here, oldest first, so the kept ones are exactly
        # seq next_seq - kept .. next_seq - 1: the oldest is found without a range scan.
        k = keys.event_key(subject, s.next_seq - s.kept)
        raw = ctx.state.get(k)
        invariant(raw is not None, "the oldest kept credit event is missing")
        oldest = from_obj(CreditEvent, decode_trusted(raw))
        carry, carry_ms = score.fold(s.carry_milli, s.carry_ms, oldest.weight, oldest.time_ms,
                                     half_life_ms)
        ctx.state.delete(k)
        return dataclasses.replace(s, kept=s.kept - 1, carry_milli=carry, carry_ms=carry_ms)

    def open_rentals(self, state: Readable, addr: bytes) -> int:
        raw = state.get(keys.open_key(addr))
        return 0 if raw is None else int(decode_trusted(raw))

    def _add_open(self, ctx: Context, addr: bytes, delta: int) -> None:
        n = max(0, self.open_rentals(ctx.state, addr) + delta)
        self.tick(ctx)
        if n:
            ctx.state.set(keys.open_key(addr), encode(n))
        else:
            ctx.state.delete(keys.open_key(addr))

    # ================================================================ score
    def onchain(self, state: Readable, addr: bytes, now_ms: int) -> int:
        p = self.params(state)
        s = self.summary(state, addr)
        pairs = [(e.weight, e.time_ms) for e in self.events(state, addr)]
        return score.onchain_score(p.base_score, s.carry_milli, s.carry_ms, pairs, now_ms,
                                   p.half_life_ms)

    def score(self, state: Readable, addr: bytes, now_ms: int) -> ScoreView:
        p = self.params(state)
        onchain = self.onchain(state, addr, now_ms)
        reports = self.valid_reports(state, addr, now_ms)
        band_scores = [p.band_scores[r.band] for r in reports]
        combined = score.combine(onchain, band_scores, p.bureau_weight_bps)
        entry = self.active_entry(state, addr, now_ms)
        tier = score.tier_of(combined, entry is not None, p.tiers, p.blocked_below)
        rule = None if tier == BLOCKED else p.tier(tier)
        return ScoreView(
            address=addr, at_ms=now_ms, score=combined, onchain_score=onchain,
            bureau_score=sum(band_scores) // len(band_scores) if band_scores else None,
            bureau_reports=len(band_scores), tier=tier, tier_rank=TIER_RANK[tier],
            blacklisted=entry is not None, blacklist_entry=0 if entry is None else entry.id,
            deposit_multiplier_bps=0 if rule is None else rule.deposit_multiplier_bps,
            max_concurrent_rentals=0 if rule is None else rule.max_concurrent_rentals,
            asset_classes=() if rule is None else rule.asset_classes,
            open_rentals=self.open_rentals(state, addr), events=self.summary(state, addr).kept)

    def explain(self, state: Readable, addr: bytes, now_ms: int, limit: int) -> dict[str, Any]:
        """The score and the events that moved it most (largest decayed effect first)."""
        p = self.params(state)
        s = self.summary(state, addr)
        view = self.score(state, addr, now_ms)
        events = self.events(state, addr)
        effs = score.effective_milli([(e.weight, e.time_ms) for e in events], now_ms,
                                     p.half_life_ms)
        ranked = sorted(zip(events, effs, strict=True),
                        key=lambda pair: (-abs(pair[1]), -pair[0].seq))
        top = [dict(to_obj(e), effective_milli=eff, age_ms=max(0, now_ms - e.time_ms))
               for e, eff in ranked[:limit]]
        return {
            **to_obj(view),
            "base_score": p.base_score, "half_life_ms": p.half_life_ms,
            "carried_milli": score.decay(s.carry_milli, s.carry_ms, now_ms, p.half_life_ms),
            "events_milli": sum(effs), "bureau_weight_bps": p.bureau_weight_bps,
            "reports": [to_obj(r) for r in self.valid_reports(state, addr, now_ms)],
            "top_events": top,
        }

    # ================================================================ blacklist
    def entry(self, state: Readable, entry_id: int) -> BlacklistEntry | None:
        return read_record(state, BlacklistEntry, keys.entry_key(entry_id))  # type: ignore[no-any-return]

    def entries_of(self, state: Readable, addr: bytes) -> list[BlacklistEntry]:
        prefix = keys.subject_entry_prefix(addr)
        out = []
        for k, _ in state.iter_range(prefix, prefix_end(prefix)):
            e = self.entry(state, int.from_bytes(k[len(prefix):], "big"))
            if e is not None:
                out.append(e)
        return out

    def active_entry(self, state: Readable, addr: bytes, now_ms: int) -> BlacklistEntry | None:
        """The active entry expiring last (None: not blacklisted)."""
        active = [e for e in self.entries_of(state, addr) if e.active(now_ms)]
        return max(active, key=lambda e: (e.expires_ms, e.id)) if active else None

    def add_blacklist(self, ctx: Context, subject: bytes, reason: str,
                      evidence: tuple[bytes, ...], expires_ms: int, ruling_id: bytes,
                      added_by: bytes) -> BlacklistEntry:
        """Add an entry (a regulator's decision or an arbitration ruling; callers check who)."""
        raw = ctx.state.get(keys.BLACKLIST_SEQ_KEY)
        entry_id = (0 if raw is None else int(decode_trusted(raw))) + 1
        e = BlacklistEntry(id=entry_id, subject=subject, reason=reason, evidence=evidence,
                           ruling_id=ruling_id, added_by=added_by, added_ms=ctx.time_ms,
                           expires_ms=expires_ms)
        ctx.state.set(keys.BLACKLIST_SEQ_KEY, encode(entry_id))
        ctx.set_record(keys.entry_key(entry_id), e)
        ctx.state.set(keys.subject_entry_key(subject, entry_id), b"")
        self.tick(ctx)
        ctx.emit("blacklisted", entry_id=entry_id, subject=subject, reason=reason,
                 expires_ms=expires_ms, ruling_id=ruling_id, added_by=added_by)
        return e

    def require_active_entry(self, ctx: Context, entry_id: int) -> BlacklistEntry:
        e = self.entry(ctx.state, entry_id)
        if e is None:
            raise _err(ENTRY_NOT_FOUND, f"no blacklist entry {entry_id}")
        if not e.active(ctx.time_ms):
            raise _err(ENTRY_NOT_ACTIVE, f"blacklist entry {entry_id} is lifted or expired")
        return e

    def lift_blacklist(self, ctx: Context, entry_id: int, by: bytes,
                       reason: str) -> BlacklistEntry:
        e = self.require_active_entry(ctx, entry_id)
        e = dataclasses.replace(e, lifted_ms=ctx.time_ms, lifted_by=by, lift_reason=reason)
        ctx.set_record(keys.entry_key(entry_id), e)
        self.tick(ctx)
        ctx.emit("blacklist_lifted", entry_id=entry_id, subject=e.subject, by=by, reason=reason)
        return e

    # ================================================================ consent and reports
    def consent(self, state: Readable, subject: bytes, bureau: bytes) -> Consent | None:
        return read_record(state, Consent, keys.consent_key(subject, bureau))  # type: ignore[no-any-return]

    def consents_of(self, state: Readable, subject: bytes) -> list[Consent]:
        return [c for _, c in iter_records(state, Consent, keys.consent_prefix(subject))]

    def reports_of(self, state: Readable, subject: bytes) -> list[BureauReport]:
        return [r for _, r in iter_records(state, BureauReport, keys.report_prefix(subject))]

    def consent_active(self, state: Readable, subject: bytes, bureau: bytes,
                       now_ms: int) -> bool:
        c = self.consent(state, subject, bureau)
        return c is not None and now_ms < c.until_ms

    def valid_reports(self, state: Readable, subject: bytes, now_ms: int) -> list[BureauReport]:
        """Reports inside their validity from bureaus whose consent is still active."""
        return [r for r in self.reports_of(state, subject)
                if r.valid_from_ms <= now_ms < r.valid_until_ms
                and self.consent_active(state, subject, r.bureau, now_ms)]

    # ================================================================ rental listener
    def on_rental(self, ctx: Context, notice: NoticeView) -> None:
        """Turn rental notices into credit events and track open rentals per consumer."""
        kind = notice.kind
        r = notice.rental
        if kind == "reserved":
            self._add_open(ctx, r.consumer, 1)
            return
        if kind in _CLOSING_NOTICES:
            self._add_open(ctx, r.consumer, -1)
        if kind == "completed":
            self.record(ctx, r.owner, COMPLETED_ON_TIME, AS_PROVIDER, r.operator, r.id)
            if notice.on_time:
                self.record(ctx, r.consumer, COMPLETED_ON_TIME, AS_CONSUMER, r.operator, r.id)
        elif kind == "late":
            self.record(ctx, r.consumer, LATE, AS_CONSUMER, r.operator, r.id)
        elif kind == "defaulted":
            self.record(ctx, r.consumer, DEFAULT, AS_CONSUMER, r.operator, r.id)
        elif kind == "damage_confirmed":
            self.record(ctx, r.consumer, DAMAGE_CONFIRMED, AS_CONSUMER, r.operator, r.id)

    # ================================================================ the rental CreditGate
    def check_reserve(self, ctx: Context, consumer: bytes, offer: OfferView) -> int:
        """Refuse a reservation the consumer's standing does not allow; else return the
        deposit multiplier (bps) of the consumer's tier."""
        view = self.score(ctx.state, consumer, ctx.time_ms)
        who = bech32_address(consumer)
        if view.blacklisted:
            raise _err(BLACKLISTED, f"{who} is blacklisted (entry {view.blacklist_entry})")
        want = offer.terms.min_credit_tier
        if view.tier == BLOCKED or view.tier_rank < want:
            raise _err(CREDIT_TOO_LOW, f"{who} is in credit tier {view.tier} (score "
                                       f"{view.score}); the offer needs tier rank {want}")
        if view.open_rentals >= view.max_concurrent_rentals:
            raise _err(TOO_MANY_RENTALS, f"tier {view.tier} allows "
                                         f"{view.max_concurrent_rentals} rentals at once")
        if view.asset_classes:
            asset = self.assets.get(ctx.state, offer.asset_id)
            cls = "" if asset is None else asset.class_name
            if cls not in view.asset_classes:
                raise _err(ASSET_CLASS_NOT_ALLOWED, f"tier {view.tier} may not rent class "
                                                    f"{cls!r}")
        return view.deposit_multiplier_bps
