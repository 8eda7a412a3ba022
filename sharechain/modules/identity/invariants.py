"""identity invariants, checked after every block in tests and simulation."""

from __future__ import annotations

from sharechain.app.state import Readable, prefix_end
from sharechain.modules.identity import keys
from sharechain.modules.identity.types import PLATFORM, ROLES


def roles_belong_to_participants(state: Readable) -> str | None:
    """Every role key names a known role and a registered participant."""
    for k, _ in state.iter_range(keys.ROLE_PREFIX, prefix_end(keys.ROLE_PREFIX)):
        rest = k[len(keys.ROLE_PREFIX):]
        role, addr = rest[:-21].decode(), rest[-20:]
        if role not in ROLES or rest[-21:-20] != b"/":
            return f"malformed role key {k!r}"
        if state.get(keys.participant_key(addr)) is None:
            return f"role {role} held by an unregistered address"
    return None


def platform_records_match_roles(state: Readable) -> str | None:
    """A platform record exists exactly for the holders of the platform role."""
    pfx = keys.role_prefix(PLATFORM)
    holders = {k[len(pfx):] for k, _ in state.iter_range(pfx, prefix_end(pfx))}
    records = {k[len(keys.PLATFORM_PREFIX):] for k, _ in
               state.iter_range(keys.PLATFORM_PREFIX, prefix_end(keys.PLATFORM_PREFIX))}
    if holders != records:
        return f"{len(holders ^ records)} platform record(s) without the role or the reverse"
    return None


INVARIANTS = {"roles_belong_to_participants": roles_belong_to_participants,
              "platform_records_match_roles": platform_records_match_roles}
