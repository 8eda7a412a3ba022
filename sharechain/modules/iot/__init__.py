"""iot: device identities bound to assets, signed telemetry, plausibility and anchors.

See README.md in this folder for the spec. The rental module uses :class:`IotKeeper`
(``add_listener``, ``device``, ``device_for_asset``, ``last_report``).
"""

from __future__ import annotations

from sharechain.app.framework import Module, MsgSpec
from sharechain.modules.assets.keeper import AssetsKeeper
from sharechain.modules.identity.keeper import RoleView
from sharechain.modules.iot.genesis import make_init
from sharechain.modules.iot.handlers import make_handlers
from sharechain.modules.iot.invariants import INVARIANTS
from sharechain.modules.iot.keeper import IotKeeper, Listener
from sharechain.modules.iot.queries import make_queries
from sharechain.modules.iot.types import AnchorReadings, BindDevice, SubmitReports, UnbindDevice

# message type -> (record class, handler name, cost units)
MESSAGES = {
    "iot/bind_device": (BindDevice, "bind_device", 30),
    "iot/unbind_device": (UnbindDevice, "unbind_device", 15),
    # up to 32 reports, each with an Ed25519 verification: 2 cost units per report slot
    "iot/submit_reports": (SubmitReports, "submit_reports", 64),
    "iot/anchor": (AnchorReadings, "anchor", 20),
}


def module(ik: IotKeeper, ak: AssetsKeeper, roles: RoleView) -> Module:
    h = make_handlers(ik, ak, roles)
    return Module(
        name="iot",
        msgs=[MsgSpec(t, cls, h[name], cost) for t, (cls, name, cost) in MESSAGES.items()],
        queries=make_queries(ik),
        init_genesis=make_init(ik, ak),
        invariants=dict(INVARIANTS),
        signatures=ik.report_signatures,
    )


__all__ = ["IotKeeper", "Listener", "module"]
