"""bank: the native token — balances, transfers, fee collection and escrow.

See README.md in this folder for the spec.
"""

from __future__ import annotations

from typing import Any

from sharechain.app.framework import Context, Module, MsgSpec, module_address
from sharechain.app.state import Readable, prefix_end
from sharechain.crypto import bech32_address, parse_address
from sharechain.encoding import decode_trusted as decode
from sharechain.errors import ShareChainError
from sharechain.modules.bank import keys
from sharechain.modules.bank.handlers import make_handlers
from sharechain.modules.bank.keeper import BankKeeper
from sharechain.modules.bank.types import MultiSend, Send

FEE_COLLECTOR = module_address("fee_collector")


def _genesis(bank: BankKeeper):
    def init(ctx: Context, data: dict[str, Any]) -> None:
        for entry in data.get("balances", []):
            addr = parse_address(entry["address"])
            amount = entry["amount"]
            if type(amount) is not int or amount <= 0:
                raise ShareChainError("invalid_genesis", f"bad balance for {entry['address']}")
            bank.mint_genesis(ctx, addr, amount)
    return init


def _supply_invariant(state: Readable) -> str | None:
    total = 0
    for prefix in (keys.BALANCE_PREFIX, keys.ESCROW_PREFIX):
        for _, v in state.iter_range(prefix, prefix_end(prefix)):
            value = decode(v)
            if value < 0:
                return "negative balance or escrow"
            total += value
    supply_raw = state.get(keys.SUPPLY_KEY)
    supply = 0 if supply_raw is None else decode(supply_raw)
    if total != supply:
        return f"Σ balances + escrows = {total} but supply = {supply}"
    return None


def module(bank: BankKeeper) -> Module:
    h = make_handlers(bank)

    def q_balance(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        addr = parse_address(q.get("address", ""))
        return {"address": bech32_address(addr), "balance": bank.balance(state, addr)}

    def q_supply(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        return {"supply": bank.supply(state)}

    return Module(
        name="bank",
        msgs=[MsgSpec("bank/send", Send, h["send"], cost=10),  # type: ignore[arg-type]
              MsgSpec("bank/multi_send", MultiSend, h["multi_send"], cost=20)],  # type: ignore[arg-type]
        queries={"balance": q_balance, "supply": q_supply},
        init_genesis=_genesis(bank),
        invariants={"supply": _supply_invariant},
    )
