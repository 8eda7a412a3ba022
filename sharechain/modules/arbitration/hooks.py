"""arbitration end-block hook: draw the panels due at this height, then tally, time out and
finalise the disputes whose deadlines passed (see ``ArbitrationKeeper.end_block``)."""

from __future__ import annotations

from collections.abc import Callable

from sharechain.app.framework import Context
from sharechain.modules.arbitration.keeper import ArbitrationKeeper


def make_end_block(k: ArbitrationKeeper) -> Callable[[Context], None]:
    return k.end_block
