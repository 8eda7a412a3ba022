"""Byzantine validators as explicit seams on a node's outbound messages.

A simulated node runs the real engine; what leaves it goes through its :class:`Behaviour`.
An honest node broadcasts what its engine produced. A Byzantine node's behaviour may drop,
rewrite, duplicate or add messages, signing whatever it likes with the node's own key —
the same power a real attacker has. Nothing in the engine is patched.

* :class:`Equivocator` — as proposer, signs a second, different (valid) block for the same
  height and round and sends one proposal to some peers and the other to the rest.
* :class:`DoubleVoter` — for every vote it also signs a conflicting one (another block, or
  nil), with its clock an hour fast, and sends each peer one, the other or both.
* :class:`Silent` — its engine runs, nothing leaves the node.
* :class:`Garbage` — mixes random bytes, valid CBOR of the wrong shape, truncated messages,
  bad signatures, far-future heights and rounds, forged commits and invalid (but properly
  signed) blocks into its traffic.
* :class:`Colluder` — with more than a third of the power between them, colluders fork the
  chain: when one proposes, they all show block A with matching votes to one half of the
  honest nodes and block B to the other. Used to show the invariant checker can fail.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from sharechain.chain.types import VOTE_PRECOMMIT, VOTE_PREVOTE, Block, Commit, CommitSig
from sharechain.consensus.bft.messages import (
    NIL,
    Decision,
    Message,
    Proposal,
    SyncRequest,
    Vote,
    encode_message,
)
from sharechain.crypto import PrivateKey
from sharechain.encoding import encode
from sharechain.sim.fakechain import FakeChain

CLOCK_LIE_MS = 3_600_000

# (destination node index or None for every peer, wire bytes, the message if well formed)
Outgoing = tuple[int | None, bytes, Message | None]


@dataclass(slots=True)
class ByzContext:
    """What a behaviour may use: the node's own key and chain, its peers, its own randomness."""

    idx: int
    key: PrivateKey
    chain_id: str
    peers: tuple[int, ...]
    rng: random.Random
    chain: FakeChain


class Behaviour(Protocol):
    name: str
    honest: bool

    def outbound(self, ctx: ByzContext, msg: Message, data: bytes) -> list[Outgoing]: ...


def sign_vote(ctx: ByzContext, v: Vote, block_hash: bytes, time_ms: int) -> Vote:
    u = Vote(v.type, v.height, v.round, block_hash, time_ms, ctx.key.address, b"")
    return Vote(u.type, u.height, u.round, u.block_hash, u.time_ms, u.validator,
                ctx.key.sign(u.sign_bytes(ctx.chain_id)))


def sign_proposal(ctx: ByzContext, p: Proposal, block: Block) -> Proposal:
    u = Proposal(p.height, p.round, p.pol_round, block, p.time_ms, p.last_commit, b"")
    return Proposal(u.height, u.round, u.pol_round, block, u.time_ms, u.last_commit,
                    ctx.key.sign(u.sign_bytes(ctx.chain_id, block.hash())))


def _out(dst: int | None, m: Message) -> Outgoing:
    return (dst, encode_message(m), m)


class Honest:
    name = "honest"
    honest = True

    def outbound(self, ctx: ByzContext, msg: Message, data: bytes) -> list[Outgoing]:
        return [(None, data, msg)]


class Silent:
    name = "silent"
    honest = False

    def outbound(self, ctx: ByzContext, msg: Message, data: bytes) -> list[Outgoing]:
        return []


class Equivocator:
    name = "equivocate"
    honest = False

    def outbound(self, ctx: ByzContext, msg: Message, data: bytes) -> list[Outgoing]:
        if not isinstance(msg, Proposal) or msg.pol_round != -1:
            return [(None, data, msg)]
        hd = msg.block.header
        alt = ctx.chain.propose_block(hd.height, hd.time_ms, hd.proposer, variant=1)
        other = sign_proposal(ctx, msg, alt)
        out: list[Outgoing] = []
        for peer in ctx.peers:
            out.append((peer, data, msg) if ctx.rng.random() < 0.5 else _out(peer, other))
        return out


class DoubleVoter:
    name = "doublevote"
    honest = False

    def outbound(self, ctx: ByzContext, msg: Message, data: bytes) -> list[Outgoing]:
        if not isinstance(msg, Vote):
            return [(None, data, msg)]
        other_hash = NIL if msg.block_hash != NIL else ctx.rng.randbytes(32)
        liar = msg.time_ms + CLOCK_LIE_MS
        conflicting = sign_vote(ctx, msg, other_hash, liar)
        # Same block, a lying clock: not evidence, but it must not move block time.
        same = sign_vote(ctx, msg, msg.block_hash, liar) if msg.block_hash != NIL else msg
        out: list[Outgoing] = []
        for peer in ctx.peers:
            x = ctx.rng.random()
            if x < 0.3:
                out += [_out(peer, conflicting), (peer, data, msg)]
            elif x < 0.65:
                out.append(_out(peer, conflicting))
            else:
                out.append(_out(peer, same))
        return out


class Garbage:
    name = "garbage"
    honest = False

    def outbound(self, ctx: ByzContext, msg: Message, data: bytes) -> list[Outgoing]:
        rng = ctx.rng
        out: list[Outgoing] = []
        if isinstance(msg, Proposal) and msg.pol_round == -1:
            hd = msg.block.header
            bad = ctx.chain.make_block(hd.height, hd.time_ms, hd.proposer, msg.block.txs,
                                       state_root=rng.randbytes(32))
            out.append(_out(None, sign_proposal(ctx, msg, bad)))
        elif rng.random() < 0.5:
            out.append((None, data, msg))
        for _ in range(rng.randint(1, 3)):
            out.append((None, self._junk(ctx, msg, data), None))
        return out

    def _junk(self, ctx: ByzContext, msg: Message, data: bytes) -> bytes:
        rng = ctx.rng
        kind = rng.randrange(8)
        if kind == 0:
            return rng.randbytes(rng.randint(0, 300))
        if kind == 1:
            return encode({"kind": "vote", "x": rng.randint(0, 9)})
        if kind == 2:
            return data[: rng.randint(0, max(0, len(data) - 1))]
        if kind == 3:
            return encode(["sync", {"height": rng.randint(1, 2**40)}])
        if isinstance(msg, Vote):
            if kind == 4:  # far-future height, properly signed
                v = Vote(msg.type, msg.height + rng.randint(3, 1000), msg.round, msg.block_hash,
                         msg.time_ms, msg.validator, b"")
                return encode_message(sign_vote(ctx, v, v.block_hash, v.time_ms))
            if kind == 5:  # absurd round, properly signed
                v = Vote(VOTE_PREVOTE, msg.height, rng.randint(10, 2**31 - 1), NIL,
                         msg.time_ms, msg.validator, b"")
                return encode_message(sign_vote(ctx, v, NIL, v.time_ms))
            if kind == 6:  # a bad signature
                bad = Vote(msg.type, msg.height, msg.round, rng.randbytes(32), msg.time_ms,
                           msg.validator, rng.randbytes(64))
                return encode_message(bad)
        if kind == 7:  # a decision whose commit is forged
            h = ctx.chain.height() + 1
            block = ctx.chain.propose_block(h, ctx.chain.last_block_time_ms() + 1,
                                            ctx.key.address)
            fake = Commit(h, 0, block.hash(),
                          (CommitSig(ctx.key.address, 1, rng.randbytes(64)),))
            return encode_message(Decision(block, fake))
        return encode_message(SyncRequest(rng.randint(1, 10), rng.randint(0, 2**40)))


@dataclass(slots=True)
class Conspiracy:
    """Colluders' shared plan: which honest node sees which side of each fork."""

    members: list[ByzContext] = field(default_factory=list)
    side_a: frozenset[int] = frozenset()
    forked: set[tuple[int, int]] = field(default_factory=set)


class Colluder:
    name = "collude"
    honest = False

    def __init__(self, plot: Conspiracy) -> None:
        self.plot = plot

    def outbound(self, ctx: ByzContext, msg: Message, data: bytes) -> list[Outgoing]:
        if isinstance(msg, Vote):
            if (msg.height, msg.round) in self.plot.forked:
                return []
            # Vote nil on everything else: honest proposals fail, rounds move on, and
            # sooner or later a colluder proposes.
            return [_out(None, sign_vote(ctx, msg, NIL, msg.time_ms))]
        if not isinstance(msg, Proposal):
            return []
        key = (msg.height, msg.round)
        if key in self.plot.forked:
            return []
        self.plot.forked.add(key)
        hd = msg.block.header
        # Two fresh blocks (even if the engine re-proposed a locked one): no honest node
        # is locked, since honest proposals never got the colluders' prevotes.
        fresh = Proposal(msg.height, msg.round, -1, msg.block, msg.time_ms, msg.last_commit,
                         b"")
        sides = tuple(sign_proposal(ctx, fresh, ctx.chain.propose_block(
            hd.height, hd.time_ms, ctx.key.address, variant=v)) for v in (1, 2))
        members = {c.idx for c in self.plot.members}
        out: list[Outgoing] = []
        for peer in ctx.peers:
            if peer in members:
                continue
            p = sides[0] if peer in self.plot.side_a else sides[1]
            out.append(_out(peer, p))
            h = p.block.hash()
            for member_ctx in self.plot.members:
                for vt in (VOTE_PREVOTE, VOTE_PRECOMMIT):
                    tmpl = Vote(vt, msg.height, msg.round, h, hd.time_ms + 1,
                                member_ctx.key.address, b"")
                    out.append(_out(peer, sign_vote(member_ctx, tmpl, h, hd.time_ms + 1)))
        return out


BEHAVIOURS: dict[str, type] = {"equivocate": Equivocator, "doublevote": DoubleVoter,
                               "silent": Silent, "garbage": Garbage}
