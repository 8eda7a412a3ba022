"""bank keeper: balances, transfers and escrow (lock / release / slash).

Other modules receive a :class:`BankKeeper` (or a narrower Protocol view of it) and move
tokens only through it. Escrow ids are namespaced by the calling module, e.g.
``b"rental/deposit/" + rental_id``; the bank never interprets them.
All arithmetic is on Python ints (exact); amounts must be positive.
"""

from __future__ import annotations

from typing import Protocol

from sharechain.app.framework import Context
from sharechain.app.state import Readable
from sharechain.encoding import decode_trusted as decode, encode
from sharechain.errors import ShareChainError
from sharechain.modules.bank import keys
from sharechain.modules.bank.types import ESCROW_INSUFFICIENT, INSUFFICIENT_FUNDS, INVALID_AMOUNT


def _int(raw: bytes | None) -> int:
    return 0 if raw is None else decode(raw)


def _check_amount(amount: int) -> None:
    if type(amount) is not int or amount <= 0:
        raise ShareChainError(INVALID_AMOUNT, f"amount must be a positive integer, got {amount!r}")


class Escrow(Protocol):
    """The narrow view a module that holds deposits or pledges needs."""

    def lock(self, ctx: Context, owner: bytes, amount: int, escrow_id: bytes) -> None: ...
    def release(self, ctx: Context, escrow_id: bytes, to: bytes, amount: int) -> None: ...
    def escrowed(self, ctx: Context, escrow_id: bytes) -> int: ...


class BankKeeper:
    def balance(self, state: Readable, addr: bytes) -> int:
        return _int(state.get(keys.BALANCE_PREFIX + addr))

    def _set_balance(self, ctx: Context, addr: bytes, amount: int) -> None:
        k = keys.BALANCE_PREFIX + addr
        if amount:
            ctx.state.set(k, encode(amount))
        else:
            ctx.state.delete(k)

    def transfer(self, ctx: Context, frm: bytes, to: bytes, amount: int) -> None:
        self.withdraw(ctx, frm, amount)
        self._set_balance(ctx, to, self.balance(ctx.state, to) + amount)

    # The two halves of a transfer. Fees use them apart: the ante step withdraws each tx's
    # fee from its sender, and the block deposits the sum with the fee collector once (see
    # ``App.pay_fees``). Supply is unchanged once both halves have run.
    def withdraw(self, ctx: Context, frm: bytes, amount: int) -> None:
        _check_amount(amount)
        have = self.balance(ctx.state, frm)
        if have < amount:
            raise ShareChainError(INSUFFICIENT_FUNDS, f"balance {have} is less than {amount}")
        self._set_balance(ctx, frm, have - amount)

    def deposit(self, ctx: Context, to: bytes, amount: int) -> None:
        _check_amount(amount)
        self._set_balance(ctx, to, self.balance(ctx.state, to) + amount)

    # -------------------------------------------------------------- escrow
    def escrowed(self, ctx: Context, escrow_id: bytes) -> int:
        return _int(ctx.state.get(keys.ESCROW_PREFIX + escrow_id))

    def lock(self, ctx: Context, owner: bytes, amount: int, escrow_id: bytes) -> None:
        """Move ``amount`` from ``owner``'s balance into escrow ``escrow_id``."""
        _check_amount(amount)
        have = self.balance(ctx.state, owner)
        if have < amount:
            raise ShareChainError(INSUFFICIENT_FUNDS,
                                  f"balance {have} is less than the {amount} to lock")
        self._set_balance(ctx, owner, have - amount)
        k = keys.ESCROW_PREFIX + escrow_id
        ctx.state.set(k, encode(_int(ctx.state.get(k)) + amount))

    def release(self, ctx: Context, escrow_id: bytes, to: bytes, amount: int) -> None:
        """Pay ``amount`` out of escrow ``escrow_id`` to ``to`` (refund, settlement, slash)."""
        if amount == 0:
            return
        _check_amount(amount)
        k = keys.ESCROW_PREFIX + escrow_id
        held = _int(ctx.state.get(k))
        if held < amount:
            raise ShareChainError(ESCROW_INSUFFICIENT, f"escrow holds {held}, not {amount}")
        if held == amount:
            ctx.state.delete(k)
        else:
            ctx.state.set(k, encode(held - amount))
        self._set_balance(ctx, to, self.balance(ctx.state, to) + amount)

    def release_all(self, ctx: Context, escrow_id: bytes, to: bytes) -> int:
        held = self.escrowed(ctx, escrow_id)
        self.release(ctx, escrow_id, to, held)
        return held

    def slash(self, ctx: Context, escrow_id: bytes, amount: int, to: bytes) -> None:
        """Take a penalty out of escrow for the harmed party or a pool."""
        self.release(ctx, escrow_id, to, amount)

    # -------------------------------------------------------------- genesis only
    def mint_genesis(self, ctx: Context, addr: bytes, amount: int) -> None:
        _check_amount(amount)
        self._set_balance(ctx, addr, self.balance(ctx.state, addr) + amount)
        ctx.state.set(keys.SUPPLY_KEY, encode(_int(ctx.state.get(keys.SUPPLY_KEY)) + amount))

    def supply(self, state: Readable) -> int:
        return _int(state.get(keys.SUPPLY_KEY))
