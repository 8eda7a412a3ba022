"""bank message handlers."""

from __future__ import annotations

from sharechain.app.framework import Context
from sharechain.modules.bank.keeper import BankKeeper
from sharechain.modules.bank.types import MultiSend, Send


def make_handlers(bank: BankKeeper) -> dict[str, object]:
    def send(ctx: Context, msg: Send) -> None:
        bank.transfer(ctx, ctx.sender, msg.to, msg.amount)
        ctx.emit("transfer", sender=ctx.sender, recipient=msg.to, amount=msg.amount)

    def multi_send(ctx: Context, msg: MultiSend) -> None:
        for out in msg.outputs:
            bank.transfer(ctx, ctx.sender, out.to, out.amount)
        ctx.emit("multi_send", sender=ctx.sender, outputs=len(msg.outputs),
                 amount=sum(o.amount for o in msg.outputs))

    return {"send": send, "multi_send": multi_send}
