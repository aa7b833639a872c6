"""The processes a benchmark run starts: the project's Daphne processes and the baseline."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO_DIR = Path(__file__).resolve().parent.parent
FIXTURE = REPO_DIR / "fixtures" / "race_day.json"
RACE_ID = 1

SETUP_SCRIPT = """
import json
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from live.messages import InitialStateMessage, encode
from races.selectors import race_card_get

user, _ = User.objects.get_or_create(username="bench-feed")
user.user_permissions.add(Permission.objects.get(codename="feed_race"))
with CaptureQueriesContext(connection) as queries:
    card = race_card_get(race_id={race_id})
print(json.dumps({{
    "token": Token.objects.get_or_create(user=user)[0].key,
    "horse_ids": [s["horse_id"] for s in card["starters"]],
    "queries_per_connect": len(queries.captured_queries),
    "initial_state": encode(InitialStateMessage(race_id={race_id}, card=card)),
}}))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def wait_listening(port: int, process: subprocess.Popen, log: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port}:\n{log.read_text()[-3000:]}")


@dataclass
class BenchDatabase:
    url: str
    redis_url: str
    redis_prefix: str
    token: str = ""
    horse_ids: list[int] = field(default_factory=list)
    queries_per_connect: int = 0
    initial_state_path: Path | None = None
    admin_url: str | None = None

    def environment(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "racing.settings",
            "DATABASE_URL": self.url,
            "DEBUG": "0",
            "SECRET_KEY": "bench-only-secret",
            "SIMULATION_ENABLED": "0",  # only the benchmark's own updates
            # Every benchmark client connects from 127.0.0.1.
            "WEBSOCKET_MAX_CONNECTIONS_PER_ADDRESS": "1000000",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def drop(self) -> None:
        if self.admin_url:
            import psycopg

            with psycopg.connect(self.admin_url, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{urlsplit(self.url).path[1:]}" WITH (FORCE)')


def prepare_database(workdir: Path, *, redis_prefix: str) -> BenchDatabase:
    """A fresh database with the fixture race day and a feed user (PostgreSQL if DATABASE_URL says so)."""
    base_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    if base_url.startswith(("postgres://", "postgresql://")):
        import psycopg

        name = f"racing_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(base_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        database = BenchDatabase(urlunsplit(urlsplit(base_url)._replace(path=f"/{name}")), redis_url, redis_prefix, admin_url=base_url)
    else:
        database = BenchDatabase(f"sqlite:///{workdir / 'bench.sqlite3'}", redis_url, redis_prefix)
    environment = database.environment()
    for command in (["migrate", "--noinput", "-v0"], ["loaddata", str(FIXTURE), "-v0"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=REPO_DIR, env=environment, check=True)
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", SETUP_SCRIPT.format(race_id=RACE_ID)],
        cwd=REPO_DIR, env=environment, check=True, capture_output=True, text=True,
    )  # fmt: skip
    setup = json.loads(done.stdout.strip().splitlines()[-1])
    database.token = setup["token"]
    database.horse_ids = setup["horse_ids"]
    database.queries_per_connect = setup["queries_per_connect"]
    database.initial_state_path = workdir / "initial_state.json"
    database.initial_state_path.write_text(setup["initial_state"])
    return database


def odds_for(horse_ids: list[int], index: int) -> list[dict]:
    """A realistic market that moves a little with every update."""
    return [{"horse_id": h, "odds": round(2.0 + ((i * 7 + index * 3) % 40) * 0.85, 2)} for i, h in enumerate(horse_ids)]


@dataclass
class Deployment:
    processes: list[subprocess.Popen]
    client_urls: list[str]
    publish_one: object
    closers: list = field(default_factory=list)

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
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", f"from races.services import race_reset; race_reset(race_id={RACE_ID})"],
        cwd=REPO_DIR, env=database.environment(), check=True,
    )  # fmt: skip


def start_project(scenario, database: BenchDatabase, workdir: Path) -> Deployment:
    """Start the scenario's Daphne processes (`python -m racing.server`, as `make run` does)."""
    reset_race(database)
    extra = {}
    if scenario.layer == "redis":
        extra = {"REDIS_URL": database.redis_url, "CHANNEL_LAYER_PREFIX": f"{database.redis_prefix}-{uuid.uuid4().hex[:4]}"}
    processes, ports = [], []
    for _ in range(scenario.processes):
        port = free_port()
        log = workdir / f"daphne-{port}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "racing.server", "--bind", "127.0.0.1", "--port", str(port), "-v", "0"],
            cwd=REPO_DIR, env=database.environment(**extra), stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_listening(port, process, log)
        processes.append(process)
        ports.append(port)
    http_connection = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=30)

    def publish(index: int) -> None:
        # The feed's path: validated, stored, then broadcast after commit by the server.
        http_connection.request(
            "POST",
            f"/api/races/{RACE_ID}/odds/",
            body=json.dumps(odds_for(database.horse_ids, index)),
            headers={"Content-Type": "application/json", "Authorization": f"Token {database.token}"},
        )
        response = http_connection.getresponse()
        body = response.read()
        if response.status != 201:
            raise RuntimeError(f"feed POST failed: {response.status} {body[:300]!r}")

    return Deployment(
        processes=processes,
        client_urls=[f"ws://127.0.0.1:{port}/ws/races/{RACE_ID}" for port in ports],
        publish_one=publish,
        closers=[http_connection.close],
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
