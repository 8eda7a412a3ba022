"""assets genesis: the asset classes and (for demo worlds) assets that exist from the start.

::

    "assets": {
      "classes": [{"name": "bike", "confirmations": ["platform"], "pledge": 50000,
                   "consumer_confirmations": 3, "max_speed_mps": 15,
                   "meter_step_min": 0, "meter_step_max": 200000, "description": "…"}, ...],
      "assets": [{"class_name": "bike", "code": "BIKE-0001", "metadata_cid": "bafk…",
                  "owner": "share1…", "operator": "share1…",
                  "income_shares": [{"holder": "share1…", "bps": 10000}],
                  "confirmed": true, "pledged": true}, ...]
    }

A genesis asset marked ``confirmed`` needs no attestations (genesis is trusted); one marked
``pledged`` has its class's pledge locked from the owner's genesis balance, so the bank
section must fund the owner (bank genesis runs first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sharechain.app.framework import Context
from sharechain.crypto import PrivateKey, cid_of, parse_address
from sharechain.encoding import from_obj, to_obj
from sharechain.errors import ShareChainError
from sharechain.modules.assets import keys
from sharechain.modules.assets.keeper import AssetsKeeper
from sharechain.modules.assets.types import (
    Asset,
    AssetClass,
    Share,
    asset_id_of,
    check_class_name,
    check_code,
    check_shares,
    normalise_shares,
    pledge_escrow_id,
)
from sharechain.modules.identity.common import BPS_DENOM, check_cid_v1
from sharechain.modules.identity.keeper import RoleView
from sharechain.modules.identity.types import PLATFORM


@dataclass(frozen=True, slots=True)
class GenesisShare:
    holder: str
    bps: int


@dataclass(frozen=True, slots=True)
class GenesisAsset:
    class_name: str
    code: str
    metadata_cid: str
    owner: str
    operator: str
    income_shares: tuple[GenesisShare, ...] = ()
    confirmed: bool = False
    pledged: bool = False

    def __post_init__(self) -> None:
        check_class_name(self.class_name)
        check_code(self.code)
        check_cid_v1(self.metadata_cid, "metadata_cid")
        if self.pledged and not self.confirmed:
            raise ValueError("a pledged genesis asset must be confirmed")


def _bad(msg: str) -> ShareChainError:
    return ShareChainError("invalid_genesis", f"assets: {msg}")


def make_init(ak: AssetsKeeper, identity: RoleView) -> Any:
    def init(ctx: Context, data: dict[str, Any]) -> None:
        try:
            classes = [from_obj(AssetClass, c, f"assets.classes[{i}]")
                       for i, c in enumerate(data.get("classes", []))]
            assets = [from_obj(GenesisAsset, a, f"assets.assets[{i}]")
                      for i, a in enumerate(data.get("assets", []))]
        except ShareChainError as exc:
            raise _bad(exc.message) from None
        for c in classes:
            if ak.asset_class(ctx.state, c.name) is not None:
                raise _bad(f"class {c.name} is defined twice")
            ctx.set_record(keys.class_key(c.name), c)
        for g in assets:
            _add_asset(ctx, ak, identity, g)
    return init


def _add_asset(ctx: Context, ak: AssetsKeeper, identity: RoleView, g: GenesisAsset) -> None:
    cls = ak.asset_class(ctx.state, g.class_name)
    if cls is None:
        raise _bad(f"asset {g.code} names unknown class {g.class_name}")
    if ctx.get(keys.code_key(g.code)) is not None:
        raise _bad(f"asset code {g.code} is listed twice")
    owner, operator = parse_address(g.owner), parse_address(g.operator)
    if not identity.is_registered(ctx.state, owner):
        raise _bad(f"the owner of {g.code} is not a registered participant")
    if not identity.has_role(ctx.state, operator, PLATFORM):
        raise _bad(f"the operator of {g.code} is not a platform")
    shares = tuple(Share(parse_address(s.holder), s.bps) for s in g.income_shares) or \
        (Share(owner, BPS_DENOM),)
    try:
        check_shares(shares)
    except ShareChainError as exc:
        raise _bad(f"{g.code}: {exc.message}") from None
    aid = asset_id_of(g.class_name, g.code)
    pledge = cls.pledge if g.pledged else 0
    if pledge:
        ak.bank.lock(ctx, owner, pledge, pledge_escrow_id(aid))
    ak.create(ctx, Asset(
        id=aid, class_name=g.class_name, code=g.code, metadata_cid=g.metadata_cid, owner=owner,
        operator=operator, income_shares=normalise_shares({s.holder: s.bps for s in shares}),
        use_right=None, confirmed=g.confirmed, frozen=False, freeze_reason="",
        pledged=g.pledged, pledge_held=pledge, pledger=owner if g.pledged else b"",
        pledge_returned=False, consumer_confirmations=0, open_reports=0,
        created_ms=ctx.time_ms))


# ---------------------------------------------------------------- demo world

DEMO_CLASSES = [
    AssetClass("bike", ("platform",), pledge=50_000, consumer_confirmations=3,
               max_speed_mps=15, meter_step_min=0, meter_step_max=200_000,
               description="bicycle; meter in metres ridden; the platform confirms"),
    AssetClass("ebike", ("platform",), pledge=100_000, consumer_confirmations=3,
               max_speed_mps=20, meter_step_min=0, meter_step_max=300_000,
               description="electric bicycle; meter in metres; the platform confirms"),
    AssetClass("car", ("regulator", "platform"), pledge=1_000_000, consumer_confirmations=5,
               max_speed_mps=70, meter_step_min=0, meter_step_max=2_000_000,
               description="car; meter in metres driven; regulator and platform confirm"),
    AssetClass("room", ("regulator",), pledge=500_000, consumer_confirmations=3,
               max_speed_mps=0, meter_step_min=0, meter_step_max=100_000,
               description="room or flat; immobile; meter in Wh; the regulator confirms"),
    AssetClass("charger", ("regulator",), pledge=200_000, consumer_confirmations=3,
               max_speed_mps=0, meter_step_min=0, meter_step_max=500_000,
               description="EV charger; immobile; meter in Wh delivered"),
    AssetClass("tool", (), pledge=10_000, consumer_confirmations=2,
               max_speed_mps=40, meter_step_min=0, meter_step_max=100_000,
               description="power tool; no confirmation needed; meter in seconds of use"),
]

# code -> (class, owner name, operator name, pledged)
DEMO_ASSETS: dict[str, tuple[str, str, str, bool]] = {
    "BIKE-0001": ("bike", "carol", "bikeco", True),
    "BIKE-0002": ("bike", "carol", "bikeco", False),
    "CAR-0001": ("car", "dave", "carshare", True),
}


def demo_device_key(code: str) -> PrivateKey:
    """The demo IoT device key of a demo asset (public knowledge, demo only)."""
    return PrivateKey.from_name(f"device/{code}")


def demo_section(accounts: dict[str, int]) -> dict[str, Any]:
    """The assets genesis section of the devnet demo world (funded names only)."""
    assets = []
    for code, (cls, owner, operator, pledged) in DEMO_ASSETS.items():
        if owner not in accounts or operator not in accounts:
            continue
        assets.append({
            "class_name": cls, "code": code,
            "metadata_cid": cid_of(f"sharechain demo asset: {code}".encode()),
            "owner": PrivateKey.from_name(owner).bech32,
            "operator": PrivateKey.from_name(operator).bech32,
            "confirmed": True, "pledged": pledged})
    return {"classes": [to_obj(c) for c in DEMO_CLASSES], "assets": assets}
