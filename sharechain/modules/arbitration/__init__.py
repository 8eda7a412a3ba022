"""arbitration: disputes over damage claims, asset reports and blacklist entries, decided by
panels of staked arbitrators drawn from a block hash, with commit-reveal votes, equal bonds,
one appeal, and rulings executed automatically and published with their votes.

See README.md in this folder for the spec. Other modules do not call arbitration; it calls
rental (``resolve_claim``, ``set_claim_timeout``), assets (``pay_pledge_compensation``) and
credit (``record``, ``add_blacklist``, ``lift_blacklist``) through ``deps.py``.
"""

from __future__ import annotations

from sharechain.app.framework import Module, MsgSpec
from sharechain.modules.arbitration.genesis import make_init
from sharechain.modules.arbitration.handlers import make_handlers
from sharechain.modules.arbitration.hooks import make_end_block
from sharechain.modules.arbitration.invariants import INVARIANTS
from sharechain.modules.arbitration.keeper import MODULE_ADDRESS, ArbitrationKeeper
from sharechain.modules.arbitration.queries import make_queries
from sharechain.modules.arbitration.types import (
    AddEvidence,
    Appeal,
    CommitVote,
    OpenDispute,
    Respond,
    RevealVote,
    Stake,
    Unstake,
    vote_commitment,
)

# message type -> (record class, handler name, cost units)
MESSAGES: dict[str, tuple[type, str, int]] = {
    "arbitration/stake": (Stake, "stake", 15),
    "arbitration/unstake": (Unstake, "unstake", 15),
    "arbitration/open": (OpenDispute, "open", 40),
    "arbitration/respond": (Respond, "respond", 30),
    "arbitration/add_evidence": (AddEvidence, "add_evidence", 10),
    "arbitration/commit": (CommitVote, "commit", 15),
    "arbitration/reveal": (RevealVote, "reveal", 20),
    "arbitration/appeal": (Appeal, "appeal", 40),
}


def module(k: ArbitrationKeeper) -> Module:
    h = make_handlers(k)
    return Module(
        name="arbitration",
        msgs=[MsgSpec(t, cls, h[name], cost) for t, (cls, name, cost) in MESSAGES.items()],
        queries=make_queries(k),
        init_genesis=make_init(k),
        end_block=make_end_block(k),
        invariants=dict(INVARIANTS),
    )


__all__ = ["MESSAGES", "MODULE_ADDRESS", "ArbitrationKeeper", "module", "vote_commitment"]
