"""arbitration key layout (prefix ``arbitration/``).

  arbitration/params                        -> Params
  arbitration/seq                           -> int         last dispute number issued
  arbitration/d/<id8>                       -> Dispute     every dispute, open or closed
  arbitration/t/<kind>/<target>             -> id8         the dispute of a claim / report /
                                                           blacklist entry (one per target)
  arbitration/v/<id8><round1><arb20>        -> Vote        a panelist's commitment and vote
  arbitration/a/<arb20>                     -> Arbitrator  stake and record of an arbitrator
  arbitration/dh/<height8><id8>             -> b""         panels to draw at a height
  arbitration/dt/<ms8><id8>                 -> b""         time deadlines (respond, tally,
                                                           appeal), swept at end of block
  arbitration/p/<party20><id8>              -> b""         disputes by party (queries)

``<target>`` is the claim id (9 bytes), the asset id prefixed by its length (one byte) then the
report seq (8 bytes), or the blacklist entry id (8 bytes). Integers in keys are big-endian.
Escrow: the bank holds stakes under ``arbitration/stake/<arb20>`` and each side's bond of a
round under ``arbitration/bond/<id8><round1><side1>`` (side 0: the round's opener, 1: the
respondent).
"""

from __future__ import annotations

from typing import Final

PARAMS_KEY: Final = b"arbitration/params"
SEQ_KEY: Final = b"arbitration/seq"
DISPUTE_PREFIX: Final = b"arbitration/d/"
TARGET_PREFIX: Final = b"arbitration/t/"
VOTE_PREFIX: Final = b"arbitration/v/"
ARBITRATOR_PREFIX: Final = b"arbitration/a/"
DRAW_PREFIX: Final = b"arbitration/dh/"
DUE_PREFIX: Final = b"arbitration/dt/"
PARTY_PREFIX: Final = b"arbitration/p/"
STAKE_ESCROW_PREFIX: Final = b"arbitration/stake/"
BOND_ESCROW_PREFIX: Final = b"arbitration/bond/"


def be8(n: int) -> bytes:
    return n.to_bytes(8, "big")


def dispute_key(dispute_id: bytes) -> bytes:
    return DISPUTE_PREFIX + dispute_id


def target_key(kind: str, target: bytes, seq: int) -> bytes:
    if kind == "report":
        body = bytes((len(target),)) + target + be8(seq)
    elif kind == "blacklist":
        body = be8(seq)
    else:
        body = target
    return TARGET_PREFIX + kind.encode() + b"/" + body


def vote_prefix(dispute_id: bytes, round_index: int) -> bytes:
    return VOTE_PREFIX + dispute_id + bytes((round_index,))


def vote_key(dispute_id: bytes, round_index: int, arbitrator: bytes) -> bytes:
    return vote_prefix(dispute_id, round_index) + arbitrator


def arbitrator_key(addr: bytes) -> bytes:
    return ARBITRATOR_PREFIX + addr


def draw_key(height: int, dispute_id: bytes) -> bytes:
    return DRAW_PREFIX + be8(height) + dispute_id


def due_key(due_ms: int, dispute_id: bytes) -> bytes:
    return DUE_PREFIX + be8(due_ms) + dispute_id


def party_key(party: bytes, dispute_id: bytes) -> bytes:
    return PARTY_PREFIX + party + dispute_id


def stake_escrow(addr: bytes) -> bytes:
    return STAKE_ESCROW_PREFIX + addr


def bond_escrow(dispute_id: bytes, round_index: int, side: int) -> bytes:
    return BOND_ESCROW_PREFIX + dispute_id + bytes((round_index, side))
