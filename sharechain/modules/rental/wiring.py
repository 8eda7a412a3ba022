"""How rental and incentive are wired to the modules below them (used by ``app/builder.py``
and by the test world), written once.

rental receives the bank (escrow), assets (rentability, use rights, income shares) and
identity (platform fee rates); iot tells rental and incentive about device reports; incentive
subscribes to rental notices and routes rental penalties.
"""

from __future__ import annotations

from typing import Any, Protocol

from sharechain.app.framework import Module
from sharechain.modules import incentive, rental
from sharechain.modules.incentive.keeper import BankPort, IncentiveKeeper, RoleView
from sharechain.modules.rental.deps import AssetsPort, BankEscrow, PlatformView
from sharechain.modules.rental.keeper import RentalKeeper


class DeviceEvents(Protocol):
    def add_listener(self, fn: Any) -> None: ...


class Identity(PlatformView, RoleView, Protocol):
    pass


class Bank(BankPort, BankEscrow, Protocol):
    pass


def build(bank: Bank, identity: Identity, assets: AssetsPort, iot: DeviceEvents | None
          ) -> tuple[RentalKeeper, IncentiveKeeper, list[Module]]:
    rk = RentalKeeper(bank, assets, identity)
    ik = IncentiveKeeper(bank, identity)
    rk.add_listener(ik.on_rental)
    rk.set_penalty_sink(ik)
    if iot is not None:
        iot.add_listener(rk.on_device_report)
        iot.add_listener(ik.on_device_report)
    return rk, ik, [rental.module(rk), incentive.module(ik)]
