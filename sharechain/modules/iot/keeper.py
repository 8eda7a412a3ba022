"""iot keeper: devices, report acceptance, listeners and anchors.

Theory of operation
-------------------
A device is bound to one asset by the asset's owner or operator, with the device's consent
(a signature by its own key). Gateways relay batches of reports the devices signed. For each
report :meth:`IotKeeper.accept_report` checks, in order: the device exists and is bound to
the asset the report names, the device's signature over :func:`report_sign_bytes`, a strictly
increasing counter (``report_replayed``) and the time tolerance against the block time
(``report_time_skew``). Any failure fails the whole message (its writes revert). An accepted
report is then checked for plausibility (see :mod:`plausibility`): a report that cannot be
true is still accepted, but flagged suspect, counted on the device and announced in an event.

Every accepted report is passed, in order, to the listeners registered with
:meth:`IotKeeper.add_listener` — the rental module starts a rental on an unlock and ends it on
a lock. Each listener runs in its own branch of the state: if it raises a ShareChainError its
writes are dropped and a ``report_listener_failed`` event records the code, but the report
(a fact the device signed) stays accepted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

from sharechain.app.framework import Context
from sharechain.app.state import Readable
from sharechain.crypto import address_of, bech32_address
from sharechain.encoding import decode_trusted as decode  # values this node stored
from sharechain.encoding import encode
from sharechain.errors import ShareChainError
from sharechain.modules.assets.types import Asset, AssetClass
from sharechain.modules.identity.common import read_record
from sharechain.modules.iot import keys
from sharechain.modules.iot.plausibility import suspect_reasons
from sharechain.modules.iot.types import (
    DEVICE_ASSET_MISMATCH,
    DEVICE_NOT_BOUND,
    DEVICE_NOT_FOUND,
    FAULT,
    INVALID_REPORT_SIGNATURE,
    LOCATION,
    LOCK,
    METER,
    REPORT_REPLAYED,
    REPORT_TIME_SKEW,
    UNLOCK,
    AnchorRecord,
    Device,
    Params,
    Report,
    SignedReport,
    SubmitReports,
    StoredReport,
    report_sign_bytes,
)

DEFAULT_PARAMS = Params(report_future_ms_max=60_000, report_age_ms_max=3_600_000,
                        counter_gap_max=1_000, location_slack_m=50)

# Kinds announced with an event per report; the others only when suspect (events per tx
# are capped, and a batch of meter readings needs no event each).
EVENT_KINDS = (UNLOCK, LOCK, FAULT)

Listener = Callable[[Context, Device, Report, str], None]


class AssetView(Protocol):
    """The narrow view iot needs from assets."""

    def get(self, state: Readable, asset_id: bytes) -> Asset | None: ...
    def asset_class(self, state: Readable, name: str) -> AssetClass | None: ...


class IotKeeper:
    def __init__(self, assets: AssetView) -> None:
        self.assets = assets
        self._listeners: list[Listener] = []

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(ctx, device, report, suspect_reason)`` for every accepted report."""
        self._listeners.append(fn)

    # -------------------------------------------------------------- reads
    def params(self, state: Readable) -> Params:
        p = read_record(state, Params, keys.PARAMS_KEY)
        return DEFAULT_PARAMS if p is None else p  # type: ignore[no-any-return]

    def device(self, state: Readable, device_id: bytes) -> Device | None:
        return read_record(state, Device, keys.device_key(device_id))  # type: ignore[no-any-return]

    def device_for_asset(self, state: Readable, asset_id: bytes) -> Device | None:
        raw = state.get(keys.device_by_asset_key(asset_id))
        return None if raw is None else self.device(state, decode(raw))

    def last_report_info(self, state: Readable, device_id: bytes, kind: str
                         ) -> StoredReport | None:
        return read_record(state, StoredReport,  # type: ignore[no-any-return]
                           keys.last_key(device_id, kind))

    def last_report(self, state: Readable, device_id: bytes, kind: str) -> Report | None:
        s = self.last_report_info(state, device_id, kind)
        return None if s is None else s.report

    def anchor(self, state: Readable, anchor_id: int) -> AnchorRecord | None:
        return read_record(state, AnchorRecord,  # type: ignore[no-any-return]
                           keys.anchor_key(anchor_id))

    # -------------------------------------------------------------- writes
    def put_device(self, ctx: Context, d: Device) -> None:
        ctx.set_record(keys.device_key(d.id), d)

    def bind(self, ctx: Context, pub_key: bytes, asset_id: bytes, bound_by: bytes) -> Device:
        dev_id = address_of(pub_key)
        old = self.device(ctx.state, dev_id)
        d = Device(dev_id, pub_key, asset_id, bound_by, ctx.time_ms,
                   0 if old is None else old.last_counter,
                   0 if old is None else old.last_time_ms,
                   0 if old is None else old.reports,
                   0 if old is None else old.suspects,
                   "" if old is None else old.last_suspect)
        self.put_device(ctx, d)
        ctx.set_obj(keys.device_by_asset_key(asset_id), dev_id)
        return d

    def unbind(self, ctx: Context, d: Device) -> None:
        ctx.delete(keys.device_by_asset_key(d.asset_id))
        self.put_device(ctx, dataclasses.replace(d, asset_id=b""))

    def report_signatures(self, state: Readable, chain_id: str, msg: object
                          ) -> list[tuple[bytes, bytes, bytes]]:
        """The device signatures in a ``submit_reports`` message, with each device's key
        from ``state``: the mempool verifies them at admission, off the block's path."""
        if not isinstance(msg, SubmitReports):
            return []
        out = []
        for signed in msg.reports:
            d = self.device(state, signed.report.device)
            if d is not None:
                out.append((d.pub_key, report_sign_bytes(chain_id, signed.report), signed.sig))
        return out

    def accept_report(self, ctx: Context, signed: SignedReport, gateway: bytes) -> str:
        """Check and record one report; returns its suspect reasons ("" if plausible)."""
        r = signed.report
        d = self.device(ctx.state, r.device)
        if d is None:
            raise ShareChainError(DEVICE_NOT_FOUND, f"no device {bech32_address(r.device)}")
        if not d.asset_id:
            raise ShareChainError(DEVICE_NOT_BOUND,
                                  f"device {bech32_address(r.device)} is not bound to an asset")
        if d.asset_id != r.asset_id:
            raise ShareChainError(DEVICE_ASSET_MISMATCH, f"device {bech32_address(r.device)} "
                                  f"is bound to another asset than {r.asset_id.hex()}")
        if not ctx.verify_signature(d.pub_key, report_sign_bytes(ctx.chain_id, r), signed.sig):
            raise ShareChainError(INVALID_REPORT_SIGNATURE,
                                  f"report {r.counter} of device {bech32_address(r.device)} "
                                  "is not signed by the device")
        if r.counter <= d.last_counter:
            raise ShareChainError(REPORT_REPLAYED, f"device counter {r.counter} is not above "
                                  f"the last accepted {d.last_counter}")
        p = self.params(ctx.state)
        if not ctx.time_ms - p.report_age_ms_max <= r.time_ms <= \
                ctx.time_ms + p.report_future_ms_max:
            raise ShareChainError(REPORT_TIME_SKEW, f"report time {r.time_ms} is too far from "
                                  f"the block time {ctx.time_ms}")
        asset = self.assets.get(ctx.state, r.asset_id)
        cls = None if asset is None else self.assets.asset_class(ctx.state, asset.class_name)
        reasons: list[str] = []
        if cls is not None:
            reasons = suspect_reasons(r, d, self.last_report(ctx.state, d.id, LOCATION),
                                      self.last_report(ctx.state, d.id, METER), cls, p)
        suspect = ",".join(reasons)
        d = dataclasses.replace(
            d, last_counter=r.counter, last_time_ms=max(d.last_time_ms, r.time_ms),
            reports=d.reports + 1, suspects=d.suspects + (1 if suspect else 0),
            last_suspect=suspect or d.last_suspect)
        self.put_device(ctx, d)
        ctx.set_record(keys.last_key(d.id, r.kind), StoredReport(r, suspect, ctx.height, gateway))
        if suspect:
            ctx.emit("report_suspect", device=d.id, asset_id=r.asset_id, counter=r.counter,
                     kind=r.kind, reason=suspect)
        elif r.kind in EVENT_KINDS:
            ctx.emit("device_report", device=d.id, asset_id=r.asset_id, counter=r.counter,
                     kind=r.kind)
        self._notify(ctx, d, r, suspect)
        return suspect

    def _notify(self, ctx: Context, d: Device, r: Report, suspect: str) -> None:
        for fn in self._listeners:
            child = ctx.branch()
            try:
                fn(child, d, r, suspect)
            except ShareChainError as exc:
                ctx.emit("report_listener_failed", device=d.id, counter=r.counter,
                         kind=r.kind, code=exc.code, message=exc.message)
                continue
            ctx.merge(child)

    def add_anchor(self, ctx: Context, rec: AnchorRecord) -> None:
        ctx.set_record(keys.anchor_key(rec.id), rec)
        ctx.set_obj(keys.gateway_anchor_key(rec.gateway, rec.id), 1)
        ctx.state.set(keys.ANCHOR_SEQ_KEY, encode(rec.id))

    def next_anchor_id(self, state: Readable) -> int:
        raw = state.get(keys.ANCHOR_SEQ_KEY)
        return (0 if raw is None else decode(raw)) + 1
