"""rental key layout (prefix ``rental/``).

  rental/params                          -> Params
  rental/seq                             -> int      last rental number issued
  rental/o/<asset>                       -> Offer    current terms of an asset
  rental/r/<rental_id8>                  -> Rental
  rental/c/<claim_id9>                   -> Claim    claim id = rental id + claim index
  rental/b/<asset>/<end_ms8><rental_id8> -> int      booking calendar: start_ms of a booked
                                                     rental, ordered by reserved end
  rental/bs/<asset>                      -> [n, e]   bookings on the calendar and an upper
                                                     bound of their ends (fast path)
  rental/u/<asset>                       -> bytes    the rental currently using the asset
  rental/d/<due_ms8><kind1><id>          -> b"" | int  deadline index swept at end of block;
                                                     the value counts failed attempts of an
                                                     item being retried (b"": none yet)
  rental/cr/<consumer20><rental_id8>     -> b""      rentals by consumer (queries)

``<asset>`` is the asset id prefixed by its length (one byte), so that one asset's keys never
share a prefix with another's. Integers in keys are big-endian, so key order is time order.
Escrow: the bank holds each rental's deposit and prepaid fee under ``rental/<rental_id8>``.
"""

from __future__ import annotations

from typing import Final

PARAMS_KEY: Final = b"rental/params"
SEQ_KEY: Final = b"rental/seq"
OFFER_PREFIX: Final = b"rental/o/"
RENTAL_PREFIX: Final = b"rental/r/"
CLAIM_PREFIX: Final = b"rental/c/"
BOOKING_PREFIX: Final = b"rental/b/"
BOOKING_SUMMARY_PREFIX: Final = b"rental/bs/"
IN_USE_PREFIX: Final = b"rental/u/"
DEADLINE_PREFIX: Final = b"rental/d/"
CONSUMER_PREFIX: Final = b"rental/cr/"
ESCROW_PREFIX: Final = b"rental/"

# Deadline kinds (one byte after the due time).
DUE_EXPIRE: Final = 1         # reservation not started within the start window
DUE_DEFAULT: Final = 2        # active past max duration + grace
DUE_RETURN: Final = 3         # return not confirmed by the provider in time
DUE_CLOSE: Final = 4          # claim window over
DUE_CLAIM: Final = 5          # claim unresolved at its timeout


def be8(n: int) -> bytes:
    return n.to_bytes(8, "big")


def asset_part(asset_id: bytes) -> bytes:
    return bytes((len(asset_id),)) + asset_id


def rental_id_of(seq: int) -> bytes:
    return be8(seq)


def offer_key(asset_id: bytes) -> bytes:
    return OFFER_PREFIX + asset_part(asset_id)


def rental_key(rental_id: bytes) -> bytes:
    return RENTAL_PREFIX + rental_id


def claim_key(claim_id: bytes) -> bytes:
    return CLAIM_PREFIX + claim_id


def claim_id_of(rental_id: bytes, index: int) -> bytes:
    return rental_id + bytes((index,))


def booking_prefix(asset_id: bytes) -> bytes:
    return BOOKING_PREFIX + asset_part(asset_id)


def booking_key(asset_id: bytes, end_ms: int, rental_id: bytes) -> bytes:
    return booking_prefix(asset_id) + be8(end_ms) + rental_id


def booking_summary_key(asset_id: bytes) -> bytes:
    return BOOKING_SUMMARY_PREFIX + asset_part(asset_id)


def in_use_key(asset_id: bytes) -> bytes:
    return IN_USE_PREFIX + asset_part(asset_id)


def deadline_key(due_ms: int, kind: int, item_id: bytes) -> bytes:
    return DEADLINE_PREFIX + be8(due_ms) + bytes((kind,)) + item_id


def parse_deadline(key: bytes) -> tuple[int, int, bytes]:
    """(due_ms, kind, id) of a deadline key."""
    body = key[len(DEADLINE_PREFIX):]
    return int.from_bytes(body[:8], "big"), body[8], body[9:]


def consumer_key(consumer: bytes, rental_id: bytes) -> bytes:
    return CONSUMER_PREFIX + consumer + rental_id


def escrow_id(rental_id: bytes) -> bytes:
    return ESCROW_PREFIX + rental_id
