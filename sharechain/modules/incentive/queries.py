"""incentive queries (``GET /v1/query/incentive/<name>?...``).

  params              reward rules
  pool                the reward pool's address and balance
  account  address    rewards paid to an account: this epoch and in total, and the room left
"""

from __future__ import annotations

from typing import Any

from sharechain.app.framework import Query
from sharechain.app.state import Readable
from sharechain.encoding import to_obj
from sharechain.modules.identity.common import q_address, q_int
from sharechain.modules.incentive import keys
from sharechain.modules.incentive.keeper import IncentiveKeeper


def make_queries(k: IncentiveKeeper) -> dict[str, Query]:
    def params(state: Readable, q: dict[str, str]) -> Any:
        return to_obj(k.params(state))

    def pool(state: Readable, q: dict[str, str]) -> Any:
        return {"address": keys.REWARD_POOL, "balance": k.pool_balance(state)}

    def account(state: Readable, q: dict[str, str]) -> Any:
        addr = q_address(q, "address")
        p = k.params(state)
        a = k.account(state, addr)
        epoch = q_int(q, "time_ms", a.epoch * p.epoch_ms) // p.epoch_ms
        in_epoch = a.paid_in_epoch if a.epoch == epoch else 0
        return {"address": addr, "epoch": epoch, "paid_in_epoch": in_epoch,
                "room_in_epoch": max(0, p.account_epoch_cap - in_epoch),
                "paid_total": a.paid_total}

    return {"params": params, "pool": pool, "account": account}
