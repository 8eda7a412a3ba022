"""Canonical encoding: round trips, uniqueness, and strict schema decoding."""

from __future__ import annotations

from dataclasses import dataclass

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharechain.encoding import decode, encode, from_obj, to_obj
from sharechain.errors import DecodeError

plain = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**128 - 1)
    | st.binary(max_size=64) | st.text(max_size=32),
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)


@given(plain)
@settings(max_examples=300)
def test_round_trip_and_canonical(obj):
    data = encode(obj)
    assert decode(data) == obj
    assert encode(decode(data)) == data


edge_ints = st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1, 2**64,
                             2**128 - 1, -1, -24, -25, -256, -257, -(2**63)])


@given(st.recursive(edge_ints | plain, lambda c: st.lists(c, max_size=4)
                    | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=12))
@settings(max_examples=500)
def test_encoding_agrees_with_cbor2_canonical_mode(obj):
    # cborx writes the ledger's bytes; cbor2 is the reference implementation they must match.
    assert encode(obj) == cbor2.dumps(obj, canonical=True)


@given(plain, st.data())
@settings(max_examples=300)
def test_any_change_to_canonical_bytes_decodes_to_another_value_or_fails(obj, data):
    raw = encode(obj)
    i = data.draw(st.integers(0, len(raw) - 1))
    b = data.draw(st.integers(0, 255).filter(lambda v: v != raw[i]))
    mutated = raw[:i] + bytes([b]) + raw[i + 1:]
    try:
        got = decode(mutated)
    except DecodeError:
        return
    # Whatever still decodes is canonical: the same value never has two encodings.
    assert encode(got) == mutated


@given(st.dictionaries(st.text(max_size=10), st.integers(0, 100), min_size=2, max_size=8))
def test_map_key_order_does_not_change_encoding(d):
    reversed_d = dict(reversed(list(d.items())))
    assert encode(d) == encode(reversed_d)


def _reference_accepts(raw: bytes) -> bool:
    """The definition decode() implements: plain data whose canonical encoding is ``raw``."""
    try:
        obj = cbor2.loads(raw)
    except Exception:
        return False

    def plain_data(x) -> bool:
        if type(x) is int:
            return -(2**63) <= x <= 2**128 - 1
        if type(x) is list:
            return all(map(plain_data, x))
        if type(x) is dict:
            return all(type(k) is str and plain_data(v) for k, v in x.items())
        return type(x) in (bytes, str, bool) or x is None

    return plain_data(obj) and encode(obj) == raw


@given(plain, st.data())
@settings(max_examples=400)
def test_decode_accepts_exactly_the_canonical_encodings(obj, data):
    # Replace, insert or delete a byte; decode() must agree with "decodes, and re-encodes
    # to the same bytes" (cbor2 as the independent parser).
    raw = encode(obj)
    i = data.draw(st.integers(0, len(raw)))
    op = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    b = bytes([data.draw(st.integers(0, 255))])
    if op == "insert":
        raw = raw[:i] + b + raw[i:]
    elif i < len(raw):
        raw = raw[:i] + (b if op == "replace" else b"") + raw[i + 1:]
    try:
        decode(raw)
        ok = True
    except DecodeError:
        ok = False
    assert ok == _reference_accepts(raw), raw.hex()


@pytest.mark.parametrize("raw", [
    b"\x18\x05", b"\x19\x00\x05", b"\x38\x00",            # needless integer headers
    b"\x58\x01a", b"\x78\x01a", b"\x98\x01\x01", b"\xb8\x01\x61a\x01",  # needless lengths
    b"\x5f\x41a\xff", b"\x9f\x01\xff", b"\xbf\x61a\x01\xff",    # indefinite lengths
    b"\xc2\x41\x01", b"\xc3\x41\x00",                      # small ints as big integers
    b"\xc2\x49\x00\x01" + bytes(7),                        # big integer with a leading zero
    b"\xf8\x14", b"\xf9\x3c\x00",                            # long-form true; 1.0 as a float
    b"\xa2\x61b\x01\x61a\x02", b"\xa2\x61a\x01\x61a\x02",      # unsorted / repeated keys
    b"\xa2\x62aa\x01\x61b\x02",                              # longer key first
])
def test_each_non_canonical_form_is_refused(raw):
    with pytest.raises(DecodeError):
        decode(raw)
    assert not _reference_accepts(raw)


def test_big_integers_in_shortest_form_decode():
    for n in (2**64, 2**100, 2**128 - 1):
        assert decode(encode(n)) == n
    assert cbor2.dumps(2**64, canonical=True) == encode(2**64)


def test_non_canonical_rejected():
    # 5 encoded with a needless one-byte length: 0x18 0x05 instead of 0x05
    with pytest.raises(DecodeError) as e:
        decode(b"\x18\x05")
    assert e.value.code == "non_canonical"
    # keys out of order
    raw = b"\xa2" + cbor2.dumps("b")[0:] + b"\x01" + cbor2.dumps("a") + b"\x02"
    with pytest.raises(DecodeError):
        decode(raw)
    # the same key twice, indefinite-length string, trailing bytes
    for raw in (b"\xa2\x61a\x01\x61a\x02", b"\x5f\x41a\xff", b"\x01\x02"):
        with pytest.raises(DecodeError):
            decode(raw)


@pytest.mark.parametrize("bad", [cbor2.dumps(1.5), cbor2.dumps({1: 2}), b"\xff", b"",
                                 cbor2.dumps(cbor2.CBORTag(42, b"x")), b"\x9f\x01\xff"])
def test_forbidden_values_rejected(bad):
    with pytest.raises(DecodeError):
        decode(bad)


def test_oversize_rejected():
    with pytest.raises(DecodeError) as e:
        decode(encode(b"x" * 100), max_bytes=50)
    assert e.value.code == "oversize"


def test_deep_nesting_rejected():
    obj: list = []
    for _ in range(40):
        obj = [obj]
    with pytest.raises(DecodeError):
        decode(cbor2.dumps(obj))


@dataclass(frozen=True)
class Inner:
    x: int
    tag: bytes


@dataclass(frozen=True)
class Outer:
    name: str
    items: tuple[Inner, ...]
    note: str | None = None
    flag: bool = False


def test_record_round_trip():
    r = Outer("a", (Inner(1, b"z"), Inner(2, b"")), None, True)
    assert from_obj(Outer, decode(encode(r))) == r
    assert to_obj(r)["items"][1] == {"x": 2, "tag": b""}


@pytest.mark.parametrize("obj,msg", [
    ({"name": "a", "items": [], "extra": 1}, "unknown field"),
    ({"items": []}, "missing field"),
    ({"name": 5, "items": []}, "expected text"),
    ({"name": "a", "items": [{"x": True, "tag": b""}]}, "expected an integer"),
    ({"name": "a", "items": {"x": 1}}, "expected a list"),
    ({"name": "a", "items": [], "flag": 1}, "expected a boolean"),
])
def test_record_schema_errors(obj, msg):
    with pytest.raises(DecodeError) as e:
        from_obj(Outer, obj)
    assert msg in e.value.message
