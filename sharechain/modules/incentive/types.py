"""incentive parameters, messages and error codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

BPS_DENOM: Final = 10_000
AMOUNT_MAX: Final = 10**18
EPOCH_MS_MAX: Final = 366 * 86_400_000

# Reasons in reward events.
REASON_PROVIDER: Final = "rental_completed"
REASON_CONSUMER: Final = "on_time_return"
REASON_GATEWAY: Final = "fault_report"


@dataclass(frozen=True, slots=True)
class Params:
    """Reward rules (set in genesis, later by governance)."""

    epoch_ms: int = 86_400_000             # caps reset every epoch of block time
    account_epoch_cap: int = 500           # most rewards one account earns per epoch
    provider_reward: int = 50              # owner of an asset, per completed rental
    consumer_reward: int = 20              # consumer, per on-time return
    gateway_fault_reward: int = 10         # gateway, per accepted (non-suspect) fault report
    reward_min_fee: int = 100              # usage fee a rental must pay to earn rewards
    reward_fee_share_bps: int = 4_000      # each rental reward ≤ this share of its platform fee
    penalty_pool_bps: int = 0              # share of each penalty sent to the pool

    def __post_init__(self) -> None:
        if not 1 <= self.epoch_ms <= EPOCH_MS_MAX:
            raise ValueError(f"epoch_ms must be 1 to {EPOCH_MS_MAX}")
        for name in ("account_epoch_cap", "provider_reward", "consumer_reward",
                     "gateway_fault_reward", "reward_min_fee"):
            if not 0 <= getattr(self, name) <= AMOUNT_MAX:
                raise ValueError(f"{name} must be 0 to {AMOUNT_MAX}")
        for name in ("reward_fee_share_bps", "penalty_pool_bps"):
            if not 0 <= getattr(self, name) <= BPS_DENOM:
                raise ValueError(f"{name} must be 0 to {BPS_DENOM}")


@dataclass(frozen=True, slots=True)
class AccountRewards:
    epoch: int
    paid_in_epoch: int
    paid_total: int


@dataclass(frozen=True, slots=True)
class FundPool:
    """Donate tokens to the reward pool."""

    amount: int

    def __post_init__(self) -> None:
        if not 0 < self.amount <= AMOUNT_MAX:
            raise ValueError(f"amount must be 1 to {AMOUNT_MAX}")
