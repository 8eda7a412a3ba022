"""The stored form of a :class:`Rental`: a CBOR array of its fields in declaration order,
with the terms as a nested array.

Rentals are read and written on every step of the hot path (reserve, unlock, lock), and an
array decodes into the record by position, several times faster than the framework's
field-name maps checked field by field. The layout is the field order of ``Rental`` and
``Terms`` in ``types.py``: changing that order (or inserting a field anywhere but at the
end) changes the state format and needs a migration.
"""

from __future__ import annotations

import dataclasses

from sharechain.encoding import decode_trusted, encode
from sharechain.modules.rental.types import Rental, Terms

RENTAL_FIELDS = tuple(f.name for f in dataclasses.fields(Rental))
TERMS_FIELDS = tuple(f.name for f in dataclasses.fields(Terms))
_TERMS_AT = RENTAL_FIELDS.index("terms")


def encode_rental(r: Rental) -> bytes:
    values = [getattr(r, name) for name in RENTAL_FIELDS]
    values[_TERMS_AT] = [getattr(r.terms, name) for name in TERMS_FIELDS]
    return encode(values)


def decode_rental(raw: bytes) -> Rental:
    values = decode_trusted(raw)
    values[_TERMS_AT] = Terms(*values[_TERMS_AT])
    return Rental(*values)
