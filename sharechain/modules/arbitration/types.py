"""arbitration records, messages, parameters and error codes.

Amounts are integer token units, durations integer milliseconds of block time, shares
integer basis points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sharechain.crypto import sha256
from sharechain.modules.identity.common import BPS_DENOM, check_cid_v1

DISPUTE_ID_BYTES: Final = 8
COMMITMENT_BYTES: Final = 32
SALT_BYTES_MIN: Final = 16
SALT_BYTES_MAX: Final = 64
TARGET_BYTES_MAX: Final = 64
AMOUNT_MAX: Final = 10**18
DURATION_MS_MAX: Final = 366 * 86_400_000
PANEL_SIZE_MAX: Final = 25
EVIDENCE_PER_PARTY_MAX: Final = 8
ROUNDS_MAX: Final = 2          # the first panel and one appeal

# ---------------------------------------------------------------- what can be disputed
CLAIM: Final = "claim"         # a rental damage claim (target: claim id)
REPORT: Final = "report"       # a fake/unsafe asset report (target: asset id, seq: report seq)
BLACKLIST: Final = "blacklist"  # a regulator's blacklist entry (seq: entry id)
KINDS: Final = (CLAIM, REPORT, BLACKLIST)

# Votes and outcomes are about the disputed thing: does the claim / report / entry stand?
UPHOLD: Final = "uphold"
REJECT: Final = "reject"
VOTES: Final = (UPHOLD, REJECT)
UNDECIDED: Final = "undecided"  # a tie, or no one revealed
CANCELLED: Final = "cancelled"  # no panel could be drawn

# ---------------------------------------------------------------- error codes
DISPUTE_NOT_FOUND: Final = "dispute_not_found"
TARGET_NOT_FOUND: Final = "dispute_target_not_found"
NOT_DISPUTABLE: Final = "not_disputable"
ALREADY_DISPUTED: Final = "already_disputed"
DISPUTE_WINDOW_CLOSED: Final = "dispute_window_closed"
NOT_A_PARTY: Final = "not_dispute_party"
INSUFFICIENT_BOND: Final = "insufficient_bond"
INVALID_AMOUNT: Final = "invalid_amount"
NOT_ENOUGH_ARBITRATORS: Final = "not_enough_arbitrators"
RESPOND_WINDOW_CLOSED: Final = "respond_window_closed"
ALREADY_RESPONDED: Final = "already_responded"
TOO_MUCH_EVIDENCE: Final = "too_much_evidence"
VOTING_NOT_OPEN: Final = "voting_not_open"
ARBITRATOR_IS_PARTY: Final = "arbitrator_is_party"
NOT_ON_PANEL: Final = "not_on_panel"
COMMIT_CLOSED: Final = "commit_closed"
ALREADY_COMMITTED: Final = "already_committed"
REVEAL_NOT_OPEN: Final = "reveal_not_open"
REVEAL_CLOSED: Final = "reveal_closed"
NOT_COMMITTED: Final = "not_committed"
ALREADY_REVEALED: Final = "already_revealed"
REVEAL_MISMATCH: Final = "reveal_mismatch"
APPEAL_NOT_ALLOWED: Final = "appeal_not_allowed"
APPEAL_CLOSED: Final = "appeal_closed"
ARBITRATOR_SEATED: Final = "arbitrator_seated"
STAKE_INSUFFICIENT: Final = "stake_insufficient"


def vote_commitment(dispute_id: bytes, round_index: int, arbitrator: bytes, vote: str,
                    salt: bytes) -> bytes:
    """What an arbitrator commits to: sha256 of the dispute, round, their address, the vote
    and a secret salt (revealed later)."""
    return sha256(b"sharechain/arbitration/vote\x00" + dispute_id + bytes((round_index,))
                  + arbitrator + vote.encode() + b"\x00" + salt)


def _check_id(value: bytes) -> None:
    if len(value) != DISPUTE_ID_BYTES:
        raise ValueError(f"dispute_id must be {DISPUTE_ID_BYTES} bytes")


def _check_amount(value: int, what: str, allow_zero: bool = False) -> None:
    if not (0 if allow_zero else 1) <= value <= AMOUNT_MAX:
        raise ValueError(f"{what} must be {0 if allow_zero else 1} to {AMOUNT_MAX}")


# ---------------------------------------------------------------- parameters

@dataclass(frozen=True, slots=True)
class Params:
    panel_size: int = 3                   # odd
    appeal_panel_size: int = 5            # odd, larger than panel_size
    draw_delay_blocks: int = 2            # the panel is drawn this many blocks after the
                                          # respondent's bond, from the previous block's hash
    respond_window_ms: int = 3 * 86_400_000
    commit_window_ms: int = 2 * 86_400_000
    reveal_window_ms: int = 86_400_000
    appeal_window_ms: int = 2 * 86_400_000
    seat_fee: int = 1_000                 # per panel seat, paid by the round's loser
    bond_bps: int = 1_000                 # bond = max(panel fees, amount × bps / 10000)
    appeal_bond_bps: int = 2_000
    slash_bps: int = 1_000                # of the stake, for a panelist who does not reveal
    min_stake: int = 100_000              # an arbitrator is drawn only with this much staked
    claim_dispute_window_ms: int = 3 * 86_400_000    # after the claim is filed
    report_dispute_window_ms: int = 14 * 86_400_000  # after the report is made
    blacklist_dispute_window_ms: int = 30 * 86_400_000  # after the entry is added
    blacklist_dispute_amount: int = 100_000  # the amount a blacklist dispute's bonds scale with
    fraud_blacklist_ms: int = 180 * 86_400_000  # an upheld "fake" report blacklists the owner

    def __post_init__(self) -> None:
        for name in ("panel_size", "appeal_panel_size"):
            v = getattr(self, name)
            if not 1 <= v <= PANEL_SIZE_MAX or v % 2 == 0:
                raise ValueError(f"{name} must be odd, 1 to {PANEL_SIZE_MAX}")
        if self.appeal_panel_size <= self.panel_size:
            raise ValueError("appeal_panel_size must be larger than panel_size")
        if not 1 <= self.draw_delay_blocks <= 1_000:
            raise ValueError("draw_delay_blocks must be 1 to 1000")
        for name in ("respond_window_ms", "commit_window_ms", "reveal_window_ms",
                     "appeal_window_ms", "claim_dispute_window_ms", "report_dispute_window_ms",
                     "blacklist_dispute_window_ms", "fraud_blacklist_ms"):
            if not 1 <= getattr(self, name) <= DURATION_MS_MAX:
                raise ValueError(f"{name} must be 1 to {DURATION_MS_MAX}")
        for name in ("bond_bps", "appeal_bond_bps", "slash_bps"):
            if not 0 <= getattr(self, name) <= BPS_DENOM:
                raise ValueError(f"{name} must be 0 to {BPS_DENOM}")
        for name in ("seat_fee", "min_stake", "blacklist_dispute_amount"):
            _check_amount(getattr(self, name), name)

    def panel_fee(self, round_index: int) -> int:
        return self.seat_fee * self.size_of(round_index)

    def size_of(self, round_index: int) -> int:
        return self.panel_size if round_index == 0 else self.appeal_panel_size

    def bond(self, amount: int, round_index: int) -> int:
        """Each side's bond for a round: proportional to the amount in dispute (never to
        what a party can afford), and at least the round's panel fees."""
        bps = self.bond_bps if round_index == 0 else self.appeal_bond_bps
        return max(self.panel_fee(round_index), amount * bps // BPS_DENOM)


# ---------------------------------------------------------------- records

@dataclass(frozen=True, slots=True)
class Evidence:
    by: bytes
    cid: str
    round: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class Round:
    index: int                  # 0: first panel, 1: appeal
    opener: bytes               # who opened this round (the dispute's opener, or the appellant)
    respondent: bytes
    bond: int                   # each side's bond
    opened_ms: int
    respond_by_ms: int
    responded: bool = False
    draw_height: int = 0        # set when the respondent posts its bond
    panel: tuple[bytes, ...] = ()
    seed: bytes = b""           # the draw seed (from the previous block's hash)
    commit_by_ms: int = 0
    reveal_by_ms: int = 0
    commits: int = 0
    reveals: int = 0
    uphold_votes: int = 0
    reject_votes: int = 0
    outcome: str = ""           # uphold | reject | undecided | cancelled, or "" while open
    by_default: bool = False    # the respondent never posted its bond
    fees_paid: int = 0
    slashed: int = 0
    decided_ms: int = 0


@dataclass(frozen=True, slots=True)
class Dispute:
    id: bytes
    kind: str                   # claim | report | blacklist
    target: bytes               # claim id / asset id / b""
    seq: int                    # report seq / blacklist entry id / 0
    amount: int                 # the amount in dispute (bonds scale with it)
    upholder: bytes             # the side saying the claim/report/entry stands
    rejecter: bytes             # the side saying it does not
    involved: tuple[bytes, ...]  # everyone who may not sit on the panel (sorted)
    platform: bytes             # the platform where it arose (b"" for none)
    opener: bytes
    state: str
    round: int                  # index of the current (or last) round
    rounds: tuple[Round, ...]
    evidence: tuple[Evidence, ...]
    opened_ms: int
    due_ms: int = 0             # pending time deadline (respond, tally, appeal); 0: none
    outcome: str = ""           # the final outcome once closed
    closed_ms: int = 0
    resume_timeout_ms: int = 0  # a claim's own timeout, restored if there is no ruling
    execution: str = ""         # what executing the ruling did (or the error it met)

    @property
    def current(self) -> Round:
        return self.rounds[self.round]

    def other_party(self, who: bytes) -> bytes:
        return self.rejecter if who == self.upholder else self.upholder


@dataclass(frozen=True, slots=True)
class Vote:
    arbitrator: bytes
    commitment: bytes
    committed_ms: int
    vote: str = ""              # "" until revealed
    revealed_ms: int = 0


@dataclass(frozen=True, slots=True)
class Arbitrator:
    address: bytes
    stake: int                  # mirrors the bank escrow ``arbitration/stake/<addr>``
    seats: int = 0              # panels it sits on that have not been tallied
    served: int = 0             # panels tallied
    majority: int = 0           # ...in which it voted with the majority
    missed: int = 0             # ...in which it did not reveal (and was slashed)
    earned: int = 0
    slashed: int = 0


# ---------------------------------------------------------------- messages

@dataclass(frozen=True, slots=True)
class Stake:
    amount: int

    def __post_init__(self) -> None:
        _check_amount(self.amount, "amount")


@dataclass(frozen=True, slots=True)
class Unstake:
    amount: int

    def __post_init__(self) -> None:
        _check_amount(self.amount, "amount")


@dataclass(frozen=True, slots=True)
class OpenDispute:
    """Open a dispute with a bond of at least ``Params.bond(amount, 0)`` (only the required
    bond is locked). ``target``/``seq``: claim id / (asset id, report seq) / (b"", entry id).
    ``amount`` is the compensation sought, for reports only."""

    kind: str
    bond: int
    evidence_cid: str
    target: bytes = b""
    seq: int = 0
    amount: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        _check_amount(self.bond, "bond")
        check_cid_v1(self.evidence_cid, "evidence_cid")
        if len(self.target) > TARGET_BYTES_MAX:
            raise ValueError(f"target must be at most {TARGET_BYTES_MAX} bytes")
        if not 0 <= self.seq < 2**63:
            raise ValueError("seq must be 0 to 2**63-1")
        _check_amount(self.amount, "amount", allow_zero=True)


@dataclass(frozen=True, slots=True)
class Respond:
    """The other side posts its bond (same size), with optional evidence."""

    dispute_id: bytes
    bond: int
    evidence_cid: str = ""

    def __post_init__(self) -> None:
        _check_id(self.dispute_id)
        _check_amount(self.bond, "bond")
        check_cid_v1(self.evidence_cid, "evidence_cid", allow_empty=True)


@dataclass(frozen=True, slots=True)
class AddEvidence:
    dispute_id: bytes
    evidence_cid: str

    def __post_init__(self) -> None:
        _check_id(self.dispute_id)
        check_cid_v1(self.evidence_cid, "evidence_cid")


@dataclass(frozen=True, slots=True)
class CommitVote:
    dispute_id: bytes
    commitment: bytes

    def __post_init__(self) -> None:
        _check_id(self.dispute_id)
        if len(self.commitment) != COMMITMENT_BYTES:
            raise ValueError(f"commitment must be {COMMITMENT_BYTES} bytes")


@dataclass(frozen=True, slots=True)
class RevealVote:
    dispute_id: bytes
    vote: str
    salt: bytes

    def __post_init__(self) -> None:
        _check_id(self.dispute_id)
        if self.vote not in VOTES:
            raise ValueError(f"vote must be one of {', '.join(VOTES)}")
        if not SALT_BYTES_MIN <= len(self.salt) <= SALT_BYTES_MAX:
            raise ValueError(f"salt must be {SALT_BYTES_MIN} to {SALT_BYTES_MAX} bytes")


@dataclass(frozen=True, slots=True)
class Appeal:
    """The first round's loser asks for a larger panel, posting the (larger) appeal bond."""

    dispute_id: bytes
    bond: int
    evidence_cid: str = ""

    def __post_init__(self) -> None:
        _check_id(self.dispute_id)
        _check_amount(self.bond, "bond")
        check_cid_v1(self.evidence_cid, "evidence_cid", allow_empty=True)
