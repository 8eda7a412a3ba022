"""credit message handlers: consent, bureau reports and the regulator's decisions."""

from __future__ import annotations

from typing import Any

from sharechain.app.framework import Context
from sharechain.crypto import bech32_address
from sharechain.errors import ShareChainError
from sharechain.modules.credit import keys
from sharechain.modules.credit.keeper import CreditKeeper
from sharechain.modules.credit.types import (
    AS_SUBJECT,
    CONSENT_NOT_FOUND,
    CONSENT_REQUIRED,
    FRAUD_UPHELD,
    INVALID_PERIOD,
    SELF_CONSENT,
    AddBlacklist,
    BureauReport,
    Consent,
    GrantConsent,
    LiftBlacklist,
    RecordFraud,
    RevokeConsent,
    SubmitReport,
)
from sharechain.modules.identity.types import BUREAU, REGULATOR


def _period(ctx: Context, until_ms: int, longest_ms: int, what: str) -> None:
    if not ctx.time_ms < until_ms <= ctx.time_ms + longest_ms:
        raise ShareChainError(INVALID_PERIOD, f"{what} must lie after the block time and at "
                              f"most {longest_ms} ms ahead")


def make_handlers(k: CreditKeeper) -> dict[str, Any]:
    def grant_consent(ctx: Context, msg: GrantConsent) -> None:
        if msg.bureau == ctx.sender:
            raise ShareChainError(SELF_CONSENT, "a bureau can not consent to itself")
        k.roles.require_role(ctx, msg.bureau, BUREAU)
        _period(ctx, msg.until_ms, k.params(ctx.state).consent_ms_max, "until_ms")
        ctx.set_record(keys.consent_key(ctx.sender, msg.bureau),
                       Consent(ctx.sender, msg.bureau, ctx.time_ms, msg.until_ms))
        k.tick(ctx)
        ctx.emit("credit_consent_granted", subject=ctx.sender, bureau=msg.bureau,
                 until_ms=msg.until_ms)

    def revoke_consent(ctx: Context, msg: RevokeConsent) -> None:
        """Revoking ends the consent and deletes the bureau's report on the sender."""
        if k.consent(ctx.state, ctx.sender, msg.bureau) is None:
            raise ShareChainError(CONSENT_NOT_FOUND, f"no consent to bureau "
                                  f"{bech32_address(msg.bureau)}")
        ctx.delete(keys.consent_key(ctx.sender, msg.bureau))
        ctx.delete(keys.report_key(ctx.sender, msg.bureau))
        k.tick(ctx)
        ctx.emit("credit_consent_revoked", subject=ctx.sender, bureau=msg.bureau)

    def submit_report(ctx: Context, msg: SubmitReport) -> None:
        k.roles.require_role(ctx, ctx.sender, BUREAU)
        if not k.consent_active(ctx.state, msg.subject, ctx.sender, ctx.time_ms):
            raise ShareChainError(CONSENT_REQUIRED, f"{bech32_address(msg.subject)} has no "
                                  "active consent for this bureau")
        p = k.params(ctx.state)
        if msg.valid_until_ms - msg.valid_from_ms > p.report_validity_ms_max:
            raise ShareChainError(INVALID_PERIOD, "a report is valid for at most "
                                  f"{p.report_validity_ms_max} ms")
        if msg.valid_until_ms <= ctx.time_ms:
            raise ShareChainError(INVALID_PERIOD, "the report's validity is already over")
        r = BureauReport(msg.subject, ctx.sender, msg.band, msg.valid_from_ms,
                         msg.valid_until_ms, msg.report_cid, ctx.time_ms, ctx.tx_hash)
        ctx.set_record(keys.report_key(msg.subject, ctx.sender), r)
        k.tick(ctx)
        ctx.emit("credit_report_submitted", subject=msg.subject, bureau=ctx.sender,
                 band=msg.band, valid_from_ms=msg.valid_from_ms,
                 valid_until_ms=msg.valid_until_ms)

    def blacklist(ctx: Context, msg: AddBlacklist) -> None:
        k.roles.require_role(ctx, ctx.sender, REGULATOR)
        _period(ctx, msg.expires_ms, k.params(ctx.state).blacklist_ms_max, "expires_ms")
        k.add_blacklist(ctx, msg.subject, msg.reason, msg.evidence, msg.expires_ms, b"",
                        ctx.sender)

    def lift_blacklist(ctx: Context, msg: LiftBlacklist) -> None:
        k.roles.require_role(ctx, ctx.sender, REGULATOR)
        k.lift_blacklist(ctx, msg.entry_id, ctx.sender, msg.reason)

    def record_fraud(ctx: Context, msg: RecordFraud) -> None:
        k.roles.require_role(ctx, ctx.sender, REGULATOR)
        k.record(ctx, msg.subject, FRAUD_UPHELD, AS_SUBJECT, b"", msg.evidence[0])

    return {"grant_consent": grant_consent, "revoke_consent": revoke_consent,
            "submit_report": submit_report, "blacklist": blacklist,
            "lift_blacklist": lift_blacklist, "record_fraud": record_fraud}
