"""Benchmark: full-lifecycle rentals settled per second on a single-validator chain.

What is measured: block execution + commit (the state machine and the LMDB/state-tree write,
``SoloEngine.produce``) on an in-process :class:`~sharechain.node.chain.Chain`, with the
transactions already admitted to the mempool (signature checks of the txs happen at
admission and are reported separately). No HTTP, no networking. Each rental is three steps in
three blocks: ``rental/reserve`` (one tx per rental), then the device's signed unlock report
and, a few seconds of block time later, its signed lock report (gateways relay them in
``iot/submit_reports`` batches of 32; each report's Ed25519 signature is verified inside the
state machine). The lock settles the rental: usage fee, platform fee, pool cut, income share,
refund, rewards. Plain ``bank/send`` transfers are measured the same way in the same run.

With ``--api`` the same rentals are also pushed through a real node's HTTP batch endpoint
(``POST /v1/txs/batch``) and timed from the first submission to the last settled block.

    .venv/bin/python benchmarks/rentals.py --rentals 2000 --rounds 3
    .venv/bin/python benchmarks/rentals.py --seconds 20
    .venv/bin/python benchmarks/rentals.py --rentals 1000 --api

Progress goes to stderr; the last line on stdout is one JSON object with ``rentals_per_s``
and ``transfers_per_s`` (and the per-phase figures).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from typing import Any

from sharechain.chain.types import TxBody, sign_tx
from sharechain.consensus.solo import SoloEngine
from sharechain.crypto import PrivateKey, cid_of
from sharechain.encoding import to_obj
from sharechain.modules.assets.types import AssetClass, asset_id_of
from sharechain.modules.iot.types import Payload, Report, SignedReport, report_sign_bytes
from sharechain.node.chain import Chain
from sharechain.node.devnet import demo_genesis, validator_key
from sharechain.node.genesis import parse_genesis
from sharechain.node.node import tune_gc

CHAIN_ID = "bench-rentals"
GENESIS_MS = 1_700_000_000_000
REPORTS_PER_TX = 32
UNIT_MS = 1_000
TERMS = {"price_per_unit": 100, "unit_ms": UNIT_MS, "deposit": 1_000, "min_duration_ms": 1_000,
         "max_duration_ms": 3_600_000, "cancel_window_ms": 0, "cancel_fee": 0,
         "late_fee_per_unit": 10, "grace_ms": 60_000, "damage_cap": 0, "claim_window_ms": 0,
         "min_credit_tier": 0}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def key(name: str) -> PrivateKey:
    return PrivateKey.from_name(f"bench/{name}")


class Bench:
    def __init__(self, rentals: int, gateways: int, credit: bool = True) -> None:
        self.n = rentals
        self.consumers = [key(f"consumer{i}") for i in range(rentals)]
        self.owner = key("owner")
        self.platform = key("platform")
        self.gateways = [key(f"gateway{i}") for i in range(gateways)]
        self.devices = [key(f"device{i}") for i in range(rentals)]
        self.codes = [f"B-{i:06d}" for i in range(rentals)]
        self.asset_ids = [asset_id_of("benchbike", c) for c in self.codes]
        self.nonces: dict[bytes, int] = {}
        self.counters = [0] * rentals
        self.tmp = tempfile.mkdtemp(prefix="bench-rentals-")
        self.chain = Chain(self.tmp, parse_genesis(self.genesis()))
        self.engine = SoloEngine(self.chain, validator_key(0, CHAIN_ID), 1000)
        self.now = GENESIS_MS
        ck = self.chain.keepers.extra.get("credit")
        if not credit and ck is not None:
            # Diagnostics: the rental path without the credit module's listener and gate.
            from sharechain.modules.rental.deps import AllowAll

            rk = self.chain.keepers.extra["rental"]
            rk.remove_listener(ck.on_rental)
            rk.set_credit_gate(AllowAll())

    def genesis(self) -> dict[str, Any]:
        doc = demo_genesis(CHAIN_ID, genesis_time_ms=GENESIS_MS, block_txs_max=20_000)
        st = doc["app_state"]
        everyone = [*self.consumers, self.owner, self.platform, *self.gateways]
        st["bank"]["balances"] += [{"address": k.bech32, "amount": 10**12} for k in everyone]
        parts = st["identity"]["participants"]
        parts.append({"address": self.owner.bech32, "kind": "person", "name": "Owner",
                      "roles": ["provider"]})
        parts.append({"address": self.platform.bech32, "kind": "organisation",
                      "name": "BenchCo", "roles": ["platform"], "fee_bps": 500})
        parts += [{"address": g.bech32, "kind": "organisation", "name": f"Gateway {i}",
                   "roles": ["gateway"]} for i, g in enumerate(self.gateways)]
        st["assets"]["classes"].append(to_obj(AssetClass(
            "benchbike", (), pledge=0, consumer_confirmations=0, max_speed_mps=20,
            meter_step_min=0, meter_step_max=10**6)))
        cid = cid_of(b"bench bike")
        st["assets"]["assets"] += [{"class_name": "benchbike", "code": c, "metadata_cid": cid,
                                    "owner": self.owner.bech32,
                                    "operator": self.platform.bech32, "confirmed": True,
                                    "pledged": True} for c in self.codes]
        st["iot"]["devices"] += [{"pub_key": d.public_key.hex(), "asset_code": c}
                                 for d, c in zip(self.devices, self.codes, strict=True)]
        st["rental"] = {"params": {"start_window_ms": 15 * 60_000}}
        return doc

    # ------------------------------------------------------------ tx building
    def tx(self, k: PrivateKey, msgs: list[tuple[str, Any]], fee: int) -> bytes:
        nonce = self.nonces.get(k.address, 0)
        self.nonces[k.address] = nonce + 1
        return sign_tx(TxBody(CHAIN_ID, k.public_key, nonce, fee, 0, tuple(msgs)), k.sign)

    def fee(self, types: list[str]) -> int:
        app = self.chain.app
        return 10 + sum(app.msg_specs[t].cost for t in types)

    def offers(self) -> list[bytes]:
        f = self.fee(["rental/offer"] * 32)
        out = []
        for i in range(0, self.n, 32):
            out.append(self.tx(self.owner, [("rental/offer", {"asset_id": a, "terms": TERMS})
                                            for a in self.asset_ids[i:i + 32]], f))
        return out

    def reserves(self, start_ms: int) -> list[bytes]:
        f = self.fee(["rental/reserve"])
        return [self.tx(c, [("rental/reserve", {"asset_id": a, "start_ms": start_ms,
                                                "end_ms": start_ms + 60_000})], f)
                for c, a in zip(self.consumers, self.asset_ids, strict=True)]

    def reports(self, kind: str, rental_ids: list[bytes], at_ms: int) -> list[bytes]:
        signed = []
        for i, rid in enumerate(rental_ids):
            self.counters[i] += 1
            rep = Report(self.devices[i].address, self.asset_ids[i], self.counters[i], at_ms,
                         kind, Payload(rental_id=rid))
            sr = SignedReport(rep, self.devices[i].sign(report_sign_bytes(CHAIN_ID, rep)))
            signed.append(to_obj(sr))
        f = self.fee(["iot/submit_reports"])
        out = []
        for j in range(0, len(signed), REPORTS_PER_TX):
            g = self.gateways[(j // REPORTS_PER_TX) % len(self.gateways)]
            out.append(self.tx(g, [("iot/submit_reports",
                                    {"reports": signed[j:j + REPORTS_PER_TX]})], f))
        return out

    def transfers(self, count: int) -> list[bytes]:
        f = self.fee(["bank/send"])
        out = []
        for i in range(count):
            c = self.consumers[i % len(self.consumers)]
            out.append(self.tx(c, [("bank/send", {"to": self.owner.address, "amount": 1})], f))
        return out

    # ------------------------------------------------------------ running blocks
    def admit(self, raws: list[bytes]) -> float:
        t0 = time.perf_counter()
        for r in raws:
            self.chain.mempool.add(r)
        return time.perf_counter() - t0

    def produce(self, advance_ms: int) -> float:
        """One block ``advance_ms`` after the previous; seconds of execute + commit."""
        self.now += advance_ms
        h = self.chain.height()
        t0 = time.perf_counter()
        self.engine.produce(self.now)
        dt = time.perf_counter() - t0
        assert self.chain.height() == h + 1
        return dt

    def results(self, height: int) -> list[Any]:
        from sharechain.crypto import sha256

        block = self.chain.store.block(height)
        assert block is not None
        out = []
        for raw in block.txs:
            found = self.chain.tx_result(sha256(raw))
            assert found is not None
            out.append(found[2])
        return out

    def rental_round(self) -> tuple[float, float, int]:
        """One round of N rentals; returns (execute+commit seconds, admission seconds,
        rentals settled)."""
        start = self.now + 1_000
        admit = self.admit(self.reserves(start))
        exec_s = self.produce(1_000)
        res = self.results(self.chain.height())
        ids = []
        for r in res:
            if not r.ok:
                raise RuntimeError(f"reserve failed: {r.code} {r.message}")
            ids.append(next(bytes.fromhex(e.attrs["rental_id"]) if isinstance(
                e.attrs["rental_id"], str) else e.attrs["rental_id"]
                for e in r.events if e.type == "rental_reserved"))
        admit += self.admit(self.reports("unlock", ids, self.now + 500))
        exec_s += self.produce(1_000)
        admit += self.admit(self.reports("lock", ids, self.now + 4_500))
        exec_s += self.produce(5_000)
        settled = sum(sum(1 for e in r.events if e.type == "rental_completed")
                      for r in self.results(self.chain.height()))
        failed = [e.attrs for r in self.results(self.chain.height()) for e in r.events
                  if e.type == "report_listener_failed"]
        if failed or settled != self.n:
            raise RuntimeError(f"only {settled} of {self.n} rentals settled: {failed[:3]}")
        return exec_s, admit, settled

    def close(self) -> None:
        self.chain.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_in_process(args: argparse.Namespace) -> dict[str, Any]:
    log(f"setting up {args.rentals} assets with devices, consumers and offers ...")
    b = Bench(args.rentals, args.gateways, credit=not args.no_credit)
    try:
        b.admit(b.offers())
        b.produce(1_000)
        tune_gc()  # as a node does once it has started
        exec_total = admit_total = 0.0
        settled = rounds = 0
        t_end = time.monotonic() + args.seconds if args.seconds else None
        while (t_end is None and rounds < args.rounds) or (t_end and time.monotonic() < t_end):
            exec_s, admit_s, n = b.rental_round()
            exec_total += exec_s
            admit_total += admit_s
            settled += n
            rounds += 1
            log(f"  round {rounds}: {n} rentals settled in {exec_s * 1000:.0f} ms of "
                f"execute+commit ({n / exec_s:,.0f}/s); admission {admit_s * 1000:.0f} ms")
        transfers = b.transfers(args.rentals * 3)
        admit_t = b.admit(transfers)
        t_exec = b.produce(1_000)
        log(f"  transfers: {len(transfers)} in {t_exec * 1000:.0f} ms "
            f"({len(transfers) / t_exec:,.0f}/s); admission {admit_t * 1000:.0f} ms")
        return {
            "rentals_per_s": round(settled / exec_total, 1),
            "transfers_per_s": round(len(transfers) / t_exec, 1),
            "rentals": settled, "rounds": rounds, "blocks_per_rental_round": 3,
            "rental_txs_per_s": round(settled * (1 + 2 / REPORTS_PER_TX) / exec_total, 1),
            "rental_admission_per_s": round(settled / admit_total, 1),
            "transfer_admission_per_s": round(len(transfers) / admit_t, 1),
            "measured": "in-process execute+commit (SoloEngine.produce), mempool "
                        "admission and signature checks excluded",
            "credit_hooked": not args.no_credit,
        }
    finally:
        b.close()


def run_api(args: argparse.Namespace) -> dict[str, Any]:
    """The same rentals through a real node process and its HTTP batch endpoint."""
    import signal
    import socket
    import subprocess
    from pathlib import Path

    from sharechain.client import Client
    from sharechain.errors import ShareChainError
    from sharechain.node.home import Home, NodeConfig

    b = Bench(args.rentals, args.gateways)  # builds the genesis and the signed txs
    b.chain.close()
    home = Home(Path(b.tmp) / "node")
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    doc = b.genesis()
    doc["genesis_time_ms"] = int(time.time() * 1000)
    doc["consensus"]["block_interval_ms"] = args.block_interval_ms
    doc["validators"] = [{"name": "validator0", "power": 10,
                          "pub_key": validator_key(0, CHAIN_ID).public_key.hex()}]
    home.save_node_key(validator_key(0, CHAIN_ID))
    home.save_genesis(doc)
    home.save_config(NodeConfig(moniker="bench", api_port=port, log_level="warning"))
    exe = Path(sys.executable).parent / "sharechain"
    proc = subprocess.Popen([str(exe), "start", "--home", str(home.path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = Client(f"http://127.0.0.1:{port}", timeout_s=120)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if c.status()["height"] >= 1:
                    break
            except ShareChainError:
                pass  # not listening yet
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the benchmark node did not start")
            time.sleep(0.2)

        def push(raws: list[bytes]) -> int:
            res = c.submit_batch(raws)
            bad = [x for x in res["results"] if x.get("code")]
            if bad:
                raise RuntimeError(f"batch refused: {bad[0]}")
            return len(raws)

        def settle_wait(raws: list[bytes]) -> list[dict[str, Any]]:
            from sharechain.crypto import sha256

            return [c.wait_for_tx(sha256(r).hex(), timeout_s=120) for r in raws]

        push(b.offers())
        time.sleep(args.block_interval_ms / 1000 * 3)
        t0 = time.perf_counter()
        reserves = b.reserves(int(time.time() * 1000))
        push(reserves)
        settle_wait(reserves[-1:])
        # rental ids are the sequence numbers 1..N in the order the batch was admitted
        ids = [(i + 1).to_bytes(8, "big") for i in range(len(reserves))]
        last = c.query("rental", "rental", id=ids[-1].hex())
        if last["asset_id"] != b.asset_ids[-1].hex():
            raise RuntimeError("reservations were not executed in submission order")
        unlocks = b.reports("unlock", ids, int(time.time() * 1000))
        push(unlocks)
        settle_wait(unlocks[-1:])
        locks = b.reports("lock", ids, int(time.time() * 1000))
        push(locks)
        done = settle_wait(locks)
        elapsed = time.perf_counter() - t0
        settled = sum(1 for t in done for e in t["result"]["events"]
                      if e["type"] == "rental_completed")
        if settled != len(ids):
            sample = [(t["result"]["code"], [e for e in t["result"]["events"]
                                             if e["type"] != "device_report"][:3])
                      for t in done[:2]]
            raise RuntimeError(f"only {settled} of {len(ids)} rentals settled: {sample}")
        log(f"  API: {settled} rentals settled in {elapsed:.2f} s "
            f"({settled / elapsed:,.0f}/s) with {args.block_interval_ms} ms blocks")
        return {"api_rentals_per_s": round(settled / elapsed, 1), "api_rentals": settled,
                "api_block_interval_ms": args.block_interval_ms}
    finally:
        c.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(b.tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rentals", type=int, default=2_000, help="rentals per round (= assets)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.0,
                    help="run rounds until this many seconds have passed (overrides --rounds)")
    ap.add_argument("--gateways", type=int, default=8)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one round")
    ap.add_argument("--no-credit", action="store_true",
                    help="diagnostics: unhook the credit module's rental listener and gate")
    ap.add_argument("--api", action="store_true",
                    help="also run one round through a node's HTTP batch endpoint")
    ap.add_argument("--block-interval-ms", type=int, default=200,
                    help="block interval of the node in --api mode")
    args = ap.parse_args()
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        run_in_process(args)
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
        return
    out = run_in_process(args)
    if args.api:
        out.update(run_api(args))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
