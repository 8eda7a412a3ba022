"""The HTTP API (FastAPI): submit transactions, read blocks, txs, accounts and proven state.

Every error is JSON ``{"code": ..., "message": ...}`` with a 4xx status (5xx only for a
node fault). Binary payloads: a transaction may be posted as raw canonical CBOR
(``Content-Type: application/cbor``) or as JSON ``{"tx": "<hex>"}``; the batch endpoint
takes a CBOR array of encoded transactions. OpenAPI docs are served at ``/docs``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import TYPE_CHECKING, Any

import cborx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sharechain.api import views
from sharechain.chain.types import TX_BYTES_MAX
from sharechain.crypto import bech32_address, parse_address
from sharechain.encoding import encode
from sharechain.errors import ShareChainError
from sharechain.modules import auth

if TYPE_CHECKING:
    from sharechain.node.node import Node

BATCH_TXS_MAX = 10_000
BATCH_BYTES_MAX = 32 * 1024 * 1024
COMMIT_WAIT_S_MAX = 60.0
ACCOUNT_TXS_LIMIT_MAX = 200


def _err(code: str, message: str) -> ShareChainError:
    return ShareChainError(code, message)


def _hex(s: str, what: str, length: int | None = None) -> bytes:
    try:
        b = bytes.fromhex(s)
    except ValueError:
        raise _err("invalid_request", f"{what} must be hex") from None
    if length is not None and len(b) != length:
        raise _err("invalid_request", f"{what} must be {length} bytes")
    return b


async def _body(request: Request, limit: int) -> bytes:
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _err("payload_too_large", f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(node: "Node") -> FastAPI:
    chain = node.chain
    api = FastAPI(title="ShareChain node API", version="1",
                  description="Submit transactions and read the ShareChain ledger.")

    @api.exception_handler(ShareChainError)
    async def _sc_error(request: Request, exc: ShareChainError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.http_status)

    @api.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = ".".join(str(x) for x in first.get("loc", ()))
        return JSONResponse({"code": "invalid_request",
                             "message": f"{loc}: {first.get('msg', 'invalid request')}"},
                            status_code=400)

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return JSONResponse({"code": code, "message": str(exc.detail)}, status_code=exc.status_code)

    # ---------------------------------------------------------------- node
    @api.get("/v1/status", tags=["node"])
    def status() -> dict[str, Any]:
        return node.status()

    @api.get("/metrics", tags=["node"], description="Prometheus metrics.")
    def metrics() -> Response:
        from sharechain.node.metrics import CONTENT_TYPE

        return Response(node.metrics.render(), media_type=CONTENT_TYPE)

    @api.get("/v1/evidence", tags=["node"],
             description="Conflicting votes this node has seen a validator sign (equivocation), "
                         "newest last. `evidence` is the canonical CBOR of the pair: anyone "
                         "with the validator set can check it "
                         "(sharechain.consensus.bft.evidence.DuplicateVoteEvidence.verify).")
    def evidence() -> dict[str, Any]:
        from sharechain.encoding import encode

        out = []
        for ev in node.evidence():
            a, b = ev.vote_a, ev.vote_b
            out.append({"validator": bech32_address(a.validator), "height": a.height,
                        "round": a.round, "type": a.kind,
                        "block_hashes": [a.block_hash.hex(), b.block_hash.hex()],
                        "hash": ev.hash().hex(), "evidence": encode(ev).hex()})
        return {"chain_id": chain.chain_id, "evidence": out}

    @api.get("/v1/genesis", tags=["node"])
    def genesis() -> dict[str, Any]:
        return node.genesis.raw

    @api.get("/v1/validators", tags=["node"])
    def validators() -> dict[str, Any]:
        vs = chain.validator_set()
        return {"height": chain.height() + 1, "total_power": vs.total_power,
                "validators": [{"address": bech32_address(v.address), "pub_key": v.pub_key.hex(),
                                "power": v.power, "name": v.name} for v in vs.validators]}

    @api.get("/v1/fees", tags=["node"],
             description="Fee schedule: required fee = (tx_base_cost + Σ costs[msg type]) × "
                         "fee_per_cost_unit.")
    def fees() -> dict[str, Any]:
        from sharechain.app.framework import TX_BASE_COST

        with chain.store.view() as view:
            unit = auth.fee_per_cost_unit(view)
        return {"tx_base_cost": TX_BASE_COST, "fee_per_cost_unit": unit,
                "costs": {t: s.cost for t, s in sorted(chain.app.msg_specs.items())}}

    # ---------------------------------------------------------------- txs
    async def _submit_one(raw: bytes, mode: str) -> dict[str, Any]:
        if mode not in ("async", "sync", "commit"):
            raise _err("invalid_request", "mode must be async, sync or commit")
        if mode == "async":
            try:
                tx = chain.mempool.add(raw)
            except ShareChainError:
                from sharechain.crypto import sha256
                return {"hash": sha256(raw).hex(), "status": "submitted"}
            return {"hash": tx.hash.hex(), "status": "submitted"}
        tx = chain.mempool.add(raw)
        if mode == "sync":
            return {"hash": tx.hash.hex(), "status": "pending"}
        fut = node.wait_for_tx(tx.hash)
        try:
            height, index, result = await asyncio.wait_for(fut, COMMIT_WAIT_S_MAX)
        except asyncio.TimeoutError:
            node.cancel_wait(tx.hash, fut)
            raise _err("timeout", "tx was accepted but not committed in time; query it later") from None
        return {"hash": tx.hash.hex(), "status": "committed", "height": height, "index": index,
                "result": views.result_json(result)}

    @api.post("/v1/txs", tags=["txs"],
              description="Submit one signed tx. Body: raw CBOR (application/cbor) or "
                          'JSON {"tx": "<hex>"}. mode: async | sync (checked, default) | '
                          "commit (waits until the tx is in a block).")
    async def submit_tx(request: Request, mode: str = "sync") -> dict[str, Any]:
        body = await _body(request, TX_BYTES_MAX * 3 + 64)
        if request.headers.get("content-type", "").startswith("application/cbor"):
            raw = body
        else:
            try:
                obj = json.loads(body)
                raw = bytes.fromhex(obj["tx"]) if "tx" in obj else base64.b64decode(obj["tx_base64"])
            except (ValueError, KeyError, TypeError):
                raise _err("invalid_request", 'body must be JSON {"tx": "<hex>"} or raw CBOR') from None
        return await _submit_one(raw, mode)

    @api.post("/v1/txs/batch", tags=["txs"],
              description="Submit many signed txs: body is a CBOR array of encoded txs "
                          "(application/cbor). Each gets its own result; signatures are "
                          "verified in parallel.")
    async def submit_batch(request: Request) -> Response:
        body = await _body(request, BATCH_BYTES_MAX)
        try:
            raws = cborx.loads(body)
        except Exception:
            raise _err("invalid_request", "batch body must be a CBOR array of byte strings") from None
        if not isinstance(raws, list) or not all(isinstance(r, bytes) for r in raws):
            raise _err("invalid_request", "batch body must be a CBOR array of byte strings")
        if len(raws) > BATCH_TXS_MAX:
            raise _err("payload_too_large", f"a batch holds at most {BATCH_TXS_MAX} txs")
        # Parsing runs here; signatures are checked in the signature worker processes
        # while the loop serves other work; then admission, which owns the pool.
        parsed = await chain.mempool.prepare_async(raws)
        out = []
        accepted = 0
        for item in chain.mempool.admit_many(parsed):
            if isinstance(item, ShareChainError):
                out.append({"code": item.code, "message": item.message})
            else:
                out.append({"hash": item.hash.hex(), "code": ""})
                accepted += 1
        # Serialised straight away: FastAPI's generic encoder walks every result in Python
        # (~3 ms for a batch of 500, on the loop that also runs consensus).
        return JSONResponse({"accepted": accepted, "results": out})

    @api.get("/v1/txs/{tx_hash}", tags=["txs"])
    def get_tx(tx_hash: str) -> dict[str, Any]:
        h = _hex(tx_hash, "tx hash", 32)
        found = chain.tx_result(h)
        if found is None:
            if h in chain.mempool:
                return {"hash": tx_hash, "status": "pending"}
            raise _err("tx_not_found", f"no tx {tx_hash}")
        height, index, result = found
        block = chain.store.block(height)
        raw = block.txs[index] if block else b""
        return {"hash": tx_hash, "status": "committed", "height": height, "index": index,
                "result": views.result_json(result), "tx": views.tx_json_from_raw(raw)}

    # ---------------------------------------------------------------- blocks
    def _block_response(height: int, fmt: str) -> Any:
        if fmt == "cbor":  # the stored bytes as they are
            raw = chain.store.block_raw(height)
            if raw is None:
                raise _err("block_not_found", f"no block at height {height}")
            return Response(encode({"block": raw, "commit": chain.store.commit_raw(height) or b""}),
                            media_type="application/cbor")
        block = chain.store.block(height)
        if block is None:
            raise _err("block_not_found", f"no block at height {height}")
        commit = chain.store.commit(height)
        out = views.block_json(block, commit)
        ev = chain.store.block_events(height)
        if ev:
            out["block_events"] = views.plain(cborx.loads(ev))
        return out

    @api.get("/v1/blocks/latest", tags=["blocks"])
    def latest_block(format: str = "json") -> Any:
        return _block_response(chain.height(), format)

    @api.get("/v1/blocks/{height}", tags=["blocks"])
    def block_at(height: int, format: str = "json") -> Any:
        return _block_response(height, format)

    @api.get("/v1/blocks/hash/{block_hash}", tags=["blocks"])
    def block_by_hash(block_hash: str, format: str = "json") -> Any:
        h = chain.store.height_of_hash(_hex(block_hash, "block hash", 32))
        if h is None:
            raise _err("block_not_found", f"no block {block_hash}")
        return _block_response(h, format)

    # ---------------------------------------------------------------- accounts and state
    @api.get("/v1/accounts/{address}", tags=["state"])
    def account(address: str) -> dict[str, Any]:
        addr = parse_address(address)
        with chain.store.view() as view:
            return {"address": bech32_address(addr), "height": chain.height(),
                    "balance": chain.keepers.bank.balance(view, addr),
                    "nonce": auth.get_nonce(view, addr)}

    @api.get("/v1/accounts/{address}/txs", tags=["state"])
    def account_txs(address: str, limit: int = 50, before_height: int | None = None
                    ) -> dict[str, Any]:
        addr = parse_address(address)
        limit = max(1, min(limit, ACCOUNT_TXS_LIMIT_MAX))
        rows = chain.store.account_txs(addr, limit, before_height)
        return {"address": address,
                "txs": [{"height": h, "index": i, "hash": th.hex()} for h, i, th in rows]}

    @api.get("/v1/state/{key_hex}", tags=["state"],
             description="Raw state value with a Merkle proof (membership or absence) against "
                         "the state root after block `height`; that root is in the header of "
                         "block height+1.")
    def state(key_hex: str) -> dict[str, Any]:
        key = _hex(key_hex, "key")
        value, proof, height, root = chain.store.prove(key)
        return {"key": key_hex, "value": value.hex() if value is not None else None,
                "height": height, "state_root": root.hex(),
                "proof": encode(proof.to_obj()).hex()}

    @api.get("/v1/query/{module}/{name}", tags=["state"],
             description="A module query; parameters are passed as query-string fields.")
    def module_query(module: str, name: str, request: Request) -> Any:
        return views.plain(chain.query(module, name, dict(request.query_params)))

    # ---------------------------------------------------------------- streams
    @api.get("/v1/events", tags=["stream"],
             description="Server-sent events: one 'block' event per committed block. "
                         "detail=full (default): tx results and events; detail=hashes: tx hashes "
                         "only (cheap for high-rate followers).")
    async def events(request: Request, detail: str = "full") -> StreamingResponse:
        if detail not in ("full", "hashes"):
            raise _err("invalid_request", "detail must be full or hashes")
        q = node.subscribe()

        async def gen() -> Any:
            try:
                yield ": connected\n\n"
                while True:
                    try:
                        cb = await asyncio.wait_for(q.get(), 15)
                    except asyncio.TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    if cb is None:
                        return
                    data: dict[str, Any] = {
                        "height": cb.block.header.height, "hash": cb.block_hash.hex(),
                        "time_ms": cb.block.header.time_ms, "num_txs": len(cb.tx_hashes),
                        "state_root": cb.state_root.hex()}
                    if detail == "hashes":
                        data["tx_hashes"] = [h.hex() for h in cb.tx_hashes]
                    else:
                        data["txs"] = [{"hash": h.hex(), **views.result_json(r)}
                                       for h, r in zip(cb.tx_hashes, cb.results)]
                        data["block_events"] = [views.event_json(e) for e in cb.block_events]
                    yield f"event: block\ndata: {json.dumps(data)}\n\n"
            finally:
                node.unsubscribe(q)

        return StreamingResponse(gen(), media_type="text/event-stream")

    return api

