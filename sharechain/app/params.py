"""Module parameters kept in state: one record per module, set at genesis (later by governance).

:class:`ParamStore` reads the record (decoding it once per distinct stored value, since it
is read on hot paths), writes it, and builds it from a genesis section in which any
field may be left out to take its default.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from sharechain.app.framework import Context
from sharechain.app.state import Readable
from sharechain.encoding import decode_trusted, from_obj, to_obj
from sharechain.errors import ShareChainError

P = TypeVar("P")


class ParamStore(Generic[P]):
    def __init__(self, cls: type[P], key: bytes, module: str) -> None:
        self.cls = cls
        self.key = key
        self.module = module
        self._raw: bytes | None = None
        self._value: P = cls()

    def get(self, state: Readable) -> P:
        raw = state.get(self.key)
        if raw is None:
            return self.cls()
        if raw != self._raw:
            self._value = from_obj(self.cls, decode_trusted(raw))
            self._raw = raw
        return self._value

    def set(self, ctx: Context, params: P) -> None:
        ctx.set_record(self.key, params)

    def from_genesis(self, raw: Any) -> P:
        """Defaults overridden by the fields given; ``invalid_genesis`` on anything wrong."""
        if not isinstance(raw, dict):
            raise ShareChainError("invalid_genesis", f"{self.module}: params must be an object")
        merged = dict(to_obj(self.cls()))
        merged.update(raw)
        try:
            return from_obj(self.cls, merged, f"{self.module}.params")
        except ShareChainError as exc:
            raise ShareChainError("invalid_genesis", f"{self.module}: {exc.message}") from None
