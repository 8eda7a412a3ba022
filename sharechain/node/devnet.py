"""The devnet's demo world: named demo accounts funded at genesis.

Demo keys are derived from their names (``PrivateKey.from_name``) so that tests, the demo
scripts and people at a terminal all agree on them. They are public knowledge and must
never hold anything of value.
"""

from __future__ import annotations

import time
from typing import Any

from sharechain.crypto import PrivateKey

DEMO_CHAIN_ID = "sharechain-devnet"
DEMO_ACCOUNTS: dict[str, int] = {
    "alice": 1_000_000_000, "bob": 1_000_000_000, "carol": 1_000_000_000,
    "dave": 1_000_000_000, "erin": 1_000_000_000, "faucet": 1_000_000_000_000,
    # the sharing-economy demo world (identity/assets/iot genesis gives them their roles)
    "regulator": 1_000_000_000, "bureau": 1_000_000_000, "arbitrator": 1_000_000_000,
    "bikeco": 1_000_000_000, "carshare": 1_000_000_000, "gateway": 1_000_000_000,
    # arbiters (people holding the arbitrator role, staked at genesis; see arbitration/genesis)
    **{f"arbiter{i}": 1_000_000_000 for i in range(1, 8)},
}


def validator_key(i: int, chain_id: str = DEMO_CHAIN_ID) -> PrivateKey:
    return PrivateKey.from_name(f"{chain_id}/validator{i}")


def demo_genesis(chain_id: str = DEMO_CHAIN_ID, validators: list[PrivateKey] | None = None,
                 block_interval_ms: int = 1000, extra_accounts: dict[str, int] | None = None,
                 genesis_time_ms: int | None = None, fee_per_cost_unit: int = 1,
                 block_txs_max: int = 10_000) -> dict[str, Any]:
    validators = validators or [validator_key(0, chain_id)]
    accounts = dict(DEMO_ACCOUNTS)
    accounts.update(extra_accounts or {})
    balances = [{"address": PrivateKey.from_name(n).bech32, "amount": a, "name": n}
                for n, a in accounts.items()]
    from sharechain.app.builder import demo_app_state

    doc: dict[str, Any] = {
        "chain_id": chain_id,
        "genesis_time_ms": genesis_time_ms if genesis_time_ms is not None else int(time.time() * 1000),
        "validators": [{"name": f"validator{i}", "pub_key": k.public_key.hex(), "power": 10}
                       for i, k in enumerate(validators)],
        "consensus": {"block_interval_ms": block_interval_ms, "block_txs_max": block_txs_max},
        "app_state": {
            "auth": {"params": {"fee_per_cost_unit": fee_per_cost_unit}},
            "bank": {"balances": [{"address": b["address"], "amount": b["amount"]} for b in balances]},
        },
    }
    doc["app_state"].update(demo_app_state(accounts))
    return doc
