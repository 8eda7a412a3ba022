"""arbitration message handlers: one per message, each a thin call into the keeper."""

from __future__ import annotations

from typing import Any

from sharechain.app.framework import Context
from sharechain.modules.arbitration.keeper import ArbitrationKeeper
from sharechain.modules.arbitration.types import (
    AddEvidence,
    Appeal,
    CommitVote,
    OpenDispute,
    Respond,
    RevealVote,
    Stake,
    Unstake,
)


def make_handlers(k: ArbitrationKeeper) -> dict[str, Any]:
    def stake(ctx: Context, msg: Stake) -> None:
        k.stake(ctx, msg)

    def unstake(ctx: Context, msg: Unstake) -> None:
        k.unstake(ctx, msg)

    def open_(ctx: Context, msg: OpenDispute) -> None:
        k.open(ctx, msg)

    def respond(ctx: Context, msg: Respond) -> None:
        k.respond(ctx, msg)

    def add_evidence(ctx: Context, msg: AddEvidence) -> None:
        k.add_evidence(ctx, msg)

    def commit(ctx: Context, msg: CommitVote) -> None:
        k.commit(ctx, msg)

    def reveal(ctx: Context, msg: RevealVote) -> None:
        k.reveal(ctx, msg)

    def appeal(ctx: Context, msg: Appeal) -> None:
        k.appeal(ctx, msg)

    return {"stake": stake, "unstake": unstake, "open": open_, "respond": respond,
            "add_evidence": add_evidence, "commit": commit, "reveal": reveal,
            "appeal": appeal}
