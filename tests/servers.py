"""
Real server processes, for the end-to-end tests and for the benchmark and the soak run (bench/):
a prepared database, Daphne on a free port started as `make run` starts it, a Redis of one's own
to kill and restart, and a forwarder to cut a service away. The one place that starts servers.
"""

from __future__ import annotations

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
STARTUP_TIMEOUT_S = 30
# Server processes run with DEBUG off, where the settings refuse a short or placeholder key.
SERVER_SECRET_KEY = "end-to-end-servers-only-not-a-production-key-3e8b71d05a92c4f6"  # noqa: S105


@dataclass
class ServerDatabase:
    url: str
    static_root: str
    admin_url: str | None = None  # set for PostgreSQL, whose test database is dropped afterwards

    def scalar(self, sql: str, *params: object) -> object:
        """Return the first column of the first row of a query, straight from the database."""
        if self.admin_url is not None:
            import psycopg

            with psycopg.connect(self.url) as connection:
                return connection.execute(sql.replace("?", "%s"), params).fetchone()[0]
        import sqlite3

        connection = sqlite3.connect(self.url.removeprefix("sqlite:///"))
        try:
            return connection.execute(sql, params).fetchone()[0]
        finally:
            connection.close()

    def manage(self, *arguments: str, timeout_s: float = 120) -> str:
        """Run ``manage.py`` with the servers' settings on this database; return its output."""
        done = subprocess.run(
            [sys.executable, "manage.py", *arguments],
            cwd=REPO_DIR, env=server_environment(self), capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {arguments[0]} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
        return done.stdout

    def shell(self, script: str) -> str:
        """Run Python in ``manage.py shell`` on this database; return the last line it printed."""
        return self.manage("shell", "-v", "0", "-c", script).strip().splitlines()[-1]

    def feed_token(self, *, username: str = "e2e-feed") -> str:
        """Create a feed user (the 'feed race' permission) and return its API token."""
        return self.shell(
            "from django.contrib.auth.models import Permission, User\n"
            "from rest_framework.authtoken.models import Token\n"
            f"user, _ = User.objects.get_or_create(username={username!r})\n"
            "user.user_permissions.add(Permission.objects.get(codename='feed_race'))\n"
            "print(Token.objects.get_or_create(user=user)[0].key)\n"
        )

    def race_of_its_own(self, *, copy_of: int, status: str = "scheduled") -> int:
        """Create a race that no other test (or server) has touched, with the starters of race
        ``copy_of`` as drawn (whatever that race has lived since: no scratchings, no placings),
        and return its id. ``status="open"``: its market is up already, so that
        each odds posted is one update (a scheduled race's first odds open it first)."""
        script = (
            "from races.models import Race\n"
            f"source = Race.objects.get(pk={copy_of})\n"
            "starters = list(source.starters.all())\n"
            "number = max(source.meeting.races.values_list('race_number', flat=True)) + 1\n"
            "race = Race.objects.create(\n"
            f"    meeting=source.meeting, race_number=number, distance_m=source.distance_m, status={status!r}\n"
            ")\n"
            "for starter in starters:\n"
            "    starter.pk, starter.race = None, race\n"
            "    starter.placing, starter.did_not_finish = None, False  # a fresh field: no result, ...\n"
            "    starter.scratched, starter.scratched_late = False, False  # ... no scratchings\n"
            "    starter.save()\n"
            "print(race.pk)\n"
        )
        return int(self.shell(script))

    def drop(self) -> None:
        if self.admin_url is None:
            return
        import psycopg

        name = urlsplit(self.url).path.lstrip("/")
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_environment(database: ServerDatabase, **overrides: str) -> dict[str, str]:
    """Return the environment of a server process: this run's settings, that database."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "racing.settings",
        "DATABASE_URL": database.url,
        "DEBUG": "0",
        "SECRET_KEY": SERVER_SECRET_KEY,
        "PYTHONUNBUFFERED": "1",
        # Production static files: hashed names from a collected STATIC_ROOT, served by WhiteNoise.
        "STATICFILES_STORAGE": "whitenoise.storage.CompressedManifestStaticFilesStorage",
        "STATIC_ROOT": database.static_root,
    }
    environment.update(overrides)
    return environment


def prepare_server_database(directory: Path, *, name_prefix: str = "racing_e2e") -> ServerDatabase:
    """Create a database for server processes (PostgreSQL if DATABASE_URL says so), migrated
    and loaded with the fixture race day as `make run` does, and collect their static files."""
    base_url = os.environ.get("DATABASE_URL", "")
    if base_url.startswith(("postgres://", "postgresql://")):
        import psycopg

        name = f"{name_prefix}_{uuid.uuid4().hex[:10]}"
        parts = urlsplit(base_url)
        with psycopg.connect(base_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        database = ServerDatabase(
            url=urlunsplit(parts._replace(path=f"/{name}")), static_root=str(directory / "static"), admin_url=base_url
        )
    else:
        database = ServerDatabase(
            url=f"sqlite:///{directory / 'server.sqlite3'}", static_root=str(directory / "static")
        )
    database.manage("migrate", "--noinput", "-v0")
    database.manage("loaddata", str(FIXTURE), "-v0")
    database.manage("collectstatic", "--noinput", "-v0")
    return database


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, log_path: Path, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    """Wait until ``process`` accepts connections on ``port``; raise with its log if it does not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args[:3]} exited with {process.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(
        f"nothing listened on {port} within {timeout_s} s:\n{log_path.read_text(errors='replace')[-3000:]}"
    )


def rss_bytes(pid: int) -> int:
    """Return a process's resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class DaphneServer:
    """``python -m racing.server`` on a port of its own, which can be stopped, killed and started
    again on the same port (the same log, appended to)."""

    port: int
    log_path: Path
    database: ServerDatabase
    environment: dict[str, str]
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None

    def start(self) -> DaphneServer:
        log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "racing.server", "--bind", "127.0.0.1", "--port", str(self.port), *self.extra_args],
            cwd=REPO_DIR, env=self.environment, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log_file.close()
        try:
            wait_listening(self.port, self.process, self.log_path)
        except RuntimeError:
            self.stop()
            raise
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self) -> dict:
        """Return the process's /healthz counts."""
        import urllib.request

        with urllib.request.urlopen(self.http_url("/healthz"), timeout=10) as response:
            return json.loads(response.read())

    def kill(self) -> None:
        """SIGKILL: no close frame to anyone, nothing cleaned up."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_daphne(
    database: ServerDatabase,
    *,
    log_dir: Path,
    port: int | None = None,
    extra_args: list[str] | None = None,
    **environment: str,
) -> DaphneServer:
    """Start ``python -m racing.server`` (what `make run` runs) with this run's settings on
    ``database`` and ``environment`` on top, and Daphne's ``extra_args``; wait until it accepts."""
    port = port or free_port()
    return DaphneServer(
        port=port, log_path=log_dir / f"daphne-{port}.log", database=database,
        environment=server_environment(database, **environment), extra_args=list(extra_args or []),
    ).start()  # fmt: skip


class OwnRedis:
    """A redis-server of one's own on a spare port, so that it can be killed and restarted."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def feed_token(server: DaphneServer) -> str:
    """Create a feed user in the server's database and return its API token."""
    return server.database.feed_token()


def post_json(url: str, body: object, token: str | None) -> tuple[int, dict]:
    """POST ``body`` as JSON with a feed token; return the status and the JSON answer."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


class TcpForwarder:
    """A TCP forwarder on loopback that a test can cut and restore, to take a service away from a
    server process (PostgreSQL, say) and give it back, without touching the service itself."""

    def __init__(self, *, target_port: int) -> None:
        import asyncio
        import threading

        self.target_port = target_port
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = None
        self.writers: set = set()

    def _call(self, coroutine):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_reader, client_writer) -> None:
        import asyncio

        try:
            target_reader, target_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        self.writers |= {client_writer, target_writer}
        await asyncio.gather(self._pipe(client_reader, target_writer), self._pipe(target_reader, client_writer))

    async def _start(self) -> None:
        import asyncio

        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _stop(self) -> None:
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    def start(self) -> None:
        self._call(self._start())

    def cut(self) -> None:
        """Refuse new connections and drop the open ones, as a service that went down."""
        self._call(self._stop())

    def close(self) -> None:
        if self.server is not None and self.server.is_serving():
            self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
