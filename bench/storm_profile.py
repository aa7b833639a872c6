"""
Where a connection storm's server time goes, stage by stage (issue 16).

    python -m bench.storm_profile                  # 2,000 clients of one race
    python -m bench.storm_profile --py-spy PATH    # py-spy elsewhere than on PATH

Starts ``python -m racing.server`` (as ``make run`` does) on the bench's database, starts py-spy
recording it (100 samples a second unless ``--rate-hz`` says otherwise, idle samples left out), connects the clients at once (each
waits for its ``initial_state``), stops py-spy and sorts every sample of the server (its threads
together: the database thread's reads are a stage) into the stage of the handshake it was in, by the frames on its stack: from the innermost, the
first stage whose frame is on it. py-spy is a profiling tool installed outside the project (``pip
install py-spy`` in a venv of its own); nothing of it is in requirements.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.connection_profile import connect_clients
from bench.servers import RACE_ID, prepare_database
from tests.servers import DaphneServer, free_port

# (stage, what a frame of it looks like): the first that matches, from the innermost frame out.
STAGES = [
    ("database reads (the join read)", ("django/db/", "psycopg", "sqlite3")),
    ("sending initial_state and the latest update", ("send_frames", "handle_reply", "sendMessage", "send_prepared")),
    ("our consumer: admission, limits, the race's join state", ("live/protocol/",)),
    ("Channels: routing, origin check, consumer construction", ("channels/",)),
    ("asgiref (sync and async bridges)", ("asgiref/",)),
    ("Daphne: the application instance, its queue, the scope", ("daphne/",)),
    ("autobahn: the WebSocket handshake and frames", ("autobahn/", "txaio/")),
    ("Twisted: HTTP parsing, the upgrade, socket reads and writes", ("twisted/",)),
]


# Where a thread waits for work: not the storm's cost (py-spy's --idle is off, but a worker
# thread blocked on its queue and the loop in epoll still show).
IDLE = ("select (selectors.py", "_worker (concurrent/futures/thread.py", "wait (threading.py")
# Frames that only carry the call to whoever does the work (asyncio's tasks and callbacks).
CARRIERS = ("asyncio/", "threading.py", "concurrent/futures/")


def stage_of(stack: str) -> str | None:
    """Return the stage of a sampled stack (None: idle): that of the innermost frame outside
    asyncio's and the thread pool's machinery, or the event loop's own if there is none."""
    frames = stack.split(";")  # outermost first, in py-spy's raw format
    if any(needle in frames[-1] for needle in IDLE):
        return None
    for frame in reversed(frames):
        if any(carrier in frame for carrier in CARRIERS):
            continue
        for stage, needles in STAGES:
            if any(needle in frame for needle in needles):
                return stage
        return "other (Python's standard library, the logging)"
    return "asyncio's event loop"


def report(raw: str, clients: int, storm_s: float, rate_hz: int = 100) -> list[str]:
    samples: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit() and (stage := stage_of(stack)) is not None:
            samples[stage] += int(count)
    total = sum(samples.values()) or 1
    lines = [
        f"{clients:,} clients connected in {storm_s:.2f} s (sampled: a little slower than unsampled); "
        f"{total:,} samples of the server at work (idle ones left out), {rate_hz} a second",
        "",
        "| stage | share of the server's samples | ms per connection |",
        "|---|---:|---:|",
    ]
    for stage, count in samples.most_common():
        lines.append(f"| {stage} | {count / total:.0%} | {count * 1000 / rate_hz / clients:.2f} |")
    return lines


async def storm(url: str, clients: int) -> float:
    connected, storm_s = await connect_clients(url, clients, None)
    for ws in connected:
        await ws.close()
    return storm_s


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storm_profile", description=__doc__.splitlines()[1])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "/opt/tools/bin/py-spy")
    parser.add_argument("--raw", type=Path, default=None, help="keep py-spy's raw stacks here")
    parser.add_argument("--rate-hz", type=int, default=100, help="py-spy's samples a second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="storm-profile-") as workdir_name:
        workdir = Path(workdir_name)
        database = prepare_database(workdir, redis_prefix=f"storm-{os.getpid()}")
        server = DaphneServer(
            port=free_port(), log_path=workdir / "daphne.log", database=database.database,
            environment=database.environment(SIMULATION_ENABLED="0"), extra_args=["-v", "0"],
        ).start()  # fmt: skip
        raw_path = args.raw or workdir / "storm.txt"
        try:
            url = f"ws://127.0.0.1:{server.port}/ws/races/{RACE_ID}"
            asyncio.run(storm(url, 5))  # warm: imports, the first database connection
            time.sleep(1.0)
            spy = subprocess.Popen(
                [args.py_spy, "record", "--pid", str(server.pid), "--rate", str(args.rate_hz), "--format", "raw",
                 "--output", str(raw_path), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)  # py-spy attached
            storm_s = asyncio.run(storm(url, args.clients))
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            print(f"`python -m bench.storm_profile --clients {args.clients}`")
            print("\n".join(report(raw_path.read_text(), args.clients, storm_s, args.rate_hz)))
        finally:
            server.stop()
            database.drop()


if __name__ == "__main__":
    main()
