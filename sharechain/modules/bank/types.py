"""bank messages and error codes."""

from __future__ import annotations

from dataclasses import dataclass

from sharechain.crypto import ADDRESS_BYTES

SEND_OUTPUTS_MAX = 256

# Error codes raised by this module.
INSUFFICIENT_FUNDS = "insufficient_funds"
INVALID_AMOUNT = "invalid_amount"
INVALID_ADDRESS = "invalid_address"
ESCROW_INSUFFICIENT = "escrow_insufficient"


@dataclass(frozen=True, slots=True)
class Send:
    to: bytes
    amount: int

    def __post_init__(self) -> None:
        if len(self.to) != ADDRESS_BYTES:
            raise ValueError("to must be a 20-byte address")
        if self.amount <= 0:
            raise ValueError("amount must be positive")

    def accounts(self) -> tuple[bytes, ...]:
        return (self.to,)


@dataclass(frozen=True, slots=True)
class Output:
    to: bytes
    amount: int

    def __post_init__(self) -> None:
        if len(self.to) != ADDRESS_BYTES:
            raise ValueError("to must be a 20-byte address")
        if self.amount <= 0:
            raise ValueError("amount must be positive")


@dataclass(frozen=True, slots=True)
class MultiSend:
    outputs: tuple[Output, ...]

    def __post_init__(self) -> None:
        if not 0 < len(self.outputs) <= SEND_OUTPUTS_MAX:
            raise ValueError(f"multi-send takes 1 to {SEND_OUTPUTS_MAX} outputs")

    def accounts(self) -> tuple[bytes, ...]:
        return tuple(o.to for o in self.outputs)
