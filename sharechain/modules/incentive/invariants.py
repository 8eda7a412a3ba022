"""incentive invariants: no account was paid more than the cap in its recorded epoch, and
nobody was paid more in an epoch than in total."""

from __future__ import annotations

from sharechain.app.framework import InvariantCheck
from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import decode
from sharechain.modules.incentive import keys
from sharechain.modules.incentive.keeper import IncentiveKeeper


def make_invariants(k: IncentiveKeeper) -> dict[str, InvariantCheck]:
    def caps(state: Readable) -> str | None:
        cap = k.params(state).account_epoch_cap
        prefix = keys.ACCOUNT_PREFIX
        for key, v in state.iter_range(prefix, prefix_end(prefix)):
            _epoch, paid, total = decode(v)
            if not 0 <= paid <= cap or paid > total:
                return f"account {key[len(prefix):].hex()} was paid {paid} in an epoch (cap {cap})"
        return None

    return {"caps": caps}
