"""arbitration genesis: the parameters and the arbitrators' opening stakes.

::

    "arbitration": {
      "params": {"panel_size": 3, "appeal_panel_size": 5, "draw_delay_blocks": 2,
                 "respond_window_ms": 259200000, "commit_window_ms": 172800000, ...},
      "stakes": [{"address": "share1…", "amount": 200000}, ...]
    }

Every params field is optional (see ``types.Params``). A stake is locked from the address's
genesis balance into its stake escrow; the address must hold the arbitrator role in the
identity genesis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sharechain.app.framework import Context
from sharechain.crypto import PrivateKey, cid_of, parse_address
from sharechain.encoding import from_obj
from sharechain.errors import ShareChainError
from sharechain.modules.arbitration import keys
from sharechain.modules.arbitration.keeper import ArbitrationKeeper
from sharechain.modules.arbitration.types import AMOUNT_MAX, Arbitrator
from sharechain.modules.identity.types import ARBITRATOR


@dataclass(frozen=True, slots=True)
class GenesisStake:
    address: str
    amount: int

    def __post_init__(self) -> None:
        if not 0 < self.amount <= AMOUNT_MAX:
            raise ValueError(f"amount must be 1 to {AMOUNT_MAX}")


def _bad(msg: str) -> ShareChainError:
    return ShareChainError("invalid_genesis", f"arbitration: {msg}")


def make_init(k: ArbitrationKeeper) -> Callable[[Context, dict[str, Any]], None]:
    def init(ctx: Context, data: dict[str, Any]) -> None:
        unknown = set(data) - {"params", "stakes"}
        if unknown:
            raise _bad(f"unknown field(s) {sorted(unknown)}")
        params = k.param_store.from_genesis(data.get("params", {}))
        try:
            stakes = [from_obj(GenesisStake, s, f"arbitration.stakes[{i}]")
                      for i, s in enumerate(data.get("stakes", []))]
        except ShareChainError as exc:
            raise _bad(exc.message) from None
        k.set_params(ctx, params)
        for gs in stakes:
            addr = parse_address(gs.address)
            if not k.roles.has_role(ctx.state, addr, ARBITRATOR):
                raise _bad(f"{gs.address} stakes but holds no arbitrator role")
            if k.arbitrator(ctx.state, addr) is not None:
                raise _bad(f"{gs.address} is listed twice")
            k.bank.lock(ctx, addr, gs.amount, keys.stake_escrow(addr))
            ctx.set_record(keys.arbitrator_key(addr), Arbitrator(addr, gs.amount))
    return init


# ---------------------------------------------------------------- demo world

# Short windows so that a devnet story runs in seconds (blocks every 0.2-1 s).
DEMO_PARAMS: dict[str, int] = {
    "draw_delay_blocks": 2, "respond_window_ms": 30_000, "commit_window_ms": 8_000,
    "reveal_window_ms": 8_000, "appeal_window_ms": 4_000, "seat_fee": 1_000,
    "claim_dispute_window_ms": 15_000, "report_dispute_window_ms": 120_000,
    "blacklist_dispute_window_ms": 120_000, "min_stake": 100_000,
}
DEMO_STAKE = 200_000
# The demo world's arbitrators: the arbitration panel organisation and seven people, enough
# for a first panel of 3 and an appeal panel of 5 that shares no one with it.
DEMO_ARBITERS = tuple(f"arbiter{i}" for i in range(1, 8))
DEMO_ARBITRATORS = ("arbitrator", *DEMO_ARBITERS)


def demo_participants(accounts: dict[str, int]) -> list[dict[str, Any]]:
    """Identity genesis entries for the demo arbiters (people holding the arbitrator role)."""
    return [{"address": PrivateKey.from_name(n).bech32, "kind": "person",
             "name": f"Arbiter {n[len('arbiter'):]}",
             "profile_cid": cid_of(f"sharechain demo profile: {n}".encode()),
             "roles": ["arbitrator"]}
            for n in DEMO_ARBITERS if n in accounts]


def demo_section(accounts: dict[str, int]) -> dict[str, Any]:
    stakes = [{"address": PrivateKey.from_name(n).bech32, "amount": DEMO_STAKE}
              for n in DEMO_ARBITRATORS if n in accounts]
    return {"params": dict(DEMO_PARAMS), "stakes": stakes}
