"""incentive key layout (prefix ``incentive/``) and the reward pool account.

  incentive/params        -> Params
  incentive/a/<addr20>    -> [epoch, paid_in_epoch, paid_total]   rewards paid to an account

The reward pool is a plain bank account owned by no key, ``module_address("reward_pool")``:
the rental module pays ``reward_pool_bps`` of every platform fee into it, genesis may fund
it, anyone may donate to it (``incentive/fund_pool``), and only this module pays out of it.
"""

from __future__ import annotations

from typing import Final

from sharechain.app.framework import module_address

PARAMS_KEY: Final = b"incentive/params"
ACCOUNT_PREFIX: Final = b"incentive/a/"
REWARD_POOL: Final = module_address("reward_pool")


def account_key(addr: bytes) -> bytes:
    return ACCOUNT_PREFIX + addr
