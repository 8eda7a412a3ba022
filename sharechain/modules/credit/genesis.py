"""credit genesis: the scoring policy and the consents that exist from the start.

::

    "credit": {
      "params": {"base_score": 680, "half_life_ms": 15552000000, "weights": {...},
                 "tiers": [{"name": "A", "min_score": 800, "deposit_multiplier_bps": 5000,
                            "max_concurrent_rentals": 10, "asset_classes": []}, ...],
                 "blocked_below": 200, "bureau_weight_bps": 2000, "band_scores": {...}},
      "consents": [{"subject": "share1…", "bureau": "share1…", "for_ms": 31536000000}]
    }

Every params field is optional (a missing one keeps its default, see ``types.Params``); a
given ``weights``, ``tiers`` or ``band_scores`` replaces the default whole. A consent gives
either ``until_ms`` (absolute) or ``for_ms`` (from the genesis time); its bureau must hold the
bureau role in the identity genesis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sharechain.app.framework import Context
from sharechain.crypto import PrivateKey, parse_address
from sharechain.encoding import from_obj, to_obj
from sharechain.errors import ShareChainError
from sharechain.modules.credit import keys
from sharechain.modules.credit.keeper import CreditKeeper
from sharechain.modules.credit.types import Consent, TierRule
from sharechain.modules.identity.common import BPS_DENOM
from sharechain.modules.identity.types import BUREAU


@dataclass(frozen=True, slots=True)
class GenesisConsent:
    subject: str
    bureau: str
    until_ms: int = 0
    for_ms: int = 0

    def __post_init__(self) -> None:
        if (self.until_ms > 0) == (self.for_ms > 0):
            raise ValueError("give exactly one of until_ms and for_ms (positive)")


def _bad(msg: str) -> ShareChainError:
    return ShareChainError("invalid_genesis", f"credit: {msg}")


def make_init(k: CreditKeeper) -> Callable[[Context, dict[str, Any]], None]:
    def init(ctx: Context, data: dict[str, Any]) -> None:
        unknown = set(data) - {"params", "consents"}
        if unknown:
            raise _bad(f"unknown field(s) {sorted(unknown)}")
        params = k.param_store.from_genesis(data.get("params", {}))
        try:
            consents = [from_obj(GenesisConsent, c, f"credit.consents[{i}]")
                        for i, c in enumerate(data.get("consents", []))]
        except ShareChainError as exc:
            raise _bad(exc.message) from None
        k.set_params(ctx, params)
        k.tick(ctx)
        for gc in consents:
            subject, bureau = parse_address(gc.subject), parse_address(gc.bureau)
            if not k.roles.has_role(ctx.state, bureau, BUREAU):
                raise _bad(f"consent to {gc.bureau}, which holds no bureau role")
            until = gc.until_ms or ctx.time_ms + gc.for_ms
            ctx.set_record(keys.consent_key(subject, bureau),
                           Consent(subject, bureau, ctx.time_ms, until))
    return init


# ---------------------------------------------------------------- demo world

# The devnet's policy: a good record halves the deposit, a poor one raises it and narrows the
# classes and the number of rentals at once. A newcomer (680) is in tier B (deposit as
# offered); one late return without a good record behind it (640) drops them to C.
DEMO_TIERS = (
    TierRule("A", 800, 5_000, 10),
    TierRule("B", 650, BPS_DENOM, 5),
    TierRule("C", 500, 15_000, 3, ("bike", "ebike", "tool", "charger", "room")),
    TierRule("D", 200, 25_000, 1, ("bike", "tool")),
)
DEMO_PARAMS: dict[str, Any] = {"tiers": to_obj(DEMO_TIERS), "blocked_below": 200}
DEMO_CONSENT_MS = 365 * 86_400_000
# subject name -> bureau name: consents in the demo world's genesis
DEMO_CONSENTS = {"erin": "bureau"}


def demo_section(accounts: dict[str, int]) -> dict[str, Any]:
    consents = [{"subject": PrivateKey.from_name(s).bech32,
                 "bureau": PrivateKey.from_name(b).bech32, "for_ms": DEMO_CONSENT_MS}
                for s, b in DEMO_CONSENTS.items() if s in accounts and b in accounts]
    return {"params": dict(DEMO_PARAMS), "consents": consents}
