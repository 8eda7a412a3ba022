"""identity records, messages and error codes."""

from __future__ import annotations

from dataclasses import dataclass

from sharechain.modules.identity.common import (
    NAME_BYTES_MAX,
    check_address,
    check_bps,
    check_cid_v1,
    check_text,
)

# Roles a participant can hold. ``regulator`` is special: it is never self-granted and never
# granted or revoked by a message, only in genesis (and later by governance).
PLATFORM = "platform"
PROVIDER = "provider"
CONSUMER = "consumer"
REGULATOR = "regulator"
BUREAU = "bureau"
ARBITRATOR = "arbitrator"
GATEWAY = "gateway"
ROLES = (PLATFORM, PROVIDER, CONSUMER, REGULATOR, BUREAU, ARBITRATOR, GATEWAY)
# Roles that only an organisation may hold.
ORGANISATION_ROLES = (PLATFORM, BUREAU)

PERSON = "person"
ORGANISATION = "organisation"
KINDS = (PERSON, ORGANISATION)

# Error codes raised by this module.
ALREADY_REGISTERED = "already_registered"
NOT_REGISTERED = "not_registered"
ROLE_REQUIRED = "role_required"
ROLE_NOT_GRANTABLE = "role_not_grantable"
GRANT_NOT_ALLOWED = "grant_not_allowed"
ROLE_ALREADY_HELD = "role_already_held"
ROLE_NOT_HELD = "role_not_held"
ORGANISATION_REQUIRED = "organisation_required"
FEE_TOO_HIGH = "fee_too_high"


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")


# ---------------------------------------------------------------- records

@dataclass(frozen=True, slots=True)
class Participant:
    address: bytes
    kind: str              # person | organisation
    name: str              # display name
    profile_cid: str       # CIDv1 of the profile document, "" for none
    registered_ms: int


@dataclass(frozen=True, slots=True)
class RoleGrant:
    granted_by: bytes      # b"" for genesis
    granted_ms: int


@dataclass(frozen=True, slots=True)
class Platform:
    address: bytes
    name: str
    fee_bps: int           # the platform's fee on rentals it operates, in basis points
    since_ms: int


@dataclass(frozen=True, slots=True)
class Params:
    # granter role -> roles a holder of it may grant (and revoke)
    grants: dict[str, tuple[str, ...]]
    # roles a registered participant may grant itself
    self_grant: tuple[str, ...]
    default_platform_fee_bps: int
    platform_fee_bps_max: int


# ---------------------------------------------------------------- messages

@dataclass(frozen=True, slots=True)
class Register:
    """Register the sender as a participant; ``roles`` may list self-grantable roles."""

    kind: str
    name: str
    profile_cid: str = ""
    roles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        check_text(self.name, "name", NAME_BYTES_MAX)
        check_cid_v1(self.profile_cid, "profile_cid", allow_empty=True)
        for r in self.roles:
            _check_role(r)
        if len(set(self.roles)) != len(self.roles):
            raise ValueError("roles repeat")


@dataclass(frozen=True, slots=True)
class UpdateProfile:
    name: str | None = None
    profile_cid: str | None = None

    def __post_init__(self) -> None:
        if self.name is None and self.profile_cid is None:
            raise ValueError("nothing to update")
        if self.name is not None:
            check_text(self.name, "name", NAME_BYTES_MAX)
        if self.profile_cid is not None:
            check_cid_v1(self.profile_cid, "profile_cid", allow_empty=True)


@dataclass(frozen=True, slots=True)
class GrantRole:
    grantee: bytes
    role: str

    def __post_init__(self) -> None:
        check_address(self.grantee, "grantee")
        _check_role(self.role)

    def accounts(self) -> tuple[bytes, ...]:
        return (self.grantee,)


@dataclass(frozen=True, slots=True)
class RevokeRole:
    holder: bytes
    role: str

    def __post_init__(self) -> None:
        check_address(self.holder, "holder")
        _check_role(self.role)

    def accounts(self) -> tuple[bytes, ...]:
        return (self.holder,)


@dataclass(frozen=True, slots=True)
class SetPlatformFee:
    fee_bps: int

    def __post_init__(self) -> None:
        check_bps(self.fee_bps, "fee_bps", allow_zero=True)
