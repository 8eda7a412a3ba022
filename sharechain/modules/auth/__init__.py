"""auth: account nonces and chain parameters every transaction is checked against.

Key layout (prefix ``auth/``):
  auth/n/<addr20>   -> int          next nonce of the account (absent = 0)
  auth/params       -> AuthParams   {"fee_per_cost_unit": int}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sharechain.app.framework import Context, Module
from sharechain.app.params import ParamStore
from sharechain.app.state import Readable
from sharechain.encoding import decode_trusted as decode
from sharechain.encoding import encode, to_obj
from sharechain.errors import ShareChainError

NONCE_PREFIX = b"auth/n/"
PARAMS_KEY = b"auth/params"


@dataclass(frozen=True)
class AuthParams:
    fee_per_cost_unit: int = 1

    def __post_init__(self) -> None:
        if self.fee_per_cost_unit < 0:
            raise ValueError("fee_per_cost_unit must not be negative")


PARAMS = ParamStore(AuthParams, PARAMS_KEY, "auth")


def nonce_key(addr: bytes) -> bytes:
    return NONCE_PREFIX + addr


def _state(ctx_or_state: Context | Readable) -> Readable:
    return ctx_or_state.state if isinstance(ctx_or_state, Context) else ctx_or_state


def get_nonce(ctx: Context | Readable, addr: bytes) -> int:
    raw = _state(ctx).get(NONCE_PREFIX + addr)
    return 0 if raw is None else decode(raw)


def set_nonce(ctx: Context, addr: bytes, nonce: int) -> None:
    ctx.state.set(NONCE_PREFIX + addr, encode(nonce))


def fee_per_cost_unit(ctx: Context | Readable) -> int:
    """The fee per cost unit in force (read on every tx: decoded once per stored value)."""
    return PARAMS.get(_state(ctx)).fee_per_cost_unit


def _genesis(ctx: Context, data: dict[str, Any]) -> None:
    unknown = set(data) - {"params"}
    if unknown:
        raise ShareChainError("invalid_genesis", f"auth: unknown field(s) {sorted(unknown)}")
    PARAMS.set(ctx, PARAMS.from_genesis(data.get("params", {})))


def module() -> Module:
    return Module(name="auth", init_genesis=_genesis,
                  queries={"params": lambda state, q: to_obj(PARAMS.get(state))})
