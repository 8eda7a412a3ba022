"""iot invariants, checked after every block in tests and simulation."""

from __future__ import annotations

from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import decode
from sharechain.modules.identity.common import iter_records
from sharechain.modules.iot import keys
from sharechain.modules.iot.types import Device, StoredReport


def bindings_consistent(state: Readable) -> str | None:
    """The asset → device index and the devices' asset ids agree, one device per asset."""
    bound = 0
    for _, d in iter_records(state, Device, keys.DEVICE_PREFIX):
        if d.asset_id:
            bound += 1
            raw = state.get(keys.device_by_asset_key(d.asset_id))
            if raw is None or decode(raw) != d.id:
                return f"device {d.id.hex()} is bound but the asset index disagrees"
    p = keys.DEVICE_BY_ASSET_PREFIX
    if sum(1 for _ in state.iter_range(p, prefix_end(p))) != bound:
        return "the asset → device index holds entries for unbound devices"
    return None


def counters_monotonic(state: Readable) -> str | None:
    """No stored report has a counter above its device's last counter; counts add up."""
    devices = {d.id: d for _, d in iter_records(state, Device, keys.DEVICE_PREFIX)}
    for d in devices.values():
        if not 0 <= d.suspects <= d.reports or d.last_counter < 0 or \
                (d.reports and d.last_counter < 1):
            return f"device {d.id.hex()} has inconsistent counters"
    for _, s in iter_records(state, StoredReport, keys.LAST_PREFIX):
        d = devices.get(s.report.device)
        if d is None or s.report.counter > d.last_counter:
            return f"a stored report of device {s.report.device.hex()} is ahead of its counter"
    return None


def anchors_contiguous(state: Readable) -> str | None:
    raw = state.get(keys.ANCHOR_SEQ_KEY)
    last = 0 if raw is None else decode(raw)
    n = sum(1 for _ in state.iter_range(keys.ANCHOR_PREFIX, prefix_end(keys.ANCHOR_PREFIX)))
    return None if n == last else f"{n} anchors stored but the sequence is at {last}"


INVARIANTS = {"bindings_consistent": bindings_consistent,
              "counters_monotonic": counters_monotonic,
              "anchors_contiguous": anchors_contiguous}
