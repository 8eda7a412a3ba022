"""Module parameters kept in state: one record per module, set at genesis (later by
governance).

:class:`ParamStore` reads the record (through :func:`record_from_state`, which decodes a
stored value once and shares it when the record is immutable), writes it, and builds it
from a genesis section in which any field may be left out to take its default.

Params are read by many transactions of every block, so each store remembers the last
bytes it decoded and hands out the same object while the stored bytes are unchanged, even
for records that hold a dict (which :func:`record_from_state` decodes afresh on every read).
Params objects are therefore shared: treat them as read-only and change them only through
``dataclasses.replace`` and :meth:`ParamStore.set`.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from sharechain.app.framework import Context
from sharechain.app.state import Readable
from sharechain.encoding import from_obj, record_from_state, to_obj
from sharechain.errors import ShareChainError

P = TypeVar("P")


class ParamStore(Generic[P]):
    def __init__(self, cls: type[P], key: bytes, module: str) -> None:
        self.cls = cls
        self.key = key
        self.module = module
        self._last: tuple[bytes, P] | None = None

    def get(self, state: Readable) -> P:
        raw = state.get(self.key)
        if raw is None:
            return self.cls()
        last = self._last
        if last is not None and last[0] == raw:
            return last[1]
        params = record_from_state(self.cls, raw)
        self._last = (raw, params)
        return params

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
