"""Throughput of the encrypted p2p transport over a loopback TCP connection.

Both ends run in this one process and event loop, so one core does the encryption, the
decryption and both sides' asyncio work: read the figures as a lower bound for one peer link.
MB/s counts payload bytes (10^6 bytes per MB); frames/s counts messages.

    python benchmarks/p2p_transport.py --seconds 2

The last line printed is one JSON object holding every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import nacl.signing

from sharechain.p2p.secret_conn import SecretConnection, handshake, node_id_from_pubkey

LOCALHOST = "127.0.0.1"
PAYLOAD_SIZES_BYTES = (1024, 64 * 1024)
END_MARKER = b""


async def connected_pair() -> tuple[SecretConnection, SecretConnection, asyncio.Server]:
    server_key = nacl.signing.SigningKey.generate()
    client_key = nacl.signing.SigningKey.generate()
    accepted: asyncio.Queue[SecretConnection] = asyncio.Queue()

    async def on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.put_nowait(await handshake(reader, writer, server_key, None, 5.0))

    server = await asyncio.start_server(on_accept, LOCALHOST, 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection(LOCALHOST, port)
    server_id = node_id_from_pubkey(bytes(server_key.verify_key))
    client = await handshake(reader, writer, client_key, server_id, 5.0)
    return client, await accepted.get(), server


async def receive_until_marker(conn: SecretConnection) -> tuple[int, int, float]:
    frames = 0
    payload_bytes = 0
    while msg := await conn.recv():
        frames += 1
        payload_bytes += len(msg)
    return frames, payload_bytes, time.perf_counter()


async def measure(payload_size_bytes: int, seconds: float) -> dict[str, float]:
    sender, receiver, server = await connected_pair()
    payload = os.urandom(payload_size_bytes)
    receiving = asyncio.create_task(receive_until_marker(receiver))
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        # Sending a batch between clock reads keeps the timing overhead out of the figure.
        for _ in range(64):
            await sender.send(payload)
    await sender.send(END_MARKER)
    frames, payload_bytes, finished = await receiving
    elapsed_s = finished - started
    sender.abort()
    receiver.abort()
    server.close()
    await server.wait_closed()
    return {
        "payload_bytes": payload_size_bytes,
        "frames": frames,
        "elapsed_s": round(elapsed_s, 3),
        "mb_per_s": round(payload_bytes / elapsed_s / 1e6, 1),
        "frames_per_s": round(frames / elapsed_s),
    }


async def main(seconds: float) -> None:
    results = {}
    for size in PAYLOAD_SIZES_BYTES:
        figures = await measure(size, seconds)
        label = f"{size // 1024}KiB"
        results[label] = figures
        print(
            f"p2p_transport {label:>6} frames: {figures['mb_per_s']:8.1f} MB/s "
            f"{figures['frames_per_s']:9d} frames/s over {figures['elapsed_s']} s"
        )
    print(json.dumps({"benchmark": "p2p_transport", "seconds": seconds, "results": results}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration per frame size")
    asyncio.run(main(parser.parse_args().seconds))
