"""auth: account nonces and chain parameters every transaction is checked against.

Key layout (prefix ``auth/``):
  auth/n/<addr20>   -> int   next nonce of the account (absent = 0)
  auth/params       -> map   {"fee_per_cost_unit": int}
"""

from __future__ import annotations

from typing import Any

from sharechain.app.framework import Context, Module
from sharechain.app.state import Readable
from sharechain.encoding import decode_trusted as decode, encode
from sharechain.errors import ShareChainError

NONCE_PREFIX = b"auth/n/"
PARAMS_KEY = b"auth/params"
DEFAULT_PARAMS = {"fee_per_cost_unit": 1}


def nonce_key(addr: bytes) -> bytes:
    return NONCE_PREFIX + addr


def get_nonce(ctx: Context | Readable, addr: bytes) -> int:
    state = ctx.state if isinstance(ctx, Context) else ctx
    raw = state.get(NONCE_PREFIX + addr)
    return 0 if raw is None else decode(raw)


def set_nonce(ctx: Context, addr: bytes, nonce: int) -> None:
    ctx.state.set(NONCE_PREFIX + addr, encode(nonce))


def params(state: Readable) -> dict[str, Any]:
    raw = state.get(PARAMS_KEY)
    return dict(DEFAULT_PARAMS) if raw is None else decode(raw)


def fee_per_cost_unit(ctx: Context) -> int:
    return int(params(ctx.state)["fee_per_cost_unit"])


def _genesis(ctx: Context, data: dict[str, Any]) -> None:
    p = dict(DEFAULT_PARAMS)
    for k, v in data.get("params", {}).items():
        if k not in DEFAULT_PARAMS or type(v) is not int or v < 0:
            raise ShareChainError("invalid_genesis", f"bad auth param {k!r}")
        p[k] = v
    ctx.set_obj(PARAMS_KEY, p)


def module() -> Module:
    return Module(name="auth", init_genesis=_genesis,
                  queries={"params": lambda state, q: params(state)})
