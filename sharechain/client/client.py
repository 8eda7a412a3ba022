"""The synchronous SDK client.

Transactions are built and signed locally; the node only sees signed bytes. Nonces are
tracked per key so a program can submit several transactions without waiting for each to
commit; on a nonce error the client re-reads the account once and retries. State reads
can be verified: the client fetches the proof, the next block's header and its commit,
checks the commit's signatures against the validator set, then checks the proof against
the header's state root.
"""

from __future__ import annotations

import time
from dataclasses import is_dataclass
from typing import Any

import cborx
import httpx

from sharechain.chain.types import (
    TxBody,
    Validator,
    ValidatorSet,
    decode_block,
    decode_commit,
    sign_tx,
    verify_commit,
)
from sharechain.crypto import PrivateKey, bech32_address, parse_address
from sharechain.encoding import decode, to_obj
from sharechain.errors import ShareChainError

TX_BASE_COST = 10


class TxFailed(ShareChainError):
    """A committed transaction whose messages failed (the fee was still charged)."""

    def __init__(self, code: str, message: str, result: dict[str, Any]) -> None:
        super().__init__(code, message)
        self.result = result


def _addr(a: bytes | str) -> bytes:
    return parse_address(a) if isinstance(a, str) else a


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8700", timeout_s: float = 65.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s)
        self._chain_id: str | None = None
        self._fees: dict[str, Any] | None = None
        self._nonces: dict[bytes, int] = {}

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---------------------------------------------------------------- http
    def _check(self, r: httpx.Response) -> Any:
        if r.status_code >= 400:
            try:
                body = r.json()
                raise ShareChainError(body.get("code", "http_error"), body.get("message", r.text))
            except ValueError:
                raise ShareChainError("http_error", f"HTTP {r.status_code}: {r.text[:200]}") from None
        if r.headers.get("content-type", "").startswith("application/cbor"):
            return r.content
        return r.json()

    def get(self, path: str, **params: Any) -> Any:
        try:
            r = self.http.get(path, params={k: v for k, v in params.items() if v is not None})
        except httpx.HTTPError as exc:
            raise ShareChainError("unreachable", f"cannot reach node at {self.url}: {exc}") from None
        return self._check(r)

    def post(self, path: str, content: bytes, params: dict[str, Any] | None = None) -> Any:
        try:
            r = self.http.post(path, content=content, params=params,
                               headers={"content-type": "application/cbor"})
        except httpx.HTTPError as exc:
            raise ShareChainError("unreachable", f"cannot reach node at {self.url}: {exc}") from None
        return self._check(r)

    # ---------------------------------------------------------------- reads
    def status(self) -> dict[str, Any]:
        return self.get("/v1/status")

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = self.status()["chain_id"]
        return self._chain_id

    def account(self, address: bytes | str) -> dict[str, Any]:
        a = bech32_address(_addr(address))
        return self.get(f"/v1/accounts/{a}")

    def balance(self, address: bytes | str) -> int:
        return int(self.account(address)["balance"])

    def block(self, height: int | None = None) -> dict[str, Any]:
        return self.get("/v1/blocks/latest" if height is None else f"/v1/blocks/{height}")

    def tx(self, tx_hash: str) -> dict[str, Any]:
        return self.get(f"/v1/txs/{tx_hash}")

    def query(self, module: str, name: str, **params: Any) -> Any:
        return self.get(f"/v1/query/{module}/{name}", **params)

    def validators(self) -> ValidatorSet:
        d = self.get("/v1/validators")
        return ValidatorSet.of([Validator(bytes.fromhex(v["pub_key"]), v["power"], v["name"])
                                for v in d["validators"]])

    def wait_for_height(self, height: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.status()["height"] < height:
            if time.monotonic() > deadline:
                raise ShareChainError("timeout", f"chain did not reach height {height}")
            time.sleep(0.05)

    def wait_for_tx(self, tx_hash: str, timeout_s: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                t = self.tx(tx_hash)
                if t.get("status") == "committed":
                    return t
            except ShareChainError as exc:
                if exc.code != "tx_not_found":
                    raise
            if time.monotonic() > deadline:
                raise ShareChainError("timeout", f"tx {tx_hash} was not committed in time")
            time.sleep(0.05)

    # ---------------------------------------------------------------- proofs
    def state(self, key: bytes, verify: bool = True, timeout_s: float = 30.0) -> bytes | None:
        """Raw state value for ``key``; with ``verify``, proven against a committed header."""
        d = self.get(f"/v1/state/{key.hex()}")
        value = bytes.fromhex(d["value"]) if d["value"] is not None else None
        if verify:
            self.verify_state(key, value, d, timeout_s)
        return value

    def verify_state(self, key: bytes, value: bytes | None, d: dict[str, Any],
                     timeout_s: float = 30.0) -> None:
        from sharechain.store.smt import Proof, verify_proof

        height = d["height"]
        self.wait_for_height(height + 1, timeout_s)
        raw = self.get(f"/v1/blocks/{height + 1}", format="cbor")
        pair = decode(raw)
        block = decode_block(pair["block"])
        commit = decode_commit(pair["commit"])
        verify_commit(self.chain_id, self.validators(), commit, block.hash(), height + 1)
        root = block.header.state_root
        if root.hex() != d["state_root"]:
            raise ShareChainError("proof_invalid", "state root differs from the committed header")
        proof = Proof.from_obj(cborx.loads(bytes.fromhex(d["proof"])))
        if not verify_proof(root, key, value, proof):
            raise ShareChainError("proof_invalid", "state proof does not verify")

    # ---------------------------------------------------------------- writes
    def fee_schedule(self) -> dict[str, Any]:
        if self._fees is None:
            self._fees = self.get("/v1/fees")
        return self._fees

    def required_fee(self, msg_types: list[str]) -> int:
        f = self.fee_schedule()
        costs = f["costs"]
        unknown = [t for t in msg_types if t not in costs]
        if unknown:
            raise ShareChainError("unknown_msg_type", f"unknown message type(s) {unknown}")
        return (f["tx_base_cost"] + sum(costs[t] for t in msg_types)) * f["fee_per_cost_unit"]

    def next_nonce(self, key: PrivateKey) -> int:
        n = self._nonces.get(key.address)
        if n is None:
            n = int(self.account(key.address)["nonce"])
        return n

    def build_tx(self, key: PrivateKey, msgs: list[tuple[str, Any]], fee: int | None = None,
                 nonce: int | None = None, memo: str = "", expiry_height: int = 0) -> bytes:
        plain_msgs = tuple((t, to_obj(m) if is_dataclass(m) else m) for t, m in msgs)
        if fee is None:
            fee = self.required_fee([t for t, _ in msgs])
        if nonce is None:
            nonce = self.next_nonce(key)
        body = TxBody(chain_id=self.chain_id, signer=key.public_key, nonce=nonce, fee=fee,
                      expiry_height=expiry_height, msgs=plain_msgs, memo=memo)
        return sign_tx(body, key.sign)

    def submit(self, raw: bytes, mode: str = "commit") -> dict[str, Any]:
        return self.post("/v1/txs", raw, {"mode": mode})

    def submit_batch(self, raws: list[bytes]) -> dict[str, Any]:
        return self.post("/v1/txs/batch", cborx.dumps(raws))

    def broadcast(self, key: PrivateKey, msgs: list[tuple[str, Any]], wait: bool = True,
                  check: bool = True, **kw: Any) -> dict[str, Any]:
        """Sign and submit; with ``wait`` return the committed result; with ``check`` raise
        :class:`TxFailed` if the committed tx failed."""
        for attempt in range(2):
            nonce = kw["nonce"] if kw.get("nonce") is not None else self.next_nonce(key)
            raw = self.build_tx(key, msgs, **{**kw, "nonce": nonce})
            try:
                res = self.submit(raw, "commit" if wait else "sync")
            except ShareChainError as exc:
                if exc.code in ("nonce_reused", "nonce_in_future") and attempt == 0 \
                        and kw.get("nonce") is None:
                    self._nonces.pop(key.address, None)
                    continue
                raise
            self._nonces[key.address] = nonce + 1
            if wait and check and not res["result"]["ok"]:
                r = res["result"]
                raise TxFailed(r["code"], r["message"], res)
            return res
        raise ShareChainError("nonce_conflict", "could not find a usable nonce")

    # ---------------------------------------------------------------- bank helpers
    def send(self, key: PrivateKey, to: bytes | str, amount: int, **kw: Any) -> dict[str, Any]:
        return self.broadcast(key, [("bank/send", {"to": _addr(to), "amount": amount})], **kw)

    def multi_send(self, key: PrivateKey, outputs: list[tuple[bytes | str, int]],
                   **kw: Any) -> dict[str, Any]:
        outs = [{"to": _addr(a), "amount": n} for a, n in outputs]
        return self.broadcast(key, [("bank/multi_send", {"outputs": outs})], **kw)

