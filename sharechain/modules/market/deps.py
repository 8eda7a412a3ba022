"""The narrow interfaces market needs from other modules.

market never touches another module's keys. It reads an asset's class and operator through
:class:`AssetsPort`, roles through :class:`RolesPort`, and books through :class:`RentalPort`
(the rental keeper): the offer a listing shows, a reservation made for a consumer (which
runs rental's own checks, the credit gate included), and the booked windows of an asset.
"""

from __future__ import annotations

from typing import Protocol

from sharechain.app.framework import Context
from sharechain.app.state import Readable
from sharechain.modules.rental.types import Reserve


class AssetView(Protocol):
    @property
    def class_name(self) -> str: ...
    @property
    def owner(self) -> bytes: ...
    @property
    def operator(self) -> bytes: ...


class AssetsPort(Protocol):
    def get(self, state: Readable, asset_id: bytes) -> AssetView | None: ...
    def require_rentable(self, ctx: Context, asset_id: bytes) -> AssetView: ...


class RolesPort(Protocol):
    def has_role(self, state: Readable, addr: bytes, role: str) -> bool: ...
    def require_role(self, ctx: Context, addr: bytes, role: str) -> None: ...


class TermsView(Protocol):
    @property
    def price_per_unit(self) -> int: ...
    @property
    def unit_ms(self) -> int: ...
    @property
    def deposit(self) -> int: ...
    @property
    def min_duration_ms(self) -> int: ...
    @property
    def max_duration_ms(self) -> int: ...
    @property
    def min_credit_tier(self) -> int: ...


class OfferView(Protocol):
    @property
    def version(self) -> int: ...
    @property
    def terms(self) -> TermsView: ...


class RentalView(Protocol):
    @property
    def id(self) -> bytes: ...
    @property
    def operator(self) -> bytes: ...
    @property
    def deposit(self) -> int: ...
    @property
    def prepaid(self) -> int: ...


class RentalPort(Protocol):
    def offer(self, state: Readable, asset_id: bytes) -> OfferView | None: ...
    def reserve(self, ctx: Context, msg: Reserve, consumer: bytes | None = None
                ) -> RentalView: ...
    def booked_windows(self, state: Readable, asset_id: bytes, from_ms: int, to_ms: int,
                       limit: int) -> list[tuple[int, int]]: ...
