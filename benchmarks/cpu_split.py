"""CPU used by each running ShareChain node, split by thread, over a window of time.

Reads /proc (Linux) twice, --seconds apart, for every process whose command line runs a
node (``sharechain ... start --home DIR``, or --match PATTERN) and the processes they
started (signature workers), and prints the cores each thread used, user and system time
apart. Run it in a second terminal while a benchmark or a localnet runs:

    .venv/bin/python benchmarks/network.py --seconds 30 --rate 3000 &
    .venv/bin/python benchmarks/cpu_split.py --seconds 10

A node is named by its home folder's name (node0, node1, ...). The last line on stdout is
one JSON object: ``{"seconds", "total_cores", "threads": [{"node", "pid", "thread",
"cores", "system_cores"}, ...]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

Key = tuple[int, int]  # (pid, tid)


def read_stat(path: str) -> tuple[str, list[str]] | None:
    """(name, fields after the name) of a /proc ``stat`` file, or None once it is gone. The
    name sits in parentheses and may itself hold spaces or parentheses, hence the split at
    the last ")". Field 1 is the parent pid, 11 and 12 the user and system clock ticks."""
    try:
        with open(path) as fh:
            stat = fh.read()
    except OSError:
        return None
    head, _, rest = stat.rpartition(")")
    return head[head.find("(") + 1:], rest.split()


def process_table() -> dict[int, tuple[int, list[str]]]:
    """pid -> (parent pid, argv) of every process /proc lets us read."""
    table: dict[int, tuple[int, list[str]]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
        except OSError:
            continue
        stat = read_stat(f"/proc/{pid}/stat")
        if stat is not None:
            table[int(pid)] = (int(stat[1][1]), argv)
    return table


def with_descendants(roots: dict[int, str],
                    table: dict[int, tuple[int, list[str]]]) -> dict[int, str]:
    """``roots`` (pid -> name) and every process descended from one (a node's signature
    workers), named after its root."""
    out = dict(roots)
    for pid in table:
        p, hops = table[pid][0], 0
        while p > 1 and p not in roots and hops < 64:
            p, hops = table.get(p, (0, []))[0], hops + 1
        if pid not in out and p in roots:
            out[pid] = roots[p]
    return out


def process_ticks(pid: int) -> int:
    """User + system clock ticks of a whole process, all its threads; 0 once it is gone."""
    stat = read_stat(f"/proc/{pid}/stat")
    if stat is None:
        return 0
    fields = stat[1]
    return int(fields[11]) + int(fields[12])


def node_processes(match: str | None) -> dict[int, str]:
    """pid -> node name, for node processes (or those matching ``match``) and the
    processes they started."""
    table = process_table()
    roots: dict[int, str] = {}
    for pid, (_, argv) in table.items():
        if match is not None:
            if argv and match in " ".join(argv) and pid != os.getpid():
                roots[pid] = os.path.basename(argv[1] if len(argv) > 1 else argv[0])
        elif "start" in argv and "--home" in argv and "sharechain" in " ".join(argv):
            i = argv.index("--home") + 1
            home = argv[i] if i < len(argv) else ""
            roots[pid] = os.path.basename(home.rstrip("/")) or str(pid)
    return with_descendants(roots, table)


def thread_times(pids: dict[int, str]) -> dict[Key, tuple[str, str, int, int]]:
    """(pid, tid) -> (node, thread name, user ticks, system ticks)."""
    out: dict[Key, tuple[str, str, int, int]] = {}
    for pid, node in pids.items():
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            stat = read_stat(f"/proc/{pid}/task/{tid}/stat")
            if stat is None:
                continue
            name, fields = stat
            thread = "main" if int(tid) == pid else name
            out[(pid, int(tid))] = (node, thread, int(fields[11]), int(fields[12]))
    return out


def split(before: dict[Key, tuple[str, str, int, int]], after: dict[Key, tuple[str, str, int, int]],
          seconds: float, tick: int) -> list[dict[str, object]]:
    """Cores used per thread between two readings, busiest first (idle threads left out)."""
    rows = []
    for key, (node, thread, user, system) in after.items():
        _, _, user0, system0 = before.get(key, (node, thread, 0, 0))
        busy = (user - user0) + (system - system0)
        if busy <= 0:
            continue
        rows.append({"node": node, "pid": key[0], "thread": thread,
                     "cores": round(busy / tick / seconds, 3),
                     "system_cores": round((system - system0) / tick / seconds, 3)})
    rows.sort(key=lambda r: (-float(r["cores"]), str(r["node"])))  # type: ignore[arg-type]
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="window length (default 10)")
    ap.add_argument("--match", default=None,
                    help="measure processes whose command line contains this text instead "
                         "of node processes")
    a = ap.parse_args(argv)
    if not os.path.isdir("/proc/self/task"):
        print("cpu_split reads /proc: Linux only", file=sys.stderr)
        return 2
    if a.seconds <= 0:
        ap.error("--seconds must be positive")
    pids = node_processes(a.match)
    if not pids:
        print("no running node found (start one, or use --match)", file=sys.stderr)
        return 1
    print(f"measuring {len(pids)} processes for {a.seconds:g} s...", file=sys.stderr, flush=True)
    before = thread_times(pids)
    time.sleep(a.seconds)
    rows = split(before, thread_times(pids), a.seconds, os.sysconf("SC_CLK_TCK"))
    for r in rows:
        print(f"{r['cores']:7.3f} cores (system {r['system_cores']:.3f})  "
              f"{r['node']:<12} pid {r['pid']:<7} {r['thread']}")
    total = round(sum(float(r["cores"]) for r in rows), 3)  # type: ignore[arg-type]
    print(f"{total:7.3f} cores in all")
    print(json.dumps({"seconds": a.seconds, "total_cores": total, "threads": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
