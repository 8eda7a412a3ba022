"""identity key layout (prefix ``identity/``).

  identity/params                  -> Params      grant table and platform fee limits
  identity/p/<addr20>              -> Participant registered participants
  identity/r/<role>/<addr20>       -> RoleGrant   one key per role held (role names hold no "/"),
                                                  so ``identity/r/<role>/`` lists a role's holders
  identity/pf/<addr20>             -> Platform    present exactly while the address holds the
                                                  platform role
"""

from __future__ import annotations

PARAMS_KEY = b"identity/params"
PARTICIPANT_PREFIX = b"identity/p/"
ROLE_PREFIX = b"identity/r/"
PLATFORM_PREFIX = b"identity/pf/"


def participant_key(addr: bytes) -> bytes:
    return PARTICIPANT_PREFIX + addr


def role_prefix(role: str) -> bytes:
    return ROLE_PREFIX + role.encode() + b"/"


def role_key(role: str, addr: bytes) -> bytes:
    return role_prefix(role) + addr


def platform_key(addr: bytes) -> bytes:
    return PLATFORM_PREFIX + addr
