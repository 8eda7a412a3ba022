"""The dispute lifecycle as a transition table.

Every state change of a dispute goes through :func:`dispute_next`; a (state, action) pair
that is not in the table raises ``invalid_transition``. Self-loops record facts (evidence,
votes) without changing the state and are listed so that they too are legal only where the
table says::

    AWAITING_RESPONSE --respond--> AWAITING_PANEL --draw--> VOTING --tally--> APPEALABLE
          |                               |                    |                 |
          |--respond_timeout-->CLOSED     |--no_panel-->CLOSED |--tally_final--> CLOSED
                                                                                 |
    APPEALABLE --appeal--> AWAITING_RESPONSE (round 1)     APPEALABLE --finalize--> CLOSED

A round's respondent who never posts its bond loses that round by default
(``respond_timeout``); a first-round ruling becomes final when its appeal window ends
(``finalize``); an appeal's ruling (or a tie) is final at once (``tally_final``).
"""

from __future__ import annotations

from typing import Final

from sharechain.errors import ShareChainError

INVALID_TRANSITION: Final = "invalid_transition"

AWAITING_RESPONSE: Final = "awaiting_response"  # the other side has not posted its bond yet
AWAITING_PANEL: Final = "awaiting_panel"        # both bonds in; the panel is drawn at a height
VOTING: Final = "voting"                        # commit, then reveal, with deadlines
APPEALABLE: Final = "appealable"                # first ruling made; its loser may appeal
CLOSED: Final = "closed"                        # final: ruling executed (or none to execute)

STATES: Final = (AWAITING_RESPONSE, AWAITING_PANEL, VOTING, APPEALABLE, CLOSED)
OPEN_STATES: Final = frozenset({AWAITING_RESPONSE, AWAITING_PANEL, VOTING, APPEALABLE})

TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (AWAITING_RESPONSE, "respond"): AWAITING_PANEL,
    (AWAITING_RESPONSE, "respond_timeout"): CLOSED,
    (AWAITING_RESPONSE, "evidence"): AWAITING_RESPONSE,
    (AWAITING_PANEL, "draw"): VOTING,
    (AWAITING_PANEL, "no_panel"): CLOSED,
    (AWAITING_PANEL, "evidence"): AWAITING_PANEL,
    (VOTING, "commit"): VOTING,
    (VOTING, "reveal"): VOTING,
    (VOTING, "evidence"): VOTING,
    (VOTING, "tally"): APPEALABLE,
    (VOTING, "tally_final"): CLOSED,
    (APPEALABLE, "appeal"): AWAITING_RESPONSE,
    (APPEALABLE, "finalize"): CLOSED,
}


def dispute_next(state: str, action: str) -> str:
    """The dispute state after ``action``, or ``invalid_transition``."""
    nxt = TRANSITIONS.get((state, action))
    if nxt is None:
        raise ShareChainError(INVALID_TRANSITION,
                              f"cannot {action.replace('_', ' ')} a dispute that is {state}")
    return nxt
