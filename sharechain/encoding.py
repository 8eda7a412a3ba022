"""Canonical CBOR and strict schema decoding.

Theory of operation
-------------------
Everything that is hashed or signed is encoded as deterministic CBOR (RFC 8949 §4.2):
shortest integer forms, definite lengths, map keys sorted. All ShareChain maps have text
keys; for keys of one major type, length-first ordering and RFC 8949's bytewise ordering of
encoded keys coincide, so ``cborx.dumps(x, canonical=True)`` is the deterministic encoding.
(cborx, a CBOR library with a compiled accelerator, encodes several times faster than cbor2
on the small maps a ledger is made of; a property test checks that both libraries give
the same canonical bytes.)

Decoding is strict: the input must be under a size cap, must decode to plain data (ints,
byte strings, text, lists, text-keyed maps, booleans, null — no floats, no tags) and must
be the deterministic encoding of what it decodes to. That last rule makes the encoding of
any value unique, so a transaction hash cannot be changed by re-encoding the same
transaction. cborx's canonical mode enforces it while parsing (shortest integer and length
forms, definite lengths, strictly increasing map keys, so no duplicates); the one form it
does not police, big integers (tags 2 and 3), goes through :func:`_bignum`, which accepts
only the shortest form. A property test checks that any mutation of canonical bytes either
fails to decode or decodes to a value whose encoding is exactly those bytes.

Records are frozen dataclasses. :func:`to_obj` turns one into plain data; :func:`from_obj`
builds one from plain data, rejecting unknown fields, missing fields and wrong types,
using a checker compiled once per class.
"""

from __future__ import annotations

import dataclasses
import io
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import cborx

from sharechain.errors import DecodeError

ENCODED_BYTES_MAX = 4 * 1024 * 1024
NESTING_DEPTH_MAX = 16
INT_MAX = 2**128 - 1  # token amounts and counters fit well inside this
INT_MIN = -(2**63)

T = TypeVar("T")


def encode(obj: Any) -> bytes:
    """Deterministic CBOR bytes of plain data (or a record, converted first)."""
    t = type(obj)
    if t not in _PLAIN_TYPES and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = to_obj(obj)
    return _canonical_bytes(obj)


# Input nested deeper than this is refused by the parser itself (the schema limit,
# NESTING_DEPTH_MAX, is checked afterwards with a clearer message).
_PARSE_DEPTH_MAX = 64
_U64_END = 2**64


def _bignum(_decoder: Any, tag: Any) -> Any:
    """Tags 2/3 (big integers) in their shortest form only; any other tag stays a tag
    object, which the plain-data check refuses."""
    v = tag.value
    if tag.tag in (2, 3) and type(v) is bytes:
        n = int.from_bytes(v, "big")
        if n < _U64_END or v[0] == 0:
            raise cborx.CBORDecodeError("big integer is not in its shortest form (non-canonical)")
        return n if tag.tag == 2 else -1 - n
    return tag


_ENCODER = cborx.CBOREncoder(io.BytesIO(), canonical=True)
# Canonical mode checks the deterministic form while parsing, and is also the faster
# mode: it compares encoded keys instead of calling a NaN check per map key.
_DECODER = cborx.CBORDecoder(max_depth=_PARSE_DEPTH_MAX, canonical=True, tag_hook=_bignum)
_LENIENT = cborx.CBORDecoder(max_depth=_PARSE_DEPTH_MAX)
# cborx's public dumps/loads build an encoder or decoder object per call, which costs more
# than encoding a small map; its compiled backend takes a shared, stateless one instead.
_FAST = getattr(getattr(cborx, "_backend", None), "fast", None)


def _canonical_bytes(obj: Any) -> bytes:
    if _FAST is not None:
        return _FAST.encode(_ENCODER, obj)  # type: ignore[no-any-return]
    return cborx.dumps(obj, canonical=True)


def _parse(data: bytes) -> tuple[Any, int]:
    """(value, end offset) of the first item in ``data``."""
    if _FAST is not None:
        return _FAST.decode_item(_DECODER, data, 0)  # type: ignore[no-any-return]
    return _DECODER.decode_item(data, 0)


def _loads(data: bytes) -> Any:
    """Decode bytes this node wrote itself, which are canonical by construction; the
    lenient decoder is only a fallback, so a stored value always reads back."""
    try:
        return _parse(data)[0]
    except Exception:
        if _FAST is not None:
            return _FAST.decode_item(_LENIENT, data, 0)[0]
        return _LENIENT.decode_item(data, 0)[0]



_PLAIN_TYPES = frozenset({int, str, bytes, bool, type(None), dict, list, tuple})


def decode(data: bytes, max_bytes: int = ENCODED_BYTES_MAX, check_plain: bool = True) -> Any:
    """Decode canonical CBOR into plain data, or raise :class:`DecodeError`.

    ``check_plain=False`` skips the walk that rejects floats and tags; use it only when
    the result goes straight through :func:`from_obj` of a schema with no ``Any`` field
    left unchecked, since the schema rejects those types itself.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("expected bytes")
    if len(data) > max_bytes:
        raise DecodeError(f"encoded size {len(data)} exceeds {max_bytes} bytes", "oversize")
    obj = parse_canonical(bytes(data))
    if check_plain:
        require_plain(obj, 0)
    return obj


def parse_canonical(data: bytes) -> Any:
    """The one canonical CBOR item that is all of ``data`` (bytes the caller has already
    held to a size limit), or :class:`DecodeError`; no plain-data walk (see :func:`decode`)."""
    try:
        obj, end = _parse(data)
    except Exception as exc:  # malformed input raises several exception types
        text = str(exc)
        if "canonical" in text or "non-minimal" in text:
            raise DecodeError(f"not the canonical encoding: {text}", "non_canonical") from None
        raise DecodeError(f"not valid CBOR: {text}") from None
    if end != len(data):
        raise DecodeError("not the canonical encoding: bytes after the item", "non_canonical")
    return obj


def decode_trusted(data: bytes) -> Any:
    """Decode bytes this node wrote itself (state values): no canonical re-check."""
    return _loads(data)


def require_plain(obj: Any, depth: int = 0) -> None:
    """Raise :class:`DecodeError` unless ``obj`` (found at nesting ``depth``) is plain data:
    integers in range, text, bytes, booleans, null, lists, and maps with text keys."""
    if depth > NESTING_DEPTH_MAX:
        raise DecodeError("nesting too deep")
    t = type(obj)
    if t is int:
        if not INT_MIN <= obj <= INT_MAX:
            raise DecodeError("integer out of range")
    elif t is bytes or t is str or t is bool or obj is None:
        pass
    elif t is list:
        for item in obj:
            require_plain(item, depth + 1)
    elif t is dict:
        for k, v in obj.items():
            if type(k) is not str:
                raise DecodeError("map keys must be text")
            require_plain(v, depth + 1)
    else:
        raise DecodeError(f"value of type {t.__name__} is not allowed")


# ---------------------------------------------------------------- records

_Checker = Callable[[Any], Any]
_CHECKERS: dict[type, _Checker] = {}


_SCALARS = frozenset({int, str, bytes, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def to_obj(record: Any) -> Any:
    """Plain data of a record: dataclasses become maps, tuples become lists."""
    t = type(record)
    if t in _SCALARS:
        return record
    if t is tuple or t is list:
        return [to_obj(x) for x in record]
    if t is dict:
        return {k: to_obj(v) for k, v in record.items()}
    names = _FIELD_NAMES.get(t)
    if names is None:
        if not dataclasses.is_dataclass(record):
            return record
        names = _FIELD_NAMES[t] = tuple(f.name for f in dataclasses.fields(record))
    return {n: to_obj(getattr(record, n)) for n in names}


def from_obj(cls: type[T], obj: Any, where: str = "") -> T:
    """Build record ``cls`` from plain data, or raise :class:`DecodeError`.

    The error names the place, ``where`` (default: the class name) followed by the path
    into ``obj``: ``msgs[0].amount: expected an integer``."""
    checker = _CHECKERS.get(cls)
    if checker is None:
        checker = _compile(cls)
    try:
        return checker(obj)  # type: ignore[no-any-return]
    except _Bad as bad:
        path = "".join(reversed(bad.path))
        raise DecodeError(f"{where or cls.__name__}{path}: {bad.message}", bad.code) from None


_RECORD_CACHE: dict[tuple[type, bytes], Any] = {}
RECORD_CACHE_LEN_MAX = 8192


def record_from_state(cls: type[T], raw: bytes) -> T:
    """Decode a record the node itself stored, memoised by (class, bytes).

    Records are frozen dataclasses, so one decoded object can stand for every read of the
    same bytes; modules read the same asset or rental several times per transaction. The
    cache is dropped wholesale when full (cheap, and no eviction order to maintain).
    """
    shareable = _SHAREABLE.get(cls)
    if shareable is None:
        shareable = _SHAREABLE[cls] = _immutable_record(cls)
    if not shareable:
        return from_obj(cls, _loads(raw))
    k = (cls, raw)
    hit = _RECORD_CACHE.get(k)
    if hit is None:
        hit = from_obj(cls, _loads(raw))
        if len(_RECORD_CACHE) >= RECORD_CACHE_LEN_MAX:
            _RECORD_CACHE.clear()
        _RECORD_CACHE[k] = hit
    return hit  # type: ignore[no-any-return]


_SHAREABLE: dict[type, bool] = {}


def _immutable_record(tp: Any) -> bool:
    """True if decoded values of ``tp`` cannot be changed in place: frozen records, tuples
    and scalars all the way down. A record holding a dict is decoded afresh on every read,
    so no caller can alter what another caller sees."""
    if dataclasses.is_dataclass(tp):
        params = getattr(tp, "__dataclass_params__", None)
        if params is None or not params.frozen:
            return False
        hints = typing.get_type_hints(tp)
        return all(_immutable_record(hints[f.name]) for f in dataclasses.fields(tp))
    origin = typing.get_origin(tp)
    if origin is dict or tp is dict or tp is list or origin is list or tp is Any:
        return False
    if origin in (tuple, typing.Union, types.UnionType):
        return all(_immutable_record(a) for a in typing.get_args(tp) if a is not Ellipsis)
    return tp in (int, str, bytes, bool, type(None))


class _Bad(Exception):
    """A schema violation on its way up to :func:`from_obj`, which names where it happened.

    Checkers build no path strings while input is good: each container adds its own step
    (``.field``, ``[3]``) to ``path`` only when an error passes through it."""

    def __init__(self, message: str, code: str = "malformed") -> None:
        self.message = message
        self.code = code
        self.path: list[str] = []  # innermost step first


_SCALAR_MESSAGES = {int: "expected an integer", bool: "expected a boolean", str: "expected text",
                    bytes: "expected a byte string"}


def _scalar_checker(tp: type) -> _Checker:
    message = _SCALAR_MESSAGES[tp]

    def check_scalar(v: Any) -> Any:
        if type(v) is not tp:
            raise _Bad(message)
        return v
    return check_scalar


def _compile(tp: Any) -> _Checker:
    if isinstance(tp, type) and tp in _CHECKERS:
        return _CHECKERS[tp]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _compile_record(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp in _SCALAR_MESSAGES:
        return _scalar_checker(tp)
    if tp is Any:
        return lambda v: v
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) != 1 or len(args) != 2:
            raise TypeError(f"unsupported union {tp}")
        inner = _compile(non_none[0])
        return lambda v: None if v is None else inner(v)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _compile(args[0])

            def check_tuple(v: Any) -> tuple[Any, ...]:
                if type(v) is not list:
                    raise _Bad("expected a list")
                try:
                    return tuple([item(x) for x in v])
                except _Bad as bad:
                    for i, x in enumerate(v):  # find which item (error path only)
                        try:
                            item(x)
                        except _Bad:
                            bad.path.append(f"[{i}]")
                            break
                    raise
            return check_tuple
        items = [_compile(a) for a in args]

        def check_fixed(v: Any) -> tuple[Any, ...]:
            if type(v) is not list or len(v) != len(items):
                raise _Bad(f"expected a list of {len(items)} items")
            i = 0
            try:
                out = []
                for i, (c, x) in enumerate(zip(items, v)):
                    out.append(c(x))
                return tuple(out)
            except _Bad as bad:
                bad.path.append(f"[{i}]")
                raise
        return check_fixed
    if origin is dict:
        kc, vc = _compile(args[0]), _compile(args[1])

        def check_dict(v: Any) -> dict[Any, Any]:
            if type(v) is not dict:
                raise _Bad("expected a map")
            out = {}
            for k, x in v.items():
                k = kc(k)
                try:
                    out[k] = vc(x)
                except _Bad as bad:
                    bad.path.append(f".{k}")
                    raise
            return out
        return check_dict
    raise TypeError(f"unsupported field type {tp!r}")


def _compile_record(cls: type) -> _Checker:
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = frozenset(f.name for f in fields)
    required = frozenset(
        f.name for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    # Placeholder first so self-referential records compile.
    _CHECKERS[cls] = lambda v: checker(v)
    # Scalar fields are checked inline by type; others call their checker.
    field_checks = [(f.name, hints[f.name] if hints[f.name] in _SCALAR_MESSAGES else None,
                     _compile(hints[f.name])) for f in fields]

    def checker(v: Any) -> Any:
        if type(v) is not dict:
            raise _Bad("expected a map")
        keys = v.keys()
        if not keys <= names:
            unknown = sorted(keys - names)
            raise _Bad(f"unknown field(s) {', '.join(unknown)}", "unknown_field")
        if not required <= keys:
            missing = sorted(required - keys)
            raise _Bad(f"missing field(s) {', '.join(missing)}")
        kwargs = {}
        name = ""
        try:
            for name, tp, check in field_checks:
                if name in v:
                    x = v[name]
                    if tp is None:
                        kwargs[name] = check(x)
                    elif type(x) is tp:
                        kwargs[name] = x
                    else:
                        raise _Bad(_SCALAR_MESSAGES[tp])
        except _Bad as bad:
            bad.path.append(f".{name}")
            raise
        try:
            return cls(**kwargs)
        except DecodeError:
            raise
        except (ValueError, TypeError) as exc:
            raise _Bad(str(exc)) from None

    _CHECKERS[cls] = checker
    return checker
