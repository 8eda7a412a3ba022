"""credit key layout (prefix ``credit/``).

  credit/params                          -> Params          scoring and tier policy
  credit/clock                           -> int             block time of the last credit
                                                            write (queries' default "now")
  credit/s/<addr20>                      -> Summary         per subject: seq, kept, carry
  credit/e/<addr20><seq8>                -> CreditEvent     the kept events of a subject
  credit/o/<addr20>                      -> int             the subject's open rentals as
                                                            consumer (absent = 0)
  credit/blseq                           -> int             last blacklist entry id issued
  credit/ble/<id8>                       -> BlacklistEntry  every entry, lifted or expired too
  credit/bls/<addr20><id8>               -> b""             entries by subject
  credit/c/<subject20><bureau20>         -> Consent         a subject's consent to a bureau
  credit/r/<subject20><bureau20>         -> BureauReport    a bureau's latest report on a subject

Integers in keys are big-endian, so key order is sequence order.
"""

from __future__ import annotations

from typing import Final

PARAMS_KEY: Final = b"credit/params"
CLOCK_KEY: Final = b"credit/clock"
SUMMARY_PREFIX: Final = b"credit/s/"
EVENT_PREFIX: Final = b"credit/e/"
OPEN_PREFIX: Final = b"credit/o/"
BLACKLIST_SEQ_KEY: Final = b"credit/blseq"
ENTRY_PREFIX: Final = b"credit/ble/"
SUBJECT_ENTRY_PREFIX: Final = b"credit/bls/"
CONSENT_PREFIX: Final = b"credit/c/"
REPORT_PREFIX: Final = b"credit/r/"


def be8(n: int) -> bytes:
    return n.to_bytes(8, "big")


def summary_key(addr: bytes) -> bytes:
    return SUMMARY_PREFIX + addr


def event_prefix(addr: bytes) -> bytes:
    return EVENT_PREFIX + addr


def event_key(addr: bytes, seq: int) -> bytes:
    return EVENT_PREFIX + addr + be8(seq)


def open_key(addr: bytes) -> bytes:
    return OPEN_PREFIX + addr


def entry_key(entry_id: int) -> bytes:
    return ENTRY_PREFIX + be8(entry_id)


def subject_entry_prefix(addr: bytes) -> bytes:
    return SUBJECT_ENTRY_PREFIX + addr


def subject_entry_key(addr: bytes, entry_id: int) -> bytes:
    return SUBJECT_ENTRY_PREFIX + addr + be8(entry_id)


def consent_prefix(subject: bytes) -> bytes:
    return CONSENT_PREFIX + subject


def consent_key(subject: bytes, bureau: bytes) -> bytes:
    return CONSENT_PREFIX + subject + bureau


def report_prefix(subject: bytes) -> bytes:
    return REPORT_PREFIX + subject


def report_key(subject: bytes, bureau: bytes) -> bytes:
    return REPORT_PREFIX + subject + bureau
