"""identity keeper: participants, roles and platforms.

Other modules receive an :class:`IdentityKeeper` (or a narrower Protocol view such as
:class:`RoleView`) and ask it who someone is and which roles they hold. Only this module
writes ``identity/`` keys.
"""

from __future__ import annotations

from typing import Protocol

from sharechain.app.framework import Context
from sharechain.app.state import Readable
from sharechain.crypto import bech32_address
from sharechain.errors import ShareChainError
from sharechain.modules.identity import keys
from sharechain.modules.identity.common import read_record
from sharechain.modules.identity.types import (
    ARBITRATOR,
    BUREAU,
    CONSUMER,
    GATEWAY,
    NOT_REGISTERED,
    PLATFORM,
    PROVIDER,
    REGULATOR,
    ROLE_REQUIRED,
    ROLES,
    Params,
    Participant,
    Platform,
    RoleGrant,
)

DEFAULT_PARAMS = Params(
    grants={REGULATOR: (PLATFORM, BUREAU, ARBITRATOR, GATEWAY), PLATFORM: (PROVIDER, GATEWAY)},
    self_grant=(CONSUMER,),
    default_platform_fee_bps=500,
    platform_fee_bps_max=3000,
)


class RoleView(Protocol):
    """The narrow view assets and iot need: who is registered and who holds which role."""

    def is_registered(self, state: Readable, addr: bytes) -> bool: ...
    def has_role(self, state: Readable, addr: bytes, role: str) -> bool: ...
    def require_role(self, ctx: Context, addr: bytes, role: str) -> None: ...
    def platform(self, state: Readable, addr: bytes) -> Platform | None: ...


class IdentityKeeper:
    # -------------------------------------------------------------- reads
    def params(self, state: Readable) -> Params:
        p = read_record(state, Params, keys.PARAMS_KEY)
        return DEFAULT_PARAMS if p is None else p  # type: ignore[no-any-return]

    def participant(self, state: Readable, addr: bytes) -> Participant | None:
        return read_record(state, Participant, keys.participant_key(addr))  # type: ignore[no-any-return]

    def is_registered(self, state: Readable, addr: bytes) -> bool:
        return state.get(keys.participant_key(addr)) is not None

    def has_role(self, state: Readable, addr: bytes, role: str) -> bool:
        return state.get(keys.role_key(role, addr)) is not None

    def role_grant(self, state: Readable, addr: bytes, role: str) -> RoleGrant | None:
        return read_record(state, RoleGrant, keys.role_key(role, addr))  # type: ignore[no-any-return]

    def roles_of(self, state: Readable, addr: bytes) -> tuple[str, ...]:
        return tuple(r for r in ROLES if self.has_role(state, addr, r))

    def platform(self, state: Readable, addr: bytes) -> Platform | None:
        return read_record(state, Platform, keys.platform_key(addr))  # type: ignore[no-any-return]

    def require_registered(self, ctx: Context, addr: bytes) -> Participant:
        p = self.participant(ctx.state, addr)
        if p is None:
            raise ShareChainError(NOT_REGISTERED,
                                  f"{bech32_address(addr)} is not a registered participant")
        return p

    def require_role(self, ctx: Context, addr: bytes, role: str) -> None:
        if not self.has_role(ctx.state, addr, role):
            raise ShareChainError(ROLE_REQUIRED,
                                  f"{bech32_address(addr)} does not hold the {role} role")

    def may_grant(self, state: Readable, granter: bytes, role: str) -> bool:
        """Whether ``granter`` holds a role that the grant table lets grant ``role``."""
        if role == REGULATOR:
            return False
        grants = self.params(state).grants
        return any(role in grants.get(g, ()) and self.has_role(state, granter, g)
                   for g in sorted(grants))

    # -------------------------------------------------------------- writes
    def set_params(self, ctx: Context, params: Params) -> None:
        ctx.set_record(keys.PARAMS_KEY, params)

    def put_participant(self, ctx: Context, p: Participant) -> None:
        ctx.set_record(keys.participant_key(p.address), p)

    def add_role(self, ctx: Context, addr: bytes, role: str, granted_by: bytes,
                 fee_bps: int | None = None) -> None:
        """Record a grant; the platform role also creates the platform record."""
        ctx.set_record(keys.role_key(role, addr), RoleGrant(granted_by, ctx.time_ms))
        if role == PLATFORM:
            p = self.participant(ctx.state, addr)
            name = p.name if p is not None else ""
            fee = self.params(ctx.state).default_platform_fee_bps if fee_bps is None else fee_bps
            ctx.set_record(keys.platform_key(addr), Platform(addr, name, fee, ctx.time_ms))

    def remove_role(self, ctx: Context, addr: bytes, role: str) -> None:
        ctx.delete(keys.role_key(role, addr))
        if role == PLATFORM:
            ctx.delete(keys.platform_key(addr))

    def put_platform(self, ctx: Context, platform: Platform) -> None:
        ctx.set_record(keys.platform_key(platform.address), platform)
