"""An in-process transport: N drivers in one event loop, for ``sharechain devnet``.

:class:`LocalBus` connects endpoints; a broadcast is delivered to every other endpoint's
receiver on a later loop iteration (``call_soon``, or ``call_later`` with ``delay_ms``), so
a send never runs the receiver's code inside the sender's. Messages to an endpoint that has
no receiver yet are dropped, as a real network would before a peer is up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from sharechain.consensus.bft.driver import BftDriver
from sharechain.consensus.bft.events import BftConfig
from sharechain.consensus.bft.wal import Wal
from sharechain.consensus.interface import ChainConnector, Signer


class LocalTransport:
    """One endpoint on a :class:`LocalBus`; satisfies ``ConsensusTransport``."""

    def __init__(self, bus: LocalBus) -> None:
        self._bus = bus
        self._receiver: Callable[[bytes], None] | None = None
        self.sent = 0

    def broadcast(self, msg_bytes: bytes) -> None:
        self.sent += 1
        self._bus._fan_out(self, msg_bytes)

    def set_receiver(self, callback: Callable[[bytes], None]) -> None:
        self._receiver = callback

    def relay(self, msg_bytes: bytes) -> None:
        """Nothing to do: a broadcast on the bus already reached every endpoint."""

    def reject(self, msg_bytes: bytes, reason: str) -> None:
        """Nothing to do: every endpoint on the bus is in this process."""


class LocalBus:
    def __init__(self, delay_ms: float = 0.0) -> None:
        self.delay_ms = delay_ms
        self.endpoints: list[LocalTransport] = []

    def endpoint(self) -> LocalTransport:
        ep = LocalTransport(self)
        self.endpoints.append(ep)
        return ep

    def _fan_out(self, sender: LocalTransport, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        for ep in self.endpoints:
            if ep is sender or ep._receiver is None:
                continue
            if self.delay_ms > 0:
                loop.call_later(self.delay_ms / 1000, ep._receiver, data)
            else:
                loop.call_soon(ep._receiver, data)


def local_drivers(connectors: Sequence[ChainConnector], signers: Sequence[Signer | None],
                  wals: Sequence[Wal], config: BftConfig | None = None,
                  bus: LocalBus | None = None) -> tuple[LocalBus, list[BftDriver]]:
    """Drivers for N nodes of one process wired to one bus (call ``start()`` on each)."""
    bus = bus or LocalBus()
    drivers = [BftDriver(c, s, bus.endpoint(), w, config)
               for c, s, w in zip(connectors, signers, wals, strict=True)]
    return bus, drivers
