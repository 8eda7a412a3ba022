"""The consensus write-ahead log: everything this validator signed or must remember.

Theory of operation
-------------------
The engine never writes anything itself; it returns :class:`PersistWAL` and
:class:`ResetWAL` actions, and the driver performs them with :meth:`Wal.append_sync` (write,
flush, fsync) *before* it performs any later action of the same list — in particular before
it broadcasts the message the record holds. So a vote that left the node is always on disk,
and after a crash the recovered engine knows every vote and proposal it signed at its current
height and refuses to sign a different one for the same height, round and step.

Records (canonical CBOR, tagged like wire messages):

* a :class:`Proposal` or :class:`Vote` this node signed;
* :class:`WalValid` — a proposal this node saw reach a POL, with the POL's prevotes: its
  *valid value*, which it must be able to re-propose (with proof) after a restart, or
  validators locked on that value might never be released;
* :class:`WalDecided` — the decided block of a height with its commit and the validator set
  that signed it. Written before the block is handed to the chain (so a crash between the
  two re-commits the block on restart), and written again, without the block, as the first
  record of the fresh log each new height starts with (so block time for the next height
  can always be derived from the previous commit).

File format: an 8-byte magic, then frames ``u32 big-endian length | sha256(length ‖ payload)
| payload``. Recovery scans the frames; a torn final frame (cut short, or whose checksum
fails and which ends exactly at end of file, or a zero-filled tail) is what a crash during
the last append leaves and is truncated; any other damage raises :class:`WalCorruptError`
and the node refuses to start — it never guesses. A log is reset atomically (write a new
file, fsync, rename over the old one, fsync the directory).
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from sharechain.chain.types import Block, Commit, ValidatorSet
from sharechain.consensus.bft.messages import Proposal, Vote, decode_tagged, encode_tagged
from sharechain.crypto import sha256
from sharechain.errors import DecodeError, FatalError, ShareChainError

WAL_MAGIC = b"SCWAL01\n"
WAL_RECORD_BYTES_MAX = 8 * 1024 * 1024
WAL_BYTES_MAX = 1024 * 1024 * 1024
_LEN = struct.Struct(">I")
_HEADER_BYTES = _LEN.size + 32


@dataclass(frozen=True, slots=True)
class WalDecided:
    height: int
    block: Block | None       # dropped from the copy that opens the next height's log
    commit: Commit
    validators: ValidatorSet  # the set that signed ``commit``


@dataclass(frozen=True, slots=True)
class WalValid:
    """A proposal that reached a POL (q prevotes, also recorded) in its round."""

    proposal: Proposal
    pol: tuple[Vote, ...]

    @property
    def height(self) -> int:
        return self.proposal.height


WalRecord = Proposal | Vote | WalDecided | WalValid

_RECORD_CLASSES: dict[str, type] = {"proposal": Proposal, "vote": Vote, "decided": WalDecided,
                                    "valid": WalValid}
_RECORD_KINDS: dict[type, str] = {c: k for k, c in _RECORD_CLASSES.items()}


class WalError(ShareChainError):
    """The log cannot be used; the node must not start consensus on it."""


class WalCorruptError(WalError):
    def __init__(self, message: str) -> None:
        super().__init__("wal_corrupt", message)


def encode_record(rec: WalRecord) -> bytes:
    return encode_tagged(_RECORD_KINDS[type(rec)], rec)


def decode_record(payload: bytes) -> WalRecord:
    try:
        rec = decode_tagged(payload, _RECORD_CLASSES, WAL_RECORD_BYTES_MAX)
    except DecodeError as exc:
        raise WalCorruptError(f"a checksummed record does not decode: {exc.message}") from None
    return rec


def frame(payload: bytes) -> bytes:
    if not 0 < len(payload) <= WAL_RECORD_BYTES_MAX:
        raise WalError("wal_record_too_large",
                       f"WAL record of {len(payload)} bytes exceeds {WAL_RECORD_BYTES_MAX}")
    n = _LEN.pack(len(payload))
    return n + sha256(n + payload) + payload


def scan(data: bytes) -> tuple[list[bytes], int]:
    """Payloads of the good frames and the length of the good prefix (past the magic).

    Raises :class:`WalCorruptError` for damage that a torn final append cannot explain.
    """
    if data[: len(WAL_MAGIC)] != WAL_MAGIC:
        if len(data) < len(WAL_MAGIC) and WAL_MAGIC.startswith(data):
            return [], 0  # the magic itself was torn: an empty log
        raise WalCorruptError("not a ShareChain consensus WAL (bad magic)")
    payloads: list[bytes] = []
    pos = len(WAL_MAGIC)
    end = len(data)
    while pos < end:
        if end - pos < _HEADER_BYTES:
            break  # torn header
        n_bytes = data[pos: pos + _LEN.size]
        (n,) = _LEN.unpack(n_bytes)
        if n == 0 or n > WAL_RECORD_BYTES_MAX:
            if not any(data[pos:]):
                break  # a zero-filled tail after a crash
            raise WalCorruptError(f"bad record length {n} at offset {pos}")
        stop = pos + _HEADER_BYTES + n
        if stop > end:
            break  # torn payload
        payload = data[pos + _HEADER_BYTES: stop]
        if sha256(n_bytes + payload) != data[pos + _LEN.size: pos + _HEADER_BYTES]:
            if stop == end:
                break  # the final record was torn in place
            raise WalCorruptError(f"checksum mismatch in the record at offset {pos}")
        payloads.append(payload)
        pos = stop
    return payloads, pos


class Wal(Protocol):
    """What the driver needs from a log; :class:`FileWal` and :class:`MemoryWal` provide it."""

    def recover(self) -> list[WalRecord]: ...

    def append_sync(self, rec: WalRecord, data: bytes = b"") -> None: ...

    def reset(self, recs: tuple[WalRecord, ...]) -> None: ...


class MemoryWal:
    """A log in memory, for the simulator and tests, read back through the file format.

    Appends keep the records; :meth:`recover` frames and checksums them (plus any torn tail)
    exactly as :class:`FileWal` writes them, scans and decodes the bytes — so every restart
    goes through the real format, and nothing is encoded twice while nodes run.
    :meth:`tear` appends part of a frame, which is what a crash during an append leaves.
    """

    def __init__(self) -> None:
        self._records: list[tuple[WalRecord, bytes]] = []
        self._tail = b""

    @property
    def data(self) -> bytes:
        frames = (frame(d or encode_record(r)) for r, d in self._records)
        return WAL_MAGIC + b"".join(frames) + self._tail

    def recover(self) -> list[WalRecord]:
        payloads, _good = scan(self.data)
        records = [decode_record(p) for p in payloads]
        self._records = [(r, p) for r, p in zip(records, payloads, strict=True)]
        self._tail = b""
        return records

    def append_sync(self, rec: WalRecord, data: bytes = b"") -> None:
        self._records.append((rec, data))

    def reset(self, recs: tuple[WalRecord, ...]) -> None:
        self._records = [(r, b"") for r in recs]
        self._tail = b""

    def tear(self, rec: WalRecord, keep_bytes: int) -> None:
        f = frame(encode_record(rec))
        self._tail += f[: max(1, min(keep_bytes, len(f) - 1))]


class FileWal:
    """A log in one file; every append is fsynced before it returns."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._f: BinaryIO | None = None
        self._size = 0

    def recover(self) -> list[WalRecord]:
        """Read the log (creating it if missing), truncate a torn tail, open for appends."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self._write_atomically(WAL_MAGIC)
        data = self.path.read_bytes()
        payloads, good = scan(data)
        if good == 0:
            self._write_atomically(WAL_MAGIC)
            good = len(WAL_MAGIC)
        elif good < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())
        records = [decode_record(p) for p in payloads]
        self._open(good)
        return records

    def append_sync(self, rec: WalRecord, data: bytes = b"") -> None:
        f = frame(data or encode_record(rec))
        if self._size + len(f) > WAL_BYTES_MAX:
            raise WalError("wal_full", f"the WAL would exceed {WAL_BYTES_MAX} bytes")
        fh = self._handle()
        try:
            fh.write(f)
            fh.flush()
            os.fsync(fh.fileno())
        except OSError as exc:
            raise self._disk_full(exc) from exc
        self._size += len(f)

    def reset(self, recs: tuple[WalRecord, ...]) -> None:
        data = WAL_MAGIC + b"".join(frame(encode_record(r)) for r in recs)
        self.close()
        try:
            self._write_atomically(data)
        except OSError as exc:
            raise self._disk_full(exc) from exc
        self._open(len(data))

    def _disk_full(self, exc: OSError) -> OSError | FatalError:
        """A full disk as the clear error that stops the node (nothing the record covers
        was sent; a torn tail is cut at the next start); other I/O errors as they are."""
        if exc.errno != errno.ENOSPC:
            return exc
        return FatalError.disk_full(f"the consensus WAL ({self.path})")

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def _handle(self) -> BinaryIO:
        if self._f is None:
            raise WalError("wal_not_open", "recover() the WAL before appending")
        return self._f

    def _open(self, size: int) -> None:
        self._f = open(self.path, "ab")  # noqa: SIM115 - kept open for appends
        self._size = size

    def _write_atomically(self, data: bytes) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
