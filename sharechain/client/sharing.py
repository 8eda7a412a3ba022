"""SDK for the sharing-economy modules: one small API class per module over a :class:`Client`.

    from sharechain.client import Client
    from sharechain.client.sharing import AssetsAPI, IdentityAPI, IotAPI
    c = Client("http://127.0.0.1:8700")
    IdentityAPI(c).register(key, "person", "Alice", roles=["consumer"])
    aid = AssetsAPI(c).define(carol, "bike", "BIKE-0042", cid, operator=bikeco_address)

Writes sign with the given key, submit, wait for the commit and raise
:class:`~sharechain.client.TxFailed` with the stable error code if the tx failed (pass
``check=False`` to get the result instead). Messages are built as typed records first, so bad
input fails locally with the same code the chain would give (``invalid_msg``, ``invalid_cid``).
Reads return the node's JSON (addresses as bech32 text, ids and hashes as hex).

Each module keeps its own section below (identity, assets, iot; rental and others follow).
"""

from __future__ import annotations

from typing import Any

from sharechain.client.client import Client
from sharechain.client.iot import bind_msg, build_anchor, sign_report
from sharechain.crypto import PrivateKey, bech32_address, parse_address
from sharechain.encoding import from_obj, to_obj
from sharechain.modules.assets.types import (
    Attest,
    ConfirmAsset,
    DefineAsset,
    Freeze,
    GrantUseRight,
    PledgeAsset,
    ReportAsset,
    ResolveReport,
    RevokeUseRight,
    SetOperator,
    TransferIncomeShare,
    TransferOwnership,
    TransferUseRight,
    Unfreeze,
    asset_id_of,
)
from sharechain.modules.identity.types import (
    GrantRole,
    Register,
    RevokeRole,
    SetPlatformFee,
    UpdateProfile,
)
from sharechain.modules.iot.types import (
    REPORTS_PER_MSG_MAX,
    AnchorReadings,
    SignedReport,
    SubmitReports,
    UnbindDevice,
)

Addr = bytes | str
Id = bytes | str


def addr(a: Addr) -> bytes:
    """Raw address bytes from bech32 text (or bytes, unchanged)."""
    return parse_address(a) if isinstance(a, str) else a


def hex_id(i: Id) -> bytes:
    """Raw id bytes from hex text (or bytes, unchanged)."""
    return bytes.fromhex(i) if isinstance(i, str) else i


def build(cls: type, **fields: Any) -> Any:
    """A message record validated like the chain does (DecodeError with a stable code)."""
    return from_obj(cls, to_obj(fields))


class _ModuleAPI:
    module = ""

    def __init__(self, client: Client) -> None:
        self.c = client

    def _tx(self, key: PrivateKey, mtype: str, msg: Any, **kw: Any) -> dict[str, Any]:
        return self.c.broadcast(key, [(mtype, msg)], **kw)

    def _q(self, name: str, **params: Any) -> Any:
        return self.c.query(self.module, name, **{k: v for k, v in params.items()
                                                  if v is not None})


# ==================================================================== identity

class IdentityAPI(_ModuleAPI):
    module = "identity"

    def register(self, key: PrivateKey, kind: str, name: str, profile_cid: str = "",
                 roles: tuple[str, ...] | list[str] = (), **kw: Any) -> dict[str, Any]:
        return self._tx(key, "identity/register", build(
            Register, kind=kind, name=name, profile_cid=profile_cid, roles=tuple(roles)), **kw)

    def update_profile(self, key: PrivateKey, name: str | None = None,
                       profile_cid: str | None = None, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "identity/update_profile",
                        build(UpdateProfile, name=name, profile_cid=profile_cid), **kw)

    def grant_role(self, key: PrivateKey, grantee: Addr, role: str, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "identity/grant_role",
                        build(GrantRole, grantee=addr(grantee), role=role), **kw)

    def revoke_role(self, key: PrivateKey, holder: Addr, role: str, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "identity/revoke_role",
                        build(RevokeRole, holder=addr(holder), role=role), **kw)

    def set_platform_fee(self, key: PrivateKey, fee_bps: int, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "identity/set_platform_fee",
                        build(SetPlatformFee, fee_bps=fee_bps), **kw)

    def participant(self, address: Addr) -> dict[str, Any]:
        return self._q("participant", address=bech32_address(addr(address)))  # type: ignore[no-any-return]

    def has_role(self, address: Addr, role: str) -> bool:
        return bool(self._q("has_role", address=bech32_address(addr(address)),
                            role=role)["has_role"])

    def role_holders(self, role: str, limit: int = 100, after: Addr | None = None) -> list[str]:
        return self._q("role_holders", role=role, limit=limit,  # type: ignore[no-any-return]
                       after=None if after is None else bech32_address(addr(after)))["holders"]

    def platform(self, address: Addr) -> dict[str, Any]:
        return self._q("platform", address=bech32_address(addr(address)))  # type: ignore[no-any-return]

    def platforms(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._q("platforms", limit=limit)["platforms"]  # type: ignore[no-any-return]

    def params(self) -> dict[str, Any]:
        return self._q("params")  # type: ignore[no-any-return]


# ==================================================================== assets

class AssetsAPI(_ModuleAPI):
    module = "assets"

    @staticmethod
    def asset_id(class_name: str, code: str) -> bytes:
        """The id an asset of this class and code has (computed locally)."""
        return asset_id_of(class_name, code)

    def define(self, key: PrivateKey, class_name: str, code: str, metadata_cid: str,
               operator: Addr, income_shares: list[tuple[Addr, int]] | None = None,
               **kw: Any) -> bytes:
        """Define an asset owned by ``key``; returns its id."""
        shares = tuple({"holder": addr(h), "bps": b} for h, b in (income_shares or []))
        self._tx(key, "assets/define", build(
            DefineAsset, class_name=class_name, code=code, metadata_cid=metadata_cid,
            operator=addr(operator), income_shares=shares), **kw)
        return asset_id_of(class_name, code)

    def attest(self, key: PrivateKey, asset_id: Id, role: str, evidence_cid: str = "",
               **kw: Any) -> dict[str, Any]:
        return self._tx(key, "assets/attest", build(
            Attest, asset_id=hex_id(asset_id), role=role, evidence_cid=evidence_cid), **kw)

    def transfer_ownership(self, key: PrivateKey, asset_id: Id, to: Addr,
                           **kw: Any) -> dict[str, Any]:
        return self._tx(key, "assets/transfer_ownership", build(
            TransferOwnership, asset_id=hex_id(asset_id), to=addr(to)), **kw)

    def set_operator(self, key: PrivateKey, asset_id: Id, operator: Addr,
                     **kw: Any) -> dict[str, Any]:
        return self._tx(key, "assets/set_operator", build(
            SetOperator, asset_id=hex_id(asset_id), operator=addr(operator)), **kw)

    def grant_use_right(self, key: PrivateKey, asset_id: Id, holder: Addr, until_ms: int,
                        **kw: Any) -> dict[str, Any]:
        return self._tx(key, "assets/grant_use_right", build(
            GrantUseRight, asset_id=hex_id(asset_id), holder=addr(holder), until_ms=until_ms),
            **kw)

    def transfer_use_right(self, key: PrivateKey, asset_id: Id, to: Addr,
                           **kw: Any) -> dict[str, Any]:
        return self._tx(key, "assets/transfer_use_right", build(
            TransferUseRight, asset_id=hex_id(asset_id), to=addr(to)), **kw)

    def revoke_use_right(self, key: PrivateKey, asset_id: Id, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "assets/revoke_use_right",
                        build(RevokeUseRight, asset_id=hex_id(asset_id)), **kw)

    def transfer_income_share(self, key: PrivateKey, asset_id: Id, to: Addr, bps: int,
                              **kw: Any) -> dict[str, Any]:
        return self._tx(key, "assets/transfer_income_share", build(
            TransferIncomeShare, asset_id=hex_id(asset_id), to=addr(to), bps=bps), **kw)

    def freeze(self, key: PrivateKey, asset_id: Id, reason: str, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "assets/freeze",
                        build(Freeze, asset_id=hex_id(asset_id), reason=reason), **kw)

    def unfreeze(self, key: PrivateKey, asset_id: Id, reason: str, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "assets/unfreeze",
                        build(Unfreeze, asset_id=hex_id(asset_id), reason=reason), **kw)

    def pledge(self, key: PrivateKey, asset_id: Id, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "assets/pledge", build(PledgeAsset, asset_id=hex_id(asset_id)),
                        **kw)

    def confirm(self, key: PrivateKey, asset_id: Id, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "assets/confirm", build(ConfirmAsset, asset_id=hex_id(asset_id)),
                        **kw)

    def report(self, key: PrivateKey, asset_id: Id, kind: str, evidence_cid: str = "",
               **kw: Any) -> dict[str, Any]:
        return self._tx(key, "assets/report", build(
            ReportAsset, asset_id=hex_id(asset_id), kind=kind, evidence_cid=evidence_cid), **kw)

    def resolve_report(self, key: PrivateKey, asset_id: Id, seq: int, upheld: bool,
                       compensation: int = 0, note: str = "", **kw: Any) -> dict[str, Any]:
        return self._tx(key, "assets/resolve_report", build(
            ResolveReport, asset_id=hex_id(asset_id), seq=seq, upheld=upheld,
            compensation=compensation, note=note), **kw)

    # reads
    def get(self, asset_id: Id | None = None, code: str | None = None,
            now_ms: int | None = None) -> dict[str, Any]:
        return self._q("asset", id=None if asset_id is None else hex_id(asset_id).hex(),  # type: ignore[no-any-return]
                       code=code, now_ms=now_ms)

    def asset_class(self, name: str) -> dict[str, Any]:
        return self._q("class", name=name)  # type: ignore[no-any-return]

    def classes(self) -> list[dict[str, Any]]:
        return self._q("classes")["classes"]  # type: ignore[no-any-return]

    def by_owner(self, owner: Addr, limit: int = 100) -> list[dict[str, Any]]:
        return self._q("by_owner", owner=bech32_address(addr(owner)),  # type: ignore[no-any-return]
                       limit=limit)["assets"]

    def by_operator(self, operator: Addr, limit: int = 100) -> list[dict[str, Any]]:
        return self._q("by_operator", operator=bech32_address(addr(operator)),  # type: ignore[no-any-return]
                       limit=limit)["assets"]

    def reports(self, asset_id: Id, limit: int = 100) -> list[dict[str, Any]]:
        return self._q("reports", id=hex_id(asset_id).hex(), limit=limit)["reports"]  # type: ignore[no-any-return]

    def confirmations(self, asset_id: Id) -> dict[str, Any]:
        return self._q("confirmations", id=hex_id(asset_id).hex())  # type: ignore[no-any-return]


# ==================================================================== iot

class IotAPI(_ModuleAPI):
    module = "iot"

    def bind_device(self, key: PrivateKey, device_key: PrivateKey, asset_id: Id,
                    **kw: Any) -> dict[str, Any]:
        """Bind ``device_key``'s device to the asset; ``key`` is the owner or operator. The
        device's consent signature is made here, so this needs the device key (at
        provisioning time); see :func:`sharechain.client.iot.bind_msg` to split the steps."""
        return self._tx(key, "iot/bind_device",
                        bind_msg(device_key, self.c.chain_id, hex_id(asset_id), key.address),
                        **kw)

    def unbind_device(self, key: PrivateKey, device: Addr, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "iot/unbind_device", build(UnbindDevice, device=addr(device)),
                        **kw)

    def sign_report(self, device_key: PrivateKey, asset_id: Id, counter: int, time_ms: int,
                    kind: str, **payload: Any) -> SignedReport:
        return sign_report(device_key, self.c.chain_id, hex_id(asset_id), counter, time_ms,
                           kind, **payload)

    def submit_reports(self, gateway_key: PrivateKey, reports: list[SignedReport],
                       **kw: Any) -> dict[str, Any]:
        """Submit reports in one tx, split into messages of at most 32 reports."""
        msgs = [("iot/submit_reports", SubmitReports(tuple(reports[i:i + REPORTS_PER_MSG_MAX])))
                for i in range(0, len(reports), REPORTS_PER_MSG_MAX)]
        return self.c.broadcast(gateway_key, msgs, **kw)  # type: ignore[arg-type]

    def anchor(self, gateway_key: PrivateKey, leaves: list[bytes], period_start_ms: int,
               period_end_ms: int, device: Addr | None = None, **kw: Any) -> int:
        """Anchor the Merkle root of ``leaves``; returns the anchor id."""
        root, count = build_anchor(leaves)
        res = self._tx(gateway_key, "iot/anchor", build(
            AnchorReadings, root=root, count=count, period_start_ms=period_start_ms,
            period_end_ms=period_end_ms, device=b"" if device is None else addr(device)), **kw)
        for e in res["result"]["events"]:
            if e["type"] == "readings_anchored":
                return int(e["attrs"]["anchor_id"])
        raise ValueError("the anchor tx emitted no readings_anchored event")

    # reads
    def device(self, device: Addr) -> dict[str, Any]:
        return self._q("device", id=bech32_address(addr(device)))  # type: ignore[no-any-return]

    def device_for_asset(self, asset_id: Id) -> dict[str, Any]:
        return self._q("device_for_asset", asset_id=hex_id(asset_id).hex())  # type: ignore[no-any-return]

    def last_report(self, device: Addr, kind: str) -> dict[str, Any]:
        return self._q("last_report", device=bech32_address(addr(device)), kind=kind)  # type: ignore[no-any-return]

    def last_reports(self, device: Addr) -> dict[str, Any]:
        return self._q("last_reports", device=bech32_address(addr(device)))["reports"]  # type: ignore[no-any-return]

    def get_anchor(self, anchor_id: int) -> dict[str, Any]:
        return self._q("anchor", id=str(anchor_id))  # type: ignore[no-any-return]

    def anchors(self, gateway: Addr, limit: int = 100) -> list[dict[str, Any]]:
        return self._q("anchors", gateway=bech32_address(addr(gateway)),  # type: ignore[no-any-return]
                       limit=limit)["anchors"]

    def params(self) -> dict[str, Any]:
        return self._q("params")  # type: ignore[no-any-return]


# ==================================================================== rental (next section)
