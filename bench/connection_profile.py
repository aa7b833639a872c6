"""
What one WebSocket connection holds in a server process, object by object (issue 16).

    python -m bench.connection_profile                      # 2,000 clients of one race
    python -m bench.connection_profile --path /ws/live      # ... each subscribed to a meeting
    python -m bench.connection_profile --clients 500 --top 30

Starts ``python -m racing.server`` (as ``make run`` does) on the bench's database (the fixture
race day), warms it with five clients, then starts tracemalloc (25 frames) and takes a snapshot,
connects the clients (each waits for its ``initial_state`` or ``meeting_state``, then only
listens) and takes another. It prints the difference per connection: grouped by the line that
allocated it (the innermost frame of ours or of a library), and in total, next to the process's
RSS growth per connection (which tracing inflates: compare the bench's RSS per connection, taken
without it). Snapshots are taken in the server by SIGUSR2, through a ``sitecustomize`` the run
puts on the server's ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import websockets

from bench.servers import RACE_ID, prepare_database
from tests.servers import DaphneServer, free_port, rss_bytes

SITECUSTOMIZE = """
import os, signal, tracemalloc, pickle

_path = os.environ.get("BENCH_TRACEMALLOC_DUMP")
if _path:
    _taken = [0]

    def _dump(signum, frame):
        import gc
        gc.collect()
        if not tracemalloc.is_tracing():
            tracemalloc.start(25)  # from the first snapshot: what is traced is what came after
        _taken[0] += 1
        snapshot = tracemalloc.take_snapshot()
        with open(f"{_path}.{_taken[0]}", "wb") as out:
            pickle.dump(snapshot, out)
        with open(f"{_path}.{_taken[0]}.done", "w") as out:
            out.write("done")

    signal.signal(signal.SIGUSR2, _dump)
"""
MEETING_ID = "NZ_20261205_AUK"  # the fixture's Alexandra Park: ten races (as bench/meeting.py)


def snapshot(server: DaphneServer, dump_path: Path, number: int) -> tracemalloc.Snapshot:
    server.process.send_signal(signal.SIGUSR2)
    done = Path(f"{dump_path}.{number}.done")
    deadline = time.monotonic() + 120
    while not done.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not write its snapshot")
        time.sleep(0.1)
    with open(f"{dump_path}.{number}", "rb") as dumped:
        return pickle.load(dumped)


async def connect_clients(url: str, count: int, first_message: dict | None) -> tuple[list, float]:
    """Connect ``count`` clients, each waiting for its first message; return them and the time taken."""
    started = time.monotonic()
    semaphore = asyncio.Semaphore(200)

    async def one() -> websockets.ClientConnection:
        async with semaphore:
            ws = await websockets.connect(url, open_timeout=60, ping_interval=None, max_size=None)
            if first_message is not None:
                await ws.send(json.dumps(first_message))
            await ws.recv()
            return ws

    clients = await asyncio.gather(*(one() for _ in range(count)))
    return clients, time.monotonic() - started


def ours_or_library(trace: tracemalloc.Traceback) -> str:
    """The innermost frame outside the standard library's asyncio and tracemalloc machinery."""
    for frame in reversed(trace):  # most recent call last
        name = frame.filename
        if "/asyncio/" in name or "tracemalloc" in name:
            continue
        short = name.split("site-packages/")[-1].split("/work/main/")[-1]
        return f"{short}:{frame.lineno}"
    return f"{trace[-1].filename}:{trace[-1].lineno}"


def report(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, clients: int, top: int) -> list[str]:
    grouped: dict[str, list[int]] = {}
    for stat in after.compare_to(before, "traceback"):
        if stat.size_diff <= 0:
            continue
        where = ours_or_library(stat.traceback)
        entry = grouped.setdefault(where, [0, 0])
        entry[0] += stat.size_diff
        entry[1] += stat.count_diff
    total = sum(size for size, _ in grouped.values())
    lines = [
        f"Traced growth: {total / clients / 1024:.1f} KiB per connection ({total / 2**20:.1f} MiB for {clients:,})",
        "",
        "| allocated at | bytes / connection | blocks / connection |",
        "|---|---:|---:|",
    ]
    packages: dict[str, list[int]] = {}
    for where, (size, count) in grouped.items():
        package = where.split("/")[0] if not where.startswith("/") else "Python's standard library"
        entry = packages.setdefault(package.split(":")[0].removesuffix(".py"), [0, 0])
        entry[0] += size
        entry[1] += count
    by_package = ["", "| package | bytes / connection | blocks / connection |", "|---|---:|---:|"]
    for package, (size, count) in sorted(packages.items(), key=lambda item: -item[1][0]):
        by_package.append(f"| {package} | {size / clients:,.0f} | {count / clients:.1f} |")
    lines[1:1] = by_package
    for where, (size, count) in sorted(grouped.items(), key=lambda item: -item[1][0])[:top]:
        lines.append(f"| `{where}` | {size / clients:,.0f} | {count / clients:.1f} |")
    return lines


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="connection-profile-") as workdir_name:
        workdir = Path(workdir_name)
        site = workdir / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        database = prepare_database(workdir, redis_prefix=f"profile-{os.getpid()}")
        dump_path = workdir / "snapshot"
        environment = database.environment(
            BENCH_TRACEMALLOC_DUMP=str(dump_path),
            PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            SIMULATION_ENABLED="0",
        )
        server = DaphneServer(
            port=free_port(), log_path=workdir / "daphne.log", database=database.database,
            environment=environment, extra_args=["-v", "0"],
        ).start()  # fmt: skip
        try:
            url = f"ws://127.0.0.1:{server.port}{args.path}"
            first = None
            if args.path == "/ws/live":
                first = {"type": "subscribe", "meeting_id": MEETING_ID}
            elif args.path == "/ws/races/":
                url += str(RACE_ID)
            warm, _ = await connect_clients(url, 5, first)
            for ws in warm:
                await ws.close()
            await asyncio.sleep(1.0)
            before = await asyncio.to_thread(snapshot, server, dump_path, 1)
            rss_before = rss_bytes(server.pid)
            clients, storm_s = await connect_clients(url, args.clients, first)
            await asyncio.sleep(2.0)  # the viewers' refresh and any held sends settle
            after = await asyncio.to_thread(snapshot, server, dump_path, 2)
            rss_after = rss_bytes(server.pid)
            print(f"`python -m bench.connection_profile {' '.join(sys.argv[1:])}`: {args.clients:,} clients of {url}")
            print(f"connected in {storm_s:.2f} s (traced: slower than untraced)")
            print(f"RSS growth (traced): {(rss_after - rss_before) / args.clients / 1024:.1f} KiB per connection")
            print()
            print("\n".join(report(before, after, args.clients, args.top)))
            for ws in clients:
                await ws.close()
        finally:
            server.stop()
            database.drop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.connection_profile", description=__doc__.splitlines()[1])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--path", default="/ws/races/", help="/ws/races/ (race 1 of the bench) or /ws/live (a meeting)")
    parser.add_argument("--top", type=int, default=25)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
