"""The rental and damage-claim lifecycles, each a transition table.

Every state change of a rental or a claim goes through :func:`rental_next` or
:func:`claim_next`; a (state, action) pair that is not in the table raises
``invalid_transition``, so a handler can never move a record along an edge that is not
written down here. Self-loops (``sign_start``, ``confirm_asset``, ``flag_suspect``,
``claim``) record facts without changing the state, and are listed so that they too are
only legal where the table says.

Rental lifecycle::

    RESERVED --start--> ACTIVE --return--> RETURNED --confirm_return--> ENDED --close--> CLOSED
       |                  |                    \\--return_timeout/device_end-->^
       |                  |--device_end------------------------------------->^
       |--cancel--> CANCELLED  \\--default--> DEFAULTED
       \\--expire--> EXPIRED

Claim lifecycle::

    OPEN --accept--> ACCEPTED         OPEN/DISPUTED --resolve--> RESOLVED
    OPEN --dispute--> DISPUTED        OPEN/DISPUTED --timeout--> TIMED_OUT
    DISPUTED --accept--> ACCEPTED
"""

from __future__ import annotations

from typing import Final

from sharechain.errors import ShareChainError

INVALID_TRANSITION: Final = "invalid_transition"

# ---------------------------------------------------------------- rental states
RESERVED: Final = "reserved"      # window booked, deposit and expected fee in escrow
ACTIVE: Final = "active"          # started (device unlock or both parties signed)
RETURNED: Final = "returned"      # consumer says it is back; waits for the provider
ENDED: Final = "ended"            # settled; the damage hold waits out the claim window
CLOSED: Final = "closed"          # claim window over; only open claims keep escrow
EXPIRED: Final = "expired"        # never started within the start window
CANCELLED: Final = "cancelled"    # cancelled before start
DEFAULTED: Final = "defaulted"    # not returned by max duration + grace

RENTAL_STATES: Final = (RESERVED, ACTIVE, RETURNED, ENDED, CLOSED, EXPIRED, CANCELLED,
                        DEFAULTED)
# States whose rental still occupies its asset's booking calendar.
BOOKED_STATES: Final = frozenset({RESERVED, ACTIVE, RETURNED})

RENTAL_TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (RESERVED, "sign_start"): RESERVED,   # one party signed rental/start
    (RESERVED, "flag_suspect"): RESERVED,  # suspect device unlock: start needs both parties
    (RESERVED, "start"): ACTIVE,
    (RESERVED, "cancel"): CANCELLED,
    (RESERVED, "expire"): EXPIRED,
    (ACTIVE, "confirm_asset"): ACTIVE,
    (ACTIVE, "flag_suspect"): ACTIVE,
    (ACTIVE, "meter"): ACTIVE,
    (ACTIVE, "return"): RETURNED,
    (ACTIVE, "device_end"): ENDED,        # the device's lock report
    (ACTIVE, "default"): DEFAULTED,
    (RETURNED, "confirm_asset"): RETURNED,
    (RETURNED, "flag_suspect"): RETURNED,
    (RETURNED, "device_end"): ENDED,
    (RETURNED, "confirm_return"): ENDED,  # the provider confirms the consumer's return
    (RETURNED, "return_timeout"): ENDED,  # ...or does not, within return_confirm_ms
    (ENDED, "claim"): ENDED,
    (ENDED, "close"): CLOSED,
}

# ---------------------------------------------------------------- claim states
OPEN: Final = "open"
DISPUTED: Final = "disputed"
ACCEPTED: Final = "accepted"
RESOLVED: Final = "resolved"
TIMED_OUT: Final = "timed_out"

CLAIM_STATES: Final = (OPEN, DISPUTED, ACCEPTED, RESOLVED, TIMED_OUT)
CLAIM_PENDING_STATES: Final = frozenset({OPEN, DISPUTED})

CLAIM_TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (OPEN, "set_timeout"): OPEN,          # arbitration holds or releases a pending claim
    (DISPUTED, "set_timeout"): DISPUTED,
    (OPEN, "accept"): ACCEPTED,
    (OPEN, "dispute"): DISPUTED,
    (OPEN, "resolve"): RESOLVED,
    (OPEN, "timeout"): TIMED_OUT,
    (DISPUTED, "accept"): ACCEPTED,
    (DISPUTED, "resolve"): RESOLVED,
    (DISPUTED, "timeout"): TIMED_OUT,
}


def _next(table: dict[tuple[str, str], str], what: str, state: str, action: str) -> str:
    nxt = table.get((state, action))
    if nxt is None:
        raise ShareChainError(INVALID_TRANSITION,
                              f"cannot {action.replace('_', ' ')} a {what} that is {state}")
    return nxt


def rental_next(state: str, action: str) -> str:
    """The rental state after ``action``, or ``invalid_transition``."""
    return _next(RENTAL_TRANSITIONS, "rental", state, action)


def claim_next(state: str, action: str) -> str:
    """The claim state after ``action``, or ``invalid_transition``."""
    return _next(CLAIM_TRANSITIONS, "claim", state, action)
