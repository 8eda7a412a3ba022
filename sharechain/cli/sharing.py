"""``sharechain sharing …``: identity, assets and IoT commands (a typer sub-app).

Keys are names in the keystore (or, for addresses, bech32 text); assets are given by code
(``BIKE-0001``) or hex id. Every write waits for the commit and prints the result; a failed
transaction prints its error code and exits non-zero.

    sharechain sharing identity register frank --kind person --name Frank --role consumer
    sharechain sharing assets define carol bike BIKE-0042 --metadata-file bike.json --operator bikeco
    sharechain sharing assets show BIKE-0042
    sharechain sharing iot report gateway dev1 BIKE-0042 meter --counter 7 --reading 1520
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from sharechain.cli.common import console, handle_errors
from sharechain.crypto import cid_of
from sharechain.errors import ShareChainError
from sharechain.cli.common import (  # the shared plumbing, under this module's names
    client_for as _client,
    load_key as _key,
    resolve as _addr,
    print_json as _print,
    print_tx_result as _done,
)

app = typer.Typer(help="Sharing economy: participants, assets and IoT devices.",
                  no_args_is_help=True)
identity_app = typer.Typer(help="Participants, roles and platforms.", no_args_is_help=True)
assets_app = typer.Typer(help="Assets: definition, confirmation, rights, pledge.",
                         no_args_is_help=True)
iot_app = typer.Typer(help="IoT devices: binding, signed reports, anchors.", no_args_is_help=True)
app.add_typer(identity_app, name="identity")
app.add_typer(assets_app, name="assets")
app.add_typer(iot_app, name="iot")

NodeOpt = typer.Option(None, "--node", help="Node API URL (env SHARECHAIN_NODE).")
KeyringOpt = typer.Option(None, "--keyring", help="Keystore folder (env SHARECHAIN_KEYRING).")
ProfileFileOpt = typer.Option(None, help="Compute the profile CID from this file instead.")
MetadataFileOpt = typer.Option(None, help="Compute the metadata CID from this file instead.")
RoleOpt = typer.Option([], help="Self-grantable role (repeatable).")
ShareOpt = typer.Option([], help="Income share HOLDER:BPS (repeatable; default 10000 bps to "
                        "the owner).")


# ---------------------------------------------------------------- plumbing











def _asset_id(c: Any, asset: str) -> bytes:
    """A hex id as is; anything else is an asset code looked up on the node."""
    if len(asset) == 32:
        try:
            return bytes.fromhex(asset)
        except ValueError:
            pass
    return bytes.fromhex(c.query("assets", "asset", code=asset)["id"])


def _send(sender: str, keyring: Path | None, node: str | None, mtype: str,
          build: Any) -> None:
    """Sign ``build(client)``'s message with ``sender`` and print the committed result."""
    key = _key(sender, keyring)
    with _client(node) as c:
        msg = build(c)
        res = c.broadcast(key, [(mtype, msg)], check=False)
    _done(res)


def _build(cls: type, **fields: Any) -> Any:
    from sharechain.client.sharing import build

    return build(cls, **fields)


# ==================================================================== identity

@identity_app.command("register")
@handle_errors
def id_register(sender: str, kind: str = typer.Option(..., help="person or organisation"),
                name: str = typer.Option(..., help="Display name."),
                profile_cid: str = typer.Option("", help="CIDv1 of the profile document."),
                profile_file: Path | None = ProfileFileOpt,
                role: list[str] = RoleOpt,
                node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """Register key SENDER as a participant."""
    from sharechain.modules.identity.types import Register

    cid = cid_of(profile_file.read_bytes()) if profile_file else profile_cid
    _send(sender, keyring, node, "identity/register", lambda c: _build(
        Register, kind=kind, name=name, profile_cid=cid, roles=tuple(role)))


@identity_app.command("update-profile")
@handle_errors
def id_update(sender: str, name: str | None = None, profile_cid: str | None = None,
              node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """Change SENDER's display name and/or profile CID."""
    from sharechain.modules.identity.types import UpdateProfile

    _send(sender, keyring, node, "identity/update_profile",
          lambda c: _build(UpdateProfile, name=name, profile_cid=profile_cid))


@identity_app.command("grant-role")
@handle_errors
def id_grant(sender: str, grantee: str, role: str, node: str | None = NodeOpt,
             keyring: Path | None = KeyringOpt) -> None:
    """SENDER grants ROLE to GRANTEE (as the genesis grant table allows)."""
    from sharechain.modules.identity.types import GrantRole

    to = _addr(grantee, keyring)
    _send(sender, keyring, node, "identity/grant_role",
          lambda c: _build(GrantRole, grantee=to, role=role))


@identity_app.command("revoke-role")
@handle_errors
def id_revoke(sender: str, holder: str, role: str, node: str | None = NodeOpt,
              keyring: Path | None = KeyringOpt) -> None:
    """SENDER revokes HOLDER's ROLE (or renounces its own)."""
    from sharechain.modules.identity.types import RevokeRole

    who = _addr(holder, keyring)
    _send(sender, keyring, node, "identity/revoke_role",
          lambda c: _build(RevokeRole, holder=who, role=role))


@identity_app.command("set-platform-fee")
@handle_errors
def id_fee(sender: str, fee_bps: int, node: str | None = NodeOpt,
           keyring: Path | None = KeyringOpt) -> None:
    """Platform SENDER sets its fee rate in basis points."""
    from sharechain.modules.identity.types import SetPlatformFee

    _send(sender, keyring, node, "identity/set_platform_fee",
          lambda c: _build(SetPlatformFee, fee_bps=fee_bps))


@identity_app.command("show")
@handle_errors
def id_show(who: str, node: str | None = NodeOpt, keyring: Path | None = KeyringOpt
            ) -> None:
    """A participant, its roles and platform record."""
    from sharechain.crypto import bech32_address

    with _client(node) as c:
        _print(c.query("identity", "participant", address=bech32_address(_addr(who, keyring))))


@identity_app.command("role-holders")
@handle_errors
def id_holders(role: str, limit: int = 100, node: str | None = NodeOpt) -> None:
    """Addresses holding ROLE."""
    with _client(node) as c:
        _print(c.query("identity", "role_holders", role=role, limit=limit))


@identity_app.command("platforms")
@handle_errors
def id_platforms(node: str | None = NodeOpt) -> None:
    """Every platform and its fee rate."""
    with _client(node) as c:
        _print(c.query("identity", "platforms"))


# ==================================================================== assets

@assets_app.command("define")
@handle_errors
def as_define(sender: str, class_name: str, code: str,
              operator: str = typer.Option(..., help="Operating platform (key name or address)."),
              metadata_cid: str = typer.Option("", help="CIDv1 of the metadata document."),
              metadata_file: Path | None = MetadataFileOpt,
              share: list[str] = ShareOpt,
              node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """Provider SENDER defines asset CODE of CLASS_NAME."""
    from sharechain.modules.assets.types import DefineAsset, asset_id_of

    cid = cid_of(metadata_file.read_bytes()) if metadata_file else metadata_cid
    shares = []
    for s in share:
        holder, _, bps = s.rpartition(":")
        if not holder or not bps.isdigit():
            raise ShareChainError("invalid_share", f"share {s!r} is not HOLDER:BPS")
        shares.append({"holder": _addr(holder, keyring), "bps": int(bps)})
    op = _addr(operator, keyring)
    _send(sender, keyring, node, "assets/define", lambda c: _build(
        DefineAsset, class_name=class_name, code=code, metadata_cid=cid, operator=op,
        income_shares=tuple(shares)))
    console.print(f"asset id {asset_id_of(class_name, code).hex()}")


@assets_app.command("attest")
@handle_errors
def as_attest(sender: str, asset: str, role: str, evidence_cid: str = "",
              node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """SENDER (regulator, or the operating platform) confirms ASSET in ROLE."""
    from sharechain.modules.assets.types import Attest

    _send(sender, keyring, node, "assets/attest", lambda c: _build(
        Attest, asset_id=_asset_id(c, asset), role=role, evidence_cid=evidence_cid))


@assets_app.command("transfer-ownership")
@handle_errors
def as_transfer(sender: str, asset: str, to: str, node: str | None = NodeOpt,
                keyring: Path | None = KeyringOpt) -> None:
    """Owner SENDER transfers ASSET to TO."""
    from sharechain.modules.assets.types import TransferOwnership

    dest = _addr(to, keyring)
    _send(sender, keyring, node, "assets/transfer_ownership", lambda c: _build(
        TransferOwnership, asset_id=_asset_id(c, asset), to=dest))


@assets_app.command("set-operator")
@handle_errors
def as_operator(sender: str, asset: str, operator: str, node: str | None = NodeOpt,
                keyring: Path | None = KeyringOpt) -> None:
    """The owner or operator SENDER hands ASSET's operation to platform OPERATOR."""
    from sharechain.modules.assets.types import SetOperator

    op = _addr(operator, keyring)
    _send(sender, keyring, node, "assets/set_operator", lambda c: _build(
        SetOperator, asset_id=_asset_id(c, asset), operator=op))


@assets_app.command("grant-use")
@handle_errors
def as_grant_use(sender: str, asset: str, holder: str,
                 minutes: int = typer.Option(60, help="How long from now."),
                 node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """The owner or operator SENDER gives HOLDER the use right of ASSET for a while."""
    from sharechain.modules.assets.types import GrantUseRight

    who = _addr(holder, keyring)
    until = int(time.time() * 1000) + minutes * 60_000
    _send(sender, keyring, node, "assets/grant_use_right", lambda c: _build(
        GrantUseRight, asset_id=_asset_id(c, asset), holder=who, until_ms=until))


@assets_app.command("transfer-use")
@handle_errors
def as_transfer_use(sender: str, asset: str, to: str, node: str | None = NodeOpt,
                    keyring: Path | None = KeyringOpt) -> None:
    """Use-right holder SENDER passes the use right of ASSET to TO."""
    from sharechain.modules.assets.types import TransferUseRight

    dest = _addr(to, keyring)
    _send(sender, keyring, node, "assets/transfer_use_right", lambda c: _build(
        TransferUseRight, asset_id=_asset_id(c, asset), to=dest))


@assets_app.command("transfer-share")
@handle_errors
def as_transfer_share(sender: str, asset: str, to: str, bps: int,
                      node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """Income-share holder SENDER transfers BPS basis points of ASSET's income to TO."""
    from sharechain.modules.assets.types import TransferIncomeShare

    dest = _addr(to, keyring)
    _send(sender, keyring, node, "assets/transfer_income_share", lambda c: _build(
        TransferIncomeShare, asset_id=_asset_id(c, asset), to=dest, bps=bps))


def _simple(name: str, mtype: str, cls_attr: str, help_text: str) -> None:
    """A command ``SENDER ASSET`` sending a message whose only field is the asset id."""

    @assets_app.command(name, help=help_text)
    @handle_errors
    def cmd(sender: str, asset: str, node: str | None = NodeOpt,
            keyring: Path | None = KeyringOpt) -> None:
        from sharechain.modules.assets import types

        cls = getattr(types, cls_attr)
        _send(sender, keyring, node, mtype, lambda c: _build(cls, asset_id=_asset_id(c, asset)))


_simple("revoke-use", "assets/revoke_use_right", "RevokeUseRight",
        "Revoke ASSET's use right (owner, operator or holder; not while a rental locks it).")
_simple("pledge", "assets/pledge", "PledgeAsset",
        "Owner SENDER locks the class's pledge, making ASSET a rentable smart shared asset.")
_simple("confirm", "assets/confirm", "ConfirmAsset",
        "Consumer SENDER, a past user, confirms ASSET is real and safe.")


def _freeze_cmd(name: str, mtype: str, cls_attr: str, help_text: str) -> None:
    @assets_app.command(name, help=help_text)
    @handle_errors
    def cmd(sender: str, asset: str, reason: str = typer.Option(..., help="Why."),
            node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
        from sharechain.modules.assets import types

        cls = getattr(types, cls_attr)
        _send(sender, keyring, node, mtype, lambda c: _build(
            cls, asset_id=_asset_id(c, asset), reason=reason))


_freeze_cmd("freeze", "assets/freeze", "Freeze", "Regulator SENDER freezes ASSET.")
_freeze_cmd("unfreeze", "assets/unfreeze", "Unfreeze", "Regulator SENDER unfreezes ASSET.")


@assets_app.command("report")
@handle_errors
def as_report(sender: str, asset: str, kind: str = typer.Option(..., help="fake or unsafe"),
              evidence_cid: str = "", node: str | None = NodeOpt,
              keyring: Path | None = KeyringOpt) -> None:
    """Consumer SENDER reports ASSET as fake or unsafe."""
    from sharechain.modules.assets.types import ReportAsset

    _send(sender, keyring, node, "assets/report", lambda c: _build(
        ReportAsset, asset_id=_asset_id(c, asset), kind=kind, evidence_cid=evidence_cid))


@assets_app.command("resolve-report")
@handle_errors
def as_resolve(sender: str, asset: str, seq: int,
               upheld: bool = typer.Option(..., "--upheld/--rejected"),
               compensation: int = typer.Option(0, help="Paid to the reporter from the pledge."),
               note: str = "", node: str | None = NodeOpt,
               keyring: Path | None = KeyringOpt) -> None:
    """Regulator SENDER rules on report SEQ of ASSET."""
    from sharechain.modules.assets.types import ResolveReport

    _send(sender, keyring, node, "assets/resolve_report", lambda c: _build(
        ResolveReport, asset_id=_asset_id(c, asset), seq=seq, upheld=upheld,
        compensation=compensation, note=note))


@assets_app.command("show")
@handle_errors
def as_show(asset: str, node: str | None = NodeOpt) -> None:
    """An asset (by code or hex id): rights, state and attestations."""
    with _client(node) as c:
        _print(c.query("assets", "asset", id=_asset_id(c, asset).hex(),
                       now_ms=int(time.time() * 1000)))


@assets_app.command("classes")
@handle_errors
def as_classes(node: str | None = NodeOpt) -> None:
    """Asset classes and their policies."""
    with _client(node) as c:
        _print(c.query("assets", "classes"))


@assets_app.command("owned-by")
@handle_errors
def as_owned(owner: str, node: str | None = NodeOpt,
             keyring: Path | None = KeyringOpt) -> None:
    """Assets owned by OWNER."""
    from sharechain.crypto import bech32_address

    with _client(node) as c:
        _print(c.query("assets", "by_owner", owner=bech32_address(_addr(owner, keyring))))


@assets_app.command("reports")
@handle_errors
def as_reports(asset: str, node: str | None = NodeOpt) -> None:
    """Consumer reports on ASSET."""
    with _client(node) as c:
        _print(c.query("assets", "reports", id=_asset_id(c, asset).hex()))


# ==================================================================== iot

@iot_app.command("bind")
@handle_errors
def iot_bind(sender: str, device: str, asset: str, node: str | None = NodeOpt,
             keyring: Path | None = KeyringOpt) -> None:
    """Owner/operator SENDER binds the device whose key is named DEVICE to ASSET."""
    from sharechain.client.iot import bind_msg

    key = _key(sender, keyring)
    dev = _key(device, keyring)
    _send(sender, keyring, node, "iot/bind_device",
          lambda c: bind_msg(dev, c.chain_id, _asset_id(c, asset), key.address))


@iot_app.command("unbind")
@handle_errors
def iot_unbind(sender: str, device: str, node: str | None = NodeOpt,
               keyring: Path | None = KeyringOpt) -> None:
    """Owner/operator SENDER unbinds DEVICE (key name or address) from its asset."""
    from sharechain.modules.iot.types import UnbindDevice

    dev = _addr(device, keyring)
    _send(sender, keyring, node, "iot/unbind_device", lambda c: _build(UnbindDevice, device=dev))


@iot_app.command("report")
@handle_errors
def iot_report(gateway: str, device: str, asset: str, kind: str,
               counter: int = typer.Option(..., help="The device's next counter."),
               reading: int | None = None, geohash: str | None = None,
               percent: int | None = None, damage: bool | None = None,
               note_cid: str | None = None, rental_id: str | None = typer.Option(
                   None, help="Rental id (hex) for unlock/lock."),
               node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """Sign a KIND report with DEVICE's key and submit it through GATEWAY (a simulator)."""
    from sharechain.client.iot import sign_report

    dev = _key(device, keyring)
    payload = {"reading": reading, "geohash": geohash, "percent": percent, "damage": damage,
               "note_cid": note_cid,
               "rental_id": None if rental_id is None else bytes.fromhex(rental_id)}
    _send(gateway, keyring, node, "iot/submit_reports", lambda c: {"reports": [sign_report(
        dev, c.chain_id, _asset_id(c, asset), counter, int(time.time() * 1000), kind,
        **payload)]})


def _read_leaves(path: Path) -> list[bytes]:
    """One reading per line of JSON; the leaf is the reading's canonical CBOR."""
    from sharechain.client.iot import reading_leaf

    try:
        return [reading_leaf(json.loads(line)) for line in path.read_text().splitlines()
                if line.strip()]
    except (OSError, ValueError) as exc:
        raise ShareChainError("invalid_readings", f"cannot read {path}: {exc}") from None


@iot_app.command("anchor")
@handle_errors
def iot_anchor(gateway: str, readings: Path, start_ms: int, end_ms: int,
               device: str | None = None, node: str | None = NodeOpt,
               keyring: Path | None = KeyringOpt) -> None:
    """Anchor the Merkle root of READINGS (a JSON-lines file) for the period given."""
    from sharechain.client.iot import build_anchor
    from sharechain.modules.iot.types import AnchorReadings

    root, count = build_anchor(_read_leaves(readings))
    dev = b"" if device is None else _addr(device, keyring)
    _send(gateway, keyring, node, "iot/anchor", lambda c: _build(
        AnchorReadings, root=root, count=count, period_start_ms=start_ms,
        period_end_ms=end_ms, device=dev))


@iot_app.command("prove")
@handle_errors
def iot_prove(readings: Path, index: int, anchor_id: int,
              node: str | None = NodeOpt) -> None:
    """Prove reading INDEX of READINGS against on-chain anchor ANCHOR_ID."""
    from sharechain.client.iot import proof_for, proof_to_json, verify_reading_on_chain

    leaves = _read_leaves(readings)
    if not 0 <= index < len(leaves):
        raise ShareChainError("invalid_index", f"the file holds {len(leaves)} readings")
    proof = proof_for(leaves, index)
    with _client(node) as c:
        ok = verify_reading_on_chain(c, anchor_id, leaves[index], proof)
    _print({"anchor_id": anchor_id, "index": index, "verified": ok,
            "proof": proof_to_json(proof)})
    if not ok:
        raise typer.Exit(1)


@iot_app.command("device")
@handle_errors
def iot_device(device: str, node: str | None = NodeOpt,
               keyring: Path | None = KeyringOpt) -> None:
    """A device record and its latest report of every kind."""
    from sharechain.crypto import bech32_address

    with _client(node) as c:
        a = bech32_address(_addr(device, keyring))
        _print({"device": c.query("iot", "device", id=a),
                "reports": c.query("iot", "last_reports", device=a)["reports"]})
