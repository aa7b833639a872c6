"""Real server processes for end-to-end tests: a database they share and Daphne on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO_DIR = Path(__file__).resolve().parent.parent
FIXTURE = REPO_DIR / "fixtures" / "race_day.json"
STARTUP_TIMEOUT_S = 30


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

    def race_of_its_own(self, *, copy_of: int) -> int:
        """Create a race that no other test (or server) has touched, with the starters of race
        ``copy_of``, and return its id."""
        script = (
            "from races.models import Race\n"
            f"source = Race.objects.get(pk={copy_of})\n"
            "starters = list(source.starters.all())\n"
            "number = max(source.meeting.races.values_list('race_number', flat=True)) + 1\n"
            "race = Race.objects.create(meeting=source.meeting, race_number=number, distance_m=source.distance_m)\n"
            "for starter in starters:\n"
            "    starter.pk, starter.race = None, race\n"
            "    starter.save()\n"
            "print(race.pk)\n"
        )
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-v", "0", "-c", script],
            cwd=REPO_DIR, env=server_environment(self), capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return int(done.stdout.strip().splitlines()[-1])

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
        "PYTHONUNBUFFERED": "1",
        # Production static files: hashed names from a collected STATIC_ROOT, served by WhiteNoise.
        "STATICFILES_STORAGE": "whitenoise.storage.CompressedManifestStaticFilesStorage",
        "STATIC_ROOT": database.static_root,
    }
    environment.update(overrides)
    return environment


def prepare_server_database(directory: Path) -> ServerDatabase:
    """Create a database for server processes (PostgreSQL if DATABASE_URL says so), migrated
    and loaded with the fixture race day as `make run` does, and collect their static files."""
    base_url = os.environ.get("DATABASE_URL", "")
    if base_url.startswith(("postgres://", "postgresql://")):
        import psycopg

        name = f"racing_e2e_{uuid.uuid4().hex[:10]}"
        parts = urlsplit(base_url)
        with psycopg.connect(base_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        database = ServerDatabase(
            url=urlunsplit(parts._replace(path=f"/{name}")), static_root=str(directory / "static"), admin_url=base_url
        )
    else:
        database = ServerDatabase(url=f"sqlite:///{directory / 'server.sqlite3'}", static_root=str(directory / "static"))
    environment = server_environment(database)
    for command in (
        ["migrate", "--noinput", "-v0"],
        ["loaddata", str(FIXTURE), "-v0"],
        ["collectstatic", "--noinput", "-v0"],
    ):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=REPO_DIR,
            env=environment,
            check=True,
            timeout=120,
        )
    return database


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class DaphneServer:
    process: subprocess.Popen
    port: int
    log_path: Path
    database: ServerDatabase

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_daphne(
    database: ServerDatabase, *, log_dir: Path, port: int | None = None, **environment: str
) -> DaphneServer:
    """Start ``python -m racing.server`` (what `make run` runs) and wait until it accepts."""
    port = port or free_port()
    log_path = log_dir / f"daphne-{port}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "racing.server", "--bind", "127.0.0.1", "--port", str(port)],
        cwd=REPO_DIR,
        env=server_environment(database, **environment),
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = DaphneServer(process=process, port=port, log_path=log_path, database=database)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Daphne exited with {process.returncode}:\n{server.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"Daphne did not listen on {port} within {STARTUP_TIMEOUT_S} s:\n{server.log()}")


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
