"""market message handlers: one function per message type, ``(ctx, msg) -> None``.

Handlers only unpack the message and call the keeper, where the rules live.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sharechain.app.framework import Context
from sharechain.modules.market.keeper import MarketKeeper
from sharechain.modules.market.types import (
    Book,
    CancelRequest,
    Delist,
    Fill,
    ListAsset,
    PostRequest,
)


def make_handlers(k: MarketKeeper) -> dict[str, Callable[[Context, Any], None]]:
    def list_(ctx: Context, msg: ListAsset) -> None:
        k.list_asset(ctx, msg)

    def delist(ctx: Context, msg: Delist) -> None:
        k.delist(ctx, msg)

    def book(ctx: Context, msg: Book) -> None:
        k.book(ctx, msg)

    def request(ctx: Context, msg: PostRequest) -> None:
        k.post_request(ctx, msg)

    def cancel_request(ctx: Context, msg: CancelRequest) -> None:
        k.cancel_request(ctx, msg)

    def fill(ctx: Context, msg: Fill) -> None:
        k.fill(ctx, msg)

    return {"list": list_, "delist": delist, "book": book, "request": request,
            "cancel_request": cancel_request, "fill": fill}
