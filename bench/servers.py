"""The processes a benchmark run starts: the project's Daphne processes and the baseline."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import (
    REPO_DIR,
    DaphneServer,
    ServerDatabase,
    free_port,
    prepare_server_database,
    server_environment,
    wait_listening,
)

RACE_ID = 1

# What the benchmark needs of its race: its runners, the queries a connect costs, and the exact
# initial_state, which the baseline server sends as the project does.
SETUP_SCRIPT = """
import json
from django.db import connection
from django.test.utils import CaptureQueriesContext
from live.protocol.messages import InitialStateMessage, encode
from races.selectors import race_card_get

with CaptureQueriesContext(connection) as queries:
    card = race_card_get(race_id={race_id})
print(json.dumps({{
    "horse_ids": [s["horse_id"] for s in card["starters"]],
    "queries_per_connect": len(queries.captured_queries),
    "initial_state": encode(InitialStateMessage(race_id={race_id}, card=card, epoch=card["market"]["updates_epoch"])),
}}))
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The benchmark's servers: only its own updates, thousands of clients from one address standing in
# for thousands of phones, and little logging.
BENCH_ENVIRONMENT = {
    "SIMULATION_ENABLED": "0",
    "WEBSOCKET_MAX_CONNECTIONS_PER_ADDRESS": "1000000",
    "HTTP_MAX_PENDING_PER_ADDRESS": "1000000",
    "LOG_LEVEL": "WARNING",
}


@dataclass
class BenchDatabase:
    """The shared server database (tests/servers.py), with what the benchmark needs of its race."""

    database: ServerDatabase
    redis_url: str
    redis_prefix: str
    token: str = ""
    horse_ids: list[int] = field(default_factory=list)
    queries_per_connect: int = 0
    initial_state_path: Path | None = None

    def environment(self, **extra: str) -> dict[str, str]:
        return server_environment(self.database, **{**BENCH_ENVIRONMENT, **extra})

    def drop(self) -> None:
        self.database.drop()


def prepare_database(workdir: Path, *, redis_prefix: str) -> BenchDatabase:
    """A fresh database with the fixture race day and a feed user (PostgreSQL if DATABASE_URL says so)."""
    database = prepare_server_database(workdir, name_prefix="racing_bench")
    bench = BenchDatabase(database, os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0", redis_prefix)
    setup = json.loads(database.shell(SETUP_SCRIPT.format(race_id=RACE_ID)))
    bench.token = database.feed_token(username="bench-feed")
    bench.horse_ids = setup["horse_ids"]
    bench.queries_per_connect = setup["queries_per_connect"]
    bench.initial_state_path = workdir / "initial_state.json"
    bench.initial_state_path.write_text(setup["initial_state"])
    return bench


def odds_for(horse_ids: list[int], index: int) -> list[dict]:
    """A realistic market that moves a little with every update."""
    return [{"horse_id": h, "odds": round(2.0 + ((i * 7 + index * 3) % 40) * 0.85, 2)} for i, h in enumerate(horse_ids)]


class Feed:
    """The race-day feed as the benchmark drives it: authenticated POSTs on one kept-alive
    connection, each answered before the next is sent."""

    # The server closes a kept-alive connection that stays idle (a connection storm can take
    # longer): one idle this long is replaced before the next request, which then never fails
    # half-sent.
    IDLE_S = 5.0

    def __init__(self, port: int, token: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
        self.used_at = time.monotonic()

    def post(self, path: str, body: object) -> dict:
        """POST ``body`` as JSON; return the answer (validated, stored, broadcast after commit)."""
        if time.monotonic() - self.used_at > self.IDLE_S:
            self.connection.close()  # reconnects on the request
        self.used_at = time.monotonic()
        self.connection.request("POST", path, body=json.dumps(body), headers=self.headers)
        response = self.connection.getresponse()
        answer = response.read()
        if response.status not in (200, 201):
            raise RuntimeError(f"feed POST {path} failed: {response.status} {answer[:300]!r}")
        return json.loads(answer)

    def close(self) -> None:
        self.connection.close()


@dataclass
class Deployment:
    processes: list[subprocess.Popen]
    client_urls: list[str]
    publish_one: object
    closers: list = field(default_factory=list)
    feed: Feed | None = None  # the project's: the meeting scenario posts to any race through it
    redis_url: str | None = None  # the channel layer's Redis, when there is one

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def publish(self, index: int) -> None:
        self.publish_one(index)

    def stop(self) -> None:
        for close in self.closers:
            close()
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def reset_race(database: BenchDatabase) -> None:
    """Clear the race's odds history, so a scenario's late-joiner odds are not an earlier one's."""
    database.database.manage(
        "shell", "-v", "0", "-c", f"from races.services import race_reset; race_reset(race_id={RACE_ID})"
    )


def start_project(
    scenario, database: BenchDatabase, workdir: Path, *, client_path: str = f"/ws/races/{RACE_ID}"
) -> Deployment:
    """Start the scenario's Daphne processes (`python -m racing.server`, as `make run` does)."""
    if client_path.startswith("/ws/races/"):
        reset_race(database)
    extra = {}
    if scenario.layer == "redis":
        extra = {
            "REDIS_URL": database.redis_url,
            "CHANNEL_LAYER_PREFIX": f"{database.redis_prefix}-{uuid.uuid4().hex[:4]}",
        }
    servers = []
    for _ in range(scenario.processes):
        port = free_port()
        servers.append(
            DaphneServer(
                port=port, log_path=workdir / f"daphne-{port}.log", database=database.database,
                environment=database.environment(**extra), extra_args=["-v", "0"],
            ).start()
        )  # fmt: skip
    processes, ports = [server.process for server in servers], [server.port for server in servers]
    feed = Feed(ports[0], database.token)

    def publish(index: int) -> None:
        # The feed's path: validated, stored, then broadcast after commit by the server.
        feed.post(f"/api/races/{RACE_ID}/odds/", odds_for(database.horse_ids, index))

    return Deployment(
        processes=processes,
        client_urls=[f"ws://127.0.0.1:{port}{client_path}" for port in ports],
        publish_one=publish,
        closers=[feed.close],
        feed=feed,
        redis_url=database.redis_url if scenario.layer == "redis" else None,
    )


def start_baseline(database: BenchDatabase, workdir: Path, *, race_id: int) -> Deployment:
    from websockets.sync.client import connect

    port = free_port()
    log = workdir / f"baseline-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.baseline", "--port", str(port), "--initial-state", str(database.initial_state_path),
         "--race-id", str(race_id)],
        cwd=REPO_DIR, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_listening(port, process, log)
    control = connect(f"ws://127.0.0.1:{port}/control", compression=None)

    def publish(index: int) -> None:
        control.send(json.dumps(odds_for(database.horse_ids, index)))
        control.recv(timeout=30)

    return Deployment(
        processes=[process],
        client_urls=[f"ws://127.0.0.1:{port}/ws/races/{race_id}"],
        publish_one=publish,
        closers=[control.close],
    )
