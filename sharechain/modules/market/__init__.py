"""market: business collaboration between platforms — listings visible to every platform,
consumer requests, bookings through another platform with the platform fee split between
the two, and fills of requests chosen by an off-chain optimal matcher.

See README.md in this folder for the spec. Other modules use :class:`MarketKeeper`
(``split_platform_fee`` is installed as rental's fee splitter by the builder).
"""

from __future__ import annotations

from sharechain.app.framework import Module, MsgSpec
from sharechain.modules.market.genesis import make_init
from sharechain.modules.market.handlers import make_handlers
from sharechain.modules.market.hooks import make_end_block
from sharechain.modules.market.invariants import INVARIANTS
from sharechain.modules.market.keeper import MarketKeeper, SearchQuery
from sharechain.modules.market.queries import make_queries
from sharechain.modules.market.types import (
    Book,
    CancelRequest,
    Delist,
    Fill,
    ListAsset,
    PostRequest,
)

# message type -> (record class, handler name, cost units)
MESSAGES: dict[str, tuple[type, str, int]] = {
    "market/list": (ListAsset, "list", 30),
    "market/delist": (Delist, "delist", 10),
    "market/book": (Book, "book", 45),
    "market/request": (PostRequest, "request", 20),
    "market/cancel_request": (CancelRequest, "cancel_request", 10),
    "market/fill": (Fill, "fill", 50),
}


def module(k: MarketKeeper) -> Module:
    h = make_handlers(k)
    return Module(
        name="market",
        msgs=[MsgSpec(t, cls, h[name], cost) for t, (cls, name, cost) in MESSAGES.items()],
        queries=make_queries(k),
        init_genesis=make_init(k),
        end_block=make_end_block(k),
        invariants=dict(INVARIANTS),
    )


__all__ = ["MESSAGES", "MarketKeeper", "SearchQuery", "module"]
