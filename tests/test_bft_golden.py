"""Golden transcripts of the BFT engine: inputs and the exact actions they must produce.

Each ``tests/golden/bft/*.txt`` file is replayed by :func:`replay`. Lines:

* ``validators v0 v1:2 ...`` (name[:power]), ``me v1`` — the setup, before any event;
* ``> EVENT`` — an input; ``< ACTION`` — one expected output, in order; ``#`` comments.

Events: ``start``; ``restart``; ``at MS`` (set the clock); ``proposal r=R block=B
[pol=P] [by=NAME]``; ``prevote|precommit NAME r=R block=B|nil [t=+MS]``; ``timeout KIND
r=R``; ``valid B`` / ``invalid B``; ``ready r=R block=B`` (the app built block B for us);
``committed`` (the chain stored the decided block: feeds StartHeight). A block name used
for the first time is built by the round's proposer (or ``by=``) on the current chain.

Set ``BFT_GOLDEN_UPDATE=1`` to rewrite the ``<`` lines from the engine's actual output
(then read the diff: that is the point of a golden file).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sharechain.chain.types import Block
from sharechain.consensus.bft.events import (
    Action,
    BlockValidated,
    Broadcast,
    CommitBlock,
    Event,
    LoadDecision,
    PersistWAL,
    ProposalBlockReady,
    ReportEvidence,
    RequestProposal,
    ResetWAL,
    ScheduleTimeout,
    StartHeight,
    TimeoutFired,
    ValidateBlock,
)
from sharechain.consensus.bft.messages import NIL, Decision, Proposal, SyncRequest, Vote
from sharechain.consensus.bft.wal import WalDecided, WalValid
from sharechain.sim.harness import GENESIS_MS, Harness

GOLDEN_DIR = Path(__file__).parent / "golden" / "bft"
FILES = sorted(GOLDEN_DIR.glob("*.txt"))


class Transcript:
    def __init__(self) -> None:
        self.h: Harness | None = None
        self.names: list[str] = []
        self.powers: list[int] = []
        self.me: str | None = None
        self.blocks: dict[str, Block] = {}
        self.labels: dict[bytes, str] = {}

    # ------------------------------------------------------------ setup

    def setup(self, line: str) -> None:
        word, *rest = line.split()
        if word == "validators":
            for item in rest:
                name, _, power = item.partition(":")
                self.names.append(name)
                self.powers.append(int(power or 1))
        elif word == "me":
            self.me = rest[0]
        else:
            raise ValueError(f"unknown setup line {line!r}")

    @property
    def harness(self) -> Harness:
        if self.h is None:
            self.h = Harness(self.names, self.powers, self.me)
        return self.h

    # ------------------------------------------------------------ events

    def event(self, line: str) -> list[Action]:
        h = self.harness
        word, *rest = line.split()
        args = dict(x.split("=", 1) for x in rest if "=" in x)
        plain = [x for x in rest if "=" not in x]
        if word == "start":
            return h.start(now=h.now, auto=False)
        if word == "restart":
            return h.restart(auto=False)
        if word == "at":
            h.now = int(plain[0])
            return []
        ev: Event
        if word == "proposal":
            r = int(args["r"])
            block = self.block(args["block"], args.get("by") or h.proposer(r))
            ev = h.proposal(r, block, int(args.get("pol", -1)), signer=args.get("by"))
        elif word in ("prevote", "precommit"):
            target = args["block"]
            bh = NIL if target == "nil" else self.block(target, plain[0]).hash()
            t = GENESIS_MS + int(args["t"]) if "t" in args else None
            ev = h.vote(plain[0], word, int(args["r"]), bh, t)
        elif word == "timeout":
            ev = TimeoutFired(plain[0], h.chain.height() + 1, int(args["r"]))
        elif word in ("valid", "invalid"):
            b = self.blocks[plain[0]]
            err = None if word == "valid" else "declared invalid by the transcript"
            ev = BlockValidated(b.header.height, b.hash(), err)
        elif word == "ready":
            r = int(args["r"])
            ev = ProposalBlockReady(h.chain.height() + 1, r, self.block(args["block"], h.me))
        elif word == "committed":
            c = h.chain
            decided = [a for a in h.log if isinstance(a, CommitBlock)][-1]
            c.commit_block(decided.block, decided.commit)
            ev = StartHeight(c.height() + 1, c.validator_set(), c.last_block_time_ms())
        else:
            raise ValueError(f"unknown event {line!r}")
        return h.step(ev)

    def block(self, label: str, proposer: str | None) -> Block:
        b = self.blocks.get(label)
        if b is None:
            assert proposer is not None
            b = self.harness.block(proposer, variant=len(self.blocks))
            self.blocks[label] = b
            self.labels[b.hash()] = label
        return b

    # ------------------------------------------------------------ rendering

    def name(self, bh: bytes) -> str:
        if bh == NIL:
            return "nil"
        return self.labels.get(bh, "#" + bh[:3].hex())

    def who(self, addr: bytes) -> str:
        return self.harness.names.get(addr, "?")

    def render(self, a: Action) -> str:
        if isinstance(a, ScheduleTimeout):
            return f"schedule {a.kind} h={a.height} r={a.round} in={a.delay_ms}"
        if isinstance(a, RequestProposal):
            return f"request-block h={a.height} r={a.round} time=+{a.time_ms - GENESIS_MS}"
        if isinstance(a, ValidateBlock):
            return f"validate h={a.height} {self.name(a.block_hash)}"
        if isinstance(a, PersistWAL):
            return "wal " + self.msg(a.record)
        if isinstance(a, Broadcast):
            return ("pass-on " if a.forward else "send ") + self.msg(a.msg)
        if isinstance(a, ResetWAL):
            return "wal-reset " + " ".join(self.msg(r) for r in a.records)
        if isinstance(a, CommitBlock):
            sigs = ",".join(self.who(s.validator) for s in a.commit.sigs)
            return (f"commit h={a.block.header.height} {self.name(a.block.hash())} "
                    f"r={a.commit.round} sigs={sigs}")
        if isinstance(a, ReportEvidence):
            x, y = a.evidence.vote_a, a.evidence.vote_b
            return (f"evidence {self.who(x.validator)} {x.kind} h={x.height} r={x.round} "
                    f"{self.name(x.block_hash)}/{self.name(y.block_hash)}")
        if isinstance(a, LoadDecision):
            return f"load-decision h={a.height}"
        raise AssertionError(f"unrendered action {a!r}")

    def msg(self, m: object) -> str:
        if isinstance(m, Vote):
            return (f"{m.kind} {self.who(m.validator)} h={m.height} r={m.round} "
                    f"{self.name(m.block_hash)} t=+{m.time_ms - GENESIS_MS}")
        if isinstance(m, Proposal):
            return (f"proposal h={m.height} r={m.round} pol={m.pol_round} "
                    f"{self.name(m.block.hash())} time=+{m.block.header.time_ms - GENESIS_MS}")
        if isinstance(m, WalDecided):
            block = "with-block" if m.block is not None else "commit-only"
            return f"decided h={m.height} {self.name(m.commit.block_hash)} {block}"
        if isinstance(m, WalValid):
            pol = ",".join(self.who(v.validator) for v in m.pol)
            return (f"valid h={m.height} r={m.proposal.round} "
                    f"{self.name(m.proposal.block.hash())} pol={pol}")
        if isinstance(m, Decision):
            return f"decision h={m.commit.height} {self.name(m.commit.block_hash)}"
        if isinstance(m, SyncRequest):
            return f"sync h={m.height}"
        raise AssertionError(f"unrendered message {m!r}")


def replay(path: Path) -> tuple[list[str], list[str]]:
    """(expected lines, actual lines) of a transcript; actual keeps inputs and comments."""
    t = Transcript()
    expected: list[str] = []
    actual: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("<"):
            expected.append(line)
            continue
        if not line or line.startswith("#"):
            actual.append(raw)
            expected.append(raw)
            continue
        if line.startswith(">"):
            actual.append(raw)
            expected.append(raw)
            actual.extend("< " + t.render(a) for a in t.event(line[1:].strip()))
        else:
            t.setup(line)
            actual.append(raw)
            expected.append(raw)
    return expected, actual


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden_transcript(path: Path) -> None:
    expected, actual = replay(path)
    if os.environ.get("BFT_GOLDEN_UPDATE"):
        path.write_text("\n".join(actual) + "\n")
        return
    assert actual == expected


def test_there_are_golden_transcripts() -> None:
    assert len(FILES) >= 4
