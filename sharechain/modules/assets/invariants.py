"""assets invariants, checked after every block in tests and simulation.

They read the bank's escrow keys (read-only) to check that every pledge recorded on an asset
is really held, and that no pledge escrow exists without its asset.
"""

from __future__ import annotations

from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import decode
from sharechain.modules.assets import keys
from sharechain.modules.assets.types import Asset, pledge_escrow_id
from sharechain.modules.bank.keys import escrow_key
from sharechain.modules.identity.common import BPS_DENOM, iter_records


def _count(state: Readable, prefix: bytes) -> int:
    return sum(1 for _ in state.iter_range(prefix, prefix_end(prefix)))


def pledges_match_escrow(state: Readable) -> str | None:
    """For every asset, the bank escrow of its pledge equals ``pledge_held``."""
    held_total = 0
    for _, a in iter_records(state, Asset, keys.ASSET_PREFIX):
        raw = state.get(escrow_key(pledge_escrow_id(a.id)))
        escrow = 0 if raw is None else decode(raw)
        if escrow != a.pledge_held or a.pledge_held < 0:
            return f"asset {a.code}: pledge_held {a.pledge_held} but escrow {escrow}"
        if a.pledge_held and (not a.pledged or a.pledge_returned):
            return f"asset {a.code} holds a pledge it should not"
        held_total += a.pledge_held
    prefix = escrow_key(pledge_escrow_id(b""))
    escrow_total = sum(decode(v) for _, v in state.iter_range(prefix, prefix_end(prefix)))
    if escrow_total != held_total:
        return f"pledge escrows hold {escrow_total} but assets record {held_total}"
    return None


def records_consistent(state: Readable) -> str | None:
    """Codes, indexes, shares and counters agree with the asset records."""
    n = 0
    for _, a in iter_records(state, Asset, keys.ASSET_PREFIX):
        n += 1
        raw = state.get(keys.code_key(a.code))
        if raw is None or decode(raw) != a.id:
            return f"asset {a.code}: code index does not point at it"
        if state.get(keys.owner_key(a.owner, a.id)) is None or \
                state.get(keys.operator_key(a.operator, a.id)) is None:
            return f"asset {a.code}: owner or operator index missing"
        if sum(s.bps for s in a.income_shares) != BPS_DENOM or \
                [s.holder for s in a.income_shares] != sorted({s.holder for s in a.income_shares}):
            return f"asset {a.code}: income shares do not sum to 10000 or are not normalised"
        if _count(state, keys.CONFIRM_PREFIX + a.id) != a.consumer_confirmations:
            return f"asset {a.code}: consumer confirmation count differs from its records"
        if _count(state, keys.REPORT_OPEN_PREFIX + a.id) != a.open_reports:
            return f"asset {a.code}: open report count differs from its records"
        if a.use_right is not None and a.use_right.locked_by and not a.use_right.holder:
            return f"asset {a.code}: a locked use right without a holder"
    for prefix in (keys.CODE_PREFIX, keys.OWNER_PREFIX, keys.OPERATOR_PREFIX):
        if _count(state, prefix) != n:
            return f"{prefix.decode()} index holds a different number of entries than assets"
    return None


INVARIANTS = {"pledges_match_escrow": pledges_match_escrow,
              "records_consistent": records_consistent}
