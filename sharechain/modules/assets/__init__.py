"""assets: on-chain confirmation of shared assets, their separated rights and the pledge.

See README.md in this folder for the spec. The rental module uses :class:`AssetsKeeper`
(``get``, ``asset_class``, ``require_rentable``, ``grant_use_right``, ``release_use_right``,
``record_consumer_confirmation``, ``pay_pledge_compensation``).
"""

from __future__ import annotations

from sharechain.app.framework import Module, MsgSpec
from sharechain.modules.assets.genesis import make_init
from sharechain.modules.assets.handlers import make_handlers
from sharechain.modules.assets.invariants import INVARIANTS
from sharechain.modules.assets.keeper import AssetsKeeper, PledgeEscrow
from sharechain.modules.assets.queries import make_queries
from sharechain.modules.assets.types import (
    Attest,
    ConfirmAsset,
    DefineAsset,
    Freeze,
    GrantUseRight,
    PledgeAsset,
    ReportAsset,
    ResolveReport,
    RevokeUseRight,
    SetOperator,
    TransferIncomeShare,
    TransferOwnership,
    TransferUseRight,
    Unfreeze,
)
from sharechain.modules.identity.keeper import IdentityKeeper

# message type -> (record class, handler name, cost units)
MESSAGES = {
    "assets/define": (DefineAsset, "define", 40),
    "assets/attest": (Attest, "attest", 20),
    "assets/transfer_ownership": (TransferOwnership, "transfer_ownership", 15),
    "assets/set_operator": (SetOperator, "set_operator", 15),
    "assets/grant_use_right": (GrantUseRight, "grant_use_right", 15),
    "assets/transfer_use_right": (TransferUseRight, "transfer_use_right", 15),
    "assets/revoke_use_right": (RevokeUseRight, "revoke_use_right", 10),
    "assets/transfer_income_share": (TransferIncomeShare, "transfer_income_share", 15),
    "assets/freeze": (Freeze, "freeze", 10),
    "assets/unfreeze": (Unfreeze, "unfreeze", 10),
    "assets/pledge": (PledgeAsset, "pledge", 20),
    "assets/confirm": (ConfirmAsset, "confirm", 15),
    "assets/report": (ReportAsset, "report", 20),
    "assets/resolve_report": (ResolveReport, "resolve_report", 20),
}


def module(ak: AssetsKeeper, idk: IdentityKeeper) -> Module:
    h = make_handlers(ak, idk)
    return Module(
        name="assets",
        msgs=[MsgSpec(t, cls, h[name], cost) for t, (cls, name, cost) in MESSAGES.items()],
        queries=make_queries(ak),
        init_genesis=make_init(ak, idk),
        invariants=dict(INVARIANTS),
    )


__all__ = ["AssetsKeeper", "PledgeEscrow", "module"]
