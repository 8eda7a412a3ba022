"""market key layout (prefix ``market/``).

  market/params                                   -> Params
  market/lseq                                     -> int     last listing number
  market/rseq                                     -> int     last request number
  market/l/<lid8>                                 -> Listing (active listings only)
  market/la/<asset>                               -> lid8    the active listing of an asset
  market/lp/<platform20><lid8>                    -> b""     listings by platform
  market/ia/<class>\\0<gh5><rate8><lid8>           -> b""     area index: class, 5-char cell,
                                                             hourly rate
  market/ip/<class>\\0<rate8><lid8>                -> b""     price index: class, hourly rate
  market/q/<rid8>                                 -> Request (every request, any state)
  market/qo/<class>\\0<rid8>                       -> b""     open requests by class
  market/qc/<consumer20><rid8>                    -> b""     open requests by consumer
  market/bk/<rental_id8>                          -> Booking reservations made here
  market/d/<due_ms8><kind1><id8>                  -> b""     expiry index (1 listing at the
                                                             end of its availability, 2
                                                             request at its window start)

``<asset>`` is the asset id prefixed by its length (one byte). Integers in keys are
big-endian, so key order is numeric order: a range walk over ``ia``/``ip`` meets listings
cheapest first within a cell (or a class), and the sweep reads ``d`` up to the block time.
Class names never contain a zero byte, so ``<class>\\0`` never prefixes another class.
"""

from __future__ import annotations

from typing import Final

PARAMS_KEY: Final = b"market/params"
LISTING_SEQ_KEY: Final = b"market/lseq"
REQUEST_SEQ_KEY: Final = b"market/rseq"
LISTING_PREFIX: Final = b"market/l/"
LISTING_OF_ASSET_PREFIX: Final = b"market/la/"
LISTING_BY_PLATFORM_PREFIX: Final = b"market/lp/"
AREA_INDEX_PREFIX: Final = b"market/ia/"
PRICE_INDEX_PREFIX: Final = b"market/ip/"
REQUEST_PREFIX: Final = b"market/q/"
OPEN_REQUEST_PREFIX: Final = b"market/qo/"
CONSUMER_REQUEST_PREFIX: Final = b"market/qc/"
BOOKING_PREFIX: Final = b"market/bk/"
DUE_PREFIX: Final = b"market/d/"

DUE_LISTING: Final = 1
DUE_REQUEST: Final = 2


def be8(n: int) -> bytes:
    return n.to_bytes(8, "big")


def id_of(seq: int) -> bytes:
    return be8(seq)


def listing_key(lid: bytes) -> bytes:
    return LISTING_PREFIX + lid


def listing_of_asset_key(asset_id: bytes) -> bytes:
    return LISTING_OF_ASSET_PREFIX + bytes((len(asset_id),)) + asset_id


def listing_by_platform_key(platform: bytes, lid: bytes) -> bytes:
    return LISTING_BY_PLATFORM_PREFIX + platform + lid


def class_part(class_name: str) -> bytes:
    return class_name.encode() + b"\x00"


def area_prefix(class_name: str, area: str = "") -> bytes:
    """Area-index keys of a class whose cell starts with ``area`` (at most 5 characters)."""
    return AREA_INDEX_PREFIX + class_part(class_name) + area.encode()


def area_key(class_name: str, geohash: str, rate: int, lid: bytes) -> bytes:
    return area_prefix(class_name, geohash[:5]) + be8(rate) + lid


def price_prefix(class_name: str) -> bytes:
    return PRICE_INDEX_PREFIX + class_part(class_name)


def price_key(class_name: str, rate: int, lid: bytes) -> bytes:
    return price_prefix(class_name) + be8(rate) + lid


def request_key(rid: bytes) -> bytes:
    return REQUEST_PREFIX + rid


def open_request_prefix(class_name: str) -> bytes:
    return OPEN_REQUEST_PREFIX + class_part(class_name)


def open_request_key(class_name: str, rid: bytes) -> bytes:
    return open_request_prefix(class_name) + rid


def consumer_request_key(consumer: bytes, rid: bytes) -> bytes:
    return CONSUMER_REQUEST_PREFIX + consumer + rid


def booking_key(rental_id: bytes) -> bytes:
    return BOOKING_PREFIX + rental_id


def due_key(due_ms: int, kind: int, item_id: bytes) -> bytes:
    return DUE_PREFIX + be8(due_ms) + bytes((kind,)) + item_id


def parse_due(key: bytes) -> tuple[int, int, bytes]:
    body = key[len(DUE_PREFIX):]
    return int.from_bytes(body[:8], "big"), body[8], body[9:]
