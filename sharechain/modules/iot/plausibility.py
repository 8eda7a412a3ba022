"""Plausibility of device reports: what cannot be true is flagged, never rejected.

A report that passes the hard checks (signature, binding, counter, time tolerance) is always
accepted; these checks only attach *suspect reasons* to it. The function is pure: it sees the
device record, the device's previous location and meter reports, the asset class's limits and
the module parameters, and returns the reasons in a fixed order.
"""

from __future__ import annotations

from sharechain.modules.assets.types import AssetClass
from sharechain.modules.iot.geo import geohash_distance_mm
from sharechain.modules.iot.types import (
    LOCATION,
    METER,
    SUSPECT_COUNTER_GAP,
    SUSPECT_METER_BACKWARDS,
    SUSPECT_METER_JUMP,
    SUSPECT_SPEED,
    SUSPECT_TIME_BACKWARDS,
    Device,
    Params,
    Report,
)

SUSPECT_METER_STEP_SMALL = "meter_step_small"


def suspect_reasons(report: Report, device: Device, last_location: Report | None,
                    last_meter: Report | None, cls: AssetClass, params: Params) -> list[str]:
    reasons: list[str] = []
    if device.last_counter:
        if report.counter - device.last_counter > params.counter_gap_max:
            reasons.append(SUSPECT_COUNTER_GAP)
        if report.time_ms < device.last_time_ms:
            reasons.append(SUSPECT_TIME_BACKWARDS)
    if report.kind == LOCATION and last_location is not None:
        reasons += _speed(report, last_location, cls, params)
    if report.kind == METER and last_meter is not None:
        reasons += _meter(report, last_meter, cls)
    return reasons


def _speed(report: Report, last: Report, cls: AssetClass, params: Params) -> list[str]:
    assert report.payload.geohash is not None and last.payload.geohash is not None
    dist_mm, cells_mm = geohash_distance_mm(last.payload.geohash, report.payload.geohash)
    dt_ms = max(report.time_ms - last.time_ms, 0)
    # m/s × ms = mm: the farthest the asset can credibly have moved, plus position error.
    allowed_mm = cls.max_speed_mps * dt_ms + cells_mm + params.location_slack_m * 1000
    return [SUSPECT_SPEED] if dist_mm > allowed_mm else []


def _meter(report: Report, last: Report, cls: AssetClass) -> list[str]:
    assert report.payload.reading is not None and last.payload.reading is not None
    step = report.payload.reading - last.payload.reading
    if step < cls.meter_step_min:
        return [SUSPECT_METER_BACKWARDS if step < 0 else SUSPECT_METER_STEP_SMALL]
    if step > cls.meter_step_max:
        return [SUSPECT_METER_JUMP]
    return []
