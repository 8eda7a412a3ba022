"""A bounded insertion-ordered map: the oldest entries fall out past a size cap.

Used wherever a node remembers "recently seen" things (message hashes, verified txs,
where a message came from) and must not grow without bound under load or attack.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMap(Generic[K, V]):
    __slots__ = ("_d", "len_max")

    def __init__(self, len_max: int) -> None:
        self._d: OrderedDict[K, V] = OrderedDict()
        self.len_max = len_max

    def __contains__(self, key: K) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: K, default: V | None = None) -> V | None:
        return self._d.get(key, default)

    def put(self, key: K, value: V) -> None:
        self._d[key] = value
        if len(self._d) > self.len_max:
            self._d.popitem(last=False)

    def add_new(self, key: K, value: V) -> bool:
        """Insert ``key`` if absent; True if it was new."""
        if key in self._d:
            return False
        self.put(key, value)
        return True

    def pop(self, key: K, default: V | None = None) -> V | None:
        return self._d.pop(key, default)
