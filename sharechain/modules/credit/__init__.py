"""credit: behaviour events from every platform, a deterministic score with time decay, tiers
that gate rentals and deposits, a public blacklist with evidence, and bureau reports given
with the subject's consent.

See README.md in this folder for the spec. Other modules use :class:`CreditKeeper`
(``record`` for credit events, ``add_blacklist``/``lift_blacklist`` for rulings, ``score``,
``on_rental`` as a rental listener and ``check_reserve`` as rental's CreditGate).
"""

from __future__ import annotations

from sharechain.app.framework import Module, MsgSpec
from sharechain.modules.credit.genesis import make_init
from sharechain.modules.credit.handlers import make_handlers
from sharechain.modules.credit.invariants import INVARIANTS
from sharechain.modules.credit.keeper import CreditKeeper, ScoreView
from sharechain.modules.credit.queries import make_queries
from sharechain.modules.credit.types import (
    AddBlacklist,
    GrantConsent,
    LiftBlacklist,
    RecordFraud,
    RevokeConsent,
    SubmitReport,
)

# message type -> (record class, handler name, cost units)
MESSAGES: dict[str, tuple[type, str, int]] = {
    "credit/grant_consent": (GrantConsent, "grant_consent", 10),
    "credit/revoke_consent": (RevokeConsent, "revoke_consent", 10),
    "credit/submit_report": (SubmitReport, "submit_report", 20),
    "credit/blacklist": (AddBlacklist, "blacklist", 20),
    "credit/lift_blacklist": (LiftBlacklist, "lift_blacklist", 10),
    "credit/record_fraud": (RecordFraud, "record_fraud", 20),
}


def module(k: CreditKeeper) -> Module:
    h = make_handlers(k)
    return Module(
        name="credit",
        msgs=[MsgSpec(t, cls, h[name], cost) for t, (cls, name, cost) in MESSAGES.items()],
        queries=make_queries(k),
        init_genesis=make_init(k),
        invariants=dict(INVARIANTS),
    )


__all__ = ["MESSAGES", "CreditKeeper", "ScoreView", "module"]
