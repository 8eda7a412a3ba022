"""bank key layout (prefix ``bank/``).

  bank/b/<addr20>        -> int   spendable balance (absent = 0)
  bank/e/<escrow id>     -> int   tokens held in escrow under an id chosen by the caller
                                  module (ids start with that module's name)
  bank/supply            -> int   total supply: Σ balances + Σ escrows
"""

BALANCE_PREFIX = b"bank/b/"
ESCROW_PREFIX = b"bank/e/"
SUPPLY_KEY = b"bank/supply"


def balance_key(addr: bytes) -> bytes:
    return BALANCE_PREFIX + addr


def escrow_key(escrow_id: bytes) -> bytes:
    return ESCROW_PREFIX + escrow_id
