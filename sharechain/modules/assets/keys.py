"""assets key layout (prefix ``assets/``).

  assets/class/<name>                 -> AssetClass  defined in genesis
  assets/a/<id16>                     -> Asset
  assets/code/<code>                  -> bytes       asset id; one code, one thing
  assets/own/<owner20><id16>          -> 1           index: assets by owner
  assets/op/<operator20><id16>        -> 1           index: assets by operating platform
  assets/att/<id16><role>             -> Attestation one per attesting role
  assets/usr/<id16><addr20>           -> int         first time (ms) addr held a use right;
                                                     only past users may confirm the asset
  assets/cc/<id16><addr20>            -> int         time (ms) of a consumer confirmation
  assets/rseq/<id16>                  -> int         last report sequence number of the asset
  assets/rep/<id16><seq u32 BE>       -> AssetReport consumer reports (fake / unsafe)
  assets/ropen/<id16><addr20>         -> int         seq of the reporter's open report

The pledge itself lives in the bank, in escrow ``b"assets/pledge/" + id16``.
"""

from __future__ import annotations

CLASS_PREFIX = b"assets/class/"
ASSET_PREFIX = b"assets/a/"
CODE_PREFIX = b"assets/code/"
OWNER_PREFIX = b"assets/own/"
OPERATOR_PREFIX = b"assets/op/"
ATTEST_PREFIX = b"assets/att/"
USER_PREFIX = b"assets/usr/"
CONFIRM_PREFIX = b"assets/cc/"
REPORT_SEQ_PREFIX = b"assets/rseq/"
REPORT_PREFIX = b"assets/rep/"
REPORT_OPEN_PREFIX = b"assets/ropen/"


def class_key(name: str) -> bytes:
    return CLASS_PREFIX + name.encode()


def asset_key(asset_id: bytes) -> bytes:
    return ASSET_PREFIX + asset_id


def code_key(code: str) -> bytes:
    return CODE_PREFIX + code.encode()


def owner_key(owner: bytes, asset_id: bytes) -> bytes:
    return OWNER_PREFIX + owner + asset_id


def operator_key(operator: bytes, asset_id: bytes) -> bytes:
    return OPERATOR_PREFIX + operator + asset_id


def attest_key(asset_id: bytes, role: str) -> bytes:
    return ATTEST_PREFIX + asset_id + role.encode()


def user_key(asset_id: bytes, addr: bytes) -> bytes:
    return USER_PREFIX + asset_id + addr


def confirm_key(asset_id: bytes, addr: bytes) -> bytes:
    return CONFIRM_PREFIX + asset_id + addr


def report_seq_key(asset_id: bytes) -> bytes:
    return REPORT_SEQ_PREFIX + asset_id


def report_key(asset_id: bytes, seq: int) -> bytes:
    return REPORT_PREFIX + asset_id + seq.to_bytes(4, "big")


def report_open_key(asset_id: bytes, reporter: bytes) -> bytes:
    return REPORT_OPEN_PREFIX + asset_id + reporter
