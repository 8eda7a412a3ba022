"""identity: participants (people and organisations), their roles and the platforms.

See README.md in this folder for the spec. Other modules use :class:`IdentityKeeper`
(``participant``, ``is_registered``, ``has_role``, ``require_role``, ``platform``).
"""

from __future__ import annotations

from sharechain.app.framework import Module, MsgSpec
from sharechain.modules.identity.genesis import make_init
from sharechain.modules.identity.handlers import make_handlers
from sharechain.modules.identity.invariants import INVARIANTS
from sharechain.modules.identity.keeper import IdentityKeeper
from sharechain.modules.identity.queries import make_queries
from sharechain.modules.identity.types import (
    GrantRole,
    Register,
    RevokeRole,
    SetPlatformFee,
    UpdateProfile,
)

# message type -> (record class, handler name, cost units)
MESSAGES = {
    "identity/register": (Register, "register", 20),
    "identity/update_profile": (UpdateProfile, "update_profile", 10),
    "identity/grant_role": (GrantRole, "grant_role", 10),
    "identity/revoke_role": (RevokeRole, "revoke_role", 10),
    "identity/set_platform_fee": (SetPlatformFee, "set_platform_fee", 10),
}


def module(idk: IdentityKeeper) -> Module:
    h = make_handlers(idk)
    return Module(
        name="identity",
        msgs=[MsgSpec(t, cls, h[name], cost) for t, (cls, name, cost) in MESSAGES.items()],
        queries=make_queries(idk),
        init_genesis=make_init(idk),
        invariants=dict(INVARIANTS),
    )


__all__ = ["IdentityKeeper", "module"]
