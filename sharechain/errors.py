"""Errors that reach users.

Every error a user can see has a stable machine-readable ``code`` and one sentence of
``message``. The API maps the code to a 4xx status, the CLI to a message and a non-zero
exit. Broken invariants are not errors of this kind: they are bugs and stop the process
(see :func:`invariant`).
"""

from __future__ import annotations

# HTTP status per error code; anything not listed is a 400.
_STATUS_BY_CODE: dict[str, int] = {
    "not_found": 404,
    "tx_not_found": 404,
    "block_not_found": 404,
    "account_not_found": 404,
    "unauthorized": 403,
    "forbidden": 403,
    "role_required": 403,
    "duplicate_tx": 409,
    "mempool_full": 503,
    "busy": 503,
    "timeout": 504,
    "payload_too_large": 413,
    "tx_too_large": 413,
}


class ShareChainError(Exception):
    """A user-facing error with a stable code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return _STATUS_BY_CODE.get(self.code, 400)

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class FatalError(ShareChainError):
    """The node cannot go on and stops (its store is full, say): it exits non-zero with this
    message, and after the operator's fix a restart resumes at the last committed block."""

    @classmethod
    def disk_full(cls, what: str) -> "FatalError":
        """The disk under ``what`` (the store, the consensus WAL, ...) has no space left."""
        return cls("disk_full", f"the disk holding {what} is full: free space and start "
                   "the node again")


class DecodeError(ShareChainError):
    """Bytes that are not a valid canonical encoding of the expected schema."""

    def __init__(self, message: str, code: str = "malformed") -> None:
        super().__init__(code, message)


class InvariantViolation(RuntimeError):
    """A bug: internal state that must never occur. Not caught by request handlers."""


def invariant(condition: bool, message: str) -> None:
    """Check an internal invariant; unlike ``assert`` it survives ``python -O``."""
    if not condition:
        raise InvariantViolation(message)
